"""The commands a store ran, counted by Redis itself (INFO commandstats): of the one
server, or summed over every master of a Redis Cluster (where each counts its own)."""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster


async def reset_stats(redis: Redis) -> None:
    """CONFIG RESETSTAT: of every master, on a cluster."""
    if isinstance(redis, RedisCluster):
        await redis.config_resetstat(target_nodes=RedisCluster.PRIMARIES)
    else:
        await redis.config_resetstat()


async def command_calls(redis: Redis) -> dict[str, int]:
    """Calls per command (``zadd``, ``config|resetstat``, ...) since the last reset."""
    if isinstance(redis, RedisCluster):
        each = await redis.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
        replies = list(cast(dict[str, dict[str, Any]], each).values())
    else:
        replies = [await redis.info("commandstats")]
    calls: dict[str, int] = {}
    for stats in replies:
        for name, row in stats.items():
            command = name.removeprefix("cmdstat_")
            calls[command] = calls.get(command, 0) + int(row["calls"])
    return calls
