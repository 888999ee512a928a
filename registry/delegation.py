"""Delegations: the prefixes under a node's own that its records hand to other nodes.

A node holding ``88.101`` that approved enterprise ``88.101.1`` with its own node keeps
``0.NA/88.101.1`` with ``NODE_URL`` naming that node; the top node keeps one record per
filed prefix naming the secondary node that serves it. Finding the node for a handle is
one pipelined read of the records of its candidate prefixes
(:func:`registry.hierarchy.delegation_candidates`), taking the longest that delegates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from registry.hierarchy import delegation_candidates
from registry.identifier import PREFIX_HANDLE_PREFIX, Handle, Prefix
from registry.prefix_entry import PrefixEntry
from registry.store import HandleStore


@dataclass(frozen=True, slots=True)
class Referral:
    """Handles under ``prefix`` are answered by the node at ``url``."""

    prefix: Prefix
    url: str


class Delegations:
    """Looks up delegation records in a node's store.

    >>> delegations = Delegations(store, Prefix("88"), "http://127.0.0.1:8000")  # doctest: +SKIP
    >>> await delegations.find(Handle.parse("88.100.1/x"))                      # doctest: +SKIP
    Referral(prefix=Prefix(text='88.100.1'), url='http://127.0.0.1:8001')
    """

    def __init__(self, store: HandleStore, own: Prefix, own_url: str) -> None:
        self.store = store
        self.own = own
        self.own_url = own_url

    async def find(self, handle: Handle) -> Referral | None:
        return (await self.find_many([handle]))[0]

    async def find_many(self, handles: Sequence[Handle]) -> list[Referral | None]:
        """The delegation covering each handle, if any, in one round trip."""
        # Handles of one prefix share their candidates (a batch is mostly one prefix).
        groups: dict[tuple[Prefix, bool], list[Prefix]] = {}
        keys = []
        for handle in handles:
            key = (handle.home_prefix, handle.is_prefix_record)
            if key not in groups:
                groups[key] = delegation_candidates(self.own, handle)
            keys.append(key)
        unique = list(dict.fromkeys(p for group in groups.values() for p in group))
        if not unique:
            return [None] * len(handles)
        bodies = await self.store.public_bodies([p.record_handle for p in unique])
        referrals: dict[Prefix, Referral] = {}
        for prefix, body in zip(unique, bodies, strict=True):
            if body is None:
                continue
            entry = PrefixEntry.from_body(prefix, body)
            url = entry.delegates_away_from(self.own_url)
            if url is not None:
                referrals[prefix] = Referral(prefix, url)
        found = {
            key: next((referrals[p] for p in group if p in referrals), None)
            for key, group in groups.items()
        }
        return [found[key] for key in keys]

    async def entry(self, prefix: Prefix) -> PrefixEntry | None:
        """What the record of ``prefix`` at this node says, if there is one."""
        body = await self.store.public_body(prefix.record_handle)
        return None if body is None else PrefixEntry.from_body(prefix, body)

    async def children(self, limit: int = 100_000) -> list[Referral]:
        """Every prefix this node's records hand to another node (the nodes a search
        across the hierarchy asks), in prefix order: for the top node its secondary
        nodes' prefixes and the enterprise prefixes filed under them; for a secondary
        node the enterprises running their own nodes."""
        records = Prefix(PREFIX_HANDLE_PREFIX)
        _, names = await self.store.list_handles(records, 0, limit)
        handles = [Handle.parse(name) for name in names]
        bodies = await self.store.public_bodies(handles)
        found = []
        for handle, body in zip(handles, bodies, strict=True):
            prefix = handle.described_prefix
            if body is None or prefix is None:
                continue
            url = PrefixEntry.from_body(prefix, body).delegates_away_from(self.own_url)
            if url is not None:
                found.append(Referral(prefix, url))
        return sorted(found, key=lambda r: tuple(int(s) for s in r.prefix.segments))
