"""``idnode up --cluster 3``: the demo hierarchy with each node on a Redis Cluster of its
own, an enterprise's identifiers spread over every master, and nothing left on stop."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from node.launcher import Launcher
from node.topology import Topology
from tests.server.test_up import _alive, _demo_on_free_ports

pytestmark = pytest.mark.server


async def _keys_on(port: int, pattern: str) -> list[bytes]:
    """The keys matching ``pattern`` that the cluster member on ``port`` holds."""
    member = Redis(host="127.0.0.1", port=port)
    try:
        return [key async for key in member.scan_iter(match=pattern, count=1000)]
    finally:
        await member.aclose()


async def test_each_node_runs_on_a_cluster_that_spreads_a_prefix(tmp_path: Path) -> None:
    topology_file = tmp_path / "demo.toml"
    top_port = _demo_on_free_ports(topology_file)
    launcher = Launcher(
        Topology.load(topology_file), data_dir=tmp_path / "state", cluster=3, out=io.StringIO()
    )
    try:
        await launcher.start()
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"http://127.0.0.1:{top_port}/api/handles/88.100.1/demo-0001")
        assert answer.status_code == 200, answer.text
        values = {v["type"]: v["data"]["value"] for v in answer.json()["values"]}
        assert values["MANUFACTURER"] == "Jianghan Motor Works"

        # Each storing node has a cluster of its own: 3 masters, 3 replicas.
        clusters = launcher.clusters
        assert sorted(clusters) == sorted(node.name for node in launcher.nodes)
        members = [m for cluster in clusters.values() for m in cluster.members]
        assert len(members) == 6 * len(clusters)

        # Enterprise 88.100.1's records (at its secondary node) are on every master.
        secondary = clusters["secondary-88.100"]
        masters = secondary.master_ports()
        assert len(masters) == 3
        held = [await _keys_on(port, "r:{88.100.1/*") for port in masters]
        assert all(held), [len(keys) for keys in held]
    finally:
        pids = [m.pid for c in launcher.clusters.values() for m in c.members if m.pid]
        await asyncio.to_thread(launcher.stop)
    assert pids and not [pid for pid in pids if _alive(pid)]
