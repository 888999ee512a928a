"""The privilege escalation through keys at other indexes of a prefix record.

Found by trying the permissions guide's own example as an attacker: an enterprise administrator
grants user alice ``write-values`` on ``0.NA/88.100.1``; alice then put a key at index 301
of ``0.NA/88.100.1``, logged in as ``301:0.NA/88.100.1`` and acted as the prefix's
administrator, or replaced the key at index 300 and locked the real one out. The same
worked one level up, on ``0.NA/88.100``.

Now only index 300 of a prefix record is its administrator, and keys are guarded like
HS_ADMIN values. Each test runs on a secondary node for 88.100 on a fresh real Redis,
once in process and once as a real ``idnode serve`` process over loopback HTTP, and
checks that every refusal leaves the store byte for byte as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import (
    ADMIN,
    ADMIN_AUTH,
    ADMIN_SECRET,
    StoreServer,
    basic,
    node_config,
    served,
    snapshot,
)
from tests.server.node_process import NodeProcess

ENTERPRISE = "88.100.1"
ENT_ADMIN = f"300:0.NA/{ENTERPRISE}"
ENT_AUTH = basic(ENT_ADMIN, "enterprise-secret")
ALICE = f"300:{ENTERPRISE}/users/alice"
ALICE_AUTH = basic(ALICE, "alice-secret-1")
PLANTED = [{"index": 1, "type": "URL", "data": "https://evil.example"}]


def _key(index: int, secret: str) -> list[dict[str, object]]:
    return [{"index": index, "type": "HS_SECKEY", "data": secret}]


def _grant(index: int, handle: str, permissions: str) -> list[dict[str, object]]:
    admin = {"handle": handle, "index": 300, "permissions": permissions}
    return [{"index": index, "type": "HS_ADMIN", "data": {"format": "admin", "value": admin}}]


async def _ok(response: httpx.Response) -> None:
    assert response.status_code in (200, 201), response.text


@asynccontextmanager
async def _running(
    kind: str, redis_server: StoreServer, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """Node 88.100 on the session's Redis: in process, or as a real ``idnode serve``
    process reached over loopback HTTP."""
    if kind == "in-process":
        async with served(node_config(redis_server.url, secret_hash_cost=4)) as http:
            yield http
        return
    process = NodeProcess(
        tmp_path / "node",
        *("--redis-url", redis_server.url, "--secret-hash-cost", "4"),
        secret=ADMIN_SECRET,
    )
    await asyncio.to_thread(process.start)
    try:
        async with httpx.AsyncClient(base_url=process.url, timeout=10) as http:
            yield http
    finally:
        await asyncio.to_thread(process.stop)


@pytest.fixture(params=["in-process", "process"])
async def node(
    request: pytest.FixtureRequest, redis: Redis, redis_server: StoreServer, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """Node 88.100 with enterprise 88.100.1 and its user alice, granted ``write-values``
    on ``0.NA/88.100.1`` exactly as docs/guides/permissions.md shows."""
    async with _running(request.param, redis_server, tmp_path) as http:
        await _ok(
            await http.put(
                f"/api/handles/0.NA/{ENTERPRISE}",
                json=_key(300, "enterprise-secret"),
                headers=ADMIN_AUTH,
            )
        )
        await _ok(
            await http.put(
                f"/api/handles/{ENTERPRISE}/users/alice",
                json=_key(300, "alice-secret-1"),
                headers=ENT_AUTH,
            )
        )
        await _ok(
            await http.put(
                f"/api/handles/0.NA/{ENTERPRISE}?index=101",
                json=_grant(101, f"{ENTERPRISE}/users/alice", "write-values"),
                headers=ENT_AUTH,
            )
        )
        yield http


async def _refused(
    http: httpx.AsyncClient, redis: Redis, method: str, url: str, auth: dict[str, str], **kw: object
) -> dict[str, object]:
    before = await snapshot(redis)
    response = await http.request(method, url, headers=auth, **kw)  # type: ignore[arg-type]
    assert response.status_code == 403, response.text
    body: dict[str, object] = response.json()
    assert body["responseCode"] == 400
    assert await snapshot(redis) == before
    return body


async def test_alice_still_writes_the_values_she_was_granted(
    node: httpx.AsyncClient,
) -> None:
    """The grant itself works: what is refused below is refused for being a key."""
    response = await node.put(
        f"/api/handles/0.NA/{ENTERPRISE}?index=5",
        json=[{"index": 5, "type": "DESC", "data": "Jianghan Motor Works"}],
        headers=ALICE_AUTH,
    )
    await _ok(response)


@pytest.mark.parametrize("index", [301, 305])
async def test_a_value_writer_cannot_add_a_key_to_the_prefix_record(
    node: httpx.AsyncClient, redis: Redis, index: int
) -> None:
    body = await _refused(
        node,
        redis,
        "PUT",
        f"/api/handles/0.NA/{ENTERPRISE}?index={index}",
        ALICE_AUTH,
        json=_key(index, "alice-takes-over"),
    )
    assert "ADD_ADMIN" in str(body["message"])


async def test_a_value_writer_cannot_replace_the_administrators_key(
    node: httpx.AsyncClient, redis: Redis
) -> None:
    await _refused(
        node,
        redis,
        "PUT",
        f"/api/handles/0.NA/{ENTERPRISE}?index=300&overwrite=true",
        ALICE_AUTH,
        json=_key(300, "alice-locks-out"),
    )
    await _refused(
        node,
        redis,
        "PUT",
        f"/api/secrets/{ENT_ADMIN}",
        ALICE_AUTH,
        json={"secret": "alice-locks-out", "graceSeconds": 0},
    )
    await _refused(node, redis, "DELETE", f"/api/handles/0.NA/{ENTERPRISE}?index=300", ALICE_AUTH)
    # The administrator still logs in with its own secret.
    assert (await node.post("/api/sessions", headers=ENT_AUTH)).status_code == 201


async def test_a_key_at_another_index_gives_no_administrator_rights(
    node: httpx.AsyncClient, redis: Redis
) -> None:
    """Even a key put at index 301 by the administrator itself is only an identity: its
    rights are what HS_ADMIN values grant it, here none."""
    url = f"/api/handles/0.NA/{ENTERPRISE}?index=301"
    await _ok(await node.put(url, json=_key(301, "second-secret"), headers=ENT_AUTH))
    other = basic(f"301:0.NA/{ENTERPRISE}", "second-secret")
    assert (await node.post("/api/sessions", headers=other)).status_code == 201  # it logs in
    await _refused(node, redis, "PUT", f"/api/handles/{ENTERPRISE}/new", other, json=PLANTED)
    await _refused(node, redis, "DELETE", f"/api/handles/{ENTERPRISE}/users/alice", other)
    await _refused(node, redis, "DELETE", f"/api/sessions?identity={ENT_ADMIN}", other)
    await _refused(node, redis, "GET", f"/api/handles?prefix={ENTERPRISE}", other)


async def test_the_same_holds_one_level_up(node: httpx.AsyncClient, redis: Redis) -> None:
    """A user granted write-values on 0.NA/88.100 cannot put a key at 302, and a key
    there (put by the node administrator) does not decide applications, read the audit
    log or write under another enterprise."""
    await _ok(
        await node.put(
            "/api/handles/88.100/users/bob", json=_key(300, "bob-secret"), headers=ADMIN_AUTH
        )
    )
    await _ok(
        await node.put(
            "/api/handles/0.NA/88.100?index=102",
            json=_grant(102, "88.100/users/bob", "write-values"),
            headers=ADMIN_AUTH,
        )
    )
    bob = basic("300:88.100/users/bob", "bob-secret")
    await _refused(
        node,
        redis,
        "PUT",
        "/api/handles/0.NA/88.100?index=302",
        bob,
        json=_key(302, "bob-takes-over"),
    )
    await _ok(
        await node.put(
            "/api/handles/0.NA/88.100?index=302", json=_key(302, "third-secret"), headers=ADMIN_AUTH
        )
    )
    third = basic("302:0.NA/88.100", "third-secret")
    application = {
        "name": "Wuhan Auto Parts",
        "creditCode": "91420100MA4K2B7C1Y",
        "industry": "automotive",
        "contact": "ops@example.com",
    }
    applied = await node.post("/api/enterprises", json=application)
    assert applied.status_code == 201, applied.text
    app_id = applied.json()["id"]
    await _refused(node, redis, "POST", f"/api/enterprises/{app_id}/approve", third)
    await _refused(node, redis, "GET", "/api/audit?count=5", third)
    await _refused(node, redis, "PUT", f"/api/handles/{ENTERPRISE}/new", third, json=PLANTED)
    await _refused(node, redis, "DELETE", f"/api/sessions?identity={ADMIN}", third)
