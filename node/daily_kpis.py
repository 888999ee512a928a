"""Daily KPIs of a node, kept in Redis: what the seed plans judge a node by.

Per UTC day and node (each node has its own key space)::

    kpi:<yyyymmdd>   HASH  resolutions, registrations: counts of that day
                           peak: the highest resolutions in one second seen that day
    kpi:total        HASH  resolutions, registrations since the node's store began

Counting on the hot path is an in-process increment; a background task flushes the
counts to Redis every second (HINCRBY, and the peak through a max-update script), so a
resolution costs no extra Redis round trip. A node killed with -9 loses at most the last
second of counts. The day's figures are kept 400 days.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from redis.asyncio import Redis

from registry.admission import day_key
from registry.errors import StoreUnavailable
from registry.redis_client import STORE_ERRORS

log = logging.getLogger("idnode.node")
KEEP_DAYS = 400
RECENT_SECONDS = 10.0  # the window of the "recent rate" a status page shows
_MAX_LUA = """
local current = tonumber(redis.call('HGET', KEYS[1], 'peak') or '0')
if tonumber(ARGV[1]) > current then redis.call('HSET', KEYS[1], 'peak', ARGV[1]) end
return 1
"""


@dataclass(frozen=True, slots=True)
class DayFigures:
    day: str
    resolutions: int
    registrations: int
    peak_per_second: int
    total_resolutions: int
    total_registrations: int


class Kpis:
    """Counts resolutions and registrations and keeps them per day in Redis; counting
    is the hot path and does no I/O, a flush writes the counts.

    >>> kpis = Kpis(redis)              # doctest: +SKIP
    >>> kpis.resolution()               # doctest: +SKIP
    >>> await kpis.flush()              # doctest: +SKIP
    """

    def __init__(
        self,
        redis: Redis,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.clock = clock
        self._resolutions = 0
        self._registrations = 0
        self._last_flush = clock()
        self._recent: deque[tuple[float, int]] = deque()  # (time, resolutions) per flush

    def resolution(self) -> None:
        self._resolutions += 1

    def registrations(self, count: int = 1) -> None:
        self._registrations += count

    async def flush(self) -> None:
        """Move the counts since the last flush into Redis."""
        now = self.clock()
        resolved, registered = self._resolutions, self._registrations
        elapsed = max(1e-3, now - self._last_flush)
        self._recent.append((now, resolved))
        while self._recent and self._recent[0][0] < now - RECENT_SECONDS:
            self._recent.popleft()
        if not resolved and not registered:
            self._last_flush = now
            return
        self._resolutions = self._registrations = 0
        day = f"kpi:{day_key(datetime.fromtimestamp(now, UTC))}"
        peak = int(resolved / elapsed) if elapsed >= 1.0 else resolved
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hincrby(day, "resolutions", resolved)
            pipe.hincrby(day, "registrations", registered)
            pipe.eval(_MAX_LUA, 1, day, peak)
            pipe.expire(day, KEEP_DAYS * 86400)
            pipe.hincrby("kpi:total", "resolutions", resolved)
            pipe.hincrby("kpi:total", "registrations", registered)
            await pipe.execute()
            self._last_flush = now
        except STORE_ERRORS as exc:
            # The counts wait for the next flush, which divides them by the whole time
            # since the last good one (a peak is never inflated by an outage).
            self._resolutions += resolved
            self._registrations += registered
            log.warning("KPI flush failed, kept for the next one: %s", exc)

    def recent_rate(self) -> float:
        """Resolutions per second over about the last ten seconds, in this process."""
        now = self.clock()
        counted = sum(n for at, n in self._recent if at >= now - RECENT_SECONDS)
        return (counted + self._resolutions) / RECENT_SECONDS

    async def run(self, interval: float = 1.0) -> None:
        """Flush every ``interval`` seconds until cancelled (then flush once more)."""
        try:
            while True:
                await asyncio.sleep(interval)
                await self.flush()
        finally:
            await asyncio.shield(self.flush())

    async def figures(self, day: str) -> DayFigures:
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(f"kpi:{day}")
            pipe.hgetall("kpi:total")
            raw_day, raw_total = cast(list[dict[bytes, bytes]], await pipe.execute())
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc

        def number(raw: dict[bytes, bytes], name: str) -> int:
            return int(raw.get(name.encode(), b"0"))

        # Counts not flushed yet belong to today.
        unflushed = day == today(self.clock)
        resolved = self._resolutions if unflushed else 0
        registered = self._registrations if unflushed else 0
        return DayFigures(
            day=day,
            resolutions=number(raw_day, "resolutions") + resolved,
            registrations=number(raw_day, "registrations") + registered,
            peak_per_second=number(raw_day, "peak"),
            total_resolutions=number(raw_total, "resolutions") + self._resolutions,
            total_registrations=number(raw_total, "registrations") + self._registrations,
        )


def today(clock: Callable[[], float] = time.time) -> str:
    return day_key(datetime.fromtimestamp(clock(), UTC))
