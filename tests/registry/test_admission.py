"""Request limits: the per-second token bucket (fake clock) and the daily quota (real Redis,
injected clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from registry.admission import DailyQuota, TokenBucket, day_key, seconds_to_midnight
from registry.errors import DailyLimitReached, TooManyRequests


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class DayClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_burst_then_wait_times() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.wait("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.wait("a") == pytest.approx(0.5)
    assert bucket.wait("a") == pytest.approx(0.5)  # a refused request takes nothing
    clock.now += 0.25
    assert bucket.wait("a") == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.wait("a") == 0.0
    assert bucket.wait("a") == pytest.approx(0.5)


def test_refill_rate_and_burst_cap() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=4, burst=5, clock=clock)
    for _ in range(5):
        assert bucket.wait("k") == 0.0
    assert bucket.wait("k") == pytest.approx(0.25)
    clock.now += 0.75  # three tokens back (times exact in binary)
    assert [bucket.wait("k") for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.25)]
    clock.now += 3600  # a long idle time refills only up to the burst
    granted = 0
    while bucket.wait("k") == 0.0:
        granted += 1
    assert granted == 5


def test_fractional_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=0.5, burst=1, clock=clock)
    assert bucket.wait("k") == 0.0
    assert bucket.wait("k") == pytest.approx(2.0)
    clock.now += 1.5
    assert bucket.wait("k") == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.wait("k") == 0.0


def test_keys_are_independent() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    assert bucket.wait("addr:10.0.0.1") == 0.0
    assert bucket.wait("addr:10.0.0.1") > 0
    assert bucket.wait("addr:10.0.0.2") == 0.0
    assert bucket.wait("id:300:0.na/88.100") == 0.0
    assert bucket.wait("addr:10.0.0.2") > 0


def test_check_raises_too_many_requests() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=4, burst=1, clock=clock)
    bucket.check("k", "address 10.0.0.1")
    with pytest.raises(TooManyRequests) as caught:
        bucket.check("k", "address 10.0.0.1")
    error = caught.value
    assert type(error) is TooManyRequests
    assert error.http_status == 429 and error.response_code == 2
    assert error.retry_after >= 1 and isinstance(error.retry_after, int)
    assert "10.0.0.1" in error.message and "4 requests per second" in error.message
    assert error.body()["responseCode"] == 2


def test_check_retry_after_rounds_up() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=0.4, burst=1, clock=clock)  # a token every 2.5 s
    bucket.check("k", "who")
    with pytest.raises(TooManyRequests) as caught:
        bucket.check("k", "who")
    assert caught.value.retry_after == 3
    clock.now += 2.5
    bucket.check("k", "who")


def test_many_keys_do_not_break_the_bucket() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    for i in range(2000):
        assert bucket.wait(f"addr:{i}") == 0.0
    assert bucket.wait("addr:0") > 0


@pytest.mark.parametrize(
    ("moment", "key", "left"),
    [
        (datetime(2024, 5, 1, 0, 0, 0, tzinfo=UTC), "20240501", 86400),
        (datetime(2024, 5, 1, 23, 59, 30, tzinfo=UTC), "20240501", 30),
        (datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC), "20240501", 43200),
        (datetime(2024, 12, 31, 23, 0, 0, tzinfo=UTC), "20241231", 3600),
        (datetime(2024, 2, 29, 18, 0, 0, tzinfo=UTC), "20240229", 21600),
        (datetime(2024, 5, 1, 23, 59, 59, 900_000, tzinfo=UTC), "20240501", 1),
    ],
)
def test_day_key_and_seconds_to_midnight(moment: datetime, key: str, left: int) -> None:
    assert day_key(moment) == key
    assert seconds_to_midnight(moment) == left


NOON = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


async def test_quota_allows_the_limit_then_refuses(redis: Redis) -> None:
    clock = DayClock(NOON + timedelta(hours=11, minutes=30))  # 23:30 UTC
    quota = DailyQuota(redis, limit=3, clock=clock)
    for _ in range(3):
        await quota.spend("addr:10.0.0.1", "address 10.0.0.1")
    with pytest.raises(DailyLimitReached) as caught:
        await quota.spend("addr:10.0.0.1", "address 10.0.0.1")
    error = caught.value
    assert isinstance(error, TooManyRequests)
    assert error.http_status == 429 and error.response_code == 603
    assert "address 10.0.0.1" in error.message and "3" in error.message
    assert error.retry_after == 1800
    with pytest.raises(DailyLimitReached):  # stays refused
        await quota.spend("addr:10.0.0.1", "address 10.0.0.1")


async def test_quota_keys_are_independent(redis: Redis) -> None:
    quota = DailyQuota(redis, limit=1, clock=DayClock(NOON))
    await quota.spend("addr:10.0.0.1", "address 10.0.0.1")
    await quota.spend("addr:10.0.0.2", "address 10.0.0.2")
    await quota.spend("id:300:0.na/88.100", "identity 300:0.NA/88.100")
    with pytest.raises(DailyLimitReached) as caught:
        await quota.spend("id:300:0.na/88.100", "identity 300:0.NA/88.100")
    assert "identity 300:0.NA/88.100" in caught.value.message


async def test_quota_counts_from_zero_the_next_day(redis: Redis) -> None:
    clock = DayClock(NOON)
    quota = DailyQuota(redis, limit=2, clock=clock)
    await quota.spend("k", "who")
    await quota.spend("k", "who")
    with pytest.raises(DailyLimitReached):
        await quota.spend("k", "who")
    clock.now += timedelta(days=1)
    await quota.spend("k", "who")
    await quota.spend("k", "who")
    with pytest.raises(DailyLimitReached):
        await quota.spend("k", "who")


async def test_quota_is_shared_by_instances_on_one_store(redis: Redis) -> None:
    """Two worker processes share one count (the counter is in Redis)."""
    clock = DayClock(NOON)
    first = DailyQuota(redis, limit=2, clock=clock)
    second = DailyQuota(redis, limit=2, clock=clock)
    await first.spend("k", "who")
    await second.spend("k", "who")
    with pytest.raises(DailyLimitReached):
        await first.spend("k", "who")


async def test_quota_counter_expires(redis: Redis) -> None:
    quota = DailyQuota(redis, limit=5, clock=DayClock(NOON))
    await quota.spend("addr:10.0.0.1", "address 10.0.0.1")
    counter = f"quota:{day_key(NOON)}:addr:10.0.0.1"
    assert await redis.get(counter) == b"1"
    ttl = await redis.ttl(counter)
    assert 86400 <= ttl <= 2 * 86400


async def test_quota_zero_refuses_at_once(redis: Redis) -> None:
    quota = DailyQuota(redis, limit=0, clock=DayClock(NOON))
    with pytest.raises(DailyLimitReached) as caught:
        await quota.spend("k", "who")
    assert caught.value.retry_after == 43200
