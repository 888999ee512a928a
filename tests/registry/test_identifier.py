"""registry.identifier: prefixes, handles and identities (SPEC §2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.errors import InvalidHandle
from registry.identifier import (
    MAX_HANDLE_BYTES,
    MAX_PREFIX_CHARS,
    Handle,
    Identity,
    Prefix,
    ascii_lower,
    national_prefix_problem,
    prefix_problem,
    registration_problem,
)
from tests.registry.strategies import (
    fast,
    handle_and_case_variant,
    handle_prefixes,
    plain_handles,
    prefixes,
    valid_handles,
)

# --- ascii_lower -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ABC-xyz/09", "abc-xyz/09"),
        ("", ""),
        ("ÄBC", "Äbc"),  # non-ASCII letters keep their case
        ("İX", "İx"),  # str.lower would turn U+0130 into two characters
        ("\u212aELVIN", "\u212aelvin"),  # KELVIN SIGN is not folded to "k"
        ("ΣΑ", "ΣΑ"),
    ],
)
def test_ascii_lower_folds_only_ascii_letters(text: str, expected: str) -> None:
    assert ascii_lower(text) == expected


@fast
@given(st.text())
def test_ascii_lower_keeps_length_and_non_ascii_characters(text: str) -> None:
    lowered = ascii_lower(text)
    assert len(lowered) == len(text)
    for before, after in zip(text, lowered, strict=True):
        if before.isascii():
            assert after == before.lower()
        else:
            assert after == before
    assert ascii_lower(lowered) == lowered


# --- Prefix ------------------------------------------------------------------------------


# Handle syntax (RFC 3651 §2.1 "Handle Syntax"): dot-separated segments of any characters
# but "." and "/"; we add: printable, at most MAX_PREFIX_CHARS characters.
HANDLE_PREFIXES = [
    "88",
    "88.100",
    "88.100.1",
    "0",
    "007.0",
    "1" * MAX_PREFIX_CHARS,
    "21.T14999",  # an ePIC prefix with a letter
    "20.500.12345",
    "10.1000",
    "11234.1",
    "0.NA",
    "21.t14999.Abc",
    "前缀.1",
    "a b",
]


@pytest.mark.parametrize("text", HANDLE_PREFIXES)
def test_prefix_parse_accepts_handle_syntax(text: str) -> None:
    prefix = Prefix.parse(text)
    assert prefix.text == text
    assert str(prefix) == text
    assert prefix.segments == tuple(text.split("."))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("1" * (MAX_PREFIX_CHARS + 1), f"at most {MAX_PREFIX_CHARS} characters"),
        ("T" * (MAX_PREFIX_CHARS + 1), f"at most {MAX_PREFIX_CHARS} characters"),
        ("88.", "empty segment"),
        (".88", "empty segment"),
        ("88..100", "empty segment"),
        (".", "empty segment"),
        ("88/100", "cannot contain '/'"),
        ("21.T1\n", "non-printable character (U+000A)"),
        ("21\x00", "non-printable character (U+0000)"),
        ("2\t1", "non-printable character (U+0009)"),
        ("21.\x7f", "non-printable character (U+007F)"),
        ("21.\u2028", "non-printable character (U+2028)"),
    ],
)
def test_prefix_parse_refuses_and_says_why(text: str, problem: str) -> None:
    with pytest.raises(InvalidHandle) as info:
        Prefix.parse(text)
    assert problem in info.value.message
    assert "Invalid prefix" in info.value.message
    assert info.value.response_code == 102
    assert info.value.http_status == 400


@pytest.mark.parametrize("text", ["88", "88.100", "88.100.1", "0", "007.0", "1" * MAX_PREFIX_CHARS])
def test_national_policy_accepts_digit_segments(text: str) -> None:
    assert national_prefix_problem(text) is None
    assert Prefix.parse_national(text) == Prefix(text)
    assert Prefix(text).national


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("88.T1", "segment 'T1' is not ASCII digits"),
        ("21.T14999", "segment 'T14999' is not ASCII digits"),
        ("0.NA", "segment 'NA' is not ASCII digits"),
        ("８８", "not ASCII digits"),  # fullwidth digits
        ("٨٨", "not ASCII digits"),  # Arabic-Indic digits
        ("88 ", "not ASCII digits"),
        ("-1", "not ASCII digits"),
        # Handle syntax first: the same messages as Prefix.parse
        ("", "empty"),
        ("88..1", "empty segment"),
        ("88/100", "cannot contain '/'"),
    ],
)
def test_national_policy_refuses_other_prefixes_and_says_why(text: str, problem: str) -> None:
    assert problem in (national_prefix_problem(text) or "")
    with pytest.raises(InvalidHandle) as info:
        Prefix.parse_national(text)
    assert problem in info.value.message
    assert (info.value.response_code, info.value.http_status) == (102, 400)
    if prefix_problem(text) is None:
        assert "this hierarchy's prefixes are, e.g. 88.100.1" in info.value.message
        assert not Prefix(text).national


def test_handle_syntax_is_the_national_policy_minus_the_digits() -> None:
    for text in HANDLE_PREFIXES:
        assert prefix_problem(text) is None
        assert (national_prefix_problem(text) is None) is Prefix(text).national


@fast
@given(handle_prefixes, st.sampled_from(["x", "ABC/def", "日本"]))
def test_any_handle_syntax_prefix_parses_with_its_ancestors(text: str, suffix: str) -> None:
    prefix = Prefix.parse(text)
    handle = Handle.parse(f"{text}/{suffix}")
    assert handle.home_prefix == prefix and handle.prefix == text
    assert Handle.parse(f"0.NA/{text}").described_prefix == prefix
    assert prefix.national is (national_prefix_problem(text) is None)
    ancestor = prefix.parent
    while ancestor is not None:
        assert Prefix.parse(ancestor.text).contains(prefix)
        assert not prefix.contains(ancestor)
        ancestor = ancestor.parent


def test_prefix_parent_walks_up_one_segment_at_a_time() -> None:
    prefix = Prefix.parse("88.100.1")
    assert prefix.parent == Prefix("88.100")
    assert prefix.parent.parent == Prefix("88")
    assert Prefix("88").parent is None
    assert Prefix.parse("21.T14999").parent == Prefix("21")
    assert Prefix.parse("20.500.12345").parent == Prefix("20.500")


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("88.100", "88.100", True),
        ("88.100", "88.100.7", True),
        ("88.100", "88.100.7.3", True),
        ("88", "88.100", True),
        ("88.100", "88.1000", False),
        ("88.100", "88.10", False),
        ("88.100", "88", False),
        ("88.100.7", "88.100", False),
        ("88.100", "99.100", False),
        ("21", "21.T14999", True),
        ("21.T14999", "21.T14999.1", True),
        ("21.t14999", "21.T14999.a", True),  # ASCII letters compare case-insensitively
        ("21.T14999", "21.t14999", True),
        ("21.T1", "21.T14999", False),
        ("21.T14999", "21", False),
        ("88", "88.T1", True),  # Handle's derived prefix; the national policy is apart
        ("Ä", "ä", False),  # non-ASCII letters keep their case (Handle rules)
    ],
)
def test_prefix_contains_only_itself_and_derived_prefixes(
    outer: str, inner: str, expected: bool
) -> None:
    assert Prefix.parse(outer).contains(Prefix.parse(inner)) is expected


def test_prefix_record_handle_is_0na_handle() -> None:
    handle = Prefix.parse("88.100").record_handle
    assert handle.text == "0.NA/88.100"
    assert handle.is_prefix_record
    assert handle.described_prefix == Prefix("88.100")


# --- Handle: valid -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "prefix", "suffix"),
    [
        ("88.100/x", "88.100", "x"),
        ("88.100.1/ABC-123", "88.100.1", "ABC-123"),
        ("88/a/b/c", "88", "a/b/c"),  # split at the first '/'
        ("88/urn:isbn:0451", "88", "urn:isbn:0451"),
        ("88/a.b.c", "88", "a.b.c"),
        ("88/with space", "88", "with space"),
        ("88/日本語", "88", "日本語"),
        ("88//", "88", "/"),
        ("0/x", "0", "x"),
        ("88/0.NA", "88", "0.NA"),
        ("21.T14999/X", "21.T14999", "X"),
        ("20.500.12345/abc", "20.500.12345", "abc"),
        ("10.1000/182", "10.1000", "182"),
        ("11234.1/x", "11234.1", "x"),
    ],
)
def test_handle_parse_splits_at_first_slash(text: str, prefix: str, suffix: str) -> None:
    handle = Handle.parse(text)
    assert (handle.prefix, handle.suffix) == (prefix, suffix)
    assert handle.text == text
    assert str(handle) == text
    assert not handle.is_prefix_record
    assert handle.described_prefix is None
    assert handle.home_prefix == Prefix(prefix)


@pytest.mark.parametrize(
    ("text", "home", "national"),
    [
        ("21.T14999/X", "21.T14999", False),
        ("10.1000/182", "10.1000", True),  # digits, though outside our 88 tree
        ("0.NA/21.T14999", "21.T14999", False),  # a foreign prefix's record
        ("0.NA/abc", "abc", False),
        ("0.NA/0.NA", "0.NA", False),  # the record of the prefix of prefix records
        ("88.100.T1/x", "88.100.T1", False),  # Handle-derived from 88.100; not ours
        ("88.100.1/x", "88.100.1", True),
    ],
)
def test_any_handle_syntax_prefix_parses_and_says_whether_it_is_national(
    text: str, home: str, national: bool
) -> None:
    handle = Handle.parse(text)
    assert handle.text == text
    assert handle.home_prefix == Prefix(home)
    assert handle.home_prefix.national is national
    assert Identity.parse(f"300:{text}").handle == handle


def test_foreign_prefix_record_describes_its_prefix() -> None:
    handle = Handle.parse("0.na/21.T14999")
    assert handle.text == "0.NA/21.T14999" and handle.is_prefix_record
    assert handle.described_prefix == Prefix("21.T14999")
    assert Identity.parse("300:0.NA/21.T14999").administered_prefix == Prefix("21.T14999")


def test_handle_key_is_ascii_lower_case_and_text_keeps_case() -> None:
    handle = Handle.parse("88.100.1/ABC-123")
    assert handle.key == "88.100.1/abc-123"
    assert handle.text == "88.100.1/ABC-123"


@pytest.mark.parametrize("spelling", ["0.NA", "0.na", "0.Na", "0.nA"])
def test_prefix_record_handle_is_normalised_to_upper_case_0na(spelling: str) -> None:
    handle = Handle.parse(f"{spelling}/88.100.1")
    assert handle.prefix == "0.NA"
    assert handle.suffix == "88.100.1"
    assert handle.text == "0.NA/88.100.1"
    assert handle.key == "0.na/88.100.1"
    assert handle.is_prefix_record
    assert handle.described_prefix == Prefix("88.100.1")
    # A prefix record is homed where the prefix it describes is.
    assert handle.home_prefix == Prefix("88.100.1")


def test_non_ascii_letters_are_not_case_folded_in_keys() -> None:
    upper = Handle.parse("88/Ä")
    lower = Handle.parse("88/ä")
    assert upper.key == "88/Ä"
    assert upper.key != lower.key


def test_handle_length_limit_counts_utf8_bytes() -> None:
    fits = "88/" + "a" * (MAX_HANDLE_BYTES - 3)
    assert Handle.parse(fits).text == fits
    # 127 two-byte characters: only 130 characters, but 257 bytes.
    wide = "88/" + "é" * 127
    assert len(wide) < MAX_HANDLE_BYTES
    with pytest.raises(InvalidHandle) as info:
        Handle.parse(wide)
    assert f"at most {MAX_HANDLE_BYTES} UTF-8 bytes" in info.value.message
    fits_wide = "88/" + "é" * 126  # exactly 255 bytes
    assert Handle.parse(fits_wide).text == fits_wide


def test_handle_one_byte_over_the_limit_is_refused() -> None:
    with pytest.raises(InvalidHandle, match="UTF-8 bytes"):
        Handle.parse("88/" + "a" * (MAX_HANDLE_BYTES - 2))


def test_prefix_of_64_characters_is_accepted_in_a_handle() -> None:
    prefix = "1." * 31 + "12"
    assert len(prefix) == MAX_PREFIX_CHARS
    assert Handle.parse(f"{prefix}/x").prefix == prefix
    with pytest.raises(InvalidHandle, match="at most 64 characters"):
        Handle.parse(f"{prefix}3/x")


# --- Handle: invalid ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("88.100", "expected prefix/suffix"),
        ("", "expected prefix/suffix"),
        ("/x", "prefix is empty"),
        ("88./x", "empty segment"),
        (".88/x", "empty segment"),
        ("88..100/x", "empty segment"),
        ("8\x008/x", "non-printable character (U+0000)"),
        ("21.T\n/x", "non-printable character (U+000A)"),
        ("88.100/", "suffix is empty"),
        ("88/a\nb", "non-printable character (U+000A)"),
        ("88/\x00", "non-printable character (U+0000)"),
        ("88/tab\there", "non-printable character (U+0009)"),
        ("88/\x7f", "non-printable character (U+007F)"),
        ("88/a\u2028b", "non-printable character (U+2028)"),
        ("88/\ud800", "non-printable character (U+D800)"),  # lone surrogate
    ],
)
def test_handle_parse_refuses_and_says_why(text: str, problem: str) -> None:
    with pytest.raises(InvalidHandle) as info:
        Handle.parse(text)
    err = info.value
    assert problem in err.message
    assert err.handle == text
    assert (err.response_code, err.http_status) == (102, 400)
    assert err.body()["handle"] == text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0.NA/", "the prefix is empty"),
        ("0.NA/88/x", "cannot contain '/'"),
        ("0.NA/21.T\x001", "non-printable character (U+0000)"),
        ("0.NA/88.", "empty segment"),
        ("0.NA/" + "1" * (MAX_PREFIX_CHARS + 1), "at most 64 characters"),
    ],
)
def test_prefix_record_suffix_must_be_a_prefix(text: str, problem: str) -> None:
    with pytest.raises(InvalidHandle) as info:
        Handle.parse(text)
    assert "suffix of a 0.NA handle must be a prefix" in info.value.message
    assert problem in info.value.message
    assert info.value.handle == text


# --- Handle: properties ------------------------------------------------------------------


@fast
@given(valid_handles)
def test_valid_handle_round_trips(text: str) -> None:
    handle = Handle.parse(text)
    assert handle.text == text
    assert Handle.parse(handle.text) == handle
    assert handle.key == ascii_lower(text)


@fast
@given(plain_handles)
def test_plain_handle_parts_rejoin_to_text(text: str) -> None:
    handle = Handle.parse(text)
    assert "/" not in handle.prefix
    assert handle.suffix
    assert f"{handle.prefix}/{handle.suffix}" == text


@fast
@given(valid_handles)
def test_key_is_idempotent(text: str) -> None:
    key = Handle.parse(text).key
    assert Handle.parse(key).key == key


@fast
@given(handle_and_case_variant())
def test_ascii_case_variants_share_a_key_and_keep_their_spelling(
    pair: tuple[str, str],
) -> None:
    original, variant = pair
    parsed = Handle.parse(variant)
    assert parsed.key == Handle.parse(original).key
    if parsed.is_prefix_record:
        assert parsed.text == "0.NA/" + variant.partition("/")[2]
    else:
        assert parsed.text == variant


@fast
@given(prefixes)
def test_generated_prefixes_parse(text: str) -> None:
    assert Prefix.parse(text).text == text
    assert Handle.parse(f"0.na/{text}").described_prefix == Prefix(text)


@fast
@given(st.text())
def test_arbitrary_text_parses_or_raises_invalid_handle(text: str) -> None:
    for parse in (Handle.parse, Prefix.parse, Identity.parse):
        try:
            parse(text)
        except InvalidHandle as exc:
            assert exc.message


@fast
@given(st.text(alphabet=st.sampled_from("0123456789./:aA\n \x00é")))
def test_identifier_like_text_parses_or_raises_invalid_handle(text: str) -> None:
    for parse in (Handle.parse, Prefix.parse, Identity.parse):
        try:
            parse(text)
        except InvalidHandle as exc:
            assert exc.message


# --- Identity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "index", "handle_text", "canonical", "key"),
    [
        ("300:0.NA/88.100", 300, "0.NA/88.100", "300:0.NA/88.100", "300:0.na/88.100"),
        ("300:0.na/88.100", 300, "0.NA/88.100", "300:0.NA/88.100", "300:0.na/88.100"),
        ("1:88.100/User", 1, "88.100/User", "1:88.100/User", "1:88.100/user"),
        ("300:88/a:b", 300, "88/a:b", "300:88/a:b", "300:88/a:b"),
    ],
)
def test_identity_parse(text: str, index: int, handle_text: str, canonical: str, key: str) -> None:
    identity = Identity.parse(text)
    assert identity.index == index
    assert identity.handle == Handle.parse(handle_text)
    assert identity.text == canonical
    assert str(identity) == canonical
    assert identity.key == key


@pytest.mark.parametrize(
    "text",
    ["0.NA/88.100", "", ":0.NA/88.100", "abc:0.NA/88.100", "-1:88/x", "३००:88/x", " 300:88/x"],
)
def test_identity_without_a_digit_index_is_refused(text: str) -> None:
    with pytest.raises(InvalidHandle) as info:
        Identity.parse(text)
    assert "expected <index>:<handle>" in info.value.message
    assert info.value.response_code == 102


@pytest.mark.parametrize("text", ["300:88", "300:", "300:0.NA/a/b", "300:88/\n", "300:/x"])
def test_identity_with_an_invalid_handle_is_refused(text: str) -> None:
    with pytest.raises(InvalidHandle, match="Invalid"):
        Identity.parse(text)


def test_identity_with_a_huge_index_raises_invalid_handle() -> None:
    with pytest.raises(InvalidHandle):
        Identity.parse("9" * 5000 + ":0.NA/88.100")


# --- registration_problem: the policy for new identifiers --------------------------------


@pytest.mark.parametrize(
    ("suffix", "said"),
    [
        pytest.param("\u212a9", "U+212A (KELVIN SIGN); write 'K'", id="kelvin-sign"),
        pytest.param("\u2126", "U+2126 (OHM SIGN)", id="ohm-sign"),
        pytest.param("e\u0301t\u00e9", "must be in Unicode NFC form; write 'été'", id="not-nfc"),
        pytest.param("\uff21\uff11", "U+FF21 (FULLWIDTH LATIN CAPITAL LETTER A)", id="fullwidth"),
        pytest.param("\uff11\uff12", "FULLWIDTH DIGIT ONE", id="fullwidth-digits"),
        pytest.param("\ufb01le", "LATIN SMALL LIGATURE FI); write 'fi'", id="ligature"),
        pytest.param("x\u00b2", "SUPERSCRIPT TWO", id="superscript"),
        pytest.param("p\u0430ypal", "may not mix Cyrillic and Latin letters", id="cyrillic-a"),
        pytest.param("\u03bf-o", "may not mix Greek and Latin letters", id="greek-omicron"),
        pytest.param("ABC ", "may not end with whitespace", id="trailing-space"),
        pytest.param(" ABC", "may not start with whitespace", id="leading-space"),
        pytest.param("a /b", "whitespace next to a '/'", id="space-before-slash"),
        pytest.param("a/ b", "whitespace next to a '/'", id="space-after-slash"),
        pytest.param("..", "may not have a '..' segment", id="dotdot"),
        pytest.param("a/../b", "may not have a '..' segment", id="dotdot-inside"),
        pytest.param("./a", "may not have a '.' segment", id="dot-slash"),
        pytest.param("a/.", "may not have a '.' segment", id="trailing-dot-segment"),
        pytest.param("a//b", "empty segment", id="double-slash"),
        pytest.param("/a", "empty segment", id="leading-slash"),
        pytest.param("a/", "empty segment", id="trailing-slash"),
    ],
)
def test_registration_refuses_lookalike_suffixes(suffix: str, said: str) -> None:
    handle = Handle.parse(f"88.100.1/{suffix}")  # still a valid handle: it resolves
    problem = registration_problem(handle)
    assert problem is not None
    assert problem.startswith(f"{handle.text!r}: a new identifier ")
    assert said in problem


@pytest.mark.parametrize(
    "suffix",
    [
        "ABC-123",
        "JM-E5-2026-000123",
        "a b",  # a space inside a segment
        "lot/2026/a.b",  # dots inside a segment, several segments
        "...",  # not a path step
        ".hidden",
        "été",  # NFC, precomposed
        "批次-A1",  # CJK with Latin
        "Ωμέγα",  # Greek alone (U+03A9, not the Ohm sign)
        "деталь-7",  # Cyrillic with digits
        "0a1b2c3d-uuid-like",
    ],
)
def test_registration_accepts_plain_suffixes(suffix: str) -> None:
    assert registration_problem(Handle.parse(f"88.100.1/{suffix}")) is None


def test_registration_leaves_prefix_records_alone() -> None:
    assert registration_problem(Handle.parse("0.NA/88.100.1")) is None


@fast
@given(valid_handles)
def test_registration_problem_never_fails_on_a_valid_handle(text: str) -> None:
    problem = registration_problem(Handle.parse(text))
    assert problem is None or "a new identifier" in problem
