"""The upgrade from layout 5 (each listing and value index one sorted set) to layout 6
(paged sorted sets, registry.paged_index), on real Redis: every listing, reverse lookup
and query answers as before, every page is compact, and a node killed (SIGKILL) in the
middle of the step loses and doubles nothing: the next start finishes it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import cast

from redis.asyncio import Redis

from registry.identifier import Prefix
from registry.index_policy import IndexPolicy
from registry.paged_index import OLD_SET, PAGE_MAX, directory_key, is_paged, page_key, set_of
from registry.store import LAYOUT, LAYOUT_KEY, HandleStore
from tests.conftest import StoreServer, index_members
from tests.node.test_store_upgrade import answers, expected, mixed_case, pack

EVERY = IndexPolicy(every=True)


async def to_layout_5(redis: Redis) -> list[str]:
    """Turn every paged index back into the one sorted set layout 5 kept, at the set's
    own key; returns those keys."""
    sets = sorted(
        {
            set_of(key.decode())[0]
            async for key in redis.scan_iter(count=1000)
            if is_paged(key.decode())
        }
    )
    for key in sets:
        members = await index_members(redis, key)
        lows = cast(list[bytes], await redis.zrange(directory_key(key), 0, -1))
        await redis.delete(key, directory_key(key), *[page_key(key, b.decode()) for b in lows])
        for start in range(0, len(members), 10_000):
            await redis.zadd(key, dict.fromkeys(members[start : start + 10_000], 0))
    await redis.set(LAYOUT_KEY, b"5")
    return sets


async def test_a_layout_5_store_answers_the_same_in_pages(redis: Redis) -> None:
    count = 1_000
    store = HandleStore(redis, indexes=EVERY, record_buckets=64)
    await store.upgrade()
    await store.commit_many([(None, pack(n)) for n in range(count)] + [(None, mixed_case())])
    sets = await to_layout_5(redis)
    assert "l:{88.100}" in sets and await redis.type("l:{88.100}") == b"zset"
    upgraded = HandleStore(redis, indexes=EVERY, record_buckets=64)
    assert await upgraded.upgrade() == count + 1  # the listings' members: the records
    assert await redis.get(LAYOUT_KEY) == LAYOUT
    assert await answers(upgraded, count) == expected(count)
    for key in sets:
        assert await redis.type(key) == b"string"  # the set's counter
        assert await redis.exists(key + OLD_SET) == 0
        for low in cast(list[bytes], await redis.zrange(directory_key(key), 0, -1)):
            page = page_key(key, low.decode())
            assert 0 < await redis.zcard(page) <= PAGE_MAX
            assert await redis.object("encoding", page) in (b"ziplist", b"listpack")
    # Writes after the upgrade go into the pages; listing offsets still hold.
    await upgraded.commit_many([(None, pack(n)) for n in range(count, count + 300)])
    total, handles = await upgraded.list_handles(Prefix("88.100"), 5, 100)
    assert total == count + 300
    assert handles == [f"88.100/Pack-{n:05d}" for n in range(500, 600)]
    assert await HandleStore(redis, indexes=EVERY).upgrade() == 0  # done once


_UPGRADE = """
import asyncio, sys
from registry.redis_client import open_redis
from registry.index_policy import IndexPolicy
from registry.store import HandleStore
asyncio.run(HandleStore(open_redis(sys.argv[1]), indexes=IndexPolicy(every=True)).upgrade())
"""


async def test_a_node_killed_while_it_pages_an_index_loses_nothing(
    redis: Redis, redis_server: StoreServer
) -> None:
    count = 300_000
    key, old = "l:{88.100}", "l:{88.100}" + OLD_SET
    names = [f"Pack-{n:06d}".encode() for n in range(count)]
    for start in range(0, count, 20_000):
        await redis.zadd(key, dict.fromkeys(names[start : start + 20_000], 0))
    await redis.set(LAYOUT_KEY, b"5")

    async def halfway() -> bool:
        return bool(await redis.exists(old)) and int(await redis.get(key) or 0) > 0

    upgrading = subprocess.Popen([sys.executable, "-c", _UPGRADE, redis_server.url])
    try:
        # Killed once part of the set is in pages, part still in the old one.
        deadline = time.monotonic() + 60
        while not await halfway():
            assert upgrading.poll() is None, "the upgrade ended before it was stopped"
            assert time.monotonic() < deadline
            await asyncio.sleep(0)
    finally:
        upgrading.kill()
        upgrading.wait()
    paged, left = int(await redis.get(key) or 0), await redis.zcard(old)
    assert 0 < paged < count and paged + left == count  # each member in one place
    assert await redis.get(LAYOUT_KEY) == b"5"
    again = HandleStore(redis, indexes=EVERY)
    await again.upgrade()
    assert await redis.get(LAYOUT_KEY) == LAYOUT
    assert await redis.exists(old) == 0
    assert await index_members(redis, key) == names
    total, page = await again.list_handles(Prefix("88.100"), 2_999, 100)
    assert (total, page) == (count, [f"88.100/{n.decode()}" for n in names[299_900:]])
