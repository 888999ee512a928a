"""The upgrade of a store written by the previous release (layout 2: index members held
whole handle texts, dates had a scored entry too) and changes of the indexed types, on
real Redis: every listing, reverse lookup and query answers as before, no identifier is
lost, and an interrupted rebuild resumes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Sequence

from redis.asyncio import Redis

from registry.errors import NotIndexed
from registry.identifier import Handle, Prefix
from registry.index_policy import IndexPolicy
from registry.query import Query
from registry.record import HandleRecord
from registry.search import ValuePattern
from registry.store import INDEXED_KEY, LAYOUT, LAYOUT_KEY, UPGRADE_KEY, HandleStore
from registry.template import parse_date, parse_number
from registry.value import DataFormat, HandleValue
from tests.conftest import StoreServer, index_count, index_members

NOW = "2026-12-03T00:00:00Z"
EVERY = IndexPolicy(every=True)


def pack(n: int, prefix: str = "88.100") -> HandleRecord:
    """Pack n: URL, batch B<n // 10>, capacity 60 + n % 30, made on day n % 28 + 1; odd
    packs have a private note."""
    fields = [
        ("URL", f"https://packs.example/{n}"),
        ("BATCH", f"B{n // 10:03d}"),
        ("CAPACITY", str(60 + n % 30)),
        ("MADE_ON", f"2026-01-{n % 28 + 1:02d}"),
    ]
    values = [
        HandleValue(i, kind, DataFormat.STRING, text, 86400, NOW)
        for i, (kind, text) in enumerate(fields, start=1)
    ]
    if n % 2:
        values.append(HandleValue(9, "NOTE", DataFormat.STRING, "private", 86400, NOW, "1100"))
    return HandleRecord(Handle.parse(f"{prefix}/Pack-{n:05d}"), tuple(values))


async def write_layout_2(redis: Redis, records: Sequence[HandleRecord]) -> None:
    """Records as the previous release wrote them: bodies as today, and every public
    string value indexed with the whole handle text, numbers and dates scored."""
    pipe = redis.pipeline(transaction=False)
    for record in records:
        handle, prefix = record.handle, record.handle.prefix.lower()
        public, full = record.bodies()
        pipe.set(f"r:{{{prefix}}}:{handle.key}", public)
        if full is not None:
            pipe.set(f"f:{{{prefix}}}:{handle.key}", full)
        pipe.zadd(f"l:{{{prefix}}}", {handle.text: 0})
        scored: set[str] = set()
        for v in record.values:
            if not v.is_public or not isinstance(v.value, str):
                continue
            pipe.zadd(f"v:{{{prefix}}}:{v.type_key}", {f"{v.value.lower()}\0{handle.text}": 0})
            number = parse_number(v.value)
            day = parse_date(v.value)
            score = number if number is not None else None
            if day is not None:
                score = float(day.strftime("%Y%m%d"))
            if score is not None and v.type_key not in scored:
                scored.add(v.type_key)
                pipe.zadd(f"n:{{{prefix}}}:{v.type_key}", {handle.text: score})
        pipe.sadd("prefixes", record.handle.prefix)
    pipe.set(LAYOUT_KEY, b"2")
    await pipe.execute()


def conditions(**params: str) -> list[tuple[str, str]]:
    return [(k.replace("__", "."), v) for k, v in params.items()]


async def answers(store: HandleStore, count: int) -> dict[str, object]:
    """What listings, reverse lookups and queries answer."""
    where = Prefix("88.100")

    async def query(**params: str) -> list[str]:
        parsed = Query.parse(where, conditions(**params), template=None, page=0, page_size=1000)
        return (await store.query(parsed))[1]

    return {
        "listing": await store.list_handles(where, 0, count + 10),
        "url": await store.search([ValuePattern.parse("URL", "https://packs.example/7")], 10),
        "urls": sorted(await store.search([ValuePattern.parse("URL", "*example/1*")], 10_000)),
        "batch": await query(BATCH="b002"),
        "capacity": await query(CAPACITY__min="85", CAPACITY__max="86"),
        "dates": await query(MADE_ON__max="2026-01-02", BATCH="B001"),
        "dates only": await query(MADE_ON__min="2026-01-27"),
        "mixed case": await store.search([ValuePattern.parse("URL", "https://upper/1")], 10),
    }


def expected(count: int) -> dict[str, object]:
    names = [f"88.100/Pack-{n:05d}" for n in range(count)]
    return {
        "listing": (count, sorted(names)),
        "url": ["88.100/Pack-00007"],
        "urls": sorted(n for i, n in enumerate(names) if str(i).startswith("1")),
        "batch": [n for i, n in enumerate(names) if i // 10 == 2],
        "capacity": [n for i, n in enumerate(names) if 85 <= 60 + i % 30 <= 86],
        "dates": [n for i, n in enumerate(names) if i // 10 == 1 and i % 28 + 1 <= 2],
        "dates only": [n for i, n in enumerate(names) if i % 28 + 1 >= 27],
        "mixed case": ["88.ABC/x"],
    }


def mixed_case() -> HandleRecord:
    url = HandleValue(1, "URL", DataFormat.STRING, "https://upper/1", 86400, NOW)
    return HandleRecord(Handle.parse("88.ABC/x"), (url,))


async def test_a_store_of_the_previous_release_answers_the_same_after_the_upgrade(
    redis: Redis,
) -> None:
    count = 300
    await write_layout_2(redis, [pack(n) for n in range(count)] + [mixed_case()])
    store = HandleStore(redis, indexes=EVERY)
    # Every record compacted (layout 3), indexed again (layout 4), moved into its
    # bucket (layout 5).
    assert await store.upgrade() == 3 * (count + 1)
    assert await redis.get(LAYOUT_KEY) == LAYOUT
    assert await redis.get(INDEXED_KEY) == b"*"
    assert await redis.exists(UPGRADE_KEY) == 0
    found = await answers(store, count)
    assert found == expected(count)
    # Members hold suffixes now, and no date has a scored entry any more.
    assert (await index_members(redis, "l:{88.100}"))[:1] == [b"Pack-00000"]
    assert await redis.exists("n:{88.100}:made_on") == 0
    assert await redis.zcard("n:{88.100}:capacity") == count
    # Done once: a second start reads two keys and changes nothing.
    assert await HandleStore(redis, indexes=EVERY).upgrade() == 0
    assert await answers(store, count) == found
    # Every record is still there, private values included.
    kept = await store.load(Handle.parse("88.100/Pack-00001"))
    assert kept is not None and kept.record == pack(1)


_UPGRADE = """
import asyncio, sys
from registry.redis_client import open_redis
from registry.index_policy import IndexPolicy
from registry.store import HandleStore
asyncio.run(HandleStore(open_redis(sys.argv[1]), indexes=IndexPolicy(every=True)).upgrade())
"""


async def test_an_interrupted_rebuild_resumes_where_it_stopped(
    redis: Redis, redis_server: StoreServer
) -> None:
    """A node killed (SIGKILL) while it rebuilds the indexes: the next start carries on."""
    count = 6000
    await write_layout_2(redis, [pack(n) for n in range(count)])
    upgrading = subprocess.Popen([sys.executable, "-c", _UPGRADE, redis_server.url])
    try:
        # Killed once the rebuild has indexed a page (of 1000), before its last (6).
        deadline = time.monotonic() + 60
        while int(await redis.hget(UPGRADE_KEY, "done") or 0) < 1000:
            assert upgrading.poll() is None, "the upgrade ended before it was stopped"
            assert time.monotonic() < deadline
            await asyncio.sleep(0.001)
    finally:
        upgrading.kill()
        upgrading.wait()
    assert await redis.exists(UPGRADE_KEY) == 1, "the rebuild finished before it was stopped"
    # Records compact (layout 3), their indexes not rebuilt: the next start carries on.
    assert await redis.get(LAYOUT_KEY) == b"3"
    assert int(await redis.hget(UPGRADE_KEY, "done") or 0) < count
    again = HandleStore(redis, indexes=EVERY)
    await again.upgrade()
    assert await redis.get(LAYOUT_KEY) == LAYOUT
    assert await answers(again, count) == expected(count) | {"mixed case": []}


async def test_indexes_follow_the_indexed_types(redis: Redis) -> None:
    count = 200
    await write_layout_2(redis, [pack(n) for n in range(count)])
    url_only = HandleStore(redis, indexes=IndexPolicy.parse("URL"))
    await url_only.upgrade()
    assert await redis.exists("v:{88.100}:batch", "n:{88.100}:capacity") == 0
    assert await url_only.search([ValuePattern.parse("URL", "https://packs.example/7")], 10) == [
        "88.100/Pack-00007"
    ]
    refused = Query.parse(Prefix("88.100"), [("BATCH", "b002")], template=None, page=0, page_size=9)
    try:
        await url_only.query(refused)
    except NotIndexed as exc:
        assert "BATCH is not indexed" in exc.message
    else:
        raise AssertionError("a query on an unindexed type was answered")

    # BATCH and CAPACITY indexed from the next start: built from the records.
    wider = HandleStore(redis, indexes=IndexPolicy.parse("URL,BATCH,CAPACITY,MADE_ON"))
    assert await wider.upgrade() == count
    assert await redis.get(INDEXED_KEY) == b"batch,capacity,made_on,template,url"
    found = await answers(wider, count)
    assert {k: found[k] for k in ("batch", "capacity", "dates")} == {
        k: expected(count)[k] for k in ("batch", "capacity", "dates")
    }
    # And dropped again when no longer indexed.
    narrower = HandleStore(redis, indexes=IndexPolicy.parse("URL,BATCH"))
    await narrower.upgrade()
    assert await redis.exists("n:{88.100}:capacity", "v:{88.100}:made_on") == 0
    assert await index_count(redis, "v:{88.100}:batch") == count


async def test_a_template_s_queryable_items_are_built_in_the_background(redis: Redis) -> None:
    count = 100
    await write_layout_2(redis, [pack(n) for n in range(count)])
    store = HandleStore(redis, indexes=IndexPolicy.parse("URL"))
    await store.upgrade()
    store.learn({"batch"})
    assert store.indexes.covers("batch")
    await store.close()  # stops the build if still running: the next start resumes it
    await HandleStore(redis, indexes=IndexPolicy.parse("URL,BATCH")).upgrade()
    assert await index_count(redis, "v:{88.100}:batch") == count


async def test_an_upgrade_tells_its_progress_step_by_step(redis: Redis) -> None:
    """Each step is named as it begins, then its records counted a page at a time (what
    /readyz shows while a large store is upgraded, so no start-up timeout counts it)."""
    count = 2_500
    await write_layout_2(redis, [pack(n) for n in range(count)])
    told: list[tuple[str, int]] = []
    await HandleStore(redis, indexes=EVERY).upgrade(progress=lambda *at: told.append(at))
    steps = list(dict.fromkeys(step for step, _ in told))
    assert steps == [
        "records in the compact stored form",
        "indexes hold suffixes, no date scores",
        "records in bucket hashes",
        "indexes in pages",
    ]
    for step in steps[:-1]:
        counts = [done for named, done in told if named == step]
        assert counts[0] == 0 and counts == sorted(counts)  # begun, then only forward
        assert counts[-1] == count, (step, counts)
    # The indexes were rebuilt (layout 4) in pages already: none is left to convert.
    assert [done for named, done in told if named == steps[-1]] == [0]
    assert len([1 for step, _ in told if step == steps[0]]) >= 3  # page by page (1000)


async def test_an_index_build_after_the_upgrade_is_not_told_as_its_progress(
    redis: Redis,
) -> None:
    """The start-up's progress is told only while the upgrade runs: a template's
    queryable items built later, with the node serving, are not a start-up phase."""
    await write_layout_2(redis, [pack(n) for n in range(100)])
    store = HandleStore(redis, indexes=IndexPolicy.parse("URL"))
    told: list[tuple[str, int]] = []
    await store.upgrade(progress=lambda *at: told.append(at))
    after_upgrade = len(told)
    assert after_upgrade > 0
    store.learn({"batch"})
    while store._builds:  # the background build of BATCH's index
        await asyncio.sleep(0.01)
    assert await index_count(redis, "v:{88.100}:batch") == 100
    assert len(told) == after_upgrade
