"""Enterprise applications to a secondary node (企业接入申请), and how they move. Pure.

::

    apply ──► PENDING ──approve──► APPROVED   prefix allocated, filed, credentials issued
                  │
                  ├────reject────► REJECTED   with the reason given; also every other
                  │                           pending application with the credit code
                  │                           of one that is approved (superseded)
                  └──lifetime────► EXPIRED    undecided for the node's application
                                              lifetime (7 days by default)

A decided application is final: approving or rejecting it again is a 409 Conflict.
The prefix is allocated the first time an approval is attempted and kept on the pending
application, so an approval that fails half-way (the top node was down) and is retried
gets the same prefix.

Squatting. Anyone may apply, anonymously, with any credit code, so a pending
application proves nothing: several pending applications may share a credit code, the
administrator sees them side by side and approves one, and approving it rejects the
others. Only an approved enterprise holds its credit code. What an applicant learns
about other applications is at most that the code is already registered
(:func:`blocks_application`); never an application id or state. At approval, who holds
the code decides (:func:`code_claim`):

=================================  ===========  =========================================
the code's holder                  claim        approval
=================================  ===========  =========================================
none                               FREE         goes on, taking the code
this application                   OURS         goes on (a retried approval)
another, approved                  REGISTERED   409: the code is registered
another, pending with a prefix     IN_APPROVAL  409: decide that one first (its
                                                approval was interrupted)
another, rejected, expired or      STALE        goes on, taking the code over
pending without a prefix (a store
written before this rule)
=================================  ===========  =========================================
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum, StrEnum
from typing import Any

from registry.credit_code import CreditCode
from registry.errors import Conflict, InvalidValue
from registry.identifier import Prefix
from registry.prefix_entry import MAX_FIELD_CHARS, PrefixEntry, PrefixKind, node_url_problem

REQUIRED = ("name", "creditCode", "industry", "contact")
OPTIONAL = ("nodeUrl",)
DEFAULT_LIFETIME = 7 * 86400  # seconds a pending application waits for a decision
SUPERSEDED = "another application with the same credit code was approved"


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class CodeClaim(Enum):
    """What an approval finds at its credit code (the table in the module docstring)."""

    FREE = "free"
    OURS = "ours"
    REGISTERED = "registered"
    IN_APPROVAL = "in approval"
    STALE = "stale"

    @property
    def proceeds(self) -> bool:
        return self in (CodeClaim.FREE, CodeClaim.OURS, CodeClaim.STALE)


@dataclass(frozen=True, slots=True)
class Application:
    """One enterprise's application.

    >>> app = Application.from_input("a1", {"name": "Wuhan Auto Parts", "industry": "auto",
    ...     "creditCode": "91350100M000100Y43", "contact": "ops@example.com"}, now="t0")
    >>> app.allocated("88.100.1").approved(now="t1").status
    <Status.APPROVED: 'approved'>
    """

    id: str
    name: str
    credit_code: str
    industry: str
    contact: str
    node_url: str
    submitted: str
    status: Status = Status.PENDING
    prefix: str = ""
    decided: str = ""
    reason: str = ""

    @classmethod
    def from_input(cls, id: str, obj: object, *, now: str) -> Application:
        """Validate an application body; raise InvalidValue naming the field at fault."""
        if not isinstance(obj, dict):
            raise InvalidValue("the body must be a JSON object with " + ", ".join(REQUIRED))
        unknown = set(obj) - set(REQUIRED) - set(OPTIONAL)
        if unknown:
            raise InvalidValue(
                f"unknown fields {sorted(unknown)}; known: {sorted(REQUIRED + OPTIONAL)}"
            )
        text: dict[str, str] = {}
        for name in REQUIRED + OPTIONAL:
            value = obj.get(name, "")
            if not isinstance(value, str):
                raise InvalidValue(f"{name!r} must be a string")
            value = value.strip()
            if name in REQUIRED and not value:
                raise InvalidValue(f"{name!r} is required")
            if len(value) > MAX_FIELD_CHARS or not value.isprintable():
                raise InvalidValue(f"{name!r} must be printable, at most {MAX_FIELD_CHARS} chars")
            text[name] = value
        if text["nodeUrl"] and (problem := node_url_problem(text["nodeUrl"])):
            raise InvalidValue(f"'nodeUrl': {problem}")
        return cls(
            id=id,
            name=text["name"],
            credit_code=CreditCode.parse(text["creditCode"]).text,
            industry=text["industry"],
            contact=text["contact"],
            node_url=text["nodeUrl"].rstrip("/"),
            submitted=now,
        )

    def _require_pending(self, action: str) -> None:
        if self.status is not Status.PENDING:
            raise Conflict(f"application {self.id} is already {self.status.value}; cannot {action}")

    def allocated(self, prefix: str) -> Application:
        self._require_pending("allocate a prefix")
        return replace(self, prefix=prefix)

    def approved(self, *, now: str) -> Application:
        self._require_pending("approve it")
        if not self.prefix:
            raise ValueError("allocate a prefix before approving")
        return replace(self, status=Status.APPROVED, decided=now)

    def rejected(self, reason: str, *, now: str) -> Application:
        self._require_pending("reject it")
        if not reason.strip() or len(reason) > MAX_FIELD_CHARS:
            raise InvalidValue(f"'reason' is required, at most {MAX_FIELD_CHARS} chars")
        return replace(self, status=Status.REJECTED, decided=now, reason=reason.strip())

    def expired(self, lifetime: float, *, now: str) -> Application:
        self._require_pending("let it expire")
        days = lifetime / 86400
        reason = f"not decided within {days:g} days" if days >= 1 else "not decided in time"
        return replace(self, status=Status.EXPIRED, decided=now, reason=reason)

    def entry(self, node_url: str) -> PrefixEntry:
        """The prefix record this application becomes; ``node_url`` is the node serving it
        (the enterprise's own node, or the secondary node hosting it)."""
        if not self.prefix:
            raise ValueError("no prefix allocated")
        return PrefixEntry(
            prefix=Prefix(self.prefix),
            node_url=node_url,
            kind=PrefixKind.ENTERPRISE,
            industry=self.industry,
            owner=self.name,
            credit_code=self.credit_code,
            contact=self.contact,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "creditCode": self.credit_code,
            "industry": self.industry,
            "contact": self.contact,
            "nodeUrl": self.node_url,
            "status": self.status.value,
            "submitted": self.submitted,
            "prefix": self.prefix,
            "decided": self.decided,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Application:
        """Rebuild an application this node stored (trusted)."""
        return cls(
            id=obj["id"],
            name=obj["name"],
            credit_code=obj["creditCode"],
            industry=obj["industry"],
            contact=obj["contact"],
            node_url=obj["nodeUrl"],
            submitted=obj["submitted"],
            status=Status(obj["status"]),
            prefix=obj["prefix"],
            decided=obj["decided"],
            reason=obj["reason"],
        )


def overdue(submitted_at: float, now: float, lifetime: float) -> bool:
    """Whether an application submitted at ``submitted_at`` (Unix seconds) has waited
    its ``lifetime`` (0: applications never expire).

    >>> overdue(0.0, 7 * 86400, DEFAULT_LIFETIME), overdue(0.0, 3600, DEFAULT_LIFETIME)
    (True, False)
    """
    return lifetime > 0 and now - submitted_at >= lifetime


def blocks_application(holder: Application | None) -> bool:
    """Whether the application holding a credit code refuses a new one with that code:
    only an approved enterprise does. A pending one proves nothing (anyone may apply
    with any code), so it must not stop the code's real owner from applying."""
    return holder is not None and holder.status is Status.APPROVED


def code_claim(applicant: Application, holder: Application | None) -> CodeClaim:
    """What approving ``applicant`` finds at its credit code, held by ``holder``."""
    if holder is None:
        return CodeClaim.FREE
    if holder.id == applicant.id:
        return CodeClaim.OURS
    if holder.status is Status.APPROVED:
        return CodeClaim.REGISTERED
    if holder.status is Status.PENDING and holder.prefix:
        return CodeClaim.IN_APPROVAL
    return CodeClaim.STALE


def next_enterprise_prefix(parent: str, counter: int) -> str:
    """The ``counter``-th enterprise prefix under ``parent``.

    >>> next_enterprise_prefix("88.100", 3)
    '88.100.3'
    """
    return f"{parent}.{counter}"
