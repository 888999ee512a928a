"""registry.value: validating client values and their stored/JSON form."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from registry.errors import InvalidValue, MalformedValue
from registry.limits import Limits
from registry.value import (
    DEFAULT_ADMIN_INDEX,
    DEFAULT_ADMIN_PERMISSIONS,
    MAX_INDEX,
    AdminRef,
    BatchValues,
    DataFormat,
    HandleValue,
    admin_value,
    utc_timestamp,
)

NOW = "2026-01-01T00:00:00Z"
LIMITS = Limits()
ADMIN_DATA = {
    "format": "admin",
    "value": {"handle": "0.NA/88.100", "index": 300, "permissions": "011111110011"},
}


def parse(obj: object, limits: Limits = LIMITS) -> HandleValue:
    return HandleValue.from_input(obj, now=NOW, limits=limits)


def refused(obj: object, limits: Limits = LIMITS) -> str:
    """The message of the InvalidValue ``obj`` is refused with."""
    with pytest.raises(InvalidValue) as info:
        parse(obj, limits)
    assert (info.value.response_code, info.value.http_status) == (202, 400)
    assert not isinstance(info.value, MalformedValue)
    return info.value.message


def malformed(obj: object, limits: Limits = LIMITS) -> str:
    """The message ``obj`` is refused with as a value of the wrong JSON shape (Handle's
    PROTOCOL_ERROR, 4)."""
    with pytest.raises(MalformedValue) as info:
        parse(obj, limits)
    assert (info.value.response_code, info.value.http_status) == (4, 400)
    return info.value.message


def message_of(obj: object) -> str:
    with pytest.raises(InvalidValue) as info:
        parse(obj)
    return info.value.message


# --- data --------------------------------------------------------------------------------


def test_bare_string_data_means_format_string() -> None:
    value = parse({"index": 1, "type": "URL", "data": "https://example.com"})
    assert value.format is DataFormat.STRING
    assert value.value == "https://example.com"
    assert value.to_json()["data"] == {"format": "string", "value": "https://example.com"}


def test_data_object_without_format_means_string() -> None:
    value = parse({"index": 1, "type": "URL", "data": {"value": "x"}})
    assert (value.format, value.value) == (DataFormat.STRING, "x")


def test_full_form_string_data() -> None:
    value = parse({"index": 2, "type": "EMAIL", "data": {"format": "string", "value": "a@b"}})
    assert (value.index, value.type, value.format, value.value) == (
        2,
        "EMAIL",
        DataFormat.STRING,
        "a@b",
    )


@pytest.mark.parametrize("fmt", ["json", "STRING", "Base64", "", "admin2"])
def test_unknown_format_is_named_in_the_error(fmt: str) -> None:
    message = refused({"index": 1, "type": "URL", "data": {"format": fmt, "value": "x"}})
    assert f"unknown data format {fmt!r}" in message
    assert "string, base64, hex, admin" in message
    assert "index 1" in message


@pytest.mark.parametrize("fmt", [None, 5, [], {}])
def test_non_string_format_is_malformed(fmt: object) -> None:
    message = malformed({"index": 1, "type": "URL", "data": {"format": fmt, "value": "x"}})
    assert "data format must be one of string, base64, hex, admin" in message


@pytest.mark.parametrize("data", [None, 5, ["x"], True])
def test_data_must_be_string_or_object(data: object) -> None:
    message = malformed({"index": 3, "type": "URL", "data": data})
    assert "'data' must be a string or {format, value}" in message
    assert "index 3" in message


def test_missing_data_is_malformed() -> None:
    assert "'data'" in malformed({"index": 1, "type": "URL"})


@pytest.mark.parametrize("fmt", ["string", "base64", "hex"])
@pytest.mark.parametrize("raw", [None, 5, {"a": 1}, ["aa"]])
def test_non_admin_value_must_be_a_string(fmt: str, raw: object) -> None:
    message = malformed({"index": 1, "type": "T", "data": {"format": fmt, "value": raw}})
    assert f"format {fmt} must be a string, got" in message


@pytest.mark.parametrize("raw", ["aGVsbG8=", "", "AAEC/w=="])
def test_valid_base64_is_accepted(raw: str) -> None:
    value = parse({"index": 1, "type": "BIN", "data": {"format": "base64", "value": raw}})
    assert (value.format, value.value) == (DataFormat.BASE64, raw)


@pytest.mark.parametrize("raw", ["not base64!", "aGVsbG8", "aGVs bG8=", "é", "-_-_"])
def test_invalid_base64_is_refused(raw: str) -> None:
    message = refused({"index": 1, "type": "BIN", "data": {"format": "base64", "value": raw}})
    assert "not valid base64" in message


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("deadBEEF", {"format": "base64", "value": "3q2+7w=="}),  # not text: base64
        ("00ff", {"format": "base64", "value": "AP8="}),
        ("", {"format": "string", "value": ""}),
        ("68692c20e4b8ad", {"format": "string", "value": "hi, 中"}),  # UTF-8 text: string
        ("610a6209", {"format": "string", "value": "a\nb\t"}),  # line breaks are text
    ],
)
def test_hex_is_returned_in_handles_output_formats(raw: str, shown: dict[str, str]) -> None:
    # Handle keeps a value's bytes, not the format they came in: it writes printable
    # UTF-8 as "string" and anything else as "base64", never "hex".
    value = parse({"index": 1, "type": "BIN", "data": {"format": "hex", "value": raw}})
    assert value.to_json()["data"] == shown
    assert HandleValue.from_stored(orjson.loads(orjson.dumps(value.to_json()))) == value


@pytest.mark.parametrize("raw", ["abc", "zz", "0x00", "é0"])
def test_invalid_hex_is_refused(raw: str) -> None:
    message = refused({"index": 1, "type": "BIN", "data": {"format": "hex", "value": raw}})
    assert "not valid hex" in message


def test_value_byte_limit_counts_utf8_bytes() -> None:
    limits = Limits(max_value_bytes=4)
    assert parse({"index": 1, "type": "T", "data": "abcd"}, limits).value == "abcd"
    assert parse({"index": 1, "type": "T", "data": "éé"}, limits).value == "éé"
    assert "larger than 4 bytes" in refused({"index": 1, "type": "T", "data": "abcde"}, limits)
    # Three characters, five bytes.
    assert "larger than 4 bytes" in refused({"index": 1, "type": "T", "data": "éée"}, limits)


def test_value_byte_limit_applies_to_encoded_formats() -> None:
    limits = Limits(max_value_bytes=4)
    data = {"format": "hex", "value": "001122"}
    assert "larger than 4 bytes" in refused({"index": 1, "type": "T", "data": data}, limits)


# --- admin data --------------------------------------------------------------------------


def test_admin_value_is_parsed_into_an_admin_ref() -> None:
    value = parse({"index": 100, "type": "HS_ADMIN", "data": ADMIN_DATA})
    assert value.format is DataFormat.ADMIN
    assert value.value == AdminRef("0.NA/88.100", 300, "011111110011")
    assert value.to_json()["data"] == ADMIN_DATA


def test_admin_index_may_be_a_numeric_string_as_pyhandle_sends_it() -> None:
    data = {"format": "admin", "value": {"handle": "0.NA/88.100", "index": "300"}}
    value = parse({"index": 100, "type": "HS_ADMIN", "data": data})
    assert value.value == AdminRef("0.NA/88.100", 300, DEFAULT_ADMIN_PERMISSIONS)


@pytest.mark.parametrize(
    ("admin", "problem"),
    [
        ("0.NA/88.100", "needs an object"),
        (None, "needs an object"),
        ({"index": 300}, "needs a 'handle' string"),
        ({"handle": 5, "index": 300}, "needs a 'handle' string"),
        ({"handle": "not-a-handle", "index": 300}, "is not a valid handle"),
        ({"handle": "0.NA/88/x", "index": 300}, "is not a valid handle"),
        ({"handle": "0.NA/88.100"}, "missing its 'index'"),
        ({"handle": "0.NA/88.100", "index": 0}, "between 1 and"),
        ({"handle": "0.NA/88.100", "index": True}, "got a boolean"),
        ({"handle": "0.NA/88.100", "index": "x"}, "must be an integer"),
        ({"handle": "0.NA/88.100", "index": 300, "permissions": "0111111100111"}, "12 characters"),
        ({"handle": "0.NA/88.100", "index": 300, "permissions": "01111111001x"}, "of 0 and 1"),
        ({"handle": "0.NA/88.100", "index": 300, "permissions": "011111110012"}, "of 0 and 1"),
        ({"handle": "0.NA/88.100", "index": 300, "permissions": 11111110011}, "of 0 and 1"),
        ({"handle": "0.NA/88.100", "index": 300, "permissions": None}, "of 0 and 1"),
    ],
)
def test_invalid_admin_data_is_refused(admin: object, problem: str) -> None:
    data = {"format": "admin", "value": admin}
    message = refused({"index": 100, "type": "HS_ADMIN", "data": data})
    assert problem in message


@pytest.mark.parametrize("type_", ["HS_ADMIN", "hs_admin", "Hs_Admin"])
@pytest.mark.parametrize("data", ["0.NA/88.100", {"format": "string", "value": "x"}])
def test_hs_admin_requires_admin_format(type_: str, data: object) -> None:
    message = refused({"index": 100, "type": type_, "data": data})
    assert "HS_ADMIN value needs data format 'admin'" in message


def test_other_types_may_carry_admin_data() -> None:
    value = parse({"index": 7, "type": "HS_VLIST_ENTRY", "data": ADMIN_DATA})
    assert value.format is DataFormat.ADMIN
    assert isinstance(value.value, AdminRef)


@pytest.mark.parametrize(
    ("type_", "admin", "secret", "credential", "key"),
    [("HS_ADMIN", True, False, False, "hs_admin"), ("hs_Admin", True, False, False, "hs_admin"),
     ("HS_SECKEY", False, True, True, "hs_seckey"), ("hs_PubKey", False, False, True, "hs_pubkey"),
     ("URL", False, False, False, "url")],
)  # fmt: skip
def test_type_facts_ignore_ascii_case(
    type_: str, admin: bool, secret: bool, credential: bool, key: str
) -> None:
    data = ADMIN_DATA if admin else "x"
    value = parse({"index": 100, "type": type_, "data": data})
    facts = (value.is_admin, value.is_secret, value.is_key, value.type_key)
    assert facts == (admin, secret, credential, key)
    assert value.is_public is not secret


# --- index and ttl -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"), [(1, 1), ("1", 1), ("42", 42), (MAX_INDEX, MAX_INDEX)]
)
def test_index_accepts_integers_and_numeric_strings(raw: object, expected: int) -> None:
    assert parse({"index": raw, "type": "URL", "data": "x"}).index == expected


@pytest.mark.parametrize("raw", [0, -1, MAX_INDEX + 1, "0", str(MAX_INDEX + 1)])
def test_index_outside_1_to_2_31_minus_1_is_refused(raw: object) -> None:
    message = refused({"index": raw, "type": "URL", "data": "x"})
    assert f"'index' must be between 1 and {MAX_INDEX}" in message


@pytest.mark.parametrize("raw", [True, False])
def test_boolean_index_is_malformed(raw: bool) -> None:
    assert "got a boolean" in malformed({"index": raw, "type": "URL", "data": "x"})


@pytest.mark.parametrize("raw", [1.0, 1.5, "1.0", "", "-1", "+1", "٣", "one", [1], {"i": 1}])
def test_non_integer_index_is_malformed(raw: object) -> None:
    assert "'index' must be an integer" in malformed({"index": raw, "type": "URL", "data": "x"})


def test_missing_index_is_malformed() -> None:
    assert "missing its 'index'" in malformed({"type": "URL", "data": "x"})


def test_huge_numeric_string_index_is_refused_as_invalid_value() -> None:
    refused({"index": "1" * 5000, "type": "URL", "data": "x"})


@pytest.mark.parametrize(("raw", "expected"), [(0, 0), (3600, 3600), ("3600", 3600)])
def test_ttl_accepts_integers_and_numeric_strings(raw: object, expected: int) -> None:
    assert parse({"index": 1, "type": "URL", "data": "x", "ttl": raw}).ttl == expected


def test_missing_ttl_uses_the_configured_default() -> None:
    assert parse({"index": 1, "type": "URL", "data": "x"}, Limits(default_ttl=60)).ttl == 60
    assert parse({"index": 1, "type": "URL", "data": "x", "ttl": None}).ttl == LIMITS.default_ttl


@pytest.mark.parametrize(("raw", "problem"), [(-1, "between 0 and"), (True, "boolean"), ("x", "")])
def test_invalid_ttl_is_refused(raw: object, problem: str) -> None:
    message = refused({"index": 1, "type": "URL", "data": "x", "ttl": raw})
    assert "'ttl'" in message
    assert problem in message


# --- type and shape ----------------------------------------------------------------------


@pytest.mark.parametrize("type_", [None, "", 5, "UR\nL", "\x00"])
def test_type_must_be_a_non_empty_printable_string(type_: object) -> None:
    obj: dict[str, Any] = {"index": 4, "data": "x"}
    if type_ is not None:
        obj["type"] = type_
    message = malformed(obj) if type_ is None or type_ == 5 else refused(obj)
    assert "'type' must be a " in message
    assert "index 4" in message


def test_type_length_limit() -> None:
    limits = Limits(max_type_chars=8)
    assert parse({"index": 1, "type": "A" * 8, "data": "x"}, limits).type == "A" * 8
    assert "longer than 8 chars" in refused({"index": 1, "type": "A" * 9, "data": "x"}, limits)


@pytest.mark.parametrize(
    ("obj", "kind"),
    [([1], "a list"), ("URL", "a string"), (None, "null"), (5, "int")],
)
def test_value_must_be_an_object(obj: object, kind: str) -> None:
    assert f"must be a JSON object, got {kind}" in malformed(obj)


def test_client_timestamp_is_ignored() -> None:
    value = parse({"index": 1, "type": "URL", "data": "x", "timestamp": "1999-01-01T00:00:00Z"})
    assert value.timestamp == NOW


# --- output and storage ------------------------------------------------------------------


def test_to_json_is_the_full_form() -> None:
    value = parse({"index": "1", "type": "URL", "data": "https://x", "ttl": "60"})
    assert value.to_json() == {
        "index": 1,
        "type": "URL",
        "data": {"format": "string", "value": "https://x"},
        "ttl": 60,
        "timestamp": NOW,
    }


@pytest.mark.parametrize(
    "obj",
    [
        {"index": 1, "type": "URL", "data": "https://x"},
        {"index": 2, "type": "BIN", "data": {"format": "base64", "value": "aGVsbG8="}},
        {"index": 3, "type": "BIN", "data": {"format": "hex", "value": "00ff"}, "ttl": 0},
        {"index": 100, "type": "HS_ADMIN", "data": ADMIN_DATA},
        {"index": 300, "type": "HS_SECKEY", "data": "scrypt$..."},
        {"index": 5, "type": "NOTE", "data": '日本語 "quoted"'},
    ],
)
def test_from_stored_inverts_to_json(obj: dict[str, Any]) -> None:
    value = parse(obj)
    assert HandleValue.from_stored(value.to_json()) == value
    assert HandleValue.from_stored(orjson.loads(orjson.dumps(value.to_json()))) == value


def test_from_stored_accepts_a_string_admin_index() -> None:
    stored = parse({"index": 100, "type": "HS_ADMIN", "data": ADMIN_DATA}).to_json()
    stored["data"]["value"]["index"] = "300"
    assert HandleValue.from_stored(stored).value == AdminRef("0.NA/88.100", 300, "011111110011")


@pytest.mark.parametrize(
    ("type_", "public"),
    [
        ("HS_SECKEY", False),
        ("hs_seckey", False),
        ("Hs_SecKey", False),
        ("URL", True),
        ("HS_SECKEY2", True),
        ("HS_PUBKEY", True),
    ],
)
def test_only_secret_keys_are_hidden(type_: str, public: bool) -> None:
    assert parse({"index": 1, "type": type_, "data": "x"}).is_public is public


def test_admin_values_are_public() -> None:
    assert parse({"index": 100, "type": "HS_ADMIN", "data": ADMIN_DATA}).is_public


def test_stamped_changes_only_the_timestamp() -> None:
    value = parse({"index": 1, "type": "URL", "data": "x"})
    later = value.stamped("2026-02-02T00:00:00Z")
    assert later.timestamp == "2026-02-02T00:00:00Z"
    assert later.to_json() | {"timestamp": NOW} == value.to_json()
    assert value.timestamp == NOW


def test_admin_value_names_the_identity_with_default_permissions() -> None:
    value = admin_value("0.NA/88.100", 300, NOW, 60)
    assert value.index == DEFAULT_ADMIN_INDEX == 100
    assert value.type == "HS_ADMIN"
    assert value.format is DataFormat.ADMIN
    assert value.value == AdminRef("0.NA/88.100", 300, DEFAULT_ADMIN_PERMISSIONS)
    assert (value.ttl, value.timestamp) == (60, NOW)
    assert len(DEFAULT_ADMIN_PERMISSIONS) == 12
    assert set(DEFAULT_ADMIN_PERMISSIONS) <= {"0", "1"}
    # What a node adds must pass its own validation.
    assert parse(value.to_json()) == value


# --- utc_timestamp -----------------------------------------------------------------------


def test_utc_timestamp_formats_with_z_and_second_precision() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    assert utc_timestamp(moment) == "2026-03-04T05:06:07Z"


def test_utc_timestamp_defaults_to_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = utc_timestamp()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= parsed <= after


def test_utc_timestamp_converts_other_zones_to_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    assert utc_timestamp(datetime(2026, 1, 1, 12, 0, tzinfo=beijing)) == "2026-01-01T04:00:00Z"


# --- BatchValues: a batch's repeated values parsed once ---------------------------------


def test_a_batch_shares_one_value_per_distinct_input() -> None:
    values = BatchValues(now=NOW, limits=LIMITS)
    sent = {"index": 2, "type": "MANUFACTURER", "data": {"format": "string", "value": "ACME"}}
    first = values.parse(sent)
    assert values.parse(orjson.loads(orjson.dumps(sent))) is first
    assert first == parse(sent)
    # Any field that differs makes another value.
    for changed in (
        {**sent, "index": 3},
        {**sent, "type": "MAKER"},
        {**sent, "data": {"format": "string", "value": "ACME Ltd"}},
        {**sent, "data": {"format": "hex", "value": "acde"}},
        {**sent, "ttl": 60},
        {**sent, "publicRead": False},
        {"index": 2, "type": "MANUFACTURER", "data": "ACME"},  # the same value, bare
    ):
        other = values.parse(changed)
        assert other is not first
        assert other == parse(changed)


URL_X = {"index": 1, "type": "URL", "data": "x"}


@pytest.mark.parametrize(
    ("accepted", "lookalike"),
    [
        (URL_X, {**URL_X, "index": True}),  # True == 1
        (URL_X, {**URL_X, "index": 1.0}),  # 1.0 == 1
        ({**URL_X, "publicRead": True}, {**URL_X, "publicRead": 1}),  # 1 == True
        ({**URL_X, "ttl": 60}, {**URL_X, "ttl": 60.0}),
        ({**URL_X, "data": "5"}, {**URL_X, "data": 5}),
        (
            {**URL_X, "data": {"format": "string", "value": "1"}},
            {**URL_X, "data": {"format": "string", "value": True}},
        ),
        # A bulk load's usual shape, {index, type, data: {format, value}}, has a key of
        # its own: the same exactness.
        (
            {**URL_X, "data": {"format": "string", "value": "x"}},
            {**URL_X, "index": True, "data": {"format": "string", "value": "x"}},
        ),
        (
            {**URL_X, "data": {"format": "string", "value": "x"}},
            {**URL_X, "index": 1.0, "data": {"format": "string", "value": "x"}},
        ),
        (
            {**URL_X, "data": {"format": "string", "value": "x"}},
            {**URL_X, "type": 1, "data": {"format": "string", "value": "x"}},
        ),
    ],
)
def test_a_batch_never_shares_a_value_with_an_input_that_only_compares_equal(
    accepted: dict[str, Any], lookalike: dict[str, Any]
) -> None:
    values = BatchValues(now=NOW, limits=LIMITS)
    assert values.parse(accepted) == parse(accepted)
    with pytest.raises(InvalidValue, match=re.escape(message_of(lookalike))):
        values.parse(lookalike)


@pytest.mark.parametrize(
    "data",
    [
        {"format": "string", "value": "x"},
        {"format": "hex", "value": "acde"},
        {"format": "string", "other": "x"},
        {"value": "x", "ttl": 5},
        {"format": "string", "value": "x", "extra": 1},
        "x",
    ],
)
def test_a_batch_parses_any_data_shape_as_a_value_alone(data: object) -> None:
    sent = {"index": 2, "type": "BATCH", "data": data}
    values = BatchValues(now=NOW, limits=LIMITS)
    try:
        alone = parse(sent)
    except InvalidValue as exc:
        with pytest.raises(type(exc), match=re.escape(exc.message)):
            values.parse(sent)
        return
    assert values.parse(sent) == alone
    assert values.parse(orjson.loads(orjson.dumps(sent))) == alone


def test_a_shared_value_is_encoded_once_as_to_json_says() -> None:
    value = parse({"index": 1, "type": "URL", "data": "https://x", "publicRead": False})
    assert value.encoded() == value.to_json()
    assert value.encoded() is value.encoded()
    assert value.stamped("2027-01-01T00:00:00Z").encoded()["timestamp"] == "2027-01-01T00:00:00Z"


def test_a_batch_says_whether_it_holds_keys() -> None:
    shared, unshared = BatchValues(now=NOW, limits=LIMITS), BatchValues(now=NOW, limits=LIMITS)
    for values in (shared, unshared):
        values.parse({"index": 1, "type": "URL", "data": "https://x"})
        values.parse({"index": "2", "type": "URL", "data": "https://y"})  # not shared
        assert not values.holds_keys
    shared.parse({"index": 300, "type": "hs_pubkey", "data": "ed25519:00"})
    unshared.parse({"index": "300", "type": "HS_SECKEY", "data": "s3cret"})
    assert shared.holds_keys and unshared.holds_keys


# --- Handle's per-value fields: permissions, references, absolute ttl -------------------

URL_Y = {"index": 1, "type": "URL", "data": "https://y"}


@pytest.mark.parametrize(
    ("sent", "public", "admin_read"),
    [
        ({}, True, True),
        ({"permissions": "1110"}, True, True),
        ({"permissions": "1100"}, False, True),
        ({"permissions": "0110"}, True, False),
        ({"permissions": "0100"}, False, False),
        ({"publicRead": False}, False, True),  # the alias
        ({"publicRead": True, "permissions": "1110"}, True, True),  # both, agreeing
        ({"publicRead": False, "permissions": "1100"}, False, True),
    ],
)
def test_permissions_decide_who_reads(sent: dict[str, Any], public: bool, admin_read: bool) -> None:
    value = parse({**URL_Y, **sent})
    assert (value.public, value.is_public, value.admin_read) == (public, public, admin_read)
    assert value.readable_with_auth is (public or admin_read)


def test_permissions_are_returned_only_when_not_the_default_as_handle_does() -> None:
    assert "permissions" not in parse(URL_Y).to_json()
    assert "permissions" not in parse({**URL_Y, "permissions": "1110"}).to_json()
    shown = parse({**URL_Y, "permissions": "1100"}).to_json()
    assert shown["permissions"] == "1100"
    assert "publicRead" not in shown
    assert list(shown) == ["index", "type", "data", "permissions", "ttl", "timestamp"]


@pytest.mark.parametrize(
    ("sent", "problem"),
    [
        ({"permissions": "1111"}, "public write"),
        ({"permissions": "*"}, "public write"),
        ({"permissions": "1"}, "public write"),
        ({"permissions": "01"}, "public write"),
        ({"permissions": ""}, "4 characters of 0 and 1"),
        ({"permissions": "1x"}, "4 characters of 0 and 1"),
        ({"permissions": "11100"}, "4 characters of 0 and 1"),
        ({"permissions": "11x0"}, "4 characters of 0 and 1"),
        ({"permissions": 1110}, "4 characters of 0 and 1"),
        ({"permissions": True}, "4 characters of 0 and 1"),
        ({"publicRead": True, "permissions": "1100"}, "contradicts"),
        ({"publicRead": False, "permissions": "1110"}, "contradicts"),
        ({"publicRead": "no"}, "'publicRead' must be true or false"),
    ],
)
def test_bad_permissions_are_refused(sent: dict[str, Any], problem: str) -> None:
    assert problem in refused({**URL_Y, **sent})


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("0", "1110"),
        ("00", "1100"),
        ("10", "1110"),
        ("010", "1010"),
        ("100", "1100"),
        ("000", "1000"),
    ],
)
def test_short_value_permissions_are_read_from_the_right_as_handle_does(
    sent: str, kept: str
) -> None:
    """Handle's codec reads the last character as publicWrite, the one before as
    publicRead, then adminWrite, adminRead; bits a short string does not reach keep
    their defaults (1, 1, 1, 0)."""
    value = parse({**URL_Y, "permissions": sent})
    assert value.permissions == kept
    assert value.public is (kept[2] == "1")


def test_short_permissions_agree_with_public_read() -> None:
    assert parse({**URL_Y, "publicRead": False, "permissions": "00"}).permissions == "1100"
    assert "contradicts" in refused({**URL_Y, "publicRead": True, "permissions": "00"})


def test_secret_keys_stay_private_whatever_their_permissions_say() -> None:
    value = parse({"index": 300, "type": "HS_SECKEY", "data": "s", "permissions": "1110"})
    assert not value.is_public and not value.readable_with_auth


@pytest.mark.parametrize(
    "stored",
    [
        {**URL_Y, "data": {"format": "string", "value": "x"}, "ttl": 1, "timestamp": NOW},
        {
            **URL_Y,
            "data": {"format": "string", "value": "x"},
            "ttl": 1,
            "timestamp": NOW,
            "publicRead": False,
        },
    ],
)
def test_records_stored_before_permissions_still_load(stored: dict[str, Any]) -> None:
    value = HandleValue.from_stored(stored)
    private = stored.get("publicRead") is False
    assert value.permissions == ("1100" if private else "1110")
    assert value.is_public is not private


def test_references_are_accepted_stored_and_returned() -> None:
    refs = [{"handle": "88.100/other", "index": 2}, {"handle": "0.NA/88.100", "index": "300"}]
    value = parse({**URL_Y, "references": refs})
    shown = value.to_json()
    assert shown["references"] == [
        {"handle": "88.100/other", "index": 2},
        {"handle": "0.NA/88.100", "index": 300},
    ]
    assert HandleValue.from_stored(orjson.loads(orjson.dumps(shown))) == value
    assert "references" not in parse({**URL_Y, "references": []}).to_json()


@pytest.mark.parametrize(
    ("refs", "problem"),
    [
        ("88.100/x", "must be a list"),
        ([["88.100/x", 1]], "must be an object"),
        ([{"index": 1}], "needs a 'handle'"),
        ([{"handle": "no slash", "index": 1}], "not a valid handle"),
        ([{"handle": "88.100/x"}], "needs an 'index'"),
        ([{"handle": "88.100/x", "index": -1}], "needs an 'index'"),
        ([{"handle": "88.100/x", "index": True}], "needs an 'index'"),
    ],
)
def test_bad_references_are_refused(refs: object, problem: str) -> None:
    assert problem in refused({**URL_Y, "references": refs})


@pytest.mark.parametrize(
    ("ttl", "kept"),
    [
        ("2030-01-02T03:04:05Z", "2030-01-02T03:04:05Z"),
        ("2030-01-02T11:04:05+08:00", "2030-01-02T03:04:05Z"),  # to UTC
        ("2030-01-02T03:04:05", "2030-01-02T03:04:05Z"),  # no zone: UTC
        ("2030-01-02T03:04:05.250Z", "2030-01-02T03:04:05Z"),  # seconds, as Handle keeps
        ("3600", 3600),  # digits still mean seconds
    ],
)
def test_ttl_may_be_an_absolute_date(ttl: str, kept: object) -> None:
    value = parse({**URL_Y, "ttl": ttl})
    assert value.ttl == kept and value.to_json()["ttl"] == kept
    assert HandleValue.from_stored(orjson.loads(orjson.dumps(value.to_json()))) == value


@pytest.mark.parametrize(
    ("ttl", "problem"),
    [("tomorrow", "ISO-8601 date"), ("2200-01-01T00:00:00Z", "out of range"), (1.5, "integer")],
)
def test_bad_ttl_is_refused(ttl: object, problem: str) -> None:
    assert problem in refused({**URL_Y, "ttl": ttl})


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("1", "000000000001"),  # Handle reads bits from the right: zeros on the left
        ("110011", "000000110011"),
        ("*", "111111111111"),
    ],
)
def test_short_admin_permissions_are_padded_as_handle_does(sent: str, kept: str) -> None:
    data = {
        "format": "admin",
        "value": {"handle": "0.NA/88.100", "index": 300, "permissions": sent},
    }
    value = parse({"index": 100, "type": "HS_ADMIN", "data": data})
    assert value.to_json()["data"]["value"]["permissions"] == kept


# --- formats vlist, site, key -------------------------------------------------------------

SITE = {
    "version": 1,
    "protocolVersion": "2.10",
    "serialNumber": 1,
    "primarySite": True,
    "multiPrimary": False,
    "attributes": {"desc": "primary site"},
    "servers": [
        {
            "serverId": 1,
            "address": "192.0.2.10",
            "publicKey": {"format": "base64", "value": "AAAA"},
            "interfaces": [
                {"query": True, "admin": True, "protocol": "TCP", "port": 2641},
                {"query": True, "admin": False, "protocol": "HTTP", "port": 8000},
            ],
        }
    ],
}
RSA_KEY = {"kty": "rsa", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri", "e": "AQAB"}


def round_trip(value: HandleValue) -> HandleValue:
    return HandleValue.from_stored(orjson.loads(orjson.dumps(value.to_json())))


def test_vlist_is_a_list_of_value_references() -> None:
    refs = [{"handle": "0.NA/88.100", "index": 300}, {"handle": "88.100/group", "index": "0"}]
    value = parse({"index": 200, "type": "HS_VLIST", "data": {"format": "vlist", "value": refs}})
    assert value.to_json()["data"] == {
        "format": "vlist",
        "value": [{"handle": "0.NA/88.100", "index": 300}, {"handle": "88.100/group", "index": 0}],
    }
    assert round_trip(value) == value


def test_site_is_kept_in_handles_output_form() -> None:
    value = parse({"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": SITE}})
    shown = value.to_json()["data"]["value"]
    assert shown["attributes"] == [{"name": "desc", "value": "primary site"}]  # Handle's list
    assert list(shown) == [
        "version",
        "protocolVersion",
        "serialNumber",
        "primarySite",
        "multiPrimary",
        "attributes",
        "servers",
    ]
    assert shown["servers"] == SITE["servers"]
    assert round_trip(value) == value


def test_key_is_kept_in_handles_output_form() -> None:
    value = parse({"index": 300, "type": "HS_PUBKEY", "data": {"format": "key", "value": RSA_KEY}})
    assert value.to_json()["data"] == {"format": "key", "value": {**RSA_KEY, "kty": "RSA"}}
    assert value.is_key and value.is_public
    assert round_trip(value) == value


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"format": "vlist", "value": "0.NA/88.100:300"}, "vlist data must be a list"),
        ({"format": "vlist", "value": [{"handle": "0.NA/88.100"}]}, "needs an 'index'"),
        ({"format": "site", "value": []}, "site data must be an object"),
        ({"format": "site", "value": {"servers": []}}, "non-empty 'servers'"),
        ({"format": "site", "value": {**SITE, "primarySite": "yes"}}, "true or false"),
        ({"format": "site", "value": {**SITE, "protocolVersion": 2}}, "protocolVersion"),
        (
            {"format": "site", "value": {"servers": [{"address": "host", "interfaces": []}]}},
            "IP 'address'",
        ),
        (
            {"format": "site", "value": {"servers": [{"address": "::1"}]}},
            "'interfaces' list",
        ),
        (
            {
                "format": "site",
                "value": {"servers": [{"address": "::1", "interfaces": [{"protocol": "FTP"}]}]},
            },
            "'protocol'",
        ),
        (
            {
                "format": "site",
                "value": {
                    "servers": [
                        {"address": "::1", "interfaces": [{"protocol": "TCP", "port": 70000}]}
                    ]
                },
            },
            "'port'",
        ),
        ({"format": "key", "value": "sm2:00"}, "must be an object"),
        ({"format": "key", "value": {"kty": "EC", "x": "AA"}}, "'kty' must be one of"),
        ({"format": "key", "value": {"kty": "RSA", "n": "AA"}}, "member 'e'"),
        ({"format": "key", "value": {**RSA_KEY, "n": "not base64!"}}, "member 'n'"),
    ],
)
def test_bad_structured_data_is_refused(data: dict[str, Any], problem: str) -> None:
    assert problem in refused({"index": 5, "type": "X", "data": data})


def test_structured_data_is_bounded_by_the_value_size_limit() -> None:
    refs = [{"handle": f"88.100/item-{i}", "index": 1} for i in range(100)]
    data = {"format": "vlist", "value": refs}
    assert "larger than 1000 bytes" in refused(
        {"index": 5, "type": "HS_VLIST", "data": data}, Limits(max_value_bytes=1000)
    )


def test_batch_values_key_on_permissions_and_skip_references() -> None:
    values = BatchValues(now=NOW, limits=LIMITS)
    public = values.parse({**URL_Y, "ttl": 5})
    private = values.parse({**URL_Y, "ttl": 5, "permissions": "1100"})
    assert public.is_public and not private.is_public
    assert values.parse({**URL_Y, "ttl": 5, "permissions": "1100"}) is private
    refs = {**URL_Y, "ttl": 5, "references": [{"handle": "88.100/a", "index": 1}]}
    assert values.parse(refs).references and not values.parse({**URL_Y, "ttl": 5}).references
