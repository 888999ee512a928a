"""The registration policy (registry.identifier.registration_problem) at the API: new
lookalike identifiers are refused with 400/102 and the store unchanged, while records
stored before the policy (written here straight into the store, as old data) still
resolve, update and delete."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from redis.asyncio import Redis

from registry.identifier import Handle
from registry.record import HandleRecord
from registry.store import HandleStore
from registry.value import DataFormat, HandleValue, admin_value
from tests.conftest import ADMIN_AUTH, snapshot

NOW = "2025-01-01T00:00:00Z"
URL_VALUE = {"index": 1, "type": "URL", "data": "https://parts.example/1"}
LOOKALIKES = [
    pytest.param("88.100/ABC ", "may not end with whitespace", id="trailing-space"),
    pytest.param("88.100/a/../b", "'..' segment", id="dotdot"),
    pytest.param("88.100/\u212aELVIN", "U+212A (KELVIN SIGN)", id="kelvin-sign"),
    pytest.param("88.100/\uff21BC", "FULLWIDTH LATIN CAPITAL LETTER A", id="fullwidth"),
]


def path(handle: str) -> str:
    """The URL path naming ``handle``, with its dots encoded: a client would otherwise
    remove ``..`` segments before sending, as httpx does."""
    return "/api/handles/" + quote(handle, safe="/").replace(".", "%2E")


async def store_old_record(redis: Redis, text: str) -> None:
    values = (
        HandleValue(1, "URL", DataFormat.STRING, "https://old.example", 86400, NOW),
        admin_value("0.NA/88.100", 300, NOW, 86400),
    )
    assert await HandleStore(redis).commit(None, HandleRecord(Handle.parse(text), values))


@pytest.mark.parametrize(("handle", "said"), LOOKALIKES)
async def test_a_new_lookalike_is_refused(
    client: httpx.AsyncClient, redis: Redis, handle: str, said: str
) -> None:
    before = await snapshot(redis)
    refused = await client.put(path(handle), json=[URL_VALUE], headers=ADMIN_AUTH)
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["responseCode"] == 102 and body["handle"] == handle
    assert f"{handle!r}: a new identifier" in body["message"] and said in body["message"]
    assert await snapshot(redis) == before


@pytest.mark.parametrize(("handle", "said"), LOOKALIKES)
async def test_an_old_lookalike_still_resolves_updates_and_deletes(
    client: httpx.AsyncClient, redis: Redis, handle: str, said: str
) -> None:
    await store_old_record(redis, handle)
    got = await client.get(path(handle))
    assert got.status_code == 200, got.text
    assert got.json()["handle"] == handle

    updated = await client.put(path(handle), json=[URL_VALUE], headers=ADMIN_AUTH)
    assert updated.status_code == 200, updated.text
    values = (await client.get(path(handle))).json()["values"]
    assert values[0]["data"]["value"] == "https://parts.example/1"

    deleted = await client.delete(path(handle), headers=ADMIN_AUTH)
    assert deleted.status_code == 200, deleted.text
    assert (await client.get(path(handle))).status_code == 404


async def test_a_batch_refuses_only_its_lookalikes(client: httpx.AsyncClient, redis: Redis) -> None:
    await store_old_record(redis, "88.100/old ")
    items = [
        {"handle": "88.100/fine", "values": [URL_VALUE]},
        {"handle": "88.100/new ", "values": [URL_VALUE]},
        {"handle": "88.100/old ", "values": [URL_VALUE]},  # exists: an update
    ]
    answer = await client.post(
        "/api/batch/handles?overwrite=true", json={"handles": items}, headers=ADMIN_AUTH
    )
    assert answer.status_code == 200, answer.text
    results = {r["handle"]: r for r in answer.json()["results"]}
    assert results["88.100/fine"]["status"] == 201
    assert results["88.100/old "]["status"] == 200
    refused = results["88.100/new "]
    assert refused["status"] == 400 and refused["responseCode"] == 102
    assert "may not end with whitespace" in refused["message"]
    assert (await client.get(path("88.100/new "))).status_code == 404
