"""The embedded redis-server: real process, AOF always, clean stop, stale servers stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from node.embedded_redis import EmbeddedRedis, redis_server_binary
from node.startup import LoadingProgress


def test_binary_is_found() -> None:
    assert Path(redis_server_binary()).exists()


def test_start_persists_with_aof_always_and_stops(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    url = server.start()
    try:
        client = redis.Redis.from_url(url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        # Sized for large stores (node.embedded_redis's docstring says why).
        assert client.config_get("aof-use-rdb-preamble") == {"aof-use-rdb-preamble": "yes"}
        assert client.config_get("auto-aof-rewrite-percentage") == {
            "auto-aof-rewrite-percentage": "100"
        }
        assert client.config_get("auto-aof-rewrite-min-size") == {
            "auto-aof-rewrite-min-size": str(256 * 1024 * 1024)
        }
        assert client.config_get("aof-load-truncated") == {"aof-load-truncated": "yes"}
        assert not server.loading().loading  # an empty store loads at once
        client.set("k", "v")
        client.close()
    finally:
        server.stop()
    assert not server.pid_file.exists()
    assert any(p.name.startswith("appendonly.aof") for p in (tmp_path / "data").iterdir())

    again = EmbeddedRedis(tmp_path / "data")
    client = redis.Redis.from_url(again.start())
    try:
        assert client.get("k") == b"v"
    finally:
        client.close()
        again.stop()


def test_a_stale_server_on_the_same_data_is_stopped_first(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path / "data")
    first.start()
    stale_pid = first.pid
    assert stale_pid is not None
    second = EmbeddedRedis(tmp_path / "data")  # as after a crashed node left `first` running
    second.start()
    try:
        assert first._process is not None and first._process.wait(10) is not None
        assert second.pid != stale_pid
    finally:
        second.stop()
        first.stop()


def test_stopped_server_has_no_url(tmp_path: Path) -> None:
    from registry.errors import StoreUnavailable

    server = EmbeddedRedis(tmp_path / "data")
    with pytest.raises(StoreUnavailable):
        _ = server.url


def test_a_supervised_server_is_restarted_on_its_port_with_its_data(tmp_path: Path) -> None:
    import os
    import signal
    import time

    server = EmbeddedRedis(tmp_path / "data")
    url = server.start()
    server.supervise()
    try:
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        first = server.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while server.pid == first or server.restarts == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert server.url == url
        assert client.get("k") == b"v"  # reloaded from the AOF, same URL
        client.close()
    finally:
        server.stop()
    assert server._watcher is None


def test_a_stopped_server_is_not_loading(tmp_path: Path) -> None:
    assert EmbeddedRedis(tmp_path / "data").loading() == LoadingProgress(loading=False)
