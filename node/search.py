"""Search across the hierarchy (the Guangzhou plan's 搜索 at the top node's public
service platform): this node's reverse lookup plus that of every node its records
delegate to, asked concurrently with a timeout, merged by :mod:`registry.search_report`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from node.anonymous_limits import FAN_OUT_RESPONSES
from node.handles import search_terms
from node.responses import json_response
from node.state import NodeState, node_state
from registry.errors import InvalidValue, NotIndexed, UpstreamTimeout, UpstreamUnavailable
from registry.identifier import Prefix
from registry.search_report import (
    DEFAULT_TIMEOUT,
    MAX_HOPS,
    MAX_TIMEOUT,
    SearchReport,
    child_timeout,
    children_by_node,
)

router = APIRouter(tags=["Query and search"])
State = Annotated[NodeState, Depends(node_state)]
_CONTROLS = frozenset({"limit", "prefix", "timeout", "hops"})


@router.get(
    "/api/search",
    summary="Find handles by value at this node and every node below it",
    responses={
        400: {"description": "No or malformed search terms, bad limits (202)"},
        **FAN_OUT_RESPONSES,
    },
)
async def search(
    request: Request,
    state: State,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    timeout: Annotated[float, Query(gt=0, le=MAX_TIMEOUT)] = DEFAULT_TIMEOUT,
    hops: Annotated[int, Query(ge=0, le=MAX_HOPS)] = MAX_HOPS,
) -> Response:
    """``TYPE=pattern`` terms as for ``/hrls/handles`` (``*`` wildcards,
    case-insensitive; ``prefix`` narrows the scope). The node searches its own store and
    asks each node its records delegate to (the top node its secondary nodes, which ask
    their enterprise nodes; ``hops`` levels at most), giving them 70% of ``timeout``
    seconds. The answer says which nodes answered and which did not::

        {"responseCode": 1, "complete": false, "truncated": false,
         "handles": ["88.100.1/demo-0001", ...],
         "nodes": [{"node": URL, "prefixes": ["88.100"], "status": "ok", "found": 3},
                   {"node": URL, "prefixes": ["88.101"], "status": "timeout",
                    "found": 0, "message": "..."}],
         "unanswered": [URL]}

    A node that did not answer never fails the search; ``complete`` is false. A node
    that does not index a searched type (``--indexed-types``) reports itself
    ``"unindexed"`` and still asks the nodes below.
    """
    cap = state.config.limits.max_search_results
    if limit > cap:
        raise InvalidValue(f"limit is at most {cap}")
    terms, within = search_terms(request, _CONTROLS)
    report = SearchReport(state.config.public_url, limit=limit)
    own = [state.config.prefix.text] if state.config.prefix is not None else []
    try:
        here = await state.store.search(terms, limit, within=within)
    except NotIndexed as exc:  # the nodes below may index it: still ask them
        report.failed(state.config.public_url, own, "unindexed", exc.message)
    else:
        report.found_here(here, own)
    delegations = state.registrar.delegations
    if delegations is None:
        return json_response(report.to_json())
    children = children_by_node(
        r for r in await delegations.children() if within is None or _overlaps(r.prefix, within)
    )
    budget = child_timeout(timeout)
    if hops == 0 or budget is None:
        for url, prefixes in children.items():
            report.failed(url, prefixes, "skipped", "not asked: no hops or time left")
        return json_response(report.to_json())
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("timeout", "hops")]
    params += [("timeout", f"{budget:.3f}"), ("hops", str(hops - 1))]

    async def ask(url: str) -> object:
        try:
            return await state.upstream.get_json(url, "/api/search", params, timeout=budget)
        except (UpstreamTimeout, UpstreamUnavailable) as exc:
            return exc

    answers = await asyncio.gather(*(ask(url) for url in children))
    # Merged in the order of the prefixes, not of arrival, so answers are repeatable.
    for (url, prefixes), answer in zip(children.items(), answers, strict=True):
        if isinstance(answer, UpstreamTimeout):
            report.failed(url, prefixes, "timeout", answer.message)
        elif isinstance(answer, UpstreamUnavailable):
            report.failed(url, prefixes, "unreachable", answer.message)
        else:
            report.answered(url, prefixes, answer)
    return json_response(report.to_json())


def _overlaps(prefix: Prefix, within: Prefix) -> bool:
    return prefix.contains(within) or within.contains(prefix)
