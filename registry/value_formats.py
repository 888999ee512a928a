"""Handle's structured data formats: ``vlist``, ``site`` and ``key``. Pure.

Handle's JSON (``GsonUtility`` in Handle's hdllib, the REST API's codec) gives a value's
data as ``{"format": F, "value": V}``; for three formats ``V`` is not a string:

=========  ========================================================================
``vlist``  HS_VLIST, a list of value references ``[{"handle": H, "index": I}, ...]``
``site``   HS_SITE, a site description: ``version``, ``protocolVersion`` ("M.m"),
           ``serialNumber``, ``primarySite``, ``multiPrimary``, ``hashOption``,
           ``hashFilter``, ``attributes`` (``[{"name", "value"}]``, or an object) and
           ``servers`` (``[{"serverId", "address", "publicKey", "interfaces"}]``, each
           interface ``{"query", "admin", "protocol", "port"}``)
``key``    a public key as Handle writes one: ``{"kty": "RSA", "n", "e"}`` or
           ``{"kty": "DSA", "y", "p", "q", "g"}``, numbers in unpadded base64url
=========  ========================================================================

Each parser checks the shape and returns the value in Handle's output form (site
attributes as a list, ``kty`` upper-cased, members in Handle's order), so what a node
stores is what it returns. Size limits are the caller's: it bounds the encoded JSON.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from registry.errors import InvalidHandle, InvalidValue
from registry.identifier import Handle

MAX_INDEX = 2**31 - 1
# Handle's interface protocols by name; other protocols are given as their number.
_PROTOCOLS = frozenset({"UDP", "TCP", "HTTP", "HTTPS"})
# The members of each key type Handle writes, in its order.
_KEY_MEMBERS: dict[str, tuple[str, ...]] = {"RSA": ("n", "e"), "DSA": ("y", "p", "q", "g")}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}", re.ASCII)
_PROTOCOL_VERSION = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}", re.ASCII)


@dataclass(frozen=True, slots=True)
class ValueRef:
    """A reference to one value of a handle: an HS_VLIST entry or a value's reference.

    >>> ValueRef("88.100/a", 1).to_json()
    {'handle': '88.100/a', 'index': 1}
    """

    handle: str
    index: int

    def to_json(self) -> dict[str, Any]:
        return {"handle": self.handle, "index": self.index}


def parse_refs(raw: object, where: str, what: str) -> tuple[ValueRef, ...]:
    """A list of ``{"handle", "index"}`` (HS_VLIST data, or a value's ``references``)."""
    if not isinstance(raw, list):
        raise InvalidValue(f"{where}: {what} must be a list of {{handle, index}}")
    return tuple(_ref(item, where, what) for item in raw)


def referenced_handle(item: dict[str, Any], where: str, what: str) -> str:
    """The ``handle`` member of a reference (an admin's, a vlist entry, a value's),
    checked to be a handle."""
    handle = item.get("handle")
    if not isinstance(handle, str):
        raise InvalidValue(f"{where}: {what} needs a 'handle' string")
    try:
        Handle.parse(handle)
    except InvalidHandle as exc:
        raise InvalidValue(f"{where}: {what} {handle[:80]!r} is not a valid handle") from exc
    return handle


def _ref(item: object, where: str, what: str) -> ValueRef:
    if not isinstance(item, dict):
        raise InvalidValue(f"{where}: each entry of {what} must be an object {{handle, index}}")
    handle = referenced_handle(item, where, f"each entry of {what}")
    index = item.get("index")
    if isinstance(index, str) and index.isascii() and index.isdigit() and len(index) <= 10:
        index = int(index)  # pyhandle-style lenience, as for a value's own index
    if type(index) is not int or not 0 <= index <= MAX_INDEX:
        raise InvalidValue(
            f"{where}: each entry of {what} needs an 'index' between 0 and {MAX_INDEX}"
        )
    return ValueRef(handle, index)


def refs_from_stored(raw: list[dict[str, Any]]) -> tuple[ValueRef, ...]:
    return tuple(ValueRef(r["handle"], r["index"]) for r in raw)


def parse_key(raw: object, where: str) -> dict[str, str]:
    """A public key in Handle's JSON form, members checked as base64url."""
    if not isinstance(raw, dict):
        raise InvalidValue(f"{where}: key data must be an object with a 'kty'")
    kty = raw.get("kty")
    members = _KEY_MEMBERS.get(kty.upper()) if isinstance(kty, str) else None
    if members is None or not isinstance(kty, str):
        raise InvalidValue(f"{where}: key 'kty' must be one of {', '.join(_KEY_MEMBERS)}")
    out = {"kty": kty.upper()}
    for name in members:
        text = raw.get(name)
        if not isinstance(text, str) or not _BASE64URL.fullmatch(text) or not _b64url_ok(text):
            raise InvalidValue(f"{where}: {kty.upper()} key member {name!r} must be base64url")
        out[name] = text
    return out


def _b64url_ok(text: str) -> bool:
    try:
        base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return False
    return True


def parse_site(raw: object, where: str) -> dict[str, Any]:
    """An HS_SITE description, in Handle's member order."""
    if not isinstance(raw, dict):
        raise InvalidValue(f"{where}: site data must be an object with 'servers'")
    out: dict[str, Any] = {}
    for name in ("version", "serialNumber", "hashOption"):
        if name in raw:
            out[name] = _small_int(raw[name], f"{where}: site {name!r}", 0, MAX_INDEX)
    if "protocolVersion" in raw:
        version = raw["protocolVersion"]
        if not isinstance(version, str) or not _PROTOCOL_VERSION.fullmatch(version):
            raise InvalidValue(f"{where}: site 'protocolVersion' must be like \"2.10\"")
        out["protocolVersion"] = version
    for name in ("primarySite", "multiPrimary"):
        if name in raw:
            if not isinstance(raw[name], bool):
                raise InvalidValue(f"{where}: site {name!r} must be true or false")
            out[name] = raw[name]
    if "hashFilter" in raw:
        if not isinstance(raw["hashFilter"], str):
            raise InvalidValue(f"{where}: site 'hashFilter' must be a string")
        out["hashFilter"] = raw["hashFilter"]
    if "attributes" in raw:
        out["attributes"] = _attributes(raw["attributes"], where)
    servers = raw.get("servers")
    if not isinstance(servers, list) or not servers:
        raise InvalidValue(f"{where}: site data needs a non-empty 'servers' list")
    out["servers"] = [_server(s, where) for s in servers]
    # Handle's order: version, protocolVersion, serialNumber, primarySite, multiPrimary,
    # hashOption, hashFilter, attributes, servers.
    order = (
        "version",
        "protocolVersion",
        "serialNumber",
        "primarySite",
        "multiPrimary",
        "hashOption",
        "hashFilter",
        "attributes",
        "servers",
    )
    return {name: out[name] for name in order if name in out}


def _small_int(raw: object, what: str, low: int, high: int) -> int:
    if type(raw) is not int or not low <= raw <= high:
        raise InvalidValue(f"{what} must be an integer between {low} and {high}")
    return raw


def _attributes(raw: object, where: str) -> list[dict[str, str]]:
    """Site attributes as Handle writes them, a list of ``{name, value}``; an object
    ``{name: value or [values]}`` is accepted too, as Handle reads it."""
    pairs: list[tuple[object, object]] = []
    if isinstance(raw, list):
        for item in raw:
            if not isinstance(item, dict):
                raise InvalidValue(f"{where}: each site attribute must be {{name, value}}")
            pairs.append((item.get("name"), item.get("value")))
    elif isinstance(raw, dict):
        for name, value in raw.items():
            pairs.extend((name, v) for v in (value if isinstance(value, list) else [value]))
    else:
        raise InvalidValue(f"{where}: site 'attributes' must be a list of {{name, value}}")
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidValue(f"{where}: site attribute names and values must be strings")
    return [{"name": str(n), "value": str(v)} for n, v in pairs]


def _server(raw: object, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidValue(f"{where}: each site server must be an object with an 'address'")
    out: dict[str, Any] = {}
    if "serverId" in raw:
        out["serverId"] = _small_int(raw["serverId"], f"{where}: 'serverId'", 0, MAX_INDEX)
    address = raw.get("address")
    try:
        ipaddress.ip_address(address if isinstance(address, str) else "")
    except ValueError:
        raise InvalidValue(f"{where}: each site server needs an IP 'address'") from None
    out["address"] = address
    if "publicKey" in raw:
        out["publicKey"] = _server_key(raw["publicKey"], where)
    interfaces = raw.get("interfaces")
    if not isinstance(interfaces, list):
        raise InvalidValue(f"{where}: each site server needs an 'interfaces' list")
    out["interfaces"] = [_interface(i, where) for i in interfaces]
    return out


def _server_key(raw: object, where: str) -> dict[str, Any]:
    """A server's key: ``{"format": "key", "value": {...}}``, or base64 bytes."""
    if isinstance(raw, dict) and raw.get("format") == "key":
        return {"format": "key", "value": parse_key(raw.get("value"), where)}
    if isinstance(raw, dict) and raw.get("format") == "base64":
        text = raw.get("value")
        try:
            base64.b64decode(text if isinstance(text, str) else "-", validate=True)
        except (binascii.Error, ValueError):
            raise InvalidValue(f"{where}: server 'publicKey' is not valid base64") from None
        return {"format": "base64", "value": text}
    raise InvalidValue(f"{where}: server 'publicKey' must be {{format: key|base64, value}}")


def _interface(raw: object, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidValue(f"{where}: each server interface must be an object")
    query, admin = raw.get("query", False), raw.get("admin", False)
    if not isinstance(query, bool) or not isinstance(admin, bool):
        raise InvalidValue(f"{where}: interface 'query' and 'admin' must be true or false")
    protocol = raw.get("protocol")
    if not (protocol in _PROTOCOLS or (type(protocol) is int and 0 <= protocol <= 127)):
        raise InvalidValue(
            f"{where}: interface 'protocol' must be one of {', '.join(sorted(_PROTOCOLS))}"
        )
    port = _small_int(raw.get("port"), f"{where}: interface 'port'", 0, 65535)
    return {"query": query, "admin": admin, "protocol": protocol, "port": port}
