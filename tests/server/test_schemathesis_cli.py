"""The ``schemathesis`` CLI against a real ``idnode serve`` process of every role.

The in-process fuzzing (tests/node/test_schema_fuzz.py) runs Schemathesis' checks, but
only its CLI reports the run-level warnings, among them "Schema validation mismatch":
an operation whose schema-valid requests were all refused with a 4xx that is not about
credentials, existence or conflicts, so the schema promises what the node refuses. Here
the CLI runs with the same checks on a small, deterministic budget, and its output must
hold no such warning.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ADMIN_SECRET
from tests.server.node_process import NodeProcess

pytestmark = pytest.mark.server
CLI = Path(sys.executable).parent / "schemathesis"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "ignored_auth",
)
MISMATCH = "schema validation mismatch"
# Operations whose input rules JSON Schema cannot state, so schema-valid requests are
# rightly refused (400/202); each is named with the rule. Any other operation fails.
INEXPRESSIBLE = {
    # at least one TYPE=pattern term, as free-form query parameters
    "GET /hrls/handles": "search terms",
    "GET /api/search": "search terms",
    # at least one FIELD=value condition, as free-form query parameters
    "GET /api/query": "query conditions",
    # an item's minLength <= maxLength and minimum <= maximum: one member against another
    "PUT /api/templates/{prefix}/{name}": "bounds in order",
}
# A recursive node resolves any handle, and which prefixes its hierarchy holds is known
# only to its root, at run time: handles outside them are answered 400/301 ("no node of
# the hierarchy holds prefix ...", resolver.walk), which the CLI counts as rejected input.
UNKNOWABLE_FOR_RECURSIVE = {
    "GET /api/handles/{handle}",
    "HEAD /api/handles/{handle}",
    "GET /api/trace/{handle}",
}


@pytest.fixture(scope="module")
def top(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    node = NodeProcess(tmp_path_factory.mktemp("top") / "data", role="top", prefix="88")
    yield node.start()
    node.stop()


def _start(role: str, top: NodeProcess, where: Path) -> NodeProcess:
    if role == "top":
        return top
    if role == "recursive":  # resolves through the top node
        return NodeProcess(where / "data", "--parent-url", top.url, role=role, prefix=None).start()
    prefix = {"secondary": "88.100", "enterprise": "88.100.1"}[role]
    return NodeProcess(where / "data", role=role, prefix=prefix).start()


def run_cli(
    node: NodeProcess, prefix: str, where: Path, *options: str, checks: tuple[str, ...] = CHECKS
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(CLI),
            "run",
            f"{node.url}/openapi.json",
            *options,
            "--checks",
            ",".join(checks),
            "--max-examples",
            "5",
            "--generation-deterministic",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
            "--auth",
            f"300%3A0.NA%2F{prefix}:{ADMIN_SECRET}",  # the username percent-encoded
        ],
        cwd=where,  # its crash cache stays out of the repository
        capture_output=True,
        text=True,
        timeout=240,
    )


def mismatched(output: str) -> set[str]:
    """The operations the run's "Schema validation mismatch" warning lists."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.lower().startswith(MISMATCH)]
    found = set()
    for start in starts:
        for line in lines[start + 1 :]:
            if line.startswith("  - "):
                found.add(line.removeprefix("  - ").strip())
            elif line.strip():  # the list ends at the next text; blank lines inside it
                break
    return found


def test_mismatch_listing_is_read() -> None:
    output = (
        "Schema validation mismatch: 2 operations mostly rejected generated data\n\n"
        "  - GET /api/search\n  - PUT /api/handles/{handle}\n\n💡 Check your schema\n"
    )
    assert mismatched(output) == {"GET /api/search", "PUT /api/handles/{handle}"}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("role", ["top", "secondary", "enterprise", "recursive"])
def test_cli_finds_no_failures_and_no_mismatch(role: str, top: NodeProcess, tmp_path: Path) -> None:
    node = _start(role, top, tmp_path)
    prefix = {"top": "88", "enterprise": "88.100.1"}.get(role, "88.100")
    try:
        runs = [run_cli(node, prefix, tmp_path)]
    finally:
        if node is not top:
            node.stop()
    for done in runs:
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert "passed" in output and " 0 generated" not in output, output  # it did run
        explained = INEXPRESSIBLE.keys() | (
            UNKNOWABLE_FOR_RECURSIVE if role == "recursive" else set()
        )
        unexplained = mismatched(output) - explained
        assert not unexplained, output
        if not mismatched(output):
            assert MISMATCH not in output.lower(), output
