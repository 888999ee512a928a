"""uvicorn's httptools protocol with the node's connection limits applied.

uvicorn bounds none of these for httptools: llhttp buffers a request head of any size
(a 100 MiB header was accepted), no timer runs before the first request or while a
head arrives byte by byte (slowloris), and ``limit_concurrency`` counts idle
connections, so a client holding sockets would get every other client 503s.
:class:`GuardedProtocol` adds, per :class:`node.connection_limits.ConnectionLimits`:

* a head-size limit: bytes received while a request head is incomplete are counted
  before they are parsed; past ``max_header_bytes`` the answer is 431 and the
  connection is closed (a head completed within one read is measured exactly);
* a head deadline: ``header_timeout`` seconds after the connection becomes ready for a
  request (accepted, or its previous response sent) the head must be complete, or the
  connection is closed. A request only notes when its connection became ready; one
  timer per server sweeps the connections (every quarter of the timeout, at most every
  second), so the hot path arms and cancels no timer per request;
* a body deadline: a request body must arrive whole within ``body_timeout`` seconds of
  its head (the same sweep), or the connection is closed;
* a connection cap: past ``max_connections`` the longest-idle connection is closed to
  make room (:func:`node.connection_limits.eviction_victim`); if all are busy the new
  one is answered 503 and closed.

The keep-alive timeout is uvicorn's own ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import resource
from typing import Any, ClassVar

from node.coalescing import CoalescingHttpToolsProtocol
from node.connection_limits import ConnectionLimits, connections_that_fit, eviction_victim

log = logging.getLogger("idnode.node")


def _refusal(status: bytes, message: str) -> bytes:
    body = b'{"responseCode":2,"message":"' + message.encode() + b'"}'
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


_431 = _refusal(b"431 Request Header Fields Too Large", "request head over the size limit")
_503 = _refusal(b"503 Service Unavailable", "the node is at its connection limit")


class GuardedProtocol(CoalescingHttpToolsProtocol):
    """The node's HTTP protocol; :func:`guarded_protocol` binds its limits."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    # The sweep of late heads, one per server (each server has its own subclass).
    _sweep: ClassVar[asyncio.TimerHandle | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # read since the last head or body ended
        self._reading_head = True  # the parser is between messages or inside a head
        # When the connection became ready for a request head; None while one is answered.
        self.waiting_since: float | None = self.loop.time()
        # When the head of a request whose body has not all arrived ended; else None.
        self.body_since: float | None = None
        self.idle_since = self.loop.time()

    @property
    def busy(self) -> bool:
        """A request is being answered (its head came; its response is not all sent)."""
        cycle = self.cycle
        return bool(self.pipeline) or (cycle is not None and not cycle.response_complete)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            others = (c for c in self.connections if c is not self)
            victim = eviction_victim(c for c in others if isinstance(c, GuardedProtocol))
            if victim is None:  # all busy: this one goes
                victim = self
                self.transport.write(_503)
            victim.transport.close()
            self.connections.discard(victim)
            if victim is self:
                return
        cls = type(self)
        if cls._sweep is None:
            cls._sweep = self.loop.call_later(self._sweep_period(), self._sweep_late_heads)

    def data_received(self, data: bytes) -> None:
        # Counted before parsing: llhttp would buffer a head of any size.
        self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse_head()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self.waiting_since = None
        self.body_since = self.loop.time()
        read, self._head_bytes = self._head_bytes, 0
        # The head ended within what was read. If that is over the limit, it may carry
        # a body too: measure the head exactly (request line, and name, ": ", value and
        # CRLF per header). Most requests are far under, and cost nothing here.
        if read > self.limits.max_header_bytes:
            size = len(self.url) + 16 + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self.limits.max_header_bytes:
                self._refuse_head()
                return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_head = True
        self.body_since = None
        self._head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.idle_since = self.waiting_since = self.loop.time()

    def _refuse_head(self) -> None:
        if self.transport.is_closing():
            return
        self.waiting_since = None
        log.info("request head over the limit", extra={"client": self.client})
        self.transport.write(_431)
        self.transport.close()

    @classmethod
    def _sweep_period(cls) -> float:
        return min(1.0, cls.limits.header_timeout / 4, cls.limits.body_timeout / 4)

    def _sweep_late_heads(self) -> None:
        """Close the connections whose request head or body is overdue; sweep again
        while any connection is open (the server's last one ends the sweeps until the
        next)."""
        cls = type(self)
        cls._sweep = None
        now = self.loop.time()
        head_due, body_due = now - self.limits.header_timeout, now - self.limits.body_timeout
        for connection in list(self.connections):
            if not isinstance(connection, GuardedProtocol):
                continue
            waiting, body = connection.waiting_since, connection.body_since
            late_head = waiting is not None and waiting <= head_due and not connection.busy
            if (late_head or (body is not None and body <= body_due)) and (
                not connection.transport.is_closing()
            ):
                connection.transport.close()
        if self.connections:
            cls._sweep = self.loop.call_later(self._sweep_period(), self._sweep_late_heads)


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedProtocol]:
    """:class:`GuardedProtocol` with ``limits`` (uvicorn makes protocols from a class)."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})


def fitted_limits(limits: ConnectionLimits) -> ConnectionLimits:
    """``limits`` with ``max_connections`` lowered to what the open-file limit allows,
    after raising that limit's soft value to its hard one (a node should never run out
    of descriptors before its own cap turns clients away)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass  # keep the soft limit we have
    fit = connections_that_fit(limits.max_connections, soft)
    if fit < limits.max_connections:
        log.warning(
            "max connections lowered to fit the open-file limit",
            extra={"wanted": limits.max_connections, "allowed": fit, "file_limit": soft},
        )
    return dataclasses.replace(limits, max_connections=fit)
