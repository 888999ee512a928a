"""Which part of a node answers a resolution: its store, its recursive resolver, or a
referral. The decision is :func:`registry.hierarchy.route`; this class gathers the facts
it needs (cheapest first) and carries the answer out as bytes.

Order of work, per role::

    secondary / enterprise   store (one HGET) -> on a miss, delegated? 301 : 404
    top                      own prefix or a prefix record: store as above
                             below its prefix: cache -> on a miss, delegation lookup ->
                             walk to the responsible node (or its own store if none)
    recursive                cache -> on a miss, prefix records at the root -> walk
    any, prefix not held     non-recursive: 301 to the parent; recursive: as above
    any, prefix not national 301 with no referral (no node of the hierarchy holds it)
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from node.metrics import Outcome
from registry.authority import held_by_no_node
from registry.delegation import Delegations
from registry.errors import HandleNotFound, IdnodeError, NotResponsible
from registry.hierarchy import Route, Traits, delegation_candidates, holds, route, walk_candidates
from registry.identifier import Handle, Prefix
from registry.prefix_entry import PrefixEntry
from registry.record import rehandled
from registry.store import HandleStore
from resolver.cache import CacheStatus
from resolver.cache import Outcome as Cached
from resolver.recursion import Resolution, Resolver
from resolver.walk import Hop

_BODY_HEAD_LEN = len(b'{"responseCode":1,"handle":')
_CACHE_VALUES = {status: status.value.encode() for status in CacheStatus}


@dataclass(frozen=True, slots=True)
class Reply:
    """A resolution answer: status, body bytes, and how it was served (None: locally)."""

    status: int
    body: bytes
    cache: CacheStatus | None = None
    age: int | None = None
    source: str | None = None

    @property
    def found(self) -> bool:
        return self.status == 200

    @property
    def outcome(self) -> Outcome:
        """How this answer counts in the resolution metrics."""
        if self.cache is None:
            return Outcome.AUTHORITATIVE
        if self.cache is CacheStatus.HIT:
            return Outcome.CACHE_HIT if self.found else Outcome.NEGATIVE_HIT
        return Outcome.CACHE_MISS if self.cache is CacheStatus.MISS else Outcome.STALE

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """:meth:`headers` as ASGI wants them (the hot path's form)."""
        if self.cache is None:
            return []
        raw = [(b"x-cache", _CACHE_VALUES[self.cache])]
        if self.cache is not CacheStatus.MISS and self.age is not None:
            raw.append((b"age", b"%d" % self.age))
        if self.source:
            raw.append((b"x-resolved-by", self.source.encode()))
        return raw

    def headers(self) -> dict[str, str]:
        if self.cache is None:
            return {}
        headers = {"X-Cache": self.cache.value}
        if self.cache is not CacheStatus.MISS and self.age is not None:
            headers["Age"] = str(self.age)
        if self.source:
            headers["X-Resolved-By"] = self.source
        return headers


class Answerer:
    """Answers ``GET /api/handles/{handle}`` for any role.

    >>> answerer = Answerer(traits, own, store, delegations, resolver, None)  # doctest: +SKIP
    >>> (await answerer.answer(handle, "88.100.1/x")).cache               # doctest: +SKIP
    <CacheStatus.MISS: 'MISS'>
    """

    def __init__(
        self,
        traits: Traits,
        own: Prefix | None,
        store: HandleStore,
        delegations: Delegations | None,
        resolver: Resolver | None,
        parent_url: str | None,
    ) -> None:
        self.traits = traits
        self.own = own
        self.store = store
        self.delegations = delegations
        self.resolver = resolver
        self.parent_url = parent_url

    async def answer(self, handle: Handle, spelled: str, *, fresh: bool = False) -> Reply:
        """The answer for ``handle``, echoing the caller's spelling ``spelled``;
        ``fresh`` (``auth=true``) asks the responsible node past the cache, and means
        nothing where the node answers from its own store."""
        held = holds(self.own, handle)
        if not held and not handle.home_prefix.national:
            # Before any cache or upstream: no node of the hierarchy could answer.
            raise held_by_no_node(handle.home_prefix, handle=spelled)
        resolver = self.resolver
        if resolver is not None and (not held or self._below_own(handle)):
            locate = self._locate_delegated if held else self._locate_from_root
            try:
                resolution = await resolver.resolve(handle, locate, fresh=fresh)
            except IdnodeError as exc:
                exc.handle = exc.handle or spelled
                raise
            if resolution is not None:
                return _cached_reply(resolution, spelled)
            # Nothing delegates this handle away: this node is its home after all.
        elif not held:
            assert route(self.traits, held=False, away=False) is Route.REFER
            raise NotResponsible(
                f"Prefix {handle.home_prefix.text} doesn't live here"
                + (f"; ask {self.parent_url}" if self.parent_url else ""),
                handle=spelled,
                referral=self.parent_url,
            )
        return await self._local(handle, spelled)

    def _below_own(self, handle: Handle) -> bool:
        return self.own is not None and bool(delegation_candidates(self.own, handle))

    async def _local(self, handle: Handle, spelled: str) -> Reply:
        body = await self.store.public_body(handle)
        if body is not None:
            if not body.startswith(orjson.dumps(spelled), _BODY_HEAD_LEN):
                body = rehandled(body, spelled)
            return Reply(200, body)
        referral = None
        if self.delegations is not None and self.resolver is None:
            referral = await self.delegations.find(handle)
        if route(self.traits, held=True, away=referral is not None) is Route.REFER:
            assert referral is not None
            raise NotResponsible(
                f"Prefix {referral.prefix.text} is delegated to the node at {referral.url}",
                handle=spelled,
                referral=referral.url,
                referral_prefix=referral.prefix.text,
            )
        raise HandleNotFound(f"Handle {spelled} not found", handle=spelled)

    async def _locate_delegated(self, handle: Handle) -> Hop | None:
        """Top node: the node its registry names for the handle's prefix, if any, asked
        as responsible for that prefix."""
        assert self.delegations is not None
        referral = await self.delegations.find(handle)
        return Hop(referral.url, referral.prefix) if referral else None

    async def _locate_from_root(self, handle: Handle) -> Hop | None:
        """Recursive node: walk the prefix records at the root, longest prefix first.
        The root (configured) is trusted for everything; a node a record names, for
        that record's prefix."""
        root = self.parent_url
        if root is None:  # a top node asked for a prefix outside its own: nobody to ask
            raise NotResponsible(
                f"Prefix {handle.home_prefix.text} doesn't live here", handle=handle.text
            )
        assert self.resolver is not None
        at_root = Hop(root, None)
        if handle.is_prefix_record:
            return at_root

        async def ask_root(_: Handle) -> Hop:
            return at_root

        for prefix in walk_candidates(handle):
            found = await self.resolver.resolve(prefix.record_handle, ask_root)
            if found is None or found.entry.outcome is not Cached.FOUND:
                continue
            url = PrefixEntry.from_body(prefix, found.entry.body).delegates_away_from(root)
            if url:
                return Hop(url, prefix)
        return at_root


def _cached_reply(resolution: Resolution, spelled: str) -> Reply:
    entry = resolution.entry
    if entry.outcome is Cached.FOUND:
        body = entry.body
        if not body.startswith(orjson.dumps(spelled), _BODY_HEAD_LEN):
            body = rehandled(body, spelled)
        status = 200
    else:
        body = orjson.dumps(
            {"responseCode": 100, "handle": spelled, "message": f"Handle {spelled} not found"}
        )
        status = 404
    return Reply(status, body, resolution.status, resolution.age, entry.source)
