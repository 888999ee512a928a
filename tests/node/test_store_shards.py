"""A prefix spread over several shards (``store:shards``, registry.record_keys), on real
Redis with every command, script call and transaction checked for one Redis Cluster
slot (tests.cluster_slots): records land in every shard, listings, searches and queries
answer what one shard answers, indexes built later (new indexed types, a template's
queryable items) land in their records' shards, and the shard count is the store's own."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from redis.asyncio import Redis

from registry.errors import ConfigError
from registry.index_policy import IndexPolicy
from registry.record import HandleRecord
from registry.record_keys import key_tag, shard_tags
from registry.store import BUCKETS_KEY, LAYOUT_KEY, SHARDS_KEY, HandleStore, Stored
from tests.cluster_slots import watching
from tests.conftest import ADMIN_AUTH, StoreServer, all_keys, index_count, node_config, served
from tests.node.test_store_upgrade import answers, expected, mixed_case, pack

WIDE = IndexPolicy.parse("URL,BATCH,CAPACITY,MADE_ON")
COUNT = 300


@pytest.fixture
def prefix_shards() -> int:
    return 4  # the store each test starts with: 88.100 spread over 4 slots


async def write(store: HandleStore, records: list[HandleRecord]) -> None:
    """Create ``records`` by batches of 120 (slices of several shards) and one by one."""
    single, batched = records[:20], records[20:]
    for start in range(0, len(batched), 120):
        part = batched[start : start + 120]
        async with store.watched([r.handle for r in part]) as batch:
            changes: list[tuple[Stored | None, HandleRecord | None]] = [(None, r) for r in part]
            assert await batch.commit(changes) == [True] * len(part)
    for record in single:
        assert await store.commit(None, record)


def as_sets(found: dict[str, object]) -> dict[str, object]:
    """Answers with the listing's order left out (a sharded listing is ordered by shard)."""
    total, names = cast(tuple[int, list[str]], found["listing"])
    return {**found, "listing": (total, sorted(names))}


async def test_a_sharded_prefix_answers_as_one_shard_does(redis: Redis) -> None:
    records = [pack(n) for n in range(COUNT)] + [mixed_case()]
    sharded = HandleStore(redis, indexes=WIDE)
    await write(sharded, records)
    # The records and the indexes of one prefix are in all 4 shards' tags, none in the
    # prefix's own.
    keys = await all_keys(redis, "*{88.100*")
    assert {key_tag(k) for k in keys} == set(shard_tags("88.100", 4))
    for family in (b"r:", b"l:", b"v:", b"n:"):
        assert {key_tag(k) for k in keys if k.startswith(family)} == set(shard_tags("88.100", 4))
    assert await redis.exists("l:{88.100}", "v:{88.100}:url") == 0
    assert await index_count(redis, "l:{88.100}") == COUNT
    found = await answers(sharded, COUNT)
    assert as_sets(found) == expected(COUNT)
    # The listing: shard by shard, each in byte order; pages cut across shards.
    total, names = cast(tuple[int, list[str]], found["listing"])
    where = pack(0).handle.home_prefix
    paged = [await sharded.list_handles(where, page, 7) for page in range(COUNT // 7 + 1)]
    assert all(t == total for t, _ in paged) and [n for _, p in paged for n in p] == names
    assert await sharded.list_handles(where, 0, 0) == (COUNT, [])
    # Merged (the prefix registry's small listing): byte order across the shards.
    pages = [
        await sharded.list_handles(where, page, 7, merged=True) for page in range(COUNT // 7 + 1)
    ]
    in_order = cast(tuple[int, list[str]], expected(COUNT)["listing"])[1]
    assert [n for _, p in pages for n in p] == sorted(names) == in_order
    # A store of one shard fed the same records answers the same.
    await redis.flushall()
    one = HandleStore(redis, indexes=WIDE)
    await write(one, records)
    assert await one.shards() == 1 and await redis.exists("l:{88.100}") == 1
    unsharded = await answers(one, COUNT)
    assert as_sets(unsharded) == as_sets(found)
    assert {k: v for k, v in unsharded.items() if k != "listing"} == {
        k: v for k, v in found.items() if k != "listing"
    }


async def test_changes_and_deletions_keep_every_shard_s_indexes_right(redis: Redis) -> None:
    store = HandleStore(redis, indexes=WIDE)
    await write(store, [pack(n) for n in range(COUNT)])
    loaded = await store.load_many([pack(n).handle for n in range(0, COUNT, 3)])
    changes: list[tuple[Stored | None, HandleRecord | None]] = [(stored, None) for stored in loaded]
    async with store.watched([pack(n).handle for n in range(1, COUNT, 3)]) as batch:
        for stored in batch.loaded:
            assert stored is not None
            record = stored.record
            changes.append((stored, HandleRecord(record.handle, record.values[1:])))
        assert all(await batch.commit(changes[len(loaded) :]))
    assert all(await store.commit_many(changes[: len(loaded)]))
    kept = [n for n in range(COUNT) if n % 3 == 2]
    changed = [n for n in range(COUNT) if n % 3 == 1]
    assert await index_count(redis, "l:{88.100}") == len(kept) + len(changed)
    assert await index_count(redis, "v:{88.100}:url") == len(kept)  # URL dropped by changes
    assert await index_count(redis, "v:{88.100}:batch") == len(kept) + len(changed)
    total, names = await store.list_handles(pack(0).handle.home_prefix, 0, COUNT)
    assert total == len(names) == len(kept) + len(changed)
    assert sorted(names) == sorted(pack(n).handle.text for n in kept + changed)


async def test_indexes_of_new_types_are_built_in_each_record_s_shard(redis: Redis) -> None:
    url_only = HandleStore(redis, indexes=IndexPolicy.parse("URL"))
    await url_only.upgrade()  # a new store: layout 6, nothing to convert
    await write(url_only, [pack(n) for n in range(COUNT)])
    assert await index_count(redis, "v:{88.100}:batch") == 0
    # BATCH, CAPACITY and MADE_ON indexed from the next start: built bucket by bucket,
    # each transaction within one shard.
    wider = HandleStore(redis, indexes=WIDE)
    assert await wider.upgrade() == COUNT
    found = await answers(wider, COUNT)
    assert {k: found[k] for k in ("batch", "capacity", "dates")} == {
        k: expected(COUNT)[k] for k in ("batch", "capacity", "dates")
    }
    # A template's queryable item, learned while serving: built in the background.
    wider.learn({"note"})
    while wider._builds:
        await asyncio.sleep(0.01)
    assert await index_count(redis, "v:{88.100}:note") == 0  # private notes: not indexed
    await wider.close()
    # Dropped again in every shard when no longer indexed.
    await HandleStore(redis, indexes=IndexPolicy.parse("URL,BATCH")).upgrade()
    assert await index_count(redis, "v:{88.100}:made_on") == 0
    assert await index_count(redis, "v:{88.100}:batch") == COUNT
    assert not await all_keys(redis, "n:{88.100*")
    # Everything dropped and rebuilt (the 3 -> 4 step's rebuild), shard by shard.
    await redis.set(LAYOUT_KEY, b"3")
    assert await HandleStore(redis, indexes=WIDE).upgrade() == COUNT
    assert await answers(HandleStore(redis, indexes=WIDE), COUNT) == found


async def test_the_shard_count_is_the_store_s_own(redis: Redis) -> None:
    # This store was made with 4 (as a node with --prefix-shards 4 makes it).
    assert await HandleStore(redis, prefix_shards=8).shards() == 4
    assert await redis.get(BUCKETS_KEY) is not None
    await redis.flushall()
    assert await HandleStore(redis, prefix_shards=16, record_buckets=64).shards() == 16
    assert await HandleStore(redis, prefix_shards=2).shards() == 16
    # A store written before shards existed (it has a bucket count or a layout) keeps
    # its keys: one shard, whatever the node asks.
    for older in (BUCKETS_KEY, LAYOUT_KEY):
        await redis.flushall()
        await redis.set(older, 64 if older == BUCKETS_KEY else 6)
        assert await HandleStore(redis, prefix_shards=4, record_buckets=64).shards() == 1
        assert await redis.get(SHARDS_KEY) == b"1"
    # A bucket count the shards do not divide is refused, naming both.
    await redis.flushall()
    with pytest.raises(ConfigError, match=r"record buckets \(6\) must be a multiple"):
        await HandleStore(redis, prefix_shards=4, record_buckets=6).buckets()


async def test_a_node_started_with_prefix_shards_makes_a_sharded_store(
    redis: Redis, redis_server: StoreServer
) -> None:
    await redis.flushall()  # a new store: the node's setting decides
    items = [
        {"handle": f"88.100/n{n}", "values": [{"index": 1, "type": "URL", "data": f"u{n}"}]}
        for n in range(40)
    ]
    async with served(node_config(redis_server.url, prefix_shards="4")) as node:
        answer = await node.post("/api/batch/handles", json={"handles": items}, headers=ADMIN_AUTH)
        assert answer.json()["created"] == 40, answer.text
        assert (await node.get("/api/handles/88.100/n7")).status_code == 200
        listed = (await node.get("/api/handles?prefix=88.100", headers=ADMIN_AUTH)).json()
        assert listed["totalCount"] == 40
    assert await redis.get(SHARDS_KEY) == b"4"
    buckets = await all_keys(redis, "r:{88.100*")
    assert {key_tag(k) for k in buckets} == set(shard_tags("88.100", 4))
    # A node started later with another count serves the store's own.
    async with served(node_config(redis_server.url, prefix_shards="1")) as node:
        again = (await node.get("/api/handles?prefix=88.100", headers=ADMIN_AUTH)).json()
        assert again == listed


# The watch reads one server's MONITOR: a single Redis's (a cluster refuses these itself).
@pytest.mark.parametrize("redis_server", ["redis"], indirect=True)
async def test_the_slot_watch_names_what_a_cluster_would_refuse(
    redis_server: StoreServer,
) -> None:
    client = Redis.from_url(redis_server.url)
    try:
        async with watching(redis_server.url) as watch:
            await client.mget("l:{88.100/0}", "l:{88.100/0}#")  # one slot: fine
            await client.mget("l:{88.100/0}", "l:{88.100/1}")
            pipe = client.pipeline(transaction=True)
            pipe.set("r:{88.100/0}:1", 1)
            pipe.set("r:{88.100/2}:1", 1)
            await pipe.execute()
            await client.eval("return redis.call('GET', KEYS[2])", 2, "a{x}", "b{y}")
            # A key the script names itself, outside its KEYS' slot.
            await client.eval("return redis.call('GET', 'l:{88.100/3}')", 1, "l:{88.100/1}")
        assert len(watch.problems) == 4, watch.problems
        assert watch.problems[0].startswith("command MGET spans 2 slots")
        assert watch.problems[1].startswith("transaction of")
        assert all(p.startswith("script") for p in watch.problems[2:])
    finally:
        await client.aclose()
