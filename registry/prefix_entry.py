"""What a prefix record (``0.NA/<prefix>``) says about its prefix, as handle values.

The top node's prefix registry, a secondary node's enterprise records and every node's
own record are ordinary handles. Besides the ``HS_ADMIN`` (index 100) and the
``HS_SECKEY`` (index 300) that make ``300:0.NA/<prefix>`` an identity, a record carries
these values, all public::

    index  type          meaning
    1      NODE_URL      the node that answers for the prefix ("" = this node)
    2      PREFIX_KIND   top | secondary | enterprise
    3      INDUSTRY      e.g. automotive
    4      OWNER         the organisation holding the prefix
    5      STATUS        active | suspended
    6      CREDIT_CODE   the owner's unified social credit code (enterprises)
    7      CONTACT       how to reach the owner
    8      FILED_BY      the identity that registered or filed the record

A ``NODE_URL`` naming another node is a *delegation*: handles under the prefix live there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson

from registry.credit_code import credit_code_problem
from registry.errors import InvalidValue
from registry.identifier import Prefix
from registry.value import DataFormat, HandleValue

MAX_FIELD_CHARS = 512
E = TypeVar("E", bound=StrEnum)


class PrefixKind(StrEnum):
    TOP = "top"
    SECONDARY = "secondary"
    ENTERPRISE = "enterprise"


class PrefixStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


# field name in JSON -> (value index, value type)
FIELDS: dict[str, tuple[int, str]] = {
    "nodeUrl": (1, "NODE_URL"),
    "kind": (2, "PREFIX_KIND"),
    "industry": (3, "INDUSTRY"),
    "owner": (4, "OWNER"),
    "status": (5, "STATUS"),
    "creditCode": (6, "CREDIT_CODE"),
    "contact": (7, "CONTACT"),
    "filedBy": (8, "FILED_BY"),
}
ENTRY_INDEXES = frozenset(index for index, _ in FIELDS.values())


def node_url_problem(url: str) -> str | None:
    """None if ``url`` can name a node (http or https, a host, no query), else why not."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"a node URL must be a valid URL, got {url!r}"
    if parts.scheme not in ("http", "https"):
        return f"a node URL starts with http:// or https://, got {url!r}"
    if not parts.hostname:
        return f"a node URL names a host, got {url!r}"
    if parts.query or parts.fragment:
        return f"a node URL has no query or fragment, got {url!r}"
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"a node URL has a valid port, got {url!r}"
    return None


@dataclass(frozen=True, slots=True)
class PrefixEntry:
    """A prefix and what its record says about it.

    >>> entry = PrefixEntry(Prefix("88.100"), node_url="http://127.0.0.1:8001",
    ...                     kind=PrefixKind.SECONDARY, industry="automotive")
    >>> PrefixEntry.from_values(entry.prefix, entry.values("2026-01-01T00:00:00Z", 60)) == entry
    True
    """

    prefix: Prefix
    node_url: str = ""
    kind: PrefixKind = PrefixKind.ENTERPRISE
    industry: str = ""
    owner: str = ""
    status: PrefixStatus = PrefixStatus.ACTIVE
    credit_code: str = ""
    contact: str = ""
    filed_by: str = ""

    def delegates_away_from(self, own_url: str) -> str | None:
        """The node this record hands the prefix to, or None when it stays here."""
        url = self.node_url.rstrip("/")
        if not url or url == own_url.rstrip("/") or self.status is not PrefixStatus.ACTIVE:
            return None
        return url

    def values(self, now: str, ttl: int) -> list[HandleValue]:
        fields = self.to_json()
        return [
            HandleValue(index, type_, DataFormat.STRING, str(fields[name]), ttl, now)
            for name, (index, type_) in FIELDS.items()
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix.text,
            "nodeUrl": self.node_url,
            "kind": self.kind.value,
            "industry": self.industry,
            "owner": self.owner,
            "status": self.status.value,
            "creditCode": self.credit_code,
            "contact": self.contact,
            "filedBy": self.filed_by,
        }

    def signed(self, filed_by: str) -> PrefixEntry:
        return replace(self, filed_by=filed_by)

    @classmethod
    def from_values(cls, prefix: Prefix, values: Iterable[HandleValue]) -> PrefixEntry:
        """Read a stored record's values (unknown or missing ones take their defaults)."""
        by_index = {v.index: v.value for v in values if isinstance(v.value, str)}
        raw = {name: by_index.get(index, "") for name, (index, _) in FIELDS.items()}
        return cls(
            prefix=prefix,
            node_url=raw["nodeUrl"],
            kind=_enum(PrefixKind, raw["kind"], PrefixKind.ENTERPRISE),
            industry=raw["industry"],
            owner=raw["owner"],
            status=_enum(PrefixStatus, raw["status"], PrefixStatus.ACTIVE),
            credit_code=raw["creditCode"],
            contact=raw["contact"],
            filed_by=raw["filedBy"],
        )

    @classmethod
    def from_body(cls, prefix: Prefix, body: bytes) -> PrefixEntry:
        """Read a resolution answer for ``0.NA/<prefix>``, from this node or another;
        values that are not well-formed strings are ignored."""
        obj = orjson.loads(body)
        values = obj.get("values") if isinstance(obj, dict) else None
        fields: list[HandleValue] = []
        for v in values if isinstance(values, list) else []:
            data = v.get("data") if isinstance(v, dict) else None
            value = data.get("value") if isinstance(data, dict) else data
            index = v.get("index") if isinstance(v, dict) else None
            if type(index) is int and isinstance(value, str):
                assert isinstance(v, dict)
                fields.append(
                    HandleValue(index, str(v.get("type", "")), DataFormat.STRING, value, 0, "")
                )
        return cls.from_values(prefix, fields)

    @classmethod
    def from_input(
        cls, prefix: Prefix, obj: object, current: PrefixEntry | None = None
    ) -> PrefixEntry:
        """Validate a registration or filing body; raise InvalidValue naming the field.

        Fields the body leaves out keep their ``current`` values (so rotating a node's
        secret does not unregister it).
        """
        if not isinstance(obj, dict):
            raise InvalidValue("the body must be a JSON object of prefix fields")
        unknown = set(obj) - set(FIELDS) - {"prefix", "secret"}
        if unknown:
            raise InvalidValue(f"unknown fields {sorted(unknown)}; known: {sorted(FIELDS)}")
        if "prefix" in obj and obj["prefix"] != prefix.text:
            raise InvalidValue(f"'prefix' in the body ({obj['prefix']!r}) differs from the URL's")
        kept = current.to_json() if current is not None else {}
        text: dict[str, str] = {}
        for name in FIELDS:
            value = obj.get(name, kept.get(name, ""))
            if not isinstance(value, str):
                raise InvalidValue(f"{name!r} must be a string")
            if len(value) > MAX_FIELD_CHARS or not value.isprintable():
                raise InvalidValue(f"{name!r} must be printable, at most {MAX_FIELD_CHARS} chars")
            text[name] = value.strip()
        if text["nodeUrl"] and (problem := node_url_problem(text["nodeUrl"])):
            raise InvalidValue(f"'nodeUrl': {problem}")
        if text["creditCode"] and (problem := credit_code_problem(text["creditCode"])):
            raise InvalidValue(f"'creditCode': {problem}")
        return cls(
            prefix=prefix,
            node_url=text["nodeUrl"].rstrip("/"),
            kind=_choice(PrefixKind, "kind", text["kind"] or PrefixKind.ENTERPRISE.value),
            industry=text["industry"],
            owner=text["owner"],
            status=_choice(PrefixStatus, "status", text["status"] or PrefixStatus.ACTIVE.value),
            credit_code=text["creditCode"].upper(),
            contact=text["contact"],
        )


def _enum(kind: type[E], raw: str, default: E) -> E:
    try:
        return kind(raw)
    except ValueError:
        return default


def _choice(kind: type[E], name: str, raw: str) -> E:
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(k.value for k in kind)
        raise InvalidValue(f"{name!r} must be one of {allowed}, got {raw!r}") from None
