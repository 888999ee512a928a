"""The embedded Redis Cluster (node/embedded_cluster.py) with real processes: created by
redis-cli, keys spread over every master, stopped and started again with its data and
roles, a killed master replaced by its replica with no acknowledged key lost."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from node.embedded_cluster import EmbeddedCluster, cluster_info
from registry.errors import ConfigError

pytestmark = pytest.mark.server

KEYS = [f"key:{n}" for n in range(300)]


def _client(url: str) -> RedisCluster:
    nodes = [ClusterNode(*address.split(":")) for address in url.split("://")[1].split(",")]
    return RedisCluster(startup_nodes=nodes, decode_responses=True, socket_timeout=5)


def _member_size(port: int) -> int:
    """DBSIZE of one member, not of the cluster."""
    with redis.Redis(port=port) as member:
        return int(member.dbsize())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and b"zombie" not in status.read_bytes()


def test_a_created_cluster_spreads_keys_over_every_master_and_comes_back(
    cluster: EmbeddedCluster,
) -> None:
    url = cluster.url
    assert url.startswith("redis+cluster://127.0.0.1:") and url.count(",") == 2
    client = _client(url)
    try:
        for key in KEYS:
            client.set(key, key.upper())
        roles = [cluster.role(member.port or 0) for member in cluster.members]
        assert roles == ["master"] * 3 + ["slave"] * 3
        held = [_member_size(member.port or 0) for member in cluster.members[:3]]
        assert all(n > 0 for n in held) and sum(held) == len(KEYS), held
    finally:
        client.close()

    pids = [member.pid for member in cluster.members]
    cluster.stop()
    assert not any(pid is not None and _alive(pid) for pid in pids)

    assert cluster.start() == url  # same ports, same cluster, same data
    client = _client(url)
    try:
        assert [client.get(key) for key in KEYS] == [key.upper() for key in KEYS]
    finally:
        client.close()


def test_a_killed_master_is_replaced_by_its_replica_with_every_key(
    cluster: EmbeddedCluster,
) -> None:
    client = _client(cluster.url)
    try:
        for key in KEYS:
            client.set(key, key.upper())
        victim = cluster.members[0]
        assert victim.port is not None and victim.pid is not None
        _wait_replicated(victim.port)
        os.kill(victim.pid, signal.SIGKILL)

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            survivors = [m.port for m in cluster.members[1:] if m.port is not None]
            masters = [p for p in survivors if cluster.role(p) == "master"]
            infos = [cluster_info(cluster.command(p, "CLUSTER", "INFO")) for p in survivors]
            if len(masters) == 3 and all(i.get("cluster_state") == "ok" for i in infos):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no replica took over in 30 s: masters {masters}")
        assert [client.get(key) for key in KEYS] == [key.upper() for key in KEYS]
        client.set("after", "failover")
        assert client.get("after") == "failover"
    finally:
        client.close()


def _wait_replicated(port: int) -> None:
    """Until the replica of the master at ``port`` has everything it was sent."""
    master = redis.Redis(port=port, decode_responses=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            info = master.info("replication")
            replica = info.get("slave0")
            if isinstance(replica, dict) and int(replica["offset"]) == int(
                info["master_repl_offset"]
            ):
                return
            time.sleep(0.05)
        pytest.fail(f"the replica of {port} did not catch up: {info}")
    finally:
        master.close()


def test_a_cluster_of_another_shape_in_the_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "cluster.json").write_text('{"ports": [1, 2, 3], "masters": 3}')
    with pytest.raises(ConfigError, match="not 4 and 8"):
        EmbeddedCluster(tmp_path / "cluster", masters=4).start()
    with pytest.raises(ConfigError, match="at least 3 masters"):
        EmbeddedCluster(tmp_path / "other", masters=2)
