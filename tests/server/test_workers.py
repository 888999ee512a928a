"""A node served by several worker processes (``--workers``): one address, one store,
writes seen by every worker, metrics of all of them, and a clean stop; a worker that
dies stops the node rather than leaving it half there."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from loadtest.capacity import process_tree
from loadtest.capacity_figures import resolution_counts
from node.embedded_redis import free_port
from node.launcher import Launcher
from node.topology import Topology
from tests.conftest import ADMIN_AUTH
from tests.server.node_process import NodeProcess

URL = {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://a.cn"}}


def children(pid: int) -> list[int]:
    return process_tree(pid)[1:]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "metrics"
    path.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(path))
    return path


@pytest.fixture
def node(tmp_path: Path, metrics_dir: Path) -> Iterator[NodeProcess]:
    process = NodeProcess(tmp_path / "data", "--workers", "2", "--secret-hash-cost", "4")
    try:
        yield process.start()
    finally:
        process.stop()


def test_two_workers_serve_one_node_on_one_store(node: NodeProcess, metrics_dir: Path) -> None:
    assert node.process is not None
    pid, redis = node.process.pid, node.redis_pid
    # The second worker starts once the first is ready.
    assert wait_until(lambda: len([w for w in children(pid) if w != redis]) == 2)
    workers = children(pid)
    with httpx.Client(base_url=node.url) as http:
        put = http.put("/api/handles/88.100/w", json={"values": [URL]}, headers=ADMIN_AUTH)
        assert put.status_code == 201
    # New connections until both workers have answered (the kernel picks one each time).
    answered_by: set[str] = set()
    for _ in range(400):
        with httpx.Client(base_url=node.url) as http:
            assert http.get("/api/handles/88.100/w").status_code == 200
        answered_by = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}
        if len(answered_by) >= 2:
            break
    assert answered_by == {f"{pid}.db" for pid in workers if pid != redis}
    with httpx.Client(base_url=node.url) as http:
        text = http.get("/metrics").text
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("idnode_resolutions_total") and 'outcome="authoritative"' in line
    ]
    assert counted and counted[0] >= 2  # every worker's resolutions, from any worker


def test_one_clients_batches_reach_every_worker(node: NodeProcess, metrics_dir: Path) -> None:
    # A keep-alive connection stays with the worker that accepted it; a batch answer
    # closes it, so one client's next batch may go to another worker.
    assert node.process is not None
    pid, redis = node.process.pid, node.redis_pid
    assert wait_until(lambda: len([w for w in children(pid) if w != redis]) == 2)
    workers = {f"{w}.db" for w in children(pid) if w != redis}
    answered_by: set[str] = set()
    with httpx.Client(base_url=node.url) as http:
        for n in range(400):
            item = {"handle": f"88.100/spread{n}", "values": [URL]}
            answer = http.post("/api/batch/handles", json={"handles": [item]}, headers=ADMIN_AUTH)
            assert answer.status_code == 200 and answer.json()["created"] == 1
            assert answer.headers["connection"] == "close"
            answered_by = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}
            if answered_by >= workers:
                break
    assert answered_by >= workers


def test_a_write_through_one_worker_is_read_through_every_other(node: NodeProcess) -> None:
    def fresh_get() -> httpx.Response:
        with httpx.Client(base_url=node.url) as http:  # a new connection: any worker
            return http.get("/api/handles/88.100/moving")

    with httpx.Client(base_url=node.url) as http:
        http.put("/api/handles/88.100/moving", json={"values": [URL]}, headers=ADMIN_AUTH)
        for _ in range(20):  # both workers keep an in-process copy of the first version
            assert fresh_get().status_code == 200
        changed = {**URL, "data": {"format": "string", "value": "https://b.cn"}}
        put = http.put("/api/handles/88.100/moving", json={"values": [changed]}, headers=ADMIN_AUTH)
        assert put.status_code == 200
    time.sleep(0.3)  # the change stream is read every 50 ms
    seen = {fresh_get().json()["values"][0]["data"]["value"] for _ in range(20)}
    assert seen == {"https://b.cn"}


def test_sigterm_stops_every_worker_and_the_store(node: NodeProcess) -> None:
    assert node.process is not None
    pid = node.process.pid
    assert wait_until(lambda: len(children(pid)) == 3)  # Redis and two workers
    everyone = children(pid)
    assert node.redis_pid in everyone
    node.process.send_signal(signal.SIGTERM)
    assert node.process.wait(20) == 0
    assert wait_until(lambda: not any(alive(p) for p in everyone))


def test_a_worker_that_dies_stops_the_node(node: NodeProcess) -> None:
    assert node.process is not None
    pid, redis = node.process.pid, node.redis_pid
    assert wait_until(lambda: len(children(pid)) == 3)
    workers = [p for p in children(pid) if p != redis]
    os.kill(workers[0], signal.SIGKILL)
    assert node.process.wait(20) == 1
    assert wait_until(lambda: not any(alive(p) for p in [*workers, redis]))


def test_a_generated_admin_secret_is_shown_once(tmp_path: Path, metrics_dir: Path) -> None:
    process = NodeProcess(tmp_path / "data", "--workers", "3", "--secret-hash-cost", "4")
    process.args.remove("--admin-secret")
    process.args.remove("s3cret")
    try:
        process.start()
        with httpx.Client(base_url=process.url) as http:
            assert http.get("/healthz").status_code == 200
    finally:
        process.stop()
    assert process.log.read_text().count("Generated admin secret") == 1


def test_workers_need_a_free_address(tmp_path: Path) -> None:
    taken = NodeProcess(tmp_path / "one").start()
    try:
        second = NodeProcess(tmp_path / "two", "--workers", "2")
        second.args[second.args.index("--port") + 1] = str(taken.port)
        done = subprocess.run(second.args, capture_output=True, text=True, timeout=30)
        assert done.returncode == 2
        assert f"cannot listen on 127.0.0.1:{taken.port}" in done.stderr
    finally:
        taken.stop()


def test_workers_do_not_outlive_a_killed_supervisor(node: NodeProcess) -> None:
    assert node.process is not None
    pid = node.process.pid
    assert wait_until(lambda: len(children(pid)) == 3)
    everyone = children(pid)
    node.kill()  # SIGKILL: the supervisor cannot stop anything itself
    assert wait_until(lambda: not any(alive(p) for p in everyone))


def test_a_top_node_with_workers_reports_its_cache_hit_ratio(tmp_path: Path) -> None:
    # The ratio is computed, not counted, so it has no multiprocess file: /metrics works
    # it out from every worker's resolution counters.
    topology = Topology.demo().on_ports(free_port).with_identifiers(2)
    launcher = Launcher(topology, data_dir=tmp_path, out=io.StringIO(), workers={"top-88": 2})
    try:
        asyncio.run(launcher.start())
        top = launcher.node("top-88").url
        for _ in range(30):  # new connections: several workers answer, hits and misses
            with httpx.Client(base_url=top) as http:
                assert http.get("/api/handles/88.100.1/demo-0001").status_code == 200
        with httpx.Client(base_url=top) as http:
            text = http.get("/metrics").text
    finally:
        launcher.stop()
    counts = resolution_counts(text)
    hits = counts.get("cache_hit", 0.0) + counts.get("negative_hit", 0.0)
    cached = hits + counts.get("cache_miss", 0.0) + counts.get("stale", 0.0)
    assert cached >= 30
    (ratio,) = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("idnode_cache_hit_ratio ")
    ]
    assert 0 < ratio < 1
    assert ratio == pytest.approx(hits / cached)
