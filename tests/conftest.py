"""Shared fixtures: one real embedded Redis per test session, apps served in process."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast
from urllib.parse import quote

import httpx
import pytest
from redis.asyncio import Redis

from node.app import create_app
from node.config import NodeConfig
from node.embedded_redis import EmbeddedRedis
from registry.identifier import Handle
from registry.packed_form import BUILTIN, dictionary_key, dictionary_of, is_packed, unpack
from registry.paged_index import directory_key, page_key
from registry.record_keys import DEFAULT_BUCKETS, record_field, record_key
from registry.store import BUCKETS_KEY

ADMIN_SECRET = "s3cret"
ADMIN = "300:0.NA/88.100"


def basic(identity: str, secret: str) -> dict[str, str]:
    """The Authorization header a Handle client sends (username percent-encoded)."""
    token = base64.b64encode(f"{quote(identity, safe='')}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


ADMIN_AUTH = basic(ADMIN, ADMIN_SECRET)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


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
async def client(redis: Redis, redis_server: EmbeddedRedis) -> AsyncIterator[httpx.AsyncClient]:
    """A secondary node for 88.100 on the session's Redis, served in process."""
    async with served(node_config(redis_server.url)) as http:
        yield http


# Bookkeeping that every request may touch, refused or not: the audit log records each
# write, and quota counters count requests. Everything else is the store.
NOT_THE_STORE = (b"audit", b"quota:")


async def snapshot(redis: Redis) -> dict[object, object]:
    """Every key of the store with its serialised value: equal snapshots mean an unchanged
    store (the audit log and request counters aside)."""
    every = cast(list[bytes], await redis.keys("*"))
    keys = sorted(k for k in every if not k.startswith(NOT_THE_STORE))
    return {key: await redis.dump(key) for key in keys}


async def record_place(redis: Redis, text: str) -> tuple[str, str]:
    """The bucket and field holding a handle's record (registry.record_keys), as the
    store the node made counts its buckets."""
    handle = Handle.parse(text)
    buckets = int(await redis.get(BUCKETS_KEY) or DEFAULT_BUCKETS)
    return record_key(handle, buckets), record_field(handle)


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


async def index_members(redis: Redis, key: str) -> list[bytes]:
    """Every member of the paged index at ``key`` (registry.paged_index), in order."""
    lows = cast(list[bytes], await redis.zrange(directory_key(key), 0, -1))
    members: list[bytes] = []
    for low in lows:
        members += cast(list[bytes], await redis.zrange(page_key(key, low.decode()), 0, -1))
    return members


async def index_count(redis: Redis, key: str) -> int:
    """How many members the paged index at ``key`` holds (its counter)."""
    return int(await redis.get(key) or 0)
