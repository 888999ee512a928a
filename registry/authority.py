"""Who may answer for and write to which handles: pure rules, no I/O.

A node is authoritative for a set of prefixes (its *authority*); it answers and accepts
writes for handles homed under them and refers everything else away (responseCode 301).
Its prefixes follow the national policy (digit segments), and so does everything it
holds: ``88.T1`` lies under ``88`` in Handle's syntax, but no node of this hierarchy can
hold it, so the node holding ``88`` answers 301 for ``88.T1/x`` as for ``21.T14999/x``.
Identity ``300:0.NA/<P>`` is the administrator of prefix ``P``; what identities
may do is decided by :mod:`registry.permission`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from registry.errors import NotResponsible
from registry.identifier import Handle, Identity, Prefix


@dataclass(frozen=True, slots=True)
class Authority:
    """The prefixes a node holds.

    >>> auth = Authority.of(["88.100"])
    >>> auth.holds(Handle.parse("88.100.3/x")), auth.holds(Handle.parse("88.101/x"))
    (True, False)
    >>> auth.holds(Handle.parse("88.100.T1/x")), auth.holds(Handle.parse("21.T14999/x"))
    (False, False)
    """

    prefixes: tuple[Prefix, ...]

    @classmethod
    def of(cls, prefixes: Iterable[str]) -> Authority:
        return cls(tuple(Prefix.parse_national(p) for p in prefixes))

    def holds(self, handle: Handle) -> bool:
        return self.holds_prefix(handle.home_prefix)

    def holds_prefix(self, prefix: Prefix) -> bool:
        return prefix.national and any(p.contains(prefix) for p in self.prefixes)


def administered_prefix(identity: Identity) -> Prefix | None:
    """The prefix an identity administers (``P`` for ``300:0.NA/P``), or None."""
    return identity.administered_prefix


def held_by_no_node(prefix: Prefix, *, handle: str | None = None) -> NotResponsible:
    """The 301 for a prefix outside the national policy: no node of this hierarchy holds
    it, so there is no one to refer to (a parent would answer the same).

    >>> held_by_no_node(Prefix.parse("21.T14999")).referral is None
    True
    """
    return NotResponsible(
        f"Prefix {prefix.text} doesn't live here: no node of this hierarchy holds it "
        "(its prefixes are dot-separated ASCII digits, e.g. 88.100.1)",
        handle=handle,
    )
