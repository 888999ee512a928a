"""The README as a newcomer uses it: its links lead to pages that exist, and its curl
walk-through, pasted into a shell, works against a real demo hierarchy."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from node.launcher import Launcher
from node.topology import Topology
from tests.server.node_process import demo_hierarchy

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text("utf-8")

# The walk-through's first lines name the nodes it talks to: NAME=http://127.0.0.1:PORT.
NODE_VARIABLE = re.compile(r"^(\w+)=http://127\.0\.0\.1:(\d+)\b", re.M)


def walk_through() -> str:
    """The first ``sh`` block under "Walk-through with curl"."""
    section = README.split("## Walk-through with curl", 1)[1]
    match = re.search(r"^```sh\n(.*?)^```", section, re.M | re.S)
    assert match, "no sh block under 'Walk-through with curl'"
    return match.group(1)


def test_the_readme_links_into_docs_point_at_files_that_exist() -> None:
    targets = re.findall(r"\]\(((?:docs/)[^)#\s]*)", README)
    assert len(targets) >= 10, targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing


def test_the_readme_stays_short() -> None:
    assert len(README.splitlines()) <= 300


def test_the_walk_through_names_every_node_by_a_variable() -> None:
    """Only the variable lines carry a port, so the test below can move the demo to free
    ports by rewriting them alone, and a reader can point the block at other nodes."""
    script = walk_through()
    without_variables = NODE_VARIABLE.sub("", script)
    assert "127.0.0.1" not in without_variables
    assert "<" not in script.replace("<<", ""), "a placeholder would break the shell"


@pytest.mark.server
async def test_the_curl_walk_through_runs_against_the_demo(tmp_path: Path) -> None:
    async with demo_hierarchy(tmp_path / "demo") as launcher:
        moved = _ports(launcher)
        done = await run_walk_through(launcher)
    assert done.returncode == 0, done.stdout + done.stderr
    expected = [
        # the first resolution walks to the secondary node, the second is cached
        "HTTP/1.1 200 OK",
        "x-cache: MISS",
        f"x-resolved-by: http://127.0.0.1:{moved[8001]}",
        '{"responseCode":1,"handle":"88.100.1/demo-0001"',
        "x-cache: HIT",
        # the optoelectronics node refers; the top node follows
        f'"referral":{{"url":"http://127.0.0.1:{moved[8010]}","prefix":"88.101.1"}}',
        '{"responseCode":1,"handle":"88.101.1/demo-0001"',
        # registered, resolved case-insensitively, filtered, through the top
        '{"responseCode":1,"handle":"88.100.1/ABC123"}',
        '{"responseCode":1,"handle":"88.100.1/abc123"',
        '"data":{"format":"string","value":"B-2026-11"}',
        # changed, and seen through the top node
        '"data":{"format":"string","value":"B-2026-12"}',
        # refused
        '{"responseCode":400,"handle":"88.100.2/ABC123"',
        "may not create the handle of 88.100.2/ABC123",
        # onboarded and filed
        '"status":"approved"',
        '"identity":"300:0.NA/88.100.4"',
        '"filed":true',
        '{"responseCode":1,"prefix":"88.100.4"',
    ]
    out = done.stdout
    at = 0
    for text in expected:
        found = out.find(text, at)
        assert found >= 0, f"{text!r} not found after position {at} in:\n{out}"
        at = found
    assert "age:" in out.lower()


async def run_walk_through(launcher: Launcher) -> subprocess.CompletedProcess[str]:
    """The README's walk-through run by bash (-e, pipefail) against ``launcher``'s demo:
    the documented addresses moved to the ports its nodes run on."""
    moved = _ports(launcher)
    script = NODE_VARIABLE.sub(
        lambda m: f"{m.group(1)}=http://127.0.0.1:{moved[int(m.group(2))]}", walk_through()
    )
    return await asyncio.to_thread(
        subprocess.run,
        ["bash", "-e", "-o", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=45,
    )


def _ports(launcher: Launcher) -> dict[int, int]:
    """The demo's documented ports, each mapped to the free port its node runs on."""
    return dict(zip(Topology.demo().ports(), launcher.topology.ports(), strict=True))
