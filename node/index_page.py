"""What a node answers at ``/``: which node it is and where to go from there.

Every node answers ``GET /`` with a small index: the node's role, prefix and URL, and
links to its API docs (``/docs``, ``/redoc``), its status, ``/readyz`` and ``/metrics``.
JSON clients (an ``Accept`` preferring ``application/json``, or none: curl) get it as
JSON; browsers get HTML, except at the top node, whose ``/`` redirects them to the
hierarchy's status page.

A node without the hierarchy's status page (every node but the top) serves its own view
at ``/status``: its readiness and today's KPIs, with the index's links and one to the
hierarchy's status page when it knows it (its parent is the top node). Every page is
plain HTML from the node itself, no script, style or font from elsewhere.
"""

from __future__ import annotations

from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from node.config import NodeConfig
from node.daily_kpis import today
from node.kpis import own_kpis
from node.responses import json_response
from node.state import NodeState, node_state
from registry.errors import IdnodeError
from registry.hierarchy import Role

router = APIRouter(tags=["Operations"])
own_view = APIRouter(tags=["Operations"])
State = Annotated[NodeState, Depends(node_state)]

# (key, path, label) of the pages every node links to, in the order shown.
PAGES = (
    ("docs", "/docs", "API docs (Swagger UI)"),
    ("redoc", "/redoc", "API reference (ReDoc)"),
    ("status", "/status", "status"),
    ("readyz", "/readyz", "readiness (/readyz)"),
    ("healthz", "/healthz", "liveness (/healthz)"),
    ("metrics", "/metrics", "Prometheus metrics (/metrics)"),
    ("openapi", "/openapi.json", "OpenAPI schema"),
)
# Shown figures of a node's own KPIs: (key in /api/kpis, label).
FIGURES = (
    ("resolutions", "resolutions today"),
    ("registrations", "registrations today"),
    ("peakPerSecond", "peak resolutions per second today"),
    ("recentPerSecond", "resolutions per second, last 10 s"),
    ("totalResolutions", "resolutions since the store began"),
    ("totalRegistrations", "identifiers created since the store began"),
)


def wants_json(accept: str) -> bool:
    """Whether an ``Accept`` header prefers JSON to HTML; no preference (curl's
    ``*/*``, or no header) is JSON, a browser's ``text/html`` is HTML.

    >>> wants_json("text/html,application/xhtml+xml,*/*;q=0.8"), wants_json("*/*")
    (False, True)
    """
    quality: dict[str, float] = {}
    for part in accept.split(","):
        media, *options = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for option in options:
            name, _, value = option.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media.lower()] = max(q, quality.get(media.lower(), 0.0))
    html = max(quality.get("text/html", 0.0), quality.get("application/xhtml+xml", 0.0))
    return html == 0.0 or quality.get("application/json", 0.0) > html


def hierarchy_status(config: NodeConfig) -> str | None:
    """The hierarchy's status page: this node's own at the top node, the parent's when
    the parent is the top node, else unknown (an enterprise node knows only its
    secondary node)."""
    if config.traits.keeps_registry:
        return "/status"
    if config.traits.parent is Role.TOP and config.parent_url:
        return f"{config.parent_url}/status"
    return None


def index(config: NodeConfig) -> dict[str, Any]:
    """The index as data (the JSON answer)."""
    return {
        "responseCode": 1,
        "node": config.name,
        "role": config.role.value,
        "prefix": config.prefix.text if config.prefix else None,
        "url": config.public_url,
        "parent": config.parent_url,
        "links": {key: path for key, path, _ in PAGES}
        | {"hierarchyStatus": hierarchy_status(config)},
    }


def render(about: dict[str, Any], own: dict[str, Any] | None, problem: str | None) -> str:
    """The index as an HTML page; with the node's own view when ``own`` (its KPIs) or
    ``problem`` (why it is not ready) is given."""
    name = f"{about['role']} node {about['prefix'] or ''}".strip()
    items = [f'<li><a href="{escape(path)}">{escape(label)}</a></li>' for _, path, label in PAGES]
    top = about["links"]["hierarchyStatus"]
    if top and top != "/status":
        items.append(f'<li><a href="{escape(top)}">the hierarchy\'s status (top node)</a></li>')
    facts = [("role", about["role"]), ("prefix", about["prefix"] or "-"), ("URL", about["url"])]
    if about["parent"]:
        facts.append(("parent node", about["parent"]))
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in facts)
    view = ""
    if problem is not None:
        view = f'<h2>Readiness</h2><p class="bad" id="ready">not ready: {escape(problem)}</p>'
    elif own is not None:
        figures = "".join(
            f"<tr><th>{escape(label)}</th><td>{escape(_number(own.get(key)))}</td></tr>"
            for key, label in FIGURES
        )
        view = (
            '<h2>Readiness</h2><p class="ok" id="ready">ready</p>'
            f"<h2>Today ({escape(str(own.get('day')))}, UTC)</h2><table>{figures}</table>"
        )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>idnode · {escape(name)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #101828; }}
  th {{ text-align: left; padding-right: 16px; color: #667085; font-weight: 600; }}
  .ok {{ color: #1a7f37; font-weight: 600; }} .bad {{ color: #c62828; font-weight: 600; }}
</style>
</head>
<body>
<h1>idnode · {escape(name)}</h1>
<table>{rows}</table>
{view}
<h2>Pages</h2>
<ul>{"".join(items)}</ul>
</body>
</html>
"""


def _number(value: object) -> str:
    if isinstance(value, int | float):
        return f"{value:,}"
    return "-"


@router.get("/", include_in_schema=False)
async def root(request: Request, state: State) -> Response:
    about = index(state.config)
    if wants_json(request.headers.get("accept", "")):
        return json_response(about)
    if state.config.traits.keeps_registry:
        return RedirectResponse("/status", status_code=307)
    return HTMLResponse(render(about, *await _own(state)))


@own_view.get("/status", summary="This node's own status (HTML)", response_class=HTMLResponse)
async def own_status(state: State) -> HTMLResponse:
    """Readiness and today's KPIs of this node; the hierarchy's status page is the top
    node's ``/status``."""
    return HTMLResponse(render(index(state.config), *await _own(state)))


async def _own(state: NodeState) -> tuple[dict[str, Any] | None, str | None]:
    """This node's KPIs for today, or why it cannot say (its store is down)."""
    try:
        await state.store.ping()
        return await own_kpis(state, today()), None
    except IdnodeError as exc:
        return None, exc.message
