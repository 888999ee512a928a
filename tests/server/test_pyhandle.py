"""An unmodified pyhandle RESTHandleClient against a real node process over loopback,
and the guide's pyhandle walk-through, as documented, against the demo hierarchy."""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyhandle.handleclient import PyHandleClient
from pyhandle.handleexceptions import HandleAlreadyExistsException, HandleAuthenticationError

from tests.docs.test_readme import _ports, run_walk_through
from tests.server.node_process import NodeProcess, demo_hierarchy

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(tmp_path_factory.mktemp("pyhandle") / "data").start()
    yield process
    process.stop()


def rest_client(node: NodeProcess, password: str = "s3cret"):
    return PyHandleClient("rest").instantiate_with_username_and_password(
        node.url, "300:0.NA/88.100", password, HTTPS_verify=False
    )


def test_pyhandle_register_read_modify_search_delete(node: NodeProcess) -> None:
    client = rest_client(node)
    handle = "88.100/PYHANDLE-1"

    assert (
        client.register_handle(handle, "https://factory.example/p/1", checksum="abc123") == handle
    )
    assert client.get_value_from_handle(handle, "URL") == "https://factory.example/p/1"
    with pytest.raises(HandleAlreadyExistsException):
        client.register_handle(handle, "https://elsewhere.example")

    client.modify_handle_value(handle, URL="https://factory.example/p/1-v2", BATCH="B-77")
    record = client.retrieve_handle_record(handle)
    assert record["URL"] == "https://factory.example/p/1-v2" and record["BATCH"] == "B-77"
    assert record["CHECKSUM"] == "abc123" and "HS_ADMIN" in record

    client.delete_handle_value(handle, "BATCH")
    assert client.get_value_from_handle(handle, "BATCH") is None

    assert client.search_handle(URL="https://factory.example/*") == [handle]
    assert client.search_handle(URL="*p/1-v2", prefix="88.100") == [handle]

    minted = client.generate_and_register_handle("88.100", "https://factory.example/p/2")
    assert minted.startswith("88.100/") and client.retrieve_handle_record(minted)

    assert client.delete_handle(handle) == handle
    assert client.retrieve_handle_record_json(handle) is None


def test_pyhandle_wrong_password_is_refused(node: NodeProcess) -> None:
    client = rest_client(node, password="wrong")
    with pytest.raises(HandleAuthenticationError):
        client.register_handle("88.100/never", "https://x.example")
    assert rest_client(node).retrieve_handle_record_json("88.100/never") is None


GUIDE = Path(__file__).resolve().parents[2] / "docs/guides/register-and-resolve.md"


def pyhandle_walk_through() -> str:
    """The ``python`` block under "Walk-through with pyhandle"."""
    section = GUIDE.read_text("utf-8").split("## Walk-through with pyhandle", 1)[1]
    match = re.search(r"^```python\n(.*?)^```", section, re.M | re.S)
    assert match, "no python block under 'Walk-through with pyhandle'"
    return match.group(1)


def documented_steps(code: str) -> list[tuple[str, str | None]]:
    """Each statement of ``code`` with the output documented under it: the ``# `` lines
    that follow it (None when there are none)."""
    lines = code.splitlines()
    statements = ast.parse(code).body
    steps = []
    for position, statement in enumerate(statements):
        assert statement.end_lineno is not None
        end = statements[position + 1].lineno - 1 if position + 1 < len(statements) else len(lines)
        after = [line.strip() for line in lines[statement.end_lineno : end] if line.strip()]
        comments = [line.removeprefix("# ") for line in after if line.startswith("#")]
        steps.append((ast.get_source_segment(code, statement) or "", " ".join(comments) or None))
    return steps


def matches(documented: str, value: object) -> bool:
    """``repr(value)`` reads as documented, ``...`` standing for anything."""
    pattern = ".*?".join(map(re.escape, documented.split("...")))
    return re.fullmatch(pattern, repr(value)) is not None


def test_documented_steps_pair_each_call_with_the_comment_under_it() -> None:
    steps = documented_steps("a = 1\nf(a)\n# 'x'\ng()\n")
    assert steps == [("a = 1", None), ("f(a)", "'x'"), ("g()", None)]
    assert matches("{'URL': 'u', 'HS_ADMIN': ...}", {"URL": "u", "HS_ADMIN": {"index": 100}})
    assert not matches("['88.100.1/PUMP-0001']", ["88.100.1/ABC123", "88.100.1/PUMP-0001"])


async def test_the_guides_pyhandle_walk_through_after_the_readmes(tmp_path: Path) -> None:
    """The user's first hour: the README's curl walk-through (which registers
    88.100.1/ABC123 under https://factory.example/), then the guide's pyhandle block as
    written, call by call, each documented output checked."""
    code = pyhandle_walk_through()
    steps = documented_steps(code)
    assert sum(documented is not None for _, documented in steps) >= 5
    async with demo_hierarchy(tmp_path / "demo") as launcher:
        moved = _ports(launcher)
        done = await run_walk_through(launcher)
        assert done.returncode == 0, done.stdout + done.stderr
        namespace: dict[str, Any] = {}
        for statement, documented in steps:
            source = re.sub(
                r"http://127\.0\.0\.1:(\d+)",
                lambda m: f"http://127.0.0.1:{moved[int(m.group(1))]}",
                statement,
            )
            if documented is None:
                await asyncio.to_thread(exec, source, namespace)
                continue
            value = await asyncio.to_thread(eval, source, namespace)
            assert matches(documented, value), (
                f"{statement}\n  documented: {documented}\n  got: {value!r}"
            )
