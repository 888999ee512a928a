"""Commits that wait for replicas (``--replica-acks``, registry.replication): on the
test cluster every master has a replica, which confirms each write; the single Redis
has none, so a write that asks for one is refused (503) though it was made, and says so.
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from node.app import create_app
from registry.errors import WriteNotReplicated
from registry.identifier import Handle
from registry.record import HandleRecord
from registry.replication import ReplicaAcks, replicas_everywhere
from registry.store import HandleStore, Stored
from registry.value import DataFormat, HandleValue
from tests.conftest import StoreServer, node_config

NOW = "2026-12-05T00:00:00Z"


def record(text: str) -> HandleRecord:
    values = (HandleValue(1, "URL", DataFormat.STRING, f"https://x.cn/{text}", 86400, NOW),)
    return HandleRecord(Handle.parse(text), values)


async def test_a_write_waits_for_a_replica_where_there_is_one(
    redis: Redis, redis_server: StoreServer
) -> None:
    store = HandleStore(redis, replica_acks=ReplicaAcks(1, timeout_ms=300))
    changes: list[tuple[Stored | None, HandleRecord | None]] = [
        (None, record(f"88.100/w{n}")) for n in range(30)
    ]
    if redis_server.kind == "cluster":
        assert await replicas_everywhere(redis) == 1
        assert await store.commit_many(changes) == [True] * len(changes)
        async with store.watched([Handle.parse("88.100/batch")]) as batch:
            assert await batch.commit([(None, record("88.100/batch"))]) == [True]
        return
    assert await replicas_everywhere(redis) == 0
    with pytest.raises(WriteNotReplicated) as refused:
        await store.commit_many(changes)
    assert "only 0 of the 1 replica(s) required confirmed it within 300 ms" in str(refused.value)
    assert refused.value.http_status == 503
    # Made all the same: the write is atomic and is not undone.
    made = await store.load(Handle.parse("88.100/w0"))
    assert made is not None and made.record == changes[0][1]


async def test_a_node_waits_for_one_replica_where_every_master_has_one(
    redis: Redis, redis_server: StoreServer
) -> None:
    app = create_app(node_config(redis_server.url))
    async with app.router.lifespan_context(app):
        acks = app.state.node.store.replica_acks
    assert acks.replicas == (1 if redis_server.kind == "cluster" else 0)
    explicit = create_app(node_config(redis_server.url, replica_acks="0"))
    async with explicit.router.lifespan_context(explicit):
        assert explicit.state.node.store.replica_acks.replicas == 0
