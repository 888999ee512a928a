"""registry.search: value patterns, index entries and result intersection."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.errors import InvalidValue
from registry.identifier import Handle
from registry.index_policy import IndexPolicy
from registry.limits import Limits
from registry.record import HandleRecord
from registry.search import (
    MAX_INDEXED_BYTES,
    SEPARATOR,
    ValuePattern,
    intersect_in_order,
    member,
    search_entries,
    spellings,
    split_member,
)
from registry.value import HandleValue
from tests.registry.strategies import fast, valid_handles

NOW = "2026-01-01T00:00:00Z"


def in_range(member: str | bytes, bounds: tuple[bytes, bytes]) -> bool:
    """Whether ZRANGEBYLEX ``bounds`` include ``member`` (Redis compares its bytes)."""
    raw = member.encode() if isinstance(member, str) else member
    low, high = bounds
    above = low == b"-" or (low.startswith(b"[") and raw >= low[1:])
    below = high == b"+" or (high.startswith(b"[") and raw <= high[1:])
    return above and below


# --- ValuePattern.parse ------------------------------------------------------------------


def test_parse_lower_cases_ascii_in_type_and_pattern() -> None:
    pattern = ValuePattern.parse("URL", "HTTPS://Example.COM/Ä*")
    assert pattern.type_key == "url"
    assert pattern.pattern == "https://example.com/Ä*"


@pytest.mark.parametrize(("type_", "pattern"), [("", "x"), ("URL", ""), ("", "")])
def test_parse_needs_a_type_and_a_pattern(type_: str, pattern: str) -> None:
    with pytest.raises(InvalidValue, match="needs a type and a non-empty value pattern"):
        ValuePattern.parse(type_, pattern)


def test_parse_refuses_nul() -> None:
    with pytest.raises(InvalidValue, match="NUL") as info:
        ValuePattern.parse("URL", "a\x00b")
    assert info.value.response_code == 202


# --- exact -------------------------------------------------------------------------------


def test_exact_pattern() -> None:
    pattern = ValuePattern.parse("URL", "https://Example.com/a")
    assert pattern.is_exact
    assert pattern.head == "https://example.com/a"
    assert pattern.lex_range() == (
        b"[https://example.com/a\x00",
        b"[https://example.com/a\x00\xff",
    )
    assert pattern.matches("https://example.com/a")
    assert not pattern.matches("https://example.com/ab")
    assert not pattern.matches("https://example.com/")


def test_exact_range_holds_the_value_under_any_handle_and_nothing_longer() -> None:
    bounds = ValuePattern.parse("URL", "abc").lex_range()
    assert in_range(member("abc", "88.100/x"), bounds)
    assert in_range(member("abc", "99/日本"), bounds)
    assert not in_range(member("abcd", "88.100/x"), bounds)
    assert not in_range(member("ab", "88.100/x"), bounds)
    assert not in_range(member("abc ", "88.100/x"), bounds)


_values = st.text(
    st.characters(codec="utf-8", exclude_characters=SEPARATOR), min_size=1, max_size=20
)


@fast
@given(_values, _values, valid_handles)
def test_exact_range_holds_exactly_that_value(value: str, other: str, handle: str) -> None:
    pattern = ValuePattern.parse("T", value.replace("*", "x"))
    bounds = pattern.lex_range()
    assert in_range(member(pattern.pattern, handle), bounds)
    if other != pattern.pattern:
        assert not in_range(member(other, handle), bounds)


# --- head wildcard -----------------------------------------------------------------------


def test_head_wildcard_pattern() -> None:
    pattern = ValuePattern.parse("URL", "https://example.com/*")
    assert not pattern.is_exact
    assert pattern.head == "https://example.com/"
    assert pattern.lex_range() == (b"[https://example.com/", b"[https://example.com/\xff")
    assert pattern.matches("https://example.com/")
    assert pattern.matches("https://example.com/a/b?c")
    assert not pattern.matches("http://example.com/a")
    assert not pattern.matches("xhttps://example.com/a")


@fast
@given(_values, _values, valid_handles)
def test_head_range_holds_every_value_starting_with_the_head(
    head: str, rest: str, handle: str
) -> None:
    pattern = ValuePattern.parse("T", head.replace("*", "x") + "*")
    assert in_range(member(pattern.head + rest, handle), pattern.lex_range())
    assert pattern.matches(pattern.head + rest)


# --- leading and middle wildcards --------------------------------------------------------


def test_leading_wildcard_walks_the_whole_set() -> None:
    pattern = ValuePattern.parse("URL", "*example*")
    assert pattern.head == ""
    assert not pattern.is_exact
    assert pattern.lex_range() == (b"-", b"+")
    assert pattern.matches("https://example.com")
    assert pattern.matches("example")
    assert not pattern.matches("https://exampl.com")


def test_leading_wildcard_only_at_the_end() -> None:
    pattern = ValuePattern.parse("URL", "*.pdf")
    assert pattern.matches("report.pdf")
    assert pattern.matches(".pdf")
    assert not pattern.matches("report.pdf.txt")


def test_middle_wildcard() -> None:
    pattern = ValuePattern.parse("URL", "ab*yz")
    assert pattern.head == "ab"
    assert pattern.lex_range() == (b"[ab", b"[ab\xff")
    assert pattern.matches("abyz")
    assert pattern.matches("ab-anything-yz")
    assert not pattern.matches("abyzq")
    assert not pattern.matches("xabyz")
    assert not pattern.matches("ayz")


def test_several_wildcards() -> None:
    pattern = ValuePattern.parse("URL", "a*b*c")
    assert pattern.matches("abc")
    assert pattern.matches("a1b2c")
    assert not pattern.matches("acb")
    assert ValuePattern.parse("URL", "**").matches("")


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("a.b*", "a.bc", "axbc"),
        ("a+b*", "a+b", "aab"),
        ("(x)*", "(x)y", "x"),
        ("[ab]*", "[ab]", "a"),
        ("a?b*", "a?b", "ab"),
        ("^a$*", "^a$", "a"),
        ("a\\d*", "a\\d", "a1"),
    ],
)
def test_regex_metacharacters_are_literal(pattern: str, matching: str, not_matching: str) -> None:
    parsed = ValuePattern.parse("T", pattern)
    assert parsed.matches(matching)
    assert not parsed.matches(not_matching)


def test_wildcard_spans_newlines() -> None:
    assert ValuePattern.parse("NOTE", "first*last").matches("first\nmiddle\nlast")


def test_matching_is_ascii_case_insensitive_on_lowered_keys() -> None:
    pattern = ValuePattern.parse("URL", "HTTPS://EXAMPLE.*")
    assert pattern.matches("https://example.com")
    # Non-ASCII letters keep their case on both sides.
    assert ValuePattern.parse("T", "Ä*").matches("Äx")
    assert not ValuePattern.parse("T", "Ä*").matches("äx")


# --- members -----------------------------------------------------------------------------


def test_member_is_value_nul_handle_and_splits_back() -> None:
    raw = member("https://x", "88.100/Doc")
    assert raw == b"https://x\x0088.100/Doc"
    assert split_member(raw) == ("https://x", "88.100/Doc")
    assert split_member(member("日本", "88/a/b")) == ("日本", "88/a/b")


# --- search_entries ----------------------------------------------------------------------


EVERY = IndexPolicy(every=True)


def index_entries(record: HandleRecord | None) -> set[tuple[str, str]]:
    return search_entries(record, EVERY, record.handle.text if record else "")[0]


def val(index: int, type_: str, data: Any) -> HandleValue:
    return HandleValue.from_input(
        {"index": index, "type": type_, "data": data}, now=NOW, limits=Limits()
    )


ADMIN_DATA = {"format": "admin", "value": {"handle": "0.NA/88.100", "index": 300}}


def test_index_entries_of_public_string_values() -> None:
    rec = HandleRecord(
        Handle.parse("88.100/Doc-1"),
        (
            val(1, "URL", "HTTPS://Example.com/A"),
            val(2, "Email", "Someone@Example.com"),
            val(3, "BIN", {"format": "base64", "value": "aGVsbG8="}),
            val(4, "HEX", {"format": "hex", "value": "00ff"}),
            val(100, "HS_ADMIN", ADMIN_DATA),
            val(300, "HS_SECKEY", "scrypt$secret"),
            val(301, "hs_seckey", "scrypt$other"),
        ),
    )
    assert index_entries(rec) == {
        ("url", "https://example.com/a\x0088.100/Doc-1"),
        ("email", "someone@example.com\x0088.100/Doc-1"),
    }


def test_index_entries_size_limit_counts_utf8_bytes() -> None:
    at_limit = "a" * MAX_INDEXED_BYTES
    wide_at_limit = "é" * (MAX_INDEXED_BYTES // 2)
    rec = HandleRecord(
        Handle.parse("88/x"),
        (
            val(1, "A", at_limit),
            val(2, "B", at_limit + "a"),
            val(3, "C", wide_at_limit),
            val(4, "D", wide_at_limit + "a"),  # 257 characters, 513 bytes
        ),
    )
    assert {type_key for type_key, _ in index_entries(rec)} == {"a", "c"}


def test_index_entries_skip_values_containing_nul() -> None:
    rec = HandleRecord(Handle.parse("88/x"), (val(1, "URL", "a\x00b"), val(2, "URL", "ok")))
    assert index_entries(rec) == {("url", "ok\x0088/x")}


def test_index_entries_fold_only_ascii_and_keep_handle_spelling() -> None:
    rec = HandleRecord(Handle.parse("0.na/88.100"), (val(1, "ÜRL", "ÄBC"),))
    assert index_entries(rec) == {("Ürl", "Äbc\x000.NA/88.100")}


def test_index_entries_of_no_record_is_empty() -> None:
    assert index_entries(None) == set()
    assert index_entries(HandleRecord(Handle.parse("88/x"), ())) == set()


def test_equal_values_under_one_type_collapse() -> None:
    rec = HandleRecord(Handle.parse("88/x"), (val(1, "URL", "Same"), val(2, "url", "same")))
    assert index_entries(rec) == {("url", "same\x0088/x")}


def test_numeric_entries_score_the_first_public_number_or_date_of_each_type() -> None:
    rec = HandleRecord(
        Handle.parse("88/x"),
        (
            val(1, "Capacity", "75"),
            val(2, "capacity", "80"),  # the same type key: the lower index counts
            val(3, "MADE_ON", "2026-01-05"),
            val(4, "LOT", "B-17"),
            val(5, "WEIGHT", {"format": "hex", "value": "10"}),
            val(300, "HS_SECKEY", "42"),
        ),
    )
    # Dates are ordered by their text in the value index: no scored entry.
    assert search_entries(rec, EVERY, "x")[1] == {"capacity": 75.0}
    assert search_entries(None, EVERY, "x") == (set(), {})
    assert search_entries(rec, IndexPolicy.parse("LOT"), "x") == ({("lot", "b-17\x00x")}, {})


def test_indexed_members_are_found_by_their_exact_pattern() -> None:
    rec = HandleRecord(Handle.parse("88/x"), (val(1, "URL", "HTTPS://Example.com/A"),))
    ((type_key, member),) = index_entries(rec)
    pattern = ValuePattern.parse("url", "https://EXAMPLE.com/a")
    assert type_key == pattern.type_key
    assert in_range(member, pattern.lex_range())
    assert pattern.matches(split_member(member.encode())[0])


# --- intersect_in_order ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "limit", "expected"),
    [
        ([], 10, []),
        ([["a", "b", "c"]], 10, ["a", "b", "c"]),
        ([["c", "a", "c", "b", "a"]], 10, ["c", "a", "b"]),
        ([["c", "b", "a"], ["a", "b", "x"]], 10, ["b", "a"]),
        ([["a", "b"], ["b", "a"], ["a"]], 10, ["a"]),
        ([["a", "b"], []], 10, []),
        ([[], ["a"]], 10, []),
        ([["a", "b", "c", "d"], ["d", "c", "b", "a"]], 2, ["a", "b"]),
        ([["a", "a", "b"]], 1, ["a"]),
    ],
)
def test_intersect_in_order(groups: list[list[str]], limit: int, expected: list[str]) -> None:
    assert intersect_in_order(groups, limit) == expected


def test_intersect_in_order_accepts_any_iterable() -> None:
    assert intersect_in_order(iter([["a", "b"], ["b"]]), 5) == ["b"]


@fast
@given(st.lists(st.lists(st.sampled_from("abcdef"), max_size=8), max_size=4), st.integers(1, 6))
def test_intersect_in_order_properties(groups: list[list[str]], limit: int) -> None:
    out = intersect_in_order(groups, limit)
    assert len(out) <= limit
    assert len(set(out)) == len(out)
    for handle in out:
        assert all(handle in g for g in groups)
    if groups:
        first_order = list(dict.fromkeys(groups[0]))
        common = [h for h in first_order if all(h in g for g in groups)]
        assert out == common[:limit]


def test_intersect_in_order_with_limit_zero_is_empty() -> None:
    assert intersect_in_order([["a", "b"]], 0) == []


@given(
    st.text(min_size=0, max_size=60).filter(lambda s: SEPARATOR not in s),
    st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=140),
    st.sampled_from(["as-is", "upper", "other"]),
)
@fast
def test_a_member_names_its_handle_whatever_its_value_ends_with(
    head: str, suffix: str, how: str
) -> None:
    tail = suffix.lower() if how == "upper" and suffix.isascii() else suffix
    value_key = head + (tail if how != "other" else "")
    raw = member(value_key, suffix)
    assert split_member(raw) == (value_key, suffix)
    # Order among values is kept: the handle is after the separator.
    assert raw.startswith(value_key.encode() + SEPARATOR.encode())


def test_a_value_ending_with_its_suffix_does_not_spell_it_twice() -> None:
    raw = member("https://m30.example.cn/p/p0330/m30-p0330-0012345678", "M30-P0330-0012345678")
    assert raw == b"https://m30.example.cn/p/p0330/m30-p0330-0012345678\x00\x02\x14"
    assert member("https://x.cn/p/abc", "abc") == b"https://x.cn/p/abc\x00\x01\x03"
    assert member("https://x.cn/p/abc", "aBc") == b"https://x.cn/p/abc\x00aBc"  # mixed case
    whole = b"https://x.cn/p/abc\x00abc"  # as members were written before
    assert split_member(whole) == ("https://x.cn/p/abc", "abc")
    assert spellings("https://x.cn/p/abc", "abc") == [member("https://x.cn/p/abc", "abc"), whole]
    assert spellings("https://x.cn/p/1", "abc") == [b"https://x.cn/p/1\x00abc"]
