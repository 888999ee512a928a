"""The store's batch path on a real Redis: records loaded, committed by one script per
slice that applies it only if none of its records changed since (a neighbour in the
same bucket is no conflict), and the records a concurrent writer changed meanwhile
left to the per-record compare-and-set; and the upgrade of stores written when records
were hashes."""

from __future__ import annotations

import logging
from typing import cast

import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from registry.change_feed import StreamId, entry_keys
from registry.identifier import Handle
from registry.index_policy import IndexPolicy
from registry.record import HandleRecord
from registry.record_keys import (
    COMPACT_BUCKETS,
    listing_key,
    record_field,
    record_key,
    string_key,
    value_index_key,
)
from registry.store import LAYOUT, LAYOUT_KEY, WATCH_SLICE, HandleStore, Stored
from registry.value import DataFormat, HandleValue
from tests.conftest import (
    ADMIN_AUTH,
    SHARDED,
    StoreServer,
    index_count,
    index_members,
    node_config,
    served,
)

NOW = "2026-12-03T00:00:00Z"


@pytest.fixture(params=SHARDED)
def prefix_shards(request: pytest.FixtureRequest) -> int:
    return int(request.param)  # each test on a store of one shard and of several


def record(text: str, url: str, *, private: str | None = None) -> HandleRecord:
    values = [HandleValue(1, "URL", DataFormat.STRING, url, 86400, NOW)]
    if private is not None:
        values.append(HandleValue(2, "NOTE", DataFormat.STRING, private, 86400, NOW, "1100"))
    return HandleRecord(Handle.parse(text), tuple(values))


async def test_a_batch_spans_slices_and_commits_every_change(redis: Redis) -> None:
    store = HandleStore(redis)
    count = 2 * WATCH_SLICE + 50
    handles = [Handle.parse(f"88.100/b{n}") for n in range(count)]
    async with store.watched(handles) as batch:
        assert batch.loaded == [None] * count
        changes: list[tuple[Stored | None, HandleRecord | None]] = [
            (None, record(h.text, f"https://x.cn/{n}")) for n, h in enumerate(handles)
        ]
        assert await batch.commit(changes) == [True] * count
    assert await index_count(redis, listing_key("88.100")) == count
    assert await index_count(redis, value_index_key("88.100", "url")) == count
    last = changes[-1][1]
    assert last is not None and await store.public_body(handles[-1]) == last.public_body()
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange("changes"))
    assert len(entries) == 3  # one feed entry per slice, its keys deflated
    assert all(list(fields) == [b"z"] for _, fields in entries)
    assert sum(len(entry_keys(fields)) for _, fields in entries) == count
    # The feed answers every key, whichever form its entry has; a lone change is plain.
    await store.commit(None, record("88.100/lone", "https://x.cn/lone"))
    page = await store.changes(StreamId(0), 100)
    assert sorted(page.handle_keys) == sorted([h.key for h in handles] + ["88.100/lone"])
    last_entry = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange("changes"))[-1]
    assert last_entry[1] == {b"h": b"88.100/lone"}


@pytest.mark.parametrize("prefix_shards", [1])  # 3 buckets: one shard
async def test_a_batch_s_slices_share_buckets_and_keep_the_handles_order(redis: Redis) -> None:
    store = HandleStore(redis, record_buckets=3)  # every slice writes every bucket
    handles = [Handle.parse(f"88.100/o{n}") for n in range(2 * WATCH_SLICE + 50)]
    first = record(handles[7].text, "https://first.cn")
    assert await store.commit(None, first)
    async with store.watched(handles) as batch:
        loaded = batch.loaded
        assert [n for n, stored in enumerate(loaded) if stored is not None] == [7]
        assert loaded[7] is not None and loaded[7].record == first
        changes: list[tuple[Stored | None, HandleRecord | None]] = [
            (stored, record(h.text, f"https://o.cn/{n}"))
            for n, (h, stored) in enumerate(zip(handles, loaded, strict=True))
        ]
        assert await batch.commit(changes) == [True] * len(handles)
    assert store.refused_slices == 0  # one slice's writes are no other's conflict


@pytest.mark.parametrize("prefix_shards", [1])  # one bucket: one shard
async def test_a_neighbour_written_in_a_bucket_is_no_conflict(redis: Redis) -> None:
    store = HandleStore(redis, record_buckets=1)  # every record in one bucket
    mine = [Handle.parse("88.100/mine1"), Handle.parse("88.100/mine2")]
    async with store.watched(mine) as batch:
        # Another writer creates a different record in the same bucket meanwhile.
        assert await store.commit(None, record("88.100/neighbour", "https://n.cn"))
        changes: list[tuple[Stored | None, HandleRecord | None]] = [
            (None, record(h.text, "https://mine.cn")) for h in mine
        ]
        # The slice's script compares each record's own version: nothing to retry.
        assert await batch.commit(changes) == [True, True]
    assert store.refused_slices == 0
    assert await redis.hlen(record_key(mine[0], 1)) == 3


async def test_the_bucket_count_is_the_store_s_own(redis: Redis) -> None:
    assert await HandleStore(redis, record_buckets=64).buckets() == 64
    # A node started later with another setting keeps the store's count.
    assert await HandleStore(redis, record_buckets=1024).buckets() == 64


async def test_a_record_changed_after_the_load_is_left_alone(redis: Redis) -> None:
    store = HandleStore(redis)
    first, second = Handle.parse("88.100/race"), Handle.parse("88.100/calm")
    async with store.watched([first, second]) as batch:
        # Another writer (another node process) changes one record after the load.
        assert await store.commit(None, record(first.text, "https://other.cn"))
        changes: list[tuple[Stored | None, HandleRecord | None]] = [
            (None, record(first.text, "https://batch.cn/1")),
            (None, record(second.text, "https://batch.cn/2")),
        ]
        assert await batch.commit(changes) == [False, True]
    kept = await store.load(first)
    assert kept is not None and kept.record.values[0].value == "https://other.cn"
    members = await index_members(redis, value_index_key("88.100", "url"))
    assert members == [b"https://batch.cn/2\x00calm", b"https://other.cn\x00race"]


async def test_replacing_and_deleting_in_a_batch_keep_the_indexes_right(redis: Redis) -> None:
    store = HandleStore(redis)
    kept, gone = Handle.parse("88.100/kept"), Handle.parse("88.100/gone")
    assert await store.commit(None, record(kept.text, "https://old.cn", private="p"))
    assert await store.commit(None, record(gone.text, "https://gone.cn"))
    async with store.watched([kept, gone]) as batch:
        before_kept, before_gone = batch.loaded
        assert before_kept is not None and before_gone is not None
        done = await batch.commit(
            [(before_kept, record(kept.text, "https://new.cn")), (before_gone, None)]
        )
    assert done == [True, True]
    buckets = await store.buckets()
    assert not await redis.hexists(record_key(gone, buckets), record_field(gone))
    assert await index_members(redis, listing_key("88.100")) == [b"kept"]
    assert await index_members(redis, value_index_key("88.100", "url")) == [
        b"https://new.cn\x00kept"
    ]


@pytest.mark.parametrize("prefix_shards", [1])  # an old store: one shard
async def test_a_store_of_hashes_is_upgraded_at_start(
    redis: Redis, redis_server: StoreServer
) -> None:
    old = record("88.100/old", "https://old-layout.cn", private="kept private")
    public, full = old.bodies()
    assert full is not None
    await redis.hset(string_key(old.handle), mapping={"b": public, "f": full})
    # More than one page of the conversion (a thousand records a transaction).
    many = [record(f"88.100/m{n}", f"https://m.cn/{n}") for n in range(2_500)]
    pipe = redis.pipeline(transaction=False)
    for each in many:
        pipe.hset(string_key(each.handle), "b", each.public_body())
    await pipe.execute()
    async with served(node_config(redis_server.url)) as node:
        answer = await node.get("/api/handles/88.100/old")
        assert answer.status_code == 200 and answer.content == public
        # Then compacted (layout 3): the full body's values in the one record key.
        assert await redis.get("f:" + string_key(old.handle)[2:]) is None
        stored = await HandleStore(redis).load(old.handle)
        assert stored is not None and stored.record == old
        last = await node.get("/api/handles/88.100/m2499")
        assert last.content == many[-1].public_body()
        assert await redis.get(LAYOUT_KEY) == LAYOUT
    # Then moved into bucket hashes (layout 5): no record key of layout 1-4 is left.
    assert await redis.exists(*[string_key(r.handle) for r in many]) == 0
    buckets = await HandleStore(redis).buckets()
    kinds = {await redis.type(record_key(r.handle, buckets)) for r in many[::250]}
    assert kinds == {b"hash"}
    # Upgraded once: a record written as a hash now would not be converted again.
    assert await HandleStore(redis, indexes=IndexPolicy()).upgrade() == 0


async def test_a_batch_through_the_api_after_an_upgrade(client: httpx.AsyncClient) -> None:
    items = [
        {"handle": f"88.100/api{n}", "values": [{"index": 1, "type": "URL", "data": "u"}]}
        for n in range(WATCH_SLICE + 1)
    ]
    answer = await client.post("/api/batch/handles", json={"handles": items}, headers=ADMIN_AUTH)
    assert answer.json()["created"] == WATCH_SLICE + 1
    # One worker: nothing to balance, the connection stays open for the next batch.
    assert "close" not in answer.headers.get("connection", "")


async def test_an_external_redis_keeping_buckets_uncompact_is_warned_about(
    redis: Redis, redis_server: StoreServer, caplog: pytest.LogCaptureFixture
) -> None:
    await redis.config_set("hash-max-ziplist-value", 64)
    try:
        with caplog.at_level(logging.WARNING, logger="idnode"):
            async with served(node_config(redis_server.url)) as node:
                assert (await node.get("/api/handles/0.NA/88.100")).status_code == 200
    finally:
        await redis.config_set("hash-max-ziplist-value", COMPACT_BUCKETS["hash-max-ziplist-value"])
    warned = [r for r in caplog.records if "uncompact" in r.getMessage()]
    assert len(warned) == 1
    assert "hash-max-ziplist-value is 64, below 1024" in str(warned[0].__dict__["problem"])


async def _forget_scripts_on_one_master(redis: Redis) -> None:
    """As a replica promoted since the scripts were loaded: one master (on a cluster;
    the only server otherwise) has none of them."""
    if isinstance(redis, RedisCluster):
        await redis.execute_command("SCRIPT FLUSH", target_nodes=redis.get_primaries()[0])
    else:
        await redis.script_flush()


@pytest.mark.parametrize("prefix_shards", [16])  # a batch's slices on every master
async def test_a_master_without_the_scripts_runs_each_call_once(redis: Redis) -> None:
    """The calls that found their script missing are sent again, and only those: a
    call that ran is not repeated (it would find its records written and refuse)."""
    store = HandleStore(redis)
    await store.upgrade()  # loads the scripts, as a node's start-up does
    await _forget_scripts_on_one_master(redis)
    handles = [Handle.parse(f"88.100/s{n}") for n in range(200)]
    async with store.watched(handles) as batch:
        changes: list[tuple[Stored | None, HandleRecord | None]] = [
            (None, record(h.text, f"https://x.cn/{n}")) for n, h in enumerate(handles)
        ]
        assert await batch.commit(changes) == [True] * len(handles)
    await _forget_scripts_on_one_master(redis)
    more = [(None, record(f"88.100/t{n}", f"https://x.cn/t{n}")) for n in range(40)]
    assert await store.commit_many(more) == [True] * len(more)
    assert await index_count(redis, listing_key("88.100")) == len(handles) + len(more)
