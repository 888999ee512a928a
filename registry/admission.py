"""Request limits per client address and per identity: a per-second rate (token bucket,
in process) and a per-day quota (a counter per UTC day in Redis, so it holds across
worker processes and restarts). Both are off unless configured.

::

    over the rate    429, responseCode 2,   Retry-After: seconds until a token is back
    over the quota   429, responseCode 603, Retry-After: seconds until 00:00 UTC
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from registry.errors import DailyLimitReached, StoreUnavailable, TooManyRequests
from registry.redis_client import STORE_ERRORS

_MAX_BUCKETS = 100_000
_QUOTA_KEEP_SECONDS = 2 * 86400


class TokenBucket:
    """``rate`` requests per second per key, bursts up to ``burst``. Pure (clock passed in).

    >>> now = [0.0]
    >>> bucket = TokenBucket(rate=1, burst=2, clock=lambda: now[0])
    >>> [bucket.wait("a") for _ in range(3)]
    [0.0, 0.0, 1.0]
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def wait(self, key: str) -> float:
        """Take a token for ``key``: 0 when granted, else the seconds until one is free."""
        now = self.clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1:
            if len(self._buckets) >= _MAX_BUCKETS and key not in self._buckets:
                self._buckets.clear()  # bounded memory; forgetting only ever grants more
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate

    def check(self, key: str, who: str) -> None:
        wait = self.wait(key)
        if wait > 0:
            raise TooManyRequests(
                f"More than {self.rate:g} requests per second from {who}; retry in {wait:.1f} s",
                retry_after=max(1, int(wait + 0.999)),
            )


def day_key(moment: datetime) -> str:
    return moment.strftime("%Y%m%d")


def seconds_to_midnight(moment: datetime) -> int:
    tomorrow = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - moment).total_seconds()))


class DailyQuota:
    """At most ``limit`` requests per UTC day per key.

    >>> quota = DailyQuota(redis, limit=600_000)     # doctest: +SKIP
    >>> await quota.spend("addr:127.0.0.1", "127.0.0.1")  # doctest: +SKIP
    """

    def __init__(
        self,
        redis: Redis,
        limit: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.redis = redis
        self.limit = limit
        self.clock = clock

    async def spend(self, key: str, who: str) -> None:
        now = self.clock()
        counter = f"quota:{day_key(now)}:{key}"
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incr(counter)
            pipe.expire(counter, _QUOTA_KEEP_SECONDS)
            used, _ = await pipe.execute()
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc
        if int(used) > self.limit:
            raise DailyLimitReached(
                f"Daily request limit of {self.limit} reached for {who}; it resets at 00:00 UTC",
                retry_after=seconds_to_midnight(now),
            )
