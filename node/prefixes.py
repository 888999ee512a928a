"""The top node's prefix registry (SPEC §3, §4.2): registration and filing (备案)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from node.request_body import read_json
from node.responses import NEEDS_CREDENTIALS, json_response
from node.state import NodeState, node_state
from registry.errors import InvalidValue
from registry.identifier import Prefix
from registry.limits import MAX_PAGE_NUMBER, MAX_PAGE_SIZE

router = APIRouter(tags=["Prefix registry (top node)"])
State = Annotated[NodeState, Depends(node_state)]


@router.get("/api/prefixes", summary="List registered and filed prefixes")
async def list_prefixes(
    state: State,
    page: Annotated[int, Query(ge=0, le=MAX_PAGE_NUMBER)] = 0,
    pageSize: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 1000,  # noqa: N803 - like /api/handles
) -> Response:
    """``{"responseCode":1,"totalCount":N,"page":i,"pageSize":n,"prefixes":[entry...]}``.

    Each entry: ``prefix``, ``nodeUrl`` (the node serving it), ``kind``
    (secondary/enterprise), ``industry``, ``owner``, ``status``, ``creditCode``,
    ``contact``, ``filedBy`` (the identity that registered or filed it).
    """
    if pageSize > state.config.limits.max_page_size:
        raise InvalidValue(f"pageSize is at most {state.config.limits.max_page_size}")
    total, entries = await state.need_registry().list(page, pageSize)
    return json_response(
        {
            "responseCode": 1,
            "totalCount": total,
            "page": page,
            "pageSize": pageSize,
            "prefixes": [e.to_json() for e in entries],
        }
    )


@router.get(
    "/api/prefixes/{prefix}",
    summary="One registered prefix",
    responses={404: {"description": "Not registered (100)"}},
)
async def get_prefix(prefix: str, state: State) -> Response:
    entry = await state.need_registry().get(Prefix.parse(prefix))
    return json_response({"responseCode": 1, **entry.to_json()})


@router.put(
    "/api/prefixes/{prefix}",
    summary="Register a node's prefix or file a prefix below it",
    status_code=201,
    responses={
        200: {"description": "Updated"},
        400: {"description": "Invalid field (202) or prefix outside this top node (301)"},
        401: {"description": "Credentials missing or wrong (402)"},
        403: {"description": "The identity may not file this prefix (400)"},
    },
    openapi_extra=NEEDS_CREDENTIALS,
)
async def put_prefix(prefix: str, request: Request, state: State) -> Response:
    """Body: ``{"nodeUrl", "kind", "industry", "owner", "status", "creditCode",
    "contact"}`` (all optional strings), and ``"secret"`` when the top node's admin
    provisions a new prefix's credentials.

    The identity ``300:0.NA/<P>`` may register ``P`` itself and file prefixes under it;
    anything else is refused with 403 and changes nothing.
    """
    parsed = Prefix.parse(prefix)
    identity = await state.authenticate(request)
    created, entry = await state.need_registry().file(identity, parsed, await read_json(request))
    return json_response({"responseCode": 1, **entry.to_json()}, 201 if created else 200)
