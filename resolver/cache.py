"""What a recursive node caches, for how long, and what it may serve: pure, no I/O.

An answer from the responsible node becomes a :class:`CacheEntry`. Its life has three
phases, measured from the moment it was fetched::

    fetched_at ──── fresh ──── fresh_until ──── stale ──── stale_until ──── gone
                 served as HIT              served as STALE only when
                                            the responsible node is down

* Found answers stay fresh for the smallest TTL among their values (Handle's rule: a
  record is as fresh as its most volatile value), capped by ``max_ttl``; an answer whose
  smallest TTL is 0 is not cached at all.
* Not-found answers stay fresh for ``negative_ttl`` (short: a handle may appear soon) and
  are never served stale, so an outage never produces a "not found" that is not current.
* The in-process copy in front of Redis lives ``local_ttl`` at most, which bounds how
  long another worker process can serve an answer already invalidated in Redis.

Entries are stored in Redis as one string: a header line, then the body bytes exactly as
the responsible node sent them, so a hit is one GET and no JSON work.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import orjson


class Outcome(StrEnum):
    FOUND = "F"
    NOT_FOUND = "N"


class CacheStatus(StrEnum):
    """How an answer was served; sent as the ``X-Cache`` header."""

    HIT = "HIT"
    MISS = "MISS"
    STALE = "STALE"


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Bounds on caching, in seconds.

    >>> CachePolicy(max_ttl=60).fresh_seconds(Outcome.FOUND, [86400, 300])
    60.0
    """

    max_ttl: float = 3600.0
    negative_ttl: float = 10.0
    max_stale: float = 86400.0
    local_ttl: float = 1.0
    local_size: int = 10_000

    def fresh_seconds(self, outcome: Outcome, value_ttls: list[int]) -> float:
        if outcome is Outcome.NOT_FOUND:
            return self.negative_ttl
        ttl = min(value_ttls) if value_ttls else self.max_ttl
        return float(max(0.0, min(ttl, self.max_ttl)))

    @property
    def longest_keep(self) -> float:
        """The longest any entry is kept: what an answer's node must be remembered for.

        >>> CachePolicy(max_ttl=60, max_stale=600).longest_keep
        660
        """
        return max(self.max_ttl + self.max_stale, self.negative_ttl)

    def keep_seconds(self, entry: CacheEntry) -> float:
        """How long Redis keeps ``entry``: its fresh life, plus the stale window if found."""
        life = entry.fresh_until - entry.fetched_at
        if life <= 0:
            return 0.0  # a TTL of 0 means "do not cache", not even to serve stale
        return life + (self.max_stale if entry.outcome is Outcome.FOUND else 0.0)


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cached answer and where it came from.

    >>> e = CacheEntry(Outcome.FOUND, b"{}", "http://n:1", fetched_at=100.0, fresh_until=160.0)
    >>> CacheEntry.decode(e.encode()) == e, e.age(130.5), e.is_fresh(170.0)
    (True, 30, False)
    """

    outcome: Outcome
    body: bytes
    source: str
    fetched_at: float
    fresh_until: float

    def is_fresh(self, now: float) -> bool:
        return now < self.fresh_until

    def may_serve_stale(self, now: float, max_stale: float) -> bool:
        return self.outcome is Outcome.FOUND and now < self.fresh_until + max_stale

    def age(self, now: float) -> int:
        """Whole seconds since the responsible node answered (the ``Age`` header)."""
        return max(0, int(now - self.fetched_at))

    def encode(self) -> bytes:
        head = f"{self.outcome.value} {self.fetched_at:.3f} {self.fresh_until:.3f} {self.source}"
        return head.encode() + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> CacheEntry:
        head, _, body = raw.partition(b"\n")
        outcome, fetched_at, fresh_until, source = head.decode().split(" ", 3)
        return cls(Outcome(outcome), body, source, float(fetched_at), float(fresh_until))


def value_ttls(body: bytes) -> list[int]:
    """The TTLs of the values in a found answer's body."""
    values = orjson.loads(body).get("values") or []
    # A TTL that is not a whole number of seconds is ignored rather than trusted.
    return [
        v["ttl"]
        for v in values
        if isinstance(v, dict) and type(v.get("ttl")) is int and v["ttl"] >= 0
    ]
