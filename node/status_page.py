"""The top node's status page: every node of the hierarchy with its health, live
resolution rates, cache hit ratio and the KPIs against a seed plan's targets,
refreshing itself every two seconds.

One self-contained HTML file shipped with the package (no CDN: nodes may run without
internet); it reads ``/api/plans`` once and ``/api/status`` at each refresh.
``/api/status`` probes every node at once (``/readyz`` and ``/api/kpis``) and answers
within :data:`~node.survey.STATUS_DEADLINE` whatever the nodes do: a frozen node is
shown slow, not waited for with the upstream timeout. What the answers mean is
:mod:`node.survey` and :func:`loadtest.plan.standing`; this module only asks.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import HTMLResponse, Response

from loadtest.check import observed_from
from loadtest.plan import Plan, evaluate, overall, standing
from node.daily_kpis import today
from node.kpis import national_body, own_kpis
from node.responses import json_response
from node.state import NodeState, node_state
from node.survey import (
    STATUS_DEADLINE,
    Failure,
    Health,
    Member,
    Reply,
    health_of,
    member_json,
    members,
    with_enterprise_node,
)
from registry.errors import IdnodeError, InvalidValue, NotFound, UpstreamTimeout
from registry.prefix_entry import PrefixKind

router = APIRouter(tags=["Operations"])
State = Annotated[NodeState, Depends(node_state)]
_PAGE = resources.files("node").joinpath("static/status.html").read_text("utf-8")


@router.get("/status", summary="Status page (HTML)", response_class=HTMLResponse)
async def status_page() -> HTMLResponse:
    """``?plan=<name>&scale=<factor>`` choose the plan and scale its targets."""
    return HTMLResponse(_PAGE)


@router.get(
    "/api/status",
    summary="Every node's health and KPIs, and the plan's targets (top node)",
    responses={404: {"description": "Not a top node, or no such plan (100)"}},
)
async def status(
    request: Request,
    state: State,
    plan: str | None = None,
    scale: Annotated[float, Query(gt=0, le=1)] = 1.0,
) -> Response:
    """What the status page shows, answered within the status deadline (1 s):
    ``{"responseCode":1,"day","deadline","top":{"prefix","owner"},"nodes":[{"prefix",
    "kind","parent","depth","owner","industry","creditCode","nodeUrl","ownNode","health",
    "detail","kpis"}],"plan":{"plan","title","english","scale","verdict","rows":[...]}}``.
    ``health`` is up, not ready, slow or down (null for a prefix served by another
    node); ``kpis`` is the node's ``/api/kpis`` answer, null when it gave none. With
    ``?plan=``, each row's ``result`` is pass, FAIL, pending (a target the hierarchy
    cannot be judged by yet) or not measured, and ``reason`` says why."""
    if plan is not None and plan not in Plan.names():
        raise NotFound(f"no plan {plan!r}; plans: {', '.join(Plan.names())}")
    day = today()
    registry = state.need_registry()
    total, entries = await registry.list(0, state.config.limits.max_page_size)
    if total > len(entries):
        raise InvalidValue("more registered prefixes than one page; not supported yet")
    end = asyncio.get_running_loop().time() + STATUS_DEADLINE
    own = state.config.own_prefix.text
    tree = members(entries)
    # One task per secondary node and the enterprise nodes it names, all at once.
    groups = [
        _look_at_branch(state, m, [e for e in tree if e.parent == m.prefix], day, end)
        for m in tree
        if m.kind is PrefixKind.SECONDARY and m.node_url
    ]
    found = await asyncio.gather(_look_at_self(state, tree, own, day, end), *groups)
    placed = {looked[0].prefix: looked for group in found for looked in group}
    looked = [placed.get(m.prefix, (m, None, None, "")) for m in tree]
    nodes = [member_json(m, health, figures) for m, health, figures, _ in looked]
    answer: dict[str, Any] = {
        "responseCode": 1,
        "day": day,
        "deadline": STATUS_DEADLINE,
        "top": {"prefix": own, "owner": state.config.owner},
        "nodes": nodes,
    }
    if plan is not None:
        top = next((figures for m, _, figures, _ in looked if m.prefix == own), None)
        if top is None:
            top = await own_kpis(state, day)
        reached = []
        unreachable = []
        for member, _, figures, problem in looked:
            if member.kind is not PrefixKind.SECONDARY or not member.node_url:
                continue
            if figures is not None:
                reached.append(figures)
            else:
                unreachable.append(
                    {"prefix": member.prefix, "url": member.node_url, "message": problem}
                )
        enterprises = sum(e.kind is PrefixKind.ENTERPRISE for e in entries)
        nodes_count = len(reached) + len(unreachable)
        view = national_body(day, top, reached, unreachable, nodes_count, enterprises)
        answer["plan"] = _judged(Plan.load(plan), view, request.app.openapi(), scale)
    return json_response(answer)


def _judged(plan: Plan, view: dict[str, Any], schema: dict[str, Any], scale: float) -> Any:
    rows = evaluate(plan, observed_from(view, schema), scale)
    # The status page counts today, which is never over.
    judged = [standing(row, day_over=False) for row in rows]
    return {
        "plan": plan.name,
        "title": plan.title,
        "english": plan.english,
        "scale": scale,
        "verdict": overall([verdict for verdict, _ in judged]).value,
        "rows": [
            {**row.to_json(), "result": verdict.value, "reason": reason}
            for row, (verdict, reason) in zip(rows, judged, strict=True)
        ],
    }


Looked = tuple[Member, tuple[Health, str] | None, dict[str, Any] | None, str]


async def _look_at_branch(
    state: NodeState, secondary: Member, below: list[Member], day: str, end: float
) -> list[Looked]:
    """A secondary node, then the enterprise nodes its KPIs name (and those the
    registry names), all probed before ``end``."""
    top = await _look(state, secondary, day, end)
    listed = top[2].get("enterpriseNodes") if top[2] is not None else None
    found = [with_enterprise_node(m, listed) if m.own_node is False else m for m in below]
    rest = await asyncio.gather(*(_look(state, m, day, end) for m in found))
    return [top, *rest]


async def _look(state: NodeState, member: Member, day: str, end: float) -> Looked:
    """The member's health and KPIs (None: none to show), and why it gave no KPIs."""
    if not member.own_node:
        return member, None, None, ""
    readiness, figures = await asyncio.gather(
        _ask(state, member.node_url, "/readyz", {}, end),
        _ask(state, member.node_url, "/api/kpis", {"day": day}, end),
    )
    if figures.status == 200 and isinstance(figures.body, dict):
        return member, health_of(readiness), figures.body, ""
    problem = figures.message or f"answered HTTP {figures.status} to /api/kpis"
    return member, health_of(readiness), None, problem


async def _look_at_self(
    state: NodeState, tree: list[Member], own: str, day: str, end: float
) -> list[Looked]:
    """This (top) node: its store's answer and its own KPIs, within the deadline too."""
    member = next((m for m in tree if m.prefix == own), None)
    if member is None:
        return []
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(max(0.0, end - started)):
            await state.store.ping()
            figures = await own_kpis(state, day)
    except TimeoutError:
        return [(member, (Health.SLOW, _no_answer()), None, _no_answer())]
    except IdnodeError as exc:
        return [(member, (Health.NOT_READY, exc.message), None, exc.message)]
    ready = Reply(200, None, loop.time() - started)
    return [(member, health_of(ready), figures, "")]


async def _ask(state: NodeState, url: str, path: str, params: dict[str, str], end: float) -> Reply:
    """One GET within what is left of the deadline; failures become a :class:`Reply`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    left = end - started
    if left <= 0:
        return Reply(None, None, 0.0, Failure.TIMEOUT, _no_answer())
    try:
        status, body = await state.upstream.fetch_json(url, path, params, timeout=left)
    except UpstreamTimeout:
        return Reply(None, None, loop.time() - started, Failure.TIMEOUT, _no_answer())
    except IdnodeError as exc:
        return Reply(None, None, loop.time() - started, Failure.UNREACHABLE, exc.message)
    return Reply(status, body, loop.time() - started)


def _no_answer() -> str:
    return f"no answer within {STATUS_DEADLINE:g} s"
