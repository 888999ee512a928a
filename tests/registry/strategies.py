"""Hypothesis strategies for valid identifiers, shared by the registry tests."""

from __future__ import annotations

import string

from hypothesis import settings
from hypothesis import strategies as st

from registry.identifier import MAX_HANDLE_BYTES, MAX_PREFIX_CHARS

# No example database: the tests must not leave a .hypothesis directory in the repository.
fast = settings(database=None, deadline=None, max_examples=100)

segments = st.text(string.digits, min_size=1, max_size=6)

prefixes = (
    st.lists(segments, min_size=1, max_size=8)
    .map(".".join)
    .filter(lambda p: len(p) <= MAX_PREFIX_CHARS)
)

# Prefixes in Handle's syntax (RFC 3651 §2.1): segments of any printable characters
# but "." and "/" (ASCII letters weighted in: ``21.T14999``).
_handle_segments = st.text(
    st.one_of(
        st.sampled_from(string.ascii_letters + string.digits),
        st.characters(codec="utf-8", exclude_characters="./").filter(str.isprintable),
    ),
    min_size=1,
    max_size=8,
)
handle_prefixes = (
    st.lists(_handle_segments, min_size=1, max_size=6)
    .map(".".join)
    .filter(lambda p: len(p) <= MAX_PREFIX_CHARS and p.lower() != "0.na")
)

# Printable characters as Python defines them (no Cc/Cf/Cs/Co/Cn, no separators but
# space), with ASCII letters and the characters a suffix may contain weighted in.
_printable = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")
).filter(str.isprintable)
_suffix_chars = st.one_of(
    st.sampled_from(string.ascii_letters),
    st.sampled_from(' /:.-_"\\'),
    _printable,
)
suffixes = st.text(_suffix_chars, min_size=1, max_size=60)

plain_handles = st.builds(lambda p, s: f"{p}/{s}", prefixes, suffixes).filter(
    lambda h: len(h.encode()) <= MAX_HANDLE_BYTES
)
prefix_record_handles = prefixes.map(lambda p: f"0.NA/{p}")

# Valid handles in canonical spelling (``0.NA`` upper-case), so parse(h).text == h.
valid_handles = st.one_of(plain_handles, prefix_record_handles)


def flip_ascii_case(text: str, flips: list[bool]) -> str:
    return "".join(
        ch.swapcase() if flip and ch.isascii() and ch.isalpha() else ch
        for ch, flip in zip(text, flips, strict=True)
    )


@st.composite
def handle_and_case_variant(draw: st.DrawFn) -> tuple[str, str]:
    """A valid handle and the same handle with some ASCII letters' case flipped."""
    text = draw(valid_handles)
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return text, flip_ascii_case(text, flips)
