"""Shared parts of the resolver tests: a clock moved by hand and another node at the wire."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Self

import aiohttp
import pytest
from aiohttp import web

from resolver.target import TargetPolicy

T0 = 1_700_000_000.0
# The fake nodes of these tests listen on 127.0.0.1: upstream calls may go there.
LOOPBACK = TargetPolicy(allow_private=True)


def value(index: int = 1, ttl: int = 300) -> dict[str, Any]:
    return {
        "index": index,
        "type": "URL",
        "data": {"format": "string", "value": f"https://example.com/{index}"},
        "ttl": ttl,
        "timestamp": "2026-01-01T00:00:00Z",
    }


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class LoopbackServer:
    """A real HTTP server on 127.0.0.1 at a free port, answering with :meth:`routes`."""

    url = ""
    _runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> Self:
        app = web.Application()
        self.routes(app)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        self._runner, self.url = runner, f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        """Close the listening socket and every open connection: later calls are refused."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


class FakeNode(LoopbackServer):
    """Another node at the wire: a real HTTP server whose behaviour the test sets.

    ``mode`` is "record" (200 with the record), "missing" (404, responseCode 100),
    "refer" (400, responseCode 301, referral to ``referral`` for ``referral_prefix``) or
    "fail" (500). Every
    answer first waits ``delay`` seconds. :meth:`stop` takes it off the network, so
    connecting is refused. ``/api/changes`` answers the queued ``pages`` in order, then
    ``every_page`` each time if set.
    """

    def __init__(self) -> None:
        self.mode = "record"
        self.delay = 0.0
        self.values: list[dict[str, Any]] = [value()]
        self.referral = ""
        self.referral_prefix = "88.101.1"
        self.handle_requests: list[str] = []
        self.asked = asyncio.Event()
        self.pages: list[dict[str, Any]] = []
        self.every_page: dict[str, Any] | None = None  # answered to every feed read
        self.change_queries: list[dict[str, str]] = []

    @property
    def count(self) -> int:
        return len(self.handle_requests)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/handles/{handle:.+}", self._handle)
        app.router.add_get("/api/changes", self._changes)

    async def _handle(self, request: web.Request) -> web.Response:
        handle = request.match_info["handle"]
        self.handle_requests.append(handle)
        self.asked.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.mode == "fail":
            return web.json_response({"responseCode": 2, "message": "boom"}, status=500)
        if self.mode == "missing":
            body = {"responseCode": 100, "handle": handle, "message": "Handle not found"}
            return web.json_response(body, status=404)
        if self.mode == "refer":
            referral = {"url": self.referral, "prefix": self.referral_prefix}
            body = {"responseCode": 301, "message": "not here", "referral": referral}
            return web.json_response(body, status=400)
        # Not this node's own encoding: other key order, spacing and an extra field.
        text = json.dumps(
            {"values": self.values, "handle": handle, "responseCode": 1, "extra": True}, indent=2
        )
        return web.Response(text=text, content_type="application/json")

    async def _changes(self, request: web.Request) -> web.Response:
        self.change_queries.append(dict(request.query))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.mode == "fail":
            return web.json_response({"responseCode": 2, "message": "boom"}, status=500)
        if self.pages:
            return web.json_response(self.pages.pop(0))
        if self.every_page is not None:
            return web.json_response(self.every_page)
        after = request.query.get("after", "0-0")
        page = {"epoch": "E1", "handles": [], "next": after, "more": False, "gap": False}
        return web.json_response({"responseCode": 1, **page})


@pytest.fixture
async def node() -> AsyncIterator[FakeNode]:
    fake = await FakeNode().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def other() -> AsyncIterator[FakeNode]:
    fake = await FakeNode().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
