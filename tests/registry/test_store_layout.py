"""The store's layout upgrade to compact records (layout 3), on a real Redis: a store
written by layout 2 (Handle JSON bodies, a full body beside a public one when some
values are private) is converted a thousand records at a time, an interrupted upgrade
finishes at the next start, and every answer is the same before and after. The later
steps (4: indexes rebuilt, 5: records moved into bucket hashes) run after it, so the
records are read back from their buckets."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from registry.identifier import Handle
from registry.index_policy import IndexPolicy
from registry.record import HandleRecord
from registry.record_keys import full_key, index_changes, string_key
from registry.store import INDEXED_KEY, LAYOUT, LAYOUT_KEY, HandleStore
from registry.stored_form import is_compact, to_stored
from registry.value import DEFAULT_ADMIN_PERMISSIONS, AdminRef, DataFormat, HandleValue
from registry.value_formats import ValueRef
from tests.conftest import ADMIN_AUTH, StoreServer, node_config, served, stored_record
from tests.node.test_store_upgrade import write_layout_2 as write_previous_release

NOW = "2026-12-03T00:00:00Z"


def record(n: int) -> HandleRecord:
    """Records of several shapes: private values, permissions, references, formats."""
    values = [
        HandleValue(1, "URL", DataFormat.STRING, f"https://m.cn/{n}", 86400, NOW),
        HandleValue(
            100,
            "HS_ADMIN",
            DataFormat.ADMIN,
            AdminRef("0.NA/88.100", 300, DEFAULT_ADMIN_PERMISSIONS),
            86400,
            NOW,
        ),
    ]
    if n % 3 == 0:
        values.append(HandleValue(2, "NOTE", DataFormat.STRING, f"secret {n}", 60, NOW, "1100"))
    if n % 5 == 0:
        refs = (ValueRef("88.100/m1", 1),)
        values.append(
            HandleValue(
                3, "REF", DataFormat.BASE64, "AAE=", 86400, "2026-12-01T00:00:00Z", "1010", refs
            )  # fmt: skip
        )
    if n % 7 == 0:
        values.append(HandleValue(4, "HS_VLIST", DataFormat.VLIST, (ValueRef("88.100/a", 300),),
                                  86400, NOW))  # fmt: skip
    values.sort(key=lambda v: v.index)
    return HandleRecord(Handle.parse(f"88.100/M{n}" if n % 2 else f"88.100/m{n}"), tuple(values))


async def write_layout_2(redis: Redis, records: list[HandleRecord]) -> None:
    """Records as layout 2 wrote them: the public JSON body, the full one beside it
    when some values are private, and their index entries in that layout's form."""
    await write_previous_release(redis, records)


QUERIES = [
    ("", {}),
    ("?index=1", {}),
    ("?type=URL&type=NOTE", {}),
    ("?index=2", ADMIN_AUTH),
    ("", ADMIN_AUTH),
    ("?publicOnly=true", ADMIN_AUTH),
]


async def answers(node: httpx.AsyncClient, records: list[HandleRecord]) -> list[bytes]:
    got = []
    for rec in records:
        for query, headers in QUERIES:
            reply = await node.get(f"/api/handles/{rec.handle.text}{query}", headers=headers)
            got.append(b"%d " % reply.status_code + reply.content)
    return got


async def test_a_layout_2_store_is_compacted_and_answers_the_same(
    redis: Redis, redis_server: StoreServer
) -> None:
    records = [record(n) for n in range(2_500)]  # three pages of the conversion
    await write_layout_2(redis, records)
    sample = records[:30] + records[-5:]
    # The answers of the same records written by this version (no node reads layout 2
    # unconverted any more: records are read from their buckets).
    await redis.flushdb()
    assert all(await HandleStore(redis).commit_many([(None, r) for r in records]))
    async with served(node_config(redis_server.url)) as node:
        before = await answers(node, sample)
        assert before[0] == b"200 " + records[0].public_body()
    await redis.flushdb()
    await write_layout_2(redis, records)
    await redis.set(LAYOUT_KEY, b"2")
    async with served(node_config(redis_server.url)) as node:  # upgrades at start
        assert await redis.get(LAYOUT_KEY) == LAYOUT
        assert await answers(node, sample) == before
        listed = await node.get("/api/handles?prefix=88.100&pageSize=0", headers=ADMIN_AUTH)
    assert listed.json()["totalCount"] == str(len(records)) or listed.json()["totalCount"] == len(
        records
    )
    bodies = [await stored_record(redis, r.handle.text) for r in records]
    assert all(isinstance(b, bytes) and is_compact(b) for b in bodies)
    assert await redis.exists(*[string_key(r.handle) for r in records]) == 0
    assert await redis.exists(*[full_key(r.handle) for r in records]) == 0
    store = HandleStore(redis, indexes=node_config(redis_server.url).indexed_types)
    loaded = await store.load_many([r.handle for r in records])
    assert [s.record if s else None for s in loaded] == records
    assert await store.upgrade() == 0  # done once: the next start changes nothing


async def test_an_interrupted_upgrade_finishes_at_the_next_start(
    redis: Redis, redis_server: StoreServer
) -> None:
    records = [record(n) for n in range(1_500)]
    await write_layout_2(redis, records)
    store = HandleStore(redis)
    # A crash after the first thousand: converted, the layout key still says 2.
    first = [string_key(r.handle).encode() for r in records[:1_000]]
    assert await store._compact(first) == 1_000
    assert await redis.get(LAYOUT_KEY) == b"2"
    # Meanwhile the new code writes (a node serves only once upgraded; this checks a
    # write in the bucket form is kept): one record not yet converted changed (its
    # string unseen: the bucket form wins when the string moves), one created.
    changed = HandleRecord(
        records[1_200].handle,
        (HandleValue(1, "URL", DataFormat.STRING, "https://changed.cn", 86400, NOW),),
    )
    created = HandleRecord(Handle.parse("88.100/new"), changed.values)
    assert await store.commit_many([(None, changed), (None, created)]) == [True, True]
    async with served(node_config(redis_server.url)) as node:  # the restart upgrades
        assert await redis.get(LAYOUT_KEY) == LAYOUT
        for rec in records[:5] + records[1_000:1_005] + [changed, created]:
            reply = await node.get(f"/api/handles/{rec.handle.text}")
            assert reply.content == rec.public_body()
    keys = [k async for k in redis.scan_iter(match="r:{88.100}:*", count=1000)]
    assert {await redis.type(k) for k in keys} == {b"hash"}  # every string moved
    assert sum([await redis.hlen(k) for k in keys]) == len(records) + 1
    assert await redis.exists(*[full_key(r.handle) for r in records]) == 0


async def test_a_partly_converted_store_upgrades_the_rest(redis: Redis) -> None:
    records = [record(n) for n in range(1_200)]
    await write_layout_2(redis, records)
    store = HandleStore(redis)
    assert await store._compact([string_key(r.handle).encode() for r in records[::2]]) == 600
    # 600 compacted (only the rest), every record's indexes rebuilt (layout 4), every
    # record moved into its bucket (layout 5).
    assert await store.upgrade() == 600 + 1_200 + 1_200
    assert await redis.get(LAYOUT_KEY) == LAYOUT
    loaded = await store.load_many([r.handle for r in records])
    assert [s.record if s else None for s in loaded] == records
    assert await store.public_bodies([r.handle for r in records[:50]]) == [
        r.public_body() for r in records[:50]
    ]


async def write_layout_4(redis: Redis, records: list[HandleRecord], policy: IndexPolicy) -> None:
    """Records as layout 4 wrote them (the release before buckets): one string of the
    compact form per record at its handle key, and the index entries of ``policy``."""
    pipe = redis.pipeline(transaction=False)
    for rec in records:
        pipe.set(string_key(rec.handle), to_stored(rec))
        for _, key, member, score in index_changes(None, rec, policy):
            pipe.zadd(key, {member: score})
        pipe.sadd("prefixes", rec.handle.prefix)
    pipe.set(LAYOUT_KEY, b"4")
    pipe.set(INDEXED_KEY, policy.text)
    await pipe.execute()


async def test_a_layout_4_store_moves_into_buckets_and_answers_the_same(
    redis: Redis, redis_server: StoreServer
) -> None:
    records = [record(n) for n in range(2_500)]  # three pages of the move
    sample = records[:30] + records[-5:]
    config = node_config(redis_server.url, record_buckets="64")
    # The answers of the same records written by this version.
    writer = HandleStore(redis, record_buckets=64)
    assert all(await writer.commit_many([(None, r) for r in records]))
    async with served(config) as node:
        before = await answers(node, sample)
        listed = await node.get("/api/handles?prefix=88.100&pageSize=5", headers=ADMIN_AUTH)
    await redis.flushdb()
    await write_layout_4(redis, records, config.indexed_types)
    # A crash after the first thousand moved: the layout key still says 4.
    store = HandleStore(redis, indexes=config.indexed_types, record_buckets=64)
    strings = [string_key(r.handle).encode() for r in records]
    assert await store._move(strings[:1_000]) == 1_000
    assert await redis.get(LAYOUT_KEY) == b"4"
    assert await redis.exists(*strings[:1_000]) == 0
    async with served(config) as node:  # the restart moves the rest
        assert await redis.get(LAYOUT_KEY) == LAYOUT
        assert await answers(node, sample) == before
        assert (
            await node.get("/api/handles?prefix=88.100&pageSize=5", headers=ADMIN_AUTH)
        ).content == listed.content
    assert await redis.exists(*strings) == 0
    keys = [k async for k in redis.scan_iter(match="r:{88.100}:*", count=1000)]
    assert len(keys) == 64 and sum([await redis.hlen(k) for k in keys]) == len(records)
    assert {await redis.object("encoding", k) for k in keys} == {b"ziplist"}
    loaded = await store.load_many([r.handle for r in records])
    assert [s.record if s else None for s in loaded] == records  # no identifier lost
    assert await store.upgrade() == 0
