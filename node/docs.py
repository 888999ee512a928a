"""The API documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), offline.

FastAPI's own pages load their scripts, styles, fonts and icon from CDNs, which a node
on a plant network often cannot reach. Here every asset comes from the node itself:
Swagger UI and ReDoc as published by their projects, shipped in the pinned
``fastapi-offline`` package (MIT; Swagger UI is Apache-2.0, ReDoc MIT) and served under
:data:`ASSETS`. Swagger UI's online validator badge is turned off too (it would send the
schema's URL to validator.swagger.io).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS = "/docs"
REDOC = "/redoc"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
ASSETS = "/docs/assets"
_FILES = Path(str(resources.files("fastapi_offline").joinpath("static")))
_SWAGGER_PARAMETERS = {"validatorUrl": None}  # no call to the online validator


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from the node's own assets; build the app with
    ``docs_url=None, redoc_url=None`` so FastAPI does not add its CDN-loading pages.

    >>> app = FastAPI(docs_url=None, redoc_url=None)
    >>> install_docs(app)
    >>> sorted(r.path for r in app.routes if r.path.startswith("/docs"))
    ['/docs', '/docs/assets', '/docs/oauth2-redirect']
    """
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS, StaticFiles(directory=_FILES), name="docs-assets")

    @app.get(DOCS, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}",
            swagger_ui_parameters=_SWAGGER_PARAMETERS,
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
