"""JSON responses and the translation of errors into them.

Every error leaves the node as ``{"responseCode": N, "handle": H?, "message": M}`` with the
HTTP status its :class:`~registry.errors.IdnodeError` class carries.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from node.output_format import in_request_format
from registry.errors import IdnodeError, InvalidValue, TooManyRequests

log = logging.getLogger("idnode.node")
JSON = "application/json"
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")

# OpenAPI: operations that need credentials say so (Basic or a Bearer session token);
# create_app declares the two schemes.
NEEDS_CREDENTIALS: dict[str, Any] = {"security": [{"basic": []}, {"bearer": []}]}
SECURITY_SCHEMES: dict[str, Any] = {
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "username <index>:<handle>, e.g. 300:0.NA/88.100 (percent-encoded)",
    },
    "bearer": {"type": "http", "scheme": "bearer", "description": "from POST /api/sessions"},
}


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type=JSON)


def error_response(error: IdnodeError) -> Response:
    response = json_response(error.body(), error.http_status)
    if isinstance(error, TooManyRequests):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def install_error_handlers(app: FastAPI) -> None:
    async def on_idnode_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, IdnodeError)
        node = getattr(request.app.state, "node", None)
        # Before the node is built (its store loading) every route answers 503: expected,
        # and told by /readyz and the progress log, not by a warning per request.
        if exc.http_status >= 500 and node is not None:
            log.warning("%s %s failed: %s", request.method, request.url.path, exc.message)
            node.metrics.failed(exc)
        return error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}"
            for err in exc.errors()
        )
        return error_response(InvalidValue(f"invalid request parameters: {problems}"))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        body = {"responseCode": 2, "message": str(exc.detail)}
        response = json_response(body, exc.status_code)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every method some route takes at this path
            allowed = [
                method
                for method in _METHODS
                if any(
                    route.matches({**request.scope, "method": method})[0] is Match.FULL
                    for route in request.app.routes
                )
            ]
            response.headers["Allow"] = ", ".join(allowed)
        return response

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        if isinstance(exc, RecursionError):  # a body nested past what anything here reads
            return error_response(InvalidValue("the request body is nested too deeply"))
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(IdnodeError("Internal error; the node logged the details"))

    # /api/handles errors in the request's pretty/callback format (node.output_format)
    app.add_exception_handler(IdnodeError, in_request_format(on_idnode_error))
    app.add_exception_handler(RequestValidationError, in_request_format(on_validation_error))
    app.add_exception_handler(StarletteHTTPException, in_request_format(on_http_error))
    app.add_exception_handler(Exception, in_request_format(on_unexpected))
