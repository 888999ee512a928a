"""The handle value model: ``{index, type, data{format, value}, ttl, timestamp}``.

Input is lenient the way the Handle REST API is (``data`` may be a bare string meaning
format ``string``; ``index`` and ``ttl`` may be numeric strings; an admin value's inner
``index`` may be a string, as pyhandle sends it) and output is always the full form.
Timestamps are set by the node, never taken from the client.
"""

from __future__ import annotations

import base64
import binascii
import string
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from registry.errors import InvalidHandle, InvalidValue
from registry.identifier import Handle, ascii_lower
from registry.limits import Limits
from registry.rights import PRESETS, format_permissions, parse_permissions

MAX_INDEX = 2**31 - 1
ADMIN_PERMISSION_BITS = 12
# Handle's twelve HS_ADMIN bits (see registry.rights). This default grants all but
# listing and the derived-prefix rights, as Handle servers do for a handle's own
# administrator.
DEFAULT_ADMIN_PERMISSIONS = "011111110011"
ADMIN_TYPE = "HS_ADMIN"
SECRET_TYPE = "HS_SECKEY"
PUBKEY_TYPE = "HS_PUBKEY"
DEFAULT_ADMIN_INDEX = 100


class DataFormat(StrEnum):
    STRING = "string"
    BASE64 = "base64"
    HEX = "hex"
    ADMIN = "admin"


# The members as plain names, for the write path: Python 3.11 finds an Enum member
# through its metaclass's attribute hook (about 100 ns, four times a class attribute), and
# a batch compares thousands of values' formats several times each.
FORMAT_STRING = DataFormat.STRING
FORMAT_BASE64 = DataFormat.BASE64
FORMAT_HEX = DataFormat.HEX
FORMAT_ADMIN = DataFormat.ADMIN
_KNOWN_FORMATS = ", ".join(f.value for f in DataFormat)
_FORMATS = {f.value: f for f in DataFormat}  # a dict lookup: DataFormat(x) costs more


@dataclass(frozen=True, slots=True)
class AdminRef:
    """The data of an HS_ADMIN value: which identity administers the handle, with what rights."""

    handle: str
    index: int
    permissions: str

    def to_json(self) -> dict[str, Any]:
        return {"handle": self.handle, "index": self.index, "permissions": self.permissions}


# type -> (type_key, is_secret, is_admin, is_key)
_TYPE_FACTS: dict[str, tuple[str, bool, bool, bool]] = {}
_TYPE_FACTS_LIMIT = 10_000  # types are client text: the memory stays bounded
_CHECKED_TYPES: set[str] = set()  # types a client sent that passed from_input's checks


@dataclass(slots=True, eq=True)
class HandleValue:
    """One value of a handle record. Treat it as immutable (``stamped`` makes a changed
    copy); it is not a frozen dataclass only because records of a batch create thousands
    and frozen construction costs several times more.

    >>> v = HandleValue.from_input({"index": "1", "type": "URL", "data": "https://x"},
    ...                            now="2026-01-01T00:00:00Z", limits=Limits())
    >>> v.to_json()["data"]
    {'format': 'string', 'value': 'https://x'}
    """

    index: int
    type: str
    format: DataFormat
    value: str | AdminRef
    ttl: int
    timestamp: str
    public: bool = True  # publicly readable; else only with auth and the READ_VALUE right
    # Secret keys: never returned to anybody (only their hashes are stored).
    is_secret: bool = field(init=False, repr=False, compare=False)
    # Whether anonymous readers see this value; secret keys never are.
    is_public: bool = field(init=False, repr=False, compare=False)
    # The type with ASCII letters lowered: how indexes, filters and templates match it.
    type_key: str = field(init=False, repr=False, compare=False)
    # An HS_ADMIN value (any case): who administers the handle.
    is_admin: bool = field(init=False, repr=False, compare=False)
    # A credential an identity logs in with (HS_SECKEY or HS_PUBKEY, any case).
    is_key: bool = field(init=False, repr=False, compare=False)
    # to_json(), once made (see encoded).
    _encoded: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        facts = _TYPE_FACTS.get(self.type) or _type_facts(self.type)
        self.type_key, self.is_secret, self.is_admin, self.is_key = facts
        self.is_public = self.public and not self.is_secret

    def to_json(self) -> dict[str, Any]:
        data_value = self.value.to_json() if isinstance(self.value, AdminRef) else self.value
        out = {
            "index": self.index,
            "type": self.type,
            # A StrEnum is a str: JSON encoders write its value (no Enum.value lookup).
            "data": {"format": self.format, "value": data_value},
            "ttl": self.ttl,
            "timestamp": self.timestamp,
        }
        if not self.public:
            out["publicRead"] = False
        return out

    def encoded(self) -> dict[str, Any]:
        """``to_json()``, made once per value and shared by every record body that holds
        the value (a batch's records share most of theirs): never change what it returns."""
        encoded = self._encoded
        if encoded is None:
            encoded = self._encoded = self.to_json()
        return encoded

    def stamped(self, timestamp: str) -> HandleValue:
        return replace(self, timestamp=timestamp)

    @classmethod
    def from_stored(cls, obj: dict[str, Any]) -> HandleValue:
        """Rebuild a value this node encoded itself (trusted, no validation)."""
        data = obj["data"]
        fmt = DataFormat(data["format"])
        raw = data["value"]
        value: str | AdminRef = (
            AdminRef(raw["handle"], int(raw["index"]), raw["permissions"])
            if fmt is FORMAT_ADMIN
            else raw
        )
        public = obj.get("publicRead", True) is not False
        return cls(obj["index"], obj["type"], fmt, value, obj["ttl"], obj["timestamp"], public)

    @classmethod
    def from_input(cls, obj: object, *, now: str, limits: Limits) -> HandleValue:
        """Validate one value sent by a client; raise InvalidValue saying what is wrong."""
        if not isinstance(obj, dict):
            raise InvalidValue(f"each value must be a JSON object, got {_kind(obj)}")
        index = obj.get("index")
        if type(index) is not int or not 1 <= index <= MAX_INDEX:  # else the usual case
            index = _int_field(obj, "index", required=True, low=1, high=MAX_INDEX)
        type_ = obj.get("type")
        if type(type_) is not str or type_ not in _CHECKED_TYPES:  # else a type seen before
            type_ = _checked_type(type_, index)
        if len(type_) > limits.max_type_chars:
            raise InvalidValue(f"{_at(index)}: 'type' is longer than {limits.max_type_chars} chars")
        fmt, value = _parse_data(obj.get("data"), index, limits)
        if fmt is not FORMAT_ADMIN and (_TYPE_FACTS.get(type_) or _type_facts(type_))[2]:
            raise InvalidValue(f"{_at(index)}: an HS_ADMIN value needs data format 'admin'")
        ttl = obj.get("ttl")
        if ttl is None:
            ttl = limits.default_ttl
        elif type(ttl) is not int or not 0 <= ttl <= MAX_INDEX:
            ttl = _int_field(obj, "ttl", required=False, low=0, high=MAX_INDEX)
        public = obj.get("publicRead", True)
        if public is not True and public is not False:
            raise InvalidValue(f"{_at(index)}: 'publicRead' must be true or false")
        return cls(index, type_, fmt, value, ttl, now, public)


class BatchValues:
    """Values sent for the records of one batch, each distinct one parsed once: a batch's
    records repeat most of theirs (manufacturer, model, lot, production date), and a
    repeated value is then one shared ``HandleValue`` (values are never changed in place).

    >>> values = BatchValues(now="2026-01-01T00:00:00Z", limits=Limits())
    >>> sent = {"index": 2, "type": "MANUFACTURER", "data": "ACME"}
    >>> values.parse(sent) is values.parse(dict(sent))
    True
    """

    __slots__ = ("now", "limits", "holds_keys", "_parsed")

    def __init__(self, *, now: str, limits: Limits) -> None:
        self.now = now
        self.limits = limits
        self.holds_keys = False  # whether a value parsed so far is a key (``is_key``)
        self._parsed: dict[tuple[object, ...], HandleValue] = {}

    def parse(self, obj: object) -> HandleValue:
        """``HandleValue.from_input(obj)``; raises what it raises."""
        # The key holds every field from_input reads, with their types checked exactly:
        # True == 1 == 1.0 would otherwise share one key across a valid and a refused value.
        if type(obj) is not dict:
            return HandleValue.from_input(obj, now=self.now, limits=self.limits)
        index, type_, data = obj.get("index"), obj.get("type"), obj.get("data")
        ttl: object = None
        public: object = True
        if len(obj) > 3:  # else those three are all it holds: no ttl, no publicRead
            ttl, public = obj.get("ttl"), obj.get("publicRead", True)
        key: tuple[object, ...] | None = None
        if (
            type(index) is int
            and type(type_) is str
            and (ttl is None or type(ttl) is int)
            and (public is True or public is False)
        ):
            if type(data) is str:
                key = (index, type_, None, data, ttl, public)
            elif type(data) is dict:
                fmt, text = data.get("format", "string"), data.get("value")
                if type(fmt) is str and type(text) is str:
                    key = (index, type_, fmt, text, ttl, public)
        value = self._parsed.get(key) if key is not None else None
        if value is None:
            value = HandleValue.from_input(obj, now=self.now, limits=self.limits)
            self.holds_keys = self.holds_keys or value.is_key
            if key is not None:
                self._parsed[key] = value
        return value


def _checked_type(type_: object, index: int) -> str:
    """A value's type, checked (and remembered as checked)."""
    if not isinstance(type_, str) or not type_ or not type_.isprintable():
        raise InvalidValue(f"{_at(index)}: 'type' must be a non-empty printable string")
    if len(_CHECKED_TYPES) < _TYPE_FACTS_LIMIT:
        _CHECKED_TYPES.add(type_)
    return type_


def _type_facts(type_: str) -> tuple[str, bool, bool, bool]:
    """(type key, is a secret key, is HS_ADMIN, is a key) of a value's type, remembered: every
    encoding and index of a record asks for them, and a batch repeats a few types
    thousands of times. Callers look in ``_TYPE_FACTS`` first (a call costs more)."""
    upper = type_.upper()
    secret = upper == SECRET_TYPE
    facts = (ascii_lower(type_), secret, upper == ADMIN_TYPE, secret or upper == PUBKEY_TYPE)
    if len(_TYPE_FACTS) < _TYPE_FACTS_LIMIT:
        _TYPE_FACTS[type_] = facts
    return facts


def _at(index: int) -> str:
    """How messages name a value (built only when there is something to say)."""
    return f"value at index {index}"


def admin_value(identity_handle: str, identity_index: int, now: str, ttl: int) -> HandleValue:
    """The HS_ADMIN value a node adds to a new handle that was sent without one."""
    ref = AdminRef(identity_handle, identity_index, DEFAULT_ADMIN_PERMISSIONS)
    return HandleValue(DEFAULT_ADMIN_INDEX, ADMIN_TYPE, DataFormat.ADMIN, ref, ttl, now)


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO-8601 UTC with a Z, second precision, as Handle servers print it."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _kind(obj: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(obj), type(obj).__name__
    )


def _int_field(obj: dict[str, Any], name: str, *, required: bool, low: int, high: int) -> Any:
    raw = obj.get(name)
    if type(raw) is int and low <= raw <= high:  # the common case, checked first
        return raw
    if raw is None:
        if required:
            raise InvalidValue(f"a value is missing its '{name}'")
        return None
    if isinstance(raw, bool):
        raise InvalidValue(f"'{name}' must be an integer, got a boolean")
    if isinstance(raw, str) and raw.isascii() and raw.strip().isdigit() and len(raw) <= 12:
        raw = int(raw)
    if not isinstance(raw, int):
        shown = (
            repr(raw[:40])
            if isinstance(raw, str)
            else repr(raw)
            if isinstance(raw, float)
            else _kind(raw)
        )
        raise InvalidValue(f"'{name}' must be an integer, got {shown}")
    if not low <= raw <= high:
        raise InvalidValue(f"'{name}' must be between {low} and {high}, got {raw}")
    return raw


def _parse_data(data: object, index: int, limits: Limits) -> tuple[DataFormat, str | AdminRef]:
    if isinstance(data, str):  # a bare string: format string, the common case
        fmt = FORMAT_STRING
        value: object = data
    elif isinstance(data, dict):
        raw_format = data.get("format", "string")
        if not isinstance(raw_format, str):
            raise InvalidValue(
                f"{_at(index)}: data format must be one of {_KNOWN_FORMATS}, "
                f"got {_kind(raw_format)}"
            )
        found = _FORMATS.get(raw_format)
        if found is None:
            raise InvalidValue(
                f"{_at(index)}: unknown data format {raw_format[:40]!r}; "
                f"expected one of {_KNOWN_FORMATS}"
            )
        fmt, value = found, data.get("value")
    else:
        raise InvalidValue(f"{_at(index)}: 'data' must be a string or {{format, value}}")
    if fmt is FORMAT_ADMIN:
        return fmt, _parse_admin(value, _at(index))
    if not isinstance(value, str):
        raise InvalidValue(f"{_at(index)}: data value of format {fmt.value} must be a string")
    # UTF-8 takes at most 4 bytes a character: short values need no encoding to check.
    if len(value) * 4 > limits.max_value_bytes and len(value.encode()) > limits.max_value_bytes:
        raise InvalidValue(
            f"{_at(index)}: data value is larger than {limits.max_value_bytes} bytes"
        )
    if fmt is FORMAT_BASE64:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidValue(f"{_at(index)}: data value is not valid base64") from None
    elif fmt is FORMAT_HEX and (len(value) % 2 or value.strip(string.hexdigits)):
        raise InvalidValue(f"{_at(index)}: data value is not valid hex (pairs of 0-9a-f)")
    return fmt, value


def _parse_admin(value: object, where: str) -> AdminRef:
    if not isinstance(value, dict):
        raise InvalidValue(f"{where}: admin data needs an object {{handle, index, permissions}}")
    handle = value.get("handle")
    if not isinstance(handle, str):
        raise InvalidValue(f"{where}: admin data needs a 'handle' string")
    try:
        Handle.parse(handle)
    except InvalidHandle as exc:
        raise InvalidValue(f"{where}: admin handle {handle!r} is not a valid handle") from exc
    index = _int_field(value, "index", required=True, low=1, high=MAX_INDEX)
    permissions = value.get("permissions", DEFAULT_ADMIN_PERMISSIONS)
    try:
        rights = parse_permissions(permissions if isinstance(permissions, str) else "")
    except ValueError:
        raise InvalidValue(
            f"{where}: admin permissions must be {ADMIN_PERMISSION_BITS} characters of 0 and 1 "
            f"or one of {', '.join(PRESETS)}"
        ) from None
    return AdminRef(handle, index, format_permissions(rights))
