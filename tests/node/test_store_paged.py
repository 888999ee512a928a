"""The paged indexes on real Redis, written by the store's own commit scripts: after
any sequence of batches and single commits, the listing and the URL index hold what a
plain sorted set fed the same entries holds, and every paged read (ranges with offsets,
counts, scores) answers as ZRANGEBYLEX, ZLEXCOUNT and ZSCORE on the plain set do."""

from __future__ import annotations

import asyncio
from typing import cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.identifier import Handle, Prefix
from registry.index_policy import IndexPolicy
from registry.paged_index import PAGE_MAX, READ_LUA, directory_key, page_key
from registry.record import HandleRecord
from registry.record_keys import listing_key, value_index_key
from registry.redis_client import open_redis
from registry.search import ValuePattern, member, split_member
from registry.store import HandleStore
from registry.value import DataFormat, HandleValue
from tests.conftest import StoreServer

NOW = "2026-12-03T00:00:00Z"
LISTING, URLS = listing_key("88.100"), value_index_key("88.100", "url")


def name(n: int) -> str:
    """Suffixes whose text order is not their numbers' (and some beyond ASCII)."""
    return f"é{n}" if n % 7 == 0 else str(n)


def record(n: int, version: int) -> HandleRecord:
    url = f"https://x.example/{n % 40}/{version}"
    value = HandleValue(1, "URL", DataFormat.STRING, url, 86400, NOW)
    return HandleRecord(Handle.parse(f"88.100/{name(n)}"), (value,))


# A step: write (else delete) these records, as one batch (else one commit each).
steps = st.lists(
    st.tuples(st.booleans(), st.booleans(), st.lists(st.integers(0, 1500), max_size=400)),
    min_size=1,
    max_size=6,
)
bound = st.one_of(
    st.just("-"),
    st.builds(
        lambda side, head: side + head,
        st.sampled_from("[("),
        st.sampled_from(["1", "2", "5", "9", "é", "https://x.example/1", "https://x.example/3"]),
    ),
)


async def scenario(url: str, plan: list[tuple[bool, bool, list[int]]], reads: list[object]) -> None:
    redis = open_redis(url)
    try:
        await redis.flushall()
        store = HandleStore(redis, indexes=IndexPolicy(), record_buckets=64)
        read = redis.register_script(READ_LUA)
        for version, (writing, batched, numbers) in enumerate(plan):
            chosen = list(dict.fromkeys(numbers))
            handles = [Handle.parse(f"88.100/{name(n)}") for n in chosen]
            loaded = await store.load_many(handles)
            changes = [
                (before, record(n, version) if writing else None)
                for n, before in zip(chosen, loaded, strict=True)
                if writing or before is not None
            ]
            if batched:
                async with store.watched(handles) as batch:
                    done = await batch.commit([c for c in changes])
            else:
                done = await store.commit_many(changes)
            assert all(done)
            # The plain sorted sets, fed the same entries.
            pipe = redis.pipeline(transaction=False)
            for before, after in changes:
                if before is not None:
                    old = cast(str, before.record.values[0].value).lower()
                    pipe.zrem("plain:u", member(old, before.record.handle.suffix))
                if after is None:
                    assert before is not None
                    pipe.zrem("plain:l", before.record.handle.suffix)
                else:
                    new = cast(str, after.values[0].value).lower()
                    pipe.zadd("plain:l", {after.handle.suffix: 0})
                    pipe.zadd("plain:u", {member(new, after.handle.suffix): 0})
            await pipe.execute()

        for paged, plain in ((LISTING, "plain:l"), (URLS, "plain:u")):
            everything = cast(list[bytes], await redis.zrange(plain, 0, -1))
            assert await read([paged], ["range", "-", "+", 0, -1]) == everything
            assert int(await redis.get(paged) or 0) == len(everything)
            # The pages: within their size, compact, the directory's bounds in order.
            lows = cast(list[bytes], await redis.zrange(directory_key(paged), 0, -1))
            assert (lows[:1] == [b""]) == bool(everything)
            for lowest in lows:
                page = page_key(paged, lowest.decode())
                if lowest:
                    assert await redis.zcard(page) > 0
                assert await redis.zcard(page) <= PAGE_MAX
                assert await redis.object("encoding", page) in (None, b"ziplist", b"listpack")
            for low, given, offset, limit in cast(list[tuple[str, str, int, int]], reads):
                high = "+" if given == "-" else given  # '-' is no upper bound
                assert await read([paged], ["range", low, high, offset, limit]) == (
                    await redis.zrangebylex(plain, low, high, offset, limit)
                    if limit >= 0 or offset
                    else await redis.zrangebylex(plain, low, high)
                ), (paged, low, high, offset, limit)
                assert await read([paged], ["count", low, high]) == await redis.zlexcount(
                    plain, low, high
                )
            probes = [*everything[::5], b"nothing", b"https://x.example/1/0\x00zz"]
            scores = await read([paged], ["scores", *probes])
            assert [s is not None for s in scores] == [m in everything for m in probes]

        # The store's own reads over the pages: listings page by page, a search.
        members = [m.decode() for m in cast(list[bytes], await redis.zrange("plain:l", 0, -1))]
        total, first = await store.list_handles(Prefix("88.100"), 3, 17)
        assert (total, first) == (len(members), [f"88.100/{m}" for m in members[51:68]])
        hits = await store.search([ValuePattern.parse("URL", "*example/1*")], 100_000)
        plain_hits = [
            f"88.100/{split_member(raw)[1]}"
            for raw in cast(list[bytes], await redis.zrange("plain:u", 0, -1))
            if raw.startswith(b"https://x.example/1")
        ]
        assert hits == plain_hits
    finally:
        await redis.aclose()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps,
    st.lists(st.tuples(bound, bound, st.integers(0, 300), st.integers(-1, 400)), max_size=6),
)
def test_paged_indexes_hold_and_read_as_plain_sorted_sets(
    redis_server: StoreServer, plan: list[tuple[bool, bool, list[int]]], reads: list[object]
) -> None:
    asyncio.run(scenario(redis_server.url, plan, reads))
