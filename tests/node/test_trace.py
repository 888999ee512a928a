"""GET /api/trace in process, on the session's real Redis; other nodes are real HTTP
servers at the wire (tests.resolver.conftest.FakeNode)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from resolver.trace import MAX_DEPTH
from tests.conftest import ADMIN_AUTH, ADMIN_SECRET, StoreServer, basic, node_config, served
from tests.resolver.conftest import FakeNode
from tests.resolver.hostile import HostileNode

HERE = node_config("redis://unused").public_url  # how the node names itself


def link(index: int, relation: str, target: str) -> dict[str, Any]:
    return {"index": index, "type": relation, "data": target}


async def register(
    client: httpx.AsyncClient,
    handle: str,
    *values: dict[str, Any],
    auth: dict[str, str] = ADMIN_AUTH,
) -> None:
    name = {"index": 1, "type": "PRODUCT_NAME", "data": handle.rpartition("/")[2]}
    answer = await client.put(
        f"/api/handles/{handle}", json={"values": [name, *values]}, headers=auth
    )
    assert answer.status_code == 201, answer.text


def target(node: dict[str, Any], *path: int) -> dict[str, Any]:
    for position in path:
        node = node["links"][position]["target"]
    return node


# --- a trace at one node ----------------------------------------------------------------


@pytest.fixture
async def product(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A car, its pack and a cell at the secondary node 88.100, linked both ways."""
    await register(
        client,
        "88.100/car",
        link(10, "COMPONENT", "88.100/pack"),
        link(11, "component", "not a handle"),
        link(12, "SHIPPED_IN", "88.100/ghost"),
    )
    await register(
        client,
        "88.100/pack",
        link(10, "MADE_FROM", "88.100/cell"),
        link(20, "COMPONENT_OF", "88.100/CAR"),
    )
    await register(client, "88.100/cell", link(20, "COMPONENT_OF", "88.100/pack"))
    return client


async def test_a_trace_at_the_node_holding_every_part(product: httpx.AsyncClient) -> None:
    answer = await product.get("/api/trace/88.100/car")
    assert answer.status_code == 200
    body = answer.json()
    assert body["responseCode"] == 1 and body["handle"] == "88.100/car"
    assert body["depth"] == 5 and body["complete"] is True
    assert body["resolved"] == 4  # car, pack, cell and the missing ghost
    tree = body["tree"]
    assert (tree["status"], tree["resolvedBy"], tree["cache"]) == ("found", HERE, None)
    assert tree["values"] == [{"index": 1, "type": "PRODUCT_NAME", "value": "car"}]  # no admin
    pack, invalid, ghost = (link["target"] for link in tree["links"])
    assert [link["relation"] for link in tree["links"]] == ["COMPONENT", "COMPONENT", "SHIPPED_IN"]
    assert pack["status"] == "found" and pack["resolvedBy"] == HERE
    assert invalid["status"] == "invalid" and "expected prefix/suffix" in invalid["message"]
    assert ghost == {
        "handle": "88.100/ghost",
        "status": "not_found",
        "resolvedBy": HERE,
        "cache": None,
        "message": "Handle 88.100/ghost not found",
    }
    cell = target(pack, 0)
    assert cell["status"] == "found"
    assert target(cell, 0)["status"] == "seen"  # cell -> pack
    assert target(pack, 1) == {
        "handle": "88.100/CAR",
        "status": "seen",
        "message": "already in this trace (a cycle or a shared part): not resolved again",
    }


async def test_depth_and_relations_narrow_the_trace(product: httpx.AsyncClient) -> None:
    shallow = (await product.get("/api/trace/88.100/car?depth=1")).json()
    assert shallow["complete"] is False and shallow["notFollowed"] == ["88.100/cell"]
    pack = target(shallow["tree"], 0)
    assert pack["truncated"] is True and target(pack, 0)["status"] == "not_followed"

    down = await product.get("/api/trace/88.100/car?relations=made_from,COMPONENT")
    assert down.json()["relations"] == ["COMPONENT", "MADE_FROM"]
    assert [link["relation"] for link in down.json()["tree"]["links"]] == ["COMPONENT"] * 2
    repeated = await product.get(
        "/api/trace/88.100/cell", params=[("relations", "COMPONENT_OF"), ("relations", "")]
    )
    assert target(repeated.json()["tree"], 0, 0)["handle"] == "88.100/CAR"


async def test_the_root_is_found_in_any_case_and_keeps_the_callers_spelling(
    product: httpx.AsyncClient,
) -> None:
    body = (await product.get("/api/trace/88.100/CELL?depth=0")).json()
    assert body["handle"] == body["tree"]["handle"] == "88.100/CELL"
    assert body["tree"]["truncated"] is True


# --- errors -----------------------------------------------------------------------------


async def test_a_missing_root_is_404_like_a_resolution(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/trace/88.100/nothing")
    assert answer.status_code == 404
    assert answer.json() == {
        "responseCode": 100,
        "handle": "88.100/nothing",
        "message": "Handle 88.100/nothing not found",
    }


@pytest.mark.parametrize("path", ["/api/trace/no-slash", "/api/trace/88..x/a", "/api/trace/88.1/"])
async def test_a_malformed_root_is_400_102(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 400 and answer.json()["responseCode"] == 102


@pytest.mark.parametrize(
    "query", ["depth=11", "depth=-1", "depth=ten", "relations=PART_OF", "relations=COMPONENT,x"]
)
async def test_a_bad_depth_or_relation_is_400_202(client: httpx.AsyncClient, query: str) -> None:
    await register(client, "88.100/car")
    answer = await client.get(f"/api/trace/88.100/car?{query}")
    assert answer.status_code == 400
    assert answer.json()["responseCode"] == 202


async def test_the_deepest_trace_allowed_is_accepted(client: httpx.AsyncClient) -> None:
    await register(client, "88.100/car")
    answer = await client.get(f"/api/trace/88.100/car?depth={MAX_DEPTH}")
    assert answer.status_code == 200 and answer.json()["depth"] == MAX_DEPTH


async def test_a_root_under_a_prefix_not_held_is_referred_like_a_resolution(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/api/trace/88.102/x")
    assert answer.status_code == 400
    assert answer.json()["responseCode"] == 301


async def test_a_link_no_node_can_be_asked_about_is_unreachable(client: httpx.AsyncClient) -> None:
    # A standalone secondary node (no parent) knows nobody to ask about 88.102.
    await register(client, "88.100/car", link(10, "COMPONENT", "88.102/pack"))
    body = (await client.get("/api/trace/88.100/car")).json()
    assert target(body["tree"], 0) == {
        "handle": "88.102/pack",
        "status": "unreachable",
        "message": "Prefix 88.102 doesn't live here",
    }
    assert body["unreachable"] == ["88.102/pack"] and body["complete"] is False


# --- across nodes: an enterprise node refers what it does not hold to its parent ---------


@pytest.fixture
async def parent() -> AsyncIterator[FakeNode]:
    """The enterprise node's parent: another node at the wire, answering as a test sets."""
    fake = await FakeNode().start()
    try:
        yield fake
    finally:
        await fake.stop()


def below(redis_server: StoreServer, parent_url: str, **settings: str) -> Any:
    """An enterprise node for 88.100.1 whose parent is at ``parent_url``, served."""
    config = node_config(
        redis_server.url,
        "88.100.1",
        role="enterprise",
        parent_url=parent_url,
        upstream_timeout="0.5",
        **settings,
    )
    return served(config)


@pytest.fixture
async def enterprise(
    redis: Redis, redis_server: StoreServer, parent: FakeNode
) -> AsyncIterator[httpx.AsyncClient]:
    async with below(redis_server, parent.url) as http:
        yield http


ENTERPRISE_AUTH = basic("300:0.NA/88.100.1", ADMIN_SECRET)


async def register_car(client: httpx.AsyncClient, *targets: str) -> None:
    values = [link(10 + i, "COMPONENT", t) for i, t in enumerate(targets)]
    answer = await client.put(
        "/api/handles/88.100.1/car", json={"values": values}, headers=ENTERPRISE_AUTH
    )
    assert answer.status_code == 201, answer.text


async def test_a_part_at_another_node_is_fetched_where_the_referral_points(
    enterprise: httpx.AsyncClient, parent: FakeNode
) -> None:
    await register_car(enterprise, "88.100.2/pack")
    body = (await enterprise.get("/api/trace/88.100.1/car")).json()
    pack = target(body["tree"], 0)
    assert (pack["status"], pack["resolvedBy"], pack["cache"]) == ("found", parent.url, None)
    assert pack["values"] == [{"index": 1, "type": "URL", "value": "https://example.com/1"}]
    assert parent.handle_requests == ["88.100.2/pack"]
    assert body["tree"]["resolvedBy"] == HERE  # its own store


async def test_referrals_are_followed_to_the_node_that_answers(
    enterprise: httpx.AsyncClient, parent: FakeNode
) -> None:
    other = await FakeNode().start()
    try:
        parent.mode, parent.referral = "refer", other.url
        await register_car(enterprise, "88.101.1/cell")
        cell = target((await enterprise.get("/api/trace/88.100.1/car")).json()["tree"], 0)
        assert (cell["status"], cell["resolvedBy"]) == ("found", other.url)
        assert parent.handle_requests == other.handle_requests == ["88.101.1/cell"]
    finally:
        await other.stop()


async def test_a_part_its_node_does_not_have_is_not_found_there(
    enterprise: httpx.AsyncClient, parent: FakeNode
) -> None:
    parent.mode = "missing"
    await register_car(enterprise, "88.100.2/pack")
    body = (await enterprise.get("/api/trace/88.100.1/car")).json()
    pack = target(body["tree"], 0)
    assert (pack["status"], pack["resolvedBy"]) == ("not_found", parent.url)
    assert body["complete"] is True


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("fail", "answered HTTP 500 unexpectedly (responseCode 2)"),
        ("slow", "did not answer within 0.5s"),
    ],
)
async def test_a_failing_node_marks_its_branch_unreachable(
    enterprise: httpx.AsyncClient, parent: FakeNode, mode: str, says: str
) -> None:
    await register(enterprise, "88.100.1/seat", auth=ENTERPRISE_AUTH)  # held here
    await register_car(enterprise, "88.100.2/pack", "88.100.1/seat")
    if mode == "slow":
        parent.delay = 1.0
    else:
        parent.mode = mode
    answer = await enterprise.get("/api/trace/88.100.1/car")
    assert answer.status_code == 200
    body = answer.json()
    pack, seat = target(body["tree"], 0), target(body["tree"], 1)
    assert pack["status"] == "unreachable" and parent.url in pack["message"]
    assert says in pack["message"]
    assert seat["status"] == "found"
    assert body["unreachable"] == ["88.100.2/pack"] and body["complete"] is False


async def test_a_stopped_node_marks_its_branch_unreachable(
    enterprise: httpx.AsyncClient, parent: FakeNode
) -> None:
    await register_car(enterprise, "88.100.2/pack")
    await parent.stop()
    pack = target((await enterprise.get("/api/trace/88.100.1/car")).json()["tree"], 0)
    assert pack["status"] == "unreachable"
    assert f"node {parent.url} is unreachable" in pack["message"]


async def test_a_root_at_a_failing_node_fails_the_trace_like_a_resolution(
    enterprise: httpx.AsyncClient, parent: FakeNode
) -> None:
    parent.mode = "fail"
    answer = await enterprise.get("/api/trace/88.100.2/pack")
    assert answer.status_code == 502 and answer.json()["responseCode"] == 2
    parent.mode = "missing"
    missing = await enterprise.get("/api/trace/88.100.2/pack")
    assert missing.status_code == 404 and missing.json()["responseCode"] == 100


async def test_a_level_is_resolved_concurrently(
    enterprise: httpx.AsyncClient, parent: FakeNode
) -> None:
    parts = [f"88.100.2/part-{i}" for i in range(20)]
    await register_car(enterprise, *parts)
    parent.delay = 0.2
    started = time.monotonic()
    body = (await enterprise.get("/api/trace/88.100.1/car")).json()
    took = time.monotonic() - started
    assert [link["target"]["status"] for link in body["tree"]["links"]] == ["found"] * 20
    assert sorted(parent.handle_requests) == sorted(parts)
    # 20 parts at most 16 at a time: two rounds of 0.2 s, not twenty.
    assert 0.4 <= took < 2.0


# --- the top node -----------------------------------------------------------------------


async def test_a_top_node_marks_a_prefix_outside_its_own_unreachable(
    redis: Redis, redis_server: StoreServer
) -> None:
    async with served(node_config(redis_server.url, "88", role="top")) as top:
        values = [link(10, "COMPONENT", "99.1/x"), link(11, "COMPONENT", "88/absent")]
        put = await top.put(
            "/api/handles/88/car", json=values, headers=basic("300:0.NA/88", ADMIN_SECRET)
        )
        assert put.status_code == 201, put.text
        body = (await top.get("/api/trace/88/car")).json()
        foreign, absent = target(body["tree"], 0), target(body["tree"], 1)
        assert foreign["status"] == "unreachable"
        assert foreign["message"] == "Prefix 99.1 doesn't live here"
        assert absent["status"] == "not_found"
        schema = (await top.get("/openapi.json")).json()
        assert "/api/trace/{handle}" in schema["paths"]


async def test_trace_requests_are_counted_by_route(product: httpx.AsyncClient) -> None:
    await product.get("/api/trace/88.100/car")
    metrics = (await product.get("/metrics")).text
    assert 'route="/api/trace/{handle:path}",status="200"' in metrics


# --- a hostile node where a part is kept -------------------------------------------------


@pytest.fixture
async def hostile() -> AsyncIterator[HostileNode]:
    node = await HostileNode().start()
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture
async def exposed(
    redis: Redis, redis_server: StoreServer, hostile: HostileNode
) -> AsyncIterator[httpx.AsyncClient]:
    async with below(redis_server, hostile.url, max_upstream_bytes="65536") as http:
        yield http


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("endless", "over the 65536-byte limit"),
        ("declared", "over the 65536-byte limit"),
        ("gzip", "only identity is accepted"),
        ("drip", "did not answer within 0.5s"),
    ],
)
async def test_a_hostile_node_costs_only_its_branch(
    exposed: httpx.AsyncClient, hostile: HostileNode, mode: str, says: str
) -> None:
    hostile.mode = mode
    await register_car(exposed, "88.100.2/pack")
    answer = await exposed.get("/api/trace/88.100.1/car")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tree"]["status"] == "found" and body["unreachable"] == ["88.100.2/pack"]
    pack = target(body["tree"], 0)
    assert pack["status"] == "unreachable" and says in pack["message"]
    assert hostile.url in pack["message"]


async def test_junk_values_from_another_node_are_left_out(
    exposed: httpx.AsyncClient, hostile: HostileNode
) -> None:
    hostile.answer = {
        "responseCode": 1,
        "handle": "88.100.2/pack",
        "values": [
            7,
            {"type": ["URL"]},
            {"index": {"x": 1}, "type": "URL", "data": "https://example.com"},
            {"index": 2, "type": "NOTE", "data": {"format": ["hex"], "value": "0a"}},
            {"index": 3, "type": "COMPONENT", "data": {"value": 5}},
            {"index": 4, "type": "MADE_FROM", "data": "not a handle"},
        ],
    }
    await register_car(exposed, "88.100.2/pack")
    answer = await exposed.get("/api/trace/88.100.1/car")
    assert answer.status_code == 200, answer.text
    pack = target(answer.json()["tree"], 0)
    assert pack["status"] == "found"
    assert pack["values"] == [{"index": None, "type": "URL", "value": "https://example.com"}]
    assert [link["target"]["status"] for link in pack["links"]] == ["invalid", "invalid"]
