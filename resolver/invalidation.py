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
it left off; a feed that reports a gap (cursor older than the feed's retention, or a
replaced store) makes the follower purge the whole cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from registry.change_feed import StreamId
from registry.errors import IdnodeError
from resolver.answer_cache import AnswerCache
from resolver.upstream import Upstream

log = logging.getLogger("idnode.resolver")
CURSORS_KEY = "inv:cursors"
PAGE = 1000
MAX_PAGES_PER_ROUND = 20
SKEW_MARGIN = 5.0
FOLLOW_TIMEOUT = 1.0  # at most, for the first read of a node's feed (before its answer)


class Follower:
    """Follows the change feeds of upstream nodes for one answer cache.

    >>> follower = Follower(redis, cache, upstream, interval=1.0)   # doctest: +SKIP
    >>> await follower.follow("http://127.0.0.1:8001")               # doctest: +SKIP
    >>> await follower.poll_once()                                   # doctest: +SKIP
    0
    """

    def __init__(
        self,
        redis: Redis,
        cache: AnswerCache,
        upstream: Upstream,
        *,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.cache = cache
        self.upstream = upstream
        self.interval = interval
        self.clock = clock
        self._cursors: dict[str, tuple[str, StreamId]] = {}  # node -> (epoch, cursor)

    @property
    def nodes(self) -> list[str]:
        return sorted(self._cursors)

    async def load(self) -> None:
        """Read the cursors a previous run of this node left in Redis."""
        try:
            raw = cast(dict[bytes, bytes], await self.redis.hgetall(CURSORS_KEY))
        except RedisError as exc:
            log.warning("could not load change-feed cursors: %s", exc)
            return
        for node, value in raw.items():
            epoch, _, cursor = value.decode().partition(" ")
            self._cursors[node.decode()] = (epoch, StreamId.parse(cursor))

    async def follow(self, node: str) -> None:
        """Follow ``node`` from now on, unless already following it; call it before
        asking ``node`` anything. A node whose feed cannot be read now (down, slow, or
        without one) is followed from now minus ``SKEW_MARGIN`` instead, so it costs
        one such try, not one per question."""
        if node in self._cursors:
            return
        timeout = min(self.upstream.timeout, FOLLOW_TIMEOUT)
        try:
            page = await self.upstream.get_json(node, "/api/changes", {}, timeout=timeout)
            start = (str(page["epoch"]), StreamId.parse(str(page["next"])))
        except (IdnodeError, KeyError, TypeError) as exc:
            log.info(
                "change feed of %s not read before asking it (%r): following it from %.0f s ago",
                node,
                exc,
                SKEW_MARGIN,
            )
            await self.track(node, self.clock())
            return
        # Two first questions to the same node can overlap: the earlier cursor is the one
        # that precedes both answers.
        held = self._cursors.get(node)
        if held is None or start[1] < held[1]:
            self._cursors[node] = start
            await self._save(node)

    async def track(self, node: str, fetched_at: float) -> None:
        """Follow ``node`` from ``fetched_at`` minus ``SKEW_MARGIN``, unless already
        following it: where :meth:`follow` starts a node whose feed it cannot read."""
        if node in self._cursors:
            return
        self._cursors[node] = ("", StreamId.at(fetched_at - SKEW_MARGIN))
        await self._save(node)

    async def run(self) -> None:
        """Poll every ``interval`` seconds until cancelled."""
        while True:
            started = self.clock()
            await self.poll_once()
            await asyncio.sleep(max(0.05, self.interval - (self.clock() - started)))

    async def poll_once(self) -> int:
        """One round over every followed node; returns how many handles were dropped."""
        counts = await asyncio.gather(*(self._poll(node) for node in list(self._cursors)))
        return sum(counts)

    async def _poll(self, node: str) -> int:
        dropped = 0
        try:
            for _ in range(MAX_PAGES_PER_ROUND):
                epoch, cursor = self._cursors[node]
                page = await self.upstream.get_json(
                    node, "/api/changes", {"after": str(cursor), "limit": str(PAGE)}
                )
                if page["gap"] or (epoch and page["epoch"] != epoch):
                    log.warning("change feed of %s has a gap: purging the cache", node)
                    await self.cache.purge()
                else:
                    dropped += await self.cache.invalidate(page["handles"])
                self._cursors[node] = (page["epoch"], StreamId.parse(page["next"]))
                await self._save(node)
                if not page["more"]:
                    break
        except IdnodeError as exc:
            log.debug("change feed of %s not read this round: %s", node, exc.message)
        except (KeyError, TypeError) as exc:
            log.warning("change feed of %s answered something unexpected: %r", node, exc)
        return dropped

    async def _save(self, node: str) -> None:
        epoch, cursor = self._cursors[node]
        try:
            await self.redis.hset(CURSORS_KEY, node, f"{epoch} {cursor}")
        except RedisError as exc:
            log.warning("could not save the change-feed cursor of %s: %s", node, exc)
