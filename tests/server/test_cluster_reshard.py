"""Slots move under a running node: a secondary node (a real ``idnode serve``) on a
3-master Redis Cluster resolves and registers while ``redis-cli --cluster reshard``
moves a third of one master's slots to another, then while a machine is added (a new
master and its replica, the slots rebalanced onto it). Clients see no error beyond the
documented 503 (the store busy, sent again); every acknowledged identifier resolves."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from node.embedded_cluster import EmbeddedCluster
from tests.conftest import basic
from tests.server.conftest import records_on
from tests.server.node_process import NodeProcess

pytestmark = pytest.mark.server

SECRET = "s3cret"
AUTH = basic("300:0.NA/88.100", SECRET)
PER_BATCH = 20
LOAD_FOR = 60.0  # seconds at most the load runs (it stops when the moves are done)


def _items(names: list[str]) -> list[dict[str, object]]:
    return [
        {"handle": name, "values": [{"index": 1, "type": "URL", "data": f"https://e.cn/{name}"}]}
        for name in names
    ]


class Load:
    """Registrations (batches) and resolutions in a loop on a thread of its own, until
    stopped or :data:`LOAD_FOR` runs out; what each answer was, counted by status."""

    def __init__(self, url: str, registered: list[str]) -> None:
        self.url = url
        self.acknowledged = list(registered)
        self.statuses: dict[int, int] = {}
        self.unexpected: list[str] = []
        self.refusals: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(LOAD_FOR + 30)

    def _run(self) -> None:
        deadline = time.monotonic() + LOAD_FOR
        pick = random.Random(7)
        batch = 0
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set() and time.monotonic() < deadline:
                batch += 1
                names = [f"88.100/moving-{batch:04d}-{i:02d}" for i in range(PER_BATCH)]
                answer = http.post(
                    "/api/batch/handles?overwrite=true",
                    json={"handles": _items(names)},
                    headers=AUTH,
                )
                self._count(answer)
                if answer.status_code == 200:
                    done = answer.json()["results"]
                    self.acknowledged += [r["handle"] for r in done if r["status"] in (200, 201)]
                for handle in pick.sample(self.acknowledged, 10):
                    self._count(http.get(f"/api/handles/{handle}"))

    def _count(self, answer: httpx.Response) -> None:
        self.statuses[answer.status_code] = self.statuses.get(answer.status_code, 0) + 1
        said = f"{answer.request.method} {answer.request.url.path}: {answer.text}"
        if answer.status_code == 503:  # the documented "store busy": sent again
            self.refusals.append(said)
        elif answer.status_code != 200:
            self.unexpected.append(said)


def test_slots_move_and_a_machine_is_added_while_the_node_serves(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    node = NodeProcess(tmp_path / "node", "--redis-url", cluster.url, secret=SECRET).start()
    try:
        first = [f"88.100/before-{i:04d}" for i in range(400)]
        with httpx.Client(base_url=node.url, timeout=30) as http:
            answer = http.post("/api/batch/handles", json={"handles": _items(first)}, headers=AUTH)
            assert answer.status_code == 200 and answer.json()["created"] == len(first)

        source, target, _ = cluster.master_ports()
        with Load(node.url, first) as load:
            cluster.reshard(source, target, 16384 // 3 // 3)
            added = cluster.add_master()
        print(f"answers during the moves, by status: {load.statuses}")
        print("\n".join(sorted(set(r[:300] for r in load.refusals))))
        assert not load.unexpected, load.unexpected[:5]
        assert load.statuses.get(200, 0) > 100  # the load did run meanwhile

        # Four masters now; the new one holds its share of the prefix's records.
        masters = cluster.master_ports()
        assert len(masters) == 4 and added in masters
        assert all(records_on(port) for port in masters)
        with httpx.Client(base_url=node.url, timeout=30) as http:
            for handle in load.acknowledged:
                answer = http.get(f"/api/handles/{handle}")
                assert answer.status_code == 200, (handle, answer.text)
                assert answer.json()["values"][0]["data"]["value"] == f"https://e.cn/{handle}"
    finally:
        node.stop()
