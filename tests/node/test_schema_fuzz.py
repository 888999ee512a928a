"""Schemathesis against the OpenAPI schema of every node role, in process, on real Redis.

Each role's app is loaded with :func:`schemathesis.openapi.from_asgi`. Schemathesis runs
the app's lifespan on its own event-loop thread, the one that serves the requests (the
node's Redis client must live on that loop), and the fixture ends it. Every operation
runs Schemathesis' examples, coverage and fuzzing phases with a small, derandomized
budget; every request carries the role admin's Basic credentials (``300:0.NA/<prefix>``),
and ``ignored_auth`` replays each authenticated success without and with wrong ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from redis.asyncio import Redis
from schemathesis.checks import CHECKS, CheckFunction, load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.python import asgi
from starlette.types import ASGIApp, Receive, Scope, Send

from node.app import create_app
from node.config import NodeConfig
from tests.conftest import ADMIN_SECRET, StoreServer, basic, node_config

ROLES: dict[str, str | None] = {
    "top": "88",
    "secondary": "88.100",
    "enterprise": "88.100.1",
    "recursive": None,  # holds no prefix; resolves through its root
}
STORING = [role for role, prefix in ROLES.items() if prefix is not None]
UNREACHABLE_ROOT = "http://127.0.0.1:1"  # loopback, nothing listens: connection refused
SETTINGS = settings(
    max_examples=12,  # fuzzing phase, per operation; coverage and examples come on top
    deadline=None,
    database=None,  # no example database under the repository
    derandomize=True,  # the same cases on every run
    suppress_health_check=list(HealthCheck),
)
# Every check that passes honestly, besides status_code_conformance, which has its own
# test (test_documented_status_codes). Left out: positive_data_acceptance (the schema
# types handles, prefixes and identities as any string, so "schema-valid" values such
# as "0" are rightly refused with 400/102).
CHECK_NAMES = (
    "not_a_server_error",
    "ignored_auth",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
)

load_all_checks()


@dataclass
class Node:
    role: str
    prefix: str | None
    schema: Any
    seen: RequestLog
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    tolerated: list[str] = field(default_factory=list)

    @property
    def admin_auth(self) -> dict[str, str]:
        # A recursive node has no admin; it gets the top node's, which it cannot check.
        return basic(f"300:0.NA/{self.prefix or '88'}", ADMIN_SECRET)


class RequestLog:
    """ASGI wrapper remembering (method, path, sent credentials) of every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[tuple[str, str, bool]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            sent = any(name == b"authorization" for name, _ in scope["headers"])
            self.requests.append((scope["method"], scope["path"], sent))
        await self.app(scope, receive, send)


def _config(role: str, prefix: str | None, redis_url: str) -> NodeConfig:
    if prefix is None:
        args: dict[str, object | None] = {
            "role": role,
            "redis_url": redis_url,
            "parent_url": UNREACHABLE_ROOT,
        }
        return NodeConfig.from_sources(args, env={})
    return node_config(redis_url, prefix, role=role)


@pytest.fixture
def node(request: pytest.FixtureRequest, redis: Redis, redis_server: StoreServer) -> Iterator[Node]:
    role = str(request.param)
    prefix = ROLES[role]
    seen = RequestLog(create_app(_config(role, prefix, redis_server.url)))
    try:
        # from_asgi starts the lifespan; it stays up until shutdown_lifespans().
        schema = schemathesis.openapi.from_asgi("/openapi.json", seen)
        yield Node(role, prefix, schema, seen)
    finally:
        asgi.shutdown_lifespans()


def _tolerated(node: Node, case: schemathesis.Case[Any], status: int) -> bool:
    label = case.operation.label
    resolving = (
        "GET /api/handles/{handle}",
        "HEAD /api/handles/{handle}",
        "GET /api/trace/{handle}",
    )
    if node.prefix is None and status in (502, 504) and label in resolving:
        # Documented: a recursive node whose root is unreachable (nothing cached) answers
        # 502 (connection refused) or 504 (timeout). The root here is 127.0.0.1:1. A
        # trace resolves its root the same way.
        return True
    return False


def fuzz(node: Node, check_names: tuple[str, ...]) -> list[str]:
    """Run every operation of the node's schema; the failures, one text per operation."""
    checks = [cast(CheckFunction, CHECKS.get_one(name)) for name in check_names]
    auth = node.admin_auth

    def test(case: schemathesis.Case[Any]) -> None:
        response = case.call(headers=auth)
        node.statuses.setdefault(case.operation.label, Counter())[response.status_code] += 1
        if response.status_code >= 500 and _tolerated(node, case, response.status_code):
            node.tolerated.append(f"{case.operation.label} -> {response.status_code}")
            return
        case.validate_response(response, checks=checks, headers=auth)

    failures = []
    for result in get_all_tests(
        schema=node.schema, test_func=test, settings=SETTINGS, given_kwargs=None
    ):
        assert isinstance(result, Ok), result
        operation, hypothesis_test = result.ok()
        try:
            hypothesis_test()
        except (Exception, FailureGroup) as exc:
            failures.append(f"{operation.label}: {exc}")
    return failures


@pytest.mark.parametrize("node", list(ROLES), indirect=True)
def test_no_server_errors_and_auth_enforced(node: Node) -> None:
    failures = fuzz(node, CHECK_NAMES)
    assert not failures, "\n\n".join(failures)

    statuses = Counter[int]()
    for counts in node.statuses.values():
        statuses.update(counts)
    assert sum(statuses.values()) > 20 * len(node.statuses), statuses  # the run did run
    assert sum(n for s, n in statuses.items() if s >= 500) == len(node.tolerated)
    if node.prefix is None:
        # The recursive node did try its unreachable root, and said so with a 502.
        assert node.statuses["GET /api/handles/{handle}"][502] > 0, node.statuses
        return
    # ignored_auth was not vacuous: credentials got 2xx from operations that need them,
    # and those were replayed without credentials.
    secured_ok = {
        label for label, counts in node.statuses.items() if any(200 <= s < 300 for s in counts)
    } & {"GET /api/audit", "DELETE /api/sessions", "GET /api/handles"}
    assert secured_ok, node.statuses
    anonymous = {(method, path) for method, path, sent in node.seen.requests if not sent}
    assert ("GET", "/api/audit") in anonymous


@pytest.mark.parametrize("role", STORING)  # the others take no writes (tests/node/test_openapi.py)
def test_schema_declares_credentials(role: str) -> None:
    schema = create_app(_config(role, ROLES[role], "redis://127.0.0.1:1")).openapi()
    schemes = schema["components"]["securitySchemes"]
    assert {s["scheme"] for s in schemes.values()} >= {"basic"}
    secured = {
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    }
    assert {"PUT /api/handles/{handle}", "DELETE /api/handles/{handle}"} <= secured
    assert "POST /api/batch/handles" in secured
    assert "GET /api/handles/{handle}" not in secured  # resolution is public


@pytest.mark.parametrize("node", list(ROLES), indirect=True)
def test_documented_status_codes(node: Node) -> None:
    failures = fuzz(node, ("status_code_conformance",))
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize(
    ("role", "target"),
    [
        ("secondary", f"/api/handles?prefix=88.100&page={2**62}"),
        ("top", f"/api/prefixes?page={2**62}"),
        ("secondary", f"/api/enterprises?page={2**62}"),
        ("secondary", f"/api/enterprises?page={2**64}"),
    ],
)
async def test_huge_page_is_refused(
    role: str, target: str, redis: Redis, redis_server: StoreServer
) -> None:
    app = create_app(_config(role, ROLES[role], redis_server.url))
    admin = basic(f"300:0.NA/{ROLES[role]}", ADMIN_SECRET)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            answer = await http.get(target, headers=admin)
            assert answer.status_code in (200, 400), answer.text
            if answer.status_code == 400:
                assert answer.json()["responseCode"] == 202
            else:
                assert answer.json()["responseCode"] == 1
            assert (await http.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("TRACE", "/healthz", {"GET"}),
        ("PATCH", "/api/handles/88.100/x", {"GET", "PUT", "DELETE"}),
        ("DELETE", "/api/audit", {"GET"}),
    ],
)
async def test_405_names_the_allowed_methods(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    answer = await client.request(method, path)
    assert answer.status_code == 405
    assert answer.json()["responseCode"] == 2
    assert allowed <= {m.strip() for m in answer.headers.get("allow", "").split(",")}
