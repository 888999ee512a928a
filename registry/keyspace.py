"""Walking a store's whole keyspace a page at a time, resumably: on one Redis, or on
every master of a Redis Cluster.

Redis's ``SCAN`` walks one server's keys with a cursor; a cluster's keys are spread over
its masters, each walked with a cursor of its own. :func:`scan_page` hides the
difference behind one cursor, a short text the caller may keep between pages (the
store's index rebuild keeps it in Redis, so a restarted node carries on): ``"0"`` to
begin, and ``"0"`` again once every key has been seen.

On a single Redis the text is SCAN's own cursor. On a cluster it is every master with
its cursor, as JSON (``{"127.0.0.1:7000": 1234}``; :data:`DONE` for a master walked
to the end), the masters walked one after the other. When the masters are no longer
the ones the walk began with (one failed over, one was added), nothing certain is left
to resume from, so the walk starts again: the callers' work is idempotent (adding index
entries again adds nothing).

>>> next_master({"b:2": 5, "a:1": DONE})
'b:2'
>>> next_master({"a:1": DONE})
"""

from __future__ import annotations

import json
from typing import cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

START = "0"
DONE = -1  # a cluster master walked to the end


def is_cluster(redis: Redis) -> bool:
    """Whether ``redis`` is a Redis Cluster client (registry.redis_client.open_cluster)."""
    return isinstance(redis, RedisCluster)


def next_master(cursors: dict[str, int]) -> str | None:
    """The master a cluster walk goes on with: the first by name not walked yet."""
    return min((name for name, at in cursors.items() if at != DONE), default=None)


async def scan_page(
    redis: Redis, cursor: str, *, match: str | None = None, count: int = 1000
) -> tuple[str, list[bytes]]:
    """One ``SCAN`` page of the keyspace from ``cursor`` (:data:`START` to begin): the
    cursor to go on from (:data:`START` once done) and the keys found (which may be
    none, while the walk is not done)."""
    if not is_cluster(redis):
        after, keys = await redis.scan(int(cursor), match=match, count=count)
        return str(after), cast(list[bytes], keys)
    cluster = cast(RedisCluster, redis)
    masters = {node.name: node for node in cluster.get_primaries()}
    cursors: dict[str, int] = dict.fromkeys(masters, 0) if cursor == START else json.loads(cursor)
    if set(cursors) != set(masters):  # not the masters it began with: start again
        cursors = dict.fromkeys(masters, 0)
    name = next_master(cursors)
    if name is None:
        return START, []
    page = await cluster.scan(cursors[name], match=match, count=count, target_nodes=masters[name])
    reached, found = cast(tuple[dict[str, int], list[bytes]], page)
    cursors[name] = reached[name] or DONE
    done = next_master(cursors) is None
    return (START if done else json.dumps(cursors)), found
