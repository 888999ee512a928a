"""Reading JSON request bodies, with a clear 400 when they are not JSON."""

from __future__ import annotations

import orjson
from fastapi import Request

from registry.errors import InvalidValue


async def read_json(request: Request, handle_text: str | None = None) -> object:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidValue(
            f"the request body is not valid JSON: {exc}", handle=handle_text
        ) from None
