"""The handle value model: ``{index, type, data{format, value}, permissions, ttl,
timestamp, references}``, as Handle's REST API writes it.

Input is lenient the way the Handle REST API is (``data`` may be a bare string meaning
format ``string``; ``index`` and ``ttl`` may be numeric strings; an admin value's inner
``index`` may be a string, as pyhandle sends it) and output is always the full form.
Timestamps are set by the node, never taken from the client.

Handle's fields beyond the basic five, as Handle's JSON codec reads and writes them:

* ``permissions``: four bits, ``adminRead adminWrite publicRead publicWrite``, read
  from the right as Handle does (a shorter string leaves the leading bits at their
  default, 1: ``"00"`` is ``"1100"``); the default ``"1110"`` is left out of the
  output, as Handle does, so records without it keep their bytes. A value whose
  public-read bit is 0 never reaches an anonymous
  reader (see ``is_public``). ``"publicRead": false`` is kept as an alias of
  ``"permissions": "1100"``; both given and disagreeing is refused. Public write (the
  last bit, or ``"*"``) is refused: nodes never take anonymous writes. Admin read 0
  hides the value from authenticated readers as well; admin write 0 makes the value
  read-only: nobody may change it, though it may be removed (Handle's server:
  ``registry.record.check_writable``).
* ``ttl``: seconds, or an absolute expiry as an ISO-8601 date (stored and returned as
  ``YYYY-MM-DDTHH:MM:SSZ``); a string of digits still means seconds.
* ``references``: ``[{"handle", "index"}]``, returned when not empty.
* ``hex`` data is bytes: Handle returns it as ``string`` when the bytes are printable
  UTF-8 text and as ``base64`` otherwise, and so does a node (it converts on input).
* formats ``vlist``, ``site`` and ``key`` (see ``registry.value_formats``).
"""

from __future__ import annotations

import base64
import binascii
import string
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from registry.errors import InvalidValue, MalformedValue
from registry.identifier import ascii_lower
from registry.limits import Limits
from registry.rights import ALL_RIGHTS, PRESETS, format_permissions, parse_permissions
from registry.value_formats import (
    ValueRef,
    parse_key,
    parse_refs,
    parse_site,
    referenced_handle,
    refs_from_stored,
)

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
# A value's own permissions: adminRead, adminWrite, publicRead, publicWrite (Handle's
# default: everything but public write). Output leaves the default out, as Handle does.
DEFAULT_VALUE_PERMISSIONS = "1110"
PRIVATE_VALUE_PERMISSIONS = "1100"  # what "publicRead": false means
_VALUE_PERMISSIONS = frozenset(f"{a}{w}{r}0" for a in "01" for w in "01" for r in "01")


class DataFormat(StrEnum):
    STRING = "string"
    BASE64 = "base64"
    HEX = "hex"
    ADMIN = "admin"
    VLIST = "vlist"
    SITE = "site"
    KEY = "key"


# The members as plain names, for the write path: Python 3.11 finds an Enum member
# through its metaclass's attribute hook (about 100 ns, four times a class attribute), and
# a batch compares thousands of values' formats several times each.
FORMAT_STRING = DataFormat.STRING
FORMAT_BASE64 = DataFormat.BASE64
FORMAT_HEX = DataFormat.HEX
FORMAT_ADMIN = DataFormat.ADMIN
FORMAT_VLIST = DataFormat.VLIST
_STRUCTURED = frozenset({DataFormat.ADMIN, DataFormat.VLIST, DataFormat.SITE, DataFormat.KEY})
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


# What a value's data holds: text (string, base64, hex), an admin reference, an HS_VLIST,
# or a site or key description (plain JSON, in Handle's output form).
Data = str | AdminRef | tuple[ValueRef, ...] | dict[str, Any]


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
    >>> v.to_json()["data"] == {"format": "string", "value": "https://x"}
    True
    """

    index: int
    type: str
    format: DataFormat
    value: Data
    ttl: int | str  # seconds, or an absolute expiry (ISO-8601, as Handle writes it)
    timestamp: str
    # adminRead adminWrite publicRead publicWrite; see the module docstring.
    permissions: str = DEFAULT_VALUE_PERMISSIONS
    references: tuple[ValueRef, ...] = ()
    # The public-read bit: publicly readable; else only with auth and the READ_VALUE right.
    public: bool = field(init=False, repr=False, compare=False)
    # The admin-read bit: readable by an authenticated reader with the READ_VALUE right.
    admin_read: bool = field(init=False, repr=False, compare=False)
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
        permissions = self.permissions
        self.public = permissions is DEFAULT_VALUE_PERMISSIONS or permissions[2] == "1"
        self.admin_read = permissions is DEFAULT_VALUE_PERMISSIONS or permissions[0] == "1"
        self.is_public = self.public and not self.is_secret

    @property
    def readable_with_auth(self) -> bool:
        """Whether an authenticated reader holding READ_VALUE gets this value: public
        ones, and those whose admin-read bit is set; never secret keys."""
        return self.is_public or (self.admin_read and not self.is_secret)

    def to_json(self) -> dict[str, Any]:
        raw = self.value
        data_value = (
            raw
            if type(raw) is str
            else raw.to_json()
            if isinstance(raw, AdminRef)
            else [r.to_json() for r in raw]
            if isinstance(raw, tuple)
            else raw
        )
        # A StrEnum is a str: JSON encoders write its value (no Enum.value lookup).
        out: dict[str, Any] = {
            "index": self.index,
            "type": self.type,
            "data": {"format": self.format, "value": data_value},
        }
        # Handle's order: permissions (only when not the default) before ttl.
        if self.permissions != DEFAULT_VALUE_PERMISSIONS:
            out["permissions"] = self.permissions
        out["ttl"] = self.ttl
        out["timestamp"] = self.timestamp
        if self.references:
            out["references"] = [r.to_json() for r in self.references]
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

    def with_data(self, value: Data) -> HandleValue:
        """This value with other data (an HS_SECKEY's hash), every other field kept."""
        return replace(self, value=value)

    def content(self) -> tuple[object, ...]:
        """What a write changes when it changes this value (all but index and timestamp)."""
        return (
            self.type,
            self.format,
            self.value,
            self.ttl,
            self.permissions,
            self.references,
        )

    @classmethod
    def from_stored(cls, obj: dict[str, Any]) -> HandleValue:
        """Rebuild a value this node encoded itself (trusted, no validation). Records
        stored before ``permissions`` existed said ``"publicRead": false`` instead;
        those stored before hex input was converted hold ``hex`` data, converted here as
        input is (``string`` or ``base64``)."""
        data = obj["data"]
        fmt = DataFormat(data["format"])
        raw = data["value"]
        if fmt is FORMAT_HEX:  # stored before hex was converted on input: as it would be now
            fmt, raw = _from_bytes(bytes.fromhex(raw))
        value: Data = (
            AdminRef(raw["handle"], int(raw["index"]), raw["permissions"])
            if fmt is FORMAT_ADMIN
            else refs_from_stored(raw)
            if fmt is FORMAT_VLIST
            else raw
        )
        permissions = obj.get("permissions")
        if permissions is None:
            permissions = (
                DEFAULT_VALUE_PERMISSIONS
                if obj.get("publicRead", True) is not False
                else PRIVATE_VALUE_PERMISSIONS
            )
        refs = obj.get("references")
        references = refs_from_stored(refs) if refs else ()
        return cls(
            obj["index"],
            obj["type"],
            fmt,
            value,
            obj["ttl"],
            obj["timestamp"],
            permissions,
            references,
        )

    @classmethod
    def from_input(cls, obj: object, *, now: str, limits: Limits) -> HandleValue:
        """Validate one value sent by a client; raise InvalidValue saying what is wrong."""
        if not isinstance(obj, dict):
            raise MalformedValue(f"each value must be a JSON object, got {_kind(obj)}")
        index = obj.get("index")
        if type(index) is not int or not 1 <= index <= MAX_INDEX:  # else the usual case
            index = _int_field(
                obj, "index", required=True, low=1, high=MAX_INDEX, shape_error=MalformedValue
            )
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
            ttl = _ttl(obj, index)
        permissions = _permissions(obj, index)
        refs = obj.get("references")
        references = parse_refs(refs, _at(index), "'references'") if refs else ()
        return cls(index, type_, fmt, value, ttl, now, permissions, references)


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
        if type(obj) is dict and len(obj) == 3:
            # The usual value of a bulk load, {"index", "type", "data": {"format",
            # "value"}} and nothing else, keyed by those four alone (a shorter key than
            # the general one below, which it cannot be mistaken for): a third of the
            # checks, and this runs for every value of every record.
            data = obj.get("data")
            if type(data) is dict and len(data) == 2:
                index, type_ = obj.get("index"), obj.get("type")
                fmt, text = data.get("format"), data.get("value")
                if (
                    type(index) is int
                    and type(type_) is str
                    and type(fmt) is str
                    and type(text) is str
                ):
                    short = (index, type_, fmt, text)
                    value = self._parsed.get(short)
                    if value is None:
                        value = HandleValue.from_input(obj, now=self.now, limits=self.limits)
                        self.holds_keys = self.holds_keys or value.is_key
                        self._parsed[short] = value
                    return value
        if type(obj) is not dict:
            return HandleValue.from_input(obj, now=self.now, limits=self.limits)
        index, type_, data = obj.get("index"), obj.get("type"), obj.get("data")
        ttl: object = None
        public: object = True
        permissions: object = None
        references: object = None
        if len(obj) > 3:  # else those three are all it holds: no ttl, no publicRead
            ttl, public = obj.get("ttl"), obj.get("publicRead", True)
            permissions, references = obj.get("permissions"), obj.get("references")
        key: tuple[object, ...] | None = None
        if (
            type(index) is int
            and type(type_) is str
            and (ttl is None or type(ttl) is int)
            and (public is True or public is False)
            and (permissions is None or type(permissions) is str)
            and references is None  # values with references are rare: parsed each time
        ):
            if type(data) is str:
                key = (index, type_, None, data, ttl, public, permissions)
            elif type(data) is dict:
                fmt, text = data.get("format", "string"), data.get("value")
                if type(fmt) is str and type(text) is str:
                    key = (index, type_, fmt, text, ttl, public, permissions)
        value = self._parsed.get(key) if key is not None else None
        if value is None:
            value = HandleValue.from_input(obj, now=self.now, limits=self.limits)
            self.holds_keys = self.holds_keys or value.is_key
            if key is not None:
                self._parsed[key] = value
        return value


def _checked_type(type_: object, index: int) -> str:
    """A value's type, checked (and remembered as checked). Not a string at all is a
    body of the wrong shape; an empty or unprintable one an invalid value."""
    if not isinstance(type_, str):
        raise MalformedValue(f"{_at(index)}: 'type' must be a string, got {_kind(type_)}")
    if not type_ or not type_.isprintable():
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


def _int_field(
    obj: dict[str, Any],
    name: str,
    *,
    required: bool,
    low: int,
    high: int,
    shape_error: type[InvalidValue] = InvalidValue,
) -> Any:
    """An integer member (a numeric string is taken too); ``shape_error`` is raised
    when it is missing or not a number at all, InvalidValue when it is out of range."""
    raw = obj.get(name)
    if type(raw) is int and low <= raw <= high:  # the common case, checked first
        return raw
    if raw is None:
        if required:
            raise shape_error(f"a value is missing its '{name}'")
        return None
    if isinstance(raw, bool):
        raise shape_error(f"'{name}' must be an integer, got a boolean")
    if isinstance(raw, str) and raw.isascii() and raw.strip().isdigit():
        if len(raw) > 12:  # a number, just too large to be one of ours
            raise InvalidValue(f"'{name}' must be between {low} and {high}, got {raw[:20]}...")
        raw = int(raw)
    if not isinstance(raw, int):
        shown = (
            repr(raw[:40])
            if isinstance(raw, str)
            else repr(raw)
            if isinstance(raw, float)
            else _kind(raw)
        )
        raise shape_error(f"'{name}' must be an integer, got {shown}")
    if not low <= raw <= high:
        raise InvalidValue(f"'{name}' must be between {low} and {high}, got {raw}")
    return raw


def _parse_data(data: object, index: int, limits: Limits) -> tuple[DataFormat, Data]:
    if isinstance(data, str):  # a bare string: format string, the common case
        fmt = FORMAT_STRING
        value: object = data
    elif isinstance(data, dict):
        raw_format = data.get("format", "string")
        if not isinstance(raw_format, str):
            raise MalformedValue(
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
        raise MalformedValue(
            f"{_at(index)}: 'data' must be a string or {{format, value}}, got {_kind(data)}"
        )
    if fmt in _STRUCTURED:
        return fmt, _parse_structured(fmt, value, _at(index), limits)
    if not isinstance(value, str):
        raise MalformedValue(
            f"{_at(index)}: data value of format {fmt.value} must be a string, got {_kind(value)}"
        )
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
    elif fmt is FORMAT_HEX:
        if len(value) % 2 or value.strip(string.hexdigits):
            raise InvalidValue(f"{_at(index)}: data value is not valid hex (pairs of 0-9a-f)")
        return _from_bytes(bytes.fromhex(value))
    return fmt, value


def _from_bytes(raw: bytes) -> tuple[DataFormat, str]:
    """Bytes in Handle's output formats: ``string`` when they are printable UTF-8 text
    (line breaks and tabs allowed), else ``base64``. Handle keeps a value's bytes, not
    the format they were sent in, and chooses the format when it writes them."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return FORMAT_BASE64, base64.b64encode(raw).decode()
    if text.isprintable() or all(c.isprintable() or c in "\t\n\r" for c in text):
        return FORMAT_STRING, text
    return FORMAT_BASE64, base64.b64encode(raw).decode()


def _parse_structured(fmt: DataFormat, value: object, where: str, limits: Limits) -> Data:
    """The data of an admin, vlist, site or key value, checked and in output form."""
    parsed: Data
    if fmt is FORMAT_ADMIN:
        return _parse_admin(value, where)
    if fmt is FORMAT_VLIST:
        parsed = parse_refs(value, where, "vlist data")
        shown: object = [r.to_json() for r in parsed]
    elif fmt is DataFormat.SITE:
        parsed = shown = parse_site(value, where)
    else:
        parsed = shown = parse_key(value, where)
    if len(orjson.dumps(shown)) > limits.max_value_bytes:
        raise InvalidValue(f"{where}: data value is larger than {limits.max_value_bytes} bytes")
    return parsed


def _ttl(obj: dict[str, Any], index: int) -> int | str:
    """A ttl other than a plain number of seconds: a numeric string (seconds), or an
    absolute expiry as an ISO-8601 date, which Handle writes back as a date."""
    raw = obj.get("ttl")
    if isinstance(raw, str) and not raw.strip().isdigit():
        try:
            moment = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise InvalidValue(
                f"{_at(index)}: 'ttl' must be seconds or an ISO-8601 date, got {raw[:40]!r}"
            ) from None
        if moment.tzinfo is None:  # Handle reads dates without a zone as UTC
            moment = moment.replace(tzinfo=UTC)
        if not 0 <= moment.timestamp() <= MAX_INDEX:  # Handle keeps it as int seconds
            raise InvalidValue(f"{_at(index)}: 'ttl' date is out of range, got {raw[:40]!r}")
        return utc_timestamp(moment)
    ttl: int = _int_field(obj, "ttl", required=False, low=0, high=MAX_INDEX)
    return ttl


def _permissions(obj: dict[str, Any], index: int) -> str:
    """A value's four permission bits, from Handle's ``permissions`` or the
    ``publicRead`` alias."""
    public = obj.get("publicRead")
    if public is not None and public is not True and public is not False:
        raise InvalidValue(f"{_at(index)}: 'publicRead' must be true or false")
    permissions = obj.get("permissions")
    if permissions is None:
        return PRIVATE_VALUE_PERMISSIONS if public is False else DEFAULT_VALUE_PERMISSIONS
    if (
        isinstance(permissions, str)
        and 0 < len(permissions) < 4
        and not set(permissions) - {"0", "1"}
    ):
        # Handle reads the bits from the right (publicWrite is the last character) and
        # leaves those a short string does not reach at their defaults (adminRead,
        # adminWrite and publicRead 1): "00" is "1100", "010" is "1010". Difference: the
        # reference codec (GsonUtility.deserializePermissions) compares "length > n"
        # and so never reads the leftmost character ("0" changes nothing there, "0110"
        # keeps adminRead); here every character sent counts.
        permissions = DEFAULT_VALUE_PERMISSIONS[: 4 - len(permissions)] + permissions
    if permissions == DEFAULT_VALUE_PERMISSIONS:
        permissions = DEFAULT_VALUE_PERMISSIONS  # the shared object: __post_init__'s fast path
    elif permissions not in _VALUE_PERMISSIONS:
        if isinstance(permissions, str) and (
            permissions == "*" or (0 < len(permissions) <= 4 and permissions.endswith("1"))
        ):
            raise InvalidValue(
                f"{_at(index)}: public write (the last permissions bit) is not supported: "
                "values are written by their handle's administrators only"
            )
        raise InvalidValue(
            f"{_at(index)}: 'permissions' must be up to 4 characters of 0 and 1 "
            '(adminRead adminWrite publicRead publicWrite, read from the right), e.g. "1110"'
        )
    if public is not None and public != (permissions[2] == "1"):
        raise InvalidValue(
            f"{_at(index)}: 'publicRead' {str(public).lower()} contradicts "
            f"'permissions' {permissions!r}; send 'permissions' alone"
        )
    return permissions


def _parse_admin(value: object, where: str) -> AdminRef:
    if not isinstance(value, dict):
        raise InvalidValue(f"{where}: admin data needs an object {{handle, index, permissions}}")
    handle = referenced_handle(value, where, "admin data")
    index = _int_field(value, "index", required=True, low=1, high=MAX_INDEX)
    permissions = value.get("permissions", DEFAULT_ADMIN_PERMISSIONS)
    if permissions == "*":  # Handle: every right
        return AdminRef(handle, index, format_permissions(ALL_RIGHTS))
    if (
        isinstance(permissions, str)
        and 0 < len(permissions) < ADMIN_PERMISSION_BITS
        and not set(permissions) - {"0", "1"}
    ):
        # Handle reads the bits from the right (bit 0 is the last character): a shorter
        # string leaves the high rights unset, as zeros on the left would.
        permissions = permissions.rjust(ADMIN_PERMISSION_BITS, "0")
    try:
        rights = parse_permissions(permissions if isinstance(permissions, str) else "")
    except ValueError:
        raise InvalidValue(
            f"{where}: admin permissions must be up to {ADMIN_PERMISSION_BITS} characters of "
            f'0 and 1, "*", or one of {", ".join(PRESETS)}'
        ) from None
    return AdminRef(handle, index, format_permissions(rights))
