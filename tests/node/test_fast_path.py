"""The resolution hot path answers exactly what the route answers, counts the same
metrics, leaves every other request to the app, and never serves a stale copy after a
write, in this process or in another one (a second worker on the same Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from node.app import NodeApi, create_app
from node.metrics import Outcome
from tests.conftest import ADMIN_AUTH, StoreServer, node_config


@asynccontextmanager
async def node(redis_url: str, **settings: Any) -> AsyncIterator[tuple[NodeApi, httpx.AsyncClient]]:
    app = create_app(node_config(redis_url, **settings))
    assert isinstance(app, NodeApi)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            yield app, http


@pytest.fixture
async def secondary(
    redis: Redis, redis_server: StoreServer
) -> AsyncIterator[tuple[NodeApi, httpx.AsyncClient]]:
    async with node(redis_server.url) as served:
        yield served


VALUES = [{"index": 1, "type": "URL", "data": "https://example.cn/p/1"}]


def _same(fast: httpx.Response, route: httpx.Response) -> None:
    assert fast.status_code == route.status_code
    assert fast.content == route.content
    assert fast.headers["content-type"] == route.headers["content-type"]
    assert fast.headers["content-length"] == route.headers["content-length"]


@pytest.mark.parametrize(
    "path",
    [
        "88.100/ABC",  # found
        "88.100/abc",  # found, another spelling: the answer echoes it
        "88.100/missing",  # 404, responseCode 100
        "88.101/elsewhere",  # 400, responseCode 301 with a referral
    ],
)
async def test_the_fast_path_answers_what_the_route_answers(
    secondary: tuple[NodeApi, httpx.AsyncClient], path: str
) -> None:
    app, http = secondary
    created = await http.put("/api/handles/88.100/ABC", json=VALUES, headers=ADMIN_AUTH)
    assert created.status_code == 201
    before = app.fast.answered
    fast = await http.get(f"/api/handles/{path}")
    assert app.fast.answered == before + 1
    route = await http.get(f"/api/handles/{path}", params={"publicOnly": "false"})
    assert app.fast.answered == before + 1  # a query string goes to the route
    _same(fast, route)


@pytest.mark.parametrize("path", ["88.100/ABC", "88.100/abc", "88.100/missing", "88.101/x"])
async def test_head_is_answered_here_as_get_without_the_body(
    secondary: tuple[NodeApi, httpx.AsyncClient], path: str
) -> None:
    """HEAD answers GET's status and headers, Content-Length included (the length GET's
    body has, as HTTP allows and the Handle servlet does), and no body."""
    app, http = secondary
    await http.put("/api/handles/88.100/ABC", json=VALUES, headers=ADMIN_AUTH)
    got = await http.get(f"/api/handles/{path}")
    metrics = app.state.node.metrics
    counted = metrics.requests.labels("HEAD", "/api/handles/{handle:path}", str(got.status_code))
    heads = counted._value.get()
    before = app.fast.answered
    head = await http.head(f"/api/handles/{path}")
    assert app.fast.answered == before + 1
    assert counted._value.get() == heads + 1  # counted as a HEAD, as the route counts it
    assert head.status_code == got.status_code
    assert head.content == b""
    assert dict(head.headers) == dict(got.headers)
    assert int(head.headers["content-length"]) == len(got.content)
    routed = await http.head(f"/api/handles/{path}", params={"publicOnly": "true"})
    assert app.fast.answered == before + 1  # a query string: the route's HEAD
    assert routed.status_code == head.status_code and routed.content == b""
    assert routed.headers["content-length"] == head.headers["content-length"]


async def test_requests_it_is_not_sure_about_go_to_the_app(
    secondary: tuple[NodeApi, httpx.AsyncClient],
) -> None:
    app, http = secondary
    await http.put("/api/handles/88.100/a b", json=VALUES, headers=ADMIN_AUTH)
    before = app.fast.answered
    escaped = await http.get("/api/handles/88.100/a%20b")  # needs decoding
    assert escaped.status_code == 200 and escaped.json()["handle"] == "88.100/a b"
    control = await http.get("/api/handles/88.100/x%0A")  # the path guard refuses it
    assert control.status_code == 400 and control.json()["responseCode"] == 102
    malformed = await http.get("/api/handles/no-slash")  # the route renders the 400
    assert malformed.status_code == 400 and malformed.json()["responseCode"] == 102
    head = await http.head("/api/handles/88.100/a%20b")  # needs decoding, as the GET
    assert head.status_code == 200 and head.content == b""
    listing = await http.get("/api/handles/")
    assert listing.status_code in (400, 404)
    signed = await http.get("/api/handles/88.100/ab", headers=ADMIN_AUTH)  # publicOnly=false
    assert signed.status_code == 404
    assert app.fast.answered == before


async def test_it_counts_the_metrics_the_route_counts(
    secondary: tuple[NodeApi, httpx.AsyncClient],
) -> None:
    app, http = secondary
    await http.put("/api/handles/88.100/m", json=VALUES, headers=ADMIN_AUTH)
    metrics = app.state.node.metrics
    requests = metrics.requests.labels("GET", "/api/handles/{handle:path}", "200")
    before = requests._value.get()
    authoritative = metrics.count(Outcome.AUTHORITATIVE)
    not_found = metrics.count(Outcome.NOT_FOUND)
    for _ in range(3):
        assert (await http.get("/api/handles/88.100/m")).status_code == 200
    assert (await http.get("/api/handles/88.100/none")).status_code == 404
    assert requests._value.get() == before + 3
    assert metrics.count(Outcome.AUTHORITATIVE) == authoritative + 3
    assert metrics.count(Outcome.NOT_FOUND) == not_found + 1
    exposition = (await http.get("/metrics")).text
    assert 'idnode_http_requests_total{method="GET",route="/api/handles/{handle:path}"' in (
        exposition
    )


async def test_a_write_here_is_seen_by_the_next_read(
    secondary: tuple[NodeApi, httpx.AsyncClient],
) -> None:
    _, http = secondary
    await http.put("/api/handles/88.100/w", json=VALUES, headers=ADMIN_AUTH)
    assert (await http.get("/api/handles/88.100/w")).json()["values"][0]["data"]["value"] == (
        "https://example.cn/p/1"
    )
    changed = [{"index": 1, "type": "URL", "data": "https://example.cn/p/2"}]
    await http.put("/api/handles/88.100/w", json=changed, headers=ADMIN_AUTH)
    assert (await http.get("/api/handles/88.100/w")).json()["values"][0]["data"]["value"] == (
        "https://example.cn/p/2"
    )
    await http.delete("/api/handles/88.100/w", headers=ADMIN_AUTH)
    assert (await http.get("/api/handles/88.100/w")).status_code == 404
    await http.put("/api/handles/88.100/w", json=VALUES, headers=ADMIN_AUTH)
    assert (await http.get("/api/handles/88.100/w")).status_code == 200  # cached 404 forgotten


async def test_another_workers_write_reaches_this_workers_copy(
    redis: Redis, redis_server: StoreServer
) -> None:
    """Two workers of one node on one Redis. The reading worker keeps copies for a
    minute, so only the change stream can make it see the other worker's write."""
    async with (
        node(redis_server.url) as (_, writer),
        node(redis_server.url, local_cache_ttl=60.0) as (_, reader),
    ):
        await writer.put("/api/handles/88.100/shared", json=VALUES, headers=ADMIN_AUTH)
        first = await reader.get("/api/handles/88.100/shared")
        assert first.json()["values"][0]["data"]["value"] == "https://example.cn/p/1"
        changed = [{"index": 1, "type": "URL", "data": "https://example.cn/p/9"}]
        await writer.put("/api/handles/88.100/shared", json=changed, headers=ADMIN_AUTH)
        deadline = time.monotonic() + 2.0
        while True:
            seen = (await reader.get("/api/handles/88.100/shared")).json()
            if seen["values"][0]["data"]["value"] == "https://example.cn/p/9":
                break
            assert time.monotonic() < deadline, "the reader kept its copy past the write"
            await asyncio.sleep(0.01)
