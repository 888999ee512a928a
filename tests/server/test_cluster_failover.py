"""A secondary node (a real ``idnode serve``) on a real 3-master, 3-replica Redis
Cluster: its prefix's identifiers land on every master; a master SIGKILLed in the middle
of a batch load is replaced by its replica, the load finishes (a batch refused meanwhile
is sent again, as a client does with a 503), and every acknowledged identifier resolves
afterwards. Writes wait for a replica (the node's default where every master has
one): from the failover until the killed master is back (restarted, as a machine is)
as its successor's replica, the writes to its slots are refused (503) and sent again."""

from __future__ import annotations

import os
import signal
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
BATCHES, PER_BATCH = 30, 50
KILL_AFTER = 10  # batches acknowledged before a master is killed
RETRY_FOR = 30.0  # seconds a refused batch is sent again for (a failover takes ~3-6 s)


def _value(name: str) -> list[dict[str, object]]:
    return [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": f"https://e.cn/{name}"}}
    ]


def _kill_a_master(cluster: EmbeddedCluster, done: threading.Event) -> int:
    """SIGKILL the first member that is a master, and start it again once its replica
    has taken its place (from a thread: the load goes on meanwhile; the thread lives
    until ``done``, as Linux stops a server whose forking thread ends); its port."""
    master = next(m for m in cluster.members if cluster.role(m.port or 0) == "master")
    assert master.pid is not None and master.port is not None
    os.kill(master.pid, signal.SIGKILL)
    port = master.port

    def bring_back() -> None:
        deadline = time.monotonic() + RETRY_FOR
        while time.monotonic() < deadline:
            masters = cluster.master_ports()
            if port not in masters and len(masters) == 3:
                break
            time.sleep(0.2)
        master.start()
        done.wait()

    threading.Thread(target=bring_back, daemon=True).start()
    return port


def test_a_master_killed_mid_load_loses_no_acknowledged_identifier(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    node = NodeProcess(tmp_path / "node", "--redis-url", cluster.url, secret=SECRET).start()
    acknowledged: dict[str, str] = {}
    refused = 0
    killed: int | None = None
    done = threading.Event()
    try:
        with httpx.Client(base_url=node.url, timeout=30) as http:
            for number in range(BATCHES):
                names = [f"88.100/lot-{number:03d}-{i:03d}" for i in range(PER_BATCH)]
                items = [{"handle": h, "values": _value(h)} for h in names]
                deadline = time.monotonic() + RETRY_FOR
                while True:
                    # overwrite=true: a batch sent again after a refusal writes the same.
                    answer = http.post(
                        "/api/batch/handles?overwrite=true", json={"handles": items}, headers=AUTH
                    )
                    if answer.status_code == 200 or time.monotonic() > deadline:
                        break
                    assert answer.status_code == 503, answer.text  # the documented refusal
                    refused += 1
                    time.sleep(0.5)
                assert answer.status_code == 200, answer.text
                for result in answer.json()["results"]:
                    if result["status"] in (200, 201):
                        acknowledged[result["handle"]] = f"https://e.cn/{result['handle']}"
                if number + 1 == KILL_AFTER:
                    killed = _kill_a_master(cluster, done)

            assert killed is not None
            # Every identifier of every batch was acknowledged in the end...
            assert len(acknowledged) == BATCHES * PER_BATCH
            # ...and resolves, with its value, from the cluster as it is now.
            for handle, url in acknowledged.items():
                answer = http.get(f"/api/handles/{handle}")
                assert answer.status_code == 200, (handle, answer.text)
                assert answer.json()["values"][0]["data"]["value"] == url
    finally:
        node.stop()
        done.set()
    print(f"batches refused during the failover, then sent again: {refused}")
    # The replica of the killed master took its slots: three masters again, and the
    # prefix's records are on each of them (the prefix is spread over 16 hash tags).
    masters = cluster.master_ports()
    assert killed not in masters and len(masters) == 3
    assert all(records_on(port) for port in masters)
