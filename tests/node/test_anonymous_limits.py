"""Limits on anonymous callers (node/anonymous_limits.py, registry/onboarding.py), on
by default: enterprise applications per client address and a node-wide cap on pending
applications, searches and traces per client address, and the expiry of pending
applications. Secondary nodes for 88.100 on the session's real Redis, in process; each
client address is its own httpx.ASGITransport.

Finding 8 of the trust-boundaries issue: 3000 anonymous applications from one address
were accepted in 2.4 s.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from redis.asyncio import Redis

from node.anonymous_limits import AnonymousLimits, Costly, costly
from node.app import create_app
from node.config import NodeConfig
from tests.conftest import ADMIN_AUTH, StoreServer, all_keys, basic, node_config, snapshot
from tests.node.test_limits import Limited

CREDIT_CODE = "91420100MA4K2B7C1Y"


def application(name: str = "Wuhan Auto Parts") -> dict[str, str]:
    return {
        "name": name,
        "creditCode": CREDIT_CODE,
        "industry": "automotive",
        "contact": "ops@example.com",
    }


class Node(Limited):
    """A secondary node, and one client per address (made on demand)."""

    async def apply(self, address: str, **headers: str) -> httpx.Response:
        http = await self.client(address)
        return await http.post("/api/enterprises", json=application(), headers=headers)


Serve = Callable[..., Awaitable[Node]]


@pytest.fixture
async def serve(redis: Redis, redis_server: StoreServer) -> AsyncIterator[Serve]:
    async with AsyncExitStack() as stack:

        async def start(**settings: object) -> Node:
            app = create_app(node_config(redis_server.url, "88.100", **settings))
            await stack.enter_async_context(app.router.lifespan_context(app))
            return Node(app, stack)

        yield start


def assert_refused(answer: httpx.Response, said: str) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["responseCode"] == 2
    assert said in answer.json()["message"]
    assert int(answer.headers["Retry-After"]) >= 1


# --- pure ---------------------------------------------------------------------------------


def test_which_requests_are_limited() -> None:
    assert costly("POST", "/api/enterprises") is Costly.APPLICATION
    assert costly("GET", "/api/search") is Costly.FAN_OUT
    assert costly("GET", "/api/trace/88.100/car") is Costly.FAN_OUT
    assert costly("HEAD", "/api/trace/88.100/car") is Costly.FAN_OUT
    for method, path in [
        ("GET", "/api/enterprises"),  # the administrator's listing
        ("POST", "/api/enterprises/abc/approve"),
        ("GET", "/api/handles/88.100/car"),
        ("GET", "/hrls/handles"),
        ("GET", "/api/searchx"),
    ]:
        assert costly(method, path) is None


def test_limits_by_kind_and_address() -> None:
    limits = AnonymousLimits.from_rates(applications_per_minute=3, fan_out_per_second=0)
    assert limits.fan_out is None and limits.applications is not None
    now = [0.0]
    limits.applications.clock = lambda: now[0]
    for _ in range(6):  # bursts of twice the rate
        limits.check(Costly.APPLICATION, "a")
    with pytest.raises(Exception, match="More than 3 anonymous enterprise applications per"):
        limits.check(Costly.APPLICATION, "a")
    limits.check(Costly.APPLICATION, "b")  # another address: its own bucket
    now[0] = 20.0  # a minute holds three: one back after 20 s
    limits.check(Costly.APPLICATION, "a")
    for _ in range(1000):
        limits.check(Costly.FAN_OUT, "a")  # 0: not limited


def test_defaults_are_on_and_documented() -> None:
    config = NodeConfig.from_sources({"role": "secondary", "prefix": "88.100"}, env={})
    assert config.anonymous_rate == 10 and config.application_rate == 5
    assert config.max_pending_applications == 1000
    assert config.application_lifetime == 7 * 86400
    off = NodeConfig.from_sources(
        {"role": "secondary", "prefix": "88.100", "anonymous_rate": 0},
        env={"IDNODE_APPLICATION_RATE": "0", "IDNODE_MAX_PENDING_APPLICATIONS": "0"},
    )
    assert (off.anonymous_rate, off.application_rate, off.max_pending_applications) == (0, 0, 0)


# --- applications ---------------------------------------------------------------------------


async def test_a_flood_of_anonymous_applications_is_refused(serve: Serve, redis: Redis) -> None:
    node = await serve()  # the defaults: 5 a minute per address, bursts of 10
    started = time.monotonic()
    statuses: list[int] = []
    for _ in range(3000):
        answer = await node.apply("10.6.6.6")
        statuses.append(answer.status_code)
        if answer.status_code == 429 and len(statuses) == 11:
            assert_refused(answer, "More than 5 anonymous enterprise applications per minute")
            assert "10.6.6.6" in answer.json()["message"]
    took = time.monotonic() - started
    accepted = statuses.count(201)
    assert 10 <= accepted <= 10 + int(took * 5 / 60) + 1
    assert statuses.count(429) == 3000 - accepted
    assert await redis.zcard("ent:{ent}:pending") == accepted
    assert len(await all_keys(redis, "ent:{ent}:app:*")) == accepted  # refusals store nothing
    # Another address, and the administrator from the flooded one, still apply.
    assert (await node.apply("10.0.0.2")).status_code == 201
    assert (await node.apply("10.6.6.6", **ADMIN_AUTH)).status_code == 201
    wrong = await node.apply("10.6.6.6", **basic("300:0.NA/88.100", "not-the-secret"))
    assert wrong.status_code == 401 and wrong.json()["responseCode"] == 402


async def test_pending_applications_are_capped_node_wide(serve: Serve, redis: Redis) -> None:
    node = await serve(max_pending_applications=5)
    for n in range(5):
        assert (await node.apply(f"10.0.1.{n}")).status_code == 201
    before = await snapshot(redis)
    refused = await node.apply("10.0.1.99")
    assert_refused(refused, "This node holds 5 pending applications, as many as it accepts")
    assert refused.headers["Retry-After"] == "3600"
    assert await snapshot(redis) == before

    # The administrator's own applications are not capped; a decision frees a place.
    assert (await node.apply("10.0.1.99", **ADMIN_AUTH)).status_code == 201
    pending = (await node.get("10.0.1.1", "/api/enterprises?status=pending", **ADMIN_AUTH)).json()
    assert pending["totalCount"] == 6
    first = pending["applications"][0]["id"]
    http = await node.client("10.0.1.1")
    rejected = await http.post(
        f"/api/enterprises/{first}/reject", json={"reason": "no"}, headers=ADMIN_AUTH
    )
    assert rejected.status_code == 200
    assert (await node.apply("10.0.1.98")).status_code == 429  # 5 still pending
    assert await redis.zcard("ent:{ent}:pending") == 5


async def test_pending_applications_expire(serve: Serve, redis: Redis) -> None:
    node = await serve()
    old = (await node.apply("10.0.2.1")).json()
    onboarding = node.state.need_onboarding()
    onboarding.epoch = lambda: time.time() + 7 * 86400  # a week later
    late = await node.get("10.0.2.1", f"/api/enterprises/{old['id']}", **ADMIN_AUTH)
    assert late.json()["status"] == "pending"  # not swept yet: approval checks itself
    http = await node.client("10.0.2.1")
    refused = await http.post(f"/api/enterprises/{old['id']}/approve", headers=ADMIN_AUTH)
    assert refused.status_code == 409 and "already expired" in refused.json()["message"]
    got = (await node.get("10.0.2.1", f"/api/enterprises/{old['id']}", **ADMIN_AUTH)).json()
    assert got["status"] == "expired" and got["reason"] == "not decided within 7 days"

    other = (await node.apply("10.0.2.2")).json()
    onboarding.epoch = lambda: time.time() + 14 * 86400
    listed = (await node.get("10.0.2.1", "/api/enterprises", **ADMIN_AUTH)).json()
    assert [a["status"] for a in listed["applications"]] == ["expired", "expired"]
    assert listed["applications"][1]["id"] == other["id"]
    assert await redis.zcard("ent:{ent}:pending") == 0


# --- search and trace -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/search?URL=*", "/api/trace/88.100/nothing"])
async def test_searches_and_traces_are_limited_per_address(serve: Serve, path: str) -> None:
    node = await serve(anonymous_rate=1)  # bursts of 2
    first = [(await node.get("10.0.3.1", path)).status_code for _ in range(2)]
    assert all(status != 429 for status in first)
    refused = await node.get("10.0.3.1", path)
    assert_refused(refused, "More than 1 anonymous searches and traces per second")
    assert refused.headers["Retry-After"] == "1"
    # One bucket for both routes; other addresses and callers with credentials go on.
    assert (await node.get("10.0.3.1", "/api/search?URL=x")).status_code == 429
    assert (await node.get("10.0.3.2", path)).status_code != 429
    assert (await node.get("10.0.3.1", path, **ADMIN_AUTH)).status_code != 429
    wrong = await node.get("10.0.3.1", path, **basic("300:0.NA/88.100", "not-the-secret"))
    assert wrong.status_code == 401
    # Resolutions are not limited.
    assert (await node.get("10.0.3.1", "/api/handles/88.100/nothing")).status_code == 404


async def test_the_parent_nodes_fan_out_is_not_limited(serve: Serve) -> None:
    """The parent's searches carry all its clients' (each limited there), from one
    address: the address of --parent-url's host goes on, every other one is limited."""
    node = await serve(anonymous_rate=1, parent_url="http://10.0.5.1:8000")
    for _ in range(10):
        assert (await node.get("10.0.5.1", "/api/search?URL=*")).status_code == 200
    statuses = [(await node.get("10.0.5.2", "/api/search?URL=*")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    # Applications from the parent's address are limited like anybody's.
    assert [(await node.apply("10.0.5.1")).status_code for _ in range(11)][-1] == 429


async def test_limits_can_be_turned_off(serve: Serve) -> None:
    node = await serve(anonymous_rate=0, application_rate=0)
    for _ in range(30):
        assert (await node.get("10.0.4.1", "/api/search?URL=*")).status_code == 200
    for _ in range(15):
        assert (await node.apply("10.0.4.1")).status_code == 201
