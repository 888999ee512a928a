"""resolver.recursion: the Resolver against a real Redis and real HTTP "other nodes".

The other nodes are :class:`FakeNode`: a real aiohttp server on 127.0.0.1 whose answers
(record, 404, referral, 500, delay, down) the test sets; it fakes at the wire only. Time
is a :class:`FakeClock` handed to the classes' ``clock`` parameters, so no test sleeps
for a TTL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from registry.errors import UpstreamTimeout, UpstreamUnavailable
from registry.identifier import Handle, Prefix
from resolver.answer_cache import AnswerCache, cache_key
from resolver.cache import CachePolicy, CacheStatus, Outcome
from resolver.recursion import Follow, Resolution, Resolver
from resolver.target import TargetPolicy
from resolver.upstream import Upstream
from resolver.walk import Hop
from tests.conftest import all_keys
from tests.resolver.conftest import LOOPBACK, T0, FakeClock, FakeNode, value

HANDLE = Handle.parse("88.101.1/ABC")
KEY = HANDLE.key  # "88.101.1/abc"
ASKED_FOR = Prefix("88.101")  # what the first node is asked as responsible for
POLICY = CachePolicy(max_ttl=3600.0, negative_ttl=10.0, max_stale=1000.0, local_ttl=2.0)


def canonical(handle: str, values: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"responseCode": 1, "handle": handle, "values": values})


def make_resolver(
    redis: Redis,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    *,
    policy: CachePolicy = POLICY,
    timeout: float = 2.0,
    follow: Follow | None = None,
    targets: TargetPolicy = LOOPBACK,
) -> Resolver:
    cache = AnswerCache(redis, policy, clock)
    upstream = Upstream(session, timeout=timeout, policy=LOOPBACK)
    return Resolver(cache, upstream, follow=follow, policy=targets, clock=clock)


class Feeds:
    """Records what a resolver tells its ``follow``: the nodes about to be asked."""

    def __init__(self, *, following: bool = True) -> None:
        self.followed: list[str] = []
        self.prefixes: list[Prefix | None] = []
        self.following = following

    async def follow(self, node: str, prefix: Prefix | None) -> bool:
        self.followed.append(node)
        self.prefixes.append(prefix)
        return self.following


def at(url: str | None) -> Callable[[Handle], Awaitable[Hop | None]]:
    async def locate(handle: Handle) -> Hop | None:
        return None if url is None else Hop(url, ASKED_FOR)

    return locate


async def resolve(resolver: Resolver, node: FakeNode) -> Resolution:
    resolution = await resolver.resolve(HANDLE, at(node.url))
    assert resolution is not None
    return resolution


def cast_bytes(raw: object) -> bytes:
    assert isinstance(raw, bytes)
    return raw


# --- MISS, HIT, HIT from Redis ------------------------------------------------------------


async def test_miss_then_local_hit_then_redis_hit(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    resolver = make_resolver(redis, session, clock)

    first = await resolve(resolver, node)
    assert (first.status, first.age) == (CacheStatus.MISS, 0)
    assert first.entry.outcome is Outcome.FOUND
    assert first.entry.body == canonical(HANDLE.text, node.values)
    assert first.entry.source == node.url
    assert (first.entry.fetched_at, first.entry.fresh_until) == (T0, T0 + 300)
    assert node.handle_requests == [HANDLE.text]

    # Redis holds it for its fresh life plus the stale window.
    pttl = await redis.pttl(cache_key(KEY))
    assert (300 + 1000) * 1000 - 5000 < pttl <= (300 + 1000) * 1000

    # Within local_ttl: the in-process copy answers, even if Redis changed meanwhile.
    other = first.entry.body.replace(b"example.com/1", b"example.com/9")
    raw = cast_bytes(await redis.get(cache_key(KEY)))
    await redis.set(cache_key(KEY), raw.replace(first.entry.body, other), keepttl=True)
    clock.advance(1.5)
    second = await resolve(resolver, node)
    assert (second.status, second.age) == (CacheStatus.HIT, 1)
    assert second.entry.body == first.entry.body

    # After local_ttl the answer comes from Redis (the altered copy proves it).
    clock.advance(3.7)
    assert resolver.cache.local(KEY) is None
    third = await resolve(resolver, node)
    assert (third.status, third.age) == (CacheStatus.HIT, 5)
    assert third.entry.body == other
    assert third.entry.source == node.url
    assert resolver.cache.local(KEY) is not None  # kept in process again
    assert node.count == 1


# --- single flight ----------------------------------------------------------------------


async def test_concurrent_resolves_share_one_upstream_request(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    resolver = make_resolver(redis, session, clock)
    node.delay = 0.2
    results = await asyncio.gather(*(resolve(resolver, node) for _ in range(50)))
    assert node.count == 1
    assert {r.status for r in results} == {CacheStatus.MISS}
    assert len({r.entry for r in results}) == 1
    assert results[0].entry.body == canonical(HANDLE.text, node.values)
    assert (await resolve(resolver, node)).status is CacheStatus.HIT
    assert node.count == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    resolver = make_resolver(redis, session, clock)
    node.delay = 0.2
    leaving = asyncio.create_task(resolve(resolver, node))  # starts the flight
    staying = asyncio.create_task(resolve(resolver, node))
    await asyncio.wait_for(node.asked.wait(), 1.0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    late = asyncio.create_task(resolve(resolver, node))  # joins the same flight
    got, joined = await asyncio.wait_for(asyncio.gather(staying, late), 1.0)
    assert got.status is joined.status is CacheStatus.MISS
    assert got.entry == joined.entry
    assert got.entry.body == canonical(HANDLE.text, node.values)
    assert node.count == 1
    assert await redis.exists(cache_key(KEY)) == 1


# --- not found --------------------------------------------------------------------------


async def test_not_found_is_cached_for_negative_ttl(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    resolver = make_resolver(redis, session, clock)
    node.mode = "missing"
    first = await resolve(resolver, node)
    assert first.status is CacheStatus.MISS
    assert first.entry.outcome is Outcome.NOT_FOUND
    assert orjson.loads(first.entry.body)["responseCode"] == 100
    assert first.entry.fresh_until == T0 + POLICY.negative_ttl
    pttl = await redis.pttl(cache_key(KEY))
    assert 5000 < pttl <= 10_000  # no stale window for a "not found"

    clock.advance(9.5)  # past local_ttl, so this HIT is from Redis
    second = await resolve(resolver, node)
    assert (second.status, second.entry.outcome, second.age) == (
        CacheStatus.HIT,
        Outcome.NOT_FOUND,
        9,
    )
    assert node.count == 1

    clock.advance(0.5)  # negative_ttl over: ask again, and the handle now exists
    node.mode = "record"
    third = await resolve(resolver, node)
    assert (third.status, third.entry.outcome) == (CacheStatus.MISS, Outcome.FOUND)
    assert node.count == 2


# --- stale and failures -----------------------------------------------------------------


@pytest.mark.parametrize("failure", ["down", "500"])
async def test_stale_is_served_while_the_node_fails_then_the_error(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode, failure: str
) -> None:
    resolver = make_resolver(redis, session, clock)
    node.values = [value(ttl=60)]
    fresh = await resolve(resolver, node)
    assert fresh.entry.fresh_until == T0 + 60
    if failure == "down":
        await node.stop()
    else:
        node.mode = "fail"

    clock.advance(61)
    stale = await resolve(resolver, node)
    assert (stale.status, stale.age) == (CacheStatus.STALE, 61)
    assert stale.entry.body == fresh.entry.body

    clock.now = T0 + 60 + POLICY.max_stale - 1  # last second of the stale window
    assert (await resolve(resolver, node)).status is CacheStatus.STALE

    clock.now = T0 + 60 + POLICY.max_stale
    with pytest.raises(UpstreamUnavailable) as raised:
        await resolve(resolver, node)
    assert raised.value.http_status == 502
    assert node.url in raised.value.message


async def test_a_timeout_without_anything_stale_is_upstream_timeout(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    resolver = make_resolver(redis, session, clock, timeout=0.2)
    node.delay = 1.0
    with pytest.raises(UpstreamTimeout) as raised:
        await resolve(resolver, node)
    assert raised.value.http_status == 504
    assert node.url in raised.value.message
    assert await redis.exists(cache_key(KEY)) == 0


async def test_a_timeout_with_a_stale_entry_serves_it(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    resolver = make_resolver(redis, session, clock, timeout=0.2)
    first = await resolve(resolver, node)
    clock.advance(301)
    node.delay = 1.0
    stale = await resolve(resolver, node)
    assert (stale.status, stale.age, stale.entry) == (CacheStatus.STALE, 301, first.entry)


async def test_not_found_is_never_served_stale(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    resolver = make_resolver(redis, session, clock)
    node.mode = "missing"
    await resolve(resolver, node)
    clock.advance(11)
    assert await redis.exists(cache_key(KEY)) == 1  # still there to be (wrongly) served
    await node.stop()
    with pytest.raises(UpstreamUnavailable) as raised:
        await resolve(resolver, node)
    assert node.url in raised.value.message


# --- referrals --------------------------------------------------------------------------


async def test_a_referral_is_followed_to_the_answering_node(
    redis: Redis,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    node: FakeNode,
    other: FakeNode,
) -> None:
    feeds = Feeds()
    resolver = make_resolver(redis, session, clock, follow=feeds.follow)
    node.mode, node.referral = "refer", other.url + "/"
    got = await resolve(resolver, node)
    assert got.status is CacheStatus.MISS
    assert got.entry.source == other.url
    assert got.entry.body == canonical(HANDLE.text, other.values)
    assert (node.count, other.count) == (1, 1)
    assert feeds.followed == [node.url, other.url]  # each before it was asked
    assert feeds.prefixes == [ASKED_FOR, Prefix("88.101.1")]  # ... for what it answers


async def test_a_referral_loop_is_refused(
    redis: Redis,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    node: FakeNode,
    other: FakeNode,
) -> None:
    resolver = make_resolver(redis, session, clock)
    node.mode, node.referral = "refer", other.url
    other.mode, other.referral = "refer", node.url
    with pytest.raises(UpstreamUnavailable) as raised:
        await resolve(resolver, node)
    assert "loop" in raised.value.message
    assert (node.count, other.count) == (1, 1)
    assert await all_keys(redis, "k:*") == []


# --- locate, follow ---------------------------------------------------------------------


async def test_nothing_to_locate_resolves_to_none_and_caches_nothing(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    located: list[Handle] = []
    feeds = Feeds()

    async def locate(handle: Handle) -> Hop | None:
        located.append(handle)
        return None

    resolver = make_resolver(redis, session, clock, follow=feeds.follow)
    assert await resolver.resolve(HANDLE, locate) is None
    assert await resolver.resolve(HANDLE, locate) is None
    assert located == [HANDLE, HANDLE]
    assert await all_keys(redis, "k:*") == []
    assert resolver.cache.local(KEY) is None
    assert (node.count, feeds.followed) == (0, [])


async def test_follow_is_told_of_the_node_once_per_fetch(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    feeds = Feeds()
    resolver = make_resolver(redis, session, clock, follow=feeds.follow)
    await resolve(resolver, node)
    clock.advance(1)
    assert (await resolve(resolver, node)).status is CacheStatus.HIT
    assert feeds.followed == [node.url]  # the fetch only: a hit asks nobody


# --- invalidation race, TTL 0 -----------------------------------------------------------


async def test_an_invalidation_during_the_fetch_keeps_the_answer_out_of_the_cache(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    resolver = make_resolver(redis, session, clock)
    node.delay = 0.3
    fetching = asyncio.create_task(resolve(resolver, node))
    await asyncio.wait_for(node.asked.wait(), 1.0)  # asked, not yet answered
    clock.advance(0.1)
    await resolver.cache.invalidate([KEY])
    got = await asyncio.wait_for(fetching, 2.0)
    assert got.status is CacheStatus.MISS
    assert got.entry.body == canonical(HANDLE.text, node.values)
    assert await redis.exists(cache_key(KEY)) == 0
    assert resolver.cache.local(KEY) is None

    node.delay = 0.0
    clock.advance(0.1)
    again = await resolve(resolver, node)
    assert again.status is CacheStatus.MISS
    assert node.count == 2
    assert (await resolve(resolver, node)).status is CacheStatus.HIT  # cached this time


async def test_a_ttl_zero_record_is_fetched_every_time(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    resolver = make_resolver(redis, session, clock)
    node.values = [value(1, ttl=86400), value(2, ttl=0)]
    assert (await resolve(resolver, node)).status is CacheStatus.MISS
    assert (await resolve(resolver, node)).status is CacheStatus.MISS
    assert node.count == 2
    assert resolver.cache.local(KEY) is None


async def test_a_ttl_zero_record_is_not_stored(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    resolver = make_resolver(redis, session, clock)
    node.values = [value(1, ttl=86400), value(2, ttl=0)]
    await resolve(resolver, node)
    assert await all_keys(redis, "k:*") == []


async def test_a_ttl_zero_record_is_never_served_stale(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    resolver = make_resolver(redis, session, clock)
    node.values = [value(1, ttl=0)]
    await resolve(resolver, node)
    await node.stop()
    clock.advance(1)
    with pytest.raises(UpstreamUnavailable):
        await resolve(resolver, node)


# --- auth=true: an authoritative resolution, bypassing the cache ------------------------


async def test_an_authoritative_resolution_asks_the_node_and_refreshes_the_cache(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    """The manual's ``auth=true``: "perform an authoritative resolution, bypassing cache
    and sending the request to a primary server". Its answer refreshes the cache."""
    resolver = make_resolver(redis, session, clock)
    first = await resolve(resolver, node)
    node.values = [value(index=2)]
    assert (await resolve(resolver, node)).entry.body == first.entry.body  # cached
    fresh = await resolver.resolve(HANDLE, at(node.url), fresh=True)
    assert fresh is not None and fresh.status is CacheStatus.MISS
    assert fresh.entry.body == canonical(HANDLE.text, node.values)
    assert node.count == 2
    after = await resolve(resolver, node)  # the cache holds the new answer
    assert after.status is CacheStatus.HIT and after.entry.body == fresh.entry.body


async def test_an_authoritative_resolution_never_serves_stale(
    redis: Redis, session: aiohttp.ClientSession, clock: FakeClock, node: FakeNode
) -> None:
    resolver = make_resolver(redis, session, clock)
    node.values = [value(ttl=60)]
    await resolve(resolver, node)
    node.mode = "fail"
    assert (await resolve(resolver, node)).status is CacheStatus.HIT  # fresh still
    with pytest.raises(UpstreamUnavailable):
        await resolver.resolve(HANDLE, at(node.url), fresh=True)
    clock.advance(61)
    assert (await resolve(resolver, node)).status is CacheStatus.STALE  # plain: stale
    with pytest.raises(UpstreamUnavailable):
        await resolver.resolve(HANDLE, at(node.url), fresh=True)
