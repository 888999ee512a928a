"""Liveness and readiness probes.

``/healthz`` says the process is up (liveness: restart the node if it does not answer).
``/readyz`` says the node can serve: its store answers PING. While the store is down
(the embedded Redis restarting, an external Redis unreachable) it answers 503 with
responseCode 2 and "store unavailable: ..."; the node itself need not be restarted, it
serves again once the store is back. The ping's outcome is kept for
:data:`READY_CACHE_SECONDS`, so frequent probes cost Redis at most two pings a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from node.responses import json_response
from node.state import NodeState, node_state
from registry.errors import StoreUnavailable

router = APIRouter(tags=["Operations"])
State = Annotated[NodeState, Depends(node_state)]
READY_CACHE_SECONDS = 0.5


@dataclass(slots=True)
class _LastPing:
    at: float = -1e9
    problem: str | None = None


@router.get("/healthz", summary="The process is up")
async def healthz(state: State) -> Response:
    config = state.config
    prefix = config.prefix.text if config.prefix else None
    return json_response({"status": "ok", "role": config.role.value, "prefix": prefix})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(state: State) -> Response:
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/readyz",
    summary="The node can serve: its store answers",
    responses={503: {"description": "Redis unreachable"}},
)
async def readyz(state: State, request: Request) -> Response:
    last: _LastPing | None = getattr(request.app.state, "last_ping", None)
    if last is None:
        last = request.app.state.last_ping = _LastPing()
    now = time.monotonic()
    if now - last.at >= READY_CACHE_SECONDS:
        try:
            await state.store.ping()
            last.problem = None
        except StoreUnavailable as exc:
            last.problem = exc.message
        last.at = now
    if last.problem is not None:
        body = {
            "status": "unavailable",
            "responseCode": 2,
            "message": f"store unavailable: {last.problem}",
        }
        return json_response(body, 503)
    answer: dict[str, object] = {"status": "ready"}
    if state.registration.needed:
        answer["registered"] = state.registration.done
        if state.registration.last_error:
            answer["registrationError"] = state.registration.last_error
    return json_response(answer)
