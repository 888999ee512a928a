"""How many replicas must hold a write before the node acknowledges it.

Redis replicates asynchronously: a master answers a write once it has applied it (and,
with ``appendfsync always``, written it to its AOF), and sends it to its replicas
meanwhile. If the master fails before a replica has the write, the replica promoted in
its place lacks it, and the write is lost though it was acknowledged. ``WAIT n t``,
sent on the connection that wrote, blocks until ``n`` replicas confirm every write that
connection made, or ``t`` milliseconds pass, and answers how many did.

With :attr:`ReplicaAcks.replicas` above 0 the node queues a ``WAIT`` after the writes
of a commit, in the same pipeline, one for each master the writes went to (a cluster
pipeline sends each master's commands in order on one connection), and refuses the
request with :class:`~registry.errors.WriteNotReplicated` (503) when a master's replicas
fall short. As Redis's documentation says of ``WAIT``, this does not make the store
strongly consistent: Redis Cluster promotes, on a best-effort basis, the replica that
has received the most, so a write a replica confirmed survives its master's failure
unless that replica fails too, or another is promoted. A write made while its slot
moves (``ASK``) is waited for on the master that was asked first.

>>> ReplicaAcks(1).short_of([1, 2])
[]
>>> ReplicaAcks(1).short_of([1, 0])
[1]
>>> ReplicaAcks(0).short_of([])
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, RedisCluster

from registry.errors import WriteNotReplicated
from registry.redis_client import master_infos

DEFAULT_TIMEOUT_MS = 1000


@dataclass(frozen=True, slots=True)
class ReplicaAcks:
    """Replicas that must confirm each write (0: none, no ``WAIT``), and how long the
    node waits for them (milliseconds)."""

    replicas: int = 0
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    def queue(self, pipe: Pipeline, redis: Redis, keys: Iterable[str | bytes]) -> int:
        """Queue a ``WAIT`` on ``pipe`` after the writes queued so far, for each master
        holding one of ``keys`` (a key of each write suffices); how many were queued."""
        if self.replicas == 0:
            return 0
        if not isinstance(redis, RedisCluster):
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
            return 1
        masters: dict[str, ClusterNode] = {}
        for key in keys:
            node = cast(ClusterNode, redis.get_node_from_key(key))
            masters.setdefault(node.name, node)
        for node in masters.values():
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms, target_nodes=node)
        return len(masters)

    def short_of(self, replies: Sequence[Any]) -> list[int]:
        """The ``WAIT`` replies (their positions) that fell short of :attr:`replicas`;
        an error in place of a count falls short too."""
        return [
            n
            for n, reply in enumerate(replies)
            if isinstance(reply, Exception) or int(reply) < self.replicas
        ]

    def check(self, replies: Sequence[Any]) -> None:
        """Raise :class:`WriteNotReplicated` if a ``WAIT`` fell short."""
        if short := self.short_of(replies):
            counts = ", ".join(
                "an error" if isinstance(replies[n], Exception) else str(replies[n]) for n in short
            )
            raise WriteNotReplicated(
                f"The write was made on its Redis master, but only {counts} of the "
                f"{self.replicas} replica(s) required confirmed it within "
                f"{self.timeout_ms} ms: if that master fails now, the write may be lost. "
                "Check the store's replicas; sending the write again writes the same"
            )


async def replicas_everywhere(redis: Redis) -> int:
    """The fewest replicas any master of the store has (``connected_slaves``): what a
    node can ask each write to reach."""
    infos = await master_infos(redis, "replication")
    return min(int(info.get("connected_slaves", 0)) for info in infos)


NO_WAIT = ReplicaAcks()  # acknowledged once the master has the write
