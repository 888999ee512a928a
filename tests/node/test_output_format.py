"""HEAD, ``pretty`` and ``callback`` on /api/handles, as the Handle servlet writes them:
the format logic alone, then the node in process on the session's real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from node.app import NodeApi, create_app
from node.output_format import JAVASCRIPT, MAX_CALLBACK, OutputFormat
from registry.errors import InvalidValue
from tests.conftest import ADMIN_AUTH, StoreServer, node_config, snapshot
from tests.server.node_process import NodeProcess

# --- the format alone ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "true", "TRUE", "yes", "Yes"])
def test_pretty_is_on_as_handle_reads_a_boolean(value: str) -> None:
    assert OutputFormat.parse(pretty=value, callback=None).pretty


@pytest.mark.parametrize("value", ["false", "1", "on", "no", "y"])
def test_any_other_pretty_value_leaves_json_compact(value: str) -> None:
    assert OutputFormat.parse(pretty=value, callback=None).plain


def test_no_parameter_is_the_plain_format() -> None:
    assert OutputFormat.parse(None, None) is OutputFormat.PLAIN


@pytest.mark.parametrize(
    "name", ["cb", "_", "$", "jQuery3_1_1700000000", "ns.on_answer", "a.$b.c9", "a" * MAX_CALLBACK]
)
def test_identifier_callbacks_are_accepted(name: str) -> None:
    fmt = OutputFormat.parse(None, name)
    assert fmt.render(b"[1]") == name.encode() + b"([1]);"
    assert fmt.media_type == JAVASCRIPT


@pytest.mark.parametrize(
    "name",
    [
        "",
        "1cb",
        "a b",
        "a-b",
        ".a",
        "a.",
        "a..b",
        "alert(1)//",
        "</script><script>alert(1)</script>",
        "cb\n",
        "函数",
        "a" * (MAX_CALLBACK + 1),
    ],
)
def test_other_callbacks_are_refused_without_repeating_them(name: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        OutputFormat.parse(None, name)
    assert name not in refused.value.message or name == ""
    assert OutputFormat.for_error("true", name) == OutputFormat(pretty=True)


def test_line_separators_are_escaped_in_a_script() -> None:
    body = orjson.dumps({"data": "a\u2028b\u2029c"})
    wrapped = OutputFormat.parse(None, "cb").render(body)
    assert b"\xe2\x80\xa8" not in wrapped and b"\xe2\x80\xa9" not in wrapped
    assert orjson.loads(wrapped[3:-2]) == {"data": "a\u2028b\u2029c"}
    assert OutputFormat.parse("", None).render(body) == orjson.dumps(
        orjson.loads(body), option=orjson.OPT_INDENT_2
    )


def test_pretty_leaves_bytes_that_are_not_json_as_they_came() -> None:
    assert OutputFormat.parse("", None).render(b"not json") == b"not json"


# --- the node -------------------------------------------------------------------------

VALUES = [{"index": 1, "type": "URL", "data": "https://example.cn/p/1"}]
HANDLE = "/api/handles/88.100/ABC"


@pytest.fixture
async def node(
    redis: Redis, redis_server: StoreServer
) -> AsyncIterator[tuple[NodeApi, httpx.AsyncClient]]:
    app = create_app(node_config(redis_server.url))
    assert isinstance(app, NodeApi)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            created = await http.put(HANDLE, json={"values": VALUES}, headers=ADMIN_AUTH)
            assert created.status_code == 201
            yield app, http


@pytest.fixture
def client(node: tuple[NodeApi, httpx.AsyncClient]) -> httpx.AsyncClient:
    return node[1]


async def test_the_plain_answer_is_unchanged_and_still_on_the_fast_path(
    node: tuple[NodeApi, httpx.AsyncClient],
) -> None:
    app, client = node
    before = app.fast.answered
    plain = await client.get(HANDLE)
    assert app.fast.answered == before + 1
    assert plain.headers["content-type"] == "application/json"
    # compact, exactly the bytes the route sends without a format (pretty=false)
    routed = await client.get(HANDLE, params={"pretty": "false"})
    assert app.fast.answered == before + 1
    assert plain.content == routed.content == orjson.dumps(plain.json())
    assert b"\n" not in plain.content


@pytest.mark.parametrize(
    ("path", "params", "auth"),
    [
        (HANDLE, {}, False),  # found, answered by the fast path for GET
        ("/api/handles/88.100/abc", {}, False),  # another spelling
        ("/api/handles/88.100/missing", {}, False),  # 404, responseCode 100
        ("/api/handles/21.T14999/X", {}, False),  # 400, responseCode 301
        ("/api/handles/88.101/elsewhere", {}, False),  # 400, responseCode 301, referral
        ("/api/handles/bad", {}, False),  # 400, responseCode 102
        (HANDLE, {"type": "URL"}, False),  # filtered
        (HANDLE, {"type": "EMAIL"}, False),  # 200, responseCode 200
        (HANDLE, {}, True),  # authenticated read
        (HANDLE, {"pretty": "true"}, False),
        (HANDLE, {"callback": "cb", "pretty": ""}, False),
        ("/api/handles/88.100/missing", {"callback": "cb"}, False),
        (HANDLE, {"callback": "bad name"}, False),  # 400
        ("/api/handles", {"prefix": "88.100"}, True),  # listing
        ("/api/handles", {"prefix": "88.100"}, False),  # listing without credentials: 401
        ("/api/handles", {}, False),  # 400, responseCode 102
        ("/api/handles", {"prefix": "88.100", "page": "x"}, True),  # 400, responseCode 202
    ],
)
async def test_head_answers_what_get_answers_without_the_body(
    client: httpx.AsyncClient, path: str, params: dict[str, str], auth: bool
) -> None:
    headers = ADMIN_AUTH if auth else {}
    got = await client.get(path, params=params, headers=headers)
    head = await client.head(path, params=params, headers=headers)
    assert head.status_code == got.status_code != 405
    assert head.content == b""
    assert head.headers == got.headers
    assert int(head.headers["content-length"]) == len(got.content) > 0


async def test_pretty_indents_every_answer(client: httpx.AsyncClient) -> None:
    plain = await client.get(HANDLE)
    for value in ("", "true", "yes"):
        pretty = await client.get(HANDLE, params={"pretty": value})
        assert pretty.status_code == 200
        assert pretty.content == orjson.dumps(plain.json(), option=orjson.OPT_INDENT_2)
    assert (await client.get(HANDLE, params={"pretty": "1"})).content == plain.content
    missing = await client.get("/api/handles/88.100/missing", params={"pretty": ""})
    assert missing.status_code == 404 and missing.content.startswith(b'{\n  "responseCode": 100')
    listing = await client.get(
        "/api/handles", params={"prefix": "88.100", "pretty": ""}, headers=ADMIN_AUTH
    )
    assert listing.content == orjson.dumps(listing.json(), option=orjson.OPT_INDENT_2)
    assert listing.json()["handles"] == ["88.100/ABC"]


def _called(response: httpx.Response, name: str) -> object:
    assert response.headers["content-type"] == JAVASCRIPT
    body = response.content
    assert body.startswith(name.encode() + b"(") and body.endswith(b");")
    return orjson.loads(body[len(name) + 1 : -2])


async def test_callback_wraps_answers_as_javascript(client: httpx.AsyncClient) -> None:
    plain = await client.get(HANDLE)
    wrapped = await client.get(HANDLE, params={"callback": "ns.on_answer"})
    assert wrapped.status_code == 200
    assert wrapped.content == b"ns.on_answer(" + plain.content + b");"
    both = await client.get(HANDLE, params={"callback": "cb", "pretty": "true"})
    assert both.content == b"cb(" + orjson.dumps(plain.json(), option=orjson.OPT_INDENT_2) + b");"
    listing = await client.get(
        "/api/handles", params={"prefix": "88.100", "callback": "cb"}, headers=ADMIN_AUTH
    )
    assert _called(listing, "cb")["handles"] == ["88.100/ABC"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("method", "path", "params", "status", "code"),
    [
        ("GET", "/api/handles/88.100/missing", {}, 404, 100),
        ("GET", "/api/handles/21.T14999/X", {}, 400, 301),
        ("GET", "/api/handles/bad", {}, 400, 102),
        ("GET", "/api/handles", {}, 400, 102),
        ("GET", "/api/handles", {"prefix": "88.100"}, 401, 402),  # no credentials
        ("GET", "/api/handles", {"prefix": "88.100", "page": "x"}, 400, 202),  # validation
        ("POST", HANDLE, {}, 405, 2),
        ("DELETE", "/api/handles/88.100/missing", {}, 401, 402),
    ],
)
async def test_callback_wraps_errors_keeping_their_status(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    params: dict[str, str],
    status: int,
    code: int,
) -> None:
    answer = await client.request(method, path, params={**params, "callback": "cb"})
    assert answer.status_code == status
    body = _called(answer, "cb")
    assert isinstance(body, dict) and body["responseCode"] == code


async def test_writes_answer_in_the_format_asked(client: httpx.AsyncClient) -> None:
    put = await client.put(
        "/api/handles/88.100/NEW",
        params={"callback": "cb"},
        json={"values": VALUES},
        headers=ADMIN_AUTH,
    )
    assert put.status_code == 201
    assert _called(put, "cb") == {"responseCode": 1, "handle": "88.100/NEW"}
    deleted = await client.delete(
        "/api/handles/88.100/NEW", params={"pretty": ""}, headers=ADMIN_AUTH
    )
    assert deleted.content == b'{\n  "responseCode": 1,\n  "handle": "88.100/NEW"\n}'


NASTY = "alert(document.cookie)//"


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
async def test_a_bad_callback_is_refused_before_any_work_and_not_reflected(
    client: httpx.AsyncClient, redis: Redis, method: str
) -> None:
    before = await snapshot(redis)
    answer = await client.request(
        method,
        HANDLE,
        params={"callback": NASTY, "pretty": ""},
        headers=ADMIN_AUTH,
        json={"values": [{"index": 2, "type": "EMAIL", "data": "x@y"}]},
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/json"
    assert await snapshot(redis) == before
    if method != "HEAD":
        assert answer.json()["responseCode"] == 202
        assert b"alert" not in answer.content and b"cookie" not in answer.content
        assert answer.content.startswith(b'{\n  "responseCode": 202')  # pretty still applies


async def test_line_separators_in_values_are_escaped_in_jsonp(client: httpx.AsyncClient) -> None:
    value = {"index": 2, "type": "DESC", "data": "line\u2028end"}
    assert (
        await client.put("/api/handles/88.100/LS", json=[value], headers=ADMIN_AUTH)
    ).status_code == 201
    wrapped = await client.get("/api/handles/88.100/LS", params={"callback": "cb"})
    assert b"\xe2\x80\xa8" not in wrapped.content and b"\\u2028" in wrapped.content
    body = _called(wrapped, "cb")
    assert isinstance(body, dict) and body["values"][0]["data"]["value"] == "line\u2028end"


# --- over a real connection -----------------------------------------------------------


@pytest.fixture(scope="module")
def process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    served = NodeProcess(tmp_path_factory.mktemp("output-format") / "data").start()
    yield served
    served.stop()


@pytest.mark.server
def test_head_over_http_keeps_the_connection_in_step(process: NodeProcess) -> None:
    """uvicorn sends no body for HEAD; the Content-Length is GET's, and the next answer
    on the same keep-alive connection starts where it should (nothing stray before it)."""
    with httpx.Client(base_url=process.url) as http:
        auth = httpx.BasicAuth("300:0.NA/88.100", "s3cret")
        assert http.put(HANDLE, json=VALUES, auth=auth).status_code == 201
        for path in (HANDLE, "/api/handles/88.100/missing"):
            got = http.get(path)
            head = http.head(path)
            assert (head.status_code, head.content) == (got.status_code, b"")
            assert head.headers["content-length"] == str(len(got.content))
            again = http.get(path, params={"callback": "cb"})
            assert again.content == b"cb(" + got.content + b");"
