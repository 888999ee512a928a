"""Runs of members merged into the pages on real Redis (paged_index.lua's merge_run):
a few members by ZADD, a long run through a scratch skiplist, a page overflowing into
pieces (its first piece kept when nothing new falls in it, else rebuilt); ordered adds
(cut by binary search, as the store's scripts call them) and unordered ones (index
builds). Whatever the path, the set holds what a plain sorted set fed the same members
holds, every page is compact, within PAGE_MAX and its bounds, and no scratch key is
left."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from registry.paged_index import ADD_LUA, LUA, PAGE_MAX, READ_LUA, directory_key, page_key
from registry.redis_client import open_redis
from tests.command_stats import command_calls, reset_stats
from tests.conftest import StoreServer, all_keys

KEY = "v:{88.100}:url"


def ascii_only(first: int, stop: int) -> list[int]:
    """Numbers whose members sort as the numbers do (no 'é')."""
    return [n for n in range(first, stop) if n % 5]


ORDERED_ADD_LUA = LUA + "\nreturn paged_add(KEYS[1], ARGV, 1, #ARGV, true)\n"


def url(n: int) -> str:
    """Members whose text order is not their numbers' (and some beyond ASCII)."""
    return f"https://x.example/{'é' if n % 5 == 0 else ''}{n}\x0088.100/{n}"


async def check(redis: Redis, plain: set[str]) -> None:
    everything = sorted(plain, key=str.encode)
    read = redis.register_script(READ_LUA)
    found = cast(list[bytes], await read([KEY], ["range", "-", "+", 0, -1]))
    assert [m.decode() for m in found] == everything
    assert int(await redis.get(KEY) or 0) == len(everything)
    lows = [b.decode() for b in cast(list[bytes], await redis.zrange(directory_key(KEY), 0, -1))]
    assert (lows[:1] == [""]) == bool(everything)
    for n, low in enumerate(lows):
        page = page_key(KEY, low)
        members = [m.decode() for m in cast(list[bytes], await redis.zrange(page, 0, -1))]
        assert 0 < len(members) <= PAGE_MAX or (low == "" and not members)
        assert await redis.object("encoding", page) in (None, b"ziplist", b"listpack")
        upper = lows[n + 1] if n + 1 < len(lows) else None
        for m in members:
            assert m.encode() >= low.encode()
            assert upper is None or m.encode() < upper.encode()
    assert await all_keys(redis, "*#build") == []


async def scenario(url_: str, batches: list[tuple[bool, list[int]]]) -> None:
    redis = open_redis(url_)
    try:
        await redis.flushall()
        ordered, unordered = redis.register_script(ORDERED_ADD_LUA), redis.register_script(ADD_LUA)
        plain: set[str] = set()
        for in_order, numbers in batches:
            members = [url(n) for n in numbers]
            if in_order:
                members = sorted(set(members), key=str.encode)
                added = await ordered([KEY], members)
            else:
                added = await unordered([KEY], members)
            assert added == len(set(members) - plain)
            plain |= set(members)
            await check(redis, plain)
    finally:
        await redis.aclose()


@pytest.mark.parametrize(
    "batches",
    [
        pytest.param([(True, list(range(10)))], id="a few members, by ZADD"),
        pytest.param([(True, list(range(100)))], id="a long run, rebuilt"),
        pytest.param([(True, list(range(200))), (True, list(range(200)))], id="nothing new"),
        pytest.param(
            [(True, ascii_only(1000, 1250)), (True, ascii_only(1250, 1600))],
            id="appended: pages of its own",
        ),
        pytest.param(
            [(True, ascii_only(1000, 1100)), (True, ascii_only(1100, 1180))],
            id="appended, a quarter page: a page of its own",
        ),
        pytest.param(
            [(True, ascii_only(1000, 1320)), (True, ascii_only(1320, 1370))],
            id="appended, shorter: the first piece kept",
        ),
        pytest.param(
            [
                (True, ascii_only(1000, 1100) + ascii_only(3000, 3100)),
                (True, ascii_only(2000, 2100)),
            ],
            id="between a page's members: those above it moved to a page of their own",
        ),
        pytest.param(
            [(True, ascii_only(1000, 1250)), (True, ascii_only(100, 400))],
            id="in front: the first piece rebuilt",
        ),
        pytest.param(
            [(True, list(range(1000, 1250))), (True, list(range(1000, 1250, 2)) + [1251])],
            id="one new member overflows a full page",
        ),
        pytest.param(
            [(True, list(range(0, 3000, 3))), (True, list(range(1, 3000, 3)))],
            id="runs into many pages",
        ),
        pytest.param([(False, list(range(600, 0, -1)))], id="unordered, one by one"),
    ],
)
def test_runs_merge_into_pages_as_into_a_sorted_set(
    redis_server: StoreServer, batches: list[tuple[bool, list[int]]]
) -> None:
    asyncio.run(scenario(redis_server.url, batches))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.one_of(
                st.lists(st.integers(0, 2000), max_size=40),
                st.builds(
                    lambda start, size, step: list(range(start, start + size * step, step)),
                    st.integers(0, 2000),
                    st.integers(0, 600),
                    st.integers(1, 4),
                ),
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_batches_merge_into_pages_as_into_a_sorted_set(
    redis_server: StoreServer, batches: list[tuple[bool, list[int]]]
) -> None:
    asyncio.run(scenario(redis_server.url, batches))


def test_runs_in_order_are_written_once(redis_server: StoreServer) -> None:
    """A run past its page's members becomes a page of its own: Redis writes the new
    page once (one ZUNIONSTORE from the scratch set) and leaves the pages before it as
    they were; merged into them, their members would be rewritten with every run."""

    async def run() -> None:
        redis = open_redis(redis_server.url)
        try:
            await redis.flushall()
            ordered = redis.register_script(ORDERED_ADD_LUA)
            written: dict[bytes, list[bytes]] = {}
            for first in range(1000, 1500, 125):  # four runs of 100 members
                run = sorted((url(n) for n in ascii_only(first, first + 125)), key=str.encode)
                await reset_stats(redis)
                assert await ordered([KEY], run) == len(run)
                assert (await command_calls(redis))["zunionstore"] == 1
                for low, members in written.items():
                    assert await redis.zrange(page_key(KEY, low.decode()), 0, -1) == members
                lows = cast(list[bytes], await redis.zrange(directory_key(KEY), 0, -1))
                assert len(lows) == len(written) + 1
                for low in lows:
                    page = await redis.zrange(page_key(KEY, low.decode()), 0, -1)
                    written[low] = cast(list[bytes], page)
            await check(redis, {url(n) for n in ascii_only(1000, 1500)})
        finally:
            await redis.aclose()

    asyncio.run(run())
