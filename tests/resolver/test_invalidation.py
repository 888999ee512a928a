"""resolver.invalidation: the Follower reads change feeds over real HTTP and drops answers.

Feeds come from :class:`FakeNode` (a real aiohttp server answering queued pages), and
once from a real secondary node served by uvicorn; the cache is on the session's Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import uvicorn
from redis.asyncio import Redis

from node.app import create_app
from registry.change_feed import StreamId
from registry.identifier import Handle, Prefix
from registry.redis_client import open_redis
from resolver.answer_cache import AnswerCache, cache_key, source_key
from resolver.cache import CacheEntry, CachePolicy, CacheStatus, Outcome
from resolver.invalidation import CURSORS_KEY, MAX_PAGES_PER_ROUND, PAGE, SKEW_MARGIN, Follower
from resolver.recursion import Resolver
from resolver.target import TargetPolicy
from resolver.upstream import Upstream
from resolver.walk import Hop
from tests.conftest import ADMIN_AUTH, StoreServer, all_keys, node_config
from tests.resolver.conftest import LOOPBACK, T0, FakeClock, FakeNode

POLICY = CachePolicy(max_ttl=3600.0, negative_ttl=10.0, max_stale=1000.0, local_ttl=2.0)
START = StreamId.at(T0 - SKEW_MARGIN)  # where a node tracked at T0 is followed from
P100 = Prefix("88.100")  # what the node whose feed is read answers for


def page(
    handles: list[str], next_: str, *, epoch: str = "E1", more: bool = False, gap: bool = False
) -> dict[str, Any]:
    return {
        "responseCode": 1,
        "epoch": epoch,
        "handles": handles,
        "next": next_,
        "more": more,
        "gap": gap,
    }


def entry(clock: FakeClock, source: str = "http://127.0.0.1:1") -> CacheEntry:
    body = b'{"responseCode":1,"handle":"88.100/x","values":[]}'
    return CacheEntry(Outcome.FOUND, body, source, clock(), clock() + 300)


@pytest.fixture
def feed(node: FakeNode) -> FakeNode:
    return node


@pytest.fixture
def cache(redis: Redis, clock: FakeClock) -> AnswerCache:
    return AnswerCache(redis, POLICY, clock)


@pytest.fixture
def follower(
    redis: Redis, cache: AnswerCache, session: aiohttp.ClientSession, clock: FakeClock
) -> Follower:
    return Follower(
        redis, cache, Upstream(session, timeout=1.0, policy=LOOPBACK), interval=1.0, clock=clock
    )


async def fill(
    cache: AnswerCache, clock: FakeClock, *keys: str, source: str = "http://127.0.0.1:1"
) -> None:
    for key in keys:
        assert await cache.put(key, entry(clock, source), asked_at=clock())
        assert cache.local(key) is not None


async def cached(redis: Redis) -> set[str]:
    return {k.decode() if isinstance(k, bytes) else k for k in await all_keys(redis, "k:*")}


async def cursor(redis: Redis, node: str) -> bytes | None:
    """The epoch and cursor saved for ``node`` (not when it was asked, nor for what)."""
    raw = await redis.hget(CURSORS_KEY, node)
    assert raw is None or isinstance(raw, bytes)
    return None if raw is None else b" ".join(raw.split(b" ")[:2])


# --- track ------------------------------------------------------------------------------


async def test_track_saves_a_cursor_just_before_the_fetch_once(
    redis: Redis, follower: Follower
) -> None:
    await follower.track("http://127.0.0.1:8001", P100, T0)
    assert str(START) == "1699999995000-0"
    assert await cursor(redis, "http://127.0.0.1:8001") == b" 1699999995000-0"
    await follower.track("http://127.0.0.1:8001", P100, T0 + 100)  # already followed
    assert await cursor(redis, "http://127.0.0.1:8001") == b" 1699999995000-0"
    assert follower.nodes == ["http://127.0.0.1:8001"]


# --- follow -----------------------------------------------------------------------------


async def test_follow_starts_at_the_feeds_own_cursor_once(
    redis: Redis, follower: Follower, feed: FakeNode
) -> None:
    feed.pages = [page([], "1700000002000-4", epoch="E7")]
    await follower.follow(feed.url, P100)
    assert feed.change_queries == [{}]  # "from now on": no cursor, no clock of ours
    assert await cursor(redis, feed.url) == b"E7 1700000002000-4"
    await follower.follow(feed.url, P100)
    await follower.track(feed.url, P100, T0 + 100)
    assert len(feed.change_queries) == 1
    assert await cursor(redis, feed.url) == b"E7 1700000002000-4"


async def test_overlapping_first_follows_keep_the_earlier_cursor(
    redis: Redis, follower: Follower, feed: FakeNode
) -> None:
    feed.delay = 0.05
    feed.pages = [page([], "1700000002000-9"), page([], "1700000001000-0")]
    await asyncio.gather(follower.follow(feed.url, P100), follower.follow(feed.url, P100))
    assert len(feed.change_queries) == 2
    assert await cursor(redis, feed.url) == b"E1 1700000001000-0"


async def test_a_feed_that_cannot_be_read_is_followed_from_the_skew_margin_once(
    redis: Redis, follower: Follower, feed: FakeNode
) -> None:
    feed.mode = "fail"
    await follower.follow(feed.url, P100)
    assert await cursor(redis, feed.url) == f" {START}".encode()  # now (T0) minus the margin
    await follower.follow(feed.url, P100)  # not tried again: one failed read per node, not per miss
    await follower.track(feed.url, P100, T0 + 100)
    assert len(feed.change_queries) == 1
    assert await cursor(redis, feed.url) == f" {START}".encode()
    assert follower.nodes == [feed.url]


# --- poll_once --------------------------------------------------------------------------


async def test_poll_drops_exactly_the_listed_handles_and_saves_the_cursor(
    redis: Redis, cache: AnswerCache, clock: FakeClock, follower: Follower, feed: FakeNode
) -> None:
    await fill(cache, clock, "88.100/a", "88.100/b", "88.100/c")
    await follower.track(feed.url, P100, T0)
    feed.pages = [page(["88.100/a", "88.100/b", "88.100/never-cached"], "1700000001000-7")]

    assert await follower.poll_once() == 2  # what Redis held
    assert await cached(redis) == {"k:88.100/c"}
    assert cache.local("88.100/a") is None and cache.local("88.100/b") is None
    assert cache.local("88.100/c") is not None
    assert feed.change_queries == [{"after": str(START), "limit": str(PAGE)}]
    assert await cursor(redis, feed.url) == b"E1 1700000001000-7"

    # The next round reads on from the saved cursor.
    assert await follower.poll_once() == 0
    assert feed.change_queries[-1]["after"] == "1700000001000-7"
    assert await cached(redis) == {"k:88.100/c"}


async def test_more_pages_are_read_in_the_same_round(
    redis: Redis, cache: AnswerCache, clock: FakeClock, follower: Follower, feed: FakeNode
) -> None:
    await fill(cache, clock, "88.100/a", "88.100/b", "88.100/c", "88.100/d")
    await follower.track(feed.url, P100, T0)
    feed.pages = [
        page(["88.100/a"], "1700000000000-1", more=True),
        page(["88.100/b"], "1700000000000-2", more=True),
        page(["88.100/c"], "1700000000500-0"),
    ]
    assert await follower.poll_once() == 3
    assert [q["after"] for q in feed.change_queries] == [
        str(START),
        "1700000000000-1",
        "1700000000000-2",
    ]
    assert await cached(redis) == {"k:88.100/d"}
    assert await cursor(redis, feed.url) == b"E1 1700000000500-0"


async def test_a_round_reads_at_most_max_pages(
    redis: Redis, cache: AnswerCache, clock: FakeClock, follower: Follower, feed: FakeNode
) -> None:
    await follower.track(feed.url, P100, T0)
    feed.pages = [
        page([], f"1700000000000-{n}", more=True) for n in range(1, MAX_PAGES_PER_ROUND + 5)
    ]
    assert await follower.poll_once() == 0
    assert len(feed.change_queries) == MAX_PAGES_PER_ROUND
    last = f"E1 1700000000000-{MAX_PAGES_PER_ROUND}".encode()
    assert await cursor(redis, feed.url) == last
    # The next round continues where this one stopped.
    await follower.poll_once()
    assert feed.change_queries[MAX_PAGES_PER_ROUND]["after"] == last.decode().split()[1]


async def test_a_gap_drops_only_the_answers_of_that_node(
    redis: Redis, cache: AnswerCache, clock: FakeClock, follower: Follower, feed: FakeNode
) -> None:
    await fill(cache, clock, "88.100/a", "88.100/b", source=feed.url)
    await fill(cache, clock, "88.101/b", "88.102.7/c", "88.100.5/d")  # other nodes' answers
    await follower.track(feed.url, P100, T0)
    feed.pages = [page(["88.100/a"], "1700000001000-0", gap=True)]
    assert await follower.poll_once() == 2
    assert await cached(redis) == {"k:88.101/b", "k:88.102.7/c", "k:88.100.5/d"}
    assert cache.local("88.100/b") is None and cache.local("88.101/b") is not None
    assert cache.local("88.100.5/d") is not None
    assert await cursor(redis, feed.url) == b"E1 1700000001000-0"


async def test_a_nodes_source_set_holds_only_what_the_cache_holds(
    redis: Redis, cache: AnswerCache, clock: FakeClock
) -> None:
    """The set naming a node's cached answers is trimmed as entries expire: a busy node
    does not make it grow with every handle ever resolved through it."""
    node = "http://127.0.0.1:1"
    for n in range(50):
        await cache.put(f"88.100/old-{n}", entry(clock, node), asked_at=clock())
    assert await redis.zcard(source_key(node)) == 50
    clock.advance(POLICY.longest_keep + 1)  # every one of them has expired by now
    await cache.put("88.100/new", entry(clock, node), asked_at=clock())
    assert await redis.zrange(source_key(node), 0, -1) == [b"88.100/new"]


async def test_a_new_epoch_drops_only_the_answers_of_that_node(
    redis: Redis, cache: AnswerCache, clock: FakeClock, follower: Follower, feed: FakeNode
) -> None:
    await follower.track(feed.url, P100, T0)
    await fill(cache, clock, "88.100/a", "88.100/b", source=feed.url)
    await fill(cache, clock, "88.101/c")
    feed.pages = [page([], "1700000001000-0", epoch="E1")]  # the first epoch seen: kept
    await follower.poll_once()
    assert await cached(redis) == {"k:88.100/a", "k:88.100/b", "k:88.101/c"}

    clock.advance(1)
    feed.pages = [page([], "1700000002000-0", epoch="E1")]  # same epoch: kept
    await follower.poll_once()
    assert await cached(redis) == {"k:88.100/a", "k:88.100/b", "k:88.101/c"}

    feed.pages = [page([], "5-0", epoch="E2")]  # the node's store was replaced
    await follower.poll_once()
    assert await cached(redis) == {"k:88.101/c"}
    assert cache.local("88.100/a") is None
    assert await cursor(redis, feed.url) == b"E2 5-0"


@pytest.mark.parametrize("failure", ["down", "500"])
async def test_a_node_that_fails_is_skipped_this_round(
    redis: Redis,
    cache: AnswerCache,
    clock: FakeClock,
    follower: Follower,
    feed: FakeNode,
    failure: str,
) -> None:
    await fill(cache, clock, "88.100/a")
    await follower.track(feed.url, P100, T0)
    if failure == "down":
        await feed.stop()
    else:
        feed.mode = "fail"
    assert await follower.poll_once() == 0
    assert await cursor(redis, feed.url) == f" {START}".encode()
    assert await cached(redis) == {"k:88.100/a"}
    assert follower.nodes == [feed.url]


async def test_a_new_follower_loads_the_saved_cursors(
    redis: Redis,
    cache: AnswerCache,
    clock: FakeClock,
    follower: Follower,
    feed: FakeNode,
    session: aiohttp.ClientSession,
) -> None:
    await follower.track(feed.url, P100, T0)
    feed.pages = [page([], "1700000003000-4", epoch="E9")]
    await follower.poll_once()

    restarted = Follower(
        redis, cache, Upstream(session, timeout=1.0, policy=LOOPBACK), interval=1.0, clock=clock
    )
    assert restarted.nodes == []
    await restarted.load()
    assert restarted.nodes == [feed.url]
    await fill(cache, clock, "88.100/a", source=feed.url)
    feed.pages = [page([], "1700000004000-0", epoch="E9")]  # the epoch it knew: no drop
    await restarted.poll_once()
    assert feed.change_queries[-1]["after"] == "1700000003000-4"
    assert await cached(redis) == {"k:88.100/a"}
    assert restarted.prefixes(feed.url) == {P100}  # and what the node answers for
    feed.pages = [page([], "1-0", epoch="E10")]  # and it remembered the epoch
    await restarted.poll_once()
    assert await cached(redis) == set()


# --- end to end against a real node -----------------------------------------------------


@pytest.fixture
async def real_node(redis: Redis, redis_server: StoreServer) -> AsyncIterator[str]:
    """A secondary node for 88.100 served by uvicorn on a free port, on Redis database 1
    (a cluster has database 0 only: there the node shares it, emptied by ``redis``)."""
    url = redis_server.url
    if redis_server.kind != "cluster":
        url = url.rsplit("/", 1)[0] + "/1"
        store = open_redis(url)
        await store.flushdb()
        await store.aclose()
    config = uvicorn.Config(
        create_app(node_config(url)),
        host="127.0.0.1",
        port=0,
        log_config=None,
        access_log=False,
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(250):  # at most 5 s
            if server.started or serving.done():
                break
            await asyncio.sleep(0.02)
        assert server.started, "the node did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 5.0)


async def test_a_change_at_a_real_node_drops_the_cached_answer(
    redis: Redis, session: aiohttp.ClientSession, real_node: str
) -> None:
    handle = Handle.parse("88.100/E2E")
    target = f"{real_node}/api/handles/{handle.text}"
    url_value = {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://a/1"}}
    async with session.put(target, json=[url_value], headers=ADMIN_AUTH) as created:
        assert created.status == 201, await created.text()

    cache = AnswerCache(redis, POLICY, time.time)
    follower = Follower(redis, cache, Upstream(session, timeout=2.0, policy=LOOPBACK), interval=1.0)
    await follower.follow(real_node, P100)
    now = time.time()
    for key in (handle.key, "88.100/untouched"):
        kept = CacheEntry(Outcome.FOUND, b"{}", real_node, now, now + 300)
        assert await cache.put(key, kept, asked_at=now)
    # Created just before the follower started: what it cached already has it.
    assert await follower.poll_once() == 0
    assert await cached(redis) == {cache_key(handle.key), "k:88.100/untouched"}

    url_value["data"] = {"format": "string", "value": "https://a/2"}
    async with session.put(target, json=[url_value], headers=ADMIN_AUTH) as changed:
        assert changed.status == 200, await changed.text()

    assert await follower.poll_once() == 1
    assert await cached(redis) == {"k:88.100/untouched"}
    assert cache.local(handle.key) is None
    assert await redis.hexists(CURSORS_KEY, real_node)
    assert await follower.poll_once() == 0  # nothing new since

    # And resolving again fetches the changed record.
    resolver = Resolver(
        cache,
        Upstream(session, timeout=2.0, policy=LOOPBACK),
        follow=follower.follow,
        policy=TargetPolicy(allow_private=True),
    )

    async def locate(_: Handle) -> Hop:
        return Hop(real_node, P100)

    again = await resolver.resolve(handle, locate)
    assert again is not None and again.status is CacheStatus.MISS
    assert b"https://a/2" in again.entry.body
    assert await redis.exists(cache_key(handle.key)) == 1


# --- trust: a feed speaks only for its node's prefixes -------------------------------------


async def test_a_feed_drops_only_handles_under_its_nodes_prefixes(
    redis: Redis, cache: AnswerCache, clock: FakeClock, follower: Follower, feed: FakeNode
) -> None:
    await fill(cache, clock, "88.100/a", "88.100.3/b", "88.101/c", "0.na/88.101", "88.1000/d")
    await follower.track(feed.url, P100, T0)
    names: list[object] = ["88.100/A", "88.100.3/b", "88.101/c", "0.NA/88.101", "88.1000/d"]
    names += [7, None, {"x": 1}, "no-slash", ""]
    feed.pages = [page(names, "1700000001000-0")]  # type: ignore[arg-type]
    assert await follower.poll_once() == 2
    assert await cached(redis) == {"k:88.101/c", "k:0.na/88.101", "k:88.1000/d"}
    assert await cursor(redis, feed.url) == b"E1 1700000001000-0"  # the round went on


async def test_a_page_longer_than_asked_for_drops_that_nodes_answers(
    redis: Redis, cache: AnswerCache, clock: FakeClock, follower: Follower, feed: FakeNode
) -> None:
    await fill(cache, clock, "88.100/mine", source=feed.url)
    await fill(cache, clock, "88.100/other")
    await follower.track(feed.url, P100, T0)
    feed.pages = [page(["88.100/other"] * (PAGE + 1), "1700000001000-0")]
    await follower.poll_once()
    assert await cached(redis) == {"k:88.100/other"}


@pytest.mark.parametrize(
    "answer",
    [
        [],
        {"epoch": "E1"},
        {"epoch": 1, "next": "1-0", "more": False, "gap": False, "handles": []},
        {"epoch": "E 1", "next": "1-0", "more": False, "gap": False, "handles": []},
        {"epoch": "E1", "next": "x", "more": False, "gap": False, "handles": []},
        {"epoch": "E1", "next": "1-0", "more": "no", "gap": False, "handles": []},
        {"epoch": "E1", "next": "1-0", "more": False, "gap": 0, "handles": []},
        {"epoch": "E1", "next": "1-0", "more": False, "gap": False, "handles": "88.100/a"},
        {"epoch": "E" * 65, "next": "1-0", "more": False, "gap": False, "handles": []},
    ],
)
async def test_a_page_that_is_not_a_page_changes_nothing(
    redis: Redis,
    cache: AnswerCache,
    clock: FakeClock,
    follower: Follower,
    feed: FakeNode,
    answer: Any,
) -> None:
    await fill(cache, clock, "88.100/a", source=feed.url)
    await follower.track(feed.url, P100, T0)
    feed.pages = [answer]
    assert await follower.poll_once() == 0
    assert await cached(redis) == {"k:88.100/a"}
    assert await cursor(redis, feed.url) == f" {START}".encode()


async def test_a_node_is_followed_for_every_prefix_it_is_asked_for(
    redis: Redis, cache: AnswerCache, clock: FakeClock, follower: Follower, feed: FakeNode
) -> None:
    p1011 = Prefix("88.101.1")
    assert await follower.track(feed.url, P100, T0)
    assert await follower.follow(feed.url, p1011)
    assert await follower.follow(feed.url, Prefix("88.101.1.5"))  # already covered
    assert follower.prefixes(feed.url) == {P100, p1011}
    assert await follower.follow(feed.url, Prefix("88.101"))  # above one it had
    assert follower.prefixes(feed.url) == {P100, Prefix("88.101")}
    await fill(cache, clock, "88.100/a", "88.101.9/b", "88.102/c")
    feed.pages = [page(["88.100/a", "88.101.9/b", "88.102/c"], "1700000001000-0")]
    assert await follower.poll_once() == 2
    assert await cached(redis) == {"k:88.102/c"}


def bounded(
    redis: Redis,
    cache: AnswerCache,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    *,
    max_nodes: int,
) -> Follower:
    """A follower of at most ``max_nodes`` nodes."""
    upstream = Upstream(session, timeout=1.0, policy=LOOPBACK)
    return Follower(redis, cache, upstream, interval=1.0, max_nodes=max_nodes, clock=clock)


async def test_the_followed_set_is_bounded_and_answers_beyond_it_are_not_cached(
    redis: Redis, cache: AnswerCache, clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    follower = bounded(redis, cache, session, clock, max_nodes=3)
    nodes = [f"http://node{n}.example" for n in range(5)]
    followed = [await follower.track(node, P100, T0) for node in nodes]
    assert followed == [True, True, True, False, False]
    assert follower.nodes == nodes[:3]
    assert await redis.hlen(CURSORS_KEY) == 3
    assert await follower.follow(nodes[0], Prefix("88.100.1"))  # a followed node: still


async def test_a_node_not_asked_for_longer_than_entries_live_is_forgotten(
    redis: Redis, cache: AnswerCache, clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    follower = bounded(redis, cache, session, clock, max_nodes=2)
    assert follower.expiry == POLICY.longest_keep == 4600.0
    await follower.track("http://old.example", P100, T0)
    clock.advance(3000)
    await follower.track("http://recent.example", P100, clock())
    assert not await follower.track("http://new.example", P100, clock())  # full
    clock.advance(2000)  # old: asked 5000 s ago; recent: 2000 s ago
    assert await follower.track("http://new.example", P100, clock())  # old made room
    assert follower.nodes == ["http://new.example", "http://recent.example"]
    clock.advance(4000)
    await follower.poll_once()  # recent expires too, in memory and in Redis
    assert follower.nodes == ["http://new.example"]
    assert await redis.hkeys(CURSORS_KEY) == [b"http://new.example"]


async def test_loading_obeys_the_bound_and_the_expiry_and_drops_unknown_forms(
    redis: Redis, cache: AnswerCache, clock: FakeClock, session: aiohttp.ClientSession
) -> None:
    saved: dict[str | bytes, str | bytes] = {
        "http://a.example": f"E1 5-0 {T0 - 10:.0f} 88.100",
        "http://b.example": f"E1 5-0 {T0 - 20:.0f} 88.101,88.102",
        "http://c.example": f"E1 5-0 {T0 - 30:.0f} *",
        "http://expired.example": f"E1 5-0 {T0 - 99999:.0f} 88.100",
        "http://legacy.example": "E1 5-0",  # saved before nodes had prefixes
        "http://garbage.example": "E1 5-0 x 88.100",
    }
    await redis.hset(CURSORS_KEY, mapping=saved)  # type: ignore[arg-type]
    follower = bounded(redis, cache, session, clock, max_nodes=2)
    await follower.load()
    assert follower.nodes == ["http://a.example", "http://b.example"]
    assert follower.prefixes("http://b.example") == {Prefix("88.101"), Prefix("88.102")}
    assert sorted(await redis.hkeys(CURSORS_KEY)) == [b"http://a.example", b"http://b.example"]
