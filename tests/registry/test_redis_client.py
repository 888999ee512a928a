"""Commands packed by hiredis are the bytes redis-py's own packer makes, and a client
opened with them talks to a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from node.embedded_redis import NO_MASTER
from registry.errors import StoreFull, StoreUnavailable
from registry.redis_client import WritesRefused, open_redis, packed
from registry.store import translated
from tests.conftest import StoreServer

COMMANDS: list[tuple[Any, ...]] = [
    ("GET", "r:{88.100}:88.100/a"),
    ("CONFIG GET", "maxmemory"),
    (b"CLIENT SETNAME", b"node"),
    ("ZADD", "n:{88.100}:date", 20260105.0, "88.100/a", 1.5e20, "x", 0, "y", -3, "z"),
    ("SET", "k", "产品 ✓ \x00 nul", "PX", 10_000),
    ("MSET", "a", b"\x00\xff" * 40_000, "b", bytearray(b"abc"), "c", memoryview(b"xyz")),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_the_same_bytes_as_redis_py(command: tuple[Any, ...]) -> None:
    ours = b"".join(packed(Connection)().pack_command(*command))
    theirs = b"".join(Connection().pack_command(*command))
    assert ours == theirs


def test_an_argument_redis_cannot_take_is_a_data_error() -> None:
    nothing: Any = None
    with pytest.raises(DataError):
        packed(Connection)().pack_command("SET", "k", nothing)
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", nothing)


def test_the_connection_class_the_url_chose_is_kept() -> None:
    tcp = open_redis("redis://127.0.0.1:1/0").connection_pool.connection_class
    unix = open_redis("unix:///tmp/none.sock").connection_pool.connection_class
    assert issubclass(tcp, Connection) and tcp.__name__ == "HiredisConnection"
    assert issubclass(unix, UnixDomainSocketConnection)
    assert packed(Connection) is tcp  # made once per class


async def test_a_real_redis_answers(redis_server: StoreServer) -> None:
    redis = open_redis(redis_server.url)
    try:
        body = "产品".encode() * 50_000
        # One hash tag: a cluster takes a multi-key command within one slot only.
        await redis.execute_command("MSET", "t:{x}:a", body, "t:{x}:b", 7)
        assert await redis.mget(["t:{x}:a", "t:{x}:b", "t:{x}:none"]) == [body, b"7", None]
        await redis.zadd("t:z", {"m": 20260105.0})
        assert await redis.zscore("t:z", "m") == 20260105.0
    finally:
        await redis.delete("t:{x}:a", "t:{x}:b")
        await redis.delete("t:z")
        await redis.aclose()


async def test_a_burst_beyond_the_pool_waits_for_a_connection(
    redis_server: StoreServer,
) -> None:
    redis = open_redis(redis_server.url, max_connections=2, pool_timeout=5)
    try:
        replies = await asyncio.gather(*(redis.ping() for _ in range(500)))
        assert all(replies)
    finally:
        await redis.aclose()


async def test_a_pool_wait_that_runs_out_is_a_store_error(redis_server: StoreServer) -> None:
    redis = open_redis(redis_server.url, max_connections=1, pool_timeout=0.2)
    try:
        # The one connection held by a blocking read (BLPOP, 1 s) meanwhile.
        held = asyncio.ensure_future(redis.blpop(["t:never"], timeout=1))
        await asyncio.sleep(0.05)
        with pytest.raises(StoreUnavailable, match="no Redis connection came free"):
            async with translated():
                await redis.ping()
        assert await held is None
        assert await redis.ping()  # free again
    finally:
        await redis.aclose()


# REPLICAOF (how a test makes Redis refuse writes) is refused in cluster mode; a
# cluster's connections parse replies with the same parser (open_cluster).
@pytest.mark.parametrize("redis_server", ["redis"], indirect=True)
async def test_refused_writes_name_their_cause(redis_server: StoreServer) -> None:
    redis = open_redis(redis_server.url)
    try:
        await redis.execute_command("REPLICAOF", *NO_MASTER)
        assert await redis.get("t:none") is None  # reads go on
        with pytest.raises(WritesRefused, match="the store's disk is full"):
            await redis.set("t:refused", 1)
        with pytest.raises(StoreFull, match="disk is full.*: writes are refused, reads go on"):
            async with translated():
                await redis.set("t:refused", 1)
        with pytest.raises(StoreFull, match="disk is full"):  # a script's write too
            async with translated():
                await redis.eval("return redis.call('SET', 't:refused', 1)", 0)
        assert await redis.get("t:refused") is None
    finally:
        await redis.execute_command("REPLICAOF", "NO", "ONE")
        await redis.aclose()
