"""Management API (SPEC §4.2): batch registration for bulk loads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from node.request_body import read_json
from node.responses import NEEDS_CREDENTIALS, json_response
from node.state import NodeState, node_state
from registry.errors import InvalidValue
from registry.identifier import Identity

router = APIRouter(tags=["Management"])
State = Annotated[NodeState, Depends(node_state)]


@router.post(
    "/api/batch/handles",
    summary="Register many handles in one call",
    responses={
        400: {"description": "Malformed body or too many handles (202)"},
        401: {"description": "Credentials missing or wrong (402)"},
        413: {"description": "Request body too large"},
    },
    openapi_extra=NEEDS_CREDENTIALS,
)
async def batch_register(request: Request, state: State, overwrite: bool = False) -> Response:
    """Body ``{"handles": [{"handle": H, "values": [...]}, ...]}`` (at most 2000 handles).

    Each handle is created (201) or, with ``overwrite=true``, replaced (200); without it an
    existing handle is refused (409/101). The answer lists one result per handle, in
    order, with ``status``, ``responseCode`` and a ``message`` on failure, and counts::

        {"responseCode": 1, "created": 2, "updated": 0, "failed": 1, "results": [...]}

    Loads and commits are pipelined to Redis: a few round trips for the whole batch
    (:meth:`registry.store.HandleStore.watched`).
    """
    identity = await state.authenticate(request)
    # A batch allocates a few hundred thousand objects, all freed by reference counting
    # when _batch_answer returns: the collector resumes only then, with nothing of the
    # batch left to scan (resumed with them alive, its next young collection scanned
    # them all, 6% of a batch node's CPU).
    with state.collection_pause.held():
        response = await _batch_answer(request, state, identity, overwrite)
    if state.config.workers > 1:
        # Workers share the listening socket, and a keep-alive connection stays with the
        # worker that accepted it: a client's few long-lived connections could all land
        # on one worker while the others idle. Closing after each batch (a batch costs
        # far more than a reconnect) lets the next one go to whichever worker is free.
        response.headers["Connection"] = "close"
    return response


async def _batch_answer(
    request: Request, state: NodeState, identity: Identity, overwrite: bool
) -> Response:
    body = await read_json(request)
    items = body.get("handles") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise InvalidValue('the body must be {"handles": [{"handle": ..., "values": [...]}]}')
    results = await state.registrar.batch(items, identity=identity, overwrite=overwrite)
    statuses = [r.http_status for r in results]  # 201 created, 200 updated, else failed
    created, updated = statuses.count(201), statuses.count(200)
    state.registered(created)
    return json_response(
        {
            "responseCode": 1,
            "created": created,
            "updated": updated,
            "failed": len(statuses) - created - updated,
            "results": [r.to_json() for r in results],
        }
    )
