"""Handle records, how writes change them, and their Handle JSON form.

``public_body`` is the exact bytes a resolution answers with. Records are stored in a
compact form (:mod:`registry.stored_form`) that rebuilds these bytes; the node keeps hot
answers built in process (:mod:`registry.local_copy`), so the hot path neither
re-validates nor re-serialises. Stores written before layout 3 hold these JSON bodies
(and ``full_body`` beside them when some values are not public); they are still read.

The ``plan_*`` functions are the write semantics of the Handle REST API, free of I/O:
given the record as it is (or None) and what the client sent, they return the record as
it must become, or raise the error the client gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import Any

import orjson

from registry.errors import (
    HandleExists,
    HandleNotFound,
    InvalidValue,
    MalformedRequest,
    MalformedValue,
    ValueExists,
    ValueReadOnly,
    ValuesNotFound,
)
from registry.identifier import Handle, Identity, ascii_lower
from registry.limits import Limits
from registry.value import DEFAULT_ADMIN_INDEX, HandleValue, admin_value

_BODY_HEAD = b'{"responseCode":1,"handle":'
_index_of = attrgetter("index")


@dataclass(frozen=True, slots=True)
class HandleRecord:
    """A handle and its values, sorted by index.

    >>> rec = HandleRecord(Handle.parse("88.100/a"), ())
    >>> rec.public_body()
    b'{"responseCode":1,"handle":"88.100/a","values":[]}'
    """

    handle: Handle
    values: tuple[HandleValue, ...]

    def public_body(self) -> bytes:
        return _encode(self.handle.text, (v for v in self.values if v.is_public))

    def full_body(self) -> bytes | None:
        """The body with every value, or None when it would equal ``public_body``."""
        if all(v.is_public for v in self.values):
            return None
        return _encode(self.handle.text, self.values)

    def bodies(self) -> tuple[bytes, bytes | None]:
        """``public_body()`` and ``full_body()``, each value encoded once."""
        values = self.values
        shown = [v.encoded() for v in values if v.is_public]
        public_body = _wrap(self.handle.text, shown)
        if len(shown) == len(values):
            return public_body, None
        return public_body, _wrap(self.handle.text, [v.encoded() for v in values])

    def value_at(self, index: int) -> HandleValue | None:
        return next((v for v in self.values if v.index == index), None)

    @classmethod
    def decode(cls, body: bytes) -> HandleRecord:
        """Rebuild a record from a body this node stored."""
        obj = orjson.loads(body)
        values = tuple(HandleValue.from_stored(v) for v in obj["values"])
        return cls(Handle.parse(obj["handle"]), values)


def select(
    values: Sequence[HandleValue], indexes: frozenset[int], types: frozenset[str]
) -> list[HandleValue]:
    """The values a GET with ``index``/``type`` filters returns (either filter matches).

    Types match ASCII case-insensitively; ``types`` must already be lower-cased. A type
    ending in a period names a family, as in Handle (HANDLE.NET Technical Manual, REST
    API "Methods - GET Handle"; the reference server's ``Util.isParentTypeInArray``):
    ``url.`` matches ``URL`` itself and every ``URL.<sub>`` (``URL.mirror``), while a
    plain ``url`` matches only ``URL``.
    """
    families = tuple(t for t in types if t.endswith("."))
    if not families:  # the common case: one set lookup per value
        return [v for v in values if v.index in indexes or v.type_key in types]
    exact = types.union(t[:-1] for t in families)
    return [
        v
        for v in values
        if v.index in indexes or v.type_key in exact or v.type_key.startswith(families)
    ]


# How a stored value with ``hex`` data starts its data. JSON escapes the quotes of a
# string, so these bytes occur in a body only as a value's own format member.
_LEGACY_HEX = b'"format":"hex"'


def current_body(body: bytes) -> bytes:
    """A stored body as this node answers today. Records stored before hex input was
    converted (``registry.value``: Handle writes a value's bytes as ``string`` or
    ``base64``, never ``hex``) are re-encoded in those formats; a read-time conversion,
    so no migration rewrites a store. Every other body is returned as it is, after one
    substring search.

    >>> current_body(b'{"responseCode":1,"handle":"88.100/a","values":[]}')[-12:]
    b'"values":[]}'
    """
    if _LEGACY_HEX not in body:
        return body
    obj = orjson.loads(body)
    return _encode(obj["handle"], (HandleValue.from_stored(v) for v in obj["values"]))


def encode_values(handle_text: str, values: Iterable[HandleValue]) -> bytes:
    return _encode(handle_text, values)


def rehandled(body: bytes, handle_text: str) -> bytes:
    """The stored body answering for ``handle_text``, a differently cased spelling.

    Clients compare the ``handle`` they get with the one they asked for (pyhandle does),
    so a lookup echoes the caller's spelling. Spellings that match case-insensitively
    differ only in ASCII letters, so their JSON encodings have the same length and the
    name can be swapped in place without decoding the values.
    """
    name = orjson.dumps(handle_text)
    start = len(_BODY_HEAD)
    return body[:start] + name + body[start + len(name) :]


def values_in_body(raw: object, handle_text: str) -> list[Any]:
    """The values a PUT body holds, as sent (each still to be parsed).

    The shapes the HANDLE.NET Technical Manual's "Methods - PUT" accepts: a list of
    values, an object with a ``values`` list (its other members ignored), or one value
    object (``index``, ``type`` and ``data``, as the reference servlet recognises it).
    An object whose ``handle`` names another handle than the URL is refused (see
    :func:`check_named_handle`). Any other shape: MalformedValue (4), as the reference
    answers an entity it cannot read.
    """
    if isinstance(raw, dict):
        if "values" in raw:
            check_named_handle(raw, handle_text)
            items = raw["values"]
        elif {"index", "type", "data"} <= raw.keys():
            items = [raw]  # a single value
        else:
            items = None
    else:
        items = raw
    if not isinstance(items, list):
        raise MalformedValue(
            'the body must be {"values": [...]}, a JSON list of values or one value',
            handle=handle_text,
        )
    return items


def check_named_handle(raw: object, handle_text: str) -> None:
    """Refuse a body object whose ``handle`` member names another handle than
    ``handle_text``, the handle in the request URL, with PROTOCOL_ERROR (4), as the
    reference servlet does ("Mismatched handle"); names match ASCII case-insensitively,
    as handles do here. For ``mintNewSuffix`` the URL's handle is the stem: the servlet
    compares before the server appends the suffix."""
    named = raw.get("handle") if isinstance(raw, dict) else None
    if named is not None and (
        not isinstance(named, str) or ascii_lower(named) != ascii_lower(handle_text)
    ):
        raise MalformedRequest(
            f"the body names handle {str(named)[:300]!r}, the URL {handle_text!r}",
            handle=handle_text,
        )


def sent_indexes(values: Sequence[HandleValue], handle_text: str) -> frozenset[int]:
    """The indexes a PUT with ``index=various`` writes: those of the values sent (the
    manual: "the handle values given in the request entity should be added or
    replaced"). Without any value it would change nothing, so it is refused."""
    if not values:
        raise InvalidValue("index=various needs at least one value in the body", handle=handle_text)
    return frozenset(v.index for v in values)


def mint_stem(spelled: str) -> str:
    """What a minted suffix is appended to: ``88.100/STEM-`` for
    ``PUT /api/handles/88.100/STEM-?mintNewSuffix=true``; a bare prefix (``88.100``)
    gets its slash. The manual: "the handle to be created is formed by appending a
    random server-generated string to the {handle} parameter" (Methods - PUT).

    >>> mint_stem("88.100"), mint_stem("88.100/lot-")
    ('88.100/', '88.100/lot-')
    """
    stem = spelled if "/" in spelled else spelled + "/"
    Handle.parse(stem + "x")  # raises InvalidHandle for a bad prefix or stem
    return stem


def plan_replace(
    existing: HandleRecord | None,
    handle: Handle,
    values: Sequence[HandleValue],
    *,
    overwrite: bool,
    writer: Identity,
    now: str,
    limits: Limits,
) -> HandleRecord:
    """PUT without ``index``: the record becomes exactly ``values`` (plus a default admin)."""
    if existing is not None and not overwrite:
        raise HandleExists(f"Handle {existing.handle.text} already exists", handle=handle.text)
    taken = _check_unique(values)
    check_writable(existing, values, handle)
    final = list(values)
    if not any(v.is_admin for v in final):
        final.append(_default_admin(taken, writer, now, limits))
    return _finish(existing, handle, final, limits)


def plan_update(
    existing: HandleRecord | None,
    handle: Handle,
    values: Sequence[HandleValue],
    indexes: frozenset[int],
    *,
    overwrite: bool,
    writer: Identity,
    now: str,
    limits: Limits,
) -> HandleRecord:
    """PUT with ``index``: add or replace the values at those indexes, keep the rest.

    With ``overwrite=false`` an index that already holds a value is refused (Handle's
    ADD_VALUE); with ``overwrite=true`` it is replaced (MODIFY_VALUE). A handle that does
    not exist yet is created, with a default admin.
    """
    _check_unique(values)
    stray = sorted(v.index for v in values if v.index not in indexes)
    if stray:
        raise InvalidValue(
            f"values at indexes {stray} are not among the 'index' parameters {sorted(indexes)}",
            handle=handle.text,
        )
    if existing is None:
        return plan_replace(
            None, handle, values, overwrite=True, writer=writer, now=now, limits=limits
        )
    sent = {v.index: v for v in values}
    if not overwrite:
        taken = sorted(i for i in sent if existing.value_at(i) is not None)
        if taken:
            raise ValueExists(
                f"indexes {taken} already hold values and overwrite=false", handle=handle.text
            )
    check_writable(existing, values, handle)
    kept = [v for v in existing.values if v.index not in sent]
    return _finish(existing, handle, kept + list(sent.values()), limits)


def plan_remove(
    existing: HandleRecord | None, handle: Handle, indexes: frozenset[int]
) -> HandleRecord:
    """DELETE with ``index``: drop those values; at least one of them must exist."""
    if existing is None:
        raise HandleNotFound(f"Handle {handle.text} not found", handle=handle.text)
    if not any(existing.value_at(i) is not None for i in indexes):
        raise ValuesNotFound(
            f"Handle {existing.handle.text} has no values at indexes {sorted(indexes)}",
            handle=handle.text,
        )
    kept = tuple(v for v in existing.values if v.index not in indexes)
    return HandleRecord(existing.handle, kept)


def read_only_changes(before: HandleRecord | None, after: Sequence[HandleValue]) -> list[int]:
    """The indexes of ``before``'s read-only values (admin write 0) that ``after`` changes.

    Handle's server (``HandleServer.doModifyValue``): "if write access is not allowed
    by administrators, nobody can write", so a value whose permissions have admin
    write 0 keeps its content, permissions included, whoever writes. Removing it is
    no change in this sense: Handle removes such values (``doRemoveValue`` does not
    look at the bit), and so does a node, by DELETE with ``index`` or by a PUT whose
    values leave it out. Sending it again unchanged is allowed.
    """
    if before is None:
        return []
    frozen = {v.index: v for v in before.values if v.permissions[1] == "0"}
    if not frozen:  # the common case: no read-only value, nothing to compare
        return []
    return sorted(
        v.index for v in after if v.index in frozen and frozen[v.index].content() != v.content()
    )


def check_writable(
    before: HandleRecord | None, after: Sequence[HandleValue], handle: Handle
) -> None:
    """Raise ValueReadOnly (403, responseCode 401) when ``after`` changes a read-only
    value of ``before`` (:func:`read_only_changes`)."""
    changed = read_only_changes(before, after)
    if changed:
        raise ValueReadOnly(
            f"values at indexes {changed} of {handle.text} are read-only (their permissions "
            "have admin write 0): nobody may change them, though they may be removed",
            handle=handle.text,
        )


def _finish(
    existing: HandleRecord | None, handle: Handle, values: list[HandleValue], limits: Limits
) -> HandleRecord:
    if len(values) > limits.max_values_per_handle:
        raise InvalidValue(
            f"a handle holds at most {limits.max_values_per_handle} values, "
            f"this one would hold {len(values)}",
            handle=handle.text,
        )
    values.sort(key=_index_of)
    # An existing handle keeps the spelling it was created with (Handle preserves case).
    return HandleRecord(existing.handle if existing else handle, tuple(values))


def _check_unique(values: Sequence[HandleValue]) -> set[int]:
    """The values' indexes; raises InvalidValue when one repeats."""
    seen: set[int] = set()
    for v in values:
        if v.index in seen:
            raise InvalidValue(f"index {v.index} appears more than once")
        seen.add(v.index)
    return seen


def _default_admin(taken: set[int], writer: Identity, now: str, limits: Limits) -> HandleValue:
    """The admin value added at the first free index from 100 (``taken`` are in use)."""
    index = DEFAULT_ADMIN_INDEX
    while index in taken:
        index += 1
    return _admin_at(index, writer.handle.text, writer.index, now, limits.default_ttl)


@lru_cache(maxsize=256)
def _admin_at(index: int, handle_text: str, identity_index: int, now: str, ttl: int) -> HandleValue:
    """One shared value for every record of a batch (values are never changed in place)."""
    value = admin_value(handle_text, identity_index, now, ttl)
    return HandleValue(index, value.type, value.format, value.value, value.ttl, value.timestamp)


def _encode(handle_text: str, values: Iterable[HandleValue]) -> bytes:
    return _wrap(handle_text, [v.encoded() for v in values])


def _wrap(handle_text: str, values: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"responseCode": 1, "handle": handle_text, "values": values})
