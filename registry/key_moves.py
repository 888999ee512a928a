"""Moving a key to a new name, one key at a time, for layout upgrades that give keys a
Redis Cluster hash tag (:mod:`registry.session`, :mod:`registry.onboarding`).

``RENAME`` would be one command, but a Redis Cluster refuses it when the two names are
in different slots, which is the very point of such a move. So a key is copied (``DUMP``,
then ``RESTORE`` with the time it had left to live) and only then deleted. The copy
never replaces a key already at the new name (no ``REPLACE``): the upgrade may have been
interrupted after the copy, or another worker process of the node may be upgrading the
same store at the same time, and a key at the new name is then the copy itself or newer
than it (a node serves, and writes new names, only once its upgrade has finished). Either
way the old key is deleted, so running the move again does nothing.
"""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError


async def move_key(redis: Redis, old: str | bytes, new: str | bytes) -> bool:
    """Copy ``old`` to ``new`` with its expiry and delete ``old``; False if ``old`` was
    not there (gone, expired or moved already). A key already at ``new`` is kept."""
    pipe = redis.pipeline(transaction=False)
    pipe.pttl(old)
    pipe.dump(old)
    left, dumped = cast(tuple[int, bytes | None], tuple(await pipe.execute()))
    if dumped is None or left == -2:  # -2: no such key (it expired in between)
        return False
    try:
        await redis.restore(new, max(0, int(left)), dumped)  # 0: no expiry
    except ResponseError as exc:
        if not str(exc).startswith("BUSYKEY"):
            raise
    await redis.delete(old)
    return True
