"""``GET /`` on every node, and ``/status`` on the nodes that are not the top node."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from node.app import create_app
from node.index_page import wants_json
from tests.conftest import StoreServer, node_config

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
TOP_URL = "http://127.0.0.1:1"


@pytest.mark.parametrize(
    ("accept", "json"),
    [
        (BROWSER, False),
        ("*/*", True),  # curl
        ("", True),
        ("application/json", True),
        ("application/json, text/html;q=0.5", True),
        ("text/html, application/json;q=0.9", False),
        ("text/html;q=0", True),
        ("text/html;q=bad", True),
    ],
)
def test_wants_json(accept: str, json: bool) -> None:
    assert wants_json(accept) is json


async def node(
    redis_url: str, role: str, prefix: str, **more: object
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(node_config(redis_url, prefix=prefix, role=role, **more))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            yield http


@pytest.fixture
async def top(redis: Redis, redis_server: StoreServer) -> AsyncIterator[httpx.AsyncClient]:
    async for http in node(redis_server.url, "top", "88"):
        yield http


@pytest.fixture
async def secondary(redis: Redis, redis_server: StoreServer) -> AsyncIterator[httpx.AsyncClient]:
    async for http in node(redis_server.url, "secondary", "88.100", parent_url=TOP_URL):
        yield http


@pytest.fixture
async def enterprise(redis: Redis, redis_server: StoreServer) -> AsyncIterator[httpx.AsyncClient]:
    async for http in node(
        redis_server.url, "enterprise", "88.101.1", parent_url="http://127.0.0.1:2"
    ):
        yield http


async def test_the_top_node_sends_browsers_to_its_status_page(top: httpx.AsyncClient) -> None:
    answer = await top.get("/", headers={"Accept": BROWSER})
    assert answer.status_code == 307 and answer.headers["location"] == "/status"
    index = (await top.get("/", headers={"Accept": "application/json"})).json()
    assert (index["role"], index["prefix"], index["parent"]) == ("top", "88", None)
    assert index["links"] == {
        "docs": "/docs",
        "redoc": "/redoc",
        "status": "/status",
        "readyz": "/readyz",
        "healthz": "/healthz",
        "metrics": "/metrics",
        "openapi": "/openapi.json",
        "hierarchyStatus": "/status",
    }


async def test_a_secondary_node_shows_an_index_and_its_own_status(
    secondary: httpx.AsyncClient,
) -> None:
    index = (await secondary.get("/")).json()  # no Accept: curl's */*
    assert (index["responseCode"], index["role"], index["prefix"]) == (1, "secondary", "88.100")
    assert index["links"]["hierarchyStatus"] == f"{TOP_URL}/status"
    for path in ("/", "/status"):
        page = await secondary.get(path, headers={"Accept": BROWSER})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        html = page.text
        assert "<title>idnode · secondary node 88.100</title>" in html
        assert 'id="ready">ready<' in html
        assert "resolutions today" in html
        for link in ("/docs", "/redoc", "/readyz", "/metrics", f"{TOP_URL}/status"):
            assert f'href="{link}"' in html, link


async def test_an_enterprise_node_links_to_its_parent_not_a_top_it_does_not_know(
    enterprise: httpx.AsyncClient,
) -> None:
    index = (await enterprise.get("/")).json()
    assert (index["role"], index["prefix"]) == ("enterprise", "88.101.1")
    assert index["links"]["hierarchyStatus"] is None
    assert index["parent"] == "http://127.0.0.1:2"
    page = await enterprise.get("/status", headers={"Accept": BROWSER})
    assert page.status_code == 200 and "enterprise node 88.101.1" in page.text
    assert "http://127.0.0.1:2" in page.text  # named in text, not linked
    assert 'href="http://127.0.0.1:2' not in page.text
