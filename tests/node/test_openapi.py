"""The OpenAPI contract: offline documentation pages and each role's schema."""

from __future__ import annotations

import inspect
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from redis.asyncio import Redis
from starlette.routing import BaseRoute

from node.app import create_app
from node.output_format import CALLBACK_PATTERN
from tests.conftest import ADMIN_SECRET, StoreServer, basic
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
    role: str, redis: Redis, redis_server: StoreServer
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


def _reads_body(endpoint: Callable[..., Any]) -> bool:
    """Whether a handler reads its request body (they all do so by hand), itself or
    through the functions of its module it calls."""
    module = inspect.getmodule(endpoint)
    helpers = {
        name: function
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if function.__module__ == endpoint.__module__
    }
    sources, seen = [inspect.getsource(endpoint)], {endpoint.__name__}
    while sources:
        source = sources.pop()
        if "read_json(" in source or "read_body(" in source:
            return True
        for name, function in helpers.items():
            if name not in seen and f"{name}(" in source:
                seen.add(name)
                sources.append(inspect.getsource(function))
    return False


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every route with its endpoint, routers included ones too (no path prefixes)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI's included router
        if included is not None:
            yield from _api_routes(included.routes)


def _component(media: dict[str, Any]) -> str | None:
    ref = media.get("schema", {}).get("$ref")
    return str(ref).rsplit("/", 1)[-1] if ref else None


@pytest.mark.parametrize("role", list(ROLES))
def test_every_operation_is_described(role: str) -> None:
    """Each operation of the role's schema: a requestBody schema where the handler
    reads a body (and only there), a schema for every success answer that has a body,
    the Error schema for every error status, examples, and a readable operation id."""
    app = create_app(_config(role, ROLES[role], "redis://127.0.0.1:1"))
    schema = app.openapi()
    components = schema["components"]["schemas"]
    takes_body = {
        (method.lower(), route.path_format)
        for route in _api_routes(app.routes)
        if _reads_body(route.endpoint)
        for method in route.methods or ()
    }
    problems: list[str] = []
    ids: Counter[str] = Counter()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            ids[operation.get("operationId", "")] += 1
            if not re.fullmatch(r"[a-z]+(_[a-z]+)*", operation.get("operationId", "")):
                problems.append(f"{label}: operationId {operation.get('operationId')!r}")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if ((method, path) in takes_body) != (body is not None):
                problems.append(f"{label}: requestBody {body} but reads a body: {not body}")
            if body is not None and "example" not in components[_component(body) or ""]:
                problems.append(f"{label}: request body without an example")
            responses = operation["responses"]
            if not any(s.startswith("2") for s in responses):
                problems.append(f"{label}: no success answer")
            for status, response in responses.items():
                content = response.get("content", {})
                if method == "head" or status == "204":
                    if content:
                        problems.append(f"{label} {status}: a body is described")
                elif not content:
                    problems.append(f"{label} {status}: no answer schema")
                elif status.startswith(("4", "5")):
                    if _component(content.get("application/json", {})) != "Error":
                        problems.append(f"{label} {status}: not the Error schema")
                for media_type, media in content.items():
                    name = _component(media)
                    if name is None and media.get("schema", {}).get("type") != "string":
                        problems.append(f"{label} {status} {media_type}: empty schema")
                    if name is not None and "example" not in components[name]:
                        problems.append(f"{label} {status}: {name} has no example")
    problems += [f"operationId {i!r} used {n} times" for i, n in ids.items() if n > 1]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", ["/api/handles/{handle}", "/api/handles"])
def test_head_and_output_format_are_documented(path: str) -> None:
    paths = create_app(_config("secondary", "88.100", "redis://127.0.0.1:1")).openapi()["paths"]
    get, head = paths[path]["get"], paths[path]["head"]
    for operation in (get, head):
        names = {p["name"] for p in operation["parameters"]}
        assert {"pretty", "callback"} <= names, names
    assert set(head["responses"]) == set(get["responses"])
    assert "application/javascript" in get["responses"]["200"]["content"]
    assert "application/javascript" in get["responses"]["400"]["content"]
    (callback,) = [p for p in get["parameters"] if p["name"] == "callback"]
    assert callback["schema"]["pattern"] == CALLBACK_PATTERN


async def test_head_answers_as_documented(client: httpx.AsyncClient) -> None:
    """HEAD answers the statuses its schema lists, without a body."""
    schema = (await client.get("/openapi.json")).json()
    documented = schema["paths"]["/api/handles/{handle}"]["head"]["responses"]
    answer = await client.head("/api/handles/88.100/nothing-here")
    assert str(answer.status_code) in documented
    assert answer.status_code == 404 and answer.content == b""
