"""Reading the audit log (the node administrator only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from node.responses import NEEDS_CREDENTIALS, json_response
from node.state import NodeState, node_state
from registry.authority import administered_prefix
from registry.errors import NotAuthorised, NotFound

router = APIRouter(tags=["Operations"])
State = Annotated[NodeState, Depends(node_state)]


@router.get(
    "/api/audit",
    summary="The audit log: every write and refused write, newest first",
    responses={
        401: {"description": "Credentials missing or wrong (402)"},
        403: {"description": "Not this node's administrator (400)"},
    },
    openapi_extra=NEEDS_CREDENTIALS,
)
async def read_audit(
    request: Request,
    state: State,
    count: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[str | None, Query(description="an entry id: older entries")] = None,
) -> Response:
    """``{"responseCode":1,"entries":[{"id","time","client","identity","method","target",
    "status","code","outcome","message"}...]}``; page back with ``before=<last id>``."""
    identity = await state.authenticate(request)
    own = state.config.prefix
    if own is None or administered_prefix(identity) != own:
        raise NotAuthorised(
            f"only this node's administrator reads its audit log, not {identity.text}"
        )
    if state.audit is None:
        raise NotFound("this node keeps no audit log")
    entries = await state.audit.read(count, before)
    return json_response({"responseCode": 1, "entries": entries})
