"""Conformance with the HANDLE.NET Technical Manual's REST API chapter, section by
section, against one real ``idnode serve`` process (secondary node, prefix 88.100).

Each test is named after the manual's section it checks. Where a node deliberately
differs from Handle (README "Security": secret keys are never returned; HS_SECKEY
challenge-response is refused; SM2/Ed25519 keys besides Handle's RSA/DSA), the test
checks the node's documented behaviour and its docstring names the difference.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from node.embedded_redis import EmbeddedRedis
from registry.pubkey import Algorithm, generate, sign
from tests.registry.test_pubkey import handle_sign, key_data
from tests.server.node_process import NodeProcess

pytestmark = pytest.mark.server

SECRET = "s3cret"
ADMIN = ("300:0.NA/88.100", SECRET)
URL_1 = {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://f.example/1"}}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(tmp_path_factory.mktemp("conformance") / "data", secret=SECRET)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def http(node: NodeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.url, timeout=10) as client:
        yield client


def put(
    http: httpx.Client, handle: str, body: object, auth: Any = ADMIN, **params: str
) -> httpx.Response:
    return http.put(f"/api/handles/{handle}", json=body, auth=auth, params=params)


def create(http: httpx.Client, handle: str, *values: dict[str, Any]) -> None:
    answer = put(http, handle, {"values": list(values or [URL_1])})
    assert answer.status_code in (200, 201), answer.text


def code(answer: httpx.Response) -> tuple[int, int]:
    return answer.status_code, answer.json()["responseCode"]


# --- Methods - GET Handle ------------------------------------------------------------------


def test_get_handle_resolves_every_value(http: httpx.Client) -> None:
    create(http, "88.100/C-GET", URL_1, {"index": 2, "type": "EMAIL", "data": "a@f.example"})
    answer = http.get("/api/handles/88.100/C-GET")
    assert code(answer) == (200, 1)
    body = answer.json()
    assert body["handle"] == "88.100/C-GET"
    values = {v["index"]: v for v in body["values"]}
    assert values[1]["type"] == "URL" and values[1]["data"] == URL_1["data"]
    assert {"index", "type", "data", "ttl", "timestamp"} <= values[1].keys()
    assert values[100]["type"] == "HS_ADMIN"  # the default admin the manual describes


def test_get_handle_type_filter_with_type_families(http: httpx.Client) -> None:
    """ "type=URL." names the family: URL itself and every URL.<sub>."""
    create(
        http,
        "88.100/C-TYPES",
        URL_1,
        {"index": 2, "type": "URL.mirror", "data": "https://m.example"},
        {"index": 3, "type": "URLX", "data": "x"},
        {"index": 4, "type": "EMAIL", "data": "a@f.example"},
    )
    plain = http.get("/api/handles/88.100/C-TYPES", params={"type": "URL"}).json()
    assert [v["index"] for v in plain["values"]] == [1]
    family = http.get("/api/handles/88.100/C-TYPES", params={"type": "URL."}).json()
    assert [v["index"] for v in family["values"]] == [1, 2]
    both = http.get("/api/handles/88.100/C-TYPES", params=[("type", "URL"), ("type", "EMAIL")])
    assert [v["index"] for v in both.json()["values"]] == [1, 4]


def test_get_handle_index_filter_and_either_filter(http: httpx.Client) -> None:
    create(http, "88.100/C-INDEX", URL_1, {"index": 2, "type": "EMAIL", "data": "a@f.example"})
    by_index = http.get("/api/handles/88.100/C-INDEX", params={"index": "2"}).json()
    assert [v["index"] for v in by_index["values"]] == [2]
    either = http.get("/api/handles/88.100/C-INDEX", params={"index": "2", "type": "URL"}).json()
    assert [v["index"] for v in either["values"]] == [1, 2]


def test_get_handle_public_only(http: httpx.Client) -> None:
    """A value with public read 0 is left out of anonymous answers and of
    ``publicOnly=true``; an authenticated reader holding the read right gets it."""
    create(
        http,
        "88.100/C-PRIV",
        URL_1,
        {"index": 2, "type": "NOTE", "data": "internal", "permissions": "1100"},
    )
    anonymous = http.get("/api/handles/88.100/C-PRIV").json()
    assert [v["index"] for v in anonymous["values"]] == [1, 100]
    admin = http.get("/api/handles/88.100/C-PRIV", auth=ADMIN).json()
    assert [v["index"] for v in admin["values"]] == [1, 2, 100]
    assert admin["values"][1]["permissions"] == "1100"
    public = http.get("/api/handles/88.100/C-PRIV", params={"publicOnly": "true"}, auth=ADMIN)
    assert [v["index"] for v in public.json()["values"]] == [1, 100]


def test_get_handle_not_found_is_404_responsecode_100(http: httpx.Client) -> None:
    answer = http.get("/api/handles/88.100/C-NOBODY")
    assert code(answer) == (404, 100)
    assert answer.json()["handle"] == "88.100/C-NOBODY"


def test_head_answers_get_headers_without_a_body(node: NodeProcess, http: httpx.Client) -> None:
    """HEAD, on the wire (h11 checks a HEAD answer carries no body): GET's status and
    headers, Content-Length the length of GET's body, whether the resolver's fast path
    answers (no query string) or the route (with one)."""
    create(http, "88.100/C-HEAD", URL_1)
    for path, params in (
        ("88.100/C-HEAD", {}),
        ("88.100/C-HEAD", {"index": "1"}),
        ("88.100/C-NONE", {}),
    ):
        got = http.get(f"/api/handles/{path}", params=params)
        head = http.head(f"/api/handles/{path}", params=params)
        assert head.status_code == got.status_code
        assert head.content == b""
        same = {k: v for k, v in got.headers.items() if k != "date"}
        assert {k: v for k, v in head.headers.items() if k != "date"} == same
        assert int(head.headers["content-length"]) == len(got.content)
    metrics = http.get("/metrics").text
    assert 'method="HEAD",route="/api/handles/{handle:path}",status="200"' in metrics


# --- Methods - PUT ---------------------------------------------------------------------------


def test_put_creates_then_overwrites(http: httpx.Client) -> None:
    created = put(http, "88.100/C-PUT", {"values": [URL_1]})
    assert code(created) == (201, 1) and created.json()["handle"] == "88.100/C-PUT"
    again = put(http, "88.100/C-PUT", {"values": [URL_1]}, overwrite="false")
    assert code(again) == (409, 101)
    new_url = {**URL_1, "data": "https://f.example/2"}
    replaced = put(http, "88.100/C-PUT", [new_url])  # overwrite defaults to true for PUT
    assert code(replaced) == (200, 1)
    values = http.get("/api/handles/88.100/C-PUT").json()["values"]
    assert values[0]["data"]["value"] == "https://f.example/2"


def test_put_with_index_adds_or_replaces_only_those_values(http: httpx.Client) -> None:
    create(http, "88.100/C-IDX", URL_1, {"index": 2, "type": "EMAIL", "data": "a@f.example"})
    one = put(
        http, "88.100/C-IDX", [{"index": 2, "type": "EMAIL", "data": "b@f.example"}], index="2"
    )
    assert code(one) == (200, 1)
    various = put(
        http,
        "88.100/C-IDX",
        [{"index": 3, "type": "NOTE", "data": "n"}, {"index": 1, "type": "URL", "data": "u"}],
        index="various",
    )
    assert code(various) == (200, 1)
    values = {
        v["index"]: v["data"]["value"]
        for v in http.get("/api/handles/88.100/C-IDX").json()["values"]
        if v["type"] != "HS_ADMIN"
    }
    assert values == {1: "u", 2: "b@f.example", 3: "n"}
    taken = put(
        http,
        "88.100/C-IDX",
        [{"index": 3, "type": "NOTE", "data": "m"}],
        index="3",
        overwrite="false",
    )
    assert code(taken) == (409, 201)


def test_put_single_value_body(http: httpx.Client) -> None:
    """The manual's PUT entity may be a single value object."""
    answer = put(http, "88.100/C-ONE", URL_1)
    assert code(answer) == (201, 1)
    assert http.get("/api/handles/88.100/C-ONE").json()["values"][0]["type"] == "URL"


def test_put_mint_new_suffix_with_a_stem(http: httpx.Client) -> None:
    answer = put(http, "88.100/lot-", [URL_1], mintNewSuffix="true")
    assert code(answer) == (201, 1)
    minted = answer.json()["handle"]
    assert minted.startswith("88.100/lot-") and minted != "88.100/lot-"
    assert code(http.get(f"/api/handles/{minted}")) == (200, 1)


def test_put_body_naming_another_handle_is_refused(http: httpx.Client) -> None:
    """The reference servlet answers "Mismatched handle" with PROTOCOL_ERROR (4)."""
    answer = put(http, "88.100/C-MISMATCH", {"handle": "88.100/OTHER", "values": [URL_1]})
    assert code(answer) == (400, 4)
    assert code(http.get("/api/handles/88.100/C-MISMATCH")) == (404, 100)


def test_put_ttl_as_an_absolute_iso_date(http: httpx.Client) -> None:
    create(
        http,
        "88.100/C-TTL",
        {**URL_1, "ttl": "2030-01-02T03:04:05Z"},
        {"index": 2, "type": "NOTE", "data": "n", "ttl": 3600},
    )
    values = http.get("/api/handles/88.100/C-TTL").json()["values"]
    assert values[0]["ttl"] == "2030-01-02T03:04:05Z" and values[1]["ttl"] == 3600


# --- Methods - DELETE ------------------------------------------------------------------------


def test_delete_values_by_index_then_the_handle(http: httpx.Client) -> None:
    create(http, "88.100/C-DEL", URL_1, {"index": 2, "type": "NOTE", "data": "n"})
    dropped = http.delete("/api/handles/88.100/C-DEL", params={"index": "2"}, auth=ADMIN)
    assert code(dropped) == (200, 1)
    assert [v["index"] for v in http.get("/api/handles/88.100/C-DEL").json()["values"]] == [1, 100]
    none_there = http.delete("/api/handles/88.100/C-DEL", params={"index": "7"}, auth=ADMIN)
    assert code(none_there) == (400, 200)
    deleted = http.delete("/api/handles/88.100/C-DEL", auth=ADMIN)
    assert code(deleted) == (200, 1) and deleted.json()["handle"] == "88.100/C-DEL"
    assert code(http.get("/api/handles/88.100/C-DEL")) == (404, 100)
    assert code(http.delete("/api/handles/88.100/C-DEL", auth=ADMIN)) == (404, 100)


# --- Methods - GET Prefix (listing handles) ------------------------------------------------


def test_list_handles_with_paging(http: httpx.Client) -> None:
    for i in range(3):
        create(http, f"88.100.7/L-{i}")
    every = http.get("/api/handles", params={"prefix": "88.100.7"}, auth=ADMIN)
    assert code(every) == (200, 1)
    body = every.json()
    assert sorted(body["handles"]) == ["88.100.7/L-0", "88.100.7/L-1", "88.100.7/L-2"]
    assert int(body["totalCount"]) == 3
    page = http.get(
        "/api/handles", params={"prefix": "88.100.7", "page": "1", "pageSize": "2"}, auth=ADMIN
    ).json()
    assert (page["page"], page["pageSize"], len(page["handles"])) == (1, 2, 1)
    counted = http.get(
        "/api/handles", params={"prefix": "88.100.7", "pageSize": "0"}, auth=ADMIN
    ).json()
    assert int(counted["totalCount"]) == 3 and counted["handles"] == []


def test_listing_needs_the_list_right(http: httpx.Client) -> None:
    answer = http.get("/api/handles", params={"prefix": "88.100.7"})
    assert answer.status_code == 401 and answer.json()["responseCode"] == 402


# --- Authentication --------------------------------------------------------------------------


def test_basic_authentication(http: httpx.Client) -> None:
    """Basic with ``<index>:<handle>`` as user name and its secret."""
    wrong = put(http, "88.100/C-AUTH", [URL_1], auth=("300:0.NA/88.100", "wrong"))
    assert code(wrong) == (401, 402)
    nobody = put(http, "88.100/C-AUTH", [URL_1], auth=None)
    assert code(nobody) == (401, 402)
    assert code(put(http, "88.100/C-AUTH", [URL_1])) == (201, 1)


def handle_authorization(session_id: str, **fields: str) -> dict[str, str]:
    params = ", ".join(f'{k}="{v}"' for k, v in {"sessionId": session_id, **fields}.items())
    return {"Authorization": f"Handle {params}"}


def test_sessions_with_an_ed25519_key(http: httpx.Client) -> None:
    """POST /api/sessions, PUT/GET/DELETE /api/sessions/this. Difference from Handle:
    the key is Ed25519 (or SM2) instead of RSA/DSA, signed over the server nonce's
    bytes followed by the client nonce's."""
    private, public = generate(Algorithm.ED25519)
    device = "88.100/devices/c-ed"
    create(http, device, {"index": 300, "type": "HS_PUBKEY", "data": public})
    grant = {
        "index": 101,
        "type": "HS_ADMIN",
        "data": {
            "format": "admin",
            "value": {"handle": device, "index": 300, "permissions": "registrar"},
        },
    }
    assert code(put(http, "0.NA/88.100", [grant], index="101"))[0] == 200

    opened = http.post("/api/sessions")
    assert opened.status_code == 201 and opened.json()["authenticated"] is False
    session_id, nonce = opened.json()["sessionId"], opened.json()["nonce"]
    cnonce = secrets.token_bytes(16)
    signature = bytes.fromhex(sign(private, base64.b64decode(nonce) + cnonce))
    answer = http.put(
        "/api/sessions/this",
        headers=handle_authorization(
            session_id,
            id=quote(f"300:{device}", safe=""),
            type="HS_PUBKEY",
            alg="Ed25519",
            cnonce=base64.b64encode(cnonce).decode(),
            signature=base64.b64encode(signature).decode(),
        ),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["authenticated"] is True and answer.json()["id"] == f"300:{device}"

    shown = http.get("/api/sessions/this", headers=handle_authorization(session_id))
    assert shown.status_code == 200 and shown.json()["id"] == f"300:{device}"
    wrote = http.put(
        "/api/handles/88.100/C-SESSION", json=[URL_1], headers=handle_authorization(session_id)
    )
    assert wrote.status_code == 201, wrote.text
    ended = http.delete("/api/sessions/this", headers=handle_authorization(session_id))
    assert ended.status_code == 204
    after = http.get("/api/sessions/this", headers=handle_authorization(session_id))
    assert after.status_code == 401  # difference: an unknown session is 401, not 403


def test_hs_seckey_challenge_response_is_refused(http: httpx.Client) -> None:
    """Difference from Handle: ``type="HS_SECKEY"`` digests are refused, since a node
    keeps only scrypt hashes of secrets; a secret authenticates a session with Basic."""
    session_id = http.post("/api/sessions").json()["sessionId"]
    answer = http.put(
        "/api/sessions/this",
        headers=handle_authorization(
            session_id,
            id=quote("300:0.NA/88.100", safe=""),
            type="HS_SECKEY",
            alg="SHA256",
            cnonce=base64.b64encode(b"c" * 16).decode(),
            signature=base64.b64encode(b"x").decode(),
        ),
    )
    assert answer.status_code in (400, 401, 403) and answer.json()["responseCode"] != 1
    basic = http.put("/api/sessions/this", params={"sessionId": session_id}, auth=ADMIN)
    assert basic.status_code == 200 and basic.json()["authenticated"] is True


# --- Response codes ---------------------------------------------------------------------------


def test_response_codes(http: httpx.Client) -> None:
    """1 success, 4 unreadable body or one of the wrong JSON shape, 100 not found, 101
    exists, 102 invalid handle, 200 values not found, 202 invalid value, 301 not homed
    here, 402 authentication needed, 401 insufficient permissions (a read-only value).
    2 (server error): test_response_code_2_when_the_server_fails."""
    create(http, "88.100/C-CODES")
    assert code(http.get("/api/handles/88.100/C-CODES")) == (200, 1)
    bad_json = http.put("/api/handles/88.100/C-CODES", content=b"{not json", auth=ADMIN)
    assert code(bad_json) == (400, 4)
    assert code(http.get("/api/handles/88.100/C-NONE")) == (404, 100)
    assert code(put(http, "88.100/C-CODES", [URL_1], overwrite="false")) == (409, 101)
    assert code(http.get("/api/handles/88.100"))[1] == 102
    gone = http.delete("/api/handles/88.100/C-CODES", params={"index": "9"}, auth=ADMIN)
    assert code(gone) == (400, 200)
    missing_data = put(http, "88.100/C-CODES", [{"index": 1, "type": "URL"}])
    assert code(missing_data) == (400, 4)  # a body of the wrong shape: PROTOCOL_ERROR
    assert code(put(http, "88.100/C-CODES", {"values": "nope"})) == (400, 4)
    not_base64 = {"index": 1, "type": "URL", "data": {"format": "base64", "value": "%%"}}
    assert code(put(http, "88.100/C-CODES", [not_base64])) == (400, 202)
    elsewhere = http.get("/api/handles/21.T14999/X")
    assert elsewhere.json()["responseCode"] == 301
    assert code(put(http, "88.100/C-CODES", [URL_1], auth=None)) == (401, 402)


# --- Value formats and per-value permissions --------------------------------------------------


def test_value_formats(http: httpx.Client) -> None:
    """string, base64, hex (returned as string when printable, base64 otherwise, as
    Handle does), admin, vlist and site. ``key`` takes RSA/DSA keys in Handle's JSON form
    (test_key_format_round_trip_and_login); ``sm2:``/``ed25519:`` text in HS_PUBKEY
    values are login keys too (a difference)."""
    values = [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://f.example"}},
        {"index": 2, "type": "BLOB", "data": {"format": "base64", "value": "AAEC/w=="}},
        {"index": 3, "type": "TEXT", "data": {"format": "hex", "value": "68656c6c6f"}},
        {
            "index": 4,
            "type": "HS_VLIST",
            "data": {"format": "vlist", "value": [{"handle": "0.NA/88.100", "index": 300}]},
        },
        {
            "index": 100,
            "type": "HS_ADMIN",
            "data": {
                "format": "admin",
                "value": {"handle": "0.NA/88.100", "index": 300, "permissions": "011111110011"},
            },
        },
    ]
    create(http, "88.100/C-FORMATS", *values)
    got = {
        v["index"]: v["data"] for v in http.get("/api/handles/88.100/C-FORMATS").json()["values"]
    }
    assert got[1] == values[0]["data"] and got[2] == values[1]["data"]
    assert got[3] == {"format": "string", "value": "hello"}
    assert got[4]["format"] == "vlist" and got[4]["value"][0]["index"] == 300
    assert got[100]["format"] == "admin"
    assert got[100]["value"]["permissions"] == "011111110011"


def test_secret_keys_are_never_returned(http: httpx.Client) -> None:
    """Difference from Handle: an HS_SECKEY is stored as an scrypt hash and left out of
    every answer, even to its administrator."""
    create(http, "88.100/users/c-alice", {"index": 300, "type": "HS_SECKEY", "data": "pw"})
    for auth in (None, ADMIN):
        body = http.get("/api/handles/88.100/users/c-alice", auth=auth).json()
        assert all(v["type"] != "HS_SECKEY" for v in body["values"])


def test_per_value_permissions(http: httpx.Client) -> None:
    """``permissions`` is adminRead adminWrite publicRead publicWrite, read from the
    right (a shorter string leaves the leading bits at 1). Admin write 0 makes a value
    read-only: nobody may change it (Handle's server: INSUFFICIENT_PERMISSIONS, 401),
    though it may be removed. Public write 1 is refused: nodes take no anonymous writes."""
    create(
        http,
        "88.100/C-PERMS",
        URL_1,
        {"index": 2, "type": "NOTE", "data": "fixed", "permissions": "010"},
        {"index": 3, "type": "NOTE", "data": "hidden", "permissions": "00"},
    )
    admin_view = {
        v["index"]: v for v in http.get("/api/handles/88.100/C-PERMS", auth=ADMIN).json()["values"]
    }
    assert admin_view[2]["permissions"] == "1010" and admin_view[3]["permissions"] == "1100"
    changed = put(http, "88.100/C-PERMS", [{"index": 2, "type": "NOTE", "data": "new"}], index="2")
    assert code(changed) == (403, 401)
    assert "read-only" in changed.json()["message"]
    removed = http.delete("/api/handles/88.100/C-PERMS", params={"index": "2"}, auth=ADMIN)
    assert code(removed) == (200, 1)
    public_write = put(
        http,
        "88.100/C-PERMS",
        [{"index": 4, "type": "NOTE", "data": "x", "permissions": "1111"}],
        index="4",
    )
    assert code(public_write) == (400, 202)


# --- Value formats: site (HS_SITE) and key (HS_PUBKEY), as Handle writes them --------------


def _rsa_key() -> tuple[rsa.RSAPrivateKey, dict[str, str]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private, key_data(private)


def test_site_format_round_trip(http: httpx.Client) -> None:
    """HS_SITE data in format ``site``: written, then read back in Handle's output shape
    (members in Handle's order; attributes given as an object come back as Handle
    writes them, a list of {name, value}; a server key in format ``key``)."""
    _, key = _rsa_key()
    sent = {
        "servers": [
            {
                "serverId": 1,
                "address": "192.0.2.10",
                "publicKey": {"format": "key", "value": key},
                "interfaces": [
                    {"query": True, "admin": True, "protocol": "TCP", "port": 2641},
                    {"query": True, "admin": False, "protocol": "HTTP", "port": 8000},
                ],
            }
        ],
        "attributes": {"desc": "primary site"},
        "multiPrimary": False,
        "primarySite": True,
        "serialNumber": 3,
        "protocolVersion": "2.10",
        "version": 1,
    }
    create(
        http,
        "88.100/C-SITE",
        {"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": sent}},
    )
    (value,) = [
        v for v in http.get("/api/handles/88.100/C-SITE").json()["values"] if v["index"] == 1
    ]
    assert value["type"] == "HS_SITE" and value["data"]["format"] == "site"
    got = value["data"]["value"]
    handle_shape = {**sent, "attributes": [{"name": "desc", "value": "primary site"}]}
    assert got == handle_shape
    assert list(got) == [
        "version",
        "protocolVersion",
        "serialNumber",
        "primarySite",
        "multiPrimary",
        "attributes",
        "servers",
    ]
    assert list(got["servers"][0]) == ["serverId", "address", "publicKey", "interfaces"]
    refused = put(
        http,
        "88.100/C-SITE",
        [{"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": {"servers": []}}}],
    )
    assert code(refused) == (400, 202)


def test_key_format_round_trip_and_login(http: httpx.Client) -> None:
    """HS_PUBKEY data in format ``key`` (Handle's JSON: kty, then the key's numbers in
    unpadded base64url) reads back as written, ``kty`` upper-cased; and the key logs in
    with a Handle session as a Handle client would: ``alg="SHA256"``, SHA256withRSA
    over the server nonce's bytes followed by the client nonce's."""
    private, key = _rsa_key()
    device = "88.100/devices/c-rsa"
    sent = {"format": "key", "value": {**key, "kty": "rsa"}}
    create(http, device, {"index": 300, "type": "HS_PUBKEY", "data": sent})
    (value,) = [v for v in http.get(f"/api/handles/{device}").json()["values"] if v["index"] == 300]
    assert value["data"] == {"format": "key", "value": key}
    assert list(value["data"]["value"]) == ["kty", "n", "e"]

    opened = http.post("/api/sessions").json()
    cnonce = secrets.token_bytes(16)
    signature = bytes.fromhex(handle_sign(private, base64.b64decode(opened["nonce"]) + cnonce))
    answer = http.put(
        "/api/sessions/this",
        headers=handle_authorization(
            opened["sessionId"],
            id=quote(f"300:{device}", safe=""),
            type="HS_PUBKEY",
            alg="SHA256",
            cnonce=base64.b64encode(cnonce).decode(),
            signature=base64.b64encode(signature).decode(),
        ),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["authenticated"] is True and answer.json()["id"] == f"300:{device}"


# --- responseCode 2: the server failed -------------------------------------------------------


def test_response_code_2_when_the_server_fails(tmp_path: Path) -> None:
    """Handle answers ERROR (2) when the server itself fails. A node's store going away
    is that case: reads and writes it cannot do are answered responseCode 2 with HTTP
    503 (Service Unavailable: the request may be repeated later; Handle's servlet uses
    500), the body naming the handle. (Recovery: tests/server/test_store_supervision.py.)"""
    store = EmbeddedRedis(tmp_path / "redis")
    url = store.start()
    node = NodeProcess(tmp_path / "node", "--redis-url", url, "--local-cache-ttl", "0")
    node.start()
    try:
        with httpx.Client(base_url=node.url, timeout=15) as client:
            assert code(put(client, "88.100/C-ERR", [URL_1])) == (201, 1)
            store.stop()
            for answer in (
                client.get("/api/handles/88.100/C-ERR"),  # the resolver's fast path
                client.get("/api/handles/88.100/C-ERR", params={"type": "URL"}),  # the route
                put(client, "88.100/C-ERR2", [URL_1]),
            ):
                assert code(answer) == (503, 2), answer.text
                body = answer.json()
                assert body["handle"] in ("88.100/C-ERR", "88.100/C-ERR2") and body["message"]
            assert code(client.get("/api/handles/88.100/C-NONE")) == (503, 2)  # not a 404
    finally:
        node.stop()
        store.stop()
