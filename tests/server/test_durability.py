"""An acknowledged write survives kill -9 of Redis and a restart of the node."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_AUTH
from tests.server.node_process import NodeProcess

pytestmark = pytest.mark.server


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # A killed child stays a zombie until its parent reaps it: that counts as gone.
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still alive")


def test_acknowledged_put_survives_redis_kill_and_node_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    node = NodeProcess(data).start()
    try:
        values = [{"index": 1, "type": "URL", "data": "https://factory.example/durable"}]
        for i in range(50):
            put = httpx.put(f"{node.url}/api/handles/88.100/D{i}", json=values, headers=ADMIN_AUTH)
            assert put.status_code == 201
        redis_pid = node.redis_pid
        os.kill(redis_pid, signal.SIGKILL)
        _wait_gone(redis_pid)

        # The node's supervisor restarts Redis from its AOF (test_store_supervision
        # covers the outage itself); then the node is killed too.
        deadline = time.monotonic() + 10
        while httpx.get(f"{node.url}/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert httpx.get(f"{node.url}/api/handles/88.100/D0").status_code == 200
        node.kill()
    finally:
        node.stop()

    restarted = NodeProcess(data).start()
    try:
        for i in (0, 49):
            got = httpx.get(f"{restarted.url}/api/handles/88.100/D{i}")
            assert got.status_code == 200
            assert got.json()["values"][0]["data"]["value"] == "https://factory.example/durable"
        listing = httpx.get(
            f"{restarted.url}/api/handles", params={"prefix": "88.100"}, headers=ADMIN_AUTH
        ).json()
        assert listing["totalCount"] == 50
    finally:
        restarted.stop()


def test_node_kill_takes_its_redis_down_and_restart_recovers(tmp_path: Path) -> None:
    """kill -9 of the node leaves no orphan redis-server writing the same AOF."""
    data = tmp_path / "data"
    node = NodeProcess(data).start()
    put = httpx.put(
        f"{node.url}/api/handles/88.100/K",
        json=[{"index": 1, "type": "URL", "data": "k"}],
        headers=ADMIN_AUTH,
    )
    assert put.status_code == 201
    redis_pid = node.redis_pid
    node.kill()
    _wait_gone(redis_pid)
    restarted = NodeProcess(data).start()
    try:
        assert httpx.get(f"{restarted.url}/api/handles/88.100/K").status_code == 200
    finally:
        restarted.stop()
