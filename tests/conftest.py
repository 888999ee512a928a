"""Shared fixtures: one real embedded Redis per test session, apps served in process."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import quote

import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from node.app import create_app
from node.config import NodeConfig
from node.embedded_cluster import EmbeddedCluster
from node.embedded_redis import EmbeddedRedis
from registry.identifier import Handle
from registry.packed_form import BUILTIN, dictionary_key, dictionary_of, is_packed, unpack
from registry.paged_index import directory_key, page_key
from registry.record_keys import (
    DEFAULT_BUCKETS,
    record_field,
    record_key,
    shard_tags,
    tag_of,
)
from registry.redis_client import open_redis
from registry.store import BUCKETS_KEY, SHARDS_KEY
from tests.cluster_slots import watching

ADMIN_SECRET = "s3cret"
ADMIN = "300:0.NA/88.100"


def basic(identity: str, secret: str) -> dict[str, str]:
    """The Authorization header a Handle client sends (username percent-encoded)."""
    token = base64.b64encode(f"{quote(identity, safe='')}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


ADMIN_AUTH = basic(ADMIN, ADMIN_SECRET)


@pytest.fixture(scope="session")
def single_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """The session's single Redis (started once, emptied by each test's ``redis``).
    Its AOF is fsynced once a second, not before every reply: what the tests on it
    check does not depend on a crash (the durability tests start servers of their own,
    with the nodes' default), and thousands of tests' writes wait less."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendfsync="everysec")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    """The session's Redis Cluster: 3 masters with a replica each, started the first
    time a test asks for it."""
    cluster = EmbeddedCluster(
        tmp_path_factory.mktemp("cluster"), masters=3, replicas=1, appendfsync="everysec"
    )
    cluster.start()
    yield cluster
    cluster.stop()


@dataclass(frozen=True)
class StoreServer:
    """Where a test's node keeps its store: ``url`` as ``--redis-url`` takes it."""

    kind: str  # "redis" (a single Redis) or "cluster" (a 3-master Redis Cluster)
    url: str


# The stores every store-level and app-level test runs on: a single Redis and a Redis
# Cluster. A test that holds for one only parametrises ``redis_server`` to it.
STORES = ["redis", "cluster"]


@pytest.fixture(params=STORES)
def redis_server(request: pytest.FixtureRequest) -> StoreServer:
    """The store of a test: the session's single Redis, or its Redis Cluster."""
    if request.param == "cluster":
        cluster: EmbeddedCluster = request.getfixturevalue("redis_cluster")
        return StoreServer("cluster", cluster.url)
    single: EmbeddedRedis = request.getfixturevalue("single_redis")
    return StoreServer("redis", single.url)


@pytest.fixture
def prefix_shards() -> int:
    """The shards (``store:shards``) of the store a test's Redis starts as. A module
    runs its tests on a sharded store too by overriding this fixture with
    ``params=SHARDED`` (a test needing one shard parametrises it to ``[1]``)."""
    return 1


# A store of one shard, and one whose prefixes spread over 4 (registry.record_keys).
SHARDED = [1, 4]


@pytest.fixture
async def redis(redis_server: StoreServer, prefix_shards: int) -> AsyncIterator[Redis]:
    """A client of the test's store, emptied (a Redis Cluster's client on a cluster).
    With ``prefix_shards`` above 1 the store is one created with ``--prefix-shards``
    that many; on a single Redis, every command, script call and transaction Redis
    runs meanwhile must then keep its keys in one Redis Cluster slot
    (:mod:`tests.cluster_slots`): the test fails otherwise, as a cluster would."""
    client = open_redis(redis_server.url) if redis_server.kind == "cluster" else None
    client = client or Redis.from_url(redis_server.url)
    await client.flushall()
    if prefix_shards == 1 or redis_server.kind == "cluster":
        if redis_server.kind == "cluster":  # as the test says, not a cluster's default
            await client.set(SHARDS_KEY, prefix_shards)
        yield client
        await client.aclose()
        return
    await client.set(SHARDS_KEY, prefix_shards)  # as a node with --prefix-shards made it
    async with watching(redis_server.url) as watch:
        yield client
    await client.aclose()
    assert not watch.problems, "a Redis Cluster would refuse:\n" + "\n".join(watch.problems)


def node_config(redis_url: str, prefix: str = "88.100", **settings: object) -> NodeConfig:
    args: dict[str, object | None] = {
        "role": "secondary",
        "prefix": prefix,
        "redis_url": redis_url,
        "admin_secret": ADMIN_SECRET,
        "allow_private_nodes": True,  # every other node of a test is on loopback
    }
    args.update(settings)
    return NodeConfig.from_sources(args, env={})


@asynccontextmanager
async def served(config: NodeConfig) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a node app with this configuration, served in process."""
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            yield http


@pytest.fixture
async def client(redis: Redis, redis_server: StoreServer) -> AsyncIterator[httpx.AsyncClient]:
    """A secondary node for 88.100 on the session's Redis, served in process."""
    async with served(node_config(redis_server.url)) as http:
        yield http


# Bookkeeping that every request may touch, refused or not: the audit log records each
# write, and quota counters count requests. Everything else is the store.
NOT_THE_STORE = (b"audit", b"quota:")


async def all_keys(redis: Redis, pattern: str = "*") -> list[bytes]:
    """Every key matching ``pattern``: of every master, on a Redis Cluster."""
    if isinstance(redis, RedisCluster):
        found = await redis.keys(pattern, target_nodes=RedisCluster.PRIMARIES)
    else:
        found = await redis.keys(pattern)
    return cast(list[bytes], found)


async def snapshot(redis: Redis) -> dict[object, object]:
    """Every key of the store with its serialised value: equal snapshots mean an unchanged
    store (the audit log and request counters aside)."""
    every = await all_keys(redis)
    keys = sorted(k for k in every if not k.startswith(NOT_THE_STORE))
    return {key: await redis.dump(key) for key in keys}


def shard_key(key: str, handle: str, shards: int) -> str:
    """The key of the shard of the prefix index ``key`` (named by its prefix alone)
    that holds ``handle``'s entries, on a store of the default bucket count."""
    tag = tag_of(Handle.parse(handle), DEFAULT_BUCKETS, shards)
    head, _, rest = key.partition("{")
    return f"{head}{{{tag}}}{rest.partition('}')[2]}"


async def record_place(redis: Redis, text: str) -> tuple[str, str]:
    """The bucket and field holding a handle's record (registry.record_keys), as the
    store the node made counts its buckets."""
    handle = Handle.parse(text)
    buckets = int(await redis.get(BUCKETS_KEY) or DEFAULT_BUCKETS)
    shards = int(await redis.get(SHARDS_KEY) or 1)
    return record_key(handle, buckets, shards), record_field(handle)


async def stored_record(redis: Redis, text: str) -> bytes | None:
    """A handle's record in its stored form (compact, unpacked if it was packed with a
    dictionary: registry.packed_form), or None."""
    bucket, field = await record_place(redis, text)
    body = cast(bytes | None, await redis.hget(bucket, field))
    if body is None or not is_packed(body):
        return body
    number, start = dictionary_of(body)
    dictionary = BUILTIN if number == 0 else await redis.get(dictionary_key(number))
    assert isinstance(dictionary, bytes), f"dictionary {number} is not in the store"
    return unpack(body, field, dictionary, start)


@pytest.fixture
def tmp_data(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def shard_keys(redis: Redis, key: str) -> list[str]:
    """The keys of every shard of the prefix index ``key`` names by its prefix alone
    (``l:{88.100}``), as the store's ``store:shards`` spreads it: ``key`` itself on a
    store of one shard (registry.record_keys.shard_tag)."""
    shards = int(await redis.get(SHARDS_KEY) or 1)
    head, _, rest = key.partition("{")
    tag, _, tail = rest.partition("}")
    if "/" in tag:  # one shard's key already
        return [key]
    return [f"{head}{{{t}}}{tail}" for t in shard_tags(tag, shards)]


async def index_members(redis: Redis, key: str) -> list[bytes]:
    """Every member of the paged index at ``key`` (registry.paged_index), in order:
    of all its shards' sets (:func:`shard_keys`), merged in byte order."""
    members: list[bytes] = []
    for each in await shard_keys(redis, key):
        lows = cast(list[bytes], await redis.zrange(directory_key(each), 0, -1))
        for low in lows:
            members += cast(list[bytes], await redis.zrange(page_key(each, low.decode()), 0, -1))
    return sorted(members)


async def index_count(redis: Redis, key: str) -> int:
    """How many members the paged index at ``key`` holds (its shards' counters)."""
    return sum([int(await redis.get(each) or 0) for each in await shard_keys(redis, key)])
