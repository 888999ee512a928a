"""Calls from one node to another over HTTP (aiohttp), behind one small class.

Every aiohttp or socket error is translated here (httpx's ``map_httpcore_exceptions``
idea): a node that refuses or breaks the connection is :class:`UpstreamUnavailable`
(HTTP 502), one that does not answer in time is :class:`UpstreamTimeout` (504), and
both messages name the node. Nothing from aiohttp reaches a route.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from registry.errors import UpstreamTimeout, UpstreamUnavailable
from registry.identifier import Handle
from resolver.walk import Answer

# Characters a handle may carry unescaped in a URL path (RFC 3986 pchar plus "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


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


class Upstream:
    """HTTP calls to other nodes, sharing one connection pool.

    >>> async with aiohttp.ClientSession() as session:             # doctest: +SKIP
    ...     answer = await Upstream(session, timeout=2.0).get_handle(
    ...         "http://127.0.0.1:8001", Handle.parse("88.100/x"))
    """

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float) -> None:
        self.session = session
        self.timeout = timeout

    async def get_handle(self, node: str, handle: Handle) -> Answer:
        """The node's answer to a plain resolution of ``handle``, whatever its status."""
        async with self._call(node, "GET", handle_url(node, handle)) as response:
            body = await response.read()
            served = response.headers
            return Answer(response.status, body, served.get("X-Resolved-By"), served.get("X-Cache"))

    async def get_json(
        self, node: str, path: str, params: Params, *, timeout: float | None = None
    ) -> Any:
        """GET ``path`` and return its JSON; a non-200 answer is UpstreamUnavailable."""
        status, answer = await self.fetch_json(node, path, params, timeout=timeout)
        if status != 200:
            raise UpstreamUnavailable(f"node {node} answered {status} to {path}")
        return answer

    async def fetch_json(
        self, node: str, path: str, params: Params, *, timeout: float | None = None
    ) -> tuple[int, Any]:
        """GET ``path``: its status and JSON body, whatever the status."""
        async with self._call(
            node, "GET", URL(node + path), params=params, timeout=timeout
        ) as response:
            return response.status, _json(node, await response.read())

    async def put_json(
        self, node: str, path: str, payload: object, credentials: Credentials
    ) -> tuple[int, Any]:
        """PUT JSON with Basic credentials; returns the status and the decoded body."""
        async with self._call(
            node,
            "PUT",
            URL(node + path),
            data=orjson.dumps(payload),
            headers={
                "Authorization": credentials.header(),
                "Content-Type": "application/json",
            },
        ) as response:
            return response.status, _json(node, await response.read())

    @asynccontextmanager
    async def _call(
        self, node: str, method: str, url: URL, *, timeout: float | None = None, **kwargs: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        limit = self.timeout if timeout is None else timeout
        try:
            async with self.session.request(
                method, url, timeout=aiohttp.ClientTimeout(total=limit), **kwargs
            ) as response:
                yield response
        except TimeoutError as exc:
            raise UpstreamTimeout(f"node {node} did not answer within {limit:g}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable(f"node {node} is unreachable: {_reason(exc)}") from exc


def _json(node: str, body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise UpstreamUnavailable(f"node {node} sent a body that is not JSON") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"its TLS certificate was not accepted ({exc.certificate_error})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or str(exc.os_error) or "cannot connect"
    return str(exc) or type(exc).__name__
