"""Sessions, secret rotation and public-key login, in process on the session's real Redis."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import secrets
from typing import Any, cast
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from redis.asyncio import Redis

from registry.identifier import Identity
from registry.pubkey import Algorithm, challenge, generate, handle_dsa, sign
from registry.session import UPGRADE_STEP, SessionState, SessionStore, encode
from tests.conftest import (
    ADMIN,
    ADMIN_AUTH,
    ADMIN_SECRET,
    StoreServer,
    all_keys,
    basic,
    node_config,
    served,
    snapshot,
    stored_record,
)
from tests.registry.test_pubkey import handle_sign, key_data

DEVICE = "300:88.100/devices/plc-7"
DEVICE_HANDLE = "88.100/devices/plc-7"
ENTERPRISE = "300:0.NA/88.100.1"
ENTERPRISE_SECRET = "enterprise-secret-1"
ENTERPRISE_AUTH = basic(ENTERPRISE, ENTERPRISE_SECRET)
URL_VALUE = {"index": 1, "type": "URL", "data": "https://parts.example/1"}
ALGORITHMS = [pytest.param(a, id=a.value) for a in Algorithm]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def open_session(client: httpx.AsyncClient, auth: dict[str, str] = ADMIN_AUTH) -> str:
    response = await client.post("/api/sessions", headers=auth)
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


async def is_admin(client: httpx.AsyncClient, auth: dict[str, str]) -> int:
    """The status of a request only the node administrator may make (200 when it is)."""
    return (await client.get("/api/audit", params={"count": 1}, headers=auth)).status_code


async def put(
    client: httpx.AsyncClient, handle: str, values: object, auth: dict[str, str], **params: str
) -> httpx.Response:
    return await client.put(f"/api/handles/{handle}", json=values, params=params, headers=auth)


@pytest.fixture
async def enterprise(client: httpx.AsyncClient) -> dict[str, str]:
    """An enterprise administrator 300:0.NA/88.100.1, created by hand by the node admin."""
    created = await put(
        client,
        "0.NA/88.100.1",
        [{"index": 300, "type": "HS_SECKEY", "data": ENTERPRISE_SECRET}],
        ADMIN_AUTH,
    )
    assert created.status_code == 201, created.text
    return ENTERPRISE_AUTH


async def add_device(
    client: httpx.AsyncClient, algorithm: Algorithm, handle: str = DEVICE_HANDLE
) -> str:
    """Give ``300:<handle>`` a fresh public key; returns the private key."""
    private, public = generate(algorithm)
    created = await put(
        client, handle, [{"index": 300, "type": "HS_PUBKEY", "data": public}], ADMIN_AUTH
    )
    assert created.status_code == 201, created.text
    return private


async def grant_device(client: httpx.AsyncClient, handle: str = DEVICE_HANDLE) -> None:
    admin_value = {
        "index": 101,
        "type": "HS_ADMIN",
        "data": {
            "format": "admin",
            "value": {"handle": handle, "index": 300, "permissions": "registrar"},
        },
    }
    granted = await put(client, "0.NA/88.100", [admin_value], ADMIN_AUTH, index="101")
    assert granted.status_code == 200, granted.text


async def ask_challenge(client: httpx.AsyncClient, identity: str = DEVICE) -> dict[str, Any]:
    response = await client.post("/api/sessions/challenge", json={"identity": identity})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(
    client: httpx.AsyncClient, identity: str, nonce: str, signature: str
) -> httpx.Response:
    return await client.post(
        "/api/sessions", json={"identity": identity, "nonce": nonce, "signature": signature}
    )


def refused(response: httpx.Response) -> bool:
    return response.status_code == 401 and response.json()["responseCode"] == 402


# -- Basic credentials for a Bearer token ---------------------------------------------


async def test_basic_login_answers_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/sessions", headers=ADMIN_AUTH)
    assert response.status_code == 201
    body = response.json()
    assert body["responseCode"] == 1
    assert body["identity"] == ADMIN and body["expiresIn"] == 900
    assert isinstance(body["token"], str) and len(body["token"]) >= 40
    assert body["token"] != await open_session(client)  # every login is a new token


async def test_token_works_for_writes_and_deletes(client: httpx.AsyncClient) -> None:
    token = await open_session(client)
    created = await put(client, "88.100/x", [URL_VALUE], bearer(token))
    assert created.status_code == 201, created.text
    assert (await client.get("/api/handles/88.100/x")).status_code == 200
    deleted = await client.delete("/api/handles/88.100/x", headers=bearer(token))
    assert deleted.status_code == 200, deleted.text
    assert (await client.get("/api/handles/88.100/x")).status_code == 404
    assert await is_admin(client, bearer(token)) == 200
    assert await is_admin(client, {"Authorization": f"bearer   {token}  "}) == 200


async def test_the_store_keeps_only_a_hash_of_the_token(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    token = await open_session(client)
    keys = await all_keys(redis, "sess:*")
    assert keys and not any(token.encode() in key for key in keys)
    for key in keys:
        assert token.encode() not in (await redis.dump(key) or b"")
    ttl = await redis.ttl(next(k for k in keys if k.startswith(b"sess:{sess}:t:")))
    assert 0 < ttl <= 900


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(bearer("not-a-token"), id="unknown"),
        pytest.param(bearer(""), id="empty"),
        pytest.param({"Authorization": "Bearer"}, id="no-token"),
        pytest.param(bearer("x" * 5000), id="long"),
    ],
)
async def test_unknown_token_is_refused(
    client: httpx.AsyncClient, redis: Redis, headers: dict[str, str]
) -> None:
    before = await snapshot(redis)
    response = await put(client, "88.100/x", [URL_VALUE], headers)
    assert refused(response)
    assert await snapshot(redis) == before


async def test_login_needs_credentials(client: httpx.AsyncClient, redis: Redis) -> None:
    before = await snapshot(redis)
    # Without credentials, Handle's POST /api/sessions opens a session that is not
    # authenticated (see the Handle-session tests below): no token, nothing it may do.
    anonymous = await client.post("/api/sessions")
    assert anonymous.status_code == 201 and anonymous.json()["authenticated"] is False
    assert "token" not in anonymous.json()
    assert refused(await client.post("/api/sessions", headers=basic(ADMIN, "wrong-secret")))
    assert refused(await client.post("/api/sessions", headers=basic("300:0.NA/88.100.9", "x")))
    token = await open_session(client)
    # a token is not exchanged for another one
    assert refused(await client.post("/api/sessions", headers=bearer(token)))
    assert refused(await put(client, "88.100/x", [URL_VALUE], {}))
    after = cast(dict[bytes, object], await snapshot(redis))
    not_sessions = {k for k in cast(dict[bytes, object], before) if not k.startswith(b"sess:")}
    assert {k for k in after if not k.startswith(b"sess:")} == not_sessions


# -- Logging out ----------------------------------------------------------------------


async def test_logout_revokes_the_token(client: httpx.AsyncClient) -> None:
    token = await open_session(client)
    other = await open_session(client)
    response = await client.delete("/api/sessions", headers=bearer(token))
    assert response.status_code == 200 and response.json() == {"responseCode": 1, "revoked": 1}
    assert refused(await put(client, "88.100/x", [URL_VALUE], bearer(token)))
    assert refused(await client.delete("/api/sessions", headers=bearer(token)))
    assert await is_admin(client, bearer(other)) == 200  # the other session is untouched
    assert await is_admin(client, ADMIN_AUTH) == 200


async def test_logout_without_token_or_identity_is_malformed(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/sessions", headers=ADMIN_AUTH)
    assert response.status_code == 400 and response.json()["responseCode"] == 202
    assert refused(await client.delete("/api/sessions"))


async def test_admin_ends_every_session_of_an_identity(client: httpx.AsyncClient) -> None:
    tokens = [await open_session(client) for _ in range(3)]
    await client.delete("/api/sessions", headers=bearer(tokens[0]))  # already ended
    response = await client.delete("/api/sessions", params={"identity": ADMIN}, headers=ADMIN_AUTH)
    assert response.status_code == 200
    assert response.json() == {"responseCode": 1, "revoked": 2}
    for token in tokens:
        assert await is_admin(client, bearer(token)) == 401
    assert await is_admin(client, ADMIN_AUTH) == 200  # the secret still works
    again = await client.delete("/api/sessions", params={"identity": ADMIN}, headers=ADMIN_AUTH)
    assert again.json() == {"responseCode": 1, "revoked": 0}


async def test_ending_all_sessions_with_a_token_ends_that_one_too(
    client: httpx.AsyncClient,
) -> None:
    token = await open_session(client)
    response = await client.delete(
        "/api/sessions", params={"identity": ADMIN.lower()}, headers=bearer(token)
    )
    assert response.status_code == 200 and response.json()["revoked"] == 1
    assert await is_admin(client, bearer(token)) == 401


async def test_enterprise_may_not_end_the_admins_sessions(
    client: httpx.AsyncClient, enterprise: dict[str, str]
) -> None:
    token = await open_session(client)
    response = await client.delete("/api/sessions", params={"identity": ADMIN}, headers=enterprise)
    assert response.status_code == 403 and response.json()["responseCode"] == 400
    assert await is_admin(client, bearer(token)) == 200


async def test_identity_and_admin_above_may_end_an_enterprises_sessions(
    client: httpx.AsyncClient, enterprise: dict[str, str]
) -> None:
    first, second = await open_session(client, enterprise), await open_session(client, enterprise)
    own = await client.delete(
        "/api/sessions", params={"identity": ENTERPRISE}, headers=bearer(first)
    )
    assert own.status_code == 200 and own.json()["revoked"] == 2
    third = await open_session(client, enterprise)
    by_admin = await client.delete(
        "/api/sessions", params={"identity": ENTERPRISE}, headers=ADMIN_AUTH
    )
    assert by_admin.status_code == 200 and by_admin.json()["revoked"] == 1
    for token in (first, second, third):
        assert refused(await put(client, "88.100.1/a", [URL_VALUE], bearer(token)))
    assert (await put(client, "88.100.1/a", [URL_VALUE], enterprise)).status_code == 201


async def test_ending_sessions_of_a_malformed_identity(client: httpx.AsyncClient) -> None:
    response = await client.delete(
        "/api/sessions", params={"identity": "no-index"}, headers=ADMIN_AUTH
    )
    assert response.status_code == 400


# -- Secret rotation ------------------------------------------------------------------


async def rotate(
    client: httpx.AsyncClient, body: object, auth: dict[str, str] = ADMIN_AUTH, who: str = ADMIN
) -> httpx.Response:
    return await client.put(f"/api/secrets/{who}", json=body, headers=auth)


async def test_rotation_keeps_the_old_secret_during_the_grace_period(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    token = await open_session(client)
    response = await rotate(client, {"secret": "new-secret-1", "graceSeconds": 60})
    assert response.status_code == 200, response.text
    assert response.json() == {"responseCode": 1, "identity": ADMIN, "graceSeconds": 60}
    new_auth = basic(ADMIN, "new-secret-1")
    assert await is_admin(client, new_auth) == 200
    assert await is_admin(client, ADMIN_AUTH) == 200
    assert await is_admin(client, bearer(token)) == 200  # open sessions stay valid
    assert (await put(client, "88.100/x", [URL_VALUE], ADMIN_AUTH)).status_code == 201
    assert (await put(client, "88.100/y", [URL_VALUE], new_auth)).status_code == 201
    assert await is_admin(client, basic(ADMIN, "another-secret")) == 401
    (grace_key,) = await all_keys(redis, "sess:r:*")
    assert 0 < await redis.ttl(grace_key) <= 60
    assert b"new-secret-1" not in (await redis.dump(grace_key) or b"")

    # when the grace period is over, only the new secret works
    await redis.pexpire(grace_key, 1)
    await asyncio.sleep(0.02)
    assert await is_admin(client, ADMIN_AUTH) == 401
    assert await is_admin(client, new_auth) == 200
    assert await is_admin(client, bearer(token)) == 200


async def test_rotation_without_grace_ends_the_old_secret_at_once(
    client: httpx.AsyncClient,
) -> None:
    token = await open_session(client)
    assert await is_admin(client, ADMIN_AUTH) == 200  # the old secret is remembered as good
    response = await rotate(client, {"secret": "new-secret-1", "graceSeconds": 0})
    assert response.status_code == 200, response.text
    assert await is_admin(client, ADMIN_AUTH) == 401
    assert await is_admin(client, basic(ADMIN, "new-secret-1")) == 200
    assert await is_admin(client, bearer(token)) == 200


async def test_rotation_defaults_to_an_hour(client: httpx.AsyncClient, redis: Redis) -> None:
    response = await rotate(client, {"secret": "new-secret-1"})
    assert response.status_code == 200 and response.json()["graceSeconds"] == 3600
    (grace_key,) = await all_keys(redis, "sess:r:*")
    assert 3500 < await redis.ttl(grace_key) <= 3600
    assert await is_admin(client, ADMIN_AUTH) == 200


async def test_second_rotation_retires_the_first_secret(client: httpx.AsyncClient) -> None:
    assert (await rotate(client, {"secret": "new-secret-1", "graceSeconds": 60})).status_code == 200
    second = await rotate(
        client, {"secret": "new-secret-2", "graceSeconds": 60}, basic(ADMIN, "new-secret-1")
    )
    assert second.status_code == 200, second.text
    assert await is_admin(client, basic(ADMIN, "new-secret-2")) == 200
    assert await is_admin(client, basic(ADMIN, "new-secret-1")) == 200
    assert await is_admin(client, ADMIN_AUTH) == 401


async def test_rotation_with_a_token(client: httpx.AsyncClient) -> None:
    token = await open_session(client)
    response = await rotate(client, {"secret": "new-secret-1", "graceSeconds": 0}, bearer(token))
    assert response.status_code == 200, response.text
    assert await is_admin(client, basic(ADMIN, "new-secret-1")) == 200


async def test_admin_rotates_an_enterprise_secret(
    client: httpx.AsyncClient, enterprise: dict[str, str]
) -> None:
    response = await rotate(
        client, {"secret": "rotated-by-admin", "graceSeconds": 0}, ADMIN_AUTH, ENTERPRISE
    )
    assert response.status_code == 200, response.text
    assert refused(await put(client, "88.100.1/a", [URL_VALUE], enterprise))
    rotated = basic(ENTERPRISE, "rotated-by-admin")
    assert (await put(client, "88.100.1/a", [URL_VALUE], rotated)).status_code == 201


async def test_enterprise_may_not_rotate_the_admins_secret(
    client: httpx.AsyncClient, redis: Redis, enterprise: dict[str, str]
) -> None:
    before = await snapshot(redis)
    response = await rotate(client, {"secret": "hijacked-secret", "graceSeconds": 0}, enterprise)
    assert response.status_code == 403 and response.json()["responseCode"] == 400
    assert await snapshot(redis) == before
    assert await is_admin(client, ADMIN_AUTH) == 200
    assert await is_admin(client, basic(ADMIN, "hijacked-secret")) == 401


async def test_rotation_refusals_change_nothing(client: httpx.AsyncClient, redis: Redis) -> None:
    private = await add_device(client, Algorithm.ED25519)
    assert private
    before = await snapshot(redis)
    unknown = await rotate(client, {"secret": "new-secret-1"}, who="300:88.100/nobody")
    assert unknown.status_code == 404 and unknown.json()["responseCode"] == 100
    pubkey = await rotate(client, {"secret": "new-secret-1"}, who=DEVICE)
    assert pubkey.status_code == 404
    foreign = await rotate(client, {"secret": "new-secret-1"}, who="300:0.NA/88.200")
    assert foreign.status_code == 400 and foreign.json()["responseCode"] == 301
    anonymous = await client.put(f"/api/secrets/{ADMIN}", json={"secret": "new-secret-1"})
    assert refused(anonymous)
    assert await snapshot(redis) == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"secret": "short", "graceSeconds": 60}, id="short-secret"),
        pytest.param({"secret": "x" * 257, "graceSeconds": 60}, id="long-secret"),
        pytest.param({"secret": "", "graceSeconds": 60}, id="empty-secret"),
        pytest.param({"secret": 12345678, "graceSeconds": 60}, id="secret-not-string"),
        pytest.param({"graceSeconds": 60}, id="no-secret"),
        pytest.param({"secret": "new-secret-1", "graceSeconds": -1}, id="negative-grace"),
        pytest.param({"secret": "new-secret-1", "graceSeconds": 7 * 86400 + 1}, id="long-grace"),
        pytest.param({"secret": "new-secret-1", "graceSeconds": 60.0}, id="float-grace"),
        pytest.param({"secret": "new-secret-1", "graceSeconds": "60"}, id="string-grace"),
        pytest.param({"secret": "new-secret-1", "graceSeconds": True}, id="bool-grace"),
        pytest.param({"secret": "new-secret-1", "graceSeconds": None}, id="null-grace"),
        pytest.param(["new-secret-1"], id="list"),
        pytest.param(None, id="null"),
    ],
)
async def test_malformed_rotation_is_refused(
    client: httpx.AsyncClient, redis: Redis, body: object
) -> None:
    before = await snapshot(redis)
    response = await rotate(client, body)
    assert response.status_code == 400 and response.json()["responseCode"] == 202, response.text
    assert await snapshot(redis) == before
    assert await is_admin(client, ADMIN_AUTH) == 200


async def test_rotation_body_not_json(client: httpx.AsyncClient, redis: Redis) -> None:
    before = await snapshot(redis)
    response = await client.put(f"/api/secrets/{ADMIN}", content=b"{nope", headers=ADMIN_AUTH)
    assert response.status_code == 400 and response.json()["responseCode"] == 202
    assert await snapshot(redis) == before


async def test_rotated_secret_is_never_shown(client: httpx.AsyncClient) -> None:
    await rotate(client, {"secret": "new-secret-1", "graceSeconds": 60})
    record = await client.get(
        "/api/handles/0.NA/88.100", params={"auth": "true"}, headers=ADMIN_AUTH
    )
    assert record.status_code == 200
    assert "new-secret-1" not in record.text and ADMIN_SECRET not in record.text


# -- Public-key login -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_public_key_login(client: httpx.AsyncClient, algorithm: Algorithm) -> None:
    private = await add_device(client, algorithm)
    asked = await ask_challenge(client)
    nonce = asked["nonce"]
    assert asked["responseCode"] == 1 and asked["expiresIn"] == 60
    assert asked["sign"] == f"idnode-login\n{DEVICE}\n{nonce}"
    assert asked["sign"].encode() == challenge(DEVICE, nonce)

    response = await login(client, DEVICE, nonce, sign(private, challenge(DEVICE, nonce)))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["identity"] == DEVICE and body["expiresIn"] == 900
    token = body["token"]

    # the token is the device's: not the administrator, and no rights until granted
    assert await is_admin(client, bearer(token)) == 403
    denied = await put(client, "88.100/made-by-plc", [URL_VALUE], bearer(token))
    assert denied.status_code == 403 and denied.json()["responseCode"] == 400
    await grant_device(client)
    made = await put(client, "88.100/made-by-plc", [URL_VALUE], bearer(token))
    assert made.status_code == 201, made.text
    assert (await client.get("/api/handles/88.100/made-by-plc")).status_code == 200

    assert (await client.delete("/api/sessions", headers=bearer(token))).status_code == 200
    assert refused(await put(client, "88.100/made-by-plc-2", [URL_VALUE], bearer(token)))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_signature_by_another_key_is_refused(
    client: httpx.AsyncClient, algorithm: Algorithm
) -> None:
    await add_device(client, algorithm)
    other_private, _ = generate(algorithm)
    nonce = (await ask_challenge(client))["nonce"]
    response = await login(client, DEVICE, nonce, sign(other_private, challenge(DEVICE, nonce)))
    assert refused(response)
    assert "signature" in response.json()["message"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_signature_of_another_algorithm_is_refused(
    client: httpx.AsyncClient, algorithm: Algorithm
) -> None:
    await add_device(client, algorithm)
    other = Algorithm.ED25519 if algorithm is Algorithm.SM2 else Algorithm.SM2
    other_private, _ = generate(other)
    nonce = (await ask_challenge(client))["nonce"]
    assert refused(
        await login(client, DEVICE, nonce, sign(other_private, challenge(DEVICE, nonce)))
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_a_signature_is_good_once(client: httpx.AsyncClient, algorithm: Algorithm) -> None:
    private = await add_device(client, algorithm)
    nonce = (await ask_challenge(client))["nonce"]
    signature = sign(private, challenge(DEVICE, nonce))
    assert (await login(client, DEVICE, nonce, signature)).status_code == 201
    replayed = await login(client, DEVICE, nonce, signature)
    assert refused(replayed)
    assert "challenge" in replayed.json()["message"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_a_failed_attempt_uses_up_the_nonce(
    client: httpx.AsyncClient, algorithm: Algorithm
) -> None:
    private = await add_device(client, algorithm)
    nonce = (await ask_challenge(client))["nonce"]
    assert refused(await login(client, DEVICE, nonce, "00" * 64))
    assert refused(await login(client, DEVICE, nonce, sign(private, challenge(DEVICE, nonce))))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_an_expired_nonce_is_refused(
    client: httpx.AsyncClient, redis: Redis, algorithm: Algorithm
) -> None:
    private = await add_device(client, algorithm)
    nonce = (await ask_challenge(client))["nonce"]
    key = f"sess:n:{nonce}"
    assert await redis.get(key) is not None
    assert 0 < await redis.ttl(key) <= 60
    assert await redis.pexpire(key, 1)
    await asyncio.sleep(0.02)
    response = await login(client, DEVICE, nonce, sign(private, challenge(DEVICE, nonce)))
    assert refused(response)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_a_nonce_issued_to_another_identity_is_refused(
    client: httpx.AsyncClient, algorithm: Algorithm
) -> None:
    private = await add_device(client, algorithm)
    await add_device(client, algorithm, "88.100/devices/plc-8")
    nonce = (await ask_challenge(client, "300:88.100/devices/plc-8"))["nonce"]
    response = await login(client, DEVICE, nonce, sign(private, challenge(DEVICE, nonce)))
    assert refused(response)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_a_signature_for_another_nonce_is_refused(
    client: httpx.AsyncClient, algorithm: Algorithm
) -> None:
    private = await add_device(client, algorithm)
    first = (await ask_challenge(client))["nonce"]
    second = (await ask_challenge(client))["nonce"]
    assert first != second
    assert refused(await login(client, DEVICE, second, sign(private, challenge(DEVICE, first))))


async def test_nonce_spelled_differently_is_unknown(client: httpx.AsyncClient) -> None:
    private = await add_device(client, Algorithm.ED25519)
    nonce = (await ask_challenge(client))["nonce"]
    for wrong in (nonce.upper(), nonce + "0", f"{nonce}:x", "*"):
        assert refused(await login(client, DEVICE, wrong, sign(private, challenge(DEVICE, wrong))))
    # none of those used it up
    response = await login(client, DEVICE, nonce, sign(private, challenge(DEVICE, nonce)))
    assert response.status_code == 201


async def test_identity_spelled_in_another_case_logs_in(client: httpx.AsyncClient) -> None:
    """Handles match case-insensitively; the client signs the identity as it sends it."""
    private = await add_device(client, Algorithm.SM2)
    nonce = (await ask_challenge(client))["nonce"]
    shouted = DEVICE.upper()
    response = await login(client, shouted, nonce, sign(private, challenge(shouted, nonce)))
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "identity",
    [
        pytest.param("300:88.100/devices/nobody", id="unknown-handle"),
        pytest.param("301:88.100/devices/plc-7", id="other-index"),
        pytest.param(ADMIN, id="secret-identity"),
        pytest.param("300:88.100/devices/url-only", id="no-pubkey"),
        pytest.param("300:88.100/devices/bad-key", id="malformed-key"),
        pytest.param("300:88.200/devices/plc-7", id="foreign-prefix"),
    ],
)
async def test_challenge_needs_a_public_key(
    client: httpx.AsyncClient, redis: Redis, identity: str
) -> None:
    await add_device(client, Algorithm.SM2)
    await put(client, "88.100/devices/url-only", [{**URL_VALUE, "index": 300}], ADMIN_AUTH)
    await put(
        client,
        "88.100/devices/bad-key",
        [{"index": 300, "type": "HS_PUBKEY", "data": "sm2:abc"}],
        ADMIN_AUTH,
    )
    before = await snapshot(redis)
    response = await client.post("/api/sessions/challenge", json={"identity": identity})
    assert refused(response)
    assert await snapshot(redis) == before  # no nonce issued


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{nope", id="not-json"),
        pytest.param(b"[]", id="list"),
        pytest.param(b"null", id="null"),
        pytest.param(b"{}", id="empty-object"),
        pytest.param(b'{"identity": 300}', id="identity-not-string"),
        pytest.param(b'{"identity": ""}', id="identity-empty"),
        pytest.param(b'{"identity": "no-index-here"}', id="identity-malformed"),
    ],
)
async def test_malformed_challenge_request(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/api/sessions/challenge", content=body)
    assert response.status_code == 400, response.text
    assert response.json()["responseCode"] in (102, 202)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{nope", id="not-json"),
        pytest.param(b"[1, 2]", id="list"),
        pytest.param(b'"text"', id="string"),
        pytest.param(b"{}", id="empty-object"),
        pytest.param(b'{"identity": "%(id)s", "nonce": "%(n)s"}', id="no-signature"),
        pytest.param(b'{"identity": "%(id)s", "signature": "00"}', id="no-nonce"),
        pytest.param(b'{"nonce": "%(n)s", "signature": "00"}', id="no-identity"),
        pytest.param(b'{"identity": "%(id)s", "nonce": "%(n)s", "signature": 7}', id="sig-int"),
        pytest.param(b'{"identity": "%(id)s", "nonce": 1, "signature": "00"}', id="nonce-int"),
        pytest.param(b'{"identity": "%(id)s", "nonce": "%(n)s", "signature": ""}', id="sig-empty"),
        pytest.param(b'{"identity": "junk", "nonce": "%(n)s", "signature": "00"}', id="bad-id"),
    ],
)
async def test_malformed_login_body(client: httpx.AsyncClient, redis: Redis, body: bytes) -> None:
    private = await add_device(client, Algorithm.ED25519)
    nonce = (await ask_challenge(client))["nonce"]
    before = await snapshot(redis)
    filled = body % {b"id": DEVICE.encode(), b"n": nonce.encode()}
    response = await client.post("/api/sessions", content=filled)
    assert response.status_code == 400, response.text
    assert response.json()["responseCode"] in (102, 202)
    assert await snapshot(redis) == before  # no session, and the nonce is still there
    good = await login(client, DEVICE, nonce, sign(private, challenge(DEVICE, nonce)))
    assert good.status_code == 201


async def test_oversized_login_fields_are_refused(client: httpx.AsyncClient) -> None:
    await add_device(client, Algorithm.SM2)
    nonce = (await ask_challenge(client))["nonce"]
    response = await login(client, DEVICE, nonce, "ab" * 600)
    assert response.status_code == 400 and response.json()["responseCode"] == 202


async def test_public_key_session_is_ended_with_the_identity(client: httpx.AsyncClient) -> None:
    private = await add_device(client, Algorithm.SM2)
    tokens = []
    for _ in range(2):
        nonce = (await ask_challenge(client))["nonce"]
        response = await login(client, DEVICE, nonce, sign(private, challenge(DEVICE, nonce)))
        tokens.append(response.json()["token"])
    ended = await client.delete("/api/sessions", params={"identity": DEVICE}, headers=ADMIN_AUTH)
    assert ended.status_code == 200 and ended.json()["revoked"] == 2
    for token in tokens:
        assert await is_admin(client, bearer(token)) == 401


async def test_deleting_an_identity_ends_its_sessions(
    client: httpx.AsyncClient, enterprise: dict[str, str]
) -> None:
    token = await open_session(client, enterprise)
    deleted = await client.delete("/api/handles/0.NA/88.100.1", headers=ADMIN_AUTH)
    assert deleted.status_code == 200, deleted.text
    assert refused(await put(client, "88.100.1/a", [URL_VALUE], enterprise))  # Basic: gone
    assert refused(await put(client, "88.100.1/b", [URL_VALUE], bearer(token)))


# -- Keys sent in a batch ---------------------------------------------------------------


async def batch(
    client: httpx.AsyncClient, items: list[dict[str, Any]], **params: str
) -> dict[str, Any]:
    response = await client.post(
        "/api/batch/handles", json={"handles": items}, params=params, headers=ADMIN_AUTH
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_keys_in_a_batch_are_checked_hashed_and_end_the_sessions_they_replace(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    # Two records of one batch send the same secret: one shared value, hashed for each.
    secret = {"index": 300, "type": "HS_SECKEY", "data": "shared-secret"}
    private, public = generate(Algorithm.ED25519)
    key = {"index": 300, "type": "hs_pubkey", "data": public}
    items = [
        {"handle": "0.NA/88.100.1", "values": [secret]},
        {"handle": "0.NA/88.100.2", "values": [secret]},
        {"handle": DEVICE_HANDLE, "values": [key]},
        {"handle": "88.100/devices/bad", "values": [{**key, "data": "not-a-key"}]},
    ]
    answer = await batch(client, items)
    assert (answer["created"], answer["failed"]) == (3, 1)
    assert answer["results"][3]["responseCode"] == 202
    assert await stored_record(redis, "88.100/devices/bad") is None
    for n in (1, 2):
        stored = await stored_record(redis, f"0.NA/88.100.{n}")  # every value, hashed
        assert stored is not None and b"shared-secret" not in stored
        own = basic(f"300:0.NA/88.100.{n}", "shared-secret")
        assert (await put(client, f"88.100.{n}/a", [URL_VALUE], own)).status_code == 201
    nonce = (await ask_challenge(client))["nonce"]
    signed = sign(private, challenge(DEVICE, nonce))
    assert (await login(client, DEVICE, nonce, signed)).status_code == 201
    # A batch that replaces a secret ends the sessions opened with it.
    first = basic("300:0.NA/88.100.1", "shared-secret")
    token = await open_session(client, first)
    assert (await put(client, "88.100.1/b", [URL_VALUE], bearer(token))).status_code == 201
    replaced = {**secret, "data": "another-secret"}
    answer = await batch(
        client, [{"handle": "0.NA/88.100.1", "values": [replaced]}], overwrite="true"
    )
    assert answer["updated"] == 1
    assert refused(await put(client, "88.100.1/c", [URL_VALUE], bearer(token)))
    assert refused(await put(client, "88.100.1/c", [URL_VALUE], first))
    assert (
        await put(client, "88.100.2/b", [URL_VALUE], basic("300:0.NA/88.100.2", "shared-secret"))
    ).status_code == 201


async def test_a_batch_checks_the_rights_of_every_kind_of_record_it_creates(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    """A registrar may create handles but not prefix records: a batch that creates both
    under one prefix gets one refused, however many of the other it created first."""
    user = "88.100/users/registrar"
    secret = {"index": 300, "type": "HS_SECKEY", "data": "registrar-secret"}
    assert (await put(client, user, [secret], ADMIN_AUTH)).status_code == 201
    await grant_device(client, user)  # the registrar preset, in 0.NA/88.100
    registrar = basic(f"300:{user}", "registrar-secret")
    names = ["88.100.9/a", "0.NA/88.100.9", "88.100.9/b", "0.NA/88.100.9.1", "88.200/c"]
    response = await client.post(
        "/api/batch/handles",
        json={"handles": [{"handle": n, "values": [URL_VALUE]} for n in names]},
        headers=registrar,
    )
    assert response.status_code == 200, response.text
    results = [(r["handle"], r["status"], r["responseCode"]) for r in response.json()["results"]]
    assert results == [
        ("88.100.9/a", 201, 1),
        ("0.NA/88.100.9", 403, 400),
        ("88.100.9/b", 201, 1),
        ("0.NA/88.100.9.1", 403, 400),
        ("88.200/c", 400, 301),
    ]
    assert await stored_record(redis, "0.NA/88.100.9") is None


# -- Handle sessions: POST /api/sessions, PUT/GET/DELETE /api/sessions/this ------------


def handle_header(session_id: str, **fields: str) -> dict[str, str]:
    params = ", ".join(
        f'{name}="{value}"' for name, value in {"sessionId": session_id, **fields}.items()
    )
    return {"Authorization": f"Handle {params}"}


def answer(
    private: str, nonce: str, identity: str = DEVICE, *, der: bool = False
) -> dict[str, str]:
    """The Handle fields answering ``nonce`` with ``private``: a signature over the
    server nonce's bytes followed by the client nonce's."""
    cnonce = secrets.token_bytes(16)
    signature = bytes.fromhex(sign(private, base64.b64decode(nonce) + cnonce))
    algorithm = Algorithm(private.partition(":")[0])
    if der:
        signature = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
    return {
        "version": "0",
        "id": quote(identity, safe=""),
        "type": "HS_PUBKEY",
        "alg": "SM3" if algorithm is Algorithm.SM2 else "Ed25519",
        "cnonce": base64.b64encode(cnonce).decode(),
        "signature": base64.b64encode(signature).decode(),
    }


async def new_handle_session(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/api/sessions")
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/sessions/this"
    body: dict[str, Any] = response.json()
    return body


async def authenticate(
    client: httpx.AsyncClient, session_id: str, fields: dict[str, str]
) -> httpx.Response:
    return await client.put("/api/sessions/this", headers=handle_header(session_id, **fields))


async def session_state(client: httpx.AsyncClient, session_id: str) -> httpx.Response:
    return await client.get("/api/sessions/this", headers=handle_header(session_id))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_handle_session_with_a_public_key(
    client: httpx.AsyncClient, algorithm: Algorithm
) -> None:
    private = await add_device(client, algorithm)
    await grant_device(client)
    opened = await new_handle_session(client)
    assert opened["authenticated"] is False and "id" not in opened
    assert opened["expiresIn"] == 60 and len(base64.b64decode(opened["nonce"])) == 24
    session_id = opened["sessionId"]
    shown = await session_state(client, session_id)
    assert shown.status_code == 200
    assert shown.json()["nonce"] == opened["nonce"] and shown.json()["authenticated"] is False
    # not authenticated yet: it may not write
    assert refused(await put(client, "88.100/h1", [URL_VALUE], handle_header(session_id)))

    done = await authenticate(client, session_id, answer(private, opened["nonce"]))
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["authenticated"] is True and body["id"] == DEVICE
    assert body["sessionId"] == session_id and body["expiresIn"] == 900
    assert body["nonce"] != opened["nonce"]  # the nonce was used up

    made = await put(client, "88.100/h1", [URL_VALUE], handle_header(session_id))
    assert made.status_code == 201, made.text
    assert (await put(client, "88.100/h2", [URL_VALUE], bearer(session_id))).status_code == 201
    assert (await session_state(client, session_id)).json()["id"] == DEVICE

    ended = await client.delete("/api/sessions/this", headers=handle_header(session_id))
    assert ended.status_code == 204 and not ended.content
    assert refused(await put(client, "88.100/h3", [URL_VALUE], handle_header(session_id)))
    assert refused(await session_state(client, session_id))
    assert refused(await client.delete("/api/sessions/this", headers=handle_header(session_id)))


async def test_sm2_signature_in_der_is_accepted(client: httpx.AsyncClient) -> None:
    private = await add_device(client, Algorithm.SM2)
    opened = await new_handle_session(client)
    done = await authenticate(
        client, opened["sessionId"], answer(private, opened["nonce"], der=True)
    )
    assert done.status_code == 200 and done.json()["id"] == DEVICE, done.text


async def test_answer_as_json_members(client: httpx.AsyncClient) -> None:
    private = await add_device(client, Algorithm.ED25519)
    opened = await new_handle_session(client)
    fields = answer(private, opened["nonce"])
    fields["id"] = DEVICE  # members are not percent-encoded
    done = await client.put("/api/sessions/this", json={"sessionId": opened["sessionId"], **fields})
    assert done.status_code == 200 and done.json()["id"] == DEVICE, done.text


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_wrong_signature_is_refused_and_uses_the_nonce(
    client: httpx.AsyncClient, algorithm: Algorithm
) -> None:
    private = await add_device(client, algorithm)
    other, _ = generate(algorithm)
    opened = await new_handle_session(client)
    session_id, nonce = opened["sessionId"], opened["nonce"]
    assert refused(await authenticate(client, session_id, answer(other, nonce)))
    # the right key, but for the nonce the failed attempt used up
    assert refused(await authenticate(client, session_id, answer(private, nonce)))
    fresh = (await session_state(client, session_id)).json()
    assert fresh["authenticated"] is False and fresh["nonce"] != nonce
    done = await authenticate(client, session_id, answer(private, fresh["nonce"]))
    assert done.status_code == 200, done.text


async def test_a_replayed_answer_is_refused(client: httpx.AsyncClient) -> None:
    private = await add_device(client, Algorithm.ED25519)
    opened = await new_handle_session(client)
    fields = answer(private, opened["nonce"])
    assert (await authenticate(client, opened["sessionId"], fields)).status_code == 200
    assert refused(await authenticate(client, opened["sessionId"], fields))
    # and on another session, whose nonce differs
    other = await new_handle_session(client)
    assert refused(await authenticate(client, other["sessionId"], fields))
    assert (await session_state(client, other["sessionId"])).json()["authenticated"] is False


async def test_answer_for_another_identity_key_is_refused(client: httpx.AsyncClient) -> None:
    private = await add_device(client, Algorithm.ED25519)
    opened = await new_handle_session(client)
    # signed by the device's key, but claiming the administrator (who has a secret)
    fields = answer(private, opened["nonce"], identity=ADMIN)
    assert refused(await authenticate(client, opened["sessionId"], fields))


async def test_wrong_alg_is_refused(client: httpx.AsyncClient) -> None:
    private = await add_device(client, Algorithm.SM2)
    opened = await new_handle_session(client)
    fields = {**answer(private, opened["nonce"]), "alg": "SHA256"}
    assert refused(await authenticate(client, opened["sessionId"], fields))


async def test_unknown_and_expired_sessions_are_refused(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    private = await add_device(client, Algorithm.ED25519)
    unknown = secrets.token_urlsafe(32)
    assert refused(await session_state(client, unknown))
    assert refused(await authenticate(client, unknown, answer(private, "AAAA")))
    assert refused(await put(client, "88.100/h1", [URL_VALUE], handle_header(unknown)))
    assert refused(await client.delete("/api/sessions/this", headers=handle_header(unknown)))

    opened = await new_handle_session(client)
    for key in await all_keys(redis, "sess:{sess}:t:*"):
        await redis.pexpire(key, 1)
    await asyncio.sleep(0.05)
    assert refused(
        await authenticate(client, opened["sessionId"], answer(private, opened["nonce"]))
    )
    assert refused(await session_state(client, opened["sessionId"]))


async def test_secret_key_session_with_basic(client: httpx.AsyncClient) -> None:
    opened = await new_handle_session(client)
    session_id = opened["sessionId"]
    done = await client.put(
        "/api/sessions/this", params={"sessionId": session_id}, headers=ADMIN_AUTH
    )
    assert done.status_code == 200 and done.json()["id"] == ADMIN, done.text
    assert await is_admin(client, handle_header(session_id)) == 200
    wrong = await new_handle_session(client)
    refusal = await client.put(
        "/api/sessions/this",
        params={"sessionId": wrong["sessionId"]},
        headers=basic(ADMIN, "wrong-secret"),
    )
    assert refused(refusal)
    assert (await session_state(client, wrong["sessionId"])).json()["authenticated"] is False


async def test_secret_key_digest_is_refused_with_the_reason(client: httpx.AsyncClient) -> None:
    opened = await new_handle_session(client)
    fields = {
        "id": quote(ADMIN, safe=""),
        "type": "HS_SECKEY",
        "alg": "HMAC-SHA256",
        "cnonce": base64.b64encode(b"c" * 16).decode(),
        "signature": base64.b64encode(b"s" * 32).decode(),
    }
    response = await authenticate(client, opened["sessionId"], fields)
    assert refused(response) and "scrypt" in response.json()["message"]


async def test_basic_login_is_a_handle_session_too(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/sessions", headers=ADMIN_AUTH)
    body = response.json()
    assert response.status_code == 201 and response.headers["location"] == "/api/sessions/this"
    assert body["sessionId"] == body["token"] and body["authenticated"] is True
    assert body["id"] == ADMIN == body["identity"] and body["nonce"]
    assert await is_admin(client, handle_header(body["sessionId"])) == 200
    shown = await client.get("/api/sessions/this", headers=bearer(body["token"]))
    assert shown.status_code == 200 and shown.json()["id"] == ADMIN
    # POST naming a session is malformed, as in Handle
    again = await client.post("/api/sessions", headers=handle_header(body["sessionId"]))
    assert again.status_code == 400


async def test_full_header_on_any_request_authenticates_and_may_be_resent(
    client: httpx.AsyncClient,
) -> None:
    private = await add_device(client, Algorithm.ED25519)
    await grant_device(client)
    opened = await new_handle_session(client)
    header = handle_header(opened["sessionId"], **answer(private, opened["nonce"]))
    assert (await put(client, "88.100/h1", [URL_VALUE], header)).status_code == 201
    assert (await put(client, "88.100/h2", [URL_VALUE], header)).status_code == 201
    # an id other than the session's is refused
    other = handle_header(opened["sessionId"], id=quote(ADMIN, safe=""))
    assert refused(await put(client, "88.100/h3", [URL_VALUE], other))


async def test_handle_sessions_end_with_the_identity_and_its_key(
    client: httpx.AsyncClient,
) -> None:
    private = await add_device(client, Algorithm.ED25519)
    ids = []
    for _ in range(2):
        opened = await new_handle_session(client)
        await authenticate(client, opened["sessionId"], answer(private, opened["nonce"]))
        ids.append(opened["sessionId"])
    ended = await client.delete("/api/sessions", params={"identity": DEVICE}, headers=ADMIN_AUTH)
    assert ended.status_code == 200 and ended.json()["revoked"] == 2
    assert refused(await session_state(client, ids[0]))
    # a new key ends the session authenticated with the old one
    opened = await new_handle_session(client)
    await authenticate(client, opened["sessionId"], answer(private, opened["nonce"]))
    _, public = generate(Algorithm.ED25519)
    changed = await put(
        client,
        DEVICE_HANDLE,
        [{"index": 300, "type": "HS_PUBKEY", "data": public}],
        ADMIN_AUTH,
        index="300",
    )
    assert changed.status_code == 200, changed.text
    assert refused(await session_state(client, opened["sessionId"]))


async def test_logout_with_the_handle_header(client: httpx.AsyncClient) -> None:
    token = await open_session(client)
    response = await client.delete("/api/sessions", headers=handle_header(token))
    assert response.status_code == 200 and response.json()["revoked"] == 1
    assert refused(await session_state(client, token))


async def test_anonymous_sessions_are_capped_per_address(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    for _ in range(60):
        assert (await client.post("/api/sessions")).status_code == 201
    over = await client.post("/api/sessions")
    assert over.status_code == 429 and 1 <= int(over.headers["retry-after"]) <= 60
    # each lives a minute only
    ttls = [await redis.ttl(k) for k in await all_keys(redis, "sess:{sess}:t:*")]
    assert len(ttls) == 60 and all(0 < t <= 60 for t in ttls)
    # credentials are not capped
    assert (await client.post("/api/sessions", headers=ADMIN_AUTH)).status_code == 201


@pytest.mark.parametrize(
    "header",
    [
        "Handle",
        "Handle ",
        "Handle sessionId",
        'Handle sessionId="unterminated',
        'Handle sessionId="a" id="b"',
        "Handle sessionId=a,,",
        "Handle =x",
        "Handle sessionId=" + "x" * 5000,
        'Handle sessionId="x", version="1", id="300:88.100/d"',
        'Handle sessionId="\u00e9\u00e9"',
    ],
)
async def test_malformed_handle_headers_are_401(client: httpx.AsyncClient, header: str) -> None:
    headers = {b"Authorization": header.encode("utf-8")}
    for response in (
        await client.put("/api/sessions/this", headers=headers),
        await client.get("/api/sessions/this", headers=headers),
        await client.put("/api/handles/88.100/x", json=[URL_VALUE], headers=headers),
    ):
        assert refused(response), (header, response.status_code, response.text)


# -- Handle's own keys (HS_PUBKEY in format "key"): the same logins -----------------------


@functools.cache
def handle_private(kind: str) -> rsa.RSAPrivateKey | dsa.DSAPrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with handle_dsa():
        return dsa.generate_private_key(key_size=2048)


HANDLE_KEYS = [pytest.param("rsa", id="rsa"), pytest.param("dsa", id="dsa")]


async def add_key_device(
    client: httpx.AsyncClient, kind: str
) -> rsa.RSAPrivateKey | dsa.DSAPrivateKey:
    private = handle_private(kind)
    value = {
        "index": 300,
        "type": "HS_PUBKEY",
        "data": {"format": "key", "value": key_data(private)},
    }
    created = await put(client, DEVICE_HANDLE, [value], ADMIN_AUTH)
    assert created.status_code == 201, created.text
    return private


@pytest.mark.parametrize("kind", HANDLE_KEYS)
async def test_a_key_format_public_key_authenticates_a_handle_session(
    client: httpx.AsyncClient, kind: str
) -> None:
    """As Handle: ``alg="SHA256"``, the signature SHA256withRSA or SHA256withDSA over
    the server nonce's bytes followed by the client nonce's."""
    private = await add_key_device(client, kind)
    await grant_device(client)
    opened = await new_handle_session(client)
    cnonce = secrets.token_bytes(16)
    signed = bytes.fromhex(handle_sign(private, base64.b64decode(opened["nonce"]) + cnonce))
    fields = {
        "id": quote(DEVICE, safe=""),
        "type": "HS_PUBKEY",
        "alg": "SHA256",
        "cnonce": base64.b64encode(cnonce).decode(),
        "signature": base64.b64encode(signed).decode(),
    }
    done = await authenticate(client, opened["sessionId"], fields)
    assert done.status_code == 200, done.text
    assert done.json()["authenticated"] is True and done.json()["id"] == DEVICE
    made = await put(client, "88.100/by-key", [URL_VALUE], handle_header(opened["sessionId"]))
    assert made.status_code == 201, made.text

    again = await new_handle_session(client)  # the Ed25519 alg name is refused for it
    wrong_alg = {**fields, "alg": "Ed25519"}
    assert refused(await authenticate(client, again["sessionId"], wrong_alg))
    other = await new_handle_session(client)  # a signature over another nonce
    assert refused(await authenticate(client, other["sessionId"], fields))


@pytest.mark.parametrize("kind", HANDLE_KEYS)
async def test_a_key_format_public_key_answers_a_login_challenge(
    client: httpx.AsyncClient, kind: str
) -> None:
    private = await add_key_device(client, kind)
    nonce = (await ask_challenge(client))["nonce"]
    response = await login(client, DEVICE, nonce, handle_sign(private, challenge(DEVICE, nonce)))
    assert response.status_code == 201, response.text
    assert response.json()["identity"] == DEVICE
    other = handle_private("dsa" if kind == "rsa" else "rsa")
    nonce = (await ask_challenge(client))["nonce"]
    assert refused(await login(client, DEVICE, nonce, handle_sign(other, challenge(DEVICE, nonce))))


async def test_changed_anonymous_session_limits_take_effect(
    redis: Redis, redis_server: StoreServer
) -> None:
    config = node_config(redis_server.url, anonymous_session_ttl=7, anonymous_sessions_per_minute=3)
    async with served(config) as client:
        opened = [await client.post("/api/sessions") for _ in range(3)]
        assert [o.status_code for o in opened] == [201] * 3
        assert all(o.json()["expiresIn"] == 7 for o in opened)
        ttls = [await redis.ttl(k) for k in await all_keys(redis, "sess:{sess}:t:*")]
        assert len(ttls) == 3 and all(0 < t <= 7 for t in ttls)
        over = await client.post("/api/sessions")
        assert over.status_code == 429 and "3 sessions" in over.json()["message"]
        # the count is per minute, whatever the sessions' life
        assert 7 < int(over.headers["retry-after"]) <= 60


async def test_sessions_of_an_older_store_are_moved_with_their_time_to_live(
    redis: Redis, redis_server: StoreServer
) -> None:
    """Stores written before the ``{sess}`` tag named a session ``sess:t:<hash>`` and an
    identity's sessions ``sess:i:<identity>`` (naming those keys): the upgrade moves them,
    each with the time it had left, and they go on working, ending together as before."""
    identity = Identity.parse(ADMIN)
    token, pending = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    key, pending_key = (
        f"sess:t:{hashlib.sha256(t.encode()).hexdigest()}" for t in (token, pending)
    )
    await redis.set(key, encode(SessionState("bm9uY2U=", identity)), ex=600)
    await redis.sadd(f"sess:i:{identity.key}", key)
    await redis.expire(f"sess:i:{identity.key}", 600)
    await redis.set(pending_key, encode(SessionState("bm9uY2U=", None)), ex=60)
    await redis.set("sess:a:10.0.0.9", 3, ex=60)  # read and written alone: not renamed
    store = SessionStore(redis, ttl=900, challenge_ttl=60, pending_ttl=60, pending_per_minute=60)
    told: list[tuple[str, int]] = []
    assert await store.upgrade(progress=lambda *at: told.append(at)) == 3
    assert told and {step for step, _ in told} == {UPGRADE_STEP}  # /readyz shows it
    assert await all_keys(redis, "sess:[ti]:*") == []
    assert await redis.get("sess:a:10.0.0.9") == b"3"
    tagged = "sess:{sess}:t:" + key.removeprefix("sess:t:")
    assert await redis.smembers(f"sess:{{sess}}:i:{identity.key}") == {tagged.encode()}
    assert 590 < await redis.ttl(tagged) <= 600
    assert 590 < await redis.ttl(f"sess:{{sess}}:i:{identity.key}") <= 600
    assert 50 < await redis.ttl("sess:{sess}:t:" + pending_key.removeprefix("sess:t:")) <= 60
    assert await store.upgrade() == 0  # once per store
    assert await store.state(pending) == SessionState("bm9uY2U=", None)
    async with served(node_config(redis_server.url)) as client:
        assert await is_admin(client, bearer(token)) == 200
        ended = await client.delete("/api/sessions", params={"identity": ADMIN}, headers=ADMIN_AUTH)
        assert ended.json() == {"responseCode": 1, "revoked": 1}
        assert await is_admin(client, bearer(token)) == 401


async def test_an_interrupted_move_of_sessions_is_finished(redis: Redis) -> None:
    """A move stopped after copying an identity's set (another worker's, or one cut
    short): the next one merges the set's members and keeps the longer expiry."""
    identity = Identity.parse(ADMIN)
    await redis.sadd(f"sess:i:{identity.key}", "sess:t:aa", "sess:t:bb")
    await redis.expire(f"sess:i:{identity.key}", 300)
    await redis.sadd(f"sess:{{sess}}:i:{identity.key}", "sess:{sess}:t:aa", "sess:{sess}:t:cc")
    await redis.expire(f"sess:{{sess}}:i:{identity.key}", 900)
    store = SessionStore(redis, ttl=900, challenge_ttl=60, pending_ttl=60, pending_per_minute=60)
    assert await store.upgrade() == 1
    assert await redis.smembers(f"sess:{{sess}}:i:{identity.key}") == {
        b"sess:{sess}:t:aa",
        b"sess:{sess}:t:bb",
        b"sess:{sess}:t:cc",
    }
    assert 890 < await redis.ttl(f"sess:{{sess}}:i:{identity.key}") <= 900
    assert await redis.exists(f"sess:i:{identity.key}") == 0


async def test_an_identity_with_thousands_of_sessions_is_moved_whole(redis: Redis) -> None:
    identity = Identity.parse(DEVICE)
    await redis.sadd(f"sess:i:{identity.key}", *(f"sess:t:{n:064x}" for n in range(2_500)))
    store = SessionStore(redis, ttl=900, challenge_ttl=60, pending_ttl=60, pending_per_minute=60)
    assert await store.upgrade() == 1
    assert await redis.scard(f"sess:{{sess}}:i:{identity.key}") == 2_500
