"""Who may answer for and write to which handles: pure rules, no I/O.

A node is authoritative for a set of prefixes (its *authority*); it answers and accepts
writes for handles homed under them and refers everything else away (responseCode 301).
An identity ``<index>:0.NA/<P>`` is the administrator of prefix ``P``: it may write every
handle under ``P`` and its derived prefixes, including their ``0.NA`` prefix records.

::

    handle homed under        identity 300:0.NA/88.100    identity 300:0.NA/88.100.1
    88.100 / 88.100.1 / ...   write                        write only under 88.100.1
    0.NA/88.100.1             write                        write (its own record)
    99.1 (foreign)            refused (403)                refused (403)
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
    """The prefix an identity administers, or None for a plain (non-prefix) identity."""
    return identity.handle.described_prefix


def may_write(identity: Identity, handle: Handle) -> bool:
    """Whether ``identity`` may create, change or delete ``handle``."""
    prefix = administered_prefix(identity)
    return prefix is not None and prefix.contains(handle.home_prefix)
