"""Active invalidation: a recursive node follows the change feeds of the nodes it caches
answers from, and drops what changed.

How fresh is an answer served through the top node? Every ``interval`` seconds (default
1) the follower asks each node it has cached an answer from for the handles changed since
its cursor (``GET /api/changes?after=...``, see :mod:`registry.change_feed`) and removes
them from Redis and from its process. So a change or delete at the authoritative node is
seen through the top node within about ``interval`` plus one request, well inside the 5 s
bound; another worker process may keep its in-process copy for at most ``local_ttl``
(1 s) longer. If a node cannot be reached, its entries simply wait for the next round,
and the TTL of every entry remains the backstop.

Before a node is asked anything for the first time, the follower reads its feed's
"from now on" cursor (``GET /api/changes`` without ``after``): every later change is
seen, and none that the first answer already reflects, whatever the clocks say. If that
read fails (the node is down, slow, or has no feed), the node is followed from that
moment minus a margin for clock skew instead, so a change between its answer and the
first poll is still seen (at the cost of dropping answers about handles changed just
before), and the read is not tried again.
Cursors live in Redis beside the cache they describe, so a restarted node picks up where
it left off.

A node's feed is trusted only for what that node answers for: the follower keeps, for
each node, the prefixes it was asked as responsible for (:class:`Followed`), and

* a handle its feed names is dropped only if it lies under one of them (anything else,
  a non-string, a malformed handle, is ignored and logged once per node);
* a gap (cursor older than the feed's retention), a new epoch (a replaced store) or a
  page longer than asked for drops that node's own answers only
  (:meth:`resolver.answer_cache.AnswerCache.drop_source`), never the whole cache;
* at most ``max_nodes`` nodes are followed (:data:`MAX_PREFIXES` prefixes each); an
  answer from a node beyond that is served but not cached, since no feed would
  invalidate it. A node not asked for ``expiry`` seconds (the longest an entry from it
  can be kept) is forgotten, in memory and in Redis; saved cursors loaded at start-up
  obey the same rules.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from registry.change_feed import StreamId
from registry.errors import IdnodeError, InvalidHandle
from registry.identifier import Handle, Prefix
from registry.redis_client import STORE_ERRORS
from resolver.answer_cache import AnswerCache
from resolver.upstream import Upstream

log = logging.getLogger("idnode.resolver")
CURSORS_KEY = "inv:cursors"
PAGE = 1000
MAX_PAGES_PER_ROUND = 20
MAX_NODES = 1024
MAX_PREFIXES = 64  # prefixes one node is followed for
SKEW_MARGIN = 5.0
FOLLOW_TIMEOUT = 1.0  # at most, for the first read of a node's feed (before its answer)
MAX_EPOCH_CHARS = 64
EVERYTHING = "*"  # how a node trusted for every prefix (a configured root) is saved


@dataclass(slots=True)
class Followed:
    """Where a node's feed is read from, for which prefixes, and when it was last asked.

    ``prefixes`` holds None for a node trusted for everything (a recursive node's root).

    >>> f = Followed("E1", StreamId.parse("5-0"), 100.0, {Prefix("88.101")})
    >>> Followed.decode(f.encode()) == f, f.covers(Handle.parse("88.101.7/x"))
    (True, True)
    """

    epoch: str
    cursor: StreamId
    asked_at: float
    prefixes: set[Prefix | None]

    def covers(self, handle: Handle) -> bool:
        """Whether this node answers for ``handle``, so its feed may drop it."""
        if None in self.prefixes:
            return True
        current: Prefix | None = handle.home_prefix
        while current is not None:
            if current in self.prefixes:
                return True
            current = current.parent
        return False

    def holds(self, prefix: Prefix | None) -> bool:
        """Whether this node is already followed for ``prefix``."""
        if None in self.prefixes:
            return True
        return prefix is not None and any(p.contains(prefix) for p in self.prefixes if p)

    def encode(self) -> str:
        names = sorted(EVERYTHING if p is None else p.text for p in self.prefixes)
        return f"{self.epoch} {self.cursor} {self.asked_at:.0f} {','.join(names)}"

    @classmethod
    def decode(cls, raw: str) -> Followed:
        """Raises ValueError (or InvalidHandle) for what is not :meth:`encode`'s form,
        including the form older versions saved, which named no prefixes."""
        epoch, cursor, asked_at, names = raw.split(" ")
        prefixes = {None if n == EVERYTHING else Prefix.parse(n) for n in names.split(",")}
        return cls(epoch, StreamId.parse(cursor), float(asked_at), prefixes)


@dataclass(frozen=True, slots=True)
class FeedPage:
    """One page of a change feed, as far as it can be trusted."""

    epoch: str
    next: StreamId
    more: bool
    gap: bool
    handles: list[object]

    @classmethod
    def parse(cls, raw: Any) -> FeedPage | None:
        """The page, or None when it is not a change-feed page at all.

        >>> FeedPage.parse({"epoch": "E", "next": "1-0", "more": False, "gap": False,
        ...                 "handles": ["88.100/a"]}).handles
        ['88.100/a']
        >>> FeedPage.parse({"epoch": 5}) is None
        True
        """
        if not isinstance(raw, dict):
            return None
        epoch, cursor, handles = raw.get("epoch"), raw.get("next"), raw.get("handles")
        more, gap = raw.get("more"), raw.get("gap")
        if not (
            isinstance(epoch, str)
            and len(epoch) <= MAX_EPOCH_CHARS
            and epoch.isprintable()
            and " " not in epoch  # saved space-separated (Followed.encode)
            and isinstance(cursor, str)
            and type(more) is bool
            and type(gap) is bool
            and isinstance(handles, list)
        ):
            return None
        try:
            after = StreamId.parse(cursor)
        except (ValueError, IdnodeError):
            return None
        return cls(epoch, after, more, gap, handles)


def droppable(names: Iterable[object], followed: Followed) -> tuple[list[str], int]:
    """The cache keys of the handles a feed named that its node answers for, and how
    many other names it sent (not strings, not handles, or under a prefix it does not
    answer for: ignored).

    >>> node = Followed("", StreamId.parse("0-0"), 0.0, {Prefix("88.101")})
    >>> droppable(["88.101.1/A", "88.100/b", 7, "nonsense"], node)
    (['88.101.1/a'], 3)
    """
    keys: list[str] = []
    ignored = 0
    for name in names:
        if not isinstance(name, str):
            ignored += 1
            continue
        try:
            handle = Handle.parse(name)
        except InvalidHandle:
            ignored += 1
            continue
        if followed.covers(handle):
            keys.append(handle.key)
        else:
            ignored += 1
    return keys, ignored


class Follower:
    """Follows the change feeds of upstream nodes for one answer cache.

    >>> follower = Follower(redis, cache, upstream, interval=1.0)          # doctest: +SKIP
    >>> await follower.follow("http://192.0.2.1:8001", Prefix("88.100"))   # doctest: +SKIP
    True
    >>> await follower.poll_once()                                          # doctest: +SKIP
    0
    """

    def __init__(
        self,
        redis: Redis,
        cache: AnswerCache,
        upstream: Upstream,
        *,
        interval: float,
        max_nodes: int = MAX_NODES,
        expiry: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.cache = cache
        self.upstream = upstream
        self.interval = interval
        self.max_nodes = max_nodes
        # Entries from a node may be held this long after it was last asked.
        self.expiry = cache.policy.longest_keep if expiry is None else expiry
        self.clock = clock
        self._followed: dict[str, Followed] = {}
        self._warned: set[str] = set()  # nodes whose feed named foreign handles (logged)
        self._full_warned = False

    @property
    def nodes(self) -> list[str]:
        return sorted(self._followed)

    def prefixes(self, node: str) -> set[Prefix | None]:
        held = self._followed.get(node)
        return set(held.prefixes) if held else set()

    async def load(self) -> None:
        """Read the cursors a previous run of this node left in Redis: the most recently
        asked ``max_nodes`` that have not expired; the others are deleted."""
        try:
            raw = cast(dict[bytes, bytes], await self.redis.hgetall(CURSORS_KEY))
        except STORE_ERRORS as exc:
            log.warning("could not load change-feed cursors: %s", exc)
            return
        horizon = self.clock() - self.expiry
        kept: list[tuple[str, Followed]] = []
        stale: list[bytes] = []
        for node, value in raw.items():
            try:
                followed = Followed.decode(value.decode())
            except (ValueError, IdnodeError, UnicodeDecodeError):
                stale.append(node)  # unreadable, or saved before prefixes were
                continue
            if followed.asked_at < horizon:
                stale.append(node)
            else:
                kept.append((node.decode(), followed))
        kept.sort(key=lambda item: item[1].asked_at, reverse=True)
        stale += [node.encode() for node, _ in kept[self.max_nodes :]]
        self._followed.update(kept[: self.max_nodes])
        if stale:
            log.info("forgetting %d saved change-feed cursors", len(stale))
            await self._forget_saved(stale)

    async def follow(self, node: str, prefix: Prefix | None) -> bool:
        """Follow ``node`` for ``prefix`` (None: for everything) from now on, unless
        already following it; call it before asking ``node`` anything. Returns whether
        the node is followed for ``prefix``: if not, its answer must not be cached.

        A node whose feed cannot be read now (down, slow, or without one) is followed
        from now minus ``SKEW_MARGIN`` instead, so it costs one such try, not one per
        question."""
        now = self.clock()
        if node in self._followed:
            return await self._add_prefix(node, prefix, now)
        if not await self._room(now):
            return False
        timeout = min(self.upstream.timeout, FOLLOW_TIMEOUT)
        try:
            page = FeedPage.parse(
                await self.upstream.get_json(node, "/api/changes", {}, timeout=timeout)
            )
        except IdnodeError as exc:
            log.info("change feed of %s not read before asking it: %s", node, exc.message)
            page = None
        if page is None:
            log.info("following the change feed of %s from %.0f s ago", node, SKEW_MARGIN)
            return await self.track(node, prefix, now)
        # Two first questions to the same node can overlap: the earlier cursor is the one
        # that precedes both answers.
        held = self._followed.get(node)
        if held is None:
            if not await self._room(now):
                return False
            self._followed[node] = Followed(page.epoch, page.next, now, {prefix})
        elif page.next < held.cursor:
            held.epoch, held.cursor = page.epoch, page.next
        else:
            return await self._add_prefix(node, prefix, now)
        await self._save(node)
        return await self._add_prefix(node, prefix, now)

    async def track(self, node: str, prefix: Prefix | None, fetched_at: float) -> bool:
        """Follow ``node`` for ``prefix`` from ``fetched_at`` minus ``SKEW_MARGIN``,
        unless already following it: where :meth:`follow` starts a node whose feed it
        cannot read."""
        if node in self._followed:
            return await self._add_prefix(node, prefix, self.clock())
        if not await self._room(self.clock()):
            return False
        start = StreamId.at(fetched_at - SKEW_MARGIN)
        self._followed[node] = Followed("", start, self.clock(), {prefix})
        await self._save(node)
        return True

    async def _add_prefix(self, node: str, prefix: Prefix | None, now: float) -> bool:
        held = self._followed[node]
        held.asked_at = now
        if held.holds(prefix):
            return True
        if len(held.prefixes) >= MAX_PREFIXES:
            log.warning("%s is asked for more than %d prefixes: not caching", node, MAX_PREFIXES)
            return False
        # A new prefix above ones it had replaces them.
        held.prefixes = {p for p in held.prefixes if not (prefix and p and prefix.contains(p))}
        held.prefixes.add(prefix)
        await self._save(node)
        return True

    async def _room(self, now: float) -> bool:
        """Whether one more node may be followed, after forgetting expired ones."""
        if len(self._followed) < self.max_nodes:
            return True
        await self._expire(now)
        if len(self._followed) < self.max_nodes:
            return True
        if not self._full_warned:
            log.warning(
                "following %d change feeds already (the limit): answers from further "
                "nodes are not cached",
                self.max_nodes,
            )
            self._full_warned = True
        return False

    async def _expire(self, now: float) -> None:
        """Forget nodes not asked for ``expiry`` seconds, in memory and in Redis: every
        answer they gave has expired by then."""
        horizon = now - self.expiry
        gone = [node for node, held in self._followed.items() if held.asked_at < horizon]
        if not gone:
            return
        for node in gone:
            del self._followed[node]
            self._warned.discard(node)
        self._full_warned = False
        log.info("no longer following %d change feeds (not asked lately)", len(gone))
        await self._forget_saved([node.encode() for node in gone])

    async def run(self) -> None:
        """Poll every ``interval`` seconds until cancelled."""
        while True:
            started = self.clock()
            await self.poll_once()
            await asyncio.sleep(max(0.05, self.interval - (self.clock() - started)))

    async def poll_once(self) -> int:
        """One round over every followed node; returns how many handles were dropped."""
        await self._expire(self.clock())
        counts = await asyncio.gather(*(self._poll(node) for node in list(self._followed)))
        return sum(counts)

    async def _poll(self, node: str) -> int:
        dropped = 0
        try:
            for _ in range(MAX_PAGES_PER_ROUND):
                held = self._followed.get(node)
                if held is None:
                    break
                raw = await self.upstream.get_json(
                    node, "/api/changes", {"after": str(held.cursor), "limit": str(PAGE)}
                )
                page = FeedPage.parse(raw)
                if page is None:
                    log.warning("change feed of %s answered something that is not a page", node)
                    break
                replaced = bool(held.epoch) and page.epoch != held.epoch
                if page.gap or replaced or len(page.handles) > PAGE:
                    # Changes were missed (or the page is longer than asked for, which no
                    # honest node sends): whatever this node answered may be out of date.
                    log.warning("change feed of %s has a gap: dropping its answers", node)
                    dropped += await self.cache.drop_source(node)
                else:
                    keys, ignored = droppable(page.handles, held)
                    if ignored and node not in self._warned:
                        self._warned.add(node)
                        log.warning(
                            "change feed of %s named %d handles it does not answer for "
                            "(ignored; logged once)",
                            node,
                            ignored,
                        )
                    dropped += await self.cache.invalidate(keys)
                held.epoch, held.cursor = page.epoch, page.next
                await self._save(node)
                if not page.more:
                    break
        except IdnodeError as exc:
            log.debug("change feed of %s not read this round: %s", node, exc.message)
        return dropped

    async def _save(self, node: str) -> None:
        held = self._followed.get(node)
        if held is None:
            return
        try:
            await self.redis.hset(CURSORS_KEY, node, held.encode())
        except STORE_ERRORS as exc:
            log.warning("could not save the change-feed cursor of %s: %s", node, exc)

    async def _forget_saved(self, nodes: list[bytes]) -> None:
        try:
            await self.redis.hdel(CURSORS_KEY, *nodes)
        except STORE_ERRORS as exc:
            log.warning("could not delete change-feed cursors: %s", exc)
