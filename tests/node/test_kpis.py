"""Daily KPIs: the in-process counts flushed to Redis, and ``/api/kpis`` over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from loadtest.check import observed_from
from loadtest.plan import Measure
from node.app import create_app
from node.daily_kpis import KEEP_DAYS, DayFigures, Kpis, today
from node.state import NodeState
from registry.errors import StoreUnavailable
from tests.conftest import ADMIN_AUTH, SHARDED, StoreServer, all_keys, basic, node_config


@pytest.fixture(params=SHARDED)
def prefix_shards(request: pytest.FixtureRequest) -> int:
    return int(request.param)  # each test on a store of one shard and of several


NOON = datetime(2024, 3, 5, 12, 0, 0, tzinfo=UTC).timestamp()
DAY = "20240305"
DEAD_URL = "http://127.0.0.1:1"  # nothing listens on port 1
TOP_SECRET = "top-secret"
TOP_AUTH = basic("300:0.NA/88", TOP_SECRET)


class Clock:
    """An injected clock: a float the test moves forward."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def stored(redis: Redis, key: str) -> dict[str, int]:
    raw = cast(dict[bytes, bytes], await redis.hgetall(key))
    return {k.decode(): int(v) for k, v in raw.items()}


def counted(kpis: Kpis, resolutions: int = 0, registrations: int = 0) -> None:
    for _ in range(resolutions):
        kpis.resolution()
    if registrations:
        kpis.registrations(registrations)


# --- Kpis on the real Redis ------------------------------------------------------------------


async def test_today_follows_the_clock() -> None:
    assert today(Clock(NOON)) == DAY
    assert today(Clock(NOON + 12 * 3600)) == "20240306"  # midnight UTC
    assert today(Clock(NOON + 12 * 3600 - 0.001)) == DAY


async def test_flush_writes_the_day_and_the_total(redis: Redis) -> None:
    clock = Clock(NOON)
    kpis = Kpis(redis, clock)
    counted(kpis, resolutions=5)
    kpis.registrations()
    kpis.registrations(2)
    clock.now += 2.0
    await kpis.flush()
    assert await stored(redis, f"kpi:{DAY}") == {"resolutions": 5, "registrations": 3, "peak": 2}
    assert await stored(redis, "kpi:total") == {"resolutions": 5, "registrations": 3}
    ttl = await redis.ttl(f"kpi:{DAY}")
    assert KEEP_DAYS * 86400 - 5 <= ttl <= KEEP_DAYS * 86400
    assert await redis.ttl("kpi:total") == -1  # the total is kept for good

    # A flush adds to what is stored; the counts start again from zero.
    counted(kpis, resolutions=1, registrations=4)
    clock.now += 1.0
    await kpis.flush()
    assert await stored(redis, f"kpi:{DAY}") == {"resolutions": 6, "registrations": 7, "peak": 2}
    assert await stored(redis, "kpi:total") == {"resolutions": 6, "registrations": 7}


async def test_a_flush_with_nothing_counted_writes_nothing(redis: Redis) -> None:
    clock = Clock(NOON)
    kpis = Kpis(redis, clock)
    clock.now += 5
    await kpis.flush()
    assert await all_keys(redis, "kpi:*") == []


async def test_each_day_has_its_own_key_and_the_total_adds_up(redis: Redis) -> None:
    clock = Clock(NOON)
    kpis = Kpis(redis, clock)
    counted(kpis, resolutions=3, registrations=1)
    clock.now += 1
    await kpis.flush()
    clock.now += 86400
    counted(kpis, resolutions=2, registrations=5)
    await kpis.flush()
    assert (await stored(redis, f"kpi:{DAY}"))["resolutions"] == 3
    # Two resolutions over a whole day: a peak of 0, so none is stored.
    assert await stored(redis, "kpi:20240306") == {"resolutions": 2, "registrations": 5}
    assert (await kpis.figures("20240306")).peak_per_second == 0
    assert await stored(redis, "kpi:total") == {"resolutions": 5, "registrations": 6}


async def test_peak_per_second(redis: Redis) -> None:
    clock = Clock(NOON)
    kpis = Kpis(redis, clock)

    async def flush_after(seconds: float, resolutions: int) -> int:
        counted(kpis, resolutions=resolutions)
        clock.now += seconds
        await kpis.flush()
        return (await stored(redis, f"kpi:{DAY}"))["peak"]

    # Counts over at least a second are divided by the seconds elapsed.
    assert await flush_after(4.0, 100) == 25
    assert await flush_after(1.0, 30) == 30
    # Under a second, the counts themselves are the peak.
    assert await flush_after(0.25, 40) == 40
    # The peak only grows.
    assert await flush_after(10.0, 50) == 40
    assert await flush_after(2.0, 99) == 49  # 49.5 a second, rounded down
    # Registrations alone do not lower it either.
    kpis.registrations(1000)
    clock.now += 1
    await kpis.flush()
    assert (await stored(redis, f"kpi:{DAY}"))["peak"] == 49


async def test_figures_include_unflushed_counts_for_today_only(redis: Redis) -> None:
    clock = Clock(NOON)
    kpis = Kpis(redis, clock)
    counted(kpis, resolutions=4, registrations=2)
    clock.now += 2
    await kpis.flush()
    counted(kpis, resolutions=3, registrations=1)  # not flushed yet

    assert await kpis.figures(DAY) == DayFigures(
        day=DAY,
        resolutions=7,
        registrations=3,
        peak_per_second=2,
        total_resolutions=7,
        total_registrations=3,
    )
    # Another day: only what was flushed for it (nothing); the totals are all time.
    assert await kpis.figures("20240304") == DayFigures(
        day="20240304",
        resolutions=0,
        registrations=0,
        peak_per_second=0,
        total_resolutions=7,
        total_registrations=3,
    )
    # Asking changes nothing; flushing moves the counts without changing the figures.
    clock.now += 1
    await kpis.flush()
    assert (await kpis.figures(DAY)).resolutions == 7
    assert (await stored(redis, f"kpi:{DAY}"))["resolutions"] == 7


async def test_figures_of_an_empty_store_are_zeros(redis: Redis) -> None:
    figures = await Kpis(redis, Clock(NOON)).figures(DAY)
    assert figures == DayFigures(DAY, 0, 0, 0, 0, 0)


async def test_a_failed_flush_keeps_the_counts(redis: Redis) -> None:
    clock = Clock(NOON)
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        kpis = Kpis(dead, clock)
        counted(kpis, resolutions=3, registrations=2)
        clock.now += 1
        await kpis.flush()  # logs a warning, raises nothing
        counted(kpis, resolutions=1)
        clock.now += 1
        await kpis.flush()
        with pytest.raises(StoreUnavailable):
            await kpis.figures(DAY)
    finally:
        await dead.aclose()

    # Once the store is back, the next flush writes everything counted meanwhile.
    kpis.redis = redis
    clock.now += 1
    await kpis.flush()
    assert await stored(redis, "kpi:total") == {"resolutions": 4, "registrations": 2}
    figures = await kpis.figures(DAY)
    assert (figures.resolutions, figures.registrations) == (4, 2)
    assert (figures.total_resolutions, figures.total_registrations) == (4, 2)


async def test_a_failed_flush_does_not_inflate_the_peak(redis: Redis) -> None:
    """100 resolutions a second for three seconds while Redis is down: the day's peak is
    still 100 a second once the counts reach the store."""
    clock = Clock(NOON)
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    kpis = Kpis(dead, clock)
    try:
        for _ in range(3):
            counted(kpis, resolutions=100)
            clock.now += 1
            await kpis.flush()
    finally:
        await dead.aclose()
    kpis.redis = redis
    counted(kpis, resolutions=100)
    clock.now += 1
    await kpis.flush()
    assert await stored(redis, f"kpi:{DAY}") == {
        "resolutions": 400,
        "registrations": 0,
        "peak": 100,
    }


async def test_run_flushes_once_more_when_cancelled(redis: Redis) -> None:
    kpis = Kpis(redis, Clock(NOON))
    task = asyncio.create_task(kpis.run(interval=3600))
    await asyncio.sleep(0)
    counted(kpis, resolutions=2, registrations=1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await stored(redis, "kpi:total") == {"resolutions": 2, "registrations": 1}


async def test_run_flushes_every_interval(redis: Redis) -> None:
    kpis = Kpis(redis, Clock(NOON))
    task = asyncio.create_task(kpis.run(interval=0.01))
    try:
        counted(kpis, resolutions=1)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if await redis.exists("kpi:total"):
                break
        assert await stored(redis, "kpi:total") == {"resolutions": 1, "registrations": 0}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# --- /api/kpis on a node in process ------------------------------------------------------------


@dataclass
class Served:
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def state(self) -> NodeState:
        state: NodeState = self.app.state.node
        return state

    async def flush(self) -> None:
        assert self.state.kpis is not None
        await self.state.kpis.flush()


async def serve(app: FastAPI, base_url: str) -> AsyncIterator[Served]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield Served(app, http)


@pytest.fixture
async def node(redis: Redis, redis_server: StoreServer) -> AsyncIterator[Served]:
    """The conftest ``client`` node (secondary 88.100), keeping hold of its app."""
    async for served in serve(create_app(node_config(redis_server.url)), "http://node"):
        yield served


@pytest.fixture
async def top(redis: Redis, redis_server: StoreServer) -> AsyncIterator[Served]:
    """A top node for 88 on the session's Redis."""
    config = node_config(redis_server.url, prefix="88", role="top", admin_secret=TOP_SECRET)
    async for served in serve(create_app(config), "http://top"):
        yield served


URL_VALUE = {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://a/1"}}


async def traffic(http: httpx.AsyncClient) -> None:
    """2 handles registered one by one (and one of them updated) and 3 in a batch;
    3 resolutions found, 1 not found and 1 referral."""
    for name in ("a", "b"):
        created = await http.put(
            f"/api/handles/88.100/{name}", json=[URL_VALUE], headers=ADMIN_AUTH
        )
        assert created.status_code == 201, created.text
    updated = await http.put("/api/handles/88.100/a", json=[URL_VALUE], headers=ADMIN_AUTH)
    assert updated.status_code == 200  # an update registers nothing new
    batch = await http.post(
        "/api/batch/handles",
        json={"handles": [{"handle": f"88.100/b{i}", "values": [URL_VALUE]} for i in range(3)]},
        headers=ADMIN_AUTH,
    )
    assert batch.status_code == 200 and batch.json()["created"] == 3, batch.text
    for handle in ("88.100/a", "88.100/b", "88.100/b1"):
        assert (await http.get(f"/api/handles/{handle}")).status_code == 200
    missing = await http.get("/api/handles/88.100/missing")
    assert missing.status_code == 404
    referral = await http.get("/api/handles/88.101/x")
    assert referral.json()["responseCode"] == 301, referral.text


async def test_kpis_count_the_nodes_traffic(node: Served) -> None:
    await traffic(node.http)
    await node.flush()
    response = await node.http.get("/api/kpis")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "responseCode": 1,
        "node": node.state.config.name,
        "role": "secondary",
        "prefix": "88.100",
        "url": node.state.config.public_url,
        "day": today(),
        "resolutions": 4,  # found or not; the referral is not counted
        "registrations": 5,
        "peakPerSecond": body["peakPerSecond"],
        "totalResolutions": 4,
        "totalRegistrations": 5,
        "enterprises": 0,
        "recentPerSecond": 0.4,  # 4 resolutions within the last ten seconds
        "cacheHitRatio": None,  # a secondary node has no cache
        "enterpriseNodes": [],  # no enterprise under it runs its own node
    }
    assert 1 <= body["peakPerSecond"] <= 4


async def test_kpis_count_before_any_flush(node: Served) -> None:
    await traffic(node.http)
    body = (await node.http.get("/api/kpis")).json()
    assert (body["resolutions"], body["registrations"]) == (4, 5)


async def test_kpis_of_another_day(node: Served) -> None:
    await traffic(node.http)
    await node.flush()
    response = await node.http.get("/api/kpis", params={"day": "19990101"})
    assert response.status_code == 200
    body = response.json()
    assert body["day"] == "19990101"
    assert (body["resolutions"], body["registrations"], body["peakPerSecond"]) == (0, 0, 0)
    # The totals are since the store began, whatever the day.
    assert (body["totalResolutions"], body["totalRegistrations"]) == (4, 5)


async def test_kpis_of_an_empty_node_are_zeros(node: Served) -> None:
    body = (await node.http.get("/api/kpis", params={"day": "19990101"})).json()
    assert body["responseCode"] == 1
    figures = ("resolutions", "registrations", "peakPerSecond", "totalResolutions")
    assert [body[name] for name in figures] == [0, 0, 0, 0]
    assert body["totalRegistrations"] == 0 and body["enterprises"] == 0


@pytest.mark.parametrize("day", ["bad", "2024030", "202403051", "2024-03-05"])
async def test_kpis_of_a_malformed_day_is_400(node: Served, day: str) -> None:
    response = await node.http.get("/api/kpis", params={"day": day})
    assert response.status_code == 400
    assert response.json()["responseCode"] == 202


async def test_national_view_at_a_secondary_is_404(node: Served) -> None:
    response = await node.http.get("/api/kpis/national")
    assert response.status_code == 404
    assert response.json()["responseCode"] == 100


async def test_national_view_names_an_unreachable_secondary(top: Served) -> None:
    provisioned = await top.http.put(
        "/api/prefixes/88.100",
        json={"kind": "secondary", "nodeUrl": DEAD_URL, "secret": "node-secret"},
        headers=TOP_AUTH,
    )
    assert provisioned.status_code == 201, provisioned.text
    response = await top.http.get("/api/kpis/national")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["responseCode"] == 1 and body["day"] == today()
    assert body["secondaries"] == []
    (unreachable,) = body["unreachable"]
    assert unreachable["prefix"] == "88.100" and unreachable["url"] == DEAD_URL
    assert unreachable["message"]
    assert body["secondaryNodes"] == 1
    assert body["enterprisePrefixes"] == 0
    assert body["top"]["role"] == "top" and body["top"]["prefix"] == "88"
    assert body["totals"] == {
        "resolutions": 0,
        "registrations": 0,
        "totalResolutions": 0,
        "totalRegistrations": 0,
        "enterprises": 0,
        "peakPerSecond": 0,
    }


async def test_national_view_of_another_day(top: Served) -> None:
    response = await top.http.get("/api/kpis/national", params={"day": "19990101"})
    assert response.status_code == 200
    body = response.json()
    assert body["day"] == "19990101" and body["top"]["day"] == "19990101"
    assert body["secondaryNodes"] == 0 and body["unreachable"] == []
    bad = await top.http.get("/api/kpis/national", params={"day": "bad"})
    assert bad.status_code == 400


async def test_national_view_judged_by_the_check(top: Served) -> None:
    """The real top node's answers through ``loadtest.check.observed_from``: every public
    service the Guangzhou plan names is offered, and so is the SM2 login."""
    await top.http.put(
        "/api/prefixes/88.100",
        json={"kind": "secondary", "nodeUrl": DEAD_URL, "secret": "node-secret"},
        headers=TOP_AUTH,
    )
    national = (await top.http.get("/api/kpis/national")).json()
    schema = (await top.http.get("/openapi.json")).json()
    observed = observed_from(national, schema)
    assert observed.hierarchy[Measure.PUBLIC_SERVICES].value == 6
    assert observed.hierarchy[Measure.COMMERCIAL_CRYPTOGRAPHY].value == 1
    assert observed.hierarchy[Measure.SECONDARY_NODES].value == 1
    figures = observed.secondaries["88.100"]
    assert all(m.value is None and m.how.startswith("unreachable:") for m in figures.values())
