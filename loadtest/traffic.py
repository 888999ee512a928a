"""The shape of benchmark traffic and what its figures mean. Pure: no Locust, no I/O.

* :class:`DiurnalCurve` compresses a day's resolution traffic (a night trough, a morning
  and an afternoon peak, an evening shoulder) into a run of any length, as a share of the
  peak user count for each moment of the run.
* :class:`ZipfSampler` picks identifiers the way real traffic does: a few products are
  resolved very often, most rarely (rank r is picked with weight 1/r^s).
* :func:`per_day` and :func:`verdict` turn measured rates into resolutions per day and
  judge them against a target and an error budget.

Locust itself is imported only by ``loadtest/locustfile.py``, in the load generator's
own process: it monkey-patches the standard library with gevent on import.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

SECONDS_PER_DAY = 86_400

# (hour of day, share of the daily peak): a factory day. Linear between points.
DAY_PROFILE: tuple[tuple[float, float], ...] = (
    (0, 0.15),
    (4, 0.08),
    (7, 0.45),
    (10, 1.00),
    (12, 0.70),
    (15, 0.95),
    (18, 0.55),
    (21, 0.35),
    (24, 0.15),
)


@dataclass(frozen=True, slots=True)
class DiurnalCurve:
    """A day squeezed into ``run_seconds``.

    >>> curve = DiurnalCurve(run_seconds=240)
    >>> round(curve.share(100), 2)  # 100 s into 240 s is 10:00 of the day: the peak
    1.0
    >>> round(curve.share(40), 2)   # 04:00, the night trough
    0.08
    """

    run_seconds: float
    profile: tuple[tuple[float, float], ...] = DAY_PROFILE

    def hour(self, elapsed: float) -> float:
        return 24.0 * min(max(elapsed, 0.0), self.run_seconds) / self.run_seconds

    def share(self, elapsed: float) -> float:
        """The share of peak load at ``elapsed`` seconds into the run."""
        hour = self.hour(elapsed)
        hours = [h for h, _ in self.profile]
        i = min(max(bisect.bisect_right(hours, hour) - 1, 0), len(self.profile) - 2)
        (h0, s0), (h1, s1) = self.profile[i], self.profile[i + 1]
        return s0 + (s1 - s0) * (hour - h0) / (h1 - h0)

    def users(self, elapsed: float, peak_users: int) -> int:
        """Users to run at ``elapsed``; at least one, so the trough is never silent."""
        return max(1, round(self.share(elapsed) * peak_users))

    def mean_share(self, steps: int = 1440) -> float:
        """The average share over the day (the mean load relative to the peak)."""
        return sum(self.share(self.run_seconds * (i + 0.5) / steps) for i in range(steps)) / steps


class ZipfSampler:
    """Draws indexes 0..n-1 with probability proportional to 1/(rank)^s.

    >>> sampler = ZipfSampler(1000, s=1.1, rng=random.Random(7))
    >>> picks = [sampler.draw() for _ in range(10_000)]
    >>> picks.count(0) > picks.count(999) * 50
    True
    """

    def __init__(self, n: int, *, s: float = 1.1, rng: random.Random | None = None) -> None:
        if n < 1:
            raise ValueError("a Zipf sampler needs at least one item")
        self.n = n
        self.s = s
        self.rng = rng or random.Random()
        total = 0.0
        self._cumulative: list[float] = []
        for rank in range(1, n + 1):
            total += 1.0 / rank**s
            self._cumulative.append(total)

    def draw(self) -> int:
        point = self.rng.random() * self._cumulative[-1]
        return min(bisect.bisect_left(self._cumulative, point), self.n - 1)

    def probability(self, index: int) -> float:
        return float((1.0 / (index + 1) ** self.s) / self._cumulative[-1])


def per_day(rate_per_second: float) -> float:
    """A sustained rate, as resolutions per day."""
    return rate_per_second * SECONDS_PER_DAY


@dataclass(frozen=True, slots=True)
class NodeVerdict:
    node: str
    requests: int
    failures: int
    average_rate: float  # requests/s over the whole run
    peak_rate: float  # requests/s in the busiest second
    required_per_day: float
    error_budget: float  # the largest failure ratio allowed

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 1.0

    @property
    def per_day(self) -> float:
        return per_day(self.average_rate)

    @property
    def meets_rate(self) -> bool:
        return self.per_day >= self.required_per_day

    @property
    def within_budget(self) -> bool:
        return self.requests > 0 and self.failure_ratio < self.error_budget

    @property
    def passed(self) -> bool:
        return self.meets_rate and self.within_budget


def verdict(
    node: str,
    requests: int,
    failures: int,
    seconds: float,
    per_second: Sequence[float],
    *,
    required_per_day: float,
    error_budget: float = 0.001,
) -> NodeVerdict:
    """Judge one node's share of a run: ``requests`` answered over ``seconds``, with
    ``per_second`` the rate in each second (for the peak).

    >>> v = verdict("88.100", 1000, 0, 100.0, [8, 12, 10], required_per_day=600_000)
    >>> v.per_day, v.passed
    (864000.0, True)
    """
    average = requests / seconds if seconds > 0 else 0.0
    peak = max(per_second, default=average)
    return NodeVerdict(node, requests, failures, average, peak, required_per_day, error_budget)


def expected_unknown(share: float) -> bool:
    """Whether a resolution should ask for an identifier that does not exist."""
    if not 0.0 <= share <= 1.0 or math.isnan(share):
        raise ValueError("the share of unknown identifiers is between 0 and 1")
    return random.random() < share
