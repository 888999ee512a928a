"""The top node's prefix registry in process: provisioning, registration, filing (备案)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from node.app import create_app
from node.config import NodeConfig
from tests.conftest import SHARDED, StoreServer, basic, node_config, snapshot

TOP_SECRET = "top-secret"
TOP_AUTH = basic("300:0.NA/88", TOP_SECRET)
NODE = "300:0.NA/88.100"
NODE_SECRET = "node-secret-1"
NODE_AUTH = basic(NODE, NODE_SECRET)
CREDIT_CODE = "91420100MA4K2B7C1Y"
DEAD_URL = "http://127.0.0.1:1"  # nothing listens on port 1


@pytest.fixture
def top_config(redis_server: StoreServer) -> NodeConfig:
    return node_config(redis_server.url, prefix="88", role="top", admin_secret=TOP_SECRET)


@pytest.fixture
async def top(redis: Redis, top_config: NodeConfig) -> AsyncIterator[httpx.AsyncClient]:
    """A top node for 88 on the session's Redis, served in process."""
    app = create_app(top_config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://top") as http:
            yield http


@pytest.fixture
async def provisioned(top: httpx.AsyncClient) -> httpx.AsyncClient:
    """The top node after its admin provisioned 88.100 with the node's secret."""
    response = await top.put(
        "/api/prefixes/88.100",
        json={"kind": "secondary", "industry": "automotive", "secret": NODE_SECRET},
        headers=TOP_AUTH,
    )
    assert response.status_code == 201, response.text
    return top


async def register(top: httpx.AsyncClient, node_url: str) -> httpx.Response:
    return await top.put(
        "/api/prefixes/88.100",
        json={"nodeUrl": node_url, "kind": "secondary", "industry": "automotive"},
        headers=NODE_AUTH,
    )


@pytest.mark.parametrize("prefix_shards", SHARDED)  # listed in byte order
async def test_lists_its_own_entry(top: httpx.AsyncClient, top_config: NodeConfig) -> None:
    response = await top.get("/api/prefixes")
    assert response.status_code == 200
    body = response.json()
    assert body["responseCode"] == 1 and body["totalCount"] == 1
    (entry,) = body["prefixes"]
    assert entry["prefix"] == "88"
    assert entry["kind"] == "top"
    assert entry["nodeUrl"] == top_config.public_url
    assert entry["filedBy"] == "300:0.NA/88"


@pytest.mark.parametrize("prefix_shards", SHARDED)  # listed in byte order
async def test_provision_register_and_file(provisioned: httpx.AsyncClient) -> None:
    top = provisioned
    provisioned_entry = (await top.get("/api/prefixes/88.100")).json()
    assert provisioned_entry["kind"] == "secondary"
    assert provisioned_entry["industry"] == "automotive"
    assert provisioned_entry["filedBy"] == "300:0.NA/88"

    registered = await register(top, "http://127.0.0.1:8101")
    assert registered.status_code == 200, registered.text
    entry = (await top.get("/api/prefixes/88.100")).json()
    assert entry["responseCode"] == 1 and entry["prefix"] == "88.100"
    assert entry["nodeUrl"] == "http://127.0.0.1:8101"
    assert entry["filedBy"] == NODE

    filed = await top.put(
        "/api/prefixes/88.100.7",
        json={
            "nodeUrl": "http://127.0.0.1:8101",
            "owner": "Wuhan Auto Parts",
            "creditCode": CREDIT_CODE.lower(),
            "contact": "ops@example.com",
        },
        headers=NODE_AUTH,
    )
    assert filed.status_code == 201, filed.text
    body = filed.json()
    assert body["prefix"] == "88.100.7" and body["kind"] == "enterprise"
    assert body["creditCode"] == CREDIT_CODE and body["filedBy"] == NODE

    listed = (await top.get("/api/prefixes")).json()
    assert [p["prefix"] for p in listed["prefixes"]] == ["88", "88.100", "88.100.7"]
    missing = await top.get("/api/prefixes/88.100.8")
    assert missing.status_code == 404 and missing.json()["responseCode"] == 100


async def test_filing_again_updates_with_200(provisioned: httpx.AsyncClient) -> None:
    body = {"creditCode": CREDIT_CODE, "owner": "A"}
    first = await provisioned.put("/api/prefixes/88.100.7", json=body, headers=NODE_AUTH)
    again = await provisioned.put(
        "/api/prefixes/88.100.7", json={**body, "owner": "B"}, headers=NODE_AUTH
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert (await provisioned.get("/api/prefixes/88.100.7")).json()["owner"] == "B"


async def test_provisioned_node_authenticates(provisioned: httpx.AsyncClient) -> None:
    """The provisioned secret works, so the node may write its own records too."""
    response = await provisioned.put(
        "/api/handles/88.100/x",
        json=[{"index": 1, "type": "URL", "data": "https://a.example/x"}],
        headers=NODE_AUTH,
    )
    # 88.100 has no nodeUrl yet, so the top node keeps its handles itself.
    assert response.status_code == 201, response.text


REFUSALS = [
    pytest.param(
        "88.101.3", {"creditCode": CREDIT_CODE}, NODE_AUTH, 403, 400, "88.100", id="outside-own"
    ),
    pytest.param("99.1", {"kind": "enterprise"}, NODE_AUTH, 400, 301, "99.1", id="outside-top"),
    # Valid Handle prefixes, but not national ones: never registered, filed or provisioned.
    pytest.param(
        "88.T1",
        {"kind": "secondary", "secret": "a-long-secret"},
        TOP_AUTH,
        400,
        102,
        "segment 'T1' is not ASCII digits; this hierarchy's prefixes are, e.g. 88.100.1",
        id="provision-letters",
    ),
    pytest.param(
        "88.100.T7",
        {"kind": "enterprise"},
        NODE_AUTH,
        400,
        102,
        "Invalid prefix '88.100.T7'",
        id="file-letters",
    ),
    pytest.param(
        "21.T14999", {"kind": "secondary"}, TOP_AUTH, 400, 102, "'T14999'", id="foreign-prefix"
    ),
    pytest.param("88.100.7", {"kind": "enterprise"}, {}, 401, 402, "credentials", id="anonymous"),
    pytest.param(
        "88.100.7",
        {"kind": "enterprise"},
        basic(NODE, "not-the-secret"),
        401,
        402,
        "Wrong secret",
        id="wrong-secret",
    ),
    pytest.param(
        "88.100.7",
        {"kind": "enterprise"},
        basic("300:0.NA/88.102", NODE_SECRET),
        401,
        402,
        "Unknown identity",
        id="unknown-identity",
    ),
    pytest.param(
        "88.100",
        {"nodeUrl": "http://127.0.0.1:8101", "secret": "a-new-secret"},
        NODE_AUTH,
        403,
        400,
        "own credentials",
        id="own-secret",
    ),
    pytest.param(
        "88.100", {"nodeUrl": "ftp://x"}, NODE_AUTH, 400, 202, "nodeUrl", id="bad-node-url"
    ),
    pytest.param(
        "88.100.7",
        {"creditCode": CREDIT_CODE[:-1] + "X"},
        NODE_AUTH,
        400,
        202,
        "check character should be 'Y'",
        id="bad-credit-code",
    ),
    pytest.param(
        "88.100.7",
        {"kind": "enterprise", "colour": "red"},
        NODE_AUTH,
        400,
        202,
        "colour",
        id="unknown-field",
    ),
    pytest.param("88.100.7", {"kind": "planet"}, NODE_AUTH, 400, 202, "kind", id="bad-kind"),
    pytest.param(
        "88.100.7", {"prefix": "88.100.8"}, NODE_AUTH, 400, 202, "prefix", id="prefix-mismatch"
    ),
    pytest.param(
        "88.100.7", {"owner": 7}, NODE_AUTH, 400, 202, "'owner' must be a string", id="not-string"
    ),
    pytest.param(
        "88.100.7", ["kind", "enterprise"], NODE_AUTH, 400, 202, "JSON object", id="not-object"
    ),
    pytest.param(
        "88.101",
        {"secret": "short"},
        TOP_AUTH,
        400,
        202,
        "'secret'",
        id="short-provisioned-secret",
    ),
]


@pytest.mark.parametrize(("prefix", "body", "auth", "status", "code", "said"), REFUSALS)
async def test_refusals_change_nothing(
    provisioned: httpx.AsyncClient,
    redis: Redis,
    prefix: str,
    body: object,
    auth: dict[str, str],
    status: int,
    code: int,
    said: str,
) -> None:
    before = await snapshot(redis)
    response = await provisioned.put(f"/api/prefixes/{prefix}", json=body, headers=auth)
    assert response.status_code == status, response.text
    assert response.json()["responseCode"] == code
    assert said in response.json()["message"]
    assert await snapshot(redis) == before


async def test_malformed_json_changes_nothing(provisioned: httpx.AsyncClient, redis: Redis) -> None:
    before = await snapshot(redis)
    response = await provisioned.put(
        "/api/prefixes/88.100.7",
        content=b'{"kind": "enterprise",',
        headers={**NODE_AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["responseCode"] == 202
    assert "JSON" in response.json()["message"]
    assert await snapshot(redis) == before


async def test_invalid_prefix_in_url(provisioned: httpx.AsyncClient, redis: Redis) -> None:
    before = await snapshot(redis)
    response = await provisioned.put("/api/prefixes/88.x", json={}, headers=NODE_AUTH)
    assert response.status_code == 400 and response.json()["responseCode"] == 102
    assert await snapshot(redis) == before


async def test_secret_is_not_public(provisioned: httpx.AsyncClient, redis: Redis) -> None:
    from registry.identifier import Handle
    from registry.store import HandleStore

    stored = await HandleStore(redis).load(Handle.parse("0.NA/88.100"))
    assert stored is not None
    seckey = stored.record.value_at(300)
    assert seckey is not None and isinstance(seckey.value, str) and seckey.value

    response = await provisioned.get("/api/handles/0.NA/88.100")
    assert response.status_code == 200
    types = {v["type"] for v in response.json()["values"]}
    assert "HS_SECKEY" not in types and "HS_ADMIN" in types
    assert NODE_SECRET not in response.text and seckey.value not in response.text
    listed = (await provisioned.get("/api/prefixes")).text
    assert NODE_SECRET not in listed and seckey.value not in listed


async def test_resolution_is_delegated_to_the_registered_node(
    provisioned: httpx.AsyncClient,
) -> None:
    assert (await register(provisioned, DEAD_URL)).status_code == 200

    down = await provisioned.get("/api/handles/88.100/x")
    assert down.status_code == 502, down.text
    body = down.json()
    assert body["responseCode"] == 2 and body["handle"] == "88.100/x"
    assert DEAD_URL in body["message"]

    undelegated = await provisioned.get("/api/handles/88.999/x")
    assert undelegated.status_code == 404
    assert undelegated.json()["responseCode"] == 100
    assert undelegated.json()["handle"] == "88.999/x"


async def test_prefix_record_stays_at_the_top(provisioned: httpx.AsyncClient) -> None:
    """The record saying where 88.100 went is answered by the top node itself."""
    assert (await register(provisioned, DEAD_URL)).status_code == 200
    record = await provisioned.get("/api/handles/0.NA/88.100")
    assert record.status_code == 200
    values = {v["type"]: v["data"]["value"] for v in record.json()["values"]}
    assert values["NODE_URL"] == DEAD_URL and values["FILED_BY"] == NODE


async def test_rotating_a_node_secret_keeps_its_registration(
    provisioned: httpx.AsyncClient,
) -> None:
    top = provisioned
    assert (await register(top, "http://127.0.0.1:8101")).status_code == 200
    rotated = await top.put(
        "/api/prefixes/88.100", json={"secret": "node-secret-2"}, headers=TOP_AUTH
    )
    assert rotated.status_code == 200, rotated.text
    entry = (await top.get("/api/prefixes/88.100")).json()
    assert entry["nodeUrl"] == "http://127.0.0.1:8101"
    assert entry["kind"] == "secondary" and entry["industry"] == "automotive"
    assert (await register(top, "http://127.0.0.1:8101")).status_code == 401  # old secret
    fresh = basic(NODE, "node-secret-2")
    again = await top.put("/api/prefixes/88.100", json={"owner": "x"}, headers=fresh)
    assert again.status_code == 200
