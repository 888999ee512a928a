"""A value's Handle ``permissions`` at a node served in process, on the session's Redis:
a value whose public-read bit is 0 leaves the node only to an authenticated reader
holding READ_VALUE; every anonymous way out (resolution, filters, reverse lookup,
search, trace, listing) leaves it out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import ADMIN_AUTH, StoreServer, node_config, served, snapshot

HANDLE = "88.100/private-1"
SECRET_TEXT = "lot-7-supplier-price"
VALUES: list[dict[str, Any]] = [
    {"index": 1, "type": "URL", "data": "https://factory.example/p/1"},
    {"index": 2, "type": "NOTE", "data": SECRET_TEXT, "permissions": "1100"},
    {"index": 3, "type": "PART_OF", "data": "88.100/private-2", "permissions": "1100"},
]


@pytest.fixture
async def client(redis: Redis, redis_server: StoreServer) -> AsyncIterator[httpx.AsyncClient]:
    """A node indexing NOTE (indexes are chosen): a private note must still never come
    out of reverse lookup or search."""
    async with served(node_config(redis_server.url, indexed_types="URL,NOTE")) as http:
        yield http


@pytest.fixture
async def stored(client: httpx.AsyncClient) -> httpx.AsyncClient:
    answer = await client.put(f"/api/handles/{HANDLE}", json=VALUES, headers=ADMIN_AUTH)
    assert answer.status_code == 201, answer.text
    other = [{"index": 1, "type": "URL", "data": "https://factory.example/p/2"}]
    answer = await client.put("/api/handles/88.100/private-2", json=other, headers=ADMIN_AUTH)
    assert answer.status_code == 201, answer.text
    return client


async def test_anonymous_readers_never_get_a_value_without_public_read(
    stored: httpx.AsyncClient,
) -> None:
    client = stored
    for query in ("", "?type=NOTE", "?index=2", "?index=1&index=2", "?auth=true"):
        answer = await client.get(f"/api/handles/{HANDLE}{query}")
        assert SECRET_TEXT not in answer.text, query
        shown = {v["index"] for v in answer.json()["values"]}
        assert not shown & {2, 3}, query
    found = await client.get("/hrls/handles", params={"NOTE": "*"})
    assert found.status_code == 200 and found.json() == []
    search = await client.get("/api/search", params={"NOTE": SECRET_TEXT})
    assert search.status_code == 200 and search.json()["handles"] == []
    trace = await client.get(f"/api/trace/{HANDLE}")
    assert trace.status_code == 200, trace.text
    assert SECRET_TEXT not in trace.text and "88.100/private-2" not in trace.text
    listing = await client.get("/api/handles", params={"prefix": "88.100"}, headers=ADMIN_AUTH)
    assert listing.status_code == 200 and SECRET_TEXT not in listing.text


async def test_an_authenticated_reader_with_read_value_gets_them_with_their_permissions(
    stored: httpx.AsyncClient,
) -> None:
    answer = await stored.get(f"/api/handles/{HANDLE}?auth=true", headers=ADMIN_AUTH)
    assert answer.status_code == 200, answer.text
    by_index = {v["index"]: v for v in answer.json()["values"]}
    assert by_index[2]["data"]["value"] == SECRET_TEXT
    assert by_index[2]["permissions"] == "1100" and "permissions" not in by_index[1]
    assert "publicRead" not in by_index[2]


async def test_admin_read_0_hides_a_value_from_authenticated_readers_too(
    client: httpx.AsyncClient,
) -> None:
    sent = [{"index": 1, "type": "NOTE", "data": SECRET_TEXT, "permissions": "0100"}]
    assert (await client.put(f"/api/handles/{HANDLE}", json=sent, headers=ADMIN_AUTH)).is_success
    answer = await client.get(f"/api/handles/{HANDLE}?auth=true", headers=ADMIN_AUTH)
    assert SECRET_TEXT not in answer.text


async def test_making_a_value_public_again_shows_it(stored: httpx.AsyncClient) -> None:
    public = {**VALUES[1], "permissions": "1110"}
    answer = await stored.put(f"/api/handles/{HANDLE}?index=2", json=[public], headers=ADMIN_AUTH)
    assert answer.status_code == 200, answer.text
    assert SECRET_TEXT in (await stored.get(f"/api/handles/{HANDLE}")).text
    assert (await stored.get("/hrls/handles", params={"NOTE": "*"})).json() == [HANDLE]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"permissions": "1111"}, "public write"),
        ({"permissions": "11"}, "public write"),  # read from the right: "1111"
        ({"permissions": "1x"}, "4 characters of 0 and 1"),
        ({"permissions": "1100", "publicRead": True}, "contradicts"),
    ],
)
async def test_refused_permissions_leave_the_store_unchanged(
    stored: httpx.AsyncClient, redis: Redis, extra: dict[str, Any], says: str
) -> None:
    before = await snapshot(redis)
    sent = [{"index": 4, "type": "NOTE", "data": "x", **extra}]
    answer = await stored.put(f"/api/handles/{HANDLE}?index=4", json=sent, headers=ADMIN_AUTH)
    assert answer.status_code == 400 and answer.json()["responseCode"] == 202
    assert says in answer.json()["message"]
    assert await snapshot(redis) == before


async def test_structured_formats_and_references_round_trip_through_the_store(
    client: httpx.AsyncClient,
) -> None:
    vlist = {"format": "vlist", "value": [{"handle": "0.NA/88.100", "index": 300}]}
    key = {"format": "key", "value": {"kty": "RSA", "n": "sXch", "e": "AQAB"}}
    sent = [
        {"index": 1, "type": "HS_VLIST", "data": vlist},
        {"index": 2, "type": "HS_PUBKEY", "data": key},
        {
            "index": 3,
            "type": "URL",
            "data": {"format": "hex", "value": "68747470733a2f2f78"},
            "ttl": "2030-01-01T00:00:00Z",
            "references": [{"handle": "88.100/other", "index": 1}],
        },
    ]
    answer = await client.put("/api/handles/88.100/formats", json=sent, headers=ADMIN_AUTH)
    assert answer.status_code == 201, answer.text
    values = {
        v["index"]: v for v in (await client.get("/api/handles/88.100/formats")).json()["values"]
    }
    assert values[1]["data"] == vlist and values[2]["data"] == key
    assert values[3]["data"] == {"format": "string", "value": "https://x"}
    assert values[3]["ttl"] == "2030-01-01T00:00:00Z"
    assert values[3]["references"] == [{"handle": "88.100/other", "index": 1}]
