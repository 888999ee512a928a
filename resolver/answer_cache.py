"""The answer cache of a recursive node: an in-process dict in front of Redis.

Keys are ``k:<handle key>`` in the node's Redis; values are :meth:`CacheEntry.encode`
strings that Redis expires by itself once even their stale window is over. The cache
is an optimisation: when Redis fails, lookups miss and stores are skipped (the node
keeps resolving through the hierarchy) and the failure is logged, not raised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from registry.errors import StoreUnavailable
from resolver.cache import CacheEntry, CachePolicy

log = logging.getLogger("idnode.resolver")
KEY_PREFIX = "k:"
_PURGE_BATCH = 1000
_RECENT_LIMIT = 10_000  # invalidation times kept before pruning ...
_RECENT_SECONDS = 60.0  # ... those older than any fetch can take


def cache_key(handle_key: str) -> str:
    return KEY_PREFIX + handle_key


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
        self._purged_at = -1.0

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
        except RedisError as exc:
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
        last_dropped = max(self._purged_at, self._invalidated.get(key, -1.0))
        if keep <= 0 or last_dropped >= asked_at:
            return False
        self._remember(key, entry)
        try:
            await self.redis.set(cache_key(key), entry.encode(), px=max(1, int(keep * 1000)))
        except RedisError as exc:
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
        except RedisError as exc:
            raise StoreUnavailable(f"cache invalidation failed: {exc}") from exc

    async def purge(self) -> None:
        """Drop every cached answer (the change feed had a gap)."""
        self._local.clear()
        self._invalidated.clear()
        self._purged_at = self.clock()
        batch: list[bytes] = []
        try:
            async for key in self.redis.scan_iter(match=KEY_PREFIX + "*", count=_PURGE_BATCH):
                batch.append(key)
                if len(batch) >= _PURGE_BATCH:
                    await self.redis.unlink(*batch)
                    batch = []
            if batch:
                await self.redis.unlink(*batch)
        except RedisError as exc:
            raise StoreUnavailable(f"cache purge failed: {exc}") from exc
