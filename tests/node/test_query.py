"""Structured queries over HTTP, in process, on real Redis: correct results with paging
for data loaded through the batch API, and indexes rather than scans (counted with
Redis's own command statistics)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from registry.paged_index import PAGE_MAX
from tests.command_stats import command_calls, reset_stats
from tests.conftest import ADMIN_AUTH, SHARDED


@pytest.fixture(params=SHARDED)
def prefix_shards(request: pytest.FixtureRequest) -> int:
    return int(request.param)  # each test on a store of one shard and of several


TEMPLATE = "/api/templates/88.100/battery-pack"
# Queryable: indexes are chosen (registry.index_policy), and the template chooses these.
ITEMS = [
    {"name": "model", "index": 2000, "type": "string", "required": True, "queryable": True},
    {"name": "capacity_kwh", "index": 2001, "type": "number", "required": True, "queryable": True},
    {"name": "made_on", "index": 2002, "type": "date", "required": True, "queryable": True},
    {"name": "BATCH", "index": 2003, "type": "string", "required": True, "queryable": True},
]


def pack(n: int, *, template: bool = True) -> dict[str, Any]:
    """Pack n: batch B<n // 10>, capacity 60 + n % 30, made on day n % 28 + 1."""
    values = [
        {"index": 2000, "type": "model", "data": "HB-75" if n % 2 else "HB-60"},
        {"index": 2001, "type": "capacity_kwh", "data": str(60 + n % 30)},
        {"index": 2002, "type": "made_on", "data": f"2026-01-{n % 28 + 1:02d}"},
        {"index": 2003, "type": "BATCH", "data": f"B{n // 10:03d}"},
    ]
    if template:
        values.append({"index": 1, "type": "TEMPLATE", "data": "88.100/battery-pack"})
    return {"handle": f"88.100/pack-{n:05d}", "values": values}


async def load(client: httpx.AsyncClient, numbers: range, *, template: bool = True) -> None:
    items = [pack(n, template=template) for n in numbers]
    for start in range(0, len(items), 2000):
        answer = await client.post(
            "/api/batch/handles", json={"handles": items[start : start + 2000]}, headers=ADMIN_AUTH
        )
        assert answer.status_code == 200 and answer.json()["failed"] == 0, answer.text[:300]


async def publish(client: httpx.AsyncClient) -> None:
    assert (await client.put(TEMPLATE, json={"items": ITEMS}, headers=ADMIN_AUTH)).is_success
    assert (await client.post(f"{TEMPLATE}/publish", headers=ADMIN_AUTH)).is_success


def expected(numbers: range, test: Any) -> list[str]:
    return sorted(f"88.100/pack-{n:05d}" for n in numbers if test(n))


async def query(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    answer = await client.get("/api/query", params={"prefix": "88.100", **params})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_queries_find_exactly_the_matching_identifiers(client: httpx.AsyncClient) -> None:
    await publish(client)
    numbers = range(300)
    await load(client, numbers)

    batch = await query(client, BATCH="b007")  # equality is case-insensitive
    assert batch["handles"] == expected(numbers, lambda n: n // 10 == 7)
    assert batch["totalCount"] == 10

    ranged = await query(client, **{"capacity_kwh.min": "85", "capacity_kwh.max": "87"})
    assert ranged["handles"] == expected(numbers, lambda n: 85 <= 60 + n % 30 <= 87)

    dates = await query(client, **{"made_on.max": "2026-01-02", "model": "HB-75"})
    assert dates["handles"] == expected(numbers, lambda n: n % 28 + 1 <= 2 and n % 2)

    typed = await query(client, template="88.100/battery-pack", capacity_kwh="75.0")
    assert typed["handles"] == expected(numbers, lambda n: 60 + n % 30 == 75)
    assert typed["template"] == "88.100/battery-pack@1"

    nothing = await query(client, BATCH="B999")
    assert (nothing["totalCount"], nothing["handles"]) == (0, [])

    # Date ranges read the value index (ISO dates order as text), driving or checked.
    days = await query(client, **{"made_on.min": "2026-01-27", "made_on.max": "2026-01-28"})
    assert days["handles"] == expected(numbers, lambda n: n % 28 + 1 >= 27)
    both = await query(client, BATCH="B001", **{"made_on.min": "2026-01-15"})
    assert both["handles"] == expected(numbers, lambda n: n // 10 == 1 and n % 28 + 1 >= 15)
    day = await query(client, template="88.100/battery-pack", made_on="2026-01-03")
    assert day["handles"] == expected(numbers, lambda n: n % 28 + 1 == 3)


async def test_paging_walks_every_match_once(client: httpx.AsyncClient) -> None:
    await publish(client)
    numbers = range(120)
    await load(client, numbers)
    wanted = expected(numbers, lambda n: n % 2)
    pages = []
    for page in range(5):
        body = await query(client, model="HB-75", page=str(page), pageSize="25")
        assert body["totalCount"] == 60 and body["pageSize"] == 25
        pages.extend(body["handles"])
    assert pages == wanted


async def test_the_template_condition_and_updates_keep_the_indexes_right(
    client: httpx.AsyncClient,
) -> None:
    await publish(client)
    await load(client, range(0, 20))
    await load(client, range(20, 40), template=False)
    declared = await query(client, template="88.100/battery-pack")
    assert declared["handles"] == expected(range(40), lambda n: n < 20)

    # Pack 3 moves to batch B777 and gets a new capacity; pack 4 is deleted.
    moved = pack(3)
    moved["values"][3]["data"] = "B777"
    moved["values"][1]["data"] = "99"
    put = await client.put(
        "/api/handles/88.100/pack-00003", json={"values": moved["values"]}, headers=ADMIN_AUTH
    )
    assert put.status_code == 200
    gone = await client.delete("/api/handles/88.100/pack-00004", headers=ADMIN_AUTH)
    assert gone.status_code == 200
    assert (await query(client, BATCH="B777"))["handles"] == ["88.100/pack-00003"]
    assert "88.100/pack-00003" not in (await query(client, BATCH="B000"))["handles"]
    assert (await query(client, **{"capacity_kwh.min": "99"}))["handles"] == ["88.100/pack-00003"]
    assert "88.100/pack-00004" not in (await query(client, BATCH="B000"))["handles"]
    assert "88.100/pack-00004" not in (await query(client, model="HB-60"))["handles"]


async def test_bad_queries_are_400_and_held_elsewhere_is_301(client: httpx.AsyncClient) -> None:
    await publish(client)
    for params, says in (
        ({}, "at least one condition"),
        ({"colour": "red", "template": "88.100/battery-pack"}, "not an item"),
        ({"capacity_kwh.min": "lots"}, "is not a number"),
        ({"template": "88.100/nothing"}, "has no published"),
        ({"colour": "red"}, "COLOUR is not indexed at this node"),
    ):
        answer = await client.get("/api/query", params={"prefix": "88.100", **params})
        assert answer.status_code == 400 and says in answer.json()["message"], answer.text
    away = await client.get("/api/query", params={"prefix": "88.101", "BATCH": "x"})
    assert away.status_code == 400 and away.json()["responseCode"] == 301


async def _counted(redis: Redis, client: httpx.AsyncClient, **params: str) -> dict[str, int]:
    await reset_stats(redis)
    await query(client, **params)
    counted = await command_calls(redis)
    counted.pop("config|resetstat", None)
    counted.pop("info", None)
    # The node's KPI flush (node.daily_kpis: 4 HINCRBYs and a script's HGET) may land
    # in the window on a slow run, after the loads' registrations: not the query's.
    flushes = counted.pop("hincrby", 0) // 4
    counted["hget"] = counted.get("hget", 0) - flushes
    return counted


async def test_queries_read_indexes_not_every_identifier(
    client: httpx.AsyncClient, redis: Redis, prefix_shards: int
) -> None:
    """The same query over 200 and over 2,200 identifiers issues the same Redis commands
    per candidate: counts, one range, a score per candidate and condition, two HGETs for
    the template; no identifier's record is read and nothing is scanned."""
    await publish(client)
    await load(client, range(200))
    params = {"BATCH": "B003", "capacity_kwh.min": "60", "template": "88.100/battery-pack"}
    small = await _counted(redis, client, **params)
    await load(client, range(1000, 3000))  # 2,000 more packs, none in batch B003
    large = await _counted(redis, client, **params)

    query_commands = {"zcount", "zlexcount", "zrangebylex", "zscore", "zmscore", "hget"}
    for counted in (small, large):
        assert {"hmget", "hgetall", "scan", "keys", "zrange"}.isdisjoint(counted), counted
        assert query_commands <= set(counted)
        assert counted["hget"] == 2  # the template: its latest version number, that version
    # Per candidate: the same. The template's probes (unpinned and @1, 10 candidates) go
    # through its index's pages, 20 ZSCOREs; capacity's, in one ZMSCORE.
    probes = ("zscore", "zmscore", "hget", "zcount")
    assert {c: large[c] for c in probes} == {c: small[c] for c in probes}
    # One ZMSCORE a shard the candidates are in (a shard's probes in one call).
    assert small["zscore"] == 20 and 1 <= small["zmscore"] <= prefix_shards
    # Ranges read the pages a range spans, not the set: the larger set's may cross a
    # page boundary or two more. The template condition, which all 2,200 meet, is
    # counted a page at a time (ZCARD of each page it covers whole, 128-256 members).
    for command in ("zlexcount", "zrangebylex"):
        assert large[command] <= small[command] + 2 * prefix_shards, command
    assert large.get("zcard", 0) <= 2_200 // (PAGE_MAX // 2)
    assert "zrangebyscore" not in small  # one set fetched: the batch's, by its pages


async def test_a_template_published_later_gets_its_queryable_items_indexed(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    await load(client, range(50), template=False)
    refused = await client.get("/api/query", params={"prefix": "88.100", "BATCH": "B001"})
    assert refused.status_code == 400 and "BATCH is not indexed" in refused.json()["message"]
    await publish(client)  # declares BATCH queryable: built for the records already here
    for _ in range(200):
        if not await redis.exists("store:upgrade"):
            break
        await asyncio.sleep(0.01)
    batch = await query(client, BATCH="B001")
    assert batch["handles"] == expected(range(50), lambda n: n // 10 == 1)
