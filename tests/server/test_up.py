"""``idnode up`` as a user runs it: the demo hierarchy, a curl, Ctrl-C, nothing left."""

from __future__ import annotations

import asyncio
import io
import re
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import httpx
import pytest

from node.embedded_redis import free_port
from node.launcher import Launcher
from node.topology import Topology

pytestmark = pytest.mark.server


def _demo_on_free_ports(path: Path) -> int:
    """The shipped demo topology with every port moved to a free one; returns the top's."""
    text = resources.files("node").joinpath("demo_topology.toml").read_text("utf-8")
    ports: list[int] = []

    def move(match: re.Match[str]) -> str:
        ports.append(free_port())
        return f"{match.group(1)}{ports[-1]}"

    path.write_text(re.sub(r"^(\s*port = )\d+", move, text, flags=re.M))
    return ports[0]


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text().split()
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_idnode_up_starts_the_demo_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    topology = tmp_path / "demo.toml"
    top_port = _demo_on_free_ports(topology)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "node", "up", "--topology", str(topology)]
        + ["--log-dir", str(tmp_path / "logs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        output = []
        deadline = time.monotonic() + 120
        for line in launcher.stdout:
            output.append(line)
            if "Press Ctrl-C" in line or time.monotonic() > deadline:
                break
        table = "".join(output)
        assert "Press Ctrl-C" in table, table
        for expected in ("300:0.NA/88.100.1", "demo-88.100.1", "enterprise-88.101.1"):
            assert expected in table

        answer = httpx.get(f"http://127.0.0.1:{top_port}/api/handles/88.100.1/demo-0001")
        assert answer.status_code == 200
        values = {v["type"]: v["data"]["value"] for v in answer.json()["values"]}
        assert values["MANUFACTURER"] == "Jianghan Motor Works"
        assert values["PRODUCTION_DATE"] == "2026-01-05"
        own_node = httpx.get(f"http://127.0.0.1:{top_port}/api/handles/88.101.1/demo-0100")
        assert own_node.status_code == 200

        started = _descendants(launcher.pid)
        assert len(started) >= 6  # five nodes and their Redis
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(30) == 0
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        if launcher.stdout is not None:
            launcher.stdout.close()
    assert not [pid for pid in started if _alive(pid)]


async def test_a_data_dir_keeps_the_hierarchy_across_runs(tmp_path: Path) -> None:
    """Random secrets in the first run; the second run finds the approved enterprises,
    gives them this run's secrets, and the first run's identifiers are still there."""
    topology_file = tmp_path / "demo.toml"
    top_port = _demo_on_free_ports(topology_file)
    topology = Topology.load(topology_file)
    data = tmp_path / "state"
    top = f"http://127.0.0.1:{top_port}"

    first = Launcher(topology, data_dir=data, random_secrets=True, out=io.StringIO())
    try:
        await first.start()
        assert not any(i.secret.startswith("demo-") for i in first.identities)
        ident = next(i for i in first.identities if i.prefix == "88.100.2")
        secondary = first.node("secondary-88.100").url
        async with httpx.AsyncClient() as http:
            put = await http.put(
                f"{secondary}/api/handles/88.100.2/kept",
                json=[{"index": 1, "type": "URL", "data": "https://example.cn/kept"}],
                auth=(ident.text, ident.secret),
            )
            assert put.status_code == 201
    finally:
        await asyncio.to_thread(first.stop)

    second = Launcher(topology, data_dir=data, out=io.StringIO())
    try:
        await second.start()
        prefixes = sorted(i.prefix for i in second.identities if i.prefix.count(".") == 2)
        assert prefixes == [
            "88.100.1",
            "88.100.2",
            "88.100.3",
            "88.101.1",
            "88.101.2",
            "88.102.1",
            "88.102.2",
        ]  # same prefixes: nothing was approved twice
        async with httpx.AsyncClient() as http:
            kept = await http.get(f"{top}/api/handles/88.100.2/kept")
            assert kept.status_code == 200
            listing = (await http.get(f"{top}/api/prefixes")).json()
            assert listing["totalCount"] == 1 + 3 + 7  # top, secondaries, enterprises
            demo = await http.put(
                f"{second.node('secondary-88.100').url}/api/handles/88.100.2/again",
                json=[{"index": 1, "type": "URL", "data": "https://example.cn/again"}],
                auth=("300:0.NA/88.100.2", "demo-88.100.2"),
            )
            assert demo.status_code == 201
    finally:
        await asyncio.to_thread(second.stop)
