"""Reading request bodies: a clear 400 when they are not JSON, or never arrive whole."""

from __future__ import annotations

import orjson
from fastapi import Request
from starlette.requests import ClientDisconnect

from registry.errors import InvalidValue, RequestError


async def read_body(request: Request, handle_text: str | None = None) -> bytes:
    """The whole body; a client that went away before sending it (or was cut off by the
    body timeout) is a 400, never a server error."""
    try:
        return await request.body()
    except ClientDisconnect:
        raise InvalidValue(
            "the request body did not arrive whole: the connection was closed",
            handle=handle_text,
        ) from None


async def read_json(
    request: Request,
    handle_text: str | None = None,
    *,
    malformed: type[RequestError] = InvalidValue,
) -> object:
    """The body, parsed; one that is not JSON raises ``malformed``. The Handle REST API
    passes :class:`MalformedRequest` (Handle's PROTOCOL_ERROR, responseCode 4, as the
    reference servlet answers); the node's own APIs keep InvalidValue (202)."""
    raw = await read_body(request, handle_text)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise malformed(f"the request body is not valid JSON: {exc}", handle=handle_text) from None
