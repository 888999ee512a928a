"""``idnode bench --capacity`` end to end, for real: the demo hierarchy, nginx, the
FastAPI+Redis baseline, wrk and the open-loop and batch generators, one second per
measurement (about half a minute). It checks that the report is complete and that
nothing is left running; the rates themselves are judged by the benchmark's own run,
never here (a shared machine's timings are not a test's business)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loadtest.capacity import find_tool
from loadtest.capacity_report import Scenario

pytestmark = pytest.mark.server
STEAL = re.compile(r"lost [\d,]+ ms of CPU time to steal")  # what the hypervisor took


def _tools() -> None:
    missing = [tool for tool in ("wrk", "nginx") if find_tool(tool) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} missing: `make test` installs them (make bench-tools)")
        pytest.skip(f"{' and '.join(missing)} not installed (make bench-tools installs them)")


PR_SET_CHILD_SUBREAPER = 36


def _running_children() -> set[int]:
    """This process's children that have not exited."""
    me, found = str(os.getpid()), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if fields[1] == me and fields[0] != "Z":
                found.add(int(entry.name))
    return found


@contextlib.contextmanager
def _adopting_orphans() -> Iterator[Callable[[], set[int]]]:
    """Within the block, processes whose parent dies are handed to this process instead
    of init (Linux's child subreaper), so whatever a run left behind shows up as a child
    here; yields a function listing those still running after a bounded grace period."""
    libc = ctypes.CDLL(None, use_errno=True)
    before = _running_children()
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)

    def left() -> set[int]:
        deadline = time.monotonic() + 5  # a process told to stop may take a moment
        while (found := _running_children() - before) and time.monotonic() < deadline:
            time.sleep(0.1)
        return found

    try:
        yield left
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0)
        for pid in _running_children() - before:  # never leave them running, even on failure
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


@pytest.mark.timeout(240)
def test_capacity_run_reports_every_scenario_against_both_baselines(tmp_path: Path) -> None:
    _tools()
    with _adopting_orphans() as left_running:
        done = subprocess.run(
            [sys.executable, "-m", "node", "bench", "--capacity", "--seconds", "1"]
            + ["--reports", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=200,
        )
        left = left_running()
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: a target missed, not an error
    (report_dir,) = tmp_path.iterdir()
    report = json.loads((report_dir / "capacity.json").read_text())
    runs = {m["scenario"]: m for m in report["measurements"]}
    assert list(runs) == [s.value for s in Scenario]
    for scenario, run in runs.items():
        assert run["throughput"]["rate"] > 0, scenario
        assert run["throughput"]["failed"] == 0, scenario
        assert run["cpu"]["server"] > 0, scenario
    assert runs["batch"]["cpu"]["redis"] > 0  # Redis's own CPU (and its AOF rewrites')
    assert any(STEAL.search(n) for n in runs["batch"]["notes"])
    for scenario in ("fastapi", "cached", "authoritative", "miss"):
        latency = runs[scenario]["latency"]
        assert latency["scheduled"] > 0 and latency["answered"] == latency["scheduled"]
        # what the hypervisor took meanwhile, which explains a tail of stalls
        assert any(STEAL.search(n) for n in runs[scenario]["notes"])
    assert runs["cached"]["latency"]["x_cache"] == {"HIT": runs["cached"]["latency"]["answered"]}
    assert runs["miss"]["miss_ratio"] == 1.0  # distinct identifiers: never a cache hit
    assert set(runs["miss"]["latency"]["x_cache"]) == {"MISS"}
    assert runs["cached"]["times_fastapi"] > 0 and runs["cached"]["times_nginx"] > 0
    assert [t["scenario"] for t in report["targets"]] == [
        "cached",
        "cached",
        "cached",
        "authoritative",
        "batch",
    ]
    assert report["passed"] is (done.returncode == 0)
    assert report["setup"]["appendfsync"] == "always"
    markdown = (report_dir / "capacity.md").read_text()
    assert all(s.label in markdown for s in Scenario)
    assert all(s.label in done.stdout for s in Scenario)  # the printed table
    assert left == set()  # every process it started is gone: nodes, Redis, nginx, uvicorn
