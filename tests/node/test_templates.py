"""Metadata templates over HTTP, in process, on the session's real Redis: drafts,
publishing, versions, permissions, and identifiers checked against them on write."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import ADMIN_AUTH, SHARDED, basic, snapshot


@pytest.fixture(params=SHARDED)
def prefix_shards(request: pytest.FixtureRequest) -> int:
    return int(request.param)  # each test on a store of one shard and of several


BASE = "/api/templates/88.100/battery-pack"
ITEMS: list[dict[str, Any]] = [
    {"name": "model", "index": 2000, "type": "string", "required": True},
    {
        "name": "capacity_kwh",
        "index": 2001,
        "type": "number",
        "required": True,
        "minimum": 10,
        "maximum": 150,
    },
    {"name": "made_on", "index": 2002, "type": "date"},
    {"name": "datasheet", "index": 2003, "type": "url"},
]


async def published(
    client: httpx.AsyncClient, items: list[dict[str, Any]] = ITEMS
) -> dict[str, Any]:
    draft = await client.put(BASE, json={"items": items}, headers=ADMIN_AUTH)
    assert draft.status_code in (200, 201), draft.text
    done = await client.post(f"{BASE}/publish", headers=ADMIN_AUTH)
    assert done.status_code == 200, done.text
    body: dict[str, Any] = done.json()
    return body


def pack(template: str = "88.100/battery-pack", **fields: str) -> dict[str, Any]:
    values: dict[str, str] = {
        "model": "HB-75",
        "capacity_kwh": "75",
        "made_on": "2026-01-05",
        "datasheet": "https://id.hanyang-battery.example.cn/hb75.pdf",
    }
    values.update(fields)
    indexes = {"model": 2000, "capacity_kwh": 2001, "made_on": 2002, "datasheet": 2003}
    out = [{"index": 1, "type": "TEMPLATE", "data": template}]
    for name, data in values.items():
        out.append({"index": indexes.get(name, 2099), "type": name, "data": data})
    return {"values": [v for v in out if v["data"] != ""]}


async def test_draft_publish_and_read(client: httpx.AsyncClient) -> None:
    created = await client.put(
        BASE, json={"description": "HB battery packs", "items": ITEMS}, headers=ADMIN_AUTH
    )
    assert created.status_code == 201
    assert created.json()["state"] == "draft" and created.json()["version"] == 1
    replaced = await client.put(BASE, json={"items": ITEMS}, headers=ADMIN_AUTH)
    assert replaced.status_code == 200

    nothing_yet = await client.get(BASE)
    assert nothing_yet.status_code == 404 and nothing_yet.json()["responseCode"] == 100
    draft = await client.get(BASE, params={"draft": "true"}, headers=ADMIN_AUTH)
    assert draft.status_code == 200 and draft.json()["state"] == "draft"
    anonymous_draft = await client.get(BASE, params={"draft": "true"})
    assert anonymous_draft.status_code == 401

    done = await client.post(f"{BASE}/publish", headers=ADMIN_AUTH)
    assert done.status_code == 200
    assert (done.json()["version"], done.json()["state"]) == (1, "published")
    latest = (await client.get(BASE)).json()
    assert latest["template"] == "88.100/battery-pack" and latest["version"] == 1
    assert [i["name"] for i in latest["items"]] == ["model", "capacity_kwh", "made_on", "datasheet"]
    assert (await client.post(f"{BASE}/publish", headers=ADMIN_AUTH)).status_code == 404

    listing = (await client.get("/api/templates", params={"prefix": "88.100"})).json()
    assert listing["templates"] == [
        {
            "template": "88.100/battery-pack",
            "latest": 1,
            "draft": False,
            "description": "",
            "items": 4,
        }
    ]


async def test_template_writes_need_the_prefixs_administrator(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    user = await client.put(
        "/api/handles/88.100/users/bob",
        json=[{"index": 300, "type": "HS_SECKEY", "data": "bob-secret"}],
        headers=ADMIN_AUTH,
    )
    assert user.status_code == 201
    before = await snapshot(redis)
    nobody = await client.put(BASE, json={"items": ITEMS})
    assert nobody.status_code == 401 and nobody.json()["responseCode"] == 402
    bob = basic("300:88.100/users/bob", "bob-secret")
    refused = await client.put(BASE, json={"items": ITEMS}, headers=bob)
    assert refused.status_code == 403 and refused.json()["responseCode"] == 400
    assert "300:88.100/users/bob" in refused.json()["message"]
    wrong = await client.put(BASE, json={"items": ITEMS}, headers=basic("300:0.NA/88.100", "x"))
    assert wrong.status_code == 401
    assert await snapshot(redis) == before


async def test_templates_of_prefixes_held_elsewhere_are_referred(
    client: httpx.AsyncClient,
) -> None:
    away = await client.get("/api/templates/88.101/cell")
    assert away.status_code == 400 and away.json()["responseCode"] == 301
    bad = await client.put("/api/templates/88.100/bad name", json={}, headers=ADMIN_AUTH)
    assert bad.status_code == 400 and bad.json()["responseCode"] == 202


async def test_an_identifier_is_checked_against_its_template(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    await published(client)
    ok = await client.put("/api/handles/88.100/HB75-0001", json=pack(), headers=ADMIN_AUTH)
    assert ok.status_code == 201, ok.text

    before = await snapshot(redis)
    bad = await client.put(
        "/api/handles/88.100/HB75-0002",
        json=pack(capacity_kwh="700", datasheet="not a url", model=""),
        headers=ADMIN_AUTH,
    )
    assert bad.status_code == 400
    body = bad.json()
    assert body["responseCode"] == 202 and body["handle"] == "88.100/HB75-0002"
    assert {e["field"]: e["index"] for e in body["errors"]} == {
        "model": 2000,
        "capacity_kwh": 2001,
        "datasheet": 2003,
    }
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert "at most 150" in messages["capacity_kwh"] and "required" in messages["model"]
    assert await snapshot(redis) == before
    assert (await client.get("/api/handles/88.100/HB75-0002")).status_code == 404

    # An update that breaks the template is refused as well.
    update = await client.put(
        "/api/handles/88.100/HB75-0001",
        json=[{"index": 2001, "type": "capacity_kwh", "data": "many"}],
        params={"index": "2001"},
        headers=ADMIN_AUTH,
    )
    assert update.status_code == 400 and update.json()["errors"][0]["field"] == "capacity_kwh"


async def test_batches_report_template_violations_per_item(client: httpx.AsyncClient) -> None:
    await published(client)
    items = [
        {"handle": "88.100/b-1", **pack()},
        {"handle": "88.100/b-2", **pack(made_on="yesterday")},
    ]
    answer = await client.post("/api/batch/handles", json={"handles": items}, headers=ADMIN_AUTH)
    assert answer.status_code == 200
    first, second = answer.json()["results"]
    assert first["status"] == 201
    assert second["status"] == 400 and second["responseCode"] == 202
    assert "made_on" in second["message"] and "YYYY-MM-DD" in second["message"]


async def test_an_unknown_template_or_version_is_refused(client: httpx.AsyncClient) -> None:
    unknown = await client.put(
        "/api/handles/88.100/x", json=pack("88.100/nothing"), headers=ADMIN_AUTH
    )
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["field"] == "TEMPLATE"
    assert "88.100/nothing has no published" in unknown.json()["message"]
    await published(client)
    future = await client.put(
        "/api/handles/88.100/x", json=pack("88.100/battery-pack@9"), headers=ADMIN_AUTH
    )
    assert future.status_code == 400 and "version 9" in future.json()["message"]
    malformed = await client.put("/api/handles/88.100/x", json=pack("nothing"), headers=ADMIN_AUTH)
    assert malformed.status_code == 400 and "index 1" in malformed.json()["message"]


async def test_a_published_item_cannot_be_deleted(client: httpx.AsyncClient, redis: Redis) -> None:
    await published(client)
    before = await snapshot(redis)
    dropped = await client.put(BASE, json={"items": ITEMS[:3]}, headers=ADMIN_AUTH)
    assert dropped.status_code == 409
    assert "datasheet" in dropped.json()["message"]
    assert "cannot be deleted" in dropped.json()["message"]
    assert await snapshot(redis) == before


async def test_identifiers_stay_readable_across_versions(client: httpx.AsyncClient) -> None:
    await published(client)
    old = await client.put("/api/handles/88.100/old", json=pack(), headers=ADMIN_AUTH)
    pinned = await client.put(
        "/api/handles/88.100/pinned", json=pack("88.100/battery-pack@1"), headers=ADMIN_AUTH
    )
    assert old.status_code == pinned.status_code == 201

    # Version 2: made_on no longer used (disabled), a new required item.
    items = [dict(i) for i in ITEMS]
    items[2]["enabled"] = False
    items.append({"name": "chemistry", "index": 2004, "type": "string", "required": True})
    v2 = await published(client, items)
    assert v2["version"] == 2
    versions = (await client.get(f"{BASE}/versions")).json()["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert (await client.get(BASE, params={"version": "1"})).json()["items"] == ITEMS_JSON

    for handle in ("old", "pinned"):
        read = await client.get(f"/api/handles/88.100/{handle}")
        assert read.status_code == 200
        assert {v["type"] for v in read.json()["values"]} >= {"model", "made_on"}

    # Unpinned writes now follow version 2; pinned ones still follow version 1.
    missing = await client.put("/api/handles/88.100/new", json=pack(), headers=ADMIN_AUTH)
    assert missing.status_code == 400
    assert [e["field"] for e in missing.json()["errors"]] == ["chemistry"]
    ok = await client.put(
        "/api/handles/88.100/new",
        json={"values": [*pack()["values"], {"index": 2004, "type": "chemistry", "data": "LFP"}]},
        headers=ADMIN_AUTH,
    )
    assert ok.status_code == 201
    again = await client.put(
        "/api/handles/88.100/pinned2", json=pack("88.100/battery-pack@1"), headers=ADMIN_AUTH
    )
    assert again.status_code == 201


ITEMS_JSON = [
    {"name": "model", "index": 2000, "type": "string", "required": True, "enabled": True},
    {
        "name": "capacity_kwh",
        "index": 2001,
        "type": "number",
        "required": True,
        "enabled": True,
        "minimum": 10,
        "maximum": 150,
    },
    {"name": "made_on", "index": 2002, "type": "date", "required": False, "enabled": True},
    {"name": "datasheet", "index": 2003, "type": "url", "required": False, "enabled": True},
]


async def test_a_draft_can_be_discarded(client: httpx.AsyncClient) -> None:
    await published(client)
    await client.put(BASE, json={"items": ITEMS}, headers=ADMIN_AUTH)
    gone = await client.delete(f"{BASE}/draft", headers=ADMIN_AUTH)
    assert gone.status_code == 200
    assert (await client.delete(f"{BASE}/draft", headers=ADMIN_AUTH)).status_code == 404
    assert (await client.get(BASE)).json()["version"] == 1
