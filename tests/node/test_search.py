"""GET /api/search at a top node served in process, its children real HTTP servers at
the wire: a hostile child costs its own part of the answer, nothing else, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import ADMIN_SECRET, SHARDED, StoreServer, basic, node_config, served
from tests.resolver.hostile import HostileNode


@pytest.fixture(params=SHARDED)
def prefix_shards(request: pytest.FixtureRequest) -> int:
    return int(request.param)  # each test on a store of one shard and of several


TOP_AUTH = basic("300:0.NA/88", ADMIN_SECRET)
CAP = 64 * 1024


@pytest.fixture
async def children() -> AsyncIterator[tuple[HostileNode, HostileNode]]:
    """(healthy, hostile): the first answers a proper search result for 88.100."""
    healthy, hostile = await HostileNode().start(), await HostileNode().start()
    healthy.answer = {
        "responseCode": 1,
        "handles": ["88.100.1/good"],
        "nodes": [{"node": healthy.url, "prefixes": ["88.100"], "status": "ok", "found": 1}],
    }
    try:
        yield healthy, hostile
    finally:
        await healthy.stop()
        await hostile.stop()


@pytest.fixture
async def top(
    redis: Redis, redis_server: StoreServer, children: tuple[HostileNode, HostileNode]
) -> AsyncIterator[httpx.AsyncClient]:
    config = node_config(
        redis_server.url, "88", role="top", upstream_timeout="1", max_upstream_bytes=str(CAP)
    )
    async with served(config) as http:
        for prefix, child in zip(("88.100", "88.101"), children, strict=True):
            filed = await http.put(
                f"/api/prefixes/{prefix}",
                json={"kind": "secondary", "nodeUrl": child.url, "secret": "node-secret"},
                headers=TOP_AUTH,
            )
            assert filed.status_code == 201, filed.text
        yield http


async def search(top: httpx.AsyncClient) -> dict[str, Any]:
    answer = await top.get("/api/search", params={"URL": "*"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def by_node(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["node"]: n for n in body["nodes"]}


async def test_a_rogue_child_cannot_inject_handles_under_other_prefixes(
    top: httpx.AsyncClient, children: tuple[HostileNode, HostileNode]
) -> None:
    healthy, rogue = children
    rogue.answer = {
        "responseCode": 1,
        "handles": ["88.101.7/mine", "88.100.1/injected", "88/hijack", {"x": 1}, "no slash"],
        "nodes": [
            {"node": rogue.url, "prefixes": ["88.101"], "status": "ok", "found": "lots"},
            {"node": "http://evil.example", "prefixes": ["88.100"], "status": "ok", "found": 5},
            {"node": "http://e.example", "prefixes": ["88.101.7"], "status": "x", "found": 1},
        ],
        "truncated": {"no": 1},
    }
    body = await search(top)
    assert sorted(body["handles"]) == ["88.100.1/good", "88.101.7/mine"]
    nodes = by_node(body)
    assert nodes[healthy.url]["status"] == "ok"
    assert nodes[rogue.url]["status"] == "partial" and nodes[rogue.url]["found"] == 1
    assert "3 malformed entries and 3 outside its prefixes (88.101)" in nodes[rogue.url]["message"]
    assert "http://evil.example" not in nodes and "http://e.example" not in nodes
    assert body["complete"] is False and body["unanswered"] == [] and body["truncated"] is False


@pytest.mark.parametrize(
    ("mode", "status", "says"),
    [
        ("endless", "unreachable", f"over the {CAP}-byte limit"),
        ("declared", "unreachable", f"over the {CAP}-byte limit"),
        ("gzip", "unreachable", "only identity is accepted"),
        ("drip", "timeout", "did not answer within"),
        ("redirect", "unreachable", "redirect (HTTP 302), which is not followed"),
    ],
)
async def test_a_huge_slow_or_compressed_answer_costs_only_that_child(
    top: httpx.AsyncClient,
    children: tuple[HostileNode, HostileNode],
    mode: str,
    status: str,
    says: str,
) -> None:
    healthy, hostile = children
    hostile.mode = mode
    body = await search(top)
    assert body["handles"] == ["88.100.1/good"]
    nodes = by_node(body)
    assert nodes[healthy.url]["status"] == "ok"
    assert nodes[hostile.url]["status"] == status and says in nodes[hostile.url]["message"]
    assert hostile.url in nodes[hostile.url]["message"]
    assert body["unanswered"] == [hostile.url]


@pytest.mark.parametrize(
    ("status", "answer", "says"),
    [
        (200, ["not", "a", "report"], "did not answer with a search result"),
        (200, {"handles": "all of them"}, "did not answer with a search result"),
        (500, {"responseCode": 2, "message": "<b>call us</b>"}, "answered HTTP 500"),
        (503, "plain text", "answered HTTP 503"),
    ],
)
async def test_a_malformed_or_failed_answer_is_described_not_echoed(
    top: httpx.AsyncClient,
    children: tuple[HostileNode, HostileNode],
    status: int,
    answer: object,
    says: str,
) -> None:
    _, hostile = children
    hostile.status, hostile.answer = status, answer
    body = await search(top)
    failed = by_node(body)[hostile.url]
    assert failed["status"] in ("error", "unreachable") and says in failed["message"]
    assert "call us" not in failed["message"] and body["handles"] == ["88.100.1/good"]


async def test_a_type_this_node_does_not_index_is_still_searched_below(
    top: httpx.AsyncClient, children: tuple[HostileNode, HostileNode]
) -> None:
    answer = await top.get("/api/search", params={"MANUFACTURER": "x"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["handles"] == ["88.100.1/good"]  # what the children found
    here = [n for n in body["nodes"] if n["status"] == "unindexed"]
    assert len(here) == 1 and "MANUFACTURER is not indexed" in here[0]["message"]
    assert body["complete"] is False
