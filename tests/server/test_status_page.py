"""The top node's status page in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

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


@dataclass(frozen=True)
class Hierarchy:
    top: str
    secondary: str  # 88.100, with traffic
    quiet: str  # 88.102
    enterprise: str  # 88.102.1's own node

    @property
    def nodes(self) -> list[str]:
        return [self.top, self.secondary, self.quiet, self.enterprise]


@pytest.fixture(scope="module")
async def hierarchy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hierarchy]:
    """A top node, two secondary nodes, an enterprise served by 88.100 and one with a
    node of its own under 88.102."""
    top_port, s1, s2, e1 = free_port(), free_port(), free_port(), free_port()
    topology = Topology.parse(
        f"""
[top]
prefix = "88"
port = {top_port}
owner = "National top-level node (simulated)"
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
  [[secondary.enterprise]]
  name = "Quiet Works"
  credit_code = "91420111MA4F6R9T0D"
  port = {e1}
""",
        "status page topology",
    )
    data = tmp_path_factory.mktemp("status-page")
    launcher = Launcher(topology, data_dir=data / "state", out=io.StringIO())
    try:
        await launcher.start()
        url = "http://127.0.0.1:{}".format
        yield Hierarchy(url(top_port), url(s1), url(s2), url(e1))
    finally:
        await asyncio.to_thread(launcher.stop)


async def test_the_status_page_shows_the_hierarchy_and_live_rates(hierarchy: Hierarchy) -> None:
    chromium = _chromium()
    async with httpx.AsyncClient(timeout=10) as http:
        for n in range(60):  # traffic at 88.100 within the last ten seconds
            answer = await http.get(
                f"{hierarchy.secondary}/api/handles/88.100.1/demo-{n % 20 + 1:04d}"
            )
            assert answer.status_code == 200
    await asyncio.sleep(1.2)  # one KPI flush

    url = f"{hierarchy.top}/status?plan=wuhan-5g-2021&scale=0.00001"
    dom = await asyncio.to_thread(_browse, chromium, url, "--dump-dom")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTEFACTS / "status-page.png"
    screenshot.unlink(missing_ok=True)
    await asyncio.to_thread(_browse, chromium, url, f"--screenshot={screenshot}")

    assert 'id="error"></span>' in dom  # no fetch failed
    assert 'data-prefix="88.100"' in dom and 'data-prefix="88.102"' in dom
    assert 'data-enterprises="1"' in dom  # Status Page Motors under 88.100
    assert "Status Page Motors" in dom
    rates = dict(re.findall(r'data-node="([^"]+)" data-rate="([^"]+)"', dom))
    assert float(rates["88.100"]) > 0, rates
    assert float(rates["88.102"]) == 0, rates
    assert 'data-target="secondary-daily-resolutions"' in dom
    assert screenshot.stat().st_size > 10_000

    # Every node, the enterprise node included, with its health (issue 19).
    rows = re.findall(r'data-prefix="([^"]+)" data-kind="([^"]+)" data-health="([^"]*)"', dom)
    assert rows == [
        ("88", "top", "up"),
        ("88.100", "secondary", "up"),
        ("88.100.1", "enterprise", ""),  # served by 88.100: not probed on its own
        ("88.102", "secondary", "up"),
        ("88.102.1", "enterprise", "up"),
    ]
    assert float(rates["88.102.1"]) == 0, rates  # the enterprise node's live figures too
    # A young healthy hierarchy fails nothing: 88.102 has had no traffic yet today.
    assert 'data-result="FAIL"' not in dom
    assert 'id="verdict" class="pending">not yet measurable<' in dom
    assert 'data-result="pending"' in dom
    # No brackets nested in the title and header (the plan's title has its own).
    title = re.search(r'<span id="plan-title">([^<]*)</span>', dom)
    assert title is not None and "(" not in title.group(1), title
    header = re.search(r'<span id="top">([^<]*)</span>', dom)
    assert header is not None
    assert header.group(1) == "88 · National top-level node (simulated)"


BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
LINKED = re.compile(r'(?:href|src|action)\s*=\s*"([^"]*)"', re.IGNORECASE)
SCRIPTED = re.compile(r"<(script|style)\b[^>]*>(.*?)</\1>", re.IGNORECASE | re.DOTALL)
ANY_URL = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+(?::\d+)?")
FETCHED = re.compile(r"""(?:json|fetch)\(\s*[`"']([^`"'$?]+)""")


async def test_every_linked_page_works_without_internet(hierarchy: Hierarchy) -> None:
    """Each node's index, status page and API docs, and every page or asset they link
    to or fetch, answer 200 from the node itself; no HTML refers to an http(s) URL
    outside the hierarchy but in text (issue 19: a plant network has no internet)."""
    allowed = {urlsplit(n).netloc for n in hierarchy.nodes}
    seen: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=10, headers=BROWSER) as http:
        pages = [f"{n}{p}" for n in hierarchy.nodes for p in ("/", "/status", "/docs", "/redoc")]
        while pages:
            url = pages.pop()
            if url in seen:
                continue
            answer = await http.get(url, follow_redirects=True)
            seen[url] = answer.status_code
            assert answer.status_code == 200, (url, answer.status_code)
            if not answer.headers.get("content-type", "").startswith("text/html"):
                continue
            html = answer.text
            code = " ".join(body for _, body in SCRIPTED.findall(html))
            for found in ANY_URL.findall(" ".join(LINKED.findall(html)) + " " + code):
                host = found.split("//", 1)[1]
                assert host in allowed, (url, found)
            links = LINKED.findall(html) + FETCHED.findall(code)
            for link in links:
                target = urljoin(str(answer.url), link).partition("#")[0]
                if urlsplit(target).netloc in allowed and target not in seen:
                    pages.append(target)
    crawled = {urlsplit(u).path for u in seen}
    expected = {"/", "/status", "/docs", "/redoc", "/readyz", "/metrics", "/api/status"}
    assert expected <= crawled, expected - crawled
    assert any(p.startswith("/docs/assets/") for p in crawled), crawled
