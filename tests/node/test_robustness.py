"""Hostile and malformed requests to the in-process secondary node (88.100, default limits):
each is refused with a 4xx, never a 500; the node keeps serving and a refused write leaves
the store as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from registry.limits import Limits
from tests.conftest import ADMIN_AUTH, snapshot

LIMITS = Limits()
SEED = "88.100/seed"
URL_VALUE = {"index": 1, "type": "URL", "data": "https://a.example/1"}
DEPTH = 100_000  # far past orjson's parse limit (1024)
DEEP = 1000  # parses (under 1024), but deeper than Python's default recursion limit


@pytest.fixture
async def node(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """The conftest `client` node, with one handle to resolve after every case."""
    created = await client.put(f"/api/handles/{SEED}", json=[URL_VALUE], headers=ADMIN_AUTH)
    assert created.status_code == 201
    yield client


async def still_serving(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    resolved = await client.get(f"/api/handles/{SEED}")
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["values"][0]["data"]["value"] == URL_VALUE["data"]


async def refused(
    node: httpx.AsyncClient,
    redis: Redis,
    method: str,
    path: str,
    status: int,
    code: int,
    **kwargs: object,
) -> httpx.Response:
    """Send a write that must be refused with (status, responseCode), store unchanged."""
    before = await snapshot(redis)
    answer = await node.request(method, path, headers=ADMIN_AUTH, **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == status, answer.text[:300]
    assert answer.json()["responseCode"] == code, answer.text[:300]
    assert await snapshot(redis) == before
    await still_serving(node)
    return answer


def nested(depth: int, inner: str = "") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


def put_body(**fields: object) -> dict[str, object]:
    return {"values": [{**URL_VALUE, **fields}]}


# --- oversized bodies ------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"/api/handles/{SEED}", "/api/batch/handles"])
async def test_declared_content_length_over_the_limit_is_413(
    node: httpx.AsyncClient, redis: Redis, path: str
) -> None:
    method = "PUT" if path.startswith("/api/handles") else "POST"
    body = b"x" * (LIMITS.max_body_bytes + 1)
    answer = await refused(node, redis, method, path, 413, 2, content=body)
    assert str(LIMITS.max_body_bytes) in answer.json()["message"]


async def test_declared_length_is_refused_before_the_body_is_read(
    node: httpx.AsyncClient, redis: Redis
) -> None:
    """Only the header is over the limit: the node must not wait for 5 MB to arrive."""
    headers = {**ADMIN_AUTH, "Content-Length": str(5 * 1024 * 1024)}
    before = await snapshot(redis)
    answer = await node.put(f"/api/handles/{SEED}", content=b"[]", headers=headers)
    assert answer.request.headers["content-length"] == headers["Content-Length"]
    assert answer.status_code == 413 and answer.json()["responseCode"] == 2
    assert await snapshot(redis) == before
    await still_serving(node)


@pytest.mark.parametrize("path", [f"/api/handles/{SEED}", "/api/batch/handles"])
async def test_chunked_body_over_the_limit_is_413(
    node: httpx.AsyncClient, redis: Redis, path: str
) -> None:
    chunk = b" " * 65536
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"values": ['
        while sent < 4 * LIMITS.max_body_bytes:
            sent += len(chunk)
            yield chunk
        yield b"]}"

    method = "PUT" if path.startswith("/api/handles") else "POST"
    answer = await refused(node, redis, method, path, 413, 2, content=stream())
    assert "transfer-encoding" in answer.request.headers  # no Content-Length was declared
    # Refused as the limit was crossed, not after reading all 16 MB.
    assert LIMITS.max_body_bytes - len(chunk) < sent <= LIMITS.max_body_bytes + len(chunk)


async def test_ten_megabyte_value_is_413(node: httpx.AsyncClient, redis: Redis) -> None:
    body = orjson.dumps(put_body(data="v" * 10_000_000))
    await refused(node, redis, "PUT", f"/api/handles/{SEED}", 413, 2, content=body)


async def test_value_over_the_value_limit_is_400(node: httpx.AsyncClient, redis: Redis) -> None:
    body = orjson.dumps(put_body(data="v" * (LIMITS.max_value_bytes + 1)))
    answer = await refused(node, redis, "PUT", f"/api/handles/{SEED}", 400, 202, content=body)
    assert str(LIMITS.max_value_bytes) in answer.json()["message"]


# --- batches ---------------------------------------------------------------------------


def batch(count: int) -> dict[str, object]:
    return {"handles": [{"handle": f"88.100/b{i}", "values": [URL_VALUE]} for i in range(count)]}


async def test_batch_over_the_limit_is_400(node: httpx.AsyncClient, redis: Redis) -> None:
    answer = await refused(
        node, redis, "POST", "/api/batch/handles", 400, 202, json=batch(LIMITS.max_batch + 1)
    )
    assert str(LIMITS.max_batch) in answer.json()["message"]


async def test_batch_at_the_limit_is_accepted(node: httpx.AsyncClient) -> None:
    answer = await node.post("/api/batch/handles", json=batch(LIMITS.max_batch), headers=ADMIN_AUTH)
    assert answer.status_code == 200
    assert answer.json()["created"] == LIMITS.max_batch
    assert (await node.get(f"/api/handles/88.100/b{LIMITS.max_batch - 1}")).status_code == 200
    await still_serving(node)


# --- malformed JSON --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", f"/api/handles/{SEED}", nested(DEPTH)),
        ("POST", "/api/batch/handles", nested(DEPTH)),
        ("POST", "/api/batch/handles", b'{"handles": ' + nested(DEPTH) + b"}"),
        ("PUT", f"/api/handles/{SEED}", b'{"values": ' + nested(DEPTH) + b"}"),
        ("PUT", f"/api/handles/{SEED}", b'{"a":' * DEPTH + b"1" + b"}" * DEPTH),
    ],
    ids=["put-lists", "batch-lists", "batch-handles", "put-values", "put-objects"],
)
async def test_deeply_nested_json_is_400(
    node: httpx.AsyncClient, redis: Redis, method: str, path: str, body: bytes
) -> None:
    code = 4 if path.startswith("/api/handles") else 202  # Handle's PROTOCOL_ERROR
    answer = await refused(node, redis, method, path, 400, code, content=body)
    assert "not valid JSON" in answer.json()["message"]


def _deep_case(case: str, body: bytes, path: str = f"/api/handles/{SEED}") -> object:
    """JSON nested ~1000 deep parses (orjson's limit is 1024); the error message about
    the nested field must not recurse through it."""
    return pytest.param(path, body, id=case)


# Deep lists where a value's JSON shape wants a string or a number: a wrongly shaped
# value, PROTOCOL_ERROR (4); the other fields are read and refused as invalid (202).
_SHAPE_CASES = frozenset({"type", "data-value", "values", "index", "data-format", "batch-index"})


def _deep_field(template: str) -> bytes:
    return template.replace("DEEP", nested(DEEP).decode()).encode()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param(
            f"/api/handles/{SEED}",
            _deep_field('{"values": [{"index": 1, "type": DEEP, "data": "x"}]}'),
            id="type",
        ),
        pytest.param(
            f"/api/handles/{SEED}",
            _deep_field('{"values": [{"index": 1, "type": "URL", "data": {"value": DEEP}}]}'),
            id="data-value",
        ),
        pytest.param(
            f"/api/handles/{SEED}",
            _deep_field(
                '{"values": [{"index": 1, "type": "URL", "data": "x", "publicRead": DEEP}]}'
            ),
            id="publicRead",
        ),
        pytest.param(f"/api/handles/{SEED}", _deep_field('{"values": DEEP}'), id="values"),
        pytest.param(
            "/api/batch/handles", _deep_field('{"handles": [{"handle": DEEP}]}'), id="batch-handle"
        ),
        _deep_case(
            "index", _deep_field('{"values": [{"index": DEEP, "type": "URL", "data": "x"}]}')
        ),
        _deep_case(
            "ttl",
            _deep_field('{"values": [{"index": 1, "type": "URL", "data": "x", "ttl": DEEP}]}'),
        ),
        _deep_case(
            "data-format",
            _deep_field('{"values": [{"index": 1, "type": "URL", "data": {"format": DEEP}}]}'),
        ),
        _deep_case(
            "admin-index",
            _deep_field(
                '{"values": [{"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", '
                '"value": {"handle": "0.NA/88.100", "index": DEEP}}}]}'
            ),
        ),
        _deep_case(
            "batch-index",
            _deep_field(
                '{"handles": [{"handle": "88.100/b", "values": '
                '[{"index": DEEP, "type": "URL", "data": "x"}]}]}'
            ),
            "/api/batch/handles",
        ),
    ],
)
async def test_json_nested_just_under_the_parser_limit_is_refused(
    node: httpx.AsyncClient, redis: Redis, path: str, body: bytes, request: pytest.FixtureRequest
) -> None:
    case = request.node.callspec.id.partition("-")[2]  # the store's id ("redis-") first
    code = 4 if case in _SHAPE_CASES else 202
    before = await snapshot(redis)
    method = "PUT" if path.startswith("/api/handles") else "POST"
    answer = await node.request(method, path, content=body, headers=ADMIN_AUTH)
    if path == "/api/batch/handles":  # per-item refusal inside a 200
        assert answer.status_code == 200, answer.text[:300]
        (result,) = answer.json()["results"]
        assert result["status"] == 400 and result["responseCode"] == code
    else:
        assert answer.status_code == 400, answer.text[:300]
        assert answer.json()["responseCode"] == code
    assert await snapshot(redis) == before
    await still_serving(node)


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe\x00",
        b'{"values": [{"index": 1, "type": "URL", "data": "\xff"}]}',
        b'{"values": [{"index": 1, "type": "URL", "data": "\xed\xa0\x80"}]}',  # UTF-8 surrogate
        b'{"values": [{"index": 1, "type": "URL", "data": "\\ud800"}]}',  # lone escape
        '{"values": [{"index": 1, "type": "URL", "data": "é"}]}'.encode("latin-1"),
    ],
    ids=["bytes", "ff-in-string", "surrogate", "lone-escape", "latin-1"],
)
@pytest.mark.parametrize("path", [f"/api/handles/{SEED}", "/api/batch/handles"])
async def test_non_utf8_body_is_400(
    node: httpx.AsyncClient, redis: Redis, path: str, body: bytes
) -> None:
    method = "PUT" if path.startswith("/api/handles") else "POST"
    code = 4 if path.startswith("/api/handles") else 202  # Handle's PROTOCOL_ERROR
    await refused(node, redis, method, path, 400, code, content=body)


# --- handle paths ----------------------------------------------------------------------

CONTROL = ["a%00b", "a%0Db", "a%7Fb", "a%09b", "a%C2%85b", "a%1Bb"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("suffix", CONTROL)
async def test_control_characters_in_the_suffix_are_invalid(
    node: httpx.AsyncClient, redis: Redis, method: str, suffix: str
) -> None:
    body = [URL_VALUE] if method == "PUT" else None
    await refused(node, redis, method, f"/api/handles/88.100/{suffix}", 400, 102, json=body)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("handle", ["88.100%00/x", "8%7F8.100/x", "%FF/x", "0.NA/%FF", "%0D/x"])
async def test_malformed_prefixes_are_invalid(
    node: httpx.AsyncClient, redis: Redis, method: str, handle: str
) -> None:
    body = [URL_VALUE] if method == "PUT" else None
    await refused(node, redis, method, f"/api/handles/{handle}", 400, 102, json=body)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_valid_unknown_unicode_handle_is_404(
    node: httpx.AsyncClient, redis: Redis, method: str
) -> None:
    answer = await refused(node, redis, method, "/api/handles/88.100/%E4%B8%AD", 404, 100)
    assert answer.json()["handle"] == "88.100/中"


INVALID_UTF8 = ["%FF", "a%C3%28", "%ED%A0%80", "%C0%AF"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("suffix", INVALID_UTF8)
async def test_invalid_utf8_in_the_path_is_never_a_server_error(
    node: httpx.AsyncClient, redis: Redis, method: str, suffix: str
) -> None:
    before = await snapshot(redis)
    answer = await node.request(method, f"/api/handles/88.100/{suffix}", headers=ADMIN_AUTH)
    # 400/102 would be exact; 404/100 (the handle, as decoded, is unknown) is tolerable.
    assert (answer.status_code, answer.json()["responseCode"]) in ((400, 102), (404, 100))
    assert await snapshot(redis) == before
    await still_serving(node)


@pytest.mark.parametrize("suffix", INVALID_UTF8)
async def test_invalid_utf8_in_the_path_is_not_written(
    node: httpx.AsyncClient, redis: Redis, suffix: str
) -> None:
    await refused(node, redis, "PUT", f"/api/handles/88.100/{suffix}", 400, 102, json=[URL_VALUE])


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_newline_inside_the_suffix_is_invalid(
    node: httpx.AsyncClient, redis: Redis, method: str
) -> None:
    body = [URL_VALUE] if method == "PUT" else None
    await refused(node, redis, method, "/api/handles/88.100/a%0Ab", 400, 102, json=body)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/handles/{SEED}%0A", None),
        ("PUT", f"/api/handles/{SEED}%0A", [{**URL_VALUE, "data": "https://evil.example/"}]),
        ("DELETE", f"/api/handles/{SEED}%0A", None),
        ("PUT", "/api/secrets/300:0.NA/88.100%0A", {"secret": "new-secret-1", "graceSeconds": 0}),
    ],
)
async def test_trailing_newline_does_not_name_another_handle(
    node: httpx.AsyncClient, redis: Redis, method: str, path: str, body: object
) -> None:
    await refused(node, redis, method, path, 400, 102, json=body)
