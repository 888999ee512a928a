"""Recursive resolution: the cache first, then one walk through the hierarchy per miss.

::

    resolve(handle)
      in-process copy fresh? ──► HIT
      Redis entry fresh?     ──► HIT  (and keep an in-process copy)
      otherwise, once for all concurrent callers of this handle (single flight):
          locate the first node to ask, walk (resolver.walk), cache the outcome ──► MISS
          (cached only when the answering node's change feed is followed)
          the walk failed and the entry may still be served stale       ──► STALE
          the walk failed and nothing may be served ──► the upstream error (502/504)

The single flight runs as its own task, so a caller that goes away (client disconnect)
does not cancel the fetch the other callers are waiting for.

A node that cannot be reached is reported to the client as "unreachable" or "did not
answer in time", naming it: why the connection failed (refused, reset, TLS, DNS) goes
to the log only, so error answers cannot be used to scan ports behind this node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from registry.errors import ServiceError, UpstreamTimeout, UpstreamUnavailable
from registry.identifier import Handle, Prefix
from resolver.answer_cache import AnswerCache
from resolver.cache import CacheEntry, CacheStatus, Outcome, value_ttls
from resolver.target import TargetPolicy
from resolver.upstream import Upstream
from resolver.walk import STRICT, Answer, Hop, Walk

log = logging.getLogger("idnode.resolver")
Locate = Callable[[Handle], Awaitable[Hop | None]]
# Told of each node (and the prefix it is asked for) before it is asked; says whether
# its change feed is followed, i.e. whether its answers may be cached.
Follow = Callable[[str, Prefix | None], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Resolution:
    """An answer and how it was served (``X-Cache``, ``Age``)."""

    entry: CacheEntry
    status: CacheStatus
    age: int


class Resolver:
    """Resolves handles that live at other nodes.

    ``locate`` names the first node to ask for a handle and the prefix it is asked for,
    or None when the handle is not delegated anywhere (the caller then answers from its
    own store). ``follow`` is told of every node before it is asked, so the change feed
    of each node an answer can come from is followed
    (:meth:`resolver.invalidation.Follower.follow`); an answer from a node it does not
    follow is served but not cached. ``policy`` says which node URLs may be asked.

    >>> resolver = Resolver(cache, upstream, follow=follower.follow)  # doctest: +SKIP
    >>> (await resolver.resolve(Handle.parse("88.100.1/x"), locate)).status  # doctest: +SKIP
    <CacheStatus.MISS: 'MISS'>
    """

    def __init__(
        self,
        cache: AnswerCache,
        upstream: Upstream,
        *,
        follow: Follow | None = None,
        policy: TargetPolicy = STRICT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.upstream = upstream
        self.policy = cache.policy
        self.follow = follow
        self.targets = policy
        self.clock = clock
        self._flights: dict[str, asyncio.Task[Resolution | None]] = {}

    async def resolve(
        self, handle: Handle, locate: Locate, *, fresh: bool = False
    ) -> Resolution | None:
        """The answer for ``handle``: cached, or fetched from the node ``locate`` leads
        to. ``fresh`` (Handle's ``auth=true``, an authoritative resolution) skips the
        cache and never serves a stale copy; its answer refreshes the cache. Concurrent
        fresh requests share one fetch too, so they cannot multiply upstream traffic."""
        key = handle.key
        entry: CacheEntry | None = None
        if not fresh:
            entry = self.cache.local(key)
            if entry is not None:
                return Resolution(entry, CacheStatus.HIT, entry.age(self.clock()))
            entry = await self.cache.get(key)
            if entry is not None and entry.is_fresh(self.clock()):
                return Resolution(entry, CacheStatus.HIT, entry.age(self.clock()))
        # A fresh request must not join a fetch that may fall back to a stale copy.
        flight_key = f"auth:{key}" if fresh else key
        flight = self._flights.get(flight_key)
        if flight is None:
            flight = asyncio.ensure_future(self._fetch(handle, locate, entry))
            self._flights[flight_key] = flight
            flight.add_done_callback(lambda _: self._flights.pop(flight_key, None))
        return await asyncio.shield(flight)

    async def _fetch(
        self, handle: Handle, locate: Locate, stale: CacheEntry | None
    ) -> Resolution | None:
        asked_at = self.clock()
        try:
            start = await locate(handle)
            if start is None:
                return None
            walk = Walk(handle, start, self.targets)
            while True:
                followed = True
                if self.follow is not None:
                    followed = await self.follow(walk.node, walk.hop.prefix)
                answer = await self._ask(walk.hop, handle)
                if (resolved := walk.answered(answer)) is not None:
                    break
        except ServiceError:
            now = self.clock()
            if stale is not None and stale.may_serve_stale(now, self.policy.max_stale):
                return Resolution(stale, CacheStatus.STALE, stale.age(now))
            raise
        now = self.clock()
        ttls = value_ttls(resolved.body) if resolved.outcome is Outcome.FOUND else []
        entry = CacheEntry(
            resolved.outcome,
            resolved.body,
            resolved.source,
            fetched_at=now,
            fresh_until=now + self.policy.fresh_seconds(resolved.outcome, ttls),
        )
        if followed:
            await self.cache.put(handle.key, entry, asked_at=asked_at)
        return Resolution(entry, CacheStatus.MISS, 0)

    async def _ask(self, hop: Hop, handle: Handle) -> Answer:
        try:
            return await self.upstream.get_handle(hop.url, handle, label=hop.label)
        except (UpstreamTimeout, UpstreamUnavailable) as exc:
            log.info("resolving %s: %s", handle.text, exc.message)
            raise
