"""Restart at any size (issue 20), against a real process: a node whose store takes
seconds to load is up at once, says it is loading (with the progress) and refuses every
other request with 503 "loading" meanwhile, then becomes ready by itself and serves what
it held before the restart.

The store is made big by filler keys in database 1 (the node uses database 0 and never
looks at the others), written into the AOF by a rewrite (an RDB preamble), on a server
started like the node's own.

A load longer than the 30 s the node once allowed (it killed Redis then, five times, and
gave up) is made by slowing a small store rather than building a huge one: the node finds
``redis-server`` on PATH first, and the test puts a wrapper there that starts the real
server with Redis's own ``key-load-delay`` (microseconds slept per key loaded), so 34,000
keys take over 30 s to load. Redis answers clients (LOADING, INFO) only between 2 MB
steps of the file it loads, which a real load crosses in milliseconds: the keys hold 4 KB
of random bytes each, so that a slowed step still takes only half a second."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from node.embedded_redis import EmbeddedRedis, redis_server_binary
from tests.conftest import ADMIN_AUTH
from tests.server.node_process import NodeProcess

pytestmark = pytest.mark.server

VALUE = [{"index": 1, "type": "URL", "data": "https://factory.example/before-restart"}]


def _store_holding_one(data: Path, *extra: str) -> None:
    """A store in ``data`` written by a real node: one identifier, ``88.100/kept``."""
    node = NodeProcess(data, *extra).start(timeout=60)
    try:
        put = httpx.put(f"{node.url}/api/handles/88.100/kept", json=VALUE, headers=ADMIN_AUTH)
        assert put.status_code == 201, put.text
    finally:
        node.stop()


def _fill(data_dir: Path, keys: int, random_bytes: int) -> None:
    """Add ``keys`` keys of ``random_bytes`` random (incompressible) bytes in database 1
    of the store in ``data_dir``, in its AOF."""
    server = EmbeddedRedis(data_dir)
    client = redis.Redis.from_url(server.start().replace("/0", "/1"), socket_timeout=120)
    try:
        for first in range(0, keys, 1000):
            with client.pipeline(transaction=False) as pipe:
                for number in range(first, min(first + 1000, keys)):
                    pipe.set(f"filler:{number}", os.urandom(random_bytes))
                pipe.execute()
        client.bgrewriteaof()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = client.info("persistence")
            if not (info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"]):
                break
            time.sleep(0.1)
        assert info["aof_last_bgrewrite_status"] == "ok"
    finally:
        client.close()
        server.stop()


def _not_ready(
    node: NodeProcess, http: httpx.Client, seconds: float, *, pause: float
) -> Iterator[dict[str, object]]:
    """The node's ``/readyz`` bodies until it says ready (``pause`` apart); the test
    fails when the node exits or is not ready within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert node.process is not None and node.process.poll() is None, node.log
        try:
            ready = http.get("/readyz")
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        if ready.status_code == 200:
            return
        yield ready.json()
        time.sleep(pause)
    pytest.fail(f"not ready in {seconds:.0f} s: {node.log.read_text()[-2000:]}")


SLOW_KEYS = 34_000
KEY_LOAD_DELAY_US = 1000  # 34,000 keys x 1 ms: 34 s of loading, past the old 30 s
VALUE_BYTES = 4096  # random: a 2 MB step of the file is 512 keys, half a second


def _slowed_redis_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH starts with a ``redis-server`` that runs the real one
    with ``key-load-delay``: every later load of the store is slowed."""
    wrapper_dir = tmp_path / "slow-bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "redis-server"
    slowed = f"--key-load-delay {KEY_LOAD_DELAY_US}"
    wrapper.write_text(f'#!/bin/sh\nexec "{redis_server_binary()}" "$@" {slowed}\n')
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{wrapper_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_a_load_longer_than_30_s_ends_ready_without_a_redis_restart(tmp_path: Path) -> None:
    """The node is up at once and says it is loading, with the progress, for longer
    than the 30 s it once allowed; it answers health and metrics meanwhile and refuses
    the rest with 503, then is ready by itself, serving what it held before."""
    data = tmp_path / "data"
    _store_holding_one(data)
    # Random values: Redis answers only between steps of the file it loads, and a server
    # silent for 30 s is taken for one that did not start at all.
    _fill(data, SLOW_KEYS, VALUE_BYTES)

    node = NodeProcess(data, env=_slowed_redis_on_path(tmp_path)).start(wait=False)
    started = time.monotonic()
    try:
        seen: list[dict[str, object]] = []
        loading_seen_at: list[float] = []
        refused: httpx.Response | None = None
        with httpx.Client(base_url=node.url, timeout=5) as http:
            for body in _not_ready(node, http, 90, pause=0.5):
                if body["status"] == "loading":
                    loading_seen_at.append(time.monotonic() - started)
                    seen.append(body)
                    if refused is None:
                        assert http.get("/healthz").status_code == 200
                        assert http.get("/metrics").status_code == 200
                        refused = http.get("/api/handles/88.100/kept")
            waited = time.monotonic() - started
            got = http.get("/api/handles/88.100/kept")
        assert got.status_code == 200, got.text
        assert got.json()["values"][0]["data"]["value"] == VALUE[0]["data"]
        # It really loaded for longer than the old limit, saying so all along.
        assert waited > 30, f"the load took only {waited:.1f} s: the delay did not apply"
        assert loading_seen_at and loading_seen_at[-1] > 30, loading_seen_at[-3:]
        first = seen[0]
        assert first["responseCode"] == 2
        assert str(first["message"]).startswith("store loading: ")
        assert 0 <= float(str(first["loadedPercent"])) <= 100
        assert int(str(first["totalBytes"])) > 100_000_000
        assert refused is not None and refused.status_code == 503
        assert refused.json()["responseCode"] == 2
        assert refused.json()["message"].startswith("the node is starting")
        log = node.log.read_text()
        assert '"message":"store loading: ' in log  # `idnode serve` shows the progress
        assert "restarting" not in log, log[-2000:]  # Redis was left to load, not killed
        assert log.count('"message":"node ready"') == 1
    finally:
        node.stop()


def test_a_store_reloading_under_a_running_node_is_told_as_loading(tmp_path: Path) -> None:
    """Redis killed under a serving node: the watcher starts it again, and while it
    reads its data back ``/readyz`` says "loading" with the progress, not "unavailable"."""
    data = tmp_path / "data"
    _store_holding_one(data)
    _fill(data, 4_000, VALUE_BYTES)  # 16 MB: about 4 s to load, slowed

    node = NodeProcess(data, env=_slowed_redis_on_path(tmp_path)).start(timeout=60)
    try:
        os.kill(int((data / "redis.pid").read_text()), signal.SIGKILL)
        seen: list[dict[str, object]] = []
        with httpx.Client(base_url=node.url, timeout=5) as http:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                ready = http.get("/readyz")
                if ready.status_code == 200 and seen:
                    break
                if ready.status_code == 503 and ready.json()["status"] == "loading":
                    seen.append(ready.json())
                time.sleep(0.2)
            else:
                pytest.fail(
                    f"never ready after loading: {seen[-1:]} {node.log.read_text()[-1500:]}"
                )
            assert http.get("/api/handles/88.100/kept").status_code == 200
        last = seen[-1]
        assert last["responseCode"] == 2
        assert str(last["message"]).startswith("store loading: ")
        assert 0 < float(str(last["loadedPercent"])) <= 100
        assert int(str(last["totalBytes"])) > 15_000_000
    finally:
        node.stop()


def test_a_node_of_several_workers_restarts_on_a_loading_store(tmp_path: Path) -> None:
    """With ``--workers``, each worker is given the supervisor's Redis by URL and checked
    it before starting: a Redis answering LOADING is reachable, not a start-up error
    (a 1亿-identifier store's restart failed so: "cannot reach Redis ... loading")."""
    data = tmp_path / "data"
    _store_holding_one(data, "--workers", "2")
    _fill(data, 8_000, VALUE_BYTES)  # about 8 s to load, slowed

    node = NodeProcess(data, "--workers", "2", env=_slowed_redis_on_path(tmp_path))
    node.start(wait=False)
    try:
        with httpx.Client(base_url=node.url, timeout=5) as http:
            statuses = {str(body["status"]) for body in _not_ready(node, http, 60, pause=0.2)}
            assert "loading" in statuses, statuses
            assert http.get("/api/handles/88.100/kept").status_code == 200
    finally:
        node.stop()
