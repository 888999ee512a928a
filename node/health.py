"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from node.responses import json_response
from node.state import NodeState, node_state
from registry.errors import StoreUnavailable

router = APIRouter(tags=["Operations"])
State = Annotated[NodeState, Depends(node_state)]


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
async def readyz(state: State) -> Response:
    try:
        await state.store.ping()
    except StoreUnavailable as exc:
        return json_response({"status": "unavailable", "message": exc.message}, 503)
    answer: dict[str, object] = {"status": "ready"}
    if state.registration.needed:
        answer["registered"] = state.registration.done
        if state.registration.last_error:
            answer["registrationError"] = state.registration.last_error
    return json_response(answer)
