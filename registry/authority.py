"""Who may answer for and write to which handles: pure rules, no I/O.

A node is authoritative for a set of prefixes (its *authority*); it answers and accepts
writes for handles homed under them and refers everything else away (responseCode 301).
Identity ``300:0.NA/<P>`` is the administrator of prefix ``P``; what identities
may do is decided by :mod:`registry.permission`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from registry.identifier import Handle, Identity, Prefix


@dataclass(frozen=True, slots=True)
class Authority:
    """The prefixes a node holds.

    >>> auth = Authority.of(["88.100"])
    >>> auth.holds(Handle.parse("88.100.3/x")), auth.holds(Handle.parse("88.101/x"))
    (True, False)
    """

    prefixes: tuple[Prefix, ...]

    @classmethod
    def of(cls, prefixes: Iterable[str]) -> Authority:
        return cls(tuple(Prefix.parse(p) for p in prefixes))

    def holds(self, handle: Handle) -> bool:
        return self.holds_prefix(handle.home_prefix)

    def holds_prefix(self, prefix: Prefix) -> bool:
        return any(p.contains(prefix) for p in self.prefixes)


def administered_prefix(identity: Identity) -> Prefix | None:
    """The prefix an identity administers (``P`` for ``300:0.NA/P``), or None."""
    return identity.administered_prefix
