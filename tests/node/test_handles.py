"""The Handle REST API in process, on the session's real Redis."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from registry.identifier import Handle
from registry.paged_index import directory_key, page_key
from registry.record_keys import DEFAULT_BUCKETS, shard_of, value_index_key
from registry.stored_form import public_json
from tests.conftest import (
    ADMIN_AUTH,
    SHARDED,
    StoreServer,
    basic,
    index_members,
    node_config,
    record_place,
    served,
    shard_key,
    snapshot,
    stored_record,
)


@pytest.fixture(params=SHARDED)
def prefix_shards(request: pytest.FixtureRequest) -> int:
    return int(request.param)  # each test on a store of one shard and of several


URL_VALUE = {
    "index": 1,
    "type": "URL",
    "data": {"format": "string", "value": "https://a.example/1"},
}


async def put(client: httpx.AsyncClient, handle: str, values: object, **params: str):
    return await client.put(
        f"/api/handles/{handle}", json=values, params=params, headers=ADMIN_AUTH
    )


async def test_create_then_resolve(client: httpx.AsyncClient) -> None:
    created = await put(client, "88.100/ABC123", {"values": [URL_VALUE]})
    assert created.status_code == 201
    assert created.json() == {"responseCode": 1, "handle": "88.100/ABC123"}

    got = await client.get("/api/handles/88.100/ABC123")
    assert got.status_code == 200
    body = got.json()
    assert body["responseCode"] == 1 and body["handle"] == "88.100/ABC123"
    url, admin = body["values"]
    assert url["data"] == {"format": "string", "value": "https://a.example/1"}
    assert url["ttl"] == 86400 and url["timestamp"].endswith("Z")
    assert admin["type"] == "HS_ADMIN" and admin["index"] == 100
    assert admin["data"]["value"]["handle"] == "0.NA/88.100"


async def test_put_again_updates_with_200(client: httpx.AsyncClient) -> None:
    await put(client, "88.100/a", [URL_VALUE])
    again = await put(client, "88.100/a", [{"index": 2, "type": "EMAIL", "data": "x@y"}])
    assert again.status_code == 200
    values = (await client.get("/api/handles/88.100/a")).json()["values"]
    assert [v["type"] for v in values] == ["EMAIL", "HS_ADMIN"]


async def test_overwrite_false_refuses_existing(client: httpx.AsyncClient, redis: Redis) -> None:
    await put(client, "88.100/a", [URL_VALUE])
    before = await snapshot(redis)
    refused = await put(client, "88.100/a", [URL_VALUE], overwrite="false")
    assert refused.status_code == 409
    assert refused.json()["responseCode"] == 101 and refused.json()["handle"] == "88.100/a"
    assert await snapshot(redis) == before


async def test_index_update_keeps_other_values(client: httpx.AsyncClient) -> None:
    await put(client, "88.100/a", [URL_VALUE, {"index": 2, "type": "EMAIL", "data": "x@y"}])
    changed = await client.put(
        "/api/handles/88.100/a?index=2&index=3",
        json={
            "values": [
                {"index": 2, "type": "EMAIL", "data": "new@y"},
                {"index": 3, "type": "BATCH", "data": "B7"},
            ]
        },
        headers=ADMIN_AUTH,
    )
    assert changed.status_code == 200
    values = {
        v["index"]: v["data"]["value"]
        for v in (await client.get("/api/handles/88.100/a")).json()["values"]
    }
    assert values[1] == "https://a.example/1" and values[2] == "new@y" and values[3] == "B7"


async def test_index_add_without_overwrite_refuses_taken_index(client: httpx.AsyncClient) -> None:
    await put(client, "88.100/a", [URL_VALUE])
    refused = await client.put(
        "/api/handles/88.100/a?index=1&overwrite=false", json=[URL_VALUE], headers=ADMIN_AUTH
    )
    assert refused.status_code == 409 and refused.json()["responseCode"] == 201


async def test_bare_string_data_and_string_index(client: httpx.AsyncClient) -> None:
    response = await put(client, "88.100/s", [{"index": "5", "type": "NOTE", "data": "plain"}])
    assert response.status_code == 201
    value = (await client.get("/api/handles/88.100/s?index=5")).json()["values"][0]
    assert value == {**value, "index": 5, "data": {"format": "string", "value": "plain"}}


async def test_filters(client: httpx.AsyncClient) -> None:
    await put(client, "88.100/f", [URL_VALUE, {"index": 2, "type": "EMAIL", "data": "x@y"}])
    by_type = (await client.get("/api/handles/88.100/f", params={"type": "email"})).json()
    assert [v["index"] for v in by_type["values"]] == [2]
    by_index = (await client.get("/api/handles/88.100/f?index=1&index=100")).json()
    assert [v["index"] for v in by_index["values"]] == [1, 100]
    none = await client.get("/api/handles/88.100/f?type=NOPE")
    assert none.status_code == 200 and none.json()["responseCode"] == 200


async def test_case_insensitive_match_preserves_case(client: httpx.AsyncClient) -> None:
    await put(client, "88.100/MixedCase", [URL_VALUE])
    got = await client.get("/api/handles/88.100/mixedcase")
    assert got.status_code == 200
    assert got.json()["handle"] == "88.100/mixedcase"  # echoes the spelling asked for
    refused = await put(client, "88.100/MIXEDCASE", [URL_VALUE], overwrite="false")
    assert refused.status_code == 409  # cannot be created separately
    listing = (
        await client.get("/api/handles", params={"prefix": "88.100"}, headers=ADMIN_AUTH)
    ).json()
    assert "88.100/MixedCase" in listing["handles"]  # the original spelling is kept


async def test_not_found_and_invalid(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/handles/88.100/nope")
    assert missing.status_code == 404
    assert missing.json()["responseCode"] == 100 and missing.json()["handle"] == "88.100/nope"
    invalid = await client.get("/api/handles/88..x/abc")  # 88.x is a Handle prefix: 301
    assert invalid.status_code == 400 and invalid.json()["responseCode"] == 102
    assert "88..x" in invalid.json()["message"]


async def test_foreign_prefix_is_referred(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/handles/88.200/x")
    assert response.status_code == 400 and response.json()["responseCode"] == 301


async def test_mint_new_suffix(client: httpx.AsyncClient) -> None:
    minted = await client.put(
        "/api/handles/88.100/?mintNewSuffix=true", json=[URL_VALUE], headers=ADMIN_AUTH
    )
    assert minted.status_code == 201
    name = minted.json()["handle"]
    assert name.startswith("88.100/") and len(name) == len("88.100/") + 36
    assert (await client.get(f"/api/handles/{name}")).status_code == 200


async def test_delete_values_then_handle(client: httpx.AsyncClient) -> None:
    await put(client, "88.100/d", [URL_VALUE, {"index": 2, "type": "EMAIL", "data": "x@y"}])
    gone = await client.delete("/api/handles/88.100/d?index=2", headers=ADMIN_AUTH)
    assert gone.status_code == 200 and gone.json()["responseCode"] == 1
    types = [v["type"] for v in (await client.get("/api/handles/88.100/d")).json()["values"]]
    assert types == ["URL", "HS_ADMIN"]
    nothing = await client.delete("/api/handles/88.100/d?index=42", headers=ADMIN_AUTH)
    assert nothing.status_code == 400 and nothing.json()["responseCode"] == 200
    whole = await client.delete("/api/handles/88.100/d", headers=ADMIN_AUTH)
    assert whole.status_code == 200
    assert (await client.get("/api/handles/88.100/d")).status_code == 404
    again = await client.delete("/api/handles/88.100/d", headers=ADMIN_AUTH)
    assert again.status_code == 404 and again.json()["responseCode"] == 100


async def test_listing_pages(client: httpx.AsyncClient, prefix_shards: int) -> None:
    for i in range(25):
        await put(client, f"88.100/item{i:02d}", [URL_VALUE])
    await put(client, "88.100.1/other", [URL_VALUE])
    pages = [
        (
            await client.get(
                f"/api/handles?prefix=88.100&page={page}&pageSize=10", headers=ADMIN_AUTH
            )
        ).json()
        for page in range(3)
    ]
    # Byte order; with several shards, by shard first (registry.store.list_handles).
    names = [f"88.100/item{i:02d}" for i in range(25)]
    ordered = sorted(names, key=lambda h: (shard_of(h, DEFAULT_BUCKETS, prefix_shards), h))
    assert [p["totalCount"] for p in pages] == [25] * 3
    assert [len(p["handles"]) for p in pages] == [10, 10, 5]
    assert [h for p in pages for h in p["handles"]] == ordered
    if prefix_shards == 1:
        assert pages[0]["handles"][0] == "88.100/item00"
    sub = (await client.get("/api/handles?prefix=88.100.1", headers=ADMIN_AUTH)).json()
    assert sub["handles"] == ["88.100.1/other"]


async def test_reverse_lookup(redis: Redis, redis_server: StoreServer) -> None:
    # CHECKSUM is searched: this node indexes it (the default indexes URL alone).
    async with served(node_config(redis_server.url, indexed_types="URL,CHECKSUM")) as client:
        await _reverse_lookup(client)


async def test_urls_carrying_the_serial_are_found_written_either_way(
    client: httpx.AsyncClient, redis: Redis, prefix_shards: int
) -> None:
    """A URL ending with its handle's suffix is indexed without the suffix twice; one
    indexed whole (as before) is found, queried and removed all the same."""
    for serial in ("SN-001", "sn-002", "Sn-003"):
        url = f"https://factory.example/p/{serial}"
        await put(client, f"88.100/{serial}", [{"index": 1, "type": "URL", "data": url}])
    key = value_index_key("88.100", "url")
    stored = sorted(await index_members(redis, key))
    assert stored == [
        b"https://factory.example/p/sn-001\x00\x02\x06",
        b"https://factory.example/p/sn-002\x00\x01\x06",
        b"https://factory.example/p/sn-003\x00Sn-003",
    ]
    # A member written whole by an older node: found, queried, and gone with its record.
    older = await client.put(
        "/api/handles/88.100/sn-004",
        json=[{"index": 1, "type": "URL", "data": "https://factory.example/p/sn-004"}],
        headers=ADMIN_AUTH,
    )
    assert older.status_code == 201
    shard = shard_key(key, "88.100/sn-004", prefix_shards)  # the shard holding sn-004's
    assert await redis.zcard(directory_key(shard)) == 1  # one page: its bound is ""
    await redis.eval(
        "redis.call('ZREM', KEYS[1], ARGV[1]) redis.call('ZADD', KEYS[1], 0, ARGV[2])",
        1,
        page_key(shard, ""),
        b"https://factory.example/p/sn-004\x00\x01\x06",
        b"https://factory.example/p/sn-004\x00sn-004",
    )
    assert b"https://factory.example/p/sn-004\x00sn-004" in await index_members(redis, key)

    async def search(query: str) -> list[str]:
        response = await client.get(f"/hrls/handles?{query}")
        assert response.status_code == 200, response.text
        return sorted(response.json())

    everyone = ["88.100/SN-001", "88.100/Sn-003", "88.100/sn-002", "88.100/sn-004"]
    assert await search("URL=https://factory.example/p/*") == everyone
    assert await search("URL=https://factory.example/p/SN-001") == ["88.100/SN-001"]
    assert await search("URL=https://factory.example/p/sn-004") == ["88.100/sn-004"]
    for serial in ("sn-004", "SN-001"):  # a structured query probes either form
        queried = await client.get(
            "/api/query",
            params={"prefix": "88.100", "URL": f"https://factory.example/p/{serial}"},
        )
        assert queried.status_code == 200, queried.text
        assert queried.json()["handles"] == [f"88.100/{serial}"]
    for serial in ("SN-001", "sn-004"):
        deleted = await client.delete(f"/api/handles/88.100/{serial}", headers=ADMIN_AUTH)
        assert deleted.status_code == 200
    assert await search("URL=https://factory.example/p/*") == ["88.100/Sn-003", "88.100/sn-002"]
    assert len(await index_members(redis, key)) == 2


async def test_reverse_lookup_on_an_unindexed_type_is_refused(client: httpx.AsyncClient) -> None:
    await put(client, "88.100/r1", [{"index": 2, "type": "CHECKSUM", "data": "abc"}])
    answer = await client.get("/hrls/handles", params={"CHECKSUM": "abc"})
    body = answer.json()
    assert (answer.status_code, body["responseCode"]) == (400, 202)
    assert "CHECKSUM is not indexed" in body["message"]
    assert "IDNODE_INDEXED_TYPES" in body["message"]


async def _reverse_lookup(client: httpx.AsyncClient) -> None:
    await put(
        client,
        "88.100/r1",
        [
            {"index": 1, "type": "URL", "data": "https://Factory.example/p/1"},
            {"index": 2, "type": "CHECKSUM", "data": "abc"},
        ],
    )
    await put(
        client,
        "88.100/r2",
        [
            {"index": 1, "type": "URL", "data": "https://factory.example/p/2"},
            {"index": 2, "type": "CHECKSUM", "data": "def"},
        ],
    )
    await put(
        client, "88.100.7/r3", [{"index": 1, "type": "URL", "data": "https://other.example/p/3"}]
    )

    async def search(query: str) -> list[str]:
        response = await client.get(f"/hrls/handles?{query}")
        assert response.status_code == 200, response.text
        result: list[str] = response.json()
        return result

    assert await search("URL=https://factory.example/p/1") == ["88.100/r1"]
    assert sorted(await search("URL=https://factory.example/*")) == ["88.100/r1", "88.100/r2"]
    assert sorted(await search("URL=*example/p/*")) == ["88.100.7/r3", "88.100/r1", "88.100/r2"]
    assert await search("URL=*factory*&CHECKSUM=def") == ["88.100/r2"]
    assert await search("URL=*&prefix=88.100.7") == ["88.100.7/r3"]
    assert await search("URL=nothing") == []
    await client.delete("/api/handles/88.100/r1", headers=ADMIN_AUTH)
    assert await search("URL=https://factory.example/*") == ["88.100/r2"]
    assert (await client.get("/hrls/handles")).status_code == 400


async def test_hidden_secret_creates_identity(client: httpx.AsyncClient) -> None:
    """HS_SECKEY values make identities; they are stored hashed and never shown."""
    created = await put(
        client,
        "0.NA/88.100.1",
        [{"index": 300, "type": "HS_SECKEY", "data": "ent-secret"}],
    )
    assert created.status_code == 201
    record = (await client.get("/api/handles/0.NA/88.100.1")).text
    assert "ent-secret" not in record and "HS_SECKEY" not in record
    enterprise = basic("300:0.NA/88.100.1", "ent-secret")
    own = await client.put("/api/handles/88.100.1/x", json=[URL_VALUE], headers=enterprise)
    assert own.status_code == 201
    foreign = await client.put("/api/handles/88.100.2/x", json=[URL_VALUE], headers=enterprise)
    assert foreign.status_code == 403 and foreign.json()["responseCode"] == 400


@pytest.mark.parametrize(
    ("handle", "body", "headers", "status", "code"),
    [
        ("88.100/w", [URL_VALUE], {}, 401, 402),
        ("88.100/w", [URL_VALUE], basic("300:0.NA/88.100", "wrong"), 401, 402),
        ("88.100/w", [URL_VALUE], basic("300:0.NA/88.999", "s3cret"), 401, 402),
        ("88.100/w", [URL_VALUE], {"Authorization": "Basic !!!"}, 401, 402),
        ("88.100/w", [URL_VALUE], {"Authorization": "Bearer abc"}, 401, 402),
        ("88.100/w", [URL_VALUE], basic("9" * 5000 + ":0.NA/88.100", "s3cret"), 401, 402),
        ("88.100/w", [{"index": "1" * 5000, "type": "URL", "data": "x"}], ADMIN_AUTH, 400, 202),
        (
            "88.100/w",
            [{"index": 1, "type": "URL", "data": {"format": "hex", "value": "de ad"}}],
            ADMIN_AUTH,
            400,
            202,
        ),
        ("88.200/w", [URL_VALUE], ADMIN_AUTH, 400, 301),
        ("ba..d/w", [URL_VALUE], ADMIN_AUTH, 400, 102),
        (
            "88.100/w",
            [{"index": 1, "type": "URL", "data": {"format": "yaml", "value": "x"}}],
            ADMIN_AUTH,
            400,
            202,
        ),
        (
            "88.100/w",
            [{"index": 1, "type": "URL", "data": {"format": "hex", "value": "xyz"}}],
            ADMIN_AUTH,
            400,
            202,
        ),
        ("88.100/w", [{"type": "URL", "data": "x"}], ADMIN_AUTH, 400, 4),
        ("88.100/w", [URL_VALUE, URL_VALUE], ADMIN_AUTH, 400, 202),
        ("88.100/w", {"values": "nope"}, ADMIN_AUTH, 400, 4),
    ],
)
async def test_bad_writes_change_nothing(
    client: httpx.AsyncClient, redis: Redis, handle, body, headers, status, code
) -> None:
    before = await snapshot(redis)
    response = await client.put(f"/api/handles/{handle}", json=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["responseCode"] == code and error["message"]
    assert await snapshot(redis) == before


async def test_malformed_json_and_oversized_body(client: httpx.AsyncClient, redis: Redis) -> None:
    before = await snapshot(redis)
    malformed = await client.put(
        "/api/handles/88.100/j",
        content=b'{"values": [',
        headers={**ADMIN_AUTH, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["message"]
    assert malformed.json()["responseCode"] == 4  # Handle's PROTOCOL_ERROR
    assert malformed.json()["handle"] == "88.100/j"
    huge = await client.put(
        "/api/handles/88.100/j", content=b"x" * (5 * 1024 * 1024), headers=ADMIN_AUTH
    )
    assert huge.status_code == 413 and "larger than" in huge.json()["message"]

    async def chunks():
        for _ in range(6):
            yield b" " * (1024 * 1024)

    streamed = await client.put("/api/handles/88.100/j", content=chunks(), headers=ADMIN_AUTH)
    assert streamed.status_code == 413
    bad_param = await client.put(
        "/api/handles/88.100/j?overwrite=maybe", json=[URL_VALUE], headers=ADMIN_AUTH
    )
    assert bad_param.status_code == 400 and "overwrite" in bad_param.json()["message"]
    assert await snapshot(redis) == before


async def test_delete_refusals_change_nothing(client: httpx.AsyncClient, redis: Redis) -> None:
    await put(client, "88.100/keep", [URL_VALUE])
    before = await snapshot(redis)
    no_auth = await client.delete("/api/handles/88.100/keep")
    assert no_auth.status_code == 401 and no_auth.json()["responseCode"] == 402
    foreign = await client.delete("/api/handles/88.200/keep", headers=ADMIN_AUTH)
    assert foreign.status_code == 400 and foreign.json()["responseCode"] == 301
    assert await snapshot(redis) == before


async def test_batch_registration(client: httpx.AsyncClient, redis: Redis) -> None:
    await put(client, "88.100/b0", [URL_VALUE])
    items = [{"handle": f"88.100/b{i}", "values": [URL_VALUE]} for i in range(5)]
    items.append({"handle": "88.200/x", "values": [URL_VALUE]})
    items.append({"handle": "88.100/bad", "values": [{"index": "x"}]})
    response = await client.post("/api/batch/handles", json={"handles": items}, headers=ADMIN_AUTH)
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["updated"], body["failed"]) == (4, 0, 3)
    statuses = [(r["handle"], r["status"], r["responseCode"]) for r in body["results"]]
    assert statuses[0] == ("88.100/b0", 409, 101)
    assert statuses[1:5] == [(f"88.100/b{i}", 201, 1) for i in range(1, 5)]
    assert statuses[5] == ("88.200/x", 400, 301) and statuses[6][1:] == (400, 4)
    listing = (await client.get("/api/handles?prefix=88.100", headers=ADMIN_AUTH)).json()
    assert listing["totalCount"] == 5

    replaced = await client.post(
        "/api/batch/handles?overwrite=true", json={"handles": items[:2]}, headers=ADMIN_AUTH
    )
    assert replaced.json()["updated"] == 2


async def test_batch_limits(client: httpx.AsyncClient, redis: Redis) -> None:
    items = [{"handle": f"88.100/n{i}", "values": [URL_VALUE]} for i in range(2001)]
    before = await snapshot(redis)
    response = await client.post("/api/batch/handles", json={"handles": items}, headers=ADMIN_AUTH)
    assert response.status_code == 400 and "2000" in response.json()["message"]
    unauth = await client.post("/api/batch/handles", json={"handles": items[:1]})
    assert unauth.status_code == 401
    assert await snapshot(redis) == before


async def test_health_and_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    schema = (await client.get("/openapi.json")).json()
    assert "/api/handles/{handle}" in schema["paths"] and "/api/batch/handles" in schema["paths"]


async def test_concurrent_value_updates_all_land(client: httpx.AsyncClient) -> None:
    """Writers racing on one record each retry their compare-and-set; none is lost."""
    import asyncio

    await put(client, "88.100/race", [URL_VALUE])

    async def add(index: int) -> int:
        response = await client.put(
            f"/api/handles/88.100/race?index={index}",
            json=[{"index": index, "type": "PART", "data": f"p{index}"}],
            headers=ADMIN_AUTH,
        )
        return response.status_code

    statuses = await asyncio.gather(*(add(i) for i in range(2, 22)))
    assert set(statuses) == {200}
    values = (await client.get("/api/handles/88.100/race")).json()["values"]
    assert sorted(v["index"] for v in values) == [1, *range(2, 22), 100]


async def test_listing_a_foreign_prefix_is_referred(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/handles", params={"prefix": "88.200"}, headers=ADMIN_AUTH)
    assert response.status_code == 400
    assert response.json()["responseCode"] == 301 and "88.200" in response.json()["message"]


async def test_values_stored_as_hex_are_answered_in_handles_output_formats(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    """Before hex input was converted on write, records kept ``"format": "hex"``. Handle
    keeps a value's bytes and writes them as ``string`` (printable UTF-8) or ``base64``,
    so such records are answered that way too: converted as they are read, with no
    migration; the stored bytes stay until the record is next written. Such records
    are Handle JSON bodies, as records were stored before layout 3."""
    await put(client, "88.100/legacy-hex", [URL_VALUE])
    key, field = await record_place(redis, "88.100/legacy-hex")
    compact = await stored_record(redis, "88.100/legacy-hex")
    assert isinstance(compact, bytes)
    stored = public_json(compact, Handle.parse("88.100/legacy-hex"))
    legacy = stored.replace(
        b'{"format":"string","value":"https://a.example/1"}',
        b'{"format":"hex","value":"68656c6c6f"},"ttl":1,"timestamp":"2020-01-01T00:00:00Z"},'
        b'{"index":2,"type":"BIN","data":{"format":"hex","value":"00ff"}',
    )
    assert legacy != stored
    await redis.hset(key, field, legacy)
    expected = [
        (1, {"format": "string", "value": "hello"}),
        (2, {"format": "base64", "value": "AP8="}),
    ]
    for query, headers in (("", {}), ("?index=1&index=2", {}), ("", ADMIN_AUTH)):
        answer = await client.get(f"/api/handles/88.100/legacy-hex{query}", headers=headers)
        assert answer.status_code == 200, answer.text
        got = [(v["index"], v["data"]) for v in answer.json()["values"] if v["index"] < 100]
        assert got == expected, (query, headers)
    assert await redis.hget(key, field) == legacy  # read-time only: nothing rewritten
