"""The OpenAPI contract: offline documentation pages and each role's schema."""

from __future__ import annotations

import re

import httpx
import pytest
from redis.asyncio import Redis

from node.app import create_app
from node.embedded_redis import EmbeddedRedis
from tests.conftest import ADMIN_SECRET, basic
from tests.node.test_schema_fuzz import ROLES, _config

# src="...", href="...", url: '...' and openapi_url in the pages' scripts
_REFERENCES = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")


def _references(html: str) -> set[str]:
    return {a or b for a, b in _REFERENCES.findall(html)}


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (
            "/docs",
            {
                "/docs/assets/swagger-ui-bundle.js",
                "/docs/assets/swagger-ui.css",
                "/docs/assets/favicon.png",
                "/openapi.json",
            },
        ),
        ("/redoc", {"/docs/assets/redoc.standalone.js", "/docs/assets/favicon.png"}),
    ],
)
async def test_docs_pages_load_only_the_nodes_own_assets(
    client: httpx.AsyncClient, page: str, expected: set[str]
) -> None:
    answer = await client.get(page)
    assert answer.status_code == 200
    html = answer.text
    assert "http://" not in html and "https://" not in html, html  # no CDN, no fonts
    references = _references(html)
    assert expected <= references, references
    for url in references:
        assert url.startswith("/"), url
        loaded = await client.get(url)
        assert loaded.status_code == 200, url
        assert loaded.content, url
    assert "redoc" in (await client.get("/redoc")).text.lower()


async def test_redoc_names_the_schema(client: httpx.AsyncClient) -> None:
    html = (await client.get("/redoc")).text
    assert 'spec-url="/openapi.json"' in html


async def test_swagger_ui_asks_no_online_validator(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert '"validatorUrl": null' in html


async def test_docs_pages_are_not_operations(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]


def _operations(role: str) -> set[str]:
    prefix = ROLES[role]
    config = _config(role, prefix, "redis://127.0.0.1:1")  # the schema opens no connection
    paths = create_app(config).openapi()["paths"]
    return {f"{method.upper()} {path}" for path, ops in paths.items() for method in ops}


WRITES = {
    "PUT /api/handles/{handle}",
    "DELETE /api/handles/{handle}",
    "GET /api/handles",
    "GET /hrls/handles",
    "POST /api/batch/handles",
}
EVERY_ROLE = {"GET /api/handles/{handle}", "GET /api/trace/{handle}", "GET /healthz"}


@pytest.mark.parametrize(
    ("role", "serves", "leaves_out"),
    [
        (
            "top",
            EVERY_ROLE | WRITES | {"PUT /api/prefixes/{prefix}", "GET /api/kpis/national"},
            {"POST /api/enterprises"},
        ),
        (
            "secondary",
            EVERY_ROLE | WRITES | {"POST /api/enterprises", "POST /api/sessions"},
            {"PUT /api/prefixes/{prefix}", "GET /api/kpis/national", "GET /api/plans/{name}"},
        ),
        (
            "enterprise",
            EVERY_ROLE | WRITES | {"GET /api/templates", "GET /api/changes"},
            {"POST /api/enterprises", "PUT /api/prefixes/{prefix}", "GET /api/kpis/national"},
        ),
        (
            "recursive",
            EVERY_ROLE,
            WRITES | {"POST /api/sessions", "GET /api/kpis/national", "GET /api/plans/{name}"},
        ),
    ],
)
def test_each_role_lists_only_what_it_serves(
    role: str, serves: set[str], leaves_out: set[str]
) -> None:
    operations = _operations(role)
    assert serves <= operations, serves - operations
    assert not leaves_out & operations, leaves_out & operations


@pytest.mark.parametrize("role", ["secondary", "recursive"])
async def test_left_out_operations_are_refused(
    role: str, redis: Redis, redis_server: EmbeddedRedis
) -> None:
    """What a role's schema leaves out, the role does not serve: it answers an error."""
    app = create_app(_config(role, ROLES[role], redis_server.url))
    left_out = [("GET", "/api/kpis/national"), ("GET", "/api/plans/wuhan")]
    if role == "recursive":
        left_out += [
            ("PUT", "/api/handles/88/x"),
            ("DELETE", "/api/handles/88/x"),
            ("GET", "/api/handles?prefix=88"),
            ("POST", "/api/batch/handles"),
        ]
    admin = basic("300:0.NA/88", ADMIN_SECRET)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            for method, target in left_out:
                answer = await http.request(method, target, headers=admin, json={"handles": []})
                assert answer.status_code >= 400, (method, target, answer.text)


def test_bodies_and_errors_are_described() -> None:
    schema = create_app(_config("secondary", "88.100", "redis://127.0.0.1:1")).openapi()
    components = schema["components"]["schemas"]
    paths = schema["paths"]

    def body(method: str, path: str) -> str:
        content = paths[path][method]["requestBody"]["content"]["application/json"]
        return str(content["schema"]["$ref"]).rsplit("/", 1)[-1]

    def answer(method: str, path: str, status: str) -> str:
        content = paths[path][method]["responses"][status]["content"]["application/json"]
        return str(content["schema"]["$ref"]).rsplit("/", 1)[-1]

    assert body("put", "/api/handles/{handle}") == "Values"
    assert body("post", "/api/batch/handles") == "Batch"
    assert body("post", "/api/enterprises") == "ApplicationForm"
    assert answer("get", "/api/handles/{handle}", "200") == "Resolution"
    assert answer("put", "/api/handles/{handle}", "201") == "Written"
    assert answer("post", "/api/batch/handles", "200") == "BatchAnswer"
    assert answer("post", "/api/sessions", "201") == "Session"
    for name in ("Values", "Resolution", "Batch", "BatchAnswer", "Session", "Error"):
        assert "example" in components[name], name
    errors = [
        response["content"]["application/json"]["schema"]
        for operations in paths.values()
        for operation in operations.values()
        for status, response in operation["responses"].items()
        if status.startswith(("4", "5"))
    ]
    assert errors and all(e == {"$ref": "#/components/schemas/Error"} for e in errors)
