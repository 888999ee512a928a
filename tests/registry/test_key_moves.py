"""Moving a key to a tagged name (registry.key_moves), on a real Redis and a Redis
Cluster, where the two names are in different slots."""

from __future__ import annotations

from redis.asyncio import Redis

from registry.key_moves import move_key


async def test_a_key_moves_with_its_value_type_and_time_to_live(redis: Redis) -> None:
    await redis.set("ent:next", 7)
    await redis.hset("sess:t:ab", mapping={"a": "1"})
    await redis.pexpire("sess:t:ab", 50_000)
    assert await move_key(redis, "ent:next", "ent:{ent}:next")
    assert await move_key(redis, b"sess:t:ab", b"sess:{sess}:t:ab")
    assert await redis.exists("ent:next", "sess:t:ab") == 0
    assert await redis.get("ent:{ent}:next") == b"7"
    assert await redis.ttl("ent:{ent}:next") == -1  # no expiry before, none after
    assert await redis.hgetall("sess:{sess}:t:ab") == {b"a": b"1"}
    assert 0 < await redis.pttl("sess:{sess}:t:ab") <= 50_000


async def test_a_key_already_at_the_new_name_is_kept(redis: Redis) -> None:
    """An interrupted move (copied, not deleted) or another worker's: what is at the new
    name is the copy or newer, and stays; the old key goes."""
    await redis.set("ent:apps", "older")
    await redis.set("ent:{ent}:apps", "newer")
    assert await move_key(redis, "ent:apps", "ent:{ent}:apps")
    assert await redis.get("ent:{ent}:apps") == b"newer"
    assert await redis.exists("ent:apps") == 0


async def test_moving_a_missing_key_does_nothing(redis: Redis) -> None:
    await redis.set("ent:{ent}:pending", "kept")
    assert not await move_key(redis, "ent:pending", "ent:{ent}:pending")
    assert await redis.get("ent:{ent}:pending") == b"kept"
