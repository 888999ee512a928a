"""``/api/status`` at a top node in process, probing real servers on loopback: a stub
secondary that answers, an enterprise node it names that is not ready, a frozen node
(accepts, never answers) and a port nobody listens on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from node.app import create_app
from node.survey import STATUS_DEADLINE
from tests.conftest import StoreServer, basic, node_config

TOP_SECRET = "top-secret"
TOP_AUTH = basic("300:0.NA/88", TOP_SECRET)
DEAD_URL = "http://127.0.0.1:1"  # nothing listens on port 1
Answer = Callable[[str], Awaitable[tuple[int, Any]]]


@asynccontextmanager
async def http_server(answer: Answer) -> AsyncIterator[str]:
    """A real HTTP/1.1 server on loopback answering each GET with ``answer(path)``: a
    node seen from the wire. Its URL; every connection is closed on the way out."""
    open_writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_writers.append(writer)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                path = head.split(b" ", 2)[1].decode().partition("?")[0]
                status, body = await answer(path)
                data = orjson.dumps(body)
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in open_writers:
            writer.close()
        await server.wait_closed()


def kpis(prefix: str, **more: Any) -> dict[str, Any]:
    return {
        "responseCode": 1,
        "prefix": prefix,
        "day": "20260101",
        "resolutions": 42,
        "registrations": 0,
        "peakPerSecond": 3,
        "totalResolutions": 42,
        "totalRegistrations": 300,
        "enterprises": 1,
        "recentPerSecond": 1.5,
        "cacheHitRatio": None,
        **more,
    }


@pytest.fixture
async def top(redis: Redis, redis_server: StoreServer) -> AsyncIterator[httpx.AsyncClient]:
    config = node_config(redis_server.url, prefix="88", role="top", admin_secret=TOP_SECRET)
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://top") as http:
            yield http


async def file(top: httpx.AsyncClient, prefix: str, kind: str, url: str) -> None:
    body = {"kind": kind, "nodeUrl": url, "owner": f"owner of {prefix}"}
    if kind == "secondary":
        body["secret"] = "node-secret"
    answer = await top.put(f"/api/prefixes/{prefix}", json=body, headers=TOP_AUTH)
    assert answer.status_code == 201, answer.text


async def frozen(path: str) -> tuple[int, Any]:
    await asyncio.Event().wait()  # accepts, reads the request, never answers
    raise AssertionError("unreachable")


async def test_status_answers_within_the_deadline_whatever_the_nodes_do(
    top: httpx.AsyncClient,
) -> None:
    async def enterprise(path: str) -> tuple[int, Any]:
        if path == "/readyz":
            return 503, {"status": "unavailable", "message": "store unavailable: restarting"}
        return 503, {"responseCode": 2, "message": "store unavailable"}

    async with (
        http_server(frozen) as frozen_url,
        http_server(enterprise) as enterprise_url,
    ):

        async def secondary(path: str) -> tuple[int, Any]:
            if path == "/readyz":
                return 200, {"status": "ready"}
            nodes = [{"prefix": "88.100.1", "url": enterprise_url}]
            return 200, kpis("88.100", enterpriseNodes=nodes)

        async with http_server(secondary) as secondary_url:
            await file(top, "88.100", "secondary", secondary_url)
            await file(top, "88.100.1", "enterprise", secondary_url)  # filed by 88.100
            await file(top, "88.100.2", "enterprise", secondary_url)
            await file(top, "88.101", "secondary", frozen_url)
            await file(top, "88.101.1", "enterprise", frozen_url)
            await file(top, "88.102", "secondary", DEAD_URL)

            started = time.monotonic()
            answer = await top.get("/api/status", params={"plan": "wuhan-5g-2021"})
            took = time.monotonic() - started

    assert answer.status_code == 200, answer.text
    # The frozen node costs the status deadline, not the 5 s upstream timeout.
    assert took < STATUS_DEADLINE + 0.5, took
    body = answer.json()
    nodes = {n["prefix"]: n for n in body["nodes"]}
    assert list(nodes) == ["88", "88.100", "88.100.1", "88.100.2", "88.101", "88.101.1", "88.102"]
    health = {prefix: (n["health"], n["ownNode"]) for prefix, n in nodes.items()}
    assert health == {
        "88": ("up", True),
        "88.100": ("up", True),
        "88.100.1": ("not ready", True),  # the enterprise node 88.100 names
        "88.100.2": (None, False),  # served by its secondary
        "88.101": ("slow", True),
        "88.101.1": (None, None),  # its secondary did not say
        "88.102": ("down", True),
    }
    assert nodes["88.100.1"]["nodeUrl"] == enterprise_url
    assert nodes["88.100.1"]["detail"] == "store unavailable: restarting"
    assert nodes["88.101"]["detail"] == f"no answer within {STATUS_DEADLINE:g} s"
    assert "unreachable" in nodes["88.102"]["detail"]
    assert nodes["88.100"]["kpis"]["resolutions"] == 42
    assert nodes["88.101"]["kpis"] is None and nodes["88.102"]["kpis"] is None

    plan = body["plan"]
    assert plan["verdict"] == "FAIL"  # two secondary nodes could not be asked
    results = {(r["target"], r["subject"]): (r["result"], r["reason"]) for r in plan["rows"]}
    daily = "secondary-daily-resolutions"
    assert results[(daily, "secondary 88.100")] == (
        "pending",
        "42 of 600,000 resolutions/day so far; the day (UTC) is not over",
    )
    assert results[(daily, "secondary 88.101")] == (
        "FAIL",
        f"unreachable: no answer within {STATUS_DEADLINE:g} s",
    )
    assert results[(daily, "secondary 88.102")][0] == "FAIL"
    assert results[("city-secondary-nodes", "hierarchy")][0] == "pending"


async def test_status_of_a_lone_top_node_is_pending_not_failed(top: httpx.AsyncClient) -> None:
    answer = await top.get("/api/status", params={"plan": "tianjin-2021"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(n["prefix"], n["health"]) for n in body["nodes"]] == [("88", "up")]
    assert body["top"]["prefix"] == "88"
    # No secondary node yet: a cumulative count still to grow; the SM2 login is offered.
    assert body["plan"]["verdict"] == "pending"
    assert [r["result"] for r in body["plan"]["rows"]] == ["pending", "pass"]
    # Without ?plan= there is no plan section; an unknown plan is 404.
    assert "plan" not in (await top.get("/api/status")).json()
    missing = await top.get("/api/status", params={"plan": "nowhere"})
    assert missing.status_code == 404 and missing.json()["responseCode"] == 100
