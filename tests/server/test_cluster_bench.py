"""``idnode bench --scale N --cluster 3`` end to end, with real node and Redis processes
at a small N: both stores in one report, their figures sane, refusals (if the node made
any) counted and reported, and the work directory's stores removed afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

N = 2000


def test_a_small_run_sets_a_single_redis_and_a_cluster_side_by_side(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "node", "bench", "--scale", str(N), "--cluster", "3"]
    command += ["--resolve-requests", "200", "--segment", "1000"]
    command += ["--work", str(tmp_path / "work"), "--reports", str(tmp_path / "reports")]
    bench = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    (report,) = (tmp_path / "reports").glob("*/cluster.json")
    figures = json.loads(report.read_text())
    markdown = (report.parent / "cluster.md").read_text()
    assert markdown.startswith(f"# Single Redis against a Redis Cluster: {N:,} identifiers")
    assert "| | single Redis | cluster 3+3 | cluster / single |" in bench.stdout
    # Refused identifiers are reported, never hidden: the exit status and the report say so.
    refused = figures["single"]["rejected"] + figures["cluster"]["rejected"]
    assert bench.returncode == (1 if figures["failures"] else 0), bench.stderr
    assert bool(refused) <= bool(figures["failures"])
    assert ("**Some identifiers were not stored**" in markdown) == bool(figures["failures"])
    assert figures["cores"] >= 1 and f"This machine has {figures['cores']} cores" in markdown
    for name, masters, replicas in (("single", 1, 0), ("cluster", 3, 3)):
        run, d = figures[name], figures[name]["derived"]
        assert (run["masters"], run["replicas"]) == (masters, replicas)
        assert run["n"] == N and run["imported"] + run["rejected"] == N
        assert run["stored"] == run["imported"] > N // 2
        assert d["rate"] > 100
        assert 100 < d["memory_masters_per_id"] < 20_000
        assert 50 < d["aof_masters_per_id"] < 20_000  # at least the record's bytes
        assert d["memory_total_per_id"] >= d["memory_masters_per_id"]
        assert 0 < d["cpu_us_per_id"] and 0 < d["busy"] <= 1.5
        latency = run["latency"]
        assert latency["count"] == 200
        assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"] < 1000
    # Each replica holds a copy: the cluster's total is well above its masters' alone.
    cluster = figures["cluster"]["derived"]
    assert cluster["memory_total_per_id"] > 1.3 * cluster["memory_masters_per_id"]
    assert cluster["aof_total_per_id"] > 1.5 * cluster["aof_masters_per_id"]
    assert figures["ratios"]["import ids/s"] > 0
    assert not (tmp_path / "work" / "vs-cluster").exists()
