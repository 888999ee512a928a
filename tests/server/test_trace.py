"""The demo's traced car over a real hierarchy: every node its own process, started by the
``idnode up`` launcher from the shipped demo topology (on free ports).

The car (88.100.1) has a battery pack from another enterprise (88.100.2) whose cells
come from a third enterprise (88.101.1) under another secondary node, running its own
enterprise node. The tests run in file order; the last ones kill that node.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from node.embedded_redis import free_port
from node.launcher import Launcher
from node.topology import Topology

pytestmark = pytest.mark.server

CAR = "88.100.1/JM-E5-2026-000123"
UNIT = "88.100.1/LU-2026-0042"
PACK = "88.100.2/HB75-2026-000123"
SEAT = "88.100.3/DSA-2026-004417"
CELLS = [f"88.101.1/LFP280-2026-00045{n}" for n in (1, 2, 3)]
# The top node keeps an answer fresh this long and may serve it stale this much longer:
# short, so that the test sees the top node's cached cells run out.
MAX_TTL = 1.0
MAX_STALE = 4.0


@pytest.fixture(scope="module")
async def launcher(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Launcher]:
    started = Launcher(
        Topology.demo().on_ports(free_port).with_identifiers(5),
        data_dir=tmp_path_factory.mktemp("trace"),
        out=io.StringIO(),
        node_env={
            "IDNODE_CACHE_MAX_TTL": str(MAX_TTL),
            "IDNODE_MAX_STALE": str(MAX_STALE),
            "IDNODE_UPSTREAM_TIMEOUT": "2",
        },
    )
    try:
        await started.start()
        yield started
    finally:
        await asyncio.to_thread(started.stop)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as client:
        yield client


async def trace(http: httpx.AsyncClient, node_url: str, handle: str = CAR) -> dict[str, Any]:
    answer = await http.get(f"{node_url}/api/trace/{handle}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def links(node: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """A node's links by target handle: (relation, target node)."""
    return {link["target"]["handle"]: (link["relation"], link["target"]) for link in node["links"]}


def test_idnode_up_names_the_traced_car(launcher: Launcher) -> None:
    out = io.StringIO()
    launcher.out = out
    launcher.print_table()
    top = launcher.node("top-88").url
    assert f"curl {top}/api/trace/{CAR}" in out.getvalue()
    assert "JM-E5 electric sedan" in out.getvalue()


async def test_the_car_traced_from_the_top_node_spans_two_secondary_nodes(
    launcher: Launcher, http: httpx.AsyncClient
) -> None:
    s100 = launcher.node("secondary-88.100").url
    cell_node = launcher.node("enterprise-88.101.1").url
    body = await trace(http, launcher.node("top-88").url)
    assert body["handle"] == CAR and body["complete"] is True
    assert body["unreachable"] == [] and body["notFollowed"] == []
    assert body["resolved"] == 4 + len(CELLS)  # car, unit, pack, seat and the cells

    car = body["tree"]
    assert (car["status"], car["resolvedBy"]) == ("found", s100)
    assert {"type": "VIN", "value": "LJHE5A2B7TA000123", "index": 3} in car["values"]
    level1 = links(car)
    assert {h: relation for h, (relation, _) in level1.items()} == {
        PACK: "COMPONENT",
        SEAT: "COMPONENT",
        UNIT: "SHIPPED_IN",
    }
    for _, part in level1.values():
        assert (part["status"], part["resolvedBy"]) == ("found", s100)
        assert part["cache"] in ("MISS", "HIT")

    pack = level1[PACK][1]
    level2 = links(pack)
    assert level2[CAR][0] == "COMPONENT_OF" and level2[CAR][1]["status"] == "seen"
    for cell in CELLS:
        relation, node = level2[cell]
        assert relation == "MADE_FROM"
        # 88.101.1 runs its own node: the top node walked 88 -> 88.101 -> 88.101.1.
        assert (node["status"], node["resolvedBy"]) == ("found", cell_node)
        assert {"index": 5, "type": "MANUFACTURER", "value": "Optics Valley Photonics"} in node[
            "values"
        ]
        # level 3: the cell's back-link to the pack, not resolved again
        assert [(link["relation"], link["target"]["status"]) for link in node["links"]] == [
            ("COMPONENT_OF", "seen")
        ]


async def test_with_the_cells_node_down_the_rest_of_the_tree_is_returned(
    launcher: Launcher, http: httpx.AsyncClient
) -> None:
    top = launcher.node("top-88").url
    s101 = launcher.node("secondary-88.101").url
    dead = launcher.node("enterprise-88.101.1")
    dead.process.kill()
    dead.process.wait(10)

    # The top node answers from its cache what it fetched a moment ago: fresh (HIT) or,
    # past its TTL with the cells' node down, stale. Both are right: nothing is missing.
    cached = await trace(http, top)
    for cell in CELLS:
        node = links(links(cached["tree"])[PACK][1])[cell][1]
        assert node["status"] == "found" and node["cache"] in ("HIT", "STALE")
        assert node["resolvedBy"] == dead.url

    # The secondary node 88.101 refers the cells straight to their (dead) node; the car,
    # the pack and the rest come through the top node.
    body = await trace(http, s101)
    assert body["complete"] is False
    assert body["unreachable"] == CELLS
    car = body["tree"]
    assert car["status"] == "found" and car["resolvedBy"] == launcher.node("secondary-88.100").url
    pack = links(car)[PACK][1]
    assert pack["status"] == "found"
    for cell in CELLS:
        node = links(pack)[cell][1]
        assert node["status"] == "unreachable"
        assert f"node {dead.url} is unreachable" in node["message"]
    assert links(car)[SEAT][1]["status"] == "found"


async def test_once_the_stale_window_ends_the_top_node_marks_the_cells_unreachable(
    launcher: Launcher, http: httpx.AsyncClient
) -> None:
    top = launcher.node("top-88").url
    dead = launcher.node("enterprise-88.101.1").url
    deadline = time.monotonic() + MAX_TTL + MAX_STALE + 10
    # Each cell was cached by its own fetch, so their stale windows end one after the
    # other (milliseconds apart, more on a busy machine): wait for the last.
    while True:
        body = await trace(http, top)
        if len(body["unreachable"]) == len(CELLS) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    assert body["unreachable"] == CELLS, body
    assert body["complete"] is False
    pack = links(body["tree"])[PACK][1]
    assert pack["status"] == "found"
    for cell in CELLS:
        node = links(pack)[cell][1]
        assert node["status"] == "unreachable" and dead in node["message"]
    # Everything else is still answered (re-fetched from the live secondary node).
    assert [n["status"] for _, n in links(body["tree"]).values()] == ["found"] * 3
