"""Connection hygiene: the limits a node puts on client connections and on its Redis pool.

Small value objects (as httpx's ``Timeout``), set once from :mod:`node.config`, and the
pure decisions that go with them; :mod:`node.connection_guard` applies them to sockets.

What each limit stops (the threat model's "connection hygiene" finding):

======================  =======  =========================================================
setting                 default  stops
======================  =======  =========================================================
max_connections         4096     holders of thousands of sockets exhausting the file limit;
                                 at the limit a new connection evicts the longest-idle
                                 one (nginx does the same), or is refused with 503 when
                                 every connection is busy
max_header_bytes        16 KiB   huge request heads (431 and close as soon as the head
                                 passes the limit, before it is buffered further)
header_timeout          10 s     slowloris: a request head must be complete this long
                                 after the connection became ready for it
body_timeout            60 s     a slow body (R.U.D.Y.): a request body must arrive
                                 whole this long after its head
keep_alive_timeout      5 s      idle keep-alive connections between requests
redis_max_connections   64       a burst opening one Redis connection per request: the
                                 pool is bounded, requests wait for a free connection...
redis_pool_timeout      2 s      ...this long, then get 503 (responseCode 2)
======================  =======  =========================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

# File descriptors kept free of client connections: the Redis pool, calls to other
# nodes (aiohttp's limit), log files, the listening socket.
RESERVED_FILES = 512


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Bounds on client connections.

    >>> ConnectionLimits(max_connections=100).header_timeout
    10.0
    """

    max_connections: int = 4096
    max_header_bytes: int = 16 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    keep_alive_timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """Bounds on the node's Redis connection pool.

    >>> PoolLimits().max_connections, PoolLimits().timeout
    (64, 2.0)
    """

    max_connections: int = 64
    timeout: float = 2.0


def connections_that_fit(wanted: int, file_limit: int) -> int:
    """How many client connections a process with ``file_limit`` open files can hold,
    at most ``wanted``: the rest of its files stay for Redis, other nodes and logs.

    >>> connections_that_fit(4096, 20000), connections_that_fit(4096, 1024)
    (4096, 512)
    """
    return max(1, min(wanted, file_limit - RESERVED_FILES))


class Idle(Protocol):
    """What eviction needs to know of a connection."""

    @property
    def busy(self) -> bool:
        """A request is being answered on it."""

    @property
    def idle_since(self) -> float:
        """When it last finished a response, or was accepted (monotonic seconds)."""


C = TypeVar("C", bound=Idle)


def eviction_victim(connections: Iterable[C]) -> C | None:
    """The connection to close so a new one fits: the longest idle of those not
    answering a request (idle keep-alive, or still sending its request head); None when
    every connection is busy (the new one is refused instead).

    A client that holds many idle sockets thus loses its oldest ones to each new
    client, rather than locking everybody out.
    """
    victim: C | None = None
    for connection in connections:
        if connection.busy:
            continue
        if victim is None or connection.idle_since < victim.idle_since:
            victim = connection
    return victim
