"""Enterprise onboarding at a secondary node (SPEC §3, §4.2).

Anyone may apply; the node's administrator (``300:0.NA/<node prefix>``) lists, approves
and rejects. Approval allocates the next enterprise prefix, files it with the top node
and returns the enterprise's credentials, once.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from node.request_body import read_body, read_json
from node.responses import NEEDS_CREDENTIALS, json_response
from node.state import NodeState, node_state
from registry.authority import administered_prefix
from registry.credit_code import CreditCode
from registry.enterprise import Status
from registry.errors import InvalidValue, NotAuthorised
from registry.limits import MAX_PAGE_NUMBER, MAX_PAGE_SIZE

router = APIRouter(tags=["Enterprise onboarding (secondary node)"])
State = Annotated[NodeState, Depends(node_state)]
_ADMIN_ONLY: dict[int | str, dict[str, Any]] = {
    401: {"description": "Credentials missing or wrong (402)"},
    403: {"description": "Not this node's administrator (400)"},
    404: {"description": "No such application (100)"},
}


async def _require_admin(request: Request, state: NodeState) -> None:
    identity = await state.authenticate(request)
    if administered_prefix(identity) != state.config.own_prefix:
        raise NotAuthorised(
            f"only the node administrator 300:0.NA/{state.config.own_prefix.text} "
            f"decides applications, not {identity.text}"
        )


@router.post(
    "/api/enterprises",
    summary="Apply for an enterprise prefix",
    status_code=201,
    responses={
        400: {"description": "A field is missing or invalid, e.g. the credit code (202)"},
        401: {"description": "Credentials were sent and are wrong (402)"},
        409: {"description": "An enterprise with this credit code is registered here (101)"},
        429: {
            "description": "Over the anonymous rate per address (--application-rate), or "
            "the node holds its cap of pending applications (2); see Retry-After"
        },
    },
)
async def apply(request: Request, state: State) -> Response:
    """Body: ``{"name", "creditCode", "industry", "contact", "nodeUrl"?}``.

    ``creditCode`` is the unified social credit code (统一社会信用代码), checked against
    its GB 32100-2015 check character. ``nodeUrl`` is given by an enterprise that runs
    its own node: its identifiers will live there. Answers the pending application.

    Anyone may apply, without credentials. Several pending applications may name one
    credit code (the administrator approves one, which rejects the others); only a
    registered enterprise's code is refused, and no answer tells anything about other
    applications. A pending application expires after the node's application lifetime
    (7 days by default). Anonymous applications are limited per client address and
    refused while the node holds its cap of pending ones; the node administrator's are
    not.
    """
    identity = getattr(request.state, "identity", None)  # set if the gate checked it
    if identity is None and request.headers.get("authorization"):
        identity = await state.authenticate(request)
    by_admin = identity is not None and administered_prefix(identity) == state.config.own_prefix
    application = await state.need_onboarding().apply(await read_json(request), capped=not by_admin)
    return json_response({"responseCode": 1, **application.to_json()}, 201)


@router.get(
    "/api/enterprises",
    summary="List applications",
    responses=_ADMIN_ONLY,
    openapi_extra=NEEDS_CREDENTIALS,
)
async def list_applications(
    request: Request,
    state: State,
    status: Status | None = None,
    creditCode: str | None = None,  # noqa: N803 - the field's name in the body
    page: Annotated[int, Query(ge=0, le=MAX_PAGE_NUMBER)] = 0,
    pageSize: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 1000,  # noqa: N803 - like /api/handles
) -> Response:
    """Every application, oldest first; ``status`` and ``creditCode`` narrow the list
    (the applications naming one credit code, to compare before approving one)."""
    await _require_admin(request, state)
    if pageSize > state.config.limits.max_page_size:
        raise InvalidValue(f"pageSize is at most {state.config.limits.max_page_size}")
    code = CreditCode.parse(creditCode).text if creditCode is not None else None
    total, applications = await state.need_onboarding().list(status, page, pageSize, code)
    return json_response(
        {
            "responseCode": 1,
            "totalCount": total,
            "page": page,
            "pageSize": pageSize,
            "applications": [a.to_json() for a in applications],
        }
    )


@router.get(
    "/api/enterprises/{application_id}",
    summary="One application",
    responses=_ADMIN_ONLY,
    openapi_extra=NEEDS_CREDENTIALS,
)
async def get_application(application_id: str, request: Request, state: State) -> Response:
    await _require_admin(request, state)
    application = await state.need_onboarding().get(application_id)
    return json_response({"responseCode": 1, **application.to_json()})


@router.post(
    "/api/enterprises/{application_id}/approve",
    summary="Approve: allocate, file and issue credentials",
    responses={
        **_ADMIN_ONLY,
        409: {"description": "Already decided (101)"},
        502: {"description": "The top node refused or failed the filing; still pending (2)"},
        504: {"description": "The top node did not answer; still pending (2)"},
    },
    openapi_extra=NEEDS_CREDENTIALS,
)
async def approve(application_id: str, request: Request, state: State) -> Response:
    """Optional body ``{"secret": "..."}`` sets the enterprise's secret (else generated).

    Answers the approved application with ``identity`` and ``secret``: the credentials
    of the enterprise administrator, shown only here (the node keeps a hash). ``filed``
    says whether the top node has the prefix (false for a node without a top node).
    """
    await _require_admin(request, state)
    body = await read_json(request) if await read_body(request) else {}
    secret = body.get("secret") if isinstance(body, dict) else None
    if secret is not None and (not isinstance(secret, str) or not 8 <= len(secret) <= 256):
        raise InvalidValue("'secret' must be a string of 8 to 256 characters")
    approval = await state.need_onboarding().approve(application_id, secret)
    state.metrics.enterprises.inc()
    return json_response(
        {
            "responseCode": 1,
            **approval.application.to_json(),
            "identity": approval.identity,
            "secret": approval.secret,
            "filed": approval.filed,
        }
    )


@router.post(
    "/api/enterprises/{application_id}/reject",
    summary="Reject an application",
    responses={**_ADMIN_ONLY, 409: {"description": "Already decided (101)"}},
    openapi_extra=NEEDS_CREDENTIALS,
)
async def reject(application_id: str, request: Request, state: State) -> Response:
    """Body ``{"reason": "..."}``."""
    await _require_admin(request, state)
    body = await read_json(request)
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str):
        raise InvalidValue('the body must be {"reason": "..."}')
    application = await state.need_onboarding().reject(application_id, reason)
    return json_response({"responseCode": 1, **application.to_json()})
