"""Reverse lookup (search by value), as the Handle ``/hrls/handles`` servlet offers it.

Each string value that is public and at most ``MAX_INDEXED_BYTES`` long is indexed under
its type as the member ``<value, ASCII lower-cased> NUL <handle>`` of a sorted set whose
members all have score 0, so Redis orders them by bytes. A pattern is matched
case-insensitively, ``*`` standing for any run of characters:

- no ``*`` (exact): one lexicographic range, ``[v NUL`` .. ``[v NUL \\xff``;
- ``head*...``: the range of members starting with ``head``, then filtered by the pattern;
- ``*...``: a leading wildcard cannot use the order, so the whole type's set is walked,
  in pages, still bounded by the result limit.

Values that spell a number are also indexed by value, one per type and handle, in a
sorted set scored by the number, for the range conditions of structured queries
(:mod:`registry.query`). Dates are not: an ISO date (YYYY-MM-DD) is fixed-width, so the
value index already orders dates as time does, and a date range is a lexicographic
range of it (a second, scored entry per date would cost ~60 bytes an identifier for
nothing).

Only the types the node's :class:`registry.index_policy.IndexPolicy` covers are indexed.
A member holds the handle's suffix only (``<value> NUL <suffix>``): the key is per
prefix already (:mod:`registry.record_keys`). A value that ends with the suffix (a
product page's URL carrying its serial, the common case) does not spell it twice: the
member ends ``NUL \\x01 <n>`` (the suffix is the value's last ``n`` characters) or ``NUL
\\x02 <n>`` (the same, ASCII upper-cased), ``<n>`` one character whose code is the
length (:func:`member`); suffixes are printable, so the marks are unambiguous, and a
member written whole before (``NUL <suffix>``) reads as well (:func:`split_member`).
The URL index of 1亿 serial-carrying URLs saves the suffix's ~20 bytes an identifier.

>>> member("https://x.cn/p/abc-1", "ABC-1"), split_member(b"https://x.cn/p/abc-1\\x00\\x02\\x05")
(b'https://x.cn/p/abc-1\\x00\\x02\\x05', ('https://x.cn/p/abc-1', 'ABC-1'))
>>> member("https://x.cn/p/abc-1", "Abc-1")
b'https://x.cn/p/abc-1\\x00Abc-1'


Nothing here does I/O; the store turns a :class:`ValuePattern` into Redis commands.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from registry.errors import InvalidValue
from registry.identifier import ascii_lower
from registry.index_policy import IndexPolicy
from registry.record import HandleRecord
from registry.template import parse_date, parse_number
from registry.value import FORMAT_STRING

MAX_INDEXED_BYTES = 512
_NUMERIC_START = frozenset("-0123456789")
_MEMO_CHARS = 40  # _text_facts remembers texts at most this long, at most _MEMO_SIZE of them
_MEMO_SIZE = 4096
_TEXTS: dict[str, tuple[str | None, float | None]] = {}  # text -> _text_facts(text)
SEPARATOR = "\x00"
_BYTE_MAX = b"\xff"  # never occurs in UTF-8, so it bounds every continuation


@dataclass(frozen=True, slots=True)
class ValuePattern:
    """One ``TYPE=pattern`` search term.

    >>> p = ValuePattern.parse("URL", "https://example.com/*")
    >>> p.lex_range()
    (b'[https://example.com/', b'[https://example.com/\\xff')
    >>> p.matches("https://example.com/a"), p.matches("http://example.com/a")
    (True, False)
    """

    type_key: str
    pattern: str

    @classmethod
    def parse(cls, type_: str, pattern: str) -> ValuePattern:
        if not type_ or not pattern:
            raise InvalidValue("a search term needs a type and a non-empty value pattern")
        if SEPARATOR in pattern:
            raise InvalidValue("a search pattern may not contain NUL")
        return cls(ascii_lower(type_), ascii_lower(pattern))

    @property
    def is_exact(self) -> bool:
        return "*" not in self.pattern

    @property
    def head(self) -> str:
        """The literal text before the first wildcard."""
        return self.pattern.split("*", 1)[0]

    def lex_range(self) -> tuple[bytes, bytes]:
        """ZRANGEBYLEX bounds covering every member this pattern can match."""
        if self.is_exact:
            start = (self.pattern + SEPARATOR).encode()
            return b"[" + start, b"[" + start + _BYTE_MAX
        if not self.head:
            return b"-", b"+"
        head = self.head.encode()
        return b"[" + head, b"[" + head + _BYTE_MAX

    def matches(self, value_key: str) -> bool:
        return _compile(self.pattern).fullmatch(value_key) is not None


_AS_IS = "\x01"  # the handle member is the value's tail
_UPPER = "\x02"  # ... its tail ASCII upper-cased
_TAIL_MAX = 127  # a length spelled as one UTF-8 byte


def member(value_key: str, handle_member: str) -> bytes:
    """A value-index member: the value and the handle's index member
    (:func:`registry.record_keys.index_member`), the latter as a mark when the value
    ends with it (see the module docstring)."""
    return member_text(value_key, handle_member).encode()


def member_text(value_key: str, handle_member: str) -> str:
    """:func:`member` as text."""
    return value_key + SEPARATOR + _tail_code(value_key, handle_member)


def _tail_code(value_key: str, handle_member: str) -> str:
    n = len(handle_member)
    if 0 < n <= _TAIL_MAX and len(value_key) >= n:
        tail = value_key[-n:]
        if tail == handle_member:
            return _AS_IS + chr(n)
        if handle_member.isascii() and tail.upper() == handle_member:
            return _UPPER + chr(n)
    return handle_member


def spellings(value_key: str, handle_member: str) -> list[bytes]:
    """Every form a member of this value and handle may have been written in: the
    current one first, then the whole one (written before values shared their tails)."""
    current = member(value_key, handle_member)
    whole = f"{value_key}{SEPARATOR}{handle_member}".encode()
    return [current] if current == whole else [current, whole]


def split_member(raw: bytes) -> tuple[str, str]:
    """A value-index member's value and handle member (either form)."""
    value_key, _, handle_member = raw.decode().partition(SEPARATOR)
    if len(handle_member) == 2 and handle_member[0] in (_AS_IS, _UPPER):
        tail = value_key[-ord(handle_member[1]) :]
        return value_key, tail if handle_member[0] == _AS_IS else tail.upper()
    return value_key, handle_member


def search_entries(
    record: HandleRecord | None, policy: IndexPolicy, handle_member: str
) -> tuple[set[tuple[str, str]], dict[str, float]]:
    """Where ``record`` is found, in one pass over its public string values of the types
    ``policy`` covers: the (type key, member) pairs of the value index (members as
    text, ``member`` encodes one), and the (type key -> number) of the number index,
    for each type the first value (lowest index) that spells a number.
    ``handle_member`` is the record's handle as index members hold it."""
    entries: set[tuple[str, str]] = set()
    numbers: dict[str, float] = {}
    if record is None:
        return entries, numbers
    every, types = policy.every, policy.types
    for v in record.values:
        if not v.is_public or v.format is not FORMAT_STRING:
            continue
        type_key = v.type_key
        if not every and type_key not in types:
            continue
        text = v.value
        assert isinstance(text, str)
        indexed, number = _TEXTS.get(text) or _text_facts(text)
        if indexed is not None:
            entries.add((type_key, member_text(indexed, handle_member)))
        if number is not None and type_key not in numbers:
            numbers[type_key] = number
    return entries, numbers


def score_of(text: str) -> float | None:
    """A query bound's place in order: the number it spells, or an ISO date as the
    number YYYYMMDD (so dates order correctly); None for any other text."""
    if not text or text[0] not in _NUMERIC_START:
        return None
    number = parse_number(text)
    if number is not None:
        return number
    return date_score(text)


def date_score(text: str) -> float | None:
    """An ISO date as the number YYYYMMDD, else None.

    >>> date_score("2026-01-05"), date_score("2026-02-30"), date_score("75")
    (20260105.0, None, None)
    """
    day = parse_date(text)
    return float(day.year * 10_000 + day.month * 100 + day.day) if day is not None else None


def date_text(score: float) -> str:
    """The ISO date a :func:`date_score` stands for.

    >>> date_text(20260105.0)
    '2026-01-05'
    """
    whole = int(score)
    return f"{whole // 10_000:04d}-{whole // 100 % 100:02d}-{whole % 100:02d}"


def _text_facts(text: str) -> tuple[str | None, float | None]:
    """How a value's text is indexed: ASCII-lowered (None when it is not: it holds NUL or
    is too long) and the number it spells; remembered for short texts, which repeat
    across records (names, dates, quantities), and computed afresh for long ones."""
    # UTF-8 takes at most 4 bytes a character: short values need no encoding.
    unindexed = SEPARATOR in text or (
        len(text) * 4 > MAX_INDEXED_BYTES and len(text.encode()) > MAX_INDEXED_BYTES
    )
    facts = (
        None if unindexed else ascii_lower(text),
        # Most values (URLs, names) are rejected without a regex.
        parse_number(text) if text and text[0] in _NUMERIC_START else None,
    )
    if len(text) <= _MEMO_CHARS:
        if len(_TEXTS) >= _MEMO_SIZE:
            _TEXTS.clear()
        _TEXTS[text] = facts
    return facts


def intersect_in_order(groups: Iterable[list[str]], limit: int) -> list[str]:
    """Handles present in every group, in the order of the first, at most ``limit``."""
    groups = list(groups)
    if not groups or limit <= 0:
        return []
    rest = [set(g) for g in groups[1:]]
    out: list[str] = []
    seen: set[str] = set()
    for handle in groups[0]:
        if handle not in seen and all(handle in g for g in rest):
            seen.add(handle)
            out.append(handle)
            if len(out) >= limit:
                break
    return out


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        if len(_PATTERNS) > 1024:
            _PATTERNS.clear()
        regex = ".*".join(re.escape(part) for part in pattern.split("*"))
        compiled = _PATTERNS[pattern] = re.compile(regex, re.DOTALL)
    return compiled
