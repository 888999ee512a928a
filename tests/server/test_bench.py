"""``idnode seed`` and ``idnode bench`` against real hierarchies, with real Locust.

Rates are not asserted here (machines are shared and noisy; the CI benchmark judges
them). These tests check that every scenario's requests are answered correctly, that the
report is complete, and that a missed target fails the run.
"""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import pytest

from loadtest import catalog
from node.launcher import Launcher
from node.seeder import Seeder, SeedJob
from registry.errors import ConfigError
from resolver.upstream import Credentials
from tests.server.node_process import demo_hierarchy

pytestmark = pytest.mark.server

SECONDARIES = ["88.100", "88.101", "88.102"]


@pytest.fixture(scope="module")
async def hierarchy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Launcher]:
    """The demo hierarchy on free ports, with 5 sample identifiers per enterprise."""
    async with demo_hierarchy(tmp_path_factory.mktemp("demo")) as launcher:
        yield launcher


def _idnode(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _report(output: str) -> Path:
    line = next(line for line in output.splitlines() if line.startswith("report: "))
    return Path(line.removeprefix("report: "))


async def test_the_catalog_read_from_the_top_node_describes_the_hierarchy(
    hierarchy: Launcher,
) -> None:
    top = hierarchy.node("top-88").url
    found = await asyncio.to_thread(catalog.from_top, top, 5)
    started = catalog.from_launcher(hierarchy)
    assert found["secondaries"] == started["secondaries"]

    def essentials(c: dict[str, object]) -> list[tuple[object, ...]]:
        return sorted(
            (e["prefix"], e["node"], e["secondary"], e["url_prefix"])
            for e in c["enterprises"]  # type: ignore[attr-defined]
        )

    # The enterprise with a node of its own is found through its secondary's delegation.
    assert essentials(found) == essentials(started)
    own = next(e for e in found["enterprises"] if e["prefix"] == "88.101.1")
    assert own["node"] == hierarchy.node("enterprise-88.101.1").url


async def test_idnode_seed_loads_every_enterprise_through_the_batch_api(
    hierarchy: Launcher,
) -> None:
    top = hierarchy.node("top-88").url
    done = await asyncio.to_thread(_idnode, "seed", "--target", top, "--identifiers", "2100")
    assert done.returncode == 0, done.stderr
    assert "seeded 14,700 identifiers for 7 enterprises" in done.stdout
    assert "100%" in done.stdout  # the progress bar reached the end
    async with httpx.AsyncClient() as http:
        for handle in ("88.100.1/demo-2100", "88.101.1/demo-2001", "88.102.2/demo-0007"):
            answer = await http.get(f"{top}/api/handles/{handle}")
            assert answer.status_code == 200, handle
            values = {v["type"]: v["data"]["value"] for v in answer.json()["values"]}
            assert values["URL"].endswith(handle.partition("/")[2])
        # Seeding kept the demo's URLs, so the load test's reverse lookups still match.
        first = (await http.get(f"{top}/api/handles/88.100.1/demo-0001?type=URL")).json()
        assert first["values"][0]["data"]["value"].startswith("https://id.jianghan-motor")


async def test_a_refused_batch_stops_seeding_with_the_prefix_named(hierarchy: Launcher) -> None:
    secondary = hierarchy.node("secondary-88.100").url
    job = SeedJob(
        "88.100.1",
        secondary,
        Credentials("300:0.NA/88.100.1", "not-the-secret"),
        [{"handle": "88.100.1/refused", "values": [{"index": 1, "type": "URL", "data": "x"}]}],
    )
    async with aiohttp.ClientSession() as http:
        with pytest.raises(ConfigError, match=r"seeding 88\.100\.1 .*HTTP 401"):
            await Seeder(http).seed([job])
        async with http.get(f"{secondary}/api/handles/88.100.1/refused") as gone:
            assert gone.status == 404


def test_bench_runs_the_mixed_scenario_and_fails_a_missed_target(tmp_path: Path) -> None:
    """The demo under every user class for a few seconds, judged against a target no
    node can meet: exit code 1, the report names the missed rate, no request failed."""
    done = _idnode(
        "bench",
        "--up",
        "--scenario",
        "mixed",
        "--duration",
        "10",
        "--users",
        "24",
        "--shape",
        "flat",
        "--identifiers",
        "20",
        "--per-day",
        "1e12",
        "--reports",
        str(tmp_path),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    report = _report(done.stdout)
    for name in ("locust.html", "locust_stats.csv", "throughput.png", "latency.png"):
        assert (report / name).stat().st_size > 0, name
    summary = (report / "summary.md").read_text()
    assert "**FAIL**" in summary
    for node in SECONDARIES:
        assert f"| {node} |" in summary and "FAIL (rate)" in summary
    with (report / "locust_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    expected = {
        "resolve via top",
        "register one",
        "register batch of 50",
        "list a page",
        "reverse lookup",
        *(f"resolve at {node}" for node in SECONDARIES),
    }
    assert expected <= set(rows)
    for name in expected:
        assert int(rows[name]["Request Count"]) > 0, name
        assert int(rows[name]["Failure Count"]) == 0, (name, summary)


async def test_seed_skips_and_names_an_enterprise_with_a_secret_of_its_own(
    hierarchy: Launcher,
) -> None:
    """88.100.3 as if onboarded by hand: its secret is not the demo one. Seeding goes on
    for the others (it used to abort halfway with "HTTP 401: []") and names it."""
    top = hierarchy.node("top-88").url
    secondary = hierarchy.node("secondary-88.100").url
    admin = Credentials("300:0.NA/88.100", "demo-88.100")
    record = f"{secondary}/api/handles/0.NA/88.100.3?index=300&overwrite=true"

    def secret(value: str) -> dict[str, object]:
        data = {"format": "string", "value": value}
        return {"values": [{"index": 300, "type": "HS_SECKEY", "data": data}]}

    async with httpx.AsyncClient(headers={"Authorization": admin.header()}) as http:
        assert (await http.put(record, json=secret("its-own-secret"))).status_code < 300
        try:
            done = await asyncio.to_thread(_idnode, "seed", "--target", top, "--identifiers", "7")
        finally:
            assert (await http.put(record, json=secret("demo-88.100.3"))).status_code < 300
    assert done.returncode == 0, done.stderr
    assert "skipping 88.100.3" in done.stderr and "demo secret" in done.stderr
    assert "seeded 42 identifiers for 6 enterprises; skipped 1" in done.stdout
