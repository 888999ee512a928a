"""Daily KPIs over HTTP: each node's own, and the national view at the top node."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from loadtest.check import observed_from
from loadtest.plan import Plan, evaluate, failed
from node.daily_kpis import today
from node.responses import json_response
from node.state import NodeState, node_state
from registry.enterprise import Status
from registry.errors import IdnodeError, InvalidValue, NotFound
from registry.prefix_entry import PrefixKind
from registry.prefix_registry import PrefixRegistry

router = APIRouter(tags=["Key performance indicators"])
State = Annotated[NodeState, Depends(node_state)]
DAY = Query(description="UTC day as YYYYMMDD; today by default", pattern=r"^\d{8}$")
SUMMED = ("resolutions", "registrations", "totalResolutions", "totalRegistrations")


async def own_kpis(state: NodeState, day: str) -> dict[str, Any]:
    if state.kpis is None:
        raise NotFound("this node keeps no KPIs")
    figures = await state.kpis.figures(day)
    config = state.config
    enterprises = 0
    onboarding: dict[str, Any] = {}
    if state.onboarding is not None:
        enterprises, _ = await state.onboarding.list(Status.APPROVED, 0, 1)
        onboarding["enterpriseNodes"] = await enterprise_nodes(state)
    return {
        "node": config.name,
        "role": config.role.value,
        "prefix": config.prefix.text if config.prefix else None,
        "url": config.public_url,
        "day": figures.day,
        "resolutions": figures.resolutions,
        "registrations": figures.registrations,
        "peakPerSecond": figures.peak_per_second,
        "totalResolutions": figures.total_resolutions,
        "totalRegistrations": figures.total_registrations,
        "enterprises": enterprises,
        "recentPerSecond": round(state.kpis.recent_rate(), 2),
        "cacheHitRatio": state.metrics.hit_ratio(),
        **onboarding,
    }


async def enterprise_nodes(state: NodeState) -> list[dict[str, str]]:
    """The enterprises under this node that run a node of their own, as its prefix
    records say (read from the store: asking costs no resolution, so the status page
    does not count its own probes as traffic)."""
    own = state.config.public_url
    _, entries = await PrefixRegistry(state.registrar).list(0, state.config.limits.max_page_size)
    return [
        {"prefix": entry.prefix.text, "url": url}
        for entry in entries
        if entry.kind is PrefixKind.ENTERPRISE and (url := entry.delegates_away_from(own))
    ]


@router.get(
    "/api/kpis",
    summary="This node's KPIs for a day",
    responses={404: {"description": "This node keeps no KPIs (100)"}},
)
async def kpis(state: State, day: Annotated[str | None, DAY] = None) -> Response:
    """``{"responseCode":1,"node","role","prefix","url","day","resolutions",
    "registrations","peakPerSecond","totalResolutions","totalRegistrations","enterprises",
    "recentPerSecond","cacheHitRatio"}`` (``enterprises``: approved at this node, for a
    secondary node; ``recentPerSecond``: over the last ten seconds; ``cacheHitRatio``:
    of this process's cached-path resolutions, null when there were none). A secondary
    node adds ``"enterpriseNodes":[{"prefix","url"}]``, the enterprises under it that
    run their own node."""
    return json_response({"responseCode": 1, **await own_kpis(state, day or today())})


@router.get(
    "/api/kpis/national",
    summary="The national view: every secondary node's KPIs",
    responses={404: {"description": "Not a top node (100)"}},
)
async def national(state: State, day: Annotated[str | None, DAY] = None) -> Response:
    """Top node only. Asks every registered secondary node for its KPIs (with the
    upstream timeout) and adds them up: ``{"responseCode":1,"day","top",
    "secondaries":[...],"unreachable":[{"prefix","url","message"}],"totals":{...},
    "secondaryNodes","enterprisePrefixes"}``. ``totals`` sums the secondaries that
    answered; ``unreachable`` names those that did not."""
    return json_response({"responseCode": 1, **await national_view(state, day or today())})


async def national_view(state: NodeState, day: str) -> dict[str, Any]:
    """The top node's own KPIs and every registered secondary node's, added up."""
    registry = state.need_registry()
    total, entries = await registry.list(0, state.config.limits.max_page_size)
    if total > len(entries):
        raise InvalidValue("more registered prefixes than one page; not supported yet")
    secondaries = [e for e in entries if e.kind is PrefixKind.SECONDARY and e.node_url]

    async def ask(url: str) -> dict[str, Any]:
        answer = await state.upstream.get_json(url, "/api/kpis", {"day": day})
        if not isinstance(answer, dict):
            raise InvalidValue(f"node {url} answered KPIs that are not an object")
        return answer

    answers = await asyncio.gather(*(ask(e.node_url) for e in secondaries), return_exceptions=True)
    reached: list[dict[str, Any]] = []
    unreachable: list[dict[str, str]] = []
    for entry, answer in zip(secondaries, answers, strict=True):
        if isinstance(answer, IdnodeError):
            unreachable.append(
                {"prefix": entry.prefix.text, "url": entry.node_url, "message": answer.message}
            )
        elif isinstance(answer, BaseException):
            raise answer
        else:
            reached.append(answer)
    enterprise_prefixes = sum(e.kind is PrefixKind.ENTERPRISE for e in entries)
    top = await own_kpis(state, day)
    return national_body(day, top, reached, unreachable, len(secondaries), enterprise_prefixes)


def national_body(
    day: str,
    top: dict[str, Any],
    reached: list[dict[str, Any]],
    unreachable: list[dict[str, str]],
    secondary_nodes: int,
    enterprise_prefixes: int,
) -> dict[str, Any]:
    """The national view's body from the secondaries' KPIs (``reached``) and those that
    did not answer: ``totals`` adds up the ones that answered."""
    totals = {name: sum(int(a.get(name, 0)) for a in reached) for name in SUMMED}
    totals["enterprises"] = sum(int(a.get("enterprises", 0)) for a in reached)
    totals["peakPerSecond"] = max((int(a.get("peakPerSecond", 0)) for a in reached), default=0)
    return {
        "day": day,
        "top": top,
        "secondaries": reached,
        "unreachable": unreachable,
        "totals": totals,
        "secondaryNodes": secondary_nodes,
        "enterprisePrefixes": enterprise_prefixes,
    }


@router.get("/api/plans", summary="The seed plans whose targets a hierarchy is judged by")
async def plans() -> Response:
    return json_response(
        {
            "responseCode": 1,
            "plans": [
                {"name": p.name, "title": p.title, "english": p.english}
                for p in map(Plan.load, Plan.names())
            ],
        }
    )


@router.get(
    "/api/plans/{name}",
    summary="This hierarchy against a plan's targets (top node)",
    responses={404: {"description": "Not a top node, or no such plan (100)"}},
)
async def plan_check(
    name: str,
    request: Request,
    state: State,
    scale: Annotated[float, Query(gt=0, le=1)] = 1.0,
) -> Response:
    """The rows ``idnode check`` prints, as JSON: ``{"responseCode":1,"plan","title",
    "scale","passed","rows":[{"target","subject","required","unit","measured","result",
    "how","quote"}]}``."""
    if name not in Plan.names():
        raise NotFound(f"no plan {name!r}; plans: {', '.join(Plan.names())}")
    plan = Plan.load(name)
    view = await national_view(state, today())
    rows = evaluate(plan, observed_from(view, request.app.openapi()), scale)
    return json_response(
        {
            "responseCode": 1,
            "plan": plan.name,
            "title": plan.title,
            "english": plan.english,
            "scale": scale,
            "passed": not failed(rows),
            "rows": [row.to_json() for row in rows],
        }
    )
