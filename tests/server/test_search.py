"""Search across the demo hierarchy over real HTTP: the top node asks its secondary nodes,
which ask their enterprise nodes; nodes that do not answer are named, never fatal."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from node.launcher import Launcher
from tests.server.node_process import demo_hierarchy

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Launcher]:
    async with demo_hierarchy(tmp_path_factory.mktemp("demo")) as launcher:
        yield launcher


async def search(launcher: Launcher, **params: str) -> Any:
    top = launcher.node("top-88").url
    async with httpx.AsyncClient(timeout=15) as http:
        answer = await http.get(f"{top}/api/search", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def statuses(body: Any) -> dict[str, str]:
    return {n["node"]: n["status"] for n in body["nodes"]}


ENTERPRISES = ["88.100.1", "88.100.2", "88.100.3", "88.101.1", "88.101.2", "88.102.1", "88.102.2"]


async def test_the_top_node_searches_every_node_of_the_hierarchy(demo: Launcher) -> None:
    body = await search(demo, URL="*/products/demo-0003")
    assert sorted(body["handles"]) == [f"{p}/demo-0003" for p in ENTERPRISES]
    assert body["complete"] is True and body["unanswered"] == []
    expected = {
        demo.node("top-88").url,
        demo.node("secondary-88.100").url,
        demo.node("secondary-88.101").url,
        demo.node("secondary-88.102").url,
        demo.node("enterprise-88.101.1").url,  # asked by its secondary node
    }
    assert statuses(body) == {url: "ok" for url in expected}

    exact = await search(demo, MANUFACTURER="optics valley photonics", URL="*/demo-*")
    assert sorted(exact["handles"]) == [f"88.101.1/demo-{n:04d}" for n in range(1, 6)]
    scoped = await search(demo, URL="*demo-0001", prefix="88.102")
    assert sorted(scoped["handles"]) == ["88.102.1/demo-0001", "88.102.2/demo-0001"]


CELL = {"items": [{"name": "capacity_ah", "index": 2000, "type": "number", "required": True}]}


async def test_templates_are_found_across_nodes_when_identifiers_are_written(
    demo: Launcher,
) -> None:
    """An industry template kept at secondary node 88.101 checks writes at the enterprise
    node 88.101.1 (asked through its parent) and at secondary node 88.100 (asked through
    the top node, which refers to 88.101)."""
    secondary = demo.node("secondary-88.101").url
    own_node = demo.node("enterprise-88.101.1").url
    automotive = demo.node("secondary-88.100").url
    admin = ("300:0.NA/88.101", "demo-88.101")
    async with httpx.AsyncClient(timeout=15) as http:
        draft = await http.put(f"{secondary}/api/templates/88.101/cell", json=CELL, auth=admin)
        assert draft.status_code == 201, draft.text
        published = await http.post(f"{secondary}/api/templates/88.101/cell/publish", auth=admin)
        assert published.status_code == 200
        for node, prefix in ((own_node, "88.101.1"), (automotive, "88.100.1")):
            auth = (f"300:0.NA/{prefix}", f"demo-{prefix}")
            values = [{"index": 1, "type": "TEMPLATE", "data": "88.101/cell"}]
            good = values + [{"index": 2000, "type": "capacity_ah", "data": "280"}]
            bad = values + [{"index": 2000, "type": "capacity_ah", "data": "big"}]
            ok = await http.put(f"{node}/api/handles/{prefix}/tpl-ok", json=good, auth=auth)
            assert ok.status_code == 201, (node, ok.text)
            refused = await http.put(f"{node}/api/handles/{prefix}/tpl-bad", json=bad, auth=auth)
            assert refused.status_code == 400, (node, refused.text)
            assert refused.json()["errors"][0]["field"] == "capacity_ah"
        # The template is read from its home through any node.
        via_top = await http.get(f"{demo.node('top-88').url}/api/templates/88.101/cell")
        assert via_top.status_code == 400 and via_top.json()["referral"]["url"] == secondary


async def test_nodes_that_are_down_or_stuck_are_named_and_the_rest_answers(
    demo: Launcher,
) -> None:
    stuck = demo.node("secondary-88.102")
    down = demo.node("enterprise-88.101.1")
    os.kill(stuck.process.pid, signal.SIGSTOP)
    try:
        down.process.kill()
        down.process.wait(10)
        started = time.monotonic()
        body = await search(demo, URL="*/products/demo-0002", timeout="1.5")
        took = time.monotonic() - started
    finally:
        os.kill(stuck.process.pid, signal.SIGCONT)
    assert took < 10  # the search gave up on the stuck node instead of waiting for it
    assert sorted(body["handles"]) == [
        f"{p}/demo-0002" for p in ("88.100.1", "88.100.2", "88.100.3", "88.101.2")
    ]
    assert body["complete"] is False
    assert set(body["unanswered"]) == {stuck.url, down.url}
    nodes = statuses(body)
    assert nodes[stuck.url] == "timeout" and nodes[down.url] == "unreachable"
    assert nodes[demo.node("secondary-88.101").url] == "ok"
    timed_out = next(n for n in body["nodes"] if n["node"] == stuck.url)
    assert "88.102" in timed_out["prefixes"] and "did not answer" in timed_out["message"]
