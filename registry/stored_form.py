"""How a handle record is stored in Redis: a compact form, and the Handle JSON answer
built from it; free of I/O (:mod:`registry.store` moves the bytes).

A resolution answers Handle's full JSON, where every value repeats what is almost
always the same: ``"ttl":86400``, the timestamp of the write that made it, the
``"data":{"format":"string",...}`` wrapping, and the HS_ADMIN value naming the
prefix's own administrator. Stored that way a demo-shaped identifier's body is about
960 bytes, 600 of them the same in every record. The stored form leaves out what the
answer can be rebuilt from:

* one JSON array, ``[stamp, name?, value, value, ...]``: ``stamp`` the record's
  timestamp (the most common of its values'), as Unix seconds when it is in Handle's
  ``YYYY-MM-DDTHH:MM:SSZ`` form, else as text; ``name`` the handle as spelled at
  creation, present only when that differs from the key (ASCII lower case);
* each value ``[index, type, data]``, plus one object of what differs from the
  defaults: ``f`` format (default ``admin`` for HS_ADMIN, else ``string``), ``p``
  permissions (default ``1110``), ``l`` ttl (default 86400), ``t`` timestamp
  (default ``stamp``), ``r`` references as ``[[handle, index], ...]``;
* admin data as ``[handle, index, permissions]``, or ``0`` for the value a node adds
  by default for a prefix's own administrator (``0.NA/<prefix>``, index 300, the
  default rights); HS_VLIST data as ``[[handle, index], ...]``; site and key data as
  their JSON.

The store packs this form before writing it (:mod:`registry.packed_form`: zstd
with a dictionary, a first byte ``z``; 240 bytes become ~20 for a demo-shaped record)
and unpacks it before calling the functions here, which see only ``[`` and ``{``
bodies; :func:`is_compact` is true of packed bodies too (they are not Handle JSON).

Every value is stored, public or not: :func:`public_json` leaves out those an
anonymous reader must not see (the record used to be stored twice, public and full).
Bodies written before this form (JSON objects, starting with ``{``) are read as they
are, so a store converts lazily and its upgrade (:meth:`registry.store.HandleStore.upgrade`)
can be interrupted and resumed. The answer is byte for byte what
:meth:`registry.record.HandleRecord.public_body` gives (tests/registry/test_stored_form.py).

>>> from registry.value import admin_value
>>> rec = HandleRecord(Handle.parse("88.100/a"), (
...     admin_value("0.NA/88.100", 300, "2026-01-05T00:00:00Z", 86400),))
>>> to_stored(rec)
b'[1767571200,[100,"HS_ADMIN",0]]'
>>> public_json(to_stored(rec), Handle.parse("88.100/a")) == rec.public_body()
True
"""

from __future__ import annotations

import calendar
import time
from functools import lru_cache
from typing import Any

import orjson

from registry.identifier import Handle
from registry.record import HandleRecord, current_body
from registry.value import (
    ADMIN_TYPE,
    DEFAULT_ADMIN_PERMISSIONS,
    DEFAULT_VALUE_PERMISSIONS,
    FORMAT_ADMIN,
    FORMAT_STRING,
    FORMAT_VLIST,
    SECRET_TYPE,
    AdminRef,
    DataFormat,
    HandleValue,
)
from registry.value_formats import ValueRef

DEFAULT_TTL = 86400  # Limits().default_ttl today; a fixed part of the form, not a setting
PREFIX_ADMIN_INDEX = 300  # the index of a prefix administrator's key (0.NA/<prefix>)
_STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_LEGACY = ord("{")  # a body stored as Handle JSON, before this form
_FORMATS = {f.value: f for f in DataFormat}


def is_compact(stored: bytes) -> bool:
    """Whether ``stored`` is in this form (else a Handle JSON body of an older node)."""
    return stored[0] != _LEGACY


def to_stored(record: HandleRecord) -> bytes:
    """The stored form of ``record`` (every value, public or not)."""
    values = record.values
    handle = record.handle
    stamp = _record_stamp(values)
    out: list[Any] = [_stamp_code(stamp)]
    if handle.text != handle.key:
        out.append(handle.text)
    own_admin = "0.NA/" + handle.key.partition("/")[0]
    for v in values:
        out.append(_value_code(v, stamp, own_admin))
    return orjson.dumps(out)


def public_json(stored: bytes, handle: Handle) -> bytes:
    """The body a resolution of ``handle`` answers (its publicly readable values), in
    Handle's JSON, as stored bodies used to be; ``handle`` is the record's (any
    spelling: the name comes from the stored form)."""
    if stored[0] == _LEGACY:
        return current_body(stored)
    items = orjson.loads(stored)
    stamp = _stamp_text(items[0])
    start = 1
    name = handle.key
    if len(items) > 1 and type(items[1]) is str:
        name = items[1]
        start = 2
    own_admin = "0.NA/" + handle.key.partition("/")[0]
    shown = []
    for item in items[start:]:
        extra = item[3] if len(item) > 3 else None
        permissions = DEFAULT_VALUE_PERMISSIONS
        if extra is not None:
            permissions = extra.get("p", DEFAULT_VALUE_PERMISSIONS)
            if permissions[2] != "1":
                continue  # not publicly readable
        type_ = item[1]
        secret, default_format = _type_traits(type_)
        if secret:
            continue  # secret keys are never shown
        shown.append(_value_json(item, type_, default_format, extra, permissions, stamp, own_admin))
    return orjson.dumps({"responseCode": 1, "handle": name, "values": shown})


def from_stored(stored: bytes, handle: Handle, full: bytes | None = None) -> HandleRecord:
    """The record ``stored`` holds. ``full`` is the second body an older node kept
    beside a JSON one when some values were private (it then holds them all)."""
    if stored[0] == _LEGACY:
        return HandleRecord.decode(full or stored)
    items = orjson.loads(stored)
    stamp = _stamp_text(items[0])
    start = 1
    if len(items) > 1 and type(items[1]) is str:
        named = Handle.parse(items[1])
        start = 2
    else:
        named = handle if handle.text == handle.key else Handle.parse(handle.key)
    own_admin = "0.NA/" + handle.key.partition("/")[0]
    values = tuple(_value_of(item, stamp, own_admin) for item in items[start:])
    return HandleRecord(named, values)


def _record_stamp(values: tuple[HandleValue, ...]) -> str:
    """The most common timestamp of the values (the first of equally common ones)."""
    if not values:
        return ""
    first = values[0].timestamp
    for v in values:  # the common case: one write (a loop: no generator per record)
        if v.timestamp != first:
            break
    else:
        return first
    counts: dict[str, int] = {}
    for v in values:
        counts[v.timestamp] = counts.get(v.timestamp, 0) + 1
    return max(counts, key=counts.__getitem__)


@lru_cache(maxsize=1024)
def _stamp_code(stamp: str) -> int | str:
    """Unix seconds when ``stamp`` reads back exactly from them, else the text."""
    try:
        seconds = calendar.timegm(time.strptime(stamp, _STAMP_FORMAT))
    except ValueError:
        return stamp
    return seconds if _stamp_text(seconds) == stamp else stamp


@lru_cache(maxsize=1024)
def _stamp_text(code: int | str) -> str:
    if isinstance(code, str):
        return code
    return time.strftime(_STAMP_FORMAT, time.gmtime(code))


@lru_cache(maxsize=4096)
def _type_traits(type_: str) -> tuple[bool, DataFormat]:
    """(is a secret key, the format its values have unless stored otherwise), as
    :mod:`registry.value` tells types apart (Unicode upper case)."""
    upper = type_.upper()
    return upper == SECRET_TYPE, FORMAT_ADMIN if upper == ADMIN_TYPE else FORMAT_STRING


def _default_format(type_: str) -> DataFormat:
    return _type_traits(type_)[1]


def _value_code(v: HandleValue, stamp: str, own_admin: str) -> list[Any]:
    raw = v.value
    data: Any
    if isinstance(raw, AdminRef):
        if (
            raw.handle == own_admin
            and raw.index == PREFIX_ADMIN_INDEX
            and raw.permissions == DEFAULT_ADMIN_PERMISSIONS
        ):
            data = 0
        else:
            data = [raw.handle, raw.index, raw.permissions]
    elif isinstance(raw, tuple):
        data = [[r.handle, r.index] for r in raw]
    else:
        data = raw
    code: list[Any] = [v.index, v.type, data]
    extra: dict[str, Any] = {}
    if v.format is not _default_format(v.type):
        extra["f"] = v.format.value
    if v.permissions != DEFAULT_VALUE_PERMISSIONS:
        extra["p"] = v.permissions
    if v.ttl != DEFAULT_TTL:
        extra["l"] = v.ttl
    if v.timestamp != stamp:
        extra["t"] = _stamp_code(v.timestamp)
    if v.references:
        extra["r"] = [[r.handle, r.index] for r in v.references]
    if extra:
        code.append(extra)
    return code


def _own_admin_json(own_admin: str) -> dict[str, Any]:
    return {
        "handle": own_admin,
        "index": PREFIX_ADMIN_INDEX,
        "permissions": DEFAULT_ADMIN_PERMISSIONS,
    }


def _admin_ref(data: Any, own_admin: str) -> AdminRef:
    if data == 0:
        return AdminRef(own_admin, PREFIX_ADMIN_INDEX, DEFAULT_ADMIN_PERMISSIONS)
    return AdminRef(data[0], data[1], data[2])


def _value_json(
    item: list[Any],
    type_: str,
    default_format: str,
    extra: dict[str, Any] | None,
    permissions: str,
    stamp: str,
    own_admin: str,
) -> dict[str, Any]:
    """One value as :meth:`registry.value.HandleValue.to_json` writes it (same members,
    same order), straight from its stored form."""
    data = item[2]
    fmt = extra.get("f", default_format) if extra is not None else default_format
    if fmt == "admin":
        if data == 0:
            data = _own_admin_json(own_admin)
        else:
            data = {"handle": data[0], "index": data[1], "permissions": data[2]}
    elif fmt == "vlist":
        data = [{"handle": h, "index": i} for h, i in data]
    out: dict[str, Any] = {
        "index": item[0],
        "type": type_,
        "data": {"format": fmt, "value": data},
    }
    if extra is None:
        out["ttl"] = DEFAULT_TTL
        out["timestamp"] = stamp
        return out
    if permissions != DEFAULT_VALUE_PERMISSIONS:
        out["permissions"] = permissions
    out["ttl"] = extra.get("l", DEFAULT_TTL)
    at = extra.get("t")
    out["timestamp"] = stamp if at is None else _stamp_text(at)
    refs = extra.get("r")
    if refs:
        out["references"] = [{"handle": h, "index": i} for h, i in refs]
    return out


def _value_of(item: list[Any], stamp: str, own_admin: str) -> HandleValue:
    index, type_, data = item[0], item[1], item[2]
    extra: dict[str, Any] = item[3] if len(item) > 3 else {}
    fmt_name = extra.get("f")
    fmt = _default_format(type_) if fmt_name is None else _FORMATS[fmt_name]
    value: Any
    if fmt is FORMAT_ADMIN:
        value = _admin_ref(data, own_admin)
    elif fmt is FORMAT_VLIST:
        value = tuple(ValueRef(h, i) for h, i in data)
    else:
        value = data
    at = extra.get("t")
    refs = extra.get("r")
    return HandleValue(
        index,
        type_,
        fmt,
        value,
        extra.get("l", DEFAULT_TTL),
        stamp if at is None else _stamp_text(at),
        extra.get("p", DEFAULT_VALUE_PERMISSIONS),
        tuple(ValueRef(h, i) for h, i in refs) if refs else (),
    )
