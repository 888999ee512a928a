"""Structured queries: the identifiers of one prefix whose values meet conditions.

::

    GET /api/query?prefix=88.100.2&template=88.100/battery-pack&BATCH=B20260105-01
    GET /api/query?prefix=88.100.2&capacity_kwh.min=70&PRODUCTION_DATE.max=2026-01-31

Conditions (all must hold):

    FIELD=value       a value of type FIELD equals ``value`` (ASCII case-insensitive)
    FIELD.min=x       FIELD, a number or a date (YYYY-MM-DD), is at least x
    FIELD.max=x       ... at most x
    template=T        the identifier declares template T (``T`` or any ``T@N``)

With a template, every FIELD must be one of its items (in its latest published
version), ranges apply to its number and date items only, and equality on those items
compares numbers and dates (``75`` matches ``75.0``). Without one, equality compares
text and ranges apply to whatever values spell numbers or dates.

Queries never scan: each condition is a range of one sorted set that the store keeps on
every write (:mod:`registry.search`), and a condition on a type the node does not index
(:mod:`registry.index_policy`) is refused. The store counts each condition's matches,
fetches the smallest set, checks the other conditions for those candidates with one
ZSCORE each (a date range, read from the value index, by the candidates' public
bodies), then sorts and pages. A query whose narrowest condition still matches more
than :data:`MAX_CANDIDATES` identifiers is refused with a request to narrow it.

Nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from registry.errors import InvalidValue
from registry.identifier import Prefix, ascii_lower
from registry.index_policy import IndexPolicy
from registry.search import (
    SEPARATOR,
    ValuePattern,
    date_score,
    date_text,
    score_of,
    spellings,
    split_member,
)
from registry.template import Item, ItemType, Template, TemplateRef, parse_date, parse_number
from registry.value import HandleValue

MAX_CANDIDATES = 100_000
MAX_CONDITIONS = 16
CONTROLS = frozenset({"prefix", "template", "page", "pagesize"})
_OPERATORS = {".min": "min", ".max": "max"}


class Kind(Enum):
    EQUAL = "text equals"  # a member of the value index: "<value> NUL <handle>"
    RANGE = "in range"  # a score in the number index
    DATES = "dates in range"  # members "<YYYY-MM-DD> NUL <handle>" of the value index
    TEMPLATE = "declares"  # members "<template> NUL <handle>" or "<template>@N NUL ..."


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition on one value type (``field``, lower-cased)."""

    field: str
    kind: Kind
    text: str = ""  # EQUAL: the value, lower-cased; TEMPLATE: the template's key
    low: float = -math.inf
    high: float = math.inf
    versions: int = 0  # TEMPLATE: the latest published version

    @property
    def scored(self) -> bool:
        """Whether the condition reads the number index (else the value index)."""
        return self.kind is Kind.RANGE

    @property
    def probed(self) -> bool:
        """Whether ZSCOREs of :meth:`probes` check it (a date range: the values do)."""
        return self.kind is not Kind.DATES

    def lex_range(self) -> tuple[bytes, bytes]:
        """The value-index range holding every member that may match."""
        if self.kind is Kind.DATES:
            # ISO dates are fixed-width: their text order is their time order.
            low = b"-" if math.isinf(self.low) else b"[" + date_text(self.low).encode()
            if math.isinf(self.high):
                return low, b"+"
            return low, b"[" + (date_text(self.high) + SEPARATOR).encode() + b"\xff"
        if self.kind is Kind.EQUAL:
            return ValuePattern(self.field, self.text).lex_range()
        return ValuePattern(self.field, self.text + "*").lex_range()

    def handle_of(self, raw: bytes) -> str | None:
        """The handle of a fetched value-index member, if the member matches."""
        value, handle = split_member(raw)
        if self.kind is Kind.DATES:
            return handle if self._in_dates(value) else None
        if self.kind is Kind.TEMPLATE and value != self.text and not _pinned(value, self.text):
            return None  # 88.100/pack-2 shares the prefix of 88.100/pack but is another
        return handle

    def probes(self, handle: str) -> list[bytes | str]:
        """Members whose ZSCORE tells whether ``handle`` meets the condition."""
        if self.kind is Kind.RANGE:
            return [handle]
        if self.kind is Kind.EQUAL:
            return list(spellings(self.text, handle))
        texts = [self.text] + [f"{self.text}@{n}" for n in range(1, self.versions + 1)]
        return [form for text in texts for form in spellings(text, handle)]

    def _in_dates(self, text: str) -> bool:
        score = date_score(text)
        return score is not None and self.low <= score <= self.high

    def accepts_values(self, values: Sequence[HandleValue]) -> bool:
        """Whether a record's public ``values`` meet a date range."""
        return any(
            v.type_key == self.field and isinstance(v.value, str) and self._in_dates(v.value)
            for v in values
        )

    def accepts(self, scores: Sequence[float | None]) -> bool:
        """Whether the probes' scores (None: not a member) mean a match."""
        if self.kind is Kind.RANGE:
            score = scores[0]
            return score is not None and self.low <= score <= self.high
        return any(s is not None for s in scores)


def _pinned(value: str, template: str) -> bool:
    head, at, version = value.partition("@")
    return head == template and bool(at) and version.isdigit()


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: where, what, which page."""

    prefix: Prefix
    conditions: tuple[Condition, ...]
    page: int
    page_size: int

    @classmethod
    def parse(
        cls,
        prefix: Prefix,
        params: Sequence[tuple[str, str]],
        *,
        template: Template | None,
        page: int,
        page_size: int,
        policy: IndexPolicy | None = None,
    ) -> Query:
        """Conditions from query parameters (``prefix``, ``template``, ``page`` and
        ``pageSize`` are not conditions); ``template`` is the published template named
        by the ``template`` parameter, if any; a condition on a type ``policy`` (default:
        every type) does not cover is refused (:class:`registry.errors.NotIndexed`)."""
        ranges: dict[str, dict[str, float]] = {}
        dated: dict[str, bool] = {}  # field -> whether its range is of dates
        conditions: list[Condition] = []
        for key, raw in params:
            if ascii_lower(key) in CONTROLS:
                continue
            if not raw:
                raise InvalidValue(f"condition {key} has no value")
            if SEPARATOR in raw or SEPARATOR in key:
                raise InvalidValue("a query may not contain NUL")
            field, bound = _split(key)
            item = _item(template, field)
            if policy is not None:
                policy.check(ascii_lower(field))
            if bound is None and (item is None or item.type not in _ORDERED):
                conditions.append(Condition(ascii_lower(field), Kind.EQUAL, ascii_lower(raw)))
                continue
            if item is not None and item.type not in _ORDERED:
                raise InvalidValue(
                    f"{field} is a {item.type.value} item; ranges apply to number and date items"
                )
            score = score_of(raw)
            if score is None or (item is not None and not _fits(item.type, raw)):
                kind = item.type.value if item is not None else "number or date (YYYY-MM-DD)"
                raise InvalidValue(f"{key}: {raw[:40]!r} is not a {kind}")
            is_date = (
                item.type is ItemType.DATE if item is not None else date_score(raw) is not None
            )
            if dated.setdefault(ascii_lower(field), is_date) != is_date:
                raise InvalidValue(f"{field}: give dates or numbers as bounds, not both")
            limits = ranges.setdefault(ascii_lower(field), {})
            for side in ("min", "max") if bound is None else (bound,):
                if side in limits:
                    raise InvalidValue(f"{field}: more than one {side} given")
                limits[side] = score
        for field, limits in ranges.items():
            low, high = limits.get("min", -math.inf), limits.get("max", math.inf)
            if low > high:
                raise InvalidValue(f"{field}: min is larger than max; nothing can match")
            ranged = Kind.DATES if dated[field] else Kind.RANGE
            conditions.append(Condition(field, ranged, low=low, high=high))
        if template is not None:
            ref = TemplateRef(template.prefix, template.name)
            conditions.append(
                Condition(
                    "template", Kind.TEMPLATE, ascii_lower(ref.text), versions=template.version
                )
            )
        if not conditions:
            raise InvalidValue(
                "give at least one condition, e.g. BATCH=B20260105-01 or capacity_kwh.min=70 "
                "(GET /api/handles?prefix=... lists every identifier)"
            )
        if len(conditions) > MAX_CONDITIONS:
            raise InvalidValue(f"a query holds at most {MAX_CONDITIONS} conditions")
        return cls(prefix, tuple(conditions), page, page_size)


_ORDERED = (ItemType.NUMBER, ItemType.DATE)


def _split(key: str) -> tuple[str, str | None]:
    lowered = ascii_lower(key)
    for suffix, bound in _OPERATORS.items():
        if lowered.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)], bound
    return key, None


def _item(template: Template | None, field: str) -> Item | None:
    if template is None:
        return None
    item = template.item_named(field)
    if item is None:
        names = ", ".join(i.name for i in template.items)
        raise InvalidValue(f"{field} is not an item of template {template.ref.text} ({names})")
    return item


def _fits(kind: ItemType, raw: str) -> bool:
    if kind is ItemType.DATE:
        return parse_date(raw) is not None
    return parse_number(raw) is not None


def driver(counts: Sequence[int]) -> int | None:
    """Which condition's set to fetch: the smallest. None when one matches nothing (so
    nothing can match); refused when even the smallest is too large to check."""
    smallest = min(range(len(counts)), key=lambda i: counts[i])
    if counts[smallest] == 0:
        return None
    if counts[smallest] > MAX_CANDIDATES:
        raise InvalidValue(
            f"every condition matches more than {MAX_CANDIDATES:,} identifiers "
            f"(the narrowest {counts[smallest]:,}); add a narrower condition"
        )
    return smallest


def page_of(handles: list[str], page: int, page_size: int) -> list[str]:
    start = page * page_size
    return handles[start : start + page_size]
