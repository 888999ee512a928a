"""Trust between nodes, end to end: a top node served in process on the session's Redis,
its secondary nodes real HTTP servers on loopback (:class:`FakeNode`), one of them
hostile. What a node may do is bounded by the prefix it is asked for."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI
from redis.asyncio import Redis

from node.app import create_app
from resolver.invalidation import CURSORS_KEY, Follower
from tests.conftest import StoreServer, all_keys, basic, node_config
from tests.resolver.conftest import FakeNode
from tests.resolver.hostile import HostileNode

TOP_SECRET = "top-secret"
TOP_AUTH = basic("300:0.NA/88", TOP_SECRET)
SECRET_TEXT = "internal-secret-XYZZY"  # what an internal service would leak


def top_app(redis_url: str, **settings: object) -> FastAPI:
    return create_app(
        node_config(
            redis_url,
            prefix="88",
            role="top",
            admin_secret=TOP_SECRET,
            invalidation_interval=0.05,
            cache_max_ttl=1,
            **settings,
        )
    )


@pytest.fixture
async def served_top(
    redis: Redis, redis_server: StoreServer, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    settings: dict[str, object] = getattr(request, "param", {})
    app = top_app(redis_server.url, **settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://top") as http:
            yield http, app


async def place(top: httpx.AsyncClient, prefix: str, url: str) -> None:
    """The top's administrator records ``prefix`` as served at ``url``."""
    answer = await top.put(
        f"/api/prefixes/{prefix}",
        json={"kind": "secondary", "nodeUrl": url, "secret": "node-secret-1"},
        headers=TOP_AUTH,
    )
    assert answer.status_code in (200, 201), answer.text


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """``app`` on a free loopback port: its runner and URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


class Internal:
    """An internal service on loopback that must never be reached through the top."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> Internal:
        async def anything(request: web.Request) -> web.Response:
            self.requests.append(request.path)
            return web.json_response({"responseCode": 2, "message": SECRET_TEXT}, status=500)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", anything)
        self._runner, self.url = await serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def internal() -> AsyncIterator[Internal]:
    service = await Internal().start()
    yield service
    await service.stop()


def follower_of(app: FastAPI) -> Follower:
    follower = app.state.node.follower
    assert isinstance(follower, Follower)
    return follower


async def test_a_hostile_feed_drops_only_its_own_answers_and_serve_stale_survives(
    served_top: tuple[httpx.AsyncClient, FastAPI],
    redis: Redis,
    node: FakeNode,
    other: FakeNode,
) -> None:
    top, _ = served_top
    healthy, hostile = node, other
    await place(top, "88.100", healthy.url)
    await place(top, "88.101", hostile.url)
    # Every read of its feed: "gap", and it names the healthy node's handles too.
    hostile.every_page = {
        "responseCode": 1,
        "epoch": "EVIL",
        "handles": ["88.100/a", "88.100/b", 5, "not a handle", "0.NA/88.100"],
        "next": "1-0",
        "more": False,
        "gap": True,
    }
    for handle in ("88.100/a", "88.100/b", "88.101/h"):
        first = await top.get(f"/api/handles/{handle}")
        assert first.status_code == 200 and first.headers["x-cache"] == "MISS", first.text

    await asyncio.sleep(0.5)  # about ten rounds of the hostile feed
    assert len(hostile.change_queries) >= 3
    assert await redis.exists("k:88.100/a", "k:88.100/b") == 2
    assert await redis.exists("k:88.101/h") == 0  # its own answer: dropped
    for handle in ("88.100/a", "88.100/b"):
        again = await top.get(f"/api/handles/{handle}")
        assert again.headers["x-cache"] == "HIT", handle
    assert healthy.count == 2  # asked once each: the hostile feed invalidated nothing

    # The healthy secondary pauses; its answers expire (max TTL 1 s) and are served stale.
    await healthy.stop()
    await asyncio.sleep(1.2)
    stale = await top.get("/api/handles/88.100/a")
    assert stale.status_code == 200, stale.text
    assert stale.headers["x-cache"] == "STALE"


@pytest.mark.parametrize("served_top", [{"allow_private_nodes": False}], indirect=True)
async def test_a_registered_url_at_an_internal_service_is_not_asked(
    served_top: tuple[httpx.AsyncClient, FastAPI], internal: Internal, redis: Redis
) -> None:
    top, app = served_top
    await place(top, "88.100", internal.url + "/")
    answer = await top.get("/api/handles/88.100/x")
    assert answer.status_code == 502
    assert "loopback or private" in answer.json()["message"]
    assert internal.requests == []
    assert await all_keys(redis, "k:*") == []
    assert follower_of(app).nodes == []


async def refer_to(hostile: FakeNode, url: str, prefix: str) -> None:
    hostile.mode, hostile.referral, hostile.referral_prefix = "refer", url, prefix


@pytest.mark.parametrize(
    ("prefix", "why"),
    [
        ("88.100", "not within its own"),  # another secondary's prefix
        ("88", "not within its own"),  # up the hierarchy
        ("88.101.2", "does not hold 88.101.1"),  # a sibling of the handle's prefix
        ("", "no valid prefix"),
    ],
)
async def test_a_referral_outside_the_referring_nodes_prefix_is_refused(
    served_top: tuple[httpx.AsyncClient, FastAPI],
    node: FakeNode,
    internal: Internal,
    redis: Redis,
    prefix: str,
    why: str,
) -> None:
    top, app = served_top
    await place(top, "88.101", node.url)
    await refer_to(node, internal.url, prefix)
    answer = await top.get("/api/handles/88.101.1/x")
    assert answer.status_code == 502
    message = answer.json()["message"]
    assert why in message and node.url in message
    assert internal.url not in message and "not here" not in message
    assert internal.requests == []
    assert await all_keys(redis, "k:*") == []
    assert follower_of(app).nodes == [node.url]


async def test_a_failing_node_is_named_but_its_message_is_not_repeated(
    served_top: tuple[httpx.AsyncClient, FastAPI], internal: Internal
) -> None:
    top, _ = served_top
    await place(top, "88.100", internal.url)  # allowed here: the demo's loopback
    answer = await top.get("/api/handles/88.100/x")
    assert answer.status_code == 502
    message = answer.json()["message"]
    assert SECRET_TEXT not in answer.text
    assert internal.url in message and "HTTP 500" in message and "responseCode 2" in message


async def test_an_unreachable_node_is_reported_in_the_nodes_own_words(
    served_top: tuple[httpx.AsyncClient, FastAPI], internal: Internal
) -> None:
    """Named by its registered URL and what it was asked for, with the kind of failure
    (an operator needs it), never aiohttp's or the operating system's text. The target
    policy, not the message, is what keeps clients from probing internal ports."""
    top, _ = served_top
    await internal.stop()  # its port now refuses connections
    await place(top, "88.100", internal.url)
    answer = await top.get("/api/handles/88.100/x")
    assert answer.status_code == 502
    expected = f"node {internal.url} (for 88.100) is unreachable: connection refused"
    assert answer.json()["message"] == expected


class Sink:
    """One server answering a record under any base path: as many distinct node URLs
    as a hostile node cares to refer to."""

    def __init__(self) -> None:
        self.url = ""
        self.asked = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> Sink:
        async def handle(request: web.Request) -> web.Response:
            self.asked += 1
            body: dict[str, Any] = {
                "responseCode": 1,
                "handle": request.match_info["handle"],
                "values": [],
            }
            return web.json_response(body)

        async def changes(request: web.Request) -> web.Response:
            page = {"epoch": "S", "handles": [], "next": "1-0", "more": False, "gap": False}
            return web.json_response(page)

        app = web.Application()
        app.router.add_get("/{base}/api/handles/{handle:.+}", handle)
        app.router.add_get("/{base}/api/changes", changes)
        self._runner, self.url = await serve(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.mark.parametrize("served_top", [{"max_followed_nodes": 5}], indirect=True)
async def test_distinct_referrals_do_not_grow_the_followed_set_beyond_its_bound(
    served_top: tuple[httpx.AsyncClient, FastAPI], node: FakeNode, redis: Redis
) -> None:
    top, app = served_top
    sink = await Sink().start()
    try:
        await place(top, "88.101", node.url)
        for n in range(200):
            await refer_to(node, f"{sink.url}/n{n}", f"88.101.{n + 1}")
            answer = await top.get(f"/api/handles/88.101.{n + 1}/x")
            assert answer.status_code == 200, answer.text
        follower = follower_of(app)
        assert len(follower.nodes) == 5 and node.url in follower.nodes
        assert await redis.hlen(CURSORS_KEY) == 5
        # Beyond the bound answers are served, not cached (no feed would drop them).
        assert await redis.exists("k:88.101.200/x") == 0
        assert (await top.get("/api/handles/88.101.200/x")).headers["x-cache"] == "MISS"
        assert sink.asked == 201
    finally:
        await sink.stop()


@pytest.mark.parametrize("served_top", [{"upstream_timeout": 2.0}], indirect=True)
async def test_a_slow_node_holds_only_its_share_of_the_connections(
    served_top: tuple[httpx.AsyncClient, FastAPI], node: FakeNode
) -> None:
    """300 misses at once for a node that drips its answers byte by byte: it may hold 64
    of the top's 256 upstream connections, so a miss for a healthy node still resolves
    at once instead of waiting for a connection until the upstream timeout (504)."""
    top, _ = served_top
    slow = await HostileNode().start()
    slow.mode, slow.drip_every = "drip", 0.2
    try:
        await place(top, "88.100", node.url)
        await place(top, "88.101", slow.url)
        stuck = [asyncio.create_task(top.get(f"/api/handles/88.101/slow-{n}")) for n in range(300)]
        while len(slow.requests) < 64:  # the slow node holds all it may ...
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # ... and would take more by now if it could
        healthy = await top.get("/api/handles/88.100/x")
        assert (healthy.status_code, healthy.headers["x-cache"]) == (200, "MISS")
        assert len(slow.requests) == 64  # no more than its share, meanwhile
        answers = await asyncio.gather(*stuck)
        assert {a.status_code for a in answers} == {504}
    finally:
        await slow.stop()
        # 236 of the calls were cancelled by their deadline while waiting for, or
        # opening, a connection; aiohttp may leave such a transport to the collector,
        # which closes it with a ResourceWarning. Collected here, not in a later test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


async def test_a_redirect_from_a_node_is_not_followed(
    served_top: tuple[httpx.AsyncClient, FastAPI], redis: Redis, internal: Internal
) -> None:
    """A registered node answering 302 to an internal service: the top node does not
    follow it, says so without the node's text, and caches nothing."""
    top, _ = served_top
    redirecting = await HostileNode().start()
    redirecting.mode, redirecting.location = "redirect", f"{internal.url}/api/handles/88.100/x"
    try:
        await place(top, "88.100", redirecting.url)
        answer = await top.get("/api/handles/88.100/x")
        assert answer.status_code == 502
        message = answer.json()["message"]
        assert message == (
            f"node {redirecting.url} (for 88.100) answered a redirect (HTTP 302), "
            "which is not followed"
        )
        assert internal.requests == []
        assert await all_keys(redis, "k:*") == []
    finally:
        await redirecting.stop()
