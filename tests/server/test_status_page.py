"""The top node's status page in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from node.embedded_redis import free_port
from node.launcher import Launcher
from node.topology import Topology

pytestmark = pytest.mark.server
ARTEFACTS = Path(__file__).resolve().parents[2] / "reports" / "test-artefacts"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make test` installs it (make browser)")
        pytest.skip("chromium is not installed (make browser installs it)")
    return found


def _browse(chromium: str, url: str, *extra: str) -> str:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1400,1100",
        "--virtual-time-budget=5000",  # let the page fetch and render its data
        *extra,
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


async def test_the_status_page_shows_the_hierarchy_and_live_rates(tmp_path: Path) -> None:
    chromium = _chromium()
    top_port, s1, s2 = free_port(), free_port(), free_port()
    topology = Topology.parse(
        f"""
[top]
prefix = "88"
port = {top_port}
[[secondary]]
prefix = "88.100"
port = {s1}
industry = "automotive"
  [[secondary.enterprise]]
  name = "Status Page Motors"
  credit_code = "91420100MA4K2B7C1Y"
  identifiers = 20
[[secondary]]
prefix = "88.102"
port = {s2}
industry = "CNC machine tools"
""",
        "status page topology",
    )
    launcher = Launcher(topology, data_dir=tmp_path / "state", out=io.StringIO())
    try:
        await launcher.start()
        top = f"http://127.0.0.1:{top_port}"
        secondary = f"http://127.0.0.1:{s1}"
        async with httpx.AsyncClient(timeout=10) as http:
            for n in range(60):  # traffic at 88.100 within the last ten seconds
                answer = await http.get(f"{secondary}/api/handles/88.100.1/demo-{n % 20 + 1:04d}")
                assert answer.status_code == 200
        await asyncio.sleep(1.2)  # one KPI flush

        url = f"{top}/status?plan=wuhan-5g-2021&scale=0.00001"
        dom = await asyncio.to_thread(_browse, chromium, url, "--dump-dom")
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        screenshot = ARTEFACTS / "status-page.png"
        screenshot.unlink(missing_ok=True)
        await asyncio.to_thread(_browse, chromium, url, f"--screenshot={screenshot}")
    finally:
        await asyncio.to_thread(launcher.stop)

    assert 'id="error"></span>' in dom  # no fetch failed
    assert 'data-prefix="88.100"' in dom and 'data-prefix="88.102"' in dom
    assert 'data-enterprises="1"' in dom  # Status Page Motors under 88.100
    assert "Status Page Motors" in dom
    rates = dict(re.findall(r'data-node="([^"]+)" data-rate="([^"]+)"', dom))
    assert float(rates["88.100"]) > 0, rates
    assert float(rates["88.102"]) == 0, rates
    assert 'data-target="secondary-daily-resolutions"' in dom
    assert screenshot.stat().st_size > 10_000
