"""The answer cache of a recursive node: an in-process dict in front of Redis.

The cache is an optimisation: when Redis fails, lookups miss and stores are skipped
(the node keeps resolving through the hierarchy) and the failure is logged, not raised.

==================  ======  =====================================================
key                 type    holds
==================  ======  =====================================================
k:<handle key>      string  a :meth:`CacheEntry.encode` string (header line + the
                            body), expired by Redis once its stale window is over
src:<node url>      zset    the handle keys cached from that node, scored by when
                            their entry expires, so that the node's feed reporting
                            a gap drops its answers and only those, at a cost in
                            proportion to them (one ZSCAN page and one UNLINK per
                            1000). Members whose entry has expired are trimmed on
                            every store, so the set holds what the cache holds, not
                            every handle ever cached; the key itself expires with
                            the longest entry it can name (max TTL + max stale),
                            renewed on every store; about 70 bytes a member
==================  ======  =====================================================

A member of ``src:`` may name a key later cached from another node: dropping it then
costs a refetch, never a wrong answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import cast

from redis.asyncio import Redis

from registry.errors import StoreUnavailable
from registry.redis_client import STORE_ERRORS
from resolver.cache import CacheEntry, CachePolicy

log = logging.getLogger("idnode.resolver")
KEY_PREFIX = "k:"
SOURCE_PREFIX = "src:"
_DROP_BATCH = 1000
_RECENT_LIMIT = 10_000  # invalidation times kept before pruning ...
_RECENT_SECONDS = 60.0  # ... those older than any fetch can take


def cache_key(handle_key: str) -> str:
    return KEY_PREFIX + handle_key


def source_key(node: str) -> str:
    return SOURCE_PREFIX + node


class AnswerCache:
    """Cached answers by handle key.

    >>> cache = AnswerCache(redis, CachePolicy())      # doctest: +SKIP
    >>> await cache.put("88.100/a", entry)              # doctest: +SKIP
    >>> cache.local("88.100/a") == entry                # doctest: +SKIP
    True
    """

    def __init__(
        self, redis: Redis, policy: CachePolicy, clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = redis
        self.policy = policy
        self.clock = clock
        self._local: dict[str, tuple[float, CacheEntry]] = {}
        # When each handle was last invalidated here, so that an answer fetched before
        # an invalidation and stored after it is not kept (see :meth:`put`).
        self._invalidated: dict[str, float] = {}
        # The same, for every answer of a node (see :meth:`drop_source`).
        self._sources_dropped: dict[str, float] = {}

    def local(self, key: str) -> CacheEntry | None:
        """A fresh in-process copy, if one is young enough (no I/O: the hot path)."""
        held = self._local.get(key)
        if held is None:
            return None
        until, entry = held
        if self.clock() < until:
            return entry
        del self._local[key]
        return None

    async def get(self, key: str) -> CacheEntry | None:
        try:
            raw = cast(bytes | None, await self.redis.get(cache_key(key)))
        except STORE_ERRORS as exc:
            log.warning("cache read failed, resolving upstream: %s", exc)
            return None
        if raw is None:
            return None
        entry = CacheEntry.decode(raw)
        self._remember(key, entry)
        return entry

    async def put(self, key: str, entry: CacheEntry, *, asked_at: float) -> bool:
        """Cache an answer the responsible node was asked for at ``asked_at``.

        An invalidation that arrived after ``asked_at`` means the answer may predate the
        change; it is then not cached (False). Returns whether it was cached.
        """
        keep = self.policy.keep_seconds(entry)
        last_dropped = max(
            self._sources_dropped.get(entry.source, -1.0), self._invalidated.get(key, -1.0)
        )
        if keep <= 0 or last_dropped >= asked_at:
            return False
        self._remember(key, entry)
        keep_ms = max(1, int(keep * 1000))
        now_ms = int(self.clock() * 1000)
        source = source_key(entry.source)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(cache_key(key), entry.encode(), px=keep_ms)
                pipe.zadd(source, {key: now_ms + keep_ms})
                pipe.zremrangebyscore(source, "-inf", now_ms)  # entries Redis expired
                pipe.expire(source, int(self.policy.longest_keep) + 1)
                await pipe.execute()
        except STORE_ERRORS as exc:
            log.warning("cache write failed: %s", exc)
        return True

    def _remember(self, key: str, entry: CacheEntry) -> None:
        if not entry.is_fresh(self.clock()):
            return
        if len(self._local) >= self.policy.local_size:
            # Evict the oldest insertion: cheap, and hot keys come straight back.
            del self._local[next(iter(self._local))]
        until = min(self.clock() + self.policy.local_ttl, entry.fresh_until)
        self._local[key] = (until, entry)

    async def invalidate(self, keys: Iterable[str]) -> int:
        """Drop these handles' answers; returns how many Redis held."""
        keys = list(keys)
        now = self.clock()
        if len(self._invalidated) > _RECENT_LIMIT:
            horizon = now - _RECENT_SECONDS
            self._invalidated = {k: t for k, t in self._invalidated.items() if t > horizon}
        for key in keys:
            self._local.pop(key, None)
            self._invalidated[key] = now
        if not keys:
            return 0
        try:
            return int(await self.redis.unlink(*(cache_key(k) for k in keys)))
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cache invalidation failed: {exc}") from exc

    async def drop_source(self, node: str) -> int:
        """Drop every answer ``node`` gave (its change feed had a gap, or its store was
        replaced); answers from other nodes stay. Returns how many Redis held."""
        now = self.clock()
        self._sources_dropped[node] = now
        if len(self._sources_dropped) > _RECENT_LIMIT:
            horizon = now - _RECENT_SECONDS
            self._sources_dropped = {
                n: t for n, t in self._sources_dropped.items() if t > horizon or n == node
            }
        for key in [k for k, (_, entry) in self._local.items() if entry.source == node]:
            del self._local[key]
        dropped = 0
        try:
            async for batch in self._members(source_key(node)):
                dropped += int(await self.redis.unlink(*(cache_key(k) for k in batch)))
            await self.redis.unlink(source_key(node))
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cache drop failed: {exc}") from exc
        return dropped

    async def _members(self, key: str) -> AsyncIterator[list[str]]:
        batch: list[str] = []
        async for member, _ in self.redis.zscan_iter(key, count=_DROP_BATCH):
            batch.append(member.decode() if isinstance(member, bytes) else str(member))
            if len(batch) >= _DROP_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
