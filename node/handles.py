"""The Handle.net-compatible REST API (SPEC §4.1): ``/api/handles`` and ``/hrls/handles``.

Handlers only move data: they parse parameters, call the registrar or the store, and
write bytes. A plain resolution is one Redis HGET and the stored bytes sent as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from node.answerer import Reply
from node.metrics import error_outcome
from node.output_format import CALLBACK_PATTERN, MAX_CALLBACK, OutputFormat, reshape
from node.request_body import read_json
from node.responses import JSON, NEEDS_CREDENTIALS, json_response
from node.state import NodeState, node_state
from registry.errors import (
    AuthenticationRequired,
    HandleNotFound,
    IdnodeError,
    InvalidHandle,
    InvalidValue,
    MalformedRequest,
    NotAuthorised,
    NotResponsible,
    UpstreamUnavailable,
)
from registry.identifier import Handle, Prefix, ascii_lower
from registry.limits import MAX_PAGE_NUMBER, MAX_PAGE_SIZE
from registry.listing import Listing
from registry.permission import Operation
from registry.record import HandleRecord, encode_values, mint_stem, select
from registry.search import ValuePattern

router = APIRouter(tags=["Handle REST API"])
State = Annotated[NodeState, Depends(node_state)]

# Parameters of /hrls/handles that are not TYPE=pattern search terms.
_SEARCH_CONTROLS = frozenset({"limit", "prefix"})


def _error_docs(*codes: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        400: "Invalid handle (102), invalid value or parameter (202), no such values (200) "
        "or prefix not held here (301, with a referral)",
        401: "Credentials missing or wrong (402)",
        403: "Identity may not write here (400)",
        404: "Handle not found (100)",
        409: "Handle exists (101) or value index taken (201)",
        413: "Request body too large",
        502: "The responsible node is unreachable or failed, nothing stale to serve (2)",
        503: "The node's store is unavailable, or still loading its data at start-up (2)",
        504: "The responsible node did not answer in time, nothing stale to serve (2)",
    }
    return {code: {"description": meaning[code]} for code in codes}


def output_format(
    pretty: Annotated[
        str | None,
        Query(
            description="indented JSON when empty, `true` or `yes` (any case); compact "
            "otherwise, as Handle reads a boolean"
        ),
    ] = None,
    callback: Annotated[
        str | None,
        Query(
            description="JSONP: answer `NAME(<json>);` as application/javascript; "
            "JavaScript identifiers joined by dots, ASCII",
            # Described only: OutputFormat.parse refuses other names (400/202).
            json_schema_extra={"pattern": CALLBACK_PATTERN, "maxLength": MAX_CALLBACK},
        ),
    ] = None,
) -> OutputFormat:
    """``pretty`` and ``callback``, read (and a bad callback refused) before any work."""
    return OutputFormat.parse(pretty, callback)


Format = Annotated[OutputFormat, Depends(output_format)]


def _written(response: Response, fmt: OutputFormat, request: Request) -> Response:
    return reshape(response, fmt, head=request.method == "HEAD")


@contextmanager
def naming(handle: str) -> Iterator[None]:
    """Every error a request about ``handle`` is answered with names it, as the SPEC
    asks and Handle does (a store failure deep in a write does not know the name)."""
    try:
        yield
    except IdnodeError as exc:
        exc.handle = exc.handle or handle
        raise


def _indexes(raw: list[str]) -> frozenset[int]:
    try:
        return frozenset(int(i) for i in raw)
    except ValueError:
        raise InvalidValue(f"'index' must be integers, got {raw}") from None


@router.get(
    "/api/handles/{handle:path}",
    summary="Resolve a handle",
    responses=_error_docs(400, 401, 404, 502, 503, 504),
)
async def resolve(
    handle: str,
    request: Request,
    state: State,
    fmt: Format,
    index: Annotated[list[str], Query(description="only values at these indexes")] = [],  # noqa: B006
    type: Annotated[list[str], Query(description="only values of these types")] = [],  # noqa: B006
    auth: Annotated[
        bool, Query(description="an authoritative resolution: past any cache (no stale copy)")
    ] = False,
    publicOnly: bool | None = None,  # noqa: N803 - Handle's parameter name
) -> Response:
    """The handle's values: ``{"responseCode":1,"handle":H,"values":[...]}``.

    With ``index``/``type`` filters only matching values are returned (a type ending in
    a period, ``URL.``, matches its family: ``URL`` and every ``URL.<sub>``); when none
    match the answer is 200 with responseCode 200.

    Values marked ``"publicRead": false`` are left out of public answers. As in Handle,
    ``publicOnly`` defaults to true without credentials and to false with them
    (``auth=true`` with credentials, this node's older spelling, also asks for them):
    the node that holds the handle then answers an identity holding the READ_VALUE
    right with every value but secret keys, which are never returned (only their hashes
    are stored). Without that right the answer is public; wrong credentials are a 401;
    ``publicOnly=false`` without credentials is a 401 (402) when the handle has values
    that are not public (secret keys aside), else the public answer. Recursive nodes, and nodes
    asked for a handle they do not hold, answer publicly (caches hold public answers).

    A node that holds the handle answers from its store. The top node and recursive
    nodes resolve other nodes' handles through their cache and say how: ``X-Cache``
    (HIT, MISS or STALE: served past its TTL because the responsible node is down),
    ``Age`` (seconds since the responsible node answered) and ``X-Resolved-By``; with
    ``auth=true`` (Handle: an authoritative resolution) they ask the responsible node
    past the cache (X-Cache MISS; a failure is an error, never a stale copy). A node
    that neither holds nor resolves a prefix answers 400/301 with a ``referral``.
    """
    parsed = Handle.parse(handle)
    credentials = request.headers.get("authorization")
    restricted = publicOnly is False or (publicOnly is None and bool(credentials))
    try:
        reply = None
        if restricted and state.config.traits.stores:
            if not credentials:
                await _check_nothing_restricted(state, parsed, handle)
            else:
                reply = await _authenticated_read(state, parsed, handle, request)
        if reply is None:
            reply = await state.answerer.answer(parsed, handle, fresh=auth)
    except IdnodeError as exc:
        exc.handle = exc.handle or handle  # every error about a handle names it
        outcome = error_outcome(exc)
        if outcome is not None:
            state.resolved(outcome)
        raise
    state.resolved(reply.outcome)
    if not reply.found or (not index and not type):
        answer = Response(
            reply.body, status_code=reply.status, media_type=JSON, headers=reply.headers()
        )
        return _written(answer, fmt, request)
    values = select(_record(reply).values, _indexes(index), frozenset(ascii_lower(t) for t in type))
    if not values:
        answer = json_response(
            {
                "responseCode": 200,
                "handle": handle,
                "values": [],
                "message": "The handle exists but no value matches the index/type filter",
            }
        )
        return _written(answer, fmt, request)
    answer = Response(encode_values(handle, values), media_type=JSON, headers=reply.headers())
    return _written(answer, fmt, request)


async def _authenticated_read(
    state: NodeState, handle: Handle, spelled: str, request: Request
) -> Reply | None:
    """Every value but secret keys, for an identity with the READ_VALUE right; None
    (answer publicly) when this node does not keep the handle itself."""
    registrar = state.registrar
    identity = await state.authenticate(request)
    try:
        registrar.check_held(handle)
    except NotResponsible:
        return None
    (away,) = await registrar.check_here([handle])
    if away is not None:  # delegated to another node: resolved or referred publicly
        return None
    try:
        await registrar.check_rights(identity, handle, Operation.READ_RESTRICTED)
    except NotAuthorised:  # as in Handle: without the right, the public values
        return None
    loaded = await state.store.load(handle)
    if loaded is None:
        raise HandleNotFound(f"Handle {spelled} not found", handle=spelled)
    # Secret keys stay out (readable_with_auth): what is stored is a hash, useless to a
    # client and a target for offline guessing (Handle would return an HS_SECKEY to an
    # admin with read permission, because it stores the secret itself).
    readable = [v for v in loaded.record.values if v.readable_with_auth]
    return Reply(200, encode_values(spelled, readable))


async def _check_nothing_restricted(state: NodeState, handle: Handle, spelled: str) -> None:
    """``publicOnly=false`` without credentials: as the Handle server, ask for them
    (401) when this node keeps the handle and some value is not public; values that
    credentials would not show either (secret keys, admin-read off) do not count."""
    try:
        state.registrar.check_held(handle)
    except NotResponsible:
        return
    loaded = await state.store.load(handle)
    values = loaded.record.values if loaded is not None else ()
    if any(not v.is_public and v.readable_with_auth for v in values):
        raise AuthenticationRequired(
            "publicOnly=false: this handle has restricted values; send credentials",
            handle=spelled,
        )


def _record(reply: Reply) -> HandleRecord:
    try:
        return HandleRecord.decode(reply.body)
    except (KeyError, TypeError, ValueError) as exc:  # only another node's body can fail
        raise UpstreamUnavailable(
            f"node {reply.source} sent values this node cannot filter: {exc!r}"
        ) from exc


@router.put(
    "/api/handles/{handle:path}",
    summary="Create or update a handle",
    status_code=201,
    responses={200: {"description": "Updated"}, **_error_docs(400, 401, 403, 409, 413, 503)},
    openapi_extra=NEEDS_CREDENTIALS,
)
async def put_handle(
    handle: str,
    request: Request,
    state: State,
    fmt: Format,
    overwrite: bool = True,
    index: Annotated[
        list[str],
        Query(description="update only values at these indexes; `various`: those of the body"),
    ] = [],  # noqa: B006
    mintNewSuffix: bool = False,  # noqa: N803 - Handle's parameter name
) -> Response:
    """Body ``{"values": [...]}``, a bare list, or one value object. 201 when created,
    200 when updated.

    ``overwrite=false`` refuses an existing handle (409/101), or with ``index`` an
    occupied index (409/201). ``index=various`` adds or replaces the values the body
    holds and keeps the others. A body whose ``handle`` names another handle is refused
    (400/4). ``PUT /api/handles/<prefix>/<stem>?mintNewSuffix=true`` creates
    ``<prefix>/<stem><fresh unique suffix>`` (the stem may be empty) and returns its name;
    there a body ``handle`` must name the URL's handle, the stem, as in Handle.
    """
    with naming(handle):
        return await _put(handle, request, state, fmt, overwrite, index, mintNewSuffix)


async def _put(
    handle: str,
    request: Request,
    state: NodeState,
    fmt: OutputFormat,
    overwrite: bool,
    index: list[str],
    mint: bool,
) -> Response:
    registrar = state.registrar
    various = "various" in index
    if various and len(index) > 1:
        raise InvalidValue("index=various cannot be combined with other indexes", handle=handle)
    indexes = frozenset() if various else _indexes(index)
    if mint:
        mint_stem(handle)  # a malformed stem is 400/102 before credentials are asked for
        identity = await state.authenticate(request)
        body = await read_json(request, handle, malformed=MalformedRequest)
        minted = await registrar.mint(handle, body, identity=identity)
        state.registered()
        return _written(json_response({"responseCode": 1, "handle": minted}, 201), fmt, request)
    Handle.parse(handle)
    identity = await state.authenticate(request)
    body = await read_json(request, handle, malformed=MalformedRequest)
    created, _ = await registrar.put(
        handle, body, identity=identity, overwrite=overwrite, indexes=indexes, various=various
    )
    if created:
        state.registered()
    answer = json_response({"responseCode": 1, "handle": handle}, 201 if created else 200)
    return _written(answer, fmt, request)


@router.delete(
    "/api/handles/{handle:path}",
    summary="Delete a handle or some of its values",
    responses=_error_docs(400, 401, 403, 404, 503),
    openapi_extra=NEEDS_CREDENTIALS,
)
async def delete_handle(
    handle: str,
    request: Request,
    state: State,
    fmt: Format,
    index: Annotated[list[str], Query(description="delete only these values")] = [],  # noqa: B006
) -> Response:
    """Without ``index`` the whole handle; with it, those values (400/200 if none exist)."""
    with naming(handle):
        Handle.parse(handle)
        registrar = state.registrar
        identity = await state.authenticate(request)
        await registrar.delete(handle, identity=identity, indexes=_indexes(index))
    return _written(json_response({"responseCode": 1, "handle": handle}), fmt, request)


@router.get(
    "/api/handles",
    summary="List the handles under a prefix",
    responses=_error_docs(400, 401, 403, 503),
    openapi_extra=NEEDS_CREDENTIALS,
)
async def list_handles(
    request: Request,
    state: State,
    fmt: Format,
    prefix: Annotated[str | None, Query(description="e.g. 88.100.1 (required)")] = None,
    page: Annotated[
        int | None, Query(le=MAX_PAGE_NUMBER, description="zero-based; negative: every handle")
    ] = None,
    pageSize: Annotated[  # noqa: N803 - Handle's parameter name
        int | None,
        Query(le=MAX_PAGE_SIZE, description="0: the count only; negative: every handle"),
    ] = None,
) -> Response:
    """``{"responseCode":1,"prefix":P,"totalCount":N,"page":i,"pageSize":n,"handles":[...]}``.

    Handles directly under ``prefix`` (not its derived prefixes), in byte order. Needs
    credentials of an identity with the LIST_HANDLES right there. A prefix delegated to
    another node is answered with 400/301 and a ``referral``.

    As in Handle: ``pageSize=0`` answers the count and no handles; without ``page`` and
    ``pageSize`` (or with either negative) every handle comes, without ``page`` and
    ``pageSize`` in the answer, up to the node's page-size limit (10,000 by default): a
    prefix holding more is refused (400/202) with a request to page.
    """
    if prefix is None:  # as Handle answers GET /api/handles: an empty handle
        raise InvalidHandle("Empty handle invalid: list with GET /api/handles?prefix=<prefix>")
    parsed = Prefix.parse(prefix)
    identity = await state.authenticate(request)
    state.registrar.check_held_prefix(parsed)
    (away,) = await state.registrar.check_here([Handle(parsed.text, "-")])
    if away is not None:  # its handles live at the node the prefix is delegated to
        away.handle = None
        raise away
    listing = Listing.parse(page, pageSize, limit=state.config.limits.max_page_size)
    await state.registrar.check_rights(identity, Handle(parsed.text, "-"), Operation.LIST)
    total, handles = await state.store.list_handles(parsed, listing.page, listing.page_size)
    return _written(json_response(listing.answer(parsed.text, total, handles)), fmt, request)


# HEAD answers what GET would, status and headers (Content-Length included), without
# the body, as the Handle servlet does. node.schemas documents it from the GET route.
router.add_api_route(
    "/api/handles/{handle:path}", resolve, methods=["HEAD"], include_in_schema=False
)
router.add_api_route("/api/handles", list_handles, methods=["HEAD"], include_in_schema=False)


@router.get(
    "/hrls/handles",
    summary="Reverse lookup: find handles by value",
    responses=_error_docs(400, 401, 503),
)
async def reverse_lookup(request: Request, state: State, limit: int = 1000) -> Response:
    """Query ``TYPE=pattern`` pairs (e.g. ``URL=https://example.com/*``); ``*`` is a wildcard.

    Returns a JSON list of the handles having a matching value for every pair,
    case-insensitively. ``prefix`` keeps only handles under that prefix; ``limit`` caps
    the result. Credentials are optional; sent ones must be right.
    """
    if request.headers.get("authorization"):
        await state.authenticate(request)
    cap = state.config.limits.max_search_results
    if not 1 <= limit <= cap:
        raise InvalidValue(f"limit must be between 1 and {cap}")
    terms, within = search_terms(request, _SEARCH_CONTROLS)
    return json_response(await state.store.search(terms, limit, within=within))


def search_terms(
    request: Request, controls: frozenset[str]
) -> tuple[list[ValuePattern], Prefix | None]:
    """The ``TYPE=pattern`` terms of a search request (its parameters but ``controls``),
    and its ``prefix`` scope."""
    terms = [
        ValuePattern.parse(key, value)
        for key, value in request.query_params.multi_items()
        if key not in controls
    ]
    if not terms:
        raise InvalidValue("give at least one TYPE=pattern search term, e.g. URL=*example*")
    scope = request.query_params.get("prefix")
    return terms, Prefix.parse(scope) if scope else None
