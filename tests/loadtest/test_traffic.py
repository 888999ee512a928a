"""``loadtest.traffic``: the day curve, the Zipf sampler and the verdicts (pure, fast)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from loadtest.traffic import (
    DAY_PROFILE,
    SECONDS_PER_DAY,
    DiurnalCurve,
    NodeVerdict,
    ZipfSampler,
    per_day,
    verdict,
)

RUN = 240.0  # 10 s of run per hour of the day


def at_hour(curve: DiurnalCurve, hour: float) -> float:
    """Seconds into the run that correspond to ``hour`` of the day."""
    return curve.run_seconds * hour / 24.0


# --- DiurnalCurve -----------------------------------------------------------------------


@pytest.mark.parametrize(("hour", "share"), DAY_PROFILE)
def test_share_at_profile_hours_equals_profile_values(hour: float, share: float) -> None:
    curve = DiurnalCurve(run_seconds=RUN)
    assert curve.share(at_hour(curve, hour)) == pytest.approx(share)


def test_share_peak_and_trough() -> None:
    curve = DiurnalCurve(run_seconds=RUN)
    assert curve.share(100) == pytest.approx(1.0)  # 10:00
    assert curve.share(40) == pytest.approx(0.08)  # 04:00
    samples = [curve.share(t / 10) for t in range(0, int(RUN * 10) + 1)]
    assert max(samples) == pytest.approx(1.0)
    assert min(samples) == pytest.approx(0.08)


@pytest.mark.parametrize(
    ("hour", "expected"),
    [
        (2, (0.15 + 0.08) / 2),  # half way from 00:00 to 04:00
        (8.5, (0.45 + 1.0) / 2),  # half way from 07:00 to 10:00
        (11, (1.0 + 0.70) / 2),
        (13, 0.70 + (0.95 - 0.70) / 3),  # a third of the way from 12:00 to 15:00
        (22.5, (0.35 + 0.15) / 2),
    ],
)
def test_share_is_linear_between_profile_points(hour: float, expected: float) -> None:
    curve = DiurnalCurve(run_seconds=RUN)
    assert curve.share(at_hour(curve, hour)) == pytest.approx(expected)


def test_share_is_monotonic_within_a_segment() -> None:
    curve = DiurnalCurve(run_seconds=RUN)
    rising = [curve.share(at_hour(curve, 7 + i * 0.25)) for i in range(13)]  # 07:00-10:00
    assert rising == sorted(rising)
    falling = [curve.share(at_hour(curve, 10 + i * 0.25)) for i in range(9)]  # 10:00-12:00
    assert falling == sorted(falling, reverse=True)


def test_share_clamps_before_start_and_after_end() -> None:
    curve = DiurnalCurve(run_seconds=RUN)
    assert curve.hour(-50) == 0.0
    assert curve.hour(RUN * 3) == 24.0
    assert curve.share(-50) == pytest.approx(curve.share(0)) == pytest.approx(0.15)
    assert curve.share(RUN + 1) == pytest.approx(curve.share(RUN)) == pytest.approx(0.15)
    assert curve.share(1e9) == pytest.approx(0.15)


def test_users_at_least_one_and_peak_at_peak_hour() -> None:
    curve = DiurnalCurve(run_seconds=RUN)
    assert curve.users(at_hour(curve, 10), 200) == 200
    assert curve.users(at_hour(curve, 4), 200) == 16  # 0.08 * 200
    for elapsed in range(0, int(RUN) + 1):
        assert curve.users(elapsed, 1) >= 1
        assert curve.users(elapsed, 3) >= 1
        assert curve.users(elapsed, 200) <= 200
    assert curve.users(at_hour(curve, 4), 5) == 1  # round(0.4) == 0, lifted to 1
    counts = {elapsed: curve.users(elapsed, 500) for elapsed in range(0, int(RUN) + 1)}
    assert max(counts, key=lambda e: counts[e]) == at_hour(curve, 10)


def test_mean_share_is_between_trough_and_peak() -> None:
    curve = DiurnalCurve(run_seconds=RUN)
    mean = curve.mean_share()
    assert 0.08 < mean < 1.0
    # the trapezoids of DAY_PROFILE add up to 11.955 share-hours out of 24
    assert mean == pytest.approx(11.955 / 24, abs=1e-3)
    assert mean == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("run_seconds", [60.0, 600.0, 3600.0, float(SECONDS_PER_DAY)])
def test_other_run_lengths_map_the_same_hours(run_seconds: float) -> None:
    base = DiurnalCurve(run_seconds=RUN)
    other = DiurnalCurve(run_seconds=run_seconds)
    for hour in (0, 2, 4, 5.5, 7, 10, 11.25, 12, 15, 18, 21, 23.9, 24):
        assert other.hour(at_hour(other, hour)) == pytest.approx(hour)
        assert other.share(at_hour(other, hour)) == pytest.approx(base.share(at_hour(base, hour)))
    assert other.mean_share() == pytest.approx(base.mean_share())


def test_custom_profile() -> None:
    curve = DiurnalCurve(run_seconds=24, profile=((0, 0.0), (12, 1.0), (24, 0.0)))
    assert curve.share(6) == pytest.approx(0.5)
    assert curve.share(12) == pytest.approx(1.0)
    assert curve.mean_share() == pytest.approx(0.5, abs=1e-3)


# --- ZipfSampler ------------------------------------------------------------------------


def test_probabilities_sum_to_one_and_decrease_with_rank() -> None:
    sampler = ZipfSampler(1000, s=1.1, rng=random.Random(1))
    probabilities = [sampler.probability(i) for i in range(sampler.n)]
    assert sum(probabilities) == pytest.approx(1.0)
    assert all(a > b for a, b in zip(probabilities, probabilities[1:], strict=False))
    # weight 1/r^s: rank 1 is 2^1.1 times as likely as rank 2
    assert probabilities[0] / probabilities[1] == pytest.approx(2**1.1)


def test_empirical_frequencies_match_probabilities() -> None:
    draws = 50_000
    sampler = ZipfSampler(500, s=1.1, rng=random.Random(20240305))
    counts = Counter(sampler.draw() for _ in range(draws))
    for index in range(10):
        expected = sampler.probability(index)
        observed = counts[index] / draws
        # well over four standard deviations of a binomial frequency, and 10% relative
        sigma = (expected * (1 - expected) / draws) ** 0.5
        assert abs(observed - expected) < max(5 * sigma, 0.1 * expected), index
    assert counts[0] > counts[1] > counts[2] > counts[3]


def test_seeded_samplers_repeat() -> None:
    first = ZipfSampler(100, rng=random.Random(7))
    second = ZipfSampler(100, rng=random.Random(7))
    assert [first.draw() for _ in range(200)] == [second.draw() for _ in range(200)]


@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000])
def test_draw_is_always_in_range(n: int) -> None:
    sampler = ZipfSampler(n, rng=random.Random(n))
    seen = {sampler.draw() for _ in range(5_000)}
    assert seen <= set(range(n))
    if n <= 3:
        assert seen == set(range(n))


def test_draw_at_the_edges_of_the_random_range() -> None:
    class Fixed(random.Random):
        def __init__(self, value: float) -> None:
            super().__init__(0)
            self.value = value

        def random(self) -> float:
            return self.value

    assert ZipfSampler(10, rng=Fixed(0.0)).draw() == 0
    assert ZipfSampler(10, rng=Fixed(1.0 - 2**-53)).draw() == 9


def test_single_item_is_always_zero() -> None:
    sampler = ZipfSampler(1, rng=random.Random(3))
    assert {sampler.draw() for _ in range(1000)} == {0}
    assert sampler.probability(0) == pytest.approx(1.0)


@pytest.mark.parametrize("n", [0, -1, -100])
def test_fewer_than_one_item_raises(n: int) -> None:
    with pytest.raises(ValueError, match="at least one"):
        ZipfSampler(n)


# --- per_day and verdict ----------------------------------------------------------------


def test_per_day() -> None:
    assert per_day(7) == 604_800
    assert per_day(7) > 600_000
    assert per_day(6.9) < 600_000
    assert per_day(0) == 0
    assert per_day(1) == SECONDS_PER_DAY


def test_verdict_figures() -> None:
    v = verdict("88.100", 1000, 0, 100.0, [8, 12, 10], required_per_day=600_000)
    assert isinstance(v, NodeVerdict)
    assert v.node == "88.100"
    assert v.average_rate == pytest.approx(10.0)
    assert v.peak_rate == 12
    assert v.per_day == pytest.approx(864_000)
    assert v.failure_ratio == 0
    assert v.error_budget == 0.001
    assert v.meets_rate and v.within_budget and v.passed


def test_verdict_peak_defaults_to_average_without_history() -> None:
    v = verdict("88.100", 500, 0, 50.0, [], required_per_day=600_000)
    assert v.peak_rate == pytest.approx(10.0)


def test_verdict_zero_seconds_is_zero_rate() -> None:
    v = verdict("88.100", 500, 0, 0.0, [], required_per_day=600_000)
    assert v.average_rate == 0.0
    assert not v.meets_rate and not v.passed


def test_verdict_misses_the_rate() -> None:
    # 6.9/s over 100 s: 596,160/day, below 600,000
    v = verdict("88.100", 690, 0, 100.0, [7.0], required_per_day=600_000)
    assert v.per_day < 600_000
    assert not v.meets_rate
    assert v.within_budget
    assert not v.passed


def test_verdict_exactly_at_the_rate_passes() -> None:
    v = verdict("88.100", 1000, 0, 100.0, [10.0], required_per_day=864_000)
    assert v.meets_rate and v.passed


def test_verdict_zero_requests_fails() -> None:
    v = verdict("88.100", 0, 0, 100.0, [], required_per_day=0)
    assert v.meets_rate  # 0 >= 0
    assert v.failure_ratio == 1.0
    assert not v.within_budget
    assert not v.passed


def test_verdict_failures_at_the_budget_fail() -> None:
    v = verdict("88.100", 1000, 1, 100.0, [10.0], required_per_day=600_000, error_budget=0.001)
    assert v.failure_ratio == pytest.approx(0.001)
    assert v.meets_rate
    assert not v.within_budget
    assert not v.passed


def test_verdict_failures_below_the_budget_pass() -> None:
    v = verdict("88.100", 10_000, 9, 100.0, [100.0], required_per_day=600_000)
    assert v.failure_ratio < v.error_budget
    assert v.within_budget and v.passed


def test_verdict_failures_over_a_custom_budget_fail() -> None:
    v = verdict("88.100", 1000, 60, 100.0, [10.0], required_per_day=600_000, error_budget=0.05)
    assert v.meets_rate and not v.within_budget and not v.passed
    relaxed = verdict(
        "88.100", 1000, 40, 100.0, [10.0], required_per_day=600_000, error_budget=0.05
    )
    assert relaxed.passed
