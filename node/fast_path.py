"""The resolution hot path: a plain ``GET /api/handles/{handle}`` answered without FastAPI.

Most of a node's traffic is one request shape: GET (or HEAD), a handle in the path, no
query string. For it, routing, dependency injection, parameter models and the middleware
stack cost several times what the answer itself costs (an in-process cache lookup or
one Redis HGET, and stored bytes written out). The node's app class calls
:meth:`FastResolutions.answer` before anything else; it answers that shape through the
same :class:`node.answerer.Answerer` the route uses, with the same headers, errors and
metrics, and leaves every other request, and every request it is not sure about, to
the app unchanged:

- HEAD is answered as GET, status and headers (Content-Length the length GET's body
  has, as HTTP allows and the Handle servlet does), without the body;
- a query string (filters, ``publicOnly``), another method or path: the app;
- credentials (an ``Authorization`` header): the app, since Handle's ``publicOnly``
  defaults to false for them (restricted values for an identity that may read them);
- a path with ``%`` escapes or bytes outside printable ASCII: the app (its path guard
  decides; the common identifier needs no decoding);
- a node with ``--rate-limit`` or ``--daily-quota``: the app (admission is there);
- a malformed handle: the app (which renders the 400).

What it does answer is exactly what ``node.handles.resolve`` answers: it is tested
against the route (tests/node/test_fast_path.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from starlette.types import Scope, Send

from node.metrics import NodeMetrics, error_outcome
from node.state import NodeState
from registry.errors import IdnodeError, InvalidHandle
from registry.identifier import Handle

log = logging.getLogger("idnode.node")
PREFIX = "/api/handles/"
ROUTE = "/api/handles/{handle:path}"  # the route template metrics name
_JSON = (b"content-type", b"application/json")
_PARSED_LIMIT = 100_000
_SAFE = frozenset(range(0x21, 0x7F)) - {ord("%")}


class FastResolutions:
    """Answers plain resolutions for a node app (see the module docstring); the app
    calls :meth:`answer` first and handles the request itself when it returns False."""

    def __init__(self) -> None:
        self.answered = 0  # requests answered here rather than by the app
        self._parsed: dict[str, Handle] = {}  # hot identifiers are parsed once
        self._counters: dict[tuple[int, str, int], Any] = {}
        self._latency: dict[int, Any] = {}

    async def answer(self, node: NodeState | None, scope: Scope, send: Send) -> bool:
        """Answer ``scope`` if it is a plain resolution this node can answer directly."""
        method = scope.get("method")
        if (
            node is None
            or scope["type"] != "http"
            or (method != "GET" and method != "HEAD")
            or scope["query_string"]
            or not scope["path"].startswith(PREFIX)
            or node.rate is not None
            or node.quota is not None
            or not _SAFE.issuperset(scope.get("raw_path") or b"%")
        ):
            return False
        for name, _ in scope["headers"]:  # a loop: a generator costs more per request
            if name == b"authorization":
                return False
        spelled = scope["path"][len(PREFIX) :]
        handle = self._parsed.get(spelled)
        if handle is None:
            try:
                handle = Handle.parse(spelled)
            except InvalidHandle:
                return False
            if len(self._parsed) >= _PARSED_LIMIT:
                self._parsed.clear()
            self._parsed[spelled] = handle
        started = time.perf_counter()
        try:
            reply = await node.answerer.answer(handle, spelled)
        except IdnodeError as exc:
            exc.handle = exc.handle or spelled
            outcome = error_outcome(exc)
            if outcome is not None:
                node.resolved(outcome)
            if exc.http_status >= 500:
                log.warning("GET %s failed: %s", scope["path"], exc.message)
                node.metrics.failed(exc)
            status, body, headers = exc.http_status, orjson.dumps(exc.body()), []
        else:
            node.resolved(reply.outcome)
            status, body = reply.status, reply.body
            headers = reply.raw_headers()
        headers.append(_JSON)
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body if method == "GET" else b""})
        self._count(node.metrics, method, status, time.perf_counter() - started)
        self.answered += 1
        return True

    def _count(self, metrics: NodeMetrics, method: str, status: int, seconds: float) -> None:
        """The request metrics RequestMetrics would record, with the labelled children
        looked up once (labels() costs more than the increment)."""
        key = (id(metrics), method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = metrics.requests.labels(method, ROUTE, str(status))
        counter.inc()
        latency = self._latency.get(id(metrics))
        if latency is None:
            latency = self._latency[id(metrics)] = metrics.latency.labels(ROUTE)
        latency.observe(seconds)
