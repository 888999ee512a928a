"""Metadata templates (元数据模板): the data an identifier of one kind must carry.

A template belongs to a prefix, an industry's (``88.100``) or an enterprise's
(``88.100.2``), and has a name; together they read like a handle, ``88.100/battery-pack``.
Its items say which values an identifier declaring it holds: each item is a value
``type`` (its name) at a fixed ``index`` of 2000 or more, with a data type (string,
number, date, url, handle) and limits (required, length, range).

An item may be declared ``"queryable": true``: every node that has seen the template
then indexes that value type, so structured queries (``/api/query``) and reverse lookup
can use it (:mod:`registry.index_policy`); other items are checked but not indexed.

An identifier declares a template with a value of type ``TEMPLATE`` naming it,
``88.100/battery-pack`` (the latest published version) or ``88.100/battery-pack@2``
(that version). Every write of such an identifier is checked against the template, and
refused with one message per offending field (:class:`registry.errors.TemplateViolation`).

Versions::

    PUT (items)        PUT (items)          publish
    ─────────> draft ─────────> draft ─────────> published v1 ──> draft ──> published v2
                                                 (immutable)

A published version never changes. The next version starts as a draft and must keep
every item the published one has, with the same index and data type: an item that is
no longer wanted is disabled (``"enabled": false``: no longer required or checked), never
deleted, so identifiers written under an older version keep meaning what they meant.
Identifiers are not checked again when a new version is published; they stay readable.

Nothing here does I/O; :mod:`registry.template_store` keeps templates in Redis.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from registry.errors import InvalidHandle, InvalidValue, TemplateConflict, TemplateViolation
from registry.identifier import Handle, Identity, Prefix, ascii_lower, national_prefix_problem
from registry.value import DataFormat, HandleValue

TEMPLATE_TYPE = "TEMPLATE"
MIN_ITEM_INDEX = 2000
MAX_ITEMS = 200
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 1000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
# Possessive (never backtracking): every value a batch indexes is tried against it, and
# near-misses such as dates cost a third of the time they did with backtracking.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][-+]?[0-9]++)?\Z")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_MAX_NUMBER_CHARS = 40


class ItemType(StrEnum):
    """What an item's value must look like."""

    STRING = "string"
    NUMBER = "number"  # a decimal number: 75, -3.5, 1e3
    DATE = "date"  # an ISO-8601 calendar date: 2026-01-05
    URL = "url"  # an absolute http(s) URL
    HANDLE = "handle"  # another identifier, e.g. 88.100.2/HB75-0001 (a reference)


class State(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


def parse_number(text: str) -> float | None:
    """The number a value spells, or None (no NaN, no infinities, no hex)."""
    if len(text) > _MAX_NUMBER_CHARS or not _NUMBER.match(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def parse_date(text: str) -> date | None:
    if not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Item:
    """One field of a template: the value ``name`` at ``index``."""

    name: str
    index: int
    type: ItemType
    required: bool = False
    min_length: int | None = None
    max_length: int | None = None
    minimum: float | str | None = None  # a number, or an ISO date for date items
    maximum: float | str | None = None
    enabled: bool = True
    description: str = ""
    # Whether nodes index this item for reverse lookup and structured queries
    # (registry.index_policy): set per item, since every index costs memory per identifier.
    queryable: bool = False

    @property
    def key(self) -> str:
        return ascii_lower(self.name)

    def problem(self, value: HandleValue) -> str | None:
        """What is wrong with ``value`` for this item, or None."""
        if value.type_key != self.key:
            return f"index {self.index} is this item's; the value there has type {value.type!r}"
        if value.format is not DataFormat.STRING or not isinstance(value.value, str):
            return f"must be a string value, not format {value.format.value}"
        text = value.value
        if self.min_length is not None and len(text) < self.min_length:
            return f"must be at least {self.min_length} characters long, is {len(text)}"
        if self.max_length is not None and len(text) > self.max_length:
            return f"must be at most {self.max_length} characters long, is {len(text)}"
        return _TYPE_CHECKS[self.type](self, text)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "index": self.index,
            "type": self.type.value,
            "required": self.required,
            "enabled": self.enabled,
        }
        for key, limit in (
            ("minLength", self.min_length),
            ("maxLength", self.max_length),
            ("minimum", self.minimum),
            ("maximum", self.maximum),
        ):
            if limit is not None:
                out[key] = limit
        if self.description:
            out["description"] = self.description
        if self.queryable:
            out["queryable"] = True
        return out

    @classmethod
    def from_json(cls, obj: object, where: str = "item") -> Item:
        """An item as a client sends it (validated) or as stored."""
        if not isinstance(obj, dict):
            raise InvalidValue(f"{where}: an item is an object {{name, index, type, ...}}")
        name = obj.get("name")
        if not isinstance(name, str) or not _NAME.match(name) or len(name) > MAX_NAME_CHARS:
            raise InvalidValue(
                f"{where}: 'name' must be 1-{MAX_NAME_CHARS} letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        where = f"item {name}"
        index = obj.get("index")
        if isinstance(index, bool) or not isinstance(index, int):
            raise InvalidValue(f"{where}: 'index' must be an integer")
        if not MIN_ITEM_INDEX <= index <= 2**31 - 1:
            raise InvalidValue(f"{where}: 'index' must be {MIN_ITEM_INDEX} or more, got {index}")
        raw_type = obj.get("type")
        try:
            kind = ItemType(str(raw_type))
        except ValueError:
            known = ", ".join(t.value for t in ItemType)
            raise InvalidValue(f"{where}: 'type' must be one of {known}") from None
        item = cls(
            name=name,
            index=index,
            type=kind,
            required=_flag(obj, "required", False, where),
            min_length=_length(obj, "minLength", where),
            max_length=_length(obj, "maxLength", where),
            minimum=_bound(obj, "minimum", kind, where),
            maximum=_bound(obj, "maximum", kind, where),
            enabled=_flag(obj, "enabled", True, where),
            description=_text(obj, "description", where),
            queryable=_flag(obj, "queryable", False, where),
        )
        if (
            item.min_length is not None
            and item.max_length is not None
            and item.min_length > item.max_length
        ):
            raise InvalidValue(f"{where}: 'minLength' is larger than 'maxLength'")
        low, high = item.minimum, item.maximum
        if low is not None and high is not None and low > high:  # type: ignore[operator]
            raise InvalidValue(f"{where}: 'minimum' is larger than 'maximum'")
        return item


def _check_string(item: Item, text: str) -> str | None:
    return None


def _check_number(item: Item, text: str) -> str | None:
    number = parse_number(text)
    if number is None:
        return f"must be a number, got {text[:40]!r}"
    low, high = item.minimum, item.maximum
    if isinstance(low, int | float) and number < low:
        return f"must be at least {low}, got {text}"
    if isinstance(high, int | float) and number > high:
        return f"must be at most {high}, got {text}"
    return None


def _check_date(item: Item, text: str) -> str | None:
    if parse_date(text) is None:
        return f"must be a date YYYY-MM-DD, got {text[:40]!r}"
    low, high = item.minimum, item.maximum  # ISO dates compare correctly as text
    if isinstance(low, str) and text < low:
        return f"must be on or after {low}, got {text}"
    if isinstance(high, str) and text > high:
        return f"must be on or before {high}, got {text}"
    return None


def _check_url(item: Item, text: str) -> str | None:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"must be an absolute http(s) URL, got {text[:80]!r}"
    return None


def _check_handle(item: Item, text: str) -> str | None:
    try:
        Handle.parse(text)
    except InvalidHandle as exc:
        return f"must be an identifier such as 88.100.1/ABC: {exc.message}"
    return None


_TYPE_CHECKS = {
    ItemType.STRING: _check_string,
    ItemType.NUMBER: _check_number,
    ItemType.DATE: _check_date,
    ItemType.URL: _check_url,
    ItemType.HANDLE: _check_handle,
}


@dataclass(frozen=True, slots=True)
class Violation:
    """One field of an identifier that its template refuses."""

    field: str
    index: int | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "index": self.index, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class TemplateRef:
    """A template's name as identifiers write it: ``88.100/battery-pack[@2]``.

    >>> TemplateRef.parse("88.100/Battery-Pack@2")
    TemplateRef(prefix=Prefix(text='88.100'), name='Battery-Pack', version=2)
    """

    prefix: Prefix
    name: str
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> TemplateRef:
        base, at, version_text = text.strip().partition("@")
        prefix_text, slash, name = base.partition("/")
        if not slash:
            raise InvalidValue(f"a template is named <prefix>/<name>[@version], got {text[:80]!r}")
        problem = national_prefix_problem(prefix_text)  # templates live under our prefixes
        if problem is not None:
            raise InvalidValue(f"template {text[:80]!r}: invalid prefix: {problem}")
        prefix = Prefix(prefix_text)
        check_name(name)
        version: int | None = None
        if at:
            if not version_text.isascii() or not version_text.isdigit() or len(version_text) > 9:
                raise InvalidValue(f"template version must be a positive integer in {text!r}")
            version = int(version_text)
            if version < 1:
                raise InvalidValue(f"template version must be a positive integer in {text!r}")
        return cls(prefix, name, version)

    @property
    def key(self) -> str:
        return f"{self.prefix.text}/{ascii_lower(self.name)}"

    @property
    def text(self) -> str:
        base = f"{self.prefix.text}/{self.name}"
        return base if self.version is None else f"{base}@{self.version}"


def check_name(name: str) -> None:
    if not _NAME.match(name) or len(name) > MAX_NAME_CHARS:
        raise InvalidValue(
            f"a template name is 1-{MAX_NAME_CHARS} letters, digits, '_', '.' or '-', "
            f"starting with a letter or digit; got {name[:80]!r}"
        )


@dataclass(frozen=True, slots=True)
class Template:
    """One version of a template.

    >>> t = Template.draft(Prefix("88.100"), "battery-pack", {"items": [
    ...     {"name": "capacity_kwh", "index": 2001, "type": "number", "required": True,
    ...      "minimum": 1, "maximum": 200}]}, now="2026-01-05T00:00:00Z")
    >>> [str(v) for v in t.violations([])]
    ['capacity_kwh: is required (index 2001, number)']
    """

    prefix: Prefix
    name: str
    version: int  # a draft carries the version it will be published as
    state: State
    items: tuple[Item, ...]
    description: str = ""
    updated: str = ""

    @property
    def ref(self) -> TemplateRef:
        return TemplateRef(self.prefix, self.name, self.version)

    def item_at(self, index: int) -> Item | None:
        return next((i for i in self.items if i.index == index), None)

    @property
    def queryable_types(self) -> frozenset[str]:
        """The value types (keys) of the items declared ``"queryable": true``, which
        nodes index for this template's queries (:mod:`registry.index_policy`)."""
        return frozenset(i.key for i in self.items if i.queryable and i.enabled)

    def item_named(self, name: str) -> Item | None:
        key = ascii_lower(name)
        return next((i for i in self.items if i.key == key), None)

    def violations(self, values: Sequence[HandleValue]) -> list[Violation]:
        """Every field of a record's ``values`` this version refuses, in index order.

        Items are found by index. A required enabled item must be present; an enabled
        item's value must satisfy its type and limits; a disabled item is not checked (old
        identifiers keep it). A value at an index of 2000 or more that is no item of the
        template is refused, so a typo does not pass silently.
        """
        found: list[Violation] = []
        present = {v.index: v for v in values}
        for item in self.items:
            value = present.get(item.index)
            if not item.enabled:
                continue
            if value is None:
                if item.required:
                    found.append(
                        Violation(
                            item.name,
                            item.index,
                            f"is required (index {item.index}, {item.type.value})",
                        )
                    )
                continue
            problem = item.problem(value)
            if problem is not None:
                found.append(Violation(item.name, item.index, problem))
        for value in values:
            if value.index >= MIN_ITEM_INDEX and self.item_at(value.index) is None:
                found.append(
                    Violation(
                        value.type,
                        value.index,
                        f"index {value.index} is not an item of template {self.ref.text}",
                    )
                )
        found.sort(key=lambda v: v.index or 0)
        return found

    def check(self, values: Sequence[HandleValue], handle: str) -> None:
        """Raise TemplateViolation naming every refused field."""
        found = self.violations(values)
        if found:
            listed = "; ".join(str(v) for v in found)
            raise TemplateViolation(
                f"{handle} does not satisfy template {self.ref.text}: {listed}",
                handle=handle,
                violations=[v.to_json() for v in found],
            )

    def published(self, now: str) -> Template:
        return replace(self, state=State.PUBLISHED, updated=now)

    def to_json(self) -> dict[str, Any]:
        return {
            "template": f"{self.prefix.text}/{self.name}",
            "prefix": self.prefix.text,
            "name": self.name,
            "version": self.version,
            "state": self.state.value,
            "description": self.description,
            "updated": self.updated,
            "items": [i.to_json() for i in self.items],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Template:
        """A template this node stored (or another node sent)."""
        try:
            return cls(
                prefix=Prefix.parse(obj["prefix"]),
                name=obj["name"],
                version=int(obj["version"]),
                state=State(obj["state"]),
                items=tuple(Item.from_json(i) for i in obj["items"]),
                description=str(obj.get("description", "")),
                updated=str(obj.get("updated", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidValue(f"not a template: {exc!r}") from None

    @classmethod
    def draft(
        cls,
        prefix: Prefix,
        name: str,
        body: object,
        *,
        now: str,
        previous: Template | None = None,
    ) -> Template:
        """A new draft from a client's body ``{"description", "items": [...]}``,
        following the latest published version ``previous`` (if any)."""
        check_name(name)
        if not isinstance(body, dict):
            raise InvalidValue('a template is {"description": ..., "items": [...]}')
        raw_items = body.get("items")
        if not isinstance(raw_items, list) or not raw_items:
            raise InvalidValue("a template needs a non-empty list of 'items'")
        if len(raw_items) > MAX_ITEMS:
            raise InvalidValue(f"a template holds at most {MAX_ITEMS} items")
        items = tuple(
            sorted(
                (Item.from_json(raw, f"item {n}") for n, raw in enumerate(raw_items, 1)),
                key=lambda i: i.index,
            )
        )
        _check_distinct(items)
        template = cls(
            prefix=prefix,
            name=name if previous is None else previous.name,
            version=1 if previous is None else previous.version + 1,
            state=State.DRAFT,
            items=items,
            description=_text(body, "description", "template"),
            updated=now,
        )
        if previous is not None:
            template.check_follows(previous)
        return template

    def check_follows(self, previous: Template) -> None:
        """Raise TemplateConflict unless this draft keeps every item of ``previous``
        with its index and data type (items are disabled, never deleted)."""
        problems = []
        for old in previous.items:
            new = self.item_named(old.name)
            if new is None:
                problems.append(
                    f"item {old.name} (index {old.index}) is in published version "
                    f"{previous.version} and cannot be deleted; disable it with "
                    '"enabled": false'
                )
            elif new.index != old.index or new.type is not old.type:
                problems.append(
                    f"item {old.name} keeps index {old.index} and type {old.type.value} "
                    f"of published version {previous.version}"
                )
        if problems:
            raise TemplateConflict("; ".join(problems))


TEMPLATE_TYPE_KEY = "template"  # the type naming a record's template, ASCII-lowered


def declared(values: Iterable[HandleValue]) -> list[TemplateRef]:
    """The templates a record declares (its TEMPLATE values), in index order."""
    refs = []
    for value in values:
        if value.type_key == TEMPLATE_TYPE_KEY:
            if not isinstance(value.value, str) or value.format is not DataFormat.STRING:
                raise InvalidValue(f"value at index {value.index}: a TEMPLATE names a template")
            try:
                refs.append(TemplateRef.parse(value.value))
            except InvalidValue as exc:
                raise InvalidValue(f"value at index {value.index}: {exc.message}") from None
    return refs


def may_administer(identity: Identity, prefix: Prefix) -> bool:
    """Templates under ``prefix`` are written by the administrator of that prefix or of
    a prefix above it (``300:0.NA/88.100`` for ``88.100`` and ``88.100.2``)."""
    own = identity.administered_prefix
    return own is not None and own.contains(prefix)


def _check_distinct(items: Sequence[Item]) -> None:
    seen_index: set[int] = set()
    seen_name: set[str] = set()
    for item in items:
        if item.index in seen_index:
            raise InvalidValue(f"two items use index {item.index}")
        if item.key in seen_name:
            raise InvalidValue(f"two items are named {item.name}")
        seen_index.add(item.index)
        seen_name.add(item.key)


def _flag(obj: dict[str, Any], key: str, default: bool, where: str) -> bool:
    raw = obj.get(key, default)
    if not isinstance(raw, bool):
        raise InvalidValue(f"{where}: '{key}' must be true or false")
    return raw


def _length(obj: dict[str, Any], key: str, where: str) -> int | None:
    raw = obj.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 2**31 - 1:
        raise InvalidValue(f"{where}: '{key}' must be a non-negative integer")
    return raw


def _bound(obj: dict[str, Any], key: str, kind: ItemType, where: str) -> float | str | None:
    raw = obj.get(key)
    if raw is None:
        return None
    if kind is ItemType.NUMBER:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise InvalidValue(f"{where}: '{key}' must be a number")
        return raw
    if kind is ItemType.DATE:
        if not isinstance(raw, str) or parse_date(raw) is None:
            raise InvalidValue(f"{where}: '{key}' must be a date YYYY-MM-DD")
        return raw
    raise InvalidValue(f"{where}: '{key}' applies to number and date items only")


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    raw = obj.get(key, "")
    if not isinstance(raw, str) or len(raw) > MAX_DESCRIPTION_CHARS:
        raise InvalidValue(
            f"{where}: '{key}' must be text of at most {MAX_DESCRIPTION_CHARS} chars"
        )
    return raw
