"""Handles under prefixes no node of this hierarchy holds (SPEC §2), in process.

``21.T14999/X`` is a valid Handle (RFC 3651 §2.1 allows letters in a prefix); our own
prefixes are digit segments. Every node answers such a request 400 with responseCode
301 ("not responsible") and no referral, never 102; it changes nothing; and an HS_ADMIN
value may still name an administrator under such a prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from node.config import NodeConfig
from tests.conftest import (
    ADMIN_AUTH,
    ADMIN_SECRET,
    StoreServer,
    basic,
    node_config,
    served,
    snapshot,
)

UNREACHABLE = "http://127.0.0.1:1"  # loopback, nothing listens: asking it would fail (502)
URL_VALUE = {"index": 1, "type": "URL", "data": "https://a.example/1"}
# Handle prefixes outside the national policy, and one spelled in another case.
FOREIGN = ["21.T14999/X", "0.NA/21.T14999", "21.t14999/x", "88.x/abc", "88.100.T1/x"]


def _config(kind: str, redis_url: str) -> NodeConfig:
    if kind == "secondary":
        return node_config(redis_url)
    if kind == "enterprise":  # has a parent it refers its foreign digit prefixes to
        return node_config(redis_url, "88.100.1", role="enterprise", parent_url=UNREACHABLE)
    if kind == "top":
        return node_config(redis_url, "88", role="top")
    args: dict[str, object | None] = {"role": "recursive", "parent_url": UNREACHABLE}
    args["redis_url"] = redis_url
    args["allow_private_nodes"] = True
    return NodeConfig.from_sources(args, env={})


@pytest.fixture(params=["secondary", "enterprise", "top", "recursive"])
async def node(
    request: pytest.FixtureRequest, redis: Redis, redis_server: StoreServer
) -> AsyncIterator[httpx.AsyncClient]:
    async with served(_config(request.param, redis_server.url)) as http:
        yield http


def _held_by_no_node(response: httpx.Response, handle: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["responseCode"] == 301, body
    assert body["handle"] == handle
    assert "referral" not in body  # no node of the hierarchy could say more
    prefix = handle.partition("/")[2] if handle.startswith("0.NA/") else handle.split("/")[0]
    assert body["message"].startswith(f"Prefix {prefix} doesn't live here")
    assert "no node of this hierarchy holds it" in body["message"]


@pytest.mark.parametrize("handle", FOREIGN)
async def test_resolving_a_foreign_prefix_is_301_at_every_node(
    node: httpx.AsyncClient, handle: str
) -> None:
    # At the recursive node, asking its (unreachable) root would have answered 502.
    _held_by_no_node(await node.get(f"/api/handles/{handle}"), handle)


@pytest.mark.parametrize("handle", ["21.T14999/X", "0.NA/21.T14999", "88.100.T1/x"])
async def test_writing_under_a_foreign_prefix_is_301_and_changes_nothing(
    redis: Redis, redis_server: StoreServer, handle: str
) -> None:
    for config in (node_config(redis_server.url), node_config(redis_server.url, "88", role="top")):
        auth = (
            ADMIN_AUTH if config.own_prefix.text == "88.100" else basic("300:0.NA/88", ADMIN_SECRET)
        )
        async with served(config) as node:
            before = await snapshot(redis)
            put = await node.put(f"/api/handles/{handle}", json=[URL_VALUE], headers=auth)
            _held_by_no_node(put, handle)
            deleted = await node.delete(f"/api/handles/{handle}", headers=auth)
            _held_by_no_node(deleted, handle)
            assert await snapshot(redis) == before


async def test_a_digit_prefix_outside_the_node_is_still_referred_to_the_parent(
    redis: Redis, redis_server: StoreServer
) -> None:
    """Only prefixes outside the national policy lose the referral: 88.200 may live
    elsewhere in the hierarchy, so the enterprise node sends the client to its parent."""
    async with served(_config("enterprise", redis_server.url)) as node:
        response = await node.get("/api/handles/88.200/x")
    assert response.status_code == 400 and response.json()["responseCode"] == 301
    assert response.json()["referral"] == {"url": UNREACHABLE}


async def test_a_malformed_handle_is_still_102(client: httpx.AsyncClient) -> None:
    for handle, says in [("88..x/abc", "empty segment"), ("%2Fx", "prefix is empty")]:
        response = await client.get(f"/api/handles/{handle}")
        assert response.status_code == 400 and response.json()["responseCode"] == 102, handle
        assert says in response.json()["message"]


async def test_an_admin_under_a_foreign_prefix_may_be_named_in_hs_admin(
    client: httpx.AsyncClient,
) -> None:
    """Handle lets any handle administer a record; the identity is someone else's, so it
    cannot authenticate here, but naming it is valid."""
    admin = {"handle": "21.T14999/admin", "index": 300, "permissions": "011111110011"}
    values = [
        URL_VALUE,
        {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": admin}},
    ]
    created = await client.put("/api/handles/88.100/shared", json=values, headers=ADMIN_AUTH)
    assert created.status_code == 201, created.text
    got = (await client.get("/api/handles/88.100/shared")).json()
    stored = next(v for v in got["values"] if v["type"] == "HS_ADMIN")
    assert stored["data"]["value"]["handle"] == "21.T14999/admin"
    # Named in a grant, but not an identity this node can check.
    refused = await client.put(
        "/api/handles/88.100/shared",
        json=[URL_VALUE],
        headers=basic("300:21.T14999/admin", "whatever-secret"),
    )
    assert refused.status_code == 401 and refused.json()["responseCode"] == 402


async def test_tracing_from_a_foreign_root_is_301(client: httpx.AsyncClient) -> None:
    _held_by_no_node(await client.get("/api/trace/21.T14999/X"), "21.T14999/X")


@pytest.mark.parametrize("prefix", ["21.T14999", "88.T1"])
async def test_listing_a_foreign_prefix_is_301(client: httpx.AsyncClient, prefix: str) -> None:
    listing = await client.get("/api/handles", params={"prefix": prefix}, headers=ADMIN_AUTH)
    assert listing.status_code == 400 and listing.json()["responseCode"] == 301
    assert "referral" not in listing.json()
    assert "no node of this hierarchy holds it" in listing.json()["message"]
