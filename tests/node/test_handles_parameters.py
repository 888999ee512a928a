"""The Handle REST API's request parameters and body shapes (issue 18), in process, on
the session's real Redis: what the HANDLE.NET Technical Manual's REST API chapter and
the reference servlet (``HandleJsonRestApiServlet``) accept, and how the node answers."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from tests.conftest import ADMIN_AUTH, snapshot
from tests.node.test_handles import URL_VALUE, put


def indexes(response: httpx.Response) -> list[int]:
    return [v["index"] for v in response.json()["values"]]


# --- GET: type families -------------------------------------------------------------


async def test_type_ending_in_a_period_matches_the_family(client: httpx.AsyncClient) -> None:
    await put(
        client,
        "88.100/fam",
        [
            URL_VALUE,
            {"index": 2, "type": "URL.mirror", "data": "https://b.example"},
            {"index": 3, "type": "URLS", "data": "x"},
            {"index": 4, "type": "EMAIL", "data": "x@y"},
        ],
    )
    family = await client.get("/api/handles/88.100/fam", params={"type": "URL."})
    assert family.status_code == 200 and indexes(family) == [1, 2]
    exact = await client.get("/api/handles/88.100/fam", params={"type": "url"})
    assert indexes(exact) == [1]
    both = await client.get("/api/handles/88.100/fam", params=[("type", "url."), ("index", 4)])
    assert indexes(both) == [1, 2, 4]


# --- malformed requests ---------------------------------------------------------------


async def test_malformed_json_is_a_protocol_error(client: httpx.AsyncClient, redis: Redis) -> None:
    before = await snapshot(redis)
    for body in (b'{"values": [', b"not json", b""):
        answer = await client.put(
            "/api/handles/88.100/j",
            content=body,
            headers={**ADMIN_AUTH, "Content-Type": "application/json"},
        )
        assert answer.status_code == 400, body
        assert answer.json()["responseCode"] == 4 and answer.json()["handle"] == "88.100/j"
    assert await snapshot(redis) == before


async def test_bare_listing_is_an_invalid_empty_handle(client: httpx.AsyncClient) -> None:
    for headers in ({}, ADMIN_AUTH):
        answer = await client.get("/api/handles", headers=headers)
        assert answer.status_code == 400 and answer.json()["responseCode"] == 102
        assert "prefix" in answer.json()["message"]
    empty = await client.get("/api/handles?prefix=", headers=ADMIN_AUTH)
    assert empty.status_code == 400 and empty.json()["responseCode"] == 102
