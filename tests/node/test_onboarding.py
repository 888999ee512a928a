"""Enterprise onboarding at a standalone secondary node (88.100), in process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from node.app import create_app
from registry.identifier import Handle
from registry.key_moves import move_key
from registry.store import HandleStore
from tests.conftest import (
    ADMIN_AUTH,
    StoreServer,
    all_keys,
    basic,
    node_config,
    served,
    snapshot,
)

CREDIT_CODE = "91420100MA4K2B7C1Y"
OTHER_CODE = "91350100M000100Y43"
DEAD_URL = "http://127.0.0.1:1"  # nothing listens on port 1
URL_VALUE = {"index": 1, "type": "URL", "data": "https://parts.example/1"}


def application(credit_code: str = CREDIT_CODE, **fields: str) -> dict[str, str]:
    return {
        "name": "Wuhan Auto Parts",
        "creditCode": credit_code,
        "industry": "automotive",
        "contact": "ops@example.com",
        **fields,
    }


@pytest.fixture
async def secondary(redis: Redis, redis_server: StoreServer) -> AsyncIterator[httpx.AsyncClient]:
    """A standalone secondary node for 88.100 (no parent_url: approvals are not filed)."""
    app = create_app(node_config(redis_server.url, prefix="88.100", role="secondary"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://secondary") as http:
            yield http


async def apply(http: httpx.AsyncClient, body: object) -> dict[str, Any]:
    response = await http.post("/api/enterprises", json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def approve(http: httpx.AsyncClient, app_id: str, **body: str) -> httpx.Response:
    return await http.post(
        f"/api/enterprises/{app_id}/approve", json=body or None, headers=ADMIN_AUTH
    )


async def approved(
    http: httpx.AsyncClient, credit_code: str = CREDIT_CODE, **fields: str
) -> dict[str, Any]:
    """Apply and approve; the approval's body (with the enterprise's credentials)."""
    app_id = (await apply(http, application(credit_code, **fields)))["id"]
    response = await approve(http, app_id)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_apply_answers_a_pending_application(secondary: httpx.AsyncClient) -> None:
    body = await apply(secondary, application(CREDIT_CODE.lower()))
    assert body["responseCode"] == 1 and body["status"] == "pending"
    assert body["creditCode"] == CREDIT_CODE and body["name"] == "Wuhan Auto Parts"
    assert body["prefix"] == "" and body["id"]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        pytest.param({k: v for k, v in application().items() if k != "name"}, "'name'", id="name"),
        pytest.param(application(contact="   "), "'contact' is required", id="blank-contact"),
        pytest.param(
            application(CREDIT_CODE[:-1] + "X"),
            "the check character should be 'Y'",
            id="credit-code-check",
        ),
        pytest.param(application("9142"), "18 characters", id="credit-code-length"),
        pytest.param(application(nodeUrl="ftp://x"), "nodeUrl", id="node-url"),
        pytest.param({**application(), "colour": "red"}, "colour", id="unknown-field"),
        pytest.param([application()], "JSON object", id="not-object"),
    ],
)
async def test_invalid_applications(
    secondary: httpx.AsyncClient, redis: Redis, body: object, said: str
) -> None:
    before = await snapshot(redis)
    response = await secondary.post("/api/enterprises", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["responseCode"] == 202
    assert said in response.json()["message"]
    assert await snapshot(redis) == before


async def test_malformed_json_application(secondary: httpx.AsyncClient) -> None:
    response = await secondary.post(
        "/api/enterprises", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["responseCode"] == 202


async def test_a_registered_credit_code_is_refused_without_naming_anyone(
    secondary: httpx.AsyncClient, redis: Redis
) -> None:
    owner = await approved(secondary)
    before = await snapshot(redis)
    for code in (CREDIT_CODE, CREDIT_CODE.lower()):
        again = await secondary.post("/api/enterprises", json=application(code, name="Other"))
        assert again.status_code == 409 and again.json()["responseCode"] == 101
        message = again.json()["message"]
        assert message == f"credit code {CREDIT_CODE} is already registered at this node"
        assert owner["id"] not in again.text and owner["prefix"] not in again.text
    assert await snapshot(redis) == before


async def test_a_squatter_does_not_block_the_owner_or_learn_from_it(
    secondary: httpx.AsyncClient,
) -> None:
    """Finding 8: a pending application with someone else's credit code used to block
    the real owner, and the 409 named the squatter's application."""
    squatter = await apply(secondary, application(name="Squat Ltd", contact="squat@evil.example"))
    owner_answer = await secondary.post("/api/enterprises", json=application())
    assert owner_answer.status_code == 201, owner_answer.text
    owner = owner_answer.json()
    assert owner["status"] == "pending" and owner["id"] != squatter["id"]
    for secret in (squatter["id"], "Squat", "evil.example"):
        assert secret not in owner_answer.text

    # The administrator sees both side by side and approves the owner's.
    listed = await secondary.get(
        "/api/enterprises", params={"creditCode": CREDIT_CODE.lower()}, headers=ADMIN_AUTH
    )
    assert [a["id"] for a in listed.json()["applications"]] == [squatter["id"], owner["id"]]
    approval = await approve(secondary, owner["id"])
    assert approval.status_code == 200, approval.text
    assert approval.json()["prefix"] == "88.100.1"

    # Approving one rejects the others with that credit code.
    got = await secondary.get(f"/api/enterprises/{squatter['id']}", headers=ADMIN_AUTH)
    assert got.json()["status"] == "rejected"
    assert got.json()["reason"] == "another application with the same credit code was approved"
    late = await approve(secondary, squatter["id"])
    assert late.status_code == 409 and "already rejected" in late.json()["message"]


async def test_the_squatter_may_be_approved_first_only_by_the_administrator(
    secondary: httpx.AsyncClient,
) -> None:
    """Whichever application the administrator approves holds the code; the others
    with it are rejected then."""
    squatter = await apply(secondary, application(name="Squat Ltd"))
    owner = await apply(secondary, application())
    assert (await approve(secondary, squatter["id"])).status_code == 200
    refused = await approve(secondary, owner["id"])
    assert refused.status_code == 409 and "already rejected" in refused.json()["message"]


async def test_a_pending_application_of_an_older_store_blocks_nobody(
    redis: Redis, redis_server: StoreServer
) -> None:
    """Stores written before this rule kept ``ent:code:<code>`` for any application and
    had no ``ent:pending``/``ent:code-apps`` indexes: the node indexes them at start-up."""
    old = {
        "id": "oldsquat0001", "name": "Squat Ltd", "creditCode": CREDIT_CODE,
        "industry": "auto", "contact": "x@y.cn", "nodeUrl": "", "status": "pending",
        "submitted": "2025-01-01T00:00:00Z", "prefix": "", "decided": "", "reason": "",
    }  # fmt: skip
    await redis.set("ent:app:oldsquat0001", orjson.dumps(old))
    await redis.zadd("ent:apps", {"oldsquat0001": time.time()})
    await redis.set(f"ent:code:{CREDIT_CODE}", "oldsquat0001")
    app = create_app(node_config(redis_server.url, prefix="88.100", role="secondary"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            owner = await apply(http, application())
            assert "oldsquat0001" not in str(owner)
            assert (await approve(http, owner["id"])).status_code == 200
            got = await http.get("/api/enterprises/oldsquat0001", headers=ADMIN_AUTH)
            assert got.json()["status"] == "rejected"
    assert await redis.get(f"ent:{{ent}}:code:{CREDIT_CODE}") == owner["id"].encode()
    assert await redis.zcard("ent:{ent}:pending") == 0


async def onboarding_keys(redis: Redis) -> dict[bytes, object]:
    """Every onboarding key with its serialised value."""
    return {key: await redis.dump(key) for key in sorted(await all_keys(redis, "ent:*"))}


async def test_a_store_of_untagged_keys_is_moved_at_start_and_works_on(
    redis: Redis, redis_server: StoreServer
) -> None:
    """Stores written before the ``{ent}`` tag named the keys ``ent:app:<id>``,
    ``ent:apps``, ...: the node moves them to their tagged names at start-up, each key by
    itself, and carries on where the old store was (the prefix counter included)."""
    config = node_config(redis_server.url, prefix="88.100", role="secondary")
    async with served(config) as http:
        registered = await approved(http)
        waiting = await apply(http, application(OTHER_CODE))
    # The same store as the previous release left it: untagged names, layout "2".
    for key in await all_keys(redis, "ent:{ent}:*"):
        await move_key(redis, key, key.replace(b"ent:{ent}:", b"ent:"))
    await redis.set("ent:layout", "2")
    old = await onboarding_keys(redis)
    assert b"ent:app:" + waiting["id"].encode() in old and b"ent:next" in old
    async with served(config) as http:
        moved = await onboarding_keys(redis)
        assert {k.replace(b"ent:{ent}:", b"ent:") for k in moved} == set(old) | {b"ent:layout"}
        assert {k: v for k, v in moved.items() if not k.endswith(b"layout")} == {
            k.replace(b"ent:", b"ent:{ent}:"): v for k, v in old.items() if k != b"ent:layout"
        }
        listed = await http.get("/api/enterprises", headers=ADMIN_AUTH)
        assert {a["id"]: a["status"] for a in listed.json()["applications"]} == {
            registered["id"]: "approved",
            waiting["id"]: "pending",
        }
        refused = await http.post("/api/enterprises", json=application())
        assert refused.status_code == 409  # the approved credit code is still held
        decided = await approve(http, waiting["id"])
        assert decided.status_code == 200 and decided.json()["prefix"] == "88.100.2"
    after = await onboarding_keys(redis)
    async with served(config):
        pass
    assert await onboarding_keys(redis) == after  # moved once: a restart changes nothing


async def test_reapply_after_rejection(secondary: httpx.AsyncClient) -> None:
    first = await apply(secondary, application())
    rejected = await secondary.post(
        f"/api/enterprises/{first['id']}/reject", json={"reason": "wrong"}, headers=ADMIN_AUTH
    )
    assert rejected.status_code == 200
    second = await apply(secondary, application())
    assert second["id"] != first["id"] and second["status"] == "pending"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/enterprises"),
        ("GET", "/api/enterprises/{id}"),
        ("POST", "/api/enterprises/{id}/approve"),
        ("POST", "/api/enterprises/{id}/reject"),
    ],
)
async def test_decisions_need_the_node_admin(
    secondary: httpx.AsyncClient, redis: Redis, method: str, path: str
) -> None:
    enterprise = await approved(secondary, OTHER_CODE)
    pending = await apply(secondary, application())
    url = path.format(id=pending["id"])
    body = {"reason": "no"}
    before = await snapshot(redis)

    anonymous = await secondary.request(method, url, json=body)
    assert anonymous.status_code == 401 and anonymous.json()["responseCode"] == 402

    as_enterprise = await secondary.request(
        method, url, json=body, headers=basic(enterprise["identity"], enterprise["secret"])
    )
    assert as_enterprise.status_code == 403 and as_enterprise.json()["responseCode"] == 400
    assert "88.100" in as_enterprise.json()["message"]

    wrong = await secondary.request(
        method, url, json=body, headers=basic("300:0.NA/88.100", "not-the-secret")
    )
    assert wrong.status_code == 401 and wrong.json()["responseCode"] == 402
    assert await snapshot(redis) == before


async def test_list_and_get(secondary: httpx.AsyncClient) -> None:
    first = await apply(secondary, application())
    second = await apply(secondary, application(OTHER_CODE))
    await approve(secondary, second["id"])

    listed = (await secondary.get("/api/enterprises", headers=ADMIN_AUTH)).json()
    assert listed["totalCount"] == 2
    assert [a["id"] for a in listed["applications"]] == [first["id"], second["id"]]
    pending = (
        await secondary.get("/api/enterprises", params={"status": "pending"}, headers=ADMIN_AUTH)
    ).json()
    assert [a["id"] for a in pending["applications"]] == [first["id"]]

    got = await secondary.get(f"/api/enterprises/{second['id']}", headers=ADMIN_AUTH)
    assert got.status_code == 200
    assert got.json()["status"] == "approved" and got.json()["prefix"] == "88.100.1"
    assert "secret" not in got.json()

    missing = await secondary.get("/api/enterprises/nope", headers=ADMIN_AUTH)
    assert missing.status_code == 404 and missing.json()["responseCode"] == 100


async def test_approve_allocates_and_issues_credentials(secondary: httpx.AsyncClient) -> None:
    first = await apply(secondary, application())
    second = await apply(secondary, application(OTHER_CODE))

    one = await approve(secondary, first["id"])
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["responseCode"] == 1 and body["status"] == "approved"
    assert body["prefix"] == "88.100.1"
    assert body["identity"] == "300:0.NA/88.100.1"
    assert isinstance(body["secret"], str) and len(body["secret"]) >= 8
    assert body["filed"] is False
    assert body["decided"]

    two = await approve(secondary, second["id"])
    assert two.status_code == 200 and two.json()["prefix"] == "88.100.2"
    assert two.json()["secret"] != body["secret"]

    again = await approve(secondary, first["id"])
    assert again.status_code == 409 and again.json()["responseCode"] == 101
    assert "approved" in again.json()["message"]
    assert "secret" not in again.json()


async def test_allocation_skips_a_prefix_taken_by_hand(secondary: httpx.AsyncClient) -> None:
    """The node admin may create an enterprise identity by hand; approval leaves it be."""
    manual = await secondary.put(
        "/api/handles/0.NA/88.100.1",
        json=[{"index": 300, "type": "HS_SECKEY", "data": "manual-secret"}],
        headers=ADMIN_AUTH,
    )
    assert manual.status_code == 201, manual.text
    enterprise = await approved(secondary)
    assert enterprise["prefix"] == "88.100.2"
    still = await secondary.put(
        "/api/handles/88.100.1/a",
        json=[URL_VALUE],
        headers=basic("300:0.NA/88.100.1", "manual-secret"),
    )
    assert still.status_code == 201, still.text


async def test_concurrent_approvals(secondary: httpx.AsyncClient) -> None:
    first = await apply(secondary, application())
    second = await apply(secondary, application(OTHER_CODE))
    both = await asyncio.gather(
        approve(secondary, first["id"]),
        approve(secondary, first["id"]),
        approve(secondary, second["id"]),
    )
    statuses = sorted(r.status_code for r in both[:2])
    assert statuses == [200, 409]
    winner = next(r for r in both[:2] if r.status_code == 200).json()
    assert {winner["prefix"], both[2].json()["prefix"]} == {"88.100.1", "88.100.2"}
    auth = basic(winner["identity"], winner["secret"])
    put = await secondary.put(f"/api/handles/{winner['prefix']}/a", json=[URL_VALUE], headers=auth)
    assert put.status_code == 201, put.text


async def test_reject(secondary: httpx.AsyncClient) -> None:
    pending = await apply(secondary, application())
    url = f"/api/enterprises/{pending['id']}/reject"

    no_reason = await secondary.post(url, json={}, headers=ADMIN_AUTH)
    assert no_reason.status_code == 400 and no_reason.json()["responseCode"] == 202

    rejected = await secondary.post(
        url, json={"reason": "  not an automaker  "}, headers=ADMIN_AUTH
    )
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reason"] == "not an automaker"

    again = await secondary.post(url, json={"reason": "still no"}, headers=ADMIN_AUTH)
    assert again.status_code == 409 and again.json()["responseCode"] == 101
    approving = await approve(secondary, pending["id"])
    assert approving.status_code == 409 and approving.json()["responseCode"] == 101


async def test_issued_credentials_write_only_their_prefix(
    secondary: httpx.AsyncClient, redis: Redis
) -> None:
    enterprise = await approved(secondary)
    await approved(secondary, OTHER_CODE)  # 88.100.2, someone else's
    auth = basic(enterprise["identity"], enterprise["secret"])

    created = await secondary.put(
        "/api/handles/88.100.1/part-1", json={"values": [URL_VALUE]}, headers=auth
    )
    assert created.status_code == 201, created.text

    before = await snapshot(redis)
    for handle in ("88.100.2/x", "88.100/x", "0.NA/88.100.2"):
        refused = await secondary.put(f"/api/handles/{handle}", json=[URL_VALUE], headers=auth)
        assert refused.status_code == 403, (handle, refused.text)
        assert refused.json()["responseCode"] == 400 and refused.json()["handle"] == handle
    assert await snapshot(redis) == before

    got = await secondary.get("/api/handles/88.100.1/part-1")
    assert got.status_code == 200
    values = {v["type"]: v for v in got.json()["values"]}
    assert values["URL"]["data"]["value"] == "https://parts.example/1"
    assert values["HS_ADMIN"]["data"]["value"]["handle"] == "0.NA/88.100.1"


async def test_enterprise_record_hides_the_secret(
    secondary: httpx.AsyncClient, redis: Redis
) -> None:
    enterprise = await approved(secondary)
    stored = await HandleStore(redis).load(Handle.parse("0.NA/88.100.1"))
    assert stored is not None
    seckey = stored.record.value_at(300)
    assert seckey is not None and isinstance(seckey.value, str) and seckey.value

    record = await secondary.get("/api/handles/0.NA/88.100.1")
    assert record.status_code == 200
    assert enterprise["secret"] not in record.text and seckey.value not in record.text
    values = {v["type"]: v["data"]["value"] for v in record.json()["values"]}
    assert "HS_SECKEY" not in values
    assert values["PREFIX_KIND"] == "enterprise" and values["CREDIT_CODE"] == CREDIT_CODE
    assert values["NODE_URL"] == ""  # hosted here


async def test_approval_with_a_chosen_secret(secondary: httpx.AsyncClient) -> None:
    pending = await apply(secondary, application())
    response = await approve(secondary, pending["id"], secret="chosen-secret-1")
    assert response.status_code == 200 and response.json()["secret"] == "chosen-secret-1"
    auth = basic("300:0.NA/88.100.1", "chosen-secret-1")
    created = await secondary.put("/api/handles/88.100.1/a", json=[URL_VALUE], headers=auth)
    assert created.status_code == 201, created.text


async def test_approval_with_a_too_short_secret(secondary: httpx.AsyncClient) -> None:
    pending = await apply(secondary, application())
    response = await approve(secondary, pending["id"], secret="short")
    assert response.status_code == 400 and response.json()["responseCode"] == 202
    got = await secondary.get(f"/api/enterprises/{pending['id']}", headers=ADMIN_AUTH)
    assert got.json()["status"] == "pending"


async def test_enterprise_with_its_own_node_is_referred(
    secondary: httpx.AsyncClient, redis: Redis
) -> None:
    enterprise = await approved(secondary, nodeUrl=DEAD_URL)
    prefix = enterprise["prefix"]
    assert prefix == "88.100.1" and enterprise["nodeUrl"] == DEAD_URL

    referred = await secondary.get(f"/api/handles/{prefix}/x")
    assert referred.status_code == 400, referred.text
    body = referred.json()
    assert body["responseCode"] == 301 and body["handle"] == f"{prefix}/x"
    assert body["referral"]["url"] == DEAD_URL
    assert body["referral"]["prefix"] == prefix

    record = await secondary.get(f"/api/handles/0.NA/{prefix}")
    assert record.status_code == 200  # the delegation record itself stays here

    listing = await secondary.get(f"/api/handles?prefix={prefix}", headers=ADMIN_AUTH)
    assert listing.status_code == 400
    assert listing.json()["responseCode"] == 301
    assert listing.json()["referral"] == {"url": DEAD_URL, "prefix": prefix}
    assert "handle" not in listing.json()

    before = await snapshot(redis)
    for auth in (basic(enterprise["identity"], enterprise["secret"]), ADMIN_AUTH):
        refused = await secondary.put(f"/api/handles/{prefix}/x", json=[URL_VALUE], headers=auth)
        assert refused.status_code == 400, refused.text
        assert refused.json()["responseCode"] == 301
        assert refused.json()["referral"]["url"] == DEAD_URL
    assert await snapshot(redis) == before
