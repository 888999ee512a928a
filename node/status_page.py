"""The top node's status page: the hierarchy, live resolution rates, cache hit ratio
and the KPIs against a seed plan's targets, refreshing itself every two seconds.

One self-contained HTML file shipped with the package (no CDN: nodes may run without
internet); it reads ``/api/prefixes``, ``/api/kpis/national`` and ``/api/plans/{name}``.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from starlette.responses import HTMLResponse

router = APIRouter(tags=["Operations"])
_PAGE = resources.files("node").joinpath("static/status.html").read_text("utf-8")


@router.get("/status", summary="Status page (HTML)", response_class=HTMLResponse)
async def status_page() -> HTMLResponse:
    """``?plan=<name>&scale=<factor>`` choose the plan and scale its targets."""
    return HTMLResponse(_PAGE)
