"""Limits on anonymous requests to the endpoints that cost a node most, or that let
anyone fill its store, on by default (:mod:`registry.admission` holds the buckets).

=========================  ====================================  =========================
request                    anonymous callers, per client address  setting (0: no limit)
=========================  ====================================  =========================
POST /api/enterprises      5 applications a minute, bursts of 10  ``--application-rate``
GET /api/search            10 a second, bursts of 20, the two     ``--anonymous-rate``
GET /api/trace/{handle}    routes sharing one bucket
=========================  ====================================  =========================

Both fan out (a search asks every node below, a trace resolves up to 200 handles across
nodes) or write (an application), so an address sending them in a loop would otherwise
get the node to do, or keep, far more than it sent. Over a limit: 429, responseCode 2,
``Retry-After`` the seconds until a token is back, as for ``--rate-limit``.

Who counts as anonymous. A request first takes a token from its address's bucket, so
the common case costs no authentication; only when the bucket is empty are the
request's credentials, if any, checked, and a request whose credentials hold goes on
(its identity's own ``--rate-limit`` and ``--daily-quota`` apply instead). A caller with
credentials is therefore never refused here, though its requests use its address's
tokens. Wrong credentials are answered 401, as on any other route.

The node above is not anonymous. A parent node's search fan-out reaches this node from
the parent's address, carrying the queries of all the parent's clients (each of them
limited there), so searches and traces from the address of ``--parent-url``'s host are
not limited here. The host is resolved when a request from another address would be
refused, and again a minute later, so a parent that moves is followed.

Not covered here: the node-wide cap on pending applications
(``--max-pending-applications``), which :class:`registry.onboarding.Onboarding`
applies atomically in Redis. The buckets live in the process, like ``--rate-limit``'s:
a node with N workers allows N times the rates.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from yarl import URL

from node.config import NodeConfig
from node.responses import error_response
from registry.admission import TokenBucket
from registry.errors import IdnodeError, TooManyRequests

log = logging.getLogger("idnode.node")


# OpenAPI: what the fan-out limit adds to the answers of the routes it covers.
FAN_OUT_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Over the anonymous limit with wrong credentials (402)"},
    429: {
        "description": "More anonymous searches and traces from this client address than "
        "--anonymous-rate allows (2); Retry-After says when to retry"
    },
}


class Costly(Enum):
    """The kinds of request limited for anonymous callers, with the unit of their rate."""

    APPLICATION = "enterprise applications per minute"
    FAN_OUT = "searches and traces per second"


def costly(method: str, path: str) -> Costly | None:
    """Which limit a request falls under, if any.

    >>> costly("POST", "/api/enterprises").name, costly("GET", "/api/trace/88.100/x").name
    ('APPLICATION', 'FAN_OUT')
    """
    if method == "POST" and path in ("/api/enterprises", "/api/enterprises/"):
        return Costly.APPLICATION
    if method in ("GET", "HEAD") and (path == "/api/search" or path.startswith("/api/trace/")):
        return Costly.FAN_OUT
    return None


@dataclass(frozen=True, slots=True)
class AnonymousLimits:
    """One token bucket per limited kind (None: that kind is not limited).

    >>> limits = AnonymousLimits.from_rates(applications_per_minute=5, fan_out_per_second=10)
    >>> limits.check(Costly.FAN_OUT, "10.0.0.1")  # a token: nothing raised
    """

    applications_per_minute: float
    fan_out_per_second: float
    applications: TokenBucket | None
    fan_out: TokenBucket | None

    @classmethod
    def from_rates(
        cls, *, applications_per_minute: float, fan_out_per_second: float
    ) -> AnonymousLimits:
        per_second = applications_per_minute / 60
        return cls(
            applications_per_minute,
            fan_out_per_second,
            TokenBucket(per_second, 2 * applications_per_minute) if per_second else None,
            TokenBucket(fan_out_per_second, 2 * fan_out_per_second) if fan_out_per_second else None,
        )

    @classmethod
    def from_config(cls, config: NodeConfig) -> AnonymousLimits:
        return cls.from_rates(
            applications_per_minute=config.application_rate,
            fan_out_per_second=config.anonymous_rate,
        )

    def check(self, kind: Costly, address: str) -> None:
        """Take a token for ``address``, or raise TooManyRequests saying when to retry."""
        if kind is Costly.APPLICATION:
            bucket, rate = self.applications, self.applications_per_minute
        else:
            bucket, rate = self.fan_out, self.fan_out_per_second
        if bucket is None:
            return
        wait = bucket.wait(address)
        if wait > 0:
            raise TooManyRequests(
                f"More than {rate:g} anonymous {kind.value} from client address {address}; "
                f"retry in {wait:.1f} s, or send credentials",
                retry_after=max(1, int(wait + 0.999)),
            )


class PeerAddress:
    """The addresses of one node's host (the parent's), resolved when asked and at most
    once every ``RESOLVE_EVERY`` seconds.

    >>> asyncio.run(PeerAddress("http://10.1.2.3:8000").holds("10.1.2.3"))
    True
    """

    RESOLVE_EVERY = 60.0

    def __init__(self, url: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.host = URL(url).host if url else None
        self.clock = clock
        self._addresses: frozenset[str] = frozenset()
        self._resolved_at: float | None = None

    async def holds(self, address: str) -> bool:
        if self.host is None:
            return False
        now = self.clock()
        if self._resolved_at is None or now - self._resolved_at >= self.RESOLVE_EVERY:
            self._resolved_at = now
            try:
                found = await asyncio.get_running_loop().getaddrinfo(
                    self.host, None, type=socket.SOCK_STREAM
                )
            except OSError as exc:
                log.warning("parent host %s not resolved: %s", self.host, exc)
            else:
                self._addresses = frozenset(str(info[4][0]) for info in found)
        return address in self._addresses


class AnonymousGate:
    """ASGI middleware applying :class:`AnonymousLimits` before routing; fan-out from
    the parent node's address is not limited (:class:`PeerAddress`)."""

    def __init__(self, app: ASGIApp, limits: AnonymousLimits, parent_url: str | None) -> None:
        self.app = app
        self.limits = limits
        self.parent = PeerAddress(parent_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = costly(scope["method"], scope["path"]) if scope["type"] == "http" else None
        node = getattr(scope["app"].state, "node", None) if kind is not None else None
        if kind is None or node is None:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        try:
            self.limits.check(kind, address)
        except TooManyRequests as refusal:
            try:
                # The parent's fan-out goes on: its own clients are limited there.
                if not (kind is Costly.FAN_OUT and await self.parent.holds(address)):
                    if Headers(scope=scope).get("authorization") is None:
                        raise refusal from None
                    await node.authenticate(Request(scope))  # raises unless they hold
            except IdnodeError as exc:
                await error_response(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)
