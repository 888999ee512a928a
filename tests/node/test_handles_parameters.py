"""The Handle REST API's request parameters and body shapes (issue 18), in process, on
the session's real Redis: what the HANDLE.NET Technical Manual's REST API chapter and
the reference servlet (``HandleJsonRestApiServlet``) accept, and how the node answers."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from redis.asyncio import Redis

from registry.limits import Limits
from tests.conftest import ADMIN, ADMIN_AUTH, StoreServer, basic, node_config, served, snapshot
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


# --- PUT: body shapes, index=various, mintNewSuffix with a stem ----------------------


async def test_a_single_value_object_is_a_body(client: httpx.AsyncClient) -> None:
    created = await put(client, "88.100/one", URL_VALUE)
    assert created.status_code == 201
    got = await client.get("/api/handles/88.100/one")
    assert [v["type"] for v in got.json()["values"]] == ["URL", "HS_ADMIN"]


async def test_index_various_writes_the_values_sent_and_keeps_the_rest(
    client: httpx.AsyncClient,
) -> None:
    await put(client, "88.100/v", [URL_VALUE, {"index": 2, "type": "EMAIL", "data": "x@y"}])
    changed = await put(
        client,
        "88.100/v",
        [{"index": 2, "type": "EMAIL", "data": "new@y"}, {"index": 3, "type": "X", "data": "3"}],
        index="various",
    )
    assert changed.status_code == 200
    values = (await client.get("/api/handles/88.100/v")).json()["values"]
    assert [(v["index"], v["data"]["value"]) for v in values if v["index"] < 100] == [
        (1, "https://a.example/1"),
        (2, "new@y"),
        (3, "3"),
    ]
    single = await put(client, "88.100/v", {"index": 4, "type": "Y", "data": "4"}, index="various")
    assert single.status_code == 200
    assert 4 in indexes(await client.get("/api/handles/88.100/v"))


async def test_index_various_refusals_change_nothing(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    await put(client, "88.100/v", [URL_VALUE])
    before = await snapshot(redis)
    taken = await put(client, "88.100/v", [URL_VALUE], index="various", overwrite="false")
    assert taken.status_code == 409 and taken.json()["responseCode"] == 201
    empty = await put(client, "88.100/v", [], index="various")
    assert empty.status_code == 400 and empty.json()["responseCode"] == 202
    mixed = await client.put(
        "/api/handles/88.100/v?index=various&index=1", json=[URL_VALUE], headers=ADMIN_AUTH
    )
    assert mixed.status_code == 400 and "various" in mixed.json()["message"]
    assert await snapshot(redis) == before


async def test_a_body_naming_another_handle_is_refused(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    before = await snapshot(redis)
    other = await put(client, "88.100/h", {"handle": "88.100/other", "values": [URL_VALUE]})
    assert other.status_code == 400 and other.json()["responseCode"] == 4
    assert "88.100/other" in other.json()["message"]
    assert await snapshot(redis) == before
    same = await put(client, "88.100/h", {"handle": "88.100/H", "values": [URL_VALUE]})
    assert same.status_code == 201  # the same handle, spelled in another case


async def test_mint_new_suffix_after_a_stem(client: httpx.AsyncClient) -> None:
    for stem in ("88.100/LOT-", "88.100/", "88.100"):
        minted = await client.put(
            f"/api/handles/{stem}?mintNewSuffix=true", json=[URL_VALUE], headers=ADMIN_AUTH
        )
        assert minted.status_code == 201, minted.text
        name = minted.json()["handle"]
        start = stem if "/" in stem else stem + "/"
        assert name.startswith(start) and len(name) == len(start) + 36
        assert (await client.get(f"/api/handles/{name}")).status_code == 200


async def test_mint_refusals_change_nothing(client: httpx.AsyncClient, redis: Redis) -> None:
    before = await snapshot(redis)
    bad = await client.put("/api/handles/88..x/a-?mintNewSuffix=true", json=[URL_VALUE])
    assert bad.status_code == 400 and bad.json()["responseCode"] == 102
    foreign = await client.put(
        "/api/handles/88.200/a-?mintNewSuffix=true", json=[URL_VALUE], headers=ADMIN_AUTH
    )
    assert foreign.status_code == 400 and foreign.json()["responseCode"] == 301
    anonymous = await client.put("/api/handles/88.100/a-?mintNewSuffix=true", json=[URL_VALUE])
    assert anonymous.status_code == 401
    assert await snapshot(redis) == before


async def test_mint_checks_a_body_handle_against_the_url_as_handle_does(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    """The reference servlet compares the body's ``handle`` with the handle in the URL
    (the stem) before the server appends the suffix: the stem is accepted, any other
    name is PROTOCOL_ERROR (4) naming the URL's handle, and nothing is minted."""
    before = await snapshot(redis)
    other = await client.put(
        "/api/handles/88.100/STEM-?mintNewSuffix=true",
        json={"handle": "88.100/other", "values": [URL_VALUE]},
        headers=ADMIN_AUTH,
    )
    assert other.status_code == 400 and other.json()["responseCode"] == 4
    assert other.json()["handle"] == "88.100/STEM-"
    assert "88.100/other" in other.json()["message"]
    assert await snapshot(redis) == before
    stem = await client.put(
        "/api/handles/88.100/STEM-?mintNewSuffix=true",
        json={"handle": "88.100/stem-", "values": [URL_VALUE]},
        headers=ADMIN_AUTH,
    )
    assert stem.status_code == 201, stem.text
    minted = stem.json()["handle"]
    assert minted.startswith("88.100/STEM-") and len(minted) == len("88.100/STEM-") + 36
    assert (await client.get(f"/api/handles/{minted}")).status_code == 200


WRONG_SHAPES = [
    pytest.param({"values": "nope"}, "list", id="values-not-a-list"),
    pytest.param({"values": {"index": 1}}, "list", id="values-an-object"),
    pytest.param({"nothing": 1}, "list", id="object-without-values"),
    pytest.param("nope", "list", id="body-a-string"),
    pytest.param(5, "list", id="body-a-number"),
    pytest.param({"values": ["x"]}, "object", id="value-a-string"),
    pytest.param([7], "object", id="value-a-number"),
    pytest.param([{"index": "a", "type": "URL", "data": "x"}], "'index'", id="index-text"),
    pytest.param([{"index": 1.5, "type": "URL", "data": "x"}], "'index'", id="index-float"),
    pytest.param([{"index": True, "type": "URL", "data": "x"}], "'index'", id="index-bool"),
    pytest.param([{"type": "URL", "data": "x"}], "'index'", id="index-missing"),
    pytest.param([{"index": 1, "type": 5, "data": "x"}], "'type'", id="type-a-number"),
    pytest.param([{"index": 1, "data": "x"}], "'type'", id="type-missing"),
    pytest.param([{"index": 1, "type": "URL"}], "'data'", id="data-missing"),
    pytest.param([{"index": 1, "type": "URL", "data": 5}], "'data'", id="data-a-number"),
    pytest.param(
        [{"index": 1, "type": "URL", "data": {"format": "string", "value": 5}}],
        "string",
        id="data-value-not-text",
    ),
    pytest.param(
        [{"index": 1, "type": "URL", "data": {"format": 7, "value": "x"}}],
        "format",
        id="format-a-number",
    ),
]


@pytest.mark.parametrize(("body", "says"), WRONG_SHAPES)
async def test_a_wrongly_shaped_body_is_a_protocol_error(
    client: httpx.AsyncClient, redis: Redis, body: object, says: str
) -> None:
    """JSON that parses but is not the shape PUT takes: Handle's reference answers
    PROTOCOL_ERROR (4, HTTP 400), as for JSON that does not parse; the store is unchanged."""
    await put(client, "88.100/shape", [URL_VALUE])
    before = await snapshot(redis)
    for handle in ("88.100/shape", "88.100/shape-new"):
        answer = await put(client, handle, body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["responseCode"] == 4, answer.text
        assert answer.json()["handle"] == handle
        assert says in answer.json()["message"]
    assert await snapshot(redis) == before


async def test_a_well_shaped_but_invalid_value_stays_202(client: httpx.AsyncClient) -> None:
    """The values are of the right JSON types but their content is wrong: INVALID_VALUE."""
    for value in (
        {"index": 0, "type": "URL", "data": "x"},
        {"index": 1, "type": "", "data": "x"},
        {"index": 1, "type": "URL", "data": {"format": "base64", "value": "%%%"}},
        {"index": 1, "type": "URL", "data": {"format": "nope", "value": "x"}},
    ):
        answer = await put(client, "88.100/shape-ok", [value])
        assert answer.status_code == 400 and answer.json()["responseCode"] == 202, value


# --- GET /api/handles?prefix=P: counts, every handle and its bound ----------------------


async def listing(client: httpx.AsyncClient, query: str) -> httpx.Response:
    return await client.get(f"/api/handles?prefix=88.100{query}", headers=ADMIN_AUTH)


async def test_listing_counts_and_every_handle(client: httpx.AsyncClient) -> None:
    for i in range(12):
        await put(client, f"88.100/item{i:02d}", [URL_VALUE])
    names = [f"88.100/item{i:02d}" for i in range(12)]
    count = (await listing(client, "&page=0&pageSize=0")).json()
    assert count == {
        "responseCode": 1,
        "prefix": "88.100",
        "totalCount": 12,
        "page": 0,
        "pageSize": 0,
        "handles": [],
    }
    assert (await listing(client, "&pageSize=0")).json()["handles"] == []
    for query in ("", "&page=-1&pageSize=5", "&page=1&pageSize=-1", "&pageSize=5"):
        every = (await listing(client, query)).json()
        assert every["handles"] == names and every["totalCount"] == 12, query
        assert "page" not in every and "pageSize" not in every
    paged = (await listing(client, "&page=1&pageSize=5")).json()
    assert paged["handles"] == names[5:10] and paged["page"] == 1


async def test_every_handle_is_bounded(redis: Redis, redis_server: StoreServer) -> None:
    config = replace(node_config(redis_server.url), limits=Limits(max_page_size=5))
    async with served(config) as client:
        for i in range(6):
            await put(client, f"88.100/item{i}", [URL_VALUE])
        too_many = await listing(client, "")
        assert too_many.status_code == 400 and too_many.json()["responseCode"] == 202
        assert "holds 6 handles" in too_many.json()["message"]
        assert "pageSize=5" in too_many.json()["message"]
        assert (await listing(client, "&page=1&pageSize=5")).json()["handles"] == ["88.100/item5"]
        over = await listing(client, "&page=0&pageSize=6")
        assert over.status_code == 400 and "at most 5" in over.json()["message"]


# --- publicOnly ---------------------------------------------------------------------

HIDDEN = {"index": 2, "type": "NOTE", "data": "internal", "publicRead": False}
SECRET = {"index": 301, "type": "HS_SECKEY", "data": "a-long-enough-secret"}


def types(response: httpx.Response) -> list[str]:
    return [v["type"] for v in response.json()["values"]]


async def test_public_only_defaults_follow_the_credentials(client: httpx.AsyncClient) -> None:
    await put(client, "88.100/p", [URL_VALUE, HIDDEN, SECRET])
    anonymous = await client.get("/api/handles/88.100/p")
    assert types(anonymous) == ["URL", "HS_ADMIN"]
    # With credentials publicOnly defaults to false: restricted values, never secret keys.
    admin = await client.get("/api/handles/88.100/p", headers=ADMIN_AUTH)
    assert types(admin) == ["URL", "NOTE", "HS_ADMIN"]
    explicit = await client.get("/api/handles/88.100/p?publicOnly=false", headers=ADMIN_AUTH)
    assert types(explicit) == ["URL", "NOTE", "HS_ADMIN"]
    public = await client.get("/api/handles/88.100/p?publicOnly=true", headers=ADMIN_AUTH)
    assert types(public) == ["URL", "HS_ADMIN"]
    filtered = await client.get("/api/handles/88.100/p?type=NOTE", headers=ADMIN_AUTH)
    assert types(filtered) == ["NOTE"]
    wrong = await client.get("/api/handles/88.100/p", headers=basic(ADMIN, "wrong"))
    assert wrong.status_code == 401 and wrong.json()["responseCode"] == 402


async def test_public_only_false_without_credentials(client: httpx.AsyncClient) -> None:
    await put(client, "88.100/p", [URL_VALUE, HIDDEN])
    await put(client, "88.100/open", [URL_VALUE, SECRET])
    needs = await client.get("/api/handles/88.100/p?publicOnly=false")
    assert needs.status_code == 401 and needs.json()["responseCode"] == 402
    # Nothing restricted but a secret key, which credentials would not show: public.
    plain = await client.get("/api/handles/88.100/open?publicOnly=false")
    assert plain.status_code == 200 and types(plain) == ["URL", "HS_ADMIN"]
    missing = await client.get("/api/handles/88.100/none?publicOnly=false")
    assert missing.status_code == 404
