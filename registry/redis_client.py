"""The node's Redis client: redis-py's asyncio client with commands packed by hiredis.

redis-py's asyncio connections pack every command in Python, about a microsecond an
argument; a batch commit carries tens of thousands (record bodies, index members), so
packing alone cost more than the rest of its client work. Its synchronous client packs
with hiredis when hiredis is installed, and so do these connections: the same bytes
(``test_redis_client`` compares them), several times faster.

>>> redis = open_redis("redis://127.0.0.1:6379/0")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import DataError

_packed_classes: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def open_redis(url: str, **options: Any) -> Redis:
    """``Redis.from_url(url, **options)`` whose connections pack with hiredis (TCP, TLS
    and Unix sockets alike: the connection class the URL chose is kept, only packing
    changes)."""
    redis = Redis.from_url(url, **options)
    pool = redis.connection_pool
    pool.connection_class = packed(pool.connection_class)
    return redis


def packed(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """``connection_class`` with hiredis packing (one subclass per class, made once)."""
    made = _packed_classes.get(connection_class)
    if made is None:
        made = type(
            f"Hiredis{connection_class.__name__}",
            (_HiredisPacking, connection_class),
            {},
        )
        _packed_classes[connection_class] = made
    return made


class _HiredisPacking:
    """Mixin: ``pack_command`` as redis-py's own hiredis serializer does it."""

    def pack_command(self, *args: Any) -> list[bytes]:
        # A first argument with spaces is several words ("CONFIG GET"), as redis-py does.
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            pass  # a bytearray (or an argument Redis cannot take): convert and retry
        plain = tuple(bytes(a) if isinstance(a, bytearray | memoryview) else a for a in args)
        try:
            # hiredis's stub types the argument as a 1-tuple; it takes any length.
            return [hiredis.pack_command(plain)]  # type: ignore[arg-type]
        except TypeError as exc:
            raise DataError(str(exc)) from None
