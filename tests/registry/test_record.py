"""registry.record: write planning and pre-encoded record bodies."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.errors import (
    HandleExists,
    HandleNotFound,
    InvalidHandle,
    InvalidValue,
    MalformedRequest,
    ValueExists,
    ValueReadOnly,
    ValuesNotFound,
)
from registry.identifier import Handle, Identity
from registry.limits import Limits
from registry.record import (
    HandleRecord,
    current_body,
    encode_values,
    mint_stem,
    plan_remove,
    plan_replace,
    plan_update,
    read_only_changes,
    rehandled,
    select,
    sent_indexes,
    values_in_body,
)
from registry.value import DEFAULT_ADMIN_PERMISSIONS, AdminRef, DataFormat, HandleValue
from tests.registry.strategies import fast, handle_and_case_variant

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-06-01T00:00:00Z"
LIMITS = Limits()
WRITER = Identity.parse("300:0.NA/88.100")
HANDLE = Handle.parse("88.100/Doc-1")
ADMIN_DATA = {
    "format": "admin",
    "value": {"handle": "0.NA/88.100", "index": 200, "permissions": "111111111111"},
}


def val(
    index: int, type_: str = "URL", data: Any = "https://example.com", now: str = NOW
) -> HandleValue:
    return HandleValue.from_input(
        {"index": index, "type": type_, "data": data}, now=now, limits=LIMITS
    )


def record(*values: HandleValue, handle: Handle = HANDLE) -> HandleRecord:
    return HandleRecord(handle, tuple(sorted(values, key=lambda v: v.index)))


def indexes(rec: HandleRecord) -> list[int]:
    return [v.index for v in rec.values]


def replace(existing: HandleRecord | None, values: list[HandleValue], **kw: Any) -> HandleRecord:
    kw.setdefault("overwrite", True)
    kw.setdefault("limits", LIMITS)
    return plan_replace(existing, kw.pop("handle", HANDLE), values, writer=WRITER, now=LATER, **kw)


def update(
    existing: HandleRecord | None, values: list[HandleValue], at: set[int], **kw: Any
) -> HandleRecord:
    kw.setdefault("overwrite", True)
    kw.setdefault("limits", LIMITS)
    handle = kw.pop("handle", HANDLE)
    return plan_update(existing, handle, values, frozenset(at), writer=WRITER, now=LATER, **kw)


# --- plan_replace ------------------------------------------------------------------------


def test_replace_new_handle_adds_default_admin_naming_the_writer() -> None:
    rec = replace(None, [val(1)], overwrite=False)
    assert rec.handle == HANDLE
    assert indexes(rec) == [1, 100]
    admin = rec.value_at(100)
    assert admin is not None
    assert admin.type == "HS_ADMIN"
    assert admin.format is DataFormat.ADMIN
    assert admin.value == AdminRef("0.NA/88.100", 300, DEFAULT_ADMIN_PERMISSIONS)
    assert admin.timestamp == LATER
    assert admin.ttl == LIMITS.default_ttl


def test_replace_with_no_values_holds_only_the_default_admin() -> None:
    rec = replace(None, [])
    assert [(v.index, v.type) for v in rec.values] == [(100, "HS_ADMIN")]


@pytest.mark.parametrize("admin_type", ["HS_ADMIN", "hs_admin"])
def test_replace_with_an_admin_adds_no_default(admin_type: str) -> None:
    rec = replace(None, [val(1), val(7, admin_type, ADMIN_DATA)])
    assert indexes(rec) == [1, 7]
    admin = rec.value_at(7)
    assert admin is not None
    assert admin.value == AdminRef("0.NA/88.100", 200, "111111111111")


@pytest.mark.parametrize(
    ("taken", "admin_index"),
    [({1}, 100), ({100}, 101), ({100, 101}, 102), ({99, 100, 102}, 101), ({101}, 100)],
)
def test_default_admin_takes_the_first_free_index_from_100(
    taken: set[int], admin_index: int
) -> None:
    rec = replace(None, [val(i) for i in sorted(taken)])
    admin = rec.value_at(admin_index)
    assert admin is not None and admin.type == "HS_ADMIN"
    assert len(rec.values) == len(taken) + 1


def test_replace_existing_without_overwrite_is_refused() -> None:
    existing = record(val(1))
    with pytest.raises(HandleExists) as info:
        replace(existing, [val(2)], overwrite=False)
    err = info.value
    assert (err.response_code, err.http_status) == (101, 409)
    assert err.handle == HANDLE.text
    assert "already exists" in err.message


def test_replace_existing_with_overwrite_replaces_every_value() -> None:
    existing = record(val(1), val(2, "EMAIL", "a@b"), val(100, "HS_ADMIN", ADMIN_DATA))
    rec = replace(existing, [val(5, "URL", "https://new")])
    assert indexes(rec) == [5, 100]
    new = rec.value_at(5)
    assert new is not None and new.value == "https://new"
    # The old admin went with the old values; the writer is the new default admin.
    admin = rec.value_at(100)
    assert admin is not None
    assert admin.value == AdminRef("0.NA/88.100", 300, DEFAULT_ADMIN_PERMISSIONS)


def test_existing_handle_keeps_its_original_spelling() -> None:
    existing = record(val(1), handle=Handle.parse("88.100/Doc-1"))
    variant = Handle.parse("88.100/DOC-1")
    assert replace(existing, [val(2)], handle=variant).handle.text == "88.100/Doc-1"
    assert update(existing, [val(2)], {2}, handle=variant).handle.text == "88.100/Doc-1"
    assert plan_remove(existing, variant, frozenset({1})).handle.text == "88.100/Doc-1"


def test_new_handle_takes_the_spelling_it_was_sent_with() -> None:
    assert replace(None, [val(1)], handle=Handle.parse("88.100/DOC-1")).handle.text == (
        "88.100/DOC-1"
    )


def test_replace_refuses_duplicate_indexes() -> None:
    with pytest.raises(InvalidValue, match="index 1 appears more than once"):
        replace(None, [val(1), val(2), val(1, "EMAIL", "a@b")])


def test_replace_sorts_values_by_index() -> None:
    rec = replace(None, [val(9), val(3), val(200, "HS_ADMIN", ADMIN_DATA), val(1)])
    assert indexes(rec) == [1, 3, 9, 200]


def test_replace_respects_max_values_per_handle_counting_the_default_admin() -> None:
    limits = Limits(max_values_per_handle=3)
    assert len(replace(None, [val(1), val(2)], limits=limits).values) == 3
    with pytest.raises(InvalidValue) as info:
        replace(None, [val(1), val(2), val(3)], limits=limits)
    assert "at most 3 values" in info.value.message
    assert "would hold 4" in info.value.message
    assert info.value.handle == HANDLE.text


# --- plan_update -------------------------------------------------------------------------


def test_update_missing_handle_creates_it_with_default_admin() -> None:
    rec = update(None, [val(1)], {1}, overwrite=False)
    assert indexes(rec) == [1, 100]
    admin = rec.value_at(100)
    assert admin is not None
    assert admin.value == AdminRef("0.NA/88.100", 300, DEFAULT_ADMIN_PERMISSIONS)


def test_update_replaces_listed_values_and_keeps_the_rest() -> None:
    existing = record(val(1), val(2, "EMAIL", "a@b"), val(100, "HS_ADMIN", ADMIN_DATA))
    rec = update(existing, [val(2, "EMAIL", "new@b", now=LATER)], {2}, overwrite=True)
    assert indexes(rec) == [1, 2, 100]
    assert rec.value_at(1) == existing.value_at(1)
    assert rec.value_at(100) == existing.value_at(100)
    changed = rec.value_at(2)
    assert changed is not None
    assert (changed.value, changed.timestamp) == ("new@b", LATER)


def test_update_adds_values_at_free_indexes_without_overwrite() -> None:
    existing = record(val(1), val(100, "HS_ADMIN", ADMIN_DATA))
    rec = update(existing, [val(3, "EMAIL", "a@b"), val(2)], {2, 3}, overwrite=False)
    assert indexes(rec) == [1, 2, 3, 100]


def test_update_of_existing_handle_adds_no_second_admin() -> None:
    existing = record(val(1))  # even a record without any admin
    rec = update(existing, [val(2)], {2})
    assert indexes(rec) == [1, 2]


def test_update_without_overwrite_on_taken_index_is_refused() -> None:
    existing = record(val(1), val(2), val(100, "HS_ADMIN", ADMIN_DATA))
    with pytest.raises(ValueExists) as info:
        update(existing, [val(2), val(3), val(1)], {1, 2, 3}, overwrite=False)
    err = info.value
    assert (err.response_code, err.http_status) == (201, 409)
    assert "[1, 2]" in err.message
    assert err.handle == HANDLE.text


def test_update_refuses_values_not_among_the_indexes() -> None:
    with pytest.raises(InvalidValue) as info:
        update(record(val(1)), [val(1), val(4), val(2)], {1})
    assert "values at indexes [2, 4] are not among the 'index' parameters [1]" in (
        info.value.message
    )
    assert info.value.handle == HANDLE.text


def test_update_refuses_duplicate_indexes() -> None:
    with pytest.raises(InvalidValue, match="appears more than once"):
        update(record(val(1)), [val(2), val(2, "EMAIL", "a@b")], {2})


def test_update_respects_max_values_per_handle() -> None:
    limits = Limits(max_values_per_handle=2)
    existing = record(val(1), val(2))
    # Replacing in place stays within the limit ...
    assert indexes(update(existing, [val(2, "EMAIL", "x")], {2}, limits=limits)) == [1, 2]
    # ... adding a third value does not.
    with pytest.raises(InvalidValue, match="at most 2 values"):
        update(existing, [val(3)], {3}, limits=limits)


def test_update_result_is_sorted() -> None:
    existing = record(val(5), val(100, "HS_ADMIN", ADMIN_DATA))
    assert indexes(update(existing, [val(7), val(1)], {1, 7})) == [1, 5, 7, 100]


# --- plan_remove -------------------------------------------------------------------------


def test_remove_from_missing_handle_is_not_found() -> None:
    with pytest.raises(HandleNotFound) as info:
        plan_remove(None, HANDLE, frozenset({1}))
    assert (info.value.response_code, info.value.http_status) == (100, 404)
    assert info.value.handle == HANDLE.text


def test_remove_with_no_existing_index_is_values_not_found() -> None:
    existing = record(val(1), val(2))
    with pytest.raises(ValuesNotFound) as info:
        plan_remove(existing, HANDLE, frozenset({3, 4}))
    assert (info.value.response_code, info.value.http_status) == (200, 400)
    assert "[3, 4]" in info.value.message
    assert info.value.handle == HANDLE.text


def test_remove_drops_the_existing_indexes_and_ignores_missing_ones() -> None:
    existing = record(val(1), val(2), val(100, "HS_ADMIN", ADMIN_DATA))
    rec = plan_remove(existing, HANDLE, frozenset({2, 99}))
    assert indexes(rec) == [1, 100]
    assert rec.value_at(1) == existing.value_at(1)


def test_remove_of_every_value_leaves_an_empty_record() -> None:
    existing = record(val(1))
    assert plan_remove(existing, HANDLE, frozenset({1})).values == ()


# --- read-only values (admin write 0) ----------------------------------------------------


def frozen(
    index: int = 2, data: str = "https://x.example/fixed", perms: str = "1010"
) -> HandleValue:
    return HandleValue.from_input(
        {"index": index, "type": "URL", "data": data, "permissions": perms}, now=NOW, limits=LIMITS
    )


@pytest.mark.parametrize(
    "change",
    [
        frozen(data="https://example.com/other"),  # other data
        frozen(perms="1110"),  # its permissions, admin write back to 1
        frozen(perms="1000"),
        val(2),  # a plain value at its index
    ],
)
def test_a_read_only_value_cannot_be_changed_by_update_or_replace(change: HandleValue) -> None:
    existing = record(val(1), frozen())
    with pytest.raises(ValueReadOnly) as info:
        update(existing, [change], {2})
    assert (info.value.response_code, info.value.http_status) == (401, 403)
    assert "[2]" in info.value.message and "read-only" in info.value.message
    with pytest.raises(ValueReadOnly):
        replace(existing, [val(1), change])


def test_a_read_only_value_may_be_sent_again_unchanged_or_removed() -> None:
    existing = record(val(1), frozen())
    assert update(existing, [frozen()], {2}).value_at(2) == existing.value_at(2)
    assert indexes(replace(existing, [val(1, data="https://example.com/new")])) == [1, 100]
    assert indexes(plan_remove(existing, HANDLE, frozenset({2}))) == [1]
    # values beside it change freely
    changed = update(existing, [val(1, data="https://example.com/new")], {1})
    assert changed.value_at(2) == existing.value_at(2)


def test_read_only_changes_names_only_changed_read_only_indexes() -> None:
    existing = record(frozen(2), frozen(3, perms="0000"), val(4))
    after = [frozen(2), frozen(3, data="x"), val(4, data="y")]
    assert read_only_changes(existing, after) == [3]
    assert read_only_changes(None, after) == []
    assert read_only_changes(record(val(2)), [val(2, data="z")]) == []


def test_update_without_overwrite_still_answers_value_exists_first() -> None:
    with pytest.raises(ValueExists):
        update(record(frozen()), [frozen(data="z")], {2}, overwrite=False)


# --- bodies ------------------------------------------------------------------------------


SECRET = val(300, "HS_SECKEY", "scrypt$16384$8$1$c2FsdA==$ZGlnZXN0")


def test_public_body_is_the_resolution_answer() -> None:
    rec = record(val(1), val(100, "HS_ADMIN", ADMIN_DATA))
    assert orjson.loads(rec.public_body()) == {
        "responseCode": 1,
        "handle": "88.100/Doc-1",
        "values": [v.to_json() for v in rec.values],
    }
    assert rec.public_body().startswith(b'{"responseCode":1,"handle":"88.100/Doc-1","values":[')


@pytest.mark.parametrize("secret_type", ["HS_SECKEY", "hs_seckey"])
def test_public_body_hides_secret_keys_and_full_body_keeps_them(secret_type: str) -> None:
    secret = val(300, secret_type, "scrypt$16384$8$1$c2FsdA==$ZGlnZXN0")
    rec = record(val(1), secret)
    public = orjson.loads(rec.public_body())
    assert [v["index"] for v in public["values"]] == [1]
    assert b"scrypt" not in rec.public_body()
    full = rec.full_body()
    assert full is not None
    assert [v["index"] for v in orjson.loads(full)["values"]] == [1, 300]
    assert HandleRecord.decode(full) == rec
    assert HandleRecord.decode(rec.public_body()) == record(val(1))


def test_full_body_is_none_when_every_value_is_public() -> None:
    assert record(val(1), val(100, "HS_ADMIN", ADMIN_DATA)).full_body() is None
    assert record().full_body() is None


def test_decode_inverts_public_body() -> None:
    rec = record(
        val(1),
        val(2, "BIN", {"format": "base64", "value": "aGVsbG8="}),
        val(3, "BIN", {"format": "hex", "value": "00ff"}),
        val(4, "NOTE", 'quote " backslash \\ 日本'),
        val(100, "HS_ADMIN", ADMIN_DATA),
        handle=Handle.parse("0.NA/88.100.1"),
    )
    assert HandleRecord.decode(rec.public_body()) == rec


def test_encode_values_matches_public_body() -> None:
    rec = record(val(1), val(2))
    assert encode_values(rec.handle.text, rec.values) == rec.public_body()


def test_value_at() -> None:
    rec = record(val(1), val(7, "EMAIL", "a@b"))
    assert rec.value_at(7) == val(7, "EMAIL", "a@b")
    assert rec.value_at(2) is None


# --- rehandled ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("88.100/Doc-1", "88.100/DOC-1"),
        ("88.100/Doc-1", "88.100/doc-1"),
        ('88.100/A"b\\C日本', '88.100/a"B\\c日本'),
        ("88.100/X", "88.100/X"),
    ],
)
def test_rehandled_swaps_in_the_asked_spelling(stored: str, asked: str) -> None:
    values = (val(1), SECRET)
    rec = HandleRecord(Handle.parse(stored), values)
    public = rec.public_body()
    full = rec.full_body()
    assert full is not None
    assert rehandled(public, asked) == encode_values(asked, (val(1),))
    assert rehandled(full, asked) == encode_values(asked, values)
    assert HandleRecord.decode(rehandled(public, asked)).handle.text == asked


@fast
@given(handle_and_case_variant(), st.text(max_size=20))
def test_rehandled_equals_reencoding_for_any_case_variant(pair: tuple[str, str], data: str) -> None:
    stored, asked = pair
    asked_text = Handle.parse(asked).text
    values = (
        HandleValue(1, "URL", DataFormat.STRING, data, 60, NOW),
        HandleValue(2, "HS_SECKEY", DataFormat.STRING, "h", 60, NOW),
    )
    rec = HandleRecord(Handle.parse(stored), values)
    assert rehandled(rec.public_body(), asked_text) == encode_values(asked_text, values[:1])
    full = rec.full_body()
    assert full is not None
    assert rehandled(full, asked_text) == encode_values(asked_text, values)


# --- select ------------------------------------------------------------------------------


VALUES = [val(1, "URL"), val(2, "Email", "a@b"), val(3, "url", "https://b"), val(4, "ÜRL", "x")]


@pytest.mark.parametrize(
    ("at", "types", "expected"),
    [
        ({1}, set(), [1]),
        ({2, 4, 99}, set(), [2, 4]),
        (set(), {"url"}, [1, 3]),
        (set(), {"email"}, [2]),
        ({2}, {"url"}, [1, 2, 3]),  # either filter matches
        (set(), {"Ürl"}, [4]),  # ASCII-lowered type of "ÜRL"
        (set(), {"ürl"}, []),  # non-ASCII letters are not case-folded
        (set(), set(), []),
        ({5}, {"nothing"}, []),
    ],
)
def test_select_by_index_or_type(at: set[int], types: set[str], expected: list[int]) -> None:
    chosen = select(VALUES, frozenset(at), frozenset(types))
    assert [v.index for v in chosen] == expected


FAMILY = [
    val(1, "URL"),
    val(2, "URL.mirror"),
    val(3, "url.Backup.eu"),
    val(4, "URLS"),
    val(5, "EMAIL"),
]


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        ({"url."}, [1, 2, 3]),  # the family: the type itself and every sub-type
        ({"url"}, [1]),  # no period: exactly that type
        ({"url.mirror"}, [2]),
        ({"url.backup."}, [3]),
        ({"url.", "email"}, [1, 2, 3, 5]),
        ({"."}, []),  # only types starting with a period, and there are none
        ({"urls."}, [4]),
    ],
)
def test_select_type_family(types: set[str], expected: list[int]) -> None:
    assert [v.index for v in select(FAMILY, frozenset(), frozenset(types))] == expected


# --- PUT bodies, index=various, minting --------------------------------------------------


ONE = {"index": 1, "type": "URL", "data": "x"}


@pytest.mark.parametrize(
    "body",
    [
        [ONE],
        {"values": [ONE]},
        {"values": [ONE], "handle": "88.100/doc-1", "other": 1},  # same handle, any case
        ONE,  # a single value
    ],
)
def test_values_in_body_accepts_the_manuals_shapes(body: object) -> None:
    assert values_in_body(body, "88.100/Doc-1") == [ONE]


@pytest.mark.parametrize(
    "body",
    [{"values": "nope"}, {"index": 1, "type": "URL"}, "text", 3, None, {"handles": []}],
)
def test_values_in_body_refuses_other_shapes(body: object) -> None:
    with pytest.raises(InvalidValue):
        values_in_body(body, "88.100/a")


@pytest.mark.parametrize("named", ["88.100/b", "88.100/a2", 7, ["88.100/a"]])
def test_values_in_body_refuses_another_handle(named: object) -> None:
    with pytest.raises(MalformedRequest) as refused:
        values_in_body({"handle": named, "values": [ONE]}, "88.100/a")
    assert refused.value.response_code == 4 and refused.value.handle == "88.100/a"


def test_sent_indexes_are_the_values_indexes() -> None:
    assert sent_indexes([val(3), val(1)], "88.100/a") == frozenset({1, 3})
    with pytest.raises(InvalidValue):
        sent_indexes([], "88.100/a")


def test_various_update_keeps_values_not_sent() -> None:
    sent = [val(2, "EMAIL", "a@b")]
    after = update(record(val(1), val(2, "EMAIL", "old@b")), sent, set(sent_indexes(sent, "h")))
    assert indexes(after) == [1, 2] and after.values[1].value == "a@b"


@pytest.mark.parametrize(
    ("spelled", "stem"),
    [("88.100", "88.100/"), ("88.100/", "88.100/"), ("88.100/LOT-", "88.100/LOT-")],
)
def test_mint_stem(spelled: str, stem: str) -> None:
    assert mint_stem(spelled) == stem


@pytest.mark.parametrize("spelled", ["88..x", "", "88..x/a-", "/a"])  # empty segments
def test_mint_stem_refuses_bad_prefixes(spelled: str) -> None:
    with pytest.raises(InvalidHandle):
        mint_stem(spelled)


def test_a_body_stored_with_hex_data_is_answered_as_string_or_base64() -> None:
    legacy = (
        b'{"responseCode":1,"handle":"88.100/A","values":['
        b'{"index":1,"type":"T","data":{"format":"hex","value":"6869"},"ttl":60,'
        b'"timestamp":"2020-01-01T00:00:00Z"},'
        b'{"index":2,"type":"B","data":{"format":"hex","value":"00ff"},"ttl":60,'
        b'"timestamp":"2020-01-01T00:00:00Z"}]}'
    )
    answer = orjson.loads(current_body(legacy))
    assert answer["handle"] == "88.100/A"  # spelled as stored
    assert [v["data"] for v in answer["values"]] == [
        {"format": "string", "value": "hi"},
        {"format": "base64", "value": "AP8="},
    ]
    assert [v["timestamp"] for v in answer["values"]] == ["2020-01-01T00:00:00Z"] * 2
    current = legacy.replace(b"hex", b"string")
    assert current_body(current) is current  # nothing to convert: the same bytes
    quoted = legacy.replace(
        b'"format":"hex","value":"6869"', b'"format":"string","value":"\\"format\\":\\"hex\\""'
    )
    quoted = quoted.replace(b'"format":"hex","value":"00ff"', b'"format":"base64","value":"AP8="')
    assert current_body(quoted) is quoted  # the text of a string value never matches
