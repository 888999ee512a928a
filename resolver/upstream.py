"""Calls from one node to another over HTTP (aiohttp), behind one small class.

This is the one place node-to-node HTTP happens, so it is where another node's answer is
bounded (finding 3 of the "trust boundaries" review: a 1 GiB body or a gzip bomb made
the top node buffer gigabytes and stall its event loop). Every call:

    one deadline          connect, headers, body and JSON parsing together finish within
                          the call's timeout (``asyncio.timeout`` around all of it), else
                          :class:`UpstreamTimeout`
    no redirects          a 3xx is :class:`UpstreamUnavailable`: a node answers, refers
                          with a 301 *body*, or fails; it never moves
    identity only         ``Accept-Encoding: identity`` is sent and nothing is decoded:
                          an answer with another ``Content-Encoding`` is refused before
                          its body is read, so a compression bomb costs nothing
    a size cap            a ``Content-Length`` over ``max_bytes`` is refused before the
                          body is read; otherwise the body is read in chunks and the
                          call fails as soon as it passes ``max_bytes`` (the connection
                          is dropped, not drained)

Parsing a capped body stays on the event loop: orjson holds the GIL while it parses, so
a worker thread would not let the loop run meanwhile (measured: the loop's longest gap
was 41 ms with ``asyncio.to_thread`` against 30 ms inline, for 1 MiB of small
objects). What bounds it is the cap: 1 MiB parses in 2-4 ms for records or handle lists
and in about 27 ms in the worst case (tens of thousands of tiny objects) on the
two-core test machine.

Every aiohttp or socket error is translated here (httpx's ``map_httpcore_exceptions``
idea): a node that refuses or breaks the connection, or answers outside these bounds, is
:class:`UpstreamUnavailable` (HTTP 502); one that does not finish in time is
:class:`UpstreamTimeout` (504). Messages name the node and say what went wrong in this
node's own words; nothing another node sent is quoted, and aiohttp's detail goes to the
log only. Nothing from aiohttp reaches a route.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from registry.errors import UpstreamTimeout, UpstreamUnavailable
from registry.identifier import Handle
from resolver.target import TargetPolicy
from resolver.walk import Answer

log = logging.getLogger(__name__)

# Characters a handle may carry unescaped in a URL path (RFC 3986 pchar plus "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
DEFAULT_MAX_BYTES = 1 << 20  # the largest body taken from another node (1 MiB)
_CHUNK = 64 * 1024  # read at a time: aiohttp buffers about twice this before pausing


@dataclass(frozen=True, slots=True)
class Credentials:
    """An identity and its secret, sent as HTTP Basic like Handle clients do."""

    identity: str
    secret: str

    def header(self) -> str:
        user = quote(self.identity, safe="")
        return "Basic " + base64.b64encode(f"{user}:{self.secret}".encode()).decode()


def handle_url(node: str, handle: Handle) -> URL:
    return URL(f"{node}/api/handles/{quote(handle.text, safe=_PATH_SAFE)}", encoded=True)


# Query parameters: a mapping, or pairs when a name repeats.
Params = Mapping[str, str] | Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    headers: CIMultiDictProxy[str]


class Upstream:
    """HTTP calls to other nodes, sharing one connection pool, each bounded in time
    (``timeout`` seconds unless a call says otherwise) and size (``max_bytes``).

    >>> async with aiohttp.ClientSession() as session:             # doctest: +SKIP
    ...     answer = await Upstream(session, timeout=2.0, policy=TargetPolicy()).get_handle(
    ...         "http://127.0.0.1:8001", Handle.parse("88.100/x"))
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout: float,
        policy: TargetPolicy,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.session = session
        self.timeout = timeout
        self.policy = policy
        self.max_bytes = max_bytes

    async def get_handle(self, node: str, handle: Handle, *, label: str | None = None) -> Answer:
        """The node's answer to a plain resolution of ``handle``, whatever its status;
        errors name the node by ``label`` when given (a walk says what it asked it for)."""
        reply, _ = await self._call(node, "GET", handle_url(node, handle), label=label)
        served = reply.headers
        return Answer(reply.status, reply.body, served.get("X-Resolved-By"), served.get("X-Cache"))

    async def get_json(
        self, node: str, path: str, params: Params, *, timeout: float | None = None
    ) -> Any:
        """GET ``path`` and return its JSON; a non-200 answer is UpstreamUnavailable."""
        status, answer = await self.fetch_json(node, path, params, timeout=timeout)
        if status != 200:
            raise UpstreamUnavailable(
                f"node {node} answered HTTP {status}{_code(answer)} to {path}"
            )
        return answer

    async def fetch_json(
        self, node: str, path: str, params: Params, *, timeout: float | None = None
    ) -> tuple[int, Any]:
        """GET ``path``: its status and JSON body, whatever the status."""
        reply, answer = await self._call(
            node, "GET", URL(node + path), params=params, timeout=timeout, parse=True
        )
        return reply.status, answer

    async def put_json(
        self, node: str, path: str, payload: object, credentials: Credentials
    ) -> tuple[int, Any]:
        """PUT JSON with Basic credentials; returns the status and the decoded body."""
        reply, answer = await self._call(
            node,
            "PUT",
            URL(node + path),
            data=orjson.dumps(payload),
            headers={"Authorization": credentials.header(), "Content-Type": "application/json"},
            parse=True,
        )
        return reply.status, answer

    async def _call(
        self,
        node: str,
        method: str,
        url: URL,
        *,
        timeout: float | None = None,
        parse: bool = False,
        headers: Mapping[str, str] | None = None,
        label: str | None = None,
        **kwargs: Any,
    ) -> tuple[_Reply, Any]:
        """One exchange and, with ``parse``, its JSON, all within one deadline; never
        with a node URL the target policy refuses (whoever named it). Errors name the
        node by ``label``, else by its URL."""
        shown = label or node
        problem = self.policy.problem(node)
        if problem is not None:
            raise UpstreamUnavailable(f"node {shown} is not asked: {problem}")
        limit = self.timeout if timeout is None else timeout
        sent = {**(headers or {}), "Accept-Encoding": "identity"}
        try:
            async with asyncio.timeout(limit):
                async with self.session.request(
                    method,
                    url,
                    headers=sent,
                    allow_redirects=False,
                    auto_decompress=False,
                    # The same bound again, so aiohttp never waits longer by itself.
                    timeout=aiohttp.ClientTimeout(total=limit),
                    **kwargs,
                ) as response:
                    reply = _Reply(
                        response.status, await self._body(shown, response), response.headers
                    )
                return reply, _json(shown, reply.body) if parse else None
        except TimeoutError as exc:
            raise UpstreamTimeout(f"node {shown} did not answer within {limit:g}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            log.info(
                "node-to-node call failed",
                extra={"node": node, "error": type(exc).__name__, "detail": str(exc)},
            )
            raise UpstreamUnavailable(f"node {shown} is unreachable: {_reason(exc)}") from exc

    async def _body(self, node: str, response: aiohttp.ClientResponse) -> bytes:
        """The body, refused unread when its headers already break the bounds, and
        abandoned as soon as it passes ``max_bytes`` (the connection is closed)."""
        status = response.status
        if 300 <= status < 400:
            response.close()
            raise UpstreamUnavailable(
                f"node {node} answered a redirect (HTTP {status}), which is not followed"
            )
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            response.close()
            raise UpstreamUnavailable(
                f"node {node} answered with a compressed body (Content-Encoding "
                f"{_shown(encoding)}); only identity is accepted"
            )
        cap = self.max_bytes
        length = response.content_length
        if length is not None and length > cap:
            response.close()
            raise UpstreamUnavailable(
                f"node {node} announced a {length}-byte answer, over the {cap}-byte limit"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > cap:
                response.close()
                raise UpstreamUnavailable(
                    f"node {node} sent an answer over the {cap}-byte limit; it was dropped"
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _json(node: str, body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise UpstreamUnavailable(f"node {node} sent a body that is not JSON") from exc


def _code(answer: object) -> str:
    """`` (responseCode N)`` when the answer carries an integer one, else nothing."""
    code = answer.get("responseCode") if isinstance(answer, dict) else None
    return f" (responseCode {code})" if type(code) is int else ""


def _shown(text: str) -> str:
    """A short header value from another node, safe to quote: printable ASCII, 20 chars."""
    cleaned = "".join(c if c.isascii() and c.isprintable() else "?" for c in text[:20])
    return cleaned + ("..." if len(text) > 20 else "")


def _reason(exc: BaseException) -> str:
    """Why a node could not be asked, in this node's words (aiohttp's detail is logged)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "its TLS certificate was not accepted"
    if isinstance(exc, aiohttp.ClientSSLError):  # before its base ClientConnectorError
        return "the TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(
        getattr(exc, "os_error", None), socket.gaierror
    ):
        return "its host name does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = exc.os_error.errno
        return os.strerror(code).lower() if code else "cannot connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | OSError):
        return "the connection was closed"
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return "its answer was not valid HTTP"
    return "the call failed"
