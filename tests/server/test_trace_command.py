"""``idnode trace`` as a user runs it, against the demo hierarchy (free ports), each node
its own process: the tree it draws, --depth, --relations, --json, and a refused root."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.node_process import demo_hierarchy

pytestmark = pytest.mark.server

CAR = "88.100.1/JM-E5-2026-000123"
CELL = "88.101.1/LFP280-2026-000451"
TREE = re.compile(r"[│├└─ ]+[A-Z_]+")  # a line's branches and relation


async def idnode(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "node", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_idnode_trace_draws_the_demo_car_across_the_hierarchy(tmp_path: Path) -> None:
    async with demo_hierarchy(tmp_path / "demo") as launcher:
        top = launcher.node("top-88").url
        auto = launcher.node("secondary-88.100").url
        cells = launcher.node("enterprise-88.101.1").url
        drawn = await idnode("trace", CAR, "--node", top)
        shallow = await idnode("trace", CAR, "--node", top, "--depth", "1")
        up = await idnode("trace", CELL, "--node", top, "--relations", "COMPONENT_OF")
        as_json = await idnode("trace", CAR, "--node", top, "--json", "--depth", "0")
        missing = await idnode("trace", "88.100.1/NO-SUCH-CAR", "--node", top)

    assert drawn.returncode == 0, drawn.stderr
    lines = drawn.stdout.splitlines()
    # the tree's shape: relation by relation, in the records' order
    shape = [TREE.match(line).group().rstrip() for line in lines[1:-1]]  # type: ignore[union-attr]
    assert shape == [
        "├─ COMPONENT",
        "│  ├─ MADE_FROM",
        "│  │  └─ COMPONENT_OF",
        "│  ├─ MADE_FROM",
        "│  │  └─ COMPONENT_OF",
        "│  ├─ MADE_FROM",
        "│  │  └─ COMPONENT_OF",
        "│  └─ COMPONENT_OF",
        "├─ COMPONENT",
        "│  └─ COMPONENT_OF",
        "└─ SHIPPED_IN",
    ]
    assert lines[0].split() == [CAR, "found", auto, "MISS"]
    # the cells come from the enterprise node that holds them, the other parts from 88.100
    assert [line.split()[-3:-1] for line in lines if "MADE_FROM" in line] == [["found", cells]] * 3
    assert all(f"found  {auto}" in line for line in lines if "COMPONENT " in line)
    back_references = [line for line in lines if "COMPONENT_OF" in line]
    assert all(" seen  (already above" in line for line in back_references)
    assert lines[-1] == "7 handles resolved; complete"

    assert shallow.returncode == 0, shallow.stderr
    assert shallow.stdout.count("not_followed  (beyond the depth bound (1))") == 3
    assert shallow.stdout.splitlines()[-1].startswith("4 handles resolved; incomplete")

    assert up.returncode == 0, up.stderr
    # from a cell up to the pack it went into, and the car the pack went into
    assert [line.split() for line in up.stdout.splitlines()] == [
        [CELL, "found", cells, "HIT"],
        ["└─", "COMPONENT_OF", "88.100.2/HB75-2026-000123", "found", auto, "HIT"],
        ["└─", "COMPONENT_OF", CAR, "found", auto, "HIT"],
        ["3", "handles", "resolved;", "complete"],
    ]

    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)
    assert (answer["handle"], answer["depth"], answer["tree"]["status"]) == (CAR, 0, "found")

    assert missing.returncode == 1 and missing.stdout == ""
    assert "HTTP 404: Handle 88.100.1/NO-SUCH-CAR not found" in missing.stderr


async def test_a_node_that_does_not_answer_is_one_line_and_exit_1(tmp_path: Path) -> None:
    from node.embedded_redis import free_port

    done = await idnode("trace", CAR, "--node", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert done.stderr.startswith("idnode: http://127.0.0.1:") and "refused" in done.stderr
    assert len(done.stderr.splitlines()) == 1
