"""registry.prefix_entry: what a prefix record (0.NA/<prefix>) says, as handle values."""

from __future__ import annotations

import string
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.errors import InvalidValue
from registry.identifier import Prefix
from registry.prefix_entry import (
    ENTRY_INDEXES,
    FIELDS,
    MAX_FIELD_CHARS,
    PrefixEntry,
    PrefixKind,
    PrefixStatus,
    node_url_problem,
)
from registry.value import AdminRef, DataFormat, HandleValue
from tests.registry.strategies import fast, prefixes

NOW = "2026-01-01T00:00:00Z"
P = Prefix("88.100")
VALID_CODE = "91350100M000100Y43"

FULL = PrefixEntry(
    prefix=P,
    node_url="http://127.0.0.1:8001",
    kind=PrefixKind.SECONDARY,
    industry="automotive",
    owner="Wuhan Auto Parts",
    status=PrefixStatus.SUSPENDED,
    credit_code=VALID_CODE,
    contact="ops@example.com",
    filed_by="300:0.NA/88",
)


def body_of(values: list[dict[str, Any]], handle: str = "0.NA/88.100") -> bytes:
    return orjson.dumps({"responseCode": 1, "handle": handle, "values": values})


# --- values / from_values ---------------------------------------------------------------


def test_fields_use_indexes_one_to_eight() -> None:
    assert ENTRY_INDEXES == frozenset(range(1, 9))
    assert FIELDS["nodeUrl"] == (1, "NODE_URL")
    assert FIELDS["filedBy"] == (8, "FILED_BY")


def test_values_are_one_public_string_value_per_field() -> None:
    values = FULL.values(NOW, 60)
    assert [(v.index, v.type) for v in values] == list(FIELDS.values())
    assert all(v.format is DataFormat.STRING for v in values)
    assert all(v.ttl == 60 and v.timestamp == NOW for v in values)
    assert all(v.is_public for v in values)
    by_type = {v.type: v.value for v in values}
    assert by_type == {
        "NODE_URL": "http://127.0.0.1:8001",
        "PREFIX_KIND": "secondary",
        "INDUSTRY": "automotive",
        "OWNER": "Wuhan Auto Parts",
        "STATUS": "suspended",
        "CREDIT_CODE": VALID_CODE,
        "CONTACT": "ops@example.com",
        "FILED_BY": "300:0.NA/88",
    }


@pytest.mark.parametrize("entry", [FULL, PrefixEntry(P), PrefixEntry(Prefix("88"), node_url="x")])
def test_values_round_trip(entry: PrefixEntry) -> None:
    assert PrefixEntry.from_values(entry.prefix, entry.values(NOW, 0)) == entry


def test_from_values_defaults_for_missing_values() -> None:
    entry = PrefixEntry.from_values(P, [])
    assert entry == PrefixEntry(P)
    assert entry.kind is PrefixKind.ENTERPRISE and entry.status is PrefixStatus.ACTIVE
    assert entry.node_url == ""


def test_from_values_ignores_other_values_and_unknown_enums() -> None:
    values = [
        HandleValue(100, "HS_ADMIN", DataFormat.ADMIN, AdminRef("0.NA/88", 300, "1" * 12), 0, NOW),
        HandleValue(300, "HS_SECKEY", DataFormat.STRING, "secret", 0, NOW),
        HandleValue(2, "PREFIX_KIND", DataFormat.STRING, "bogus", 0, NOW),
        HandleValue(5, "STATUS", DataFormat.STRING, "ACTIVE?", 0, NOW),
        HandleValue(4, "OWNER", DataFormat.STRING, "Acme", 0, NOW),
    ]
    entry = PrefixEntry.from_values(P, values)
    assert entry == PrefixEntry(P, owner="Acme")


def test_to_json_names_every_field_and_the_prefix() -> None:
    assert FULL.to_json() == {
        "prefix": "88.100",
        "nodeUrl": "http://127.0.0.1:8001",
        "kind": "secondary",
        "industry": "automotive",
        "owner": "Wuhan Auto Parts",
        "status": "suspended",
        "creditCode": VALID_CODE,
        "contact": "ops@example.com",
        "filedBy": "300:0.NA/88",
    }
    assert set(FULL.to_json()) == set(FIELDS) | {"prefix"}


def test_signed_sets_filed_by_on_a_copy() -> None:
    entry = PrefixEntry(P)
    signed = entry.signed("300:0.NA/88.100")
    assert signed.filed_by == "300:0.NA/88.100"
    assert entry.filed_by == ""
    assert signed == PrefixEntry(P, filed_by="300:0.NA/88.100")


_field_text = st.text(string.printable.strip() + " 中文", max_size=40)


@fast
@given(
    prefix=prefixes,
    node_url=_field_text,
    kind=st.sampled_from(PrefixKind),
    status=st.sampled_from(PrefixStatus),
    other=st.lists(_field_text, min_size=5, max_size=5),
)
def test_values_and_body_round_trip(
    prefix: str, node_url: str, kind: PrefixKind, status: PrefixStatus, other: list[str]
) -> None:
    industry, owner, credit_code, contact, filed_by = other
    entry = PrefixEntry(
        Prefix(prefix), node_url, kind, industry, owner, status, credit_code, contact, filed_by
    )
    assert PrefixEntry.from_values(entry.prefix, entry.values(NOW, 86400)) == entry
    body = body_of([v.to_json() for v in entry.values(NOW, 86400)])
    assert PrefixEntry.from_body(entry.prefix, body) == entry


# --- from_body --------------------------------------------------------------------------


def test_from_body_reads_this_nodes_answer_including_admin_and_secret_values() -> None:
    values = [v.to_json() for v in FULL.values(NOW, 60)]
    values.append(
        HandleValue(
            100, "HS_ADMIN", DataFormat.ADMIN, AdminRef("0.NA/88", 300, "1" * 12), 0, NOW
        ).to_json()
    )
    assert PrefixEntry.from_body(P, body_of(values)) == FULL


def test_from_body_reads_bare_string_data_as_other_nodes_send_it() -> None:
    body = body_of(
        [
            {"index": 1, "type": "NODE_URL", "data": "http://other:9000"},
            {"index": 2, "type": "PREFIX_KIND", "data": {"value": "secondary"}},
            {"index": 4, "data": {"format": "string", "value": "Owner Ltd"}},
        ]
    )
    entry = PrefixEntry.from_body(P, body)
    assert entry == PrefixEntry(
        P, node_url="http://other:9000", kind=PrefixKind.SECONDARY, owner="Owner Ltd"
    )


@pytest.mark.parametrize(
    "junk",
    [
        "not a value",
        None,
        42,
        [1, 2],
        {"type": "NODE_URL", "data": "http://x"},  # no index
        {"index": "1", "data": "http://x"},  # index as a string
        {"index": 1.0, "data": "http://x"},  # index as a float
        {"index": 1, "data": 7},
        {"index": 1, "data": None},
        {"index": 1, "data": {"value": ["http://x"]}},
        {"index": 1, "data": {"format": "string"}},
        {"index": 1},
    ],
)
def test_from_body_ignores_junk_values(junk: object) -> None:
    body = body_of([junk, {"index": 4, "type": "OWNER", "data": "Acme"}])  # type: ignore[list-item]
    assert PrefixEntry.from_body(P, body) == PrefixEntry(P, owner="Acme")


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"null",
        b'"text"',
        b"{}",
        b'{"values": null}',
        b'{"values": {"1": "http://x"}}',
        b'{"responseCode": 100, "handle": "0.NA/88.100", "message": "Handle not found"}',
    ],
)
def test_from_body_of_other_json_gives_defaults(body: bytes) -> None:
    assert PrefixEntry.from_body(P, body) == PrefixEntry(P)


def test_from_body_unknown_kind_and_status_take_defaults() -> None:
    body = body_of([{"index": 2, "data": "registrar"}, {"index": 5, "data": "revoked"}])
    entry = PrefixEntry.from_body(P, body)
    assert entry.kind is PrefixKind.ENTERPRISE
    assert entry.status is PrefixStatus.ACTIVE


# --- from_input -------------------------------------------------------------------------


def test_from_input_empty_body_takes_defaults() -> None:
    assert PrefixEntry.from_input(P, {}) == PrefixEntry(P)


def test_from_input_full_body_is_normalised() -> None:
    entry = PrefixEntry.from_input(
        P,
        {
            "prefix": "88.100",
            "secret": "s3cret",
            "nodeUrl": "  http://127.0.0.1:8001/  ",
            "kind": "secondary",
            "industry": " automotive ",
            "owner": "Wuhan Auto Parts",
            "status": "suspended",
            "creditCode": VALID_CODE.lower(),
            "contact": "ops@example.com",
        },
    )
    assert entry == PrefixEntry(
        prefix=P,
        node_url="http://127.0.0.1:8001",
        kind=PrefixKind.SECONDARY,
        industry="automotive",
        owner="Wuhan Auto Parts",
        status=PrefixStatus.SUSPENDED,
        credit_code=VALID_CODE,
        contact="ops@example.com",
    )


def test_from_input_never_takes_filed_by_from_the_caller() -> None:
    assert PrefixEntry.from_input(P, {"filedBy": "300:0.NA/88"}).filed_by == ""


@pytest.mark.parametrize("obj", [None, [], "nodeUrl", 5, [("kind", "secondary")]])
def test_from_input_needs_an_object(obj: object) -> None:
    with pytest.raises(InvalidValue, match="JSON object"):
        PrefixEntry.from_input(P, obj)


def test_from_input_rejects_unknown_fields_naming_them() -> None:
    with pytest.raises(InvalidValue, match="unknown fields") as info:
        PrefixEntry.from_input(P, {"owner": "x", "colour": "red", "url": "http://x"})
    assert "'colour'" in info.value.message and "'url'" in info.value.message
    assert "nodeUrl" in info.value.message  # lists the known fields


@pytest.mark.parametrize("name", sorted(FIELDS))
@pytest.mark.parametrize("value", [5, None, True, ["a"], {"a": 1}])
def test_from_input_rejects_non_strings(name: str, value: object) -> None:
    with pytest.raises(InvalidValue, match=f"'{name}' must be a string"):
        PrefixEntry.from_input(P, {name: value})


@pytest.mark.parametrize("name", ["industry", "owner", "contact"])
def test_from_input_field_length_limit(name: str) -> None:
    assert (
        getattr(PrefixEntry.from_input(P, {name: "a" * MAX_FIELD_CHARS}), name)
        == "a" * MAX_FIELD_CHARS
    )
    with pytest.raises(InvalidValue, match=f"'{name}' must be printable, at most"):
        PrefixEntry.from_input(P, {name: "a" * (MAX_FIELD_CHARS + 1)})


@pytest.mark.parametrize("value", ["a\nb", "tab\there", "nul\x00", "bell\x07"])
def test_from_input_rejects_non_printable_text(value: str) -> None:
    with pytest.raises(InvalidValue, match="'owner' must be printable"):
        PrefixEntry.from_input(P, {"owner": value})


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://node.example", "http:// or https://"),
        ("node.example:8000", "http:// or https://"),
        ("//node.example", "http:// or https://"),
        ("http://", "names a host"),
        ("http:///path", "names a host"),
        ("http://node.example/?x=1", "no query or fragment"),
        ("http://node.example#top", "no query or fragment"),
        ("http://node.example:99999", "valid port"),
        ("http://node.example:port", "valid port"),
    ],
)
def test_from_input_rejects_bad_node_urls(url: str, reason: str) -> None:
    with pytest.raises(InvalidValue, match="'nodeUrl'") as info:
        PrefixEntry.from_input(P, {"nodeUrl": url})
    assert reason in info.value.message


@pytest.mark.parametrize("url", ["http://[::1", "http://[zz]:80"])
def test_from_input_rejects_malformed_ipv6_node_urls(url: str) -> None:
    with pytest.raises(InvalidValue, match="'nodeUrl'"):
        PrefixEntry.from_input(P, {"nodeUrl": url})


def test_from_input_reports_why_a_credit_code_is_invalid() -> None:
    with pytest.raises(InvalidValue, match="'creditCode'") as info:
        PrefixEntry.from_input(P, {"creditCode": "91350100M000100Y44"})
    assert "the check character should be '3', got '4'" in info.value.message
    with pytest.raises(InvalidValue, match="has 18 characters"):
        PrefixEntry.from_input(P, {"creditCode": "9135"})


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("kind", "registrar", PrefixKind),
        ("kind", "Secondary", PrefixKind),
        ("status", "revoked", PrefixStatus),
        ("status", "ACTIVE", PrefixStatus),
    ],
)
def test_from_input_rejects_bad_choices_listing_the_allowed_ones(
    name: str, value: str, allowed: type[PrefixKind] | type[PrefixStatus]
) -> None:
    with pytest.raises(InvalidValue, match=f"'{name}' must be one of") as info:
        PrefixEntry.from_input(P, {name: value})
    assert ", ".join(choice.value for choice in allowed) in info.value.message
    assert repr(value) in info.value.message


def test_choices_include_the_documented_kinds_and_statuses() -> None:
    assert {"secondary", "enterprise"} <= {k.value for k in PrefixKind}
    assert [s.value for s in PrefixStatus] == ["active", "suspended"]


@pytest.mark.parametrize("kind", list(PrefixKind))
@pytest.mark.parametrize("status", list(PrefixStatus))
def test_from_input_accepts_every_choice(kind: PrefixKind, status: PrefixStatus) -> None:
    entry = PrefixEntry.from_input(P, {"kind": kind.value, "status": status.value})
    assert entry.kind is kind and entry.status is status


@pytest.mark.parametrize("prefix", ["88.101", "88", "", 88.1, None])
def test_from_input_rejects_a_different_prefix_in_the_body(prefix: object) -> None:
    with pytest.raises(InvalidValue, match="differs from the URL"):
        PrefixEntry.from_input(P, {"prefix": prefix})


def test_from_input_accepts_the_same_prefix_in_the_body() -> None:
    assert PrefixEntry.from_input(P, {"prefix": "88.100"}) == PrefixEntry(P)


def test_invalid_value_is_a_400() -> None:
    with pytest.raises(InvalidValue) as info:
        PrefixEntry.from_input(P, {"kind": "x"})
    assert info.value.http_status == 400 and info.value.response_code == 202


# --- delegates_away_from ----------------------------------------------------------------

OWN = "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("node_url", "own", "expected"),
    [
        ("", OWN, None),
        (OWN, OWN, None),
        (OWN + "/", OWN, None),
        (OWN, OWN + "/", None),
        (OWN + "//", OWN + "/", None),
        ("http://127.0.0.1:8001", OWN, "http://127.0.0.1:8001"),
        ("http://127.0.0.1:8001/", OWN, "http://127.0.0.1:8001"),
        ("http://ent.example/base/", OWN, "http://ent.example/base"),
        ("http://127.0.0.1:8001", "", "http://127.0.0.1:8001"),
    ],
)
def test_delegates_away_from(node_url: str, own: str, expected: str | None) -> None:
    assert PrefixEntry(P, node_url=node_url).delegates_away_from(own) == expected


def test_a_suspended_prefix_is_not_delegated() -> None:
    entry = PrefixEntry(P, node_url="http://127.0.0.1:8001", status=PrefixStatus.SUSPENDED)
    assert entry.delegates_away_from(OWN) is None


# --- node_url_problem -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8001",
        "https://node.example",
        "https://node.example/base/path",
        "http://[::1]:8000",
        "HTTP://node.example",
        "http://localhost:1",
    ],
)
def test_node_url_problem_accepts_node_urls(url: str) -> None:
    assert node_url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "http:// or https://"),
        ("ftp://node.example", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("http://", "names a host"),
        ("https://:8000", "names a host"),
        ("http://h/?a=1", "no query or fragment"),
        ("http://h/#f", "no query or fragment"),
        ("http://h:65536", "valid port"),
        ("http://h:-1", "valid port"),
    ],
)
def test_node_url_problem_says_why(url: str, reason: str) -> None:
    problem = node_url_problem(url)
    assert problem is not None
    assert reason in problem and repr(url) in problem
