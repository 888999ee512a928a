"""Liveness and readiness probes.

``/healthz`` says the process is up (liveness: restart the node if it does not answer).
``/readyz`` says the node can serve: its store answers PING. Until the node is built
(its store loading at start-up, :mod:`node.startup`) it answers 503 with the phase and
the load's progress; so it does when the store is loading again later (Redis restarted
under a running node, by the embedded store's watcher or by whoever runs an external
one): ``"status": "loading"`` with the progress. While the store is down (the embedded
Redis restarting, an external Redis unreachable) it answers 503 with responseCode 2 and
"store unavailable: ..."; the node itself need not be restarted, it serves again once
the store is back. The ping's outcome is kept for
:data:`READY_CACHE_SECONDS`, so frequent probes cost Redis at most two pings a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from node.config import NodeConfig
from node.metrics import NodeMetrics
from node.responses import json_response
from node.startup import LoadingProgress, Startup
from node.state import NodeState
from registry.errors import StoreLoading, StoreUnavailable

router = APIRouter(tags=["Operations"])
READY_CACHE_SECONDS = 0.5


@dataclass(slots=True)
class _LastPing:
    at: float = -1e9
    problem: str | None = None
    loading: LoadingProgress | None = None  # the store is loading (problem says so too)


@router.get("/healthz", summary="The process is up")
async def healthz(request: Request) -> Response:
    config: NodeConfig = request.app.state.config
    prefix = config.prefix.text if config.prefix else None
    return json_response({"status": "ok", "role": config.role.value, "prefix": prefix})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(request: Request) -> Response:
    node_metrics: NodeMetrics = request.app.state.metrics
    return Response(node_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/readyz",
    summary="The node can serve: its store answers",
    responses={
        503: {
            "description": "Not ready (responseCode 2): the store is loading "
            '(`"status": "loading"`, with `loadedPercent`, `etaSeconds`, `loadedBytes`, '
            '`totalBytes`), the node is starting (`"starting"`) or failed to start '
            '(`"failed"`), or Redis is unreachable (`"unavailable"`)'
        }
    },
)
async def readyz(request: Request) -> Response:
    state: NodeState | None = request.app.state._state.get("node")
    if state is None:
        startup: Startup = request.app.state.startup
        return json_response(startup.readyz(), 503)
    last: _LastPing | None = getattr(request.app.state, "last_ping", None)
    if last is None:
        last = request.app.state.last_ping = _LastPing()
    now = time.monotonic()
    if now - last.at >= READY_CACHE_SECONDS:
        last.loading = None
        try:
            await state.store.ping()
            last.problem = None
        except StoreLoading as exc:
            last.problem = exc.message
            try:  # INFO is answered while Redis loads
                last.loading = LoadingProgress.from_info(await state.store.persistence())
            except StoreUnavailable:
                pass
        except StoreUnavailable as exc:
            last.problem = exc.message
        last.at = now
    if last.loading is not None and last.loading.loading:
        loading = {"status": "loading", "responseCode": 2, "message": last.loading.message}
        return json_response({**loading, **last.loading.fields()}, 503)
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
