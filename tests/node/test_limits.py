"""Request limits (registry/admission.py): a per-second rate and a daily quota, each applied
per client address (node/address_limits.py, before routing) and per authenticated identity
(NodeState.authenticate). Secondary nodes for 88.100 on the session's Redis, in process;
each client address is its own httpx.ASGITransport.

The rate is a token bucket: ``rate_limit`` tokens a second, bursts up to twice that
(node/app.py builds ``TokenBucket(rate, 2 * rate)``). Its clock is frozen here so the
tests do not depend on how fast the machine is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import cast

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from node.app import create_app
from node.state import NodeState
from registry.admission import day_key, seconds_to_midnight
from tests.conftest import ADMIN, ADMIN_AUTH, StoreServer, all_keys, basic, node_config, snapshot

RATE = 5
BURST = 2 * RATE
QUOTA = 3
SEED = "88.100/seed"
OTHER = "300:0.NA/88.100.1"  # a second identity, made in `setup`
OTHER_AUTH = basic(OTHER, "other-secret")
URL_VALUE = {"index": 1, "type": "URL", "data": "https://a.example/1"}
READ = f"/api/handles/{SEED}?auth=true"  # with credentials: an authenticated read


@pytest.fixture
async def setup(redis: Redis, redis_server: StoreServer) -> None:
    """A handle and a second identity, written through a node without limits."""
    app = create_app(node_config(redis_server.url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            for handle, values in [
                (SEED, [URL_VALUE]),
                ("0.NA/88.100.1", [{"index": 300, "type": "HS_SECKEY", "data": "other-secret"}]),
            ]:
                put = await http.put(f"/api/handles/{handle}", json=values, headers=ADMIN_AUTH)
                assert put.status_code == 201, put.text


class Limited:
    """A node with limits, and one client per address (made on demand)."""

    def __init__(self, app: FastAPI, stack: AsyncExitStack) -> None:
        self.app = app
        self.stack = stack
        self.now = [1000.0]
        self.clients: dict[str, httpx.AsyncClient] = {}

    @property
    def state(self) -> NodeState:
        return cast(NodeState, self.app.state.node)

    def freeze(self) -> None:
        assert self.state.rate is not None
        self.state.rate.clock = lambda: self.now[0]

    async def client(self, address: str) -> httpx.AsyncClient:
        if address not in self.clients:
            transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
            http = httpx.AsyncClient(transport=transport, base_url="http://node")
            self.clients[address] = await self.stack.enter_async_context(http)
        return self.clients[address]

    async def get(self, address: str, path: str, **headers: str) -> httpx.Response:
        return await (await self.client(address)).get(path, headers=headers)


Serve = Callable[..., Awaitable[Limited]]


@pytest.fixture
async def serve(setup: None, redis_server: StoreServer) -> AsyncIterator[Serve]:
    async with AsyncExitStack() as stack:

        async def start(**settings: object) -> Limited:
            app = create_app(node_config(redis_server.url, "88.100", **settings))
            await stack.enter_async_context(app.router.lifespan_context(app))
            return Limited(app, stack)

        yield start


def assert_rate_refusal(answer: httpx.Response, who: str) -> None:
    assert answer.status_code == 429, answer.text
    body = answer.json()
    assert body["responseCode"] == 2
    assert f"More than {RATE} requests per second from {who}" in body["message"]
    assert answer.headers["Retry-After"] == "1"  # a token is back within 1/RATE s


def assert_quota_refusal(answer: httpx.Response, who: str) -> None:
    assert answer.status_code == 429, answer.text
    body = answer.json()
    assert body["responseCode"] == 603
    assert f"Daily request limit of {QUOTA} reached for {who}" in body["message"]
    assert "resets at 00:00 UTC" in body["message"]
    retry = int(answer.headers["Retry-After"])
    assert abs(retry - seconds_to_midnight(datetime.now(UTC))) <= 5
    assert 1 <= retry <= 86400


async def test_rate_per_address(serve: Serve, redis: Redis) -> None:
    node = await serve(rate_limit=RATE)
    node.freeze()
    for _ in range(BURST):
        assert (await node.get("10.0.0.1", f"/api/handles/{SEED}")).status_code == 200
    assert_rate_refusal(
        await node.get("10.0.0.1", f"/api/handles/{SEED}"), "client address 10.0.0.1"
    )
    # Refused before routing: a write is not even looked at, the store stays as it was.
    before = await snapshot(redis)
    put = await (await node.client("10.0.0.1")).put(
        f"/api/handles/{SEED}", json=[], headers=ADMIN_AUTH
    )
    assert put.status_code == 429 and await snapshot(redis) == before
    # Probes are exempt; other addresses have their own bucket.
    for path in ("/healthz", "/readyz"):
        assert (await node.get("10.0.0.1", path)).status_code == 200
    assert (await node.get("10.0.0.2", f"/api/handles/{SEED}")).status_code == 200
    # 1/RATE s later one token is back: one request, then refused again.
    node.now[0] += 1 / RATE
    assert (await node.get("10.0.0.1", f"/api/handles/{SEED}")).status_code == 200
    assert (await node.get("10.0.0.1", f"/api/handles/{SEED}")).status_code == 429


async def test_rate_per_identity(serve: Serve) -> None:
    """One identity spread over many addresses is limited as one; another identity, or the
    same addresses without credentials, are not."""
    node = await serve(rate_limit=RATE)
    node.freeze()
    for i in range(BURST):  # one request per address: no address is near its limit
        answer = await node.get(f"10.0.1.{i}", READ, **ADMIN_AUTH)
        assert answer.status_code == 200, answer.text
    assert_rate_refusal(await node.get("10.0.1.100", READ, **ADMIN_AUTH), f"identity {ADMIN}")
    assert (await node.get("10.0.1.101", READ, **OTHER_AUTH)).status_code == 200
    assert (await node.get("10.0.1.100", READ)).status_code == 200  # anonymous, same address
    assert (await node.get("10.0.1.0", "/healthz", **ADMIN_AUTH)).status_code == 200


async def test_daily_quota_per_address(serve: Serve, redis: Redis) -> None:
    node = await serve(daily_quota=QUOTA)
    for _ in range(5):  # probes are exempt and not counted
        assert (await node.get("10.0.2.1", "/healthz")).status_code == 200
    for _ in range(QUOTA):
        assert (await node.get("10.0.2.1", f"/api/handles/{SEED}")).status_code == 200
    refusal = await node.get("10.0.2.1", f"/api/handles/{SEED}")
    assert_quota_refusal(refusal, "client address 10.0.2.1")
    assert (await node.get("10.0.2.1", "/healthz")).status_code == 200
    assert (await node.get("10.0.2.2", f"/api/handles/{SEED}")).status_code == 200

    day = day_key(datetime.now(UTC))
    assert int(await counter(redis, f"quota:{day}:addr:10.0.2.1")) == QUOTA + 1
    assert int(await counter(redis, f"quota:{day}:addr:10.0.2.2")) == 1
    await assert_quota_keys_expire(redis)


async def test_daily_quota_per_identity(serve: Serve, redis: Redis) -> None:
    node = await serve(daily_quota=QUOTA)
    for i in range(QUOTA):
        answer = await node.get(f"10.0.3.{i}", READ, **ADMIN_AUTH)
        assert answer.status_code == 200, answer.text
    assert_quota_refusal(await node.get("10.0.3.100", READ, **ADMIN_AUTH), f"identity {ADMIN}")
    assert (await node.get("10.0.3.101", READ, **OTHER_AUTH)).status_code == 200
    assert (await node.get("10.0.3.100", READ)).status_code == 200  # anonymous, same address

    day = day_key(datetime.now(UTC))
    assert int(await counter(redis, f"quota:{day}:id:300:0.na/88.100")) == QUOTA + 1
    assert int(await counter(redis, f"quota:{day}:id:300:0.na/88.100.1")) == 1
    await assert_quota_keys_expire(redis)


async def test_daily_quota_outlives_a_restart(serve: Serve) -> None:
    """The counters are in Redis: a restarted node (or another worker) keeps counting."""
    first = await serve(daily_quota=QUOTA)
    for _ in range(QUOTA):
        assert (await first.get("10.0.4.1", f"/api/handles/{SEED}")).status_code == 200
    second = await serve(daily_quota=QUOTA)
    refusal = await second.get("10.0.4.1", f"/api/handles/{SEED}")
    assert_quota_refusal(refusal, "client address 10.0.4.1")


async def counter(redis: Redis, key: str) -> bytes:
    value = await redis.get(key)
    assert isinstance(value, bytes), key
    return value


async def assert_quota_keys_expire(redis: Redis) -> None:
    keys = await all_keys(redis, "quota:*")
    assert keys
    for key in keys:
        assert key.startswith(b"quota:")
        ttl = await redis.ttl(key)
        assert 0 < ttl <= 2 * 86400, (key, ttl)
