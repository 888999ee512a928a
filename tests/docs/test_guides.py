"""The guides' shell examples as a reader pastes them: every ``sh`` block that talks to
the demo names its nodes by variables (``AUTO=http://127.0.0.1:8001``), and runs, with
only those lines moved to the free ports of a real demo hierarchy, under
``bash -e -o pipefail``; key answers are checked, and the traceability guide's tree is
the one ``idnode trace`` really draws.

Blocks that do not talk to a running demo (``make demo``, ``idnode up`` itself, the
containers, the load tests) name no node variable and are not run here.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.test_readme import NODE_VARIABLE, _ports
from tests.server.node_process import demo_hierarchy

ROOT = Path(__file__).resolve().parents[2]
GUIDES = ROOT / "docs" / "guides"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)
DEMO_ADDRESS = re.compile(r"127\.0\.0\.1:\d+")
IDNODE = ".venv/bin/idnode"  # as the guides call it, from the project's folder

# Guides run in one demo, in this order (the first trace finds the top node's cache
# cold); onboard-an-enterprise onboards the same enterprise as register-and-resolve does,
# so it gets a demo of its own.
RUNS = {
    "shared": ["traceability", "register-and-resolve", "templates-and-query", "permissions"]
    + ["operations"],
    "onboarding": ["onboard-an-enterprise"],
}

# What each guide's blocks must print, in this order; {8001} is the port the demo's
# node 8001 was moved to.
DEMO_PORT = re.compile(r"\{(\d+)\}")
EXPECTED = {
    "traceability": [
        '"handle":"88.100.1/JM-E5-2026-000123"',
        '"complete":true',
    ],
    "register-and-resolve": [
        "HTTP/1.1 200 OK",
        "x-cache: MISS",
        "x-resolved-by: http://127.0.0.1:{8001}",
        "x-cache: HIT",
        '"referral":{"url":"http://127.0.0.1:{8010}","prefix":"88.101.1"}',
        '{"responseCode":1,"handle":"88.101.1/demo-0001"',
        '{"responseCode":1,"handle":"88.100.1/ABC123"}',
        '{"responseCode":1,"handle":"88.100.1/abc123"',
        '"value":"B-2026-12"',
        '{"responseCode":400,"handle":"88.100.2/ABC123"',
        '{"responseCode":1,"handle":"88.100.1/',  # the minted handle
        '["88.100.1/ABC123","88.100.1/',  # the search by URL: ABC123 and the minted one
        '"created":2,"updated":0,"failed":0',
        '"status":"approved"',
        '"prefix":"88.100.4"',
        '"filed":true',
        '{"responseCode":1,"prefix":"88.100.4"',
    ],
    "templates-and-query": [
        '"name":"battery-pack"',
        '"state":"published"',
        '{"responseCode":202,"handle":"88.100.2/HB75-0001"',
        "capacity_kwh: must be at most 150, got 750",
        '"totalCount":',
        '"complete":true',
        '"88.101.1/demo-0003"',
    ],
    "permissions": [
        '{"responseCode":1,"handle":"88.100.1/users/alice"}',
        '{"responseCode":1,"handle":"0.NA/88.100.1"}',
        "public key (HS_PUBKEY value): sm2:",
        '{"responseCode":1,"handle":"88.100.1/devices/plc-7"}',
    ],
    "operations": ['{"status":"ready","registered":true}'],
    "onboard-an-enterprise": [
        '"status":"pending"',
        '"status":"approved"',
        '"prefix":"88.100.4"',
        '"identity":"300:0.NA/88.100.4"',
        '"filed":true',
        '{"responseCode":1,"prefix":"88.100.4"',
    ],
}


def sh_blocks(guide: str) -> list[str]:
    return SH_BLOCK.findall((GUIDES / f"{guide}.md").read_text("utf-8"))


def demo_blocks(guide: str) -> list[str]:
    """The blocks of ``guide`` that talk to the demo: those naming a node by a variable."""
    return [block for block in sh_blocks(guide) if NODE_VARIABLE.search(block)]


def commands(block: str) -> str:
    """``block`` without its comments (whole lines and trailing ones) and its node
    variable lines."""
    code = NODE_VARIABLE.sub("", block)
    lines = (re.sub(r"\s+#\s.*$", "", line) for line in code.splitlines())
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def test_every_guide_block_names_the_demo_nodes_by_variables_only() -> None:
    """So the test below moves a block to free ports by rewriting those lines alone, and
    a block it does not run cannot be one that talks to the demo."""
    for path in sorted(GUIDES.glob("*.md")):
        for block in sh_blocks(path.stem):
            assert not DEMO_ADDRESS.search(commands(block)), f"{path.name}:\n{block}"
            if NODE_VARIABLE.search(block):
                # a placeholder such as <id> would break the shell
                assert not re.search(r"<\w", commands(block)), f"{path.name}:\n{block}"


def test_every_guide_with_demo_blocks_is_run() -> None:
    talking = {path.stem for path in GUIDES.glob("*.md") if demo_blocks(path.stem)}
    assert talking == {guide for guides in RUNS.values() for guide in guides}
    assert set(EXPECTED) == talking
    assert documented_tree().endswith("\n7 handles resolved; complete\n")


def script(guide: str, moved: dict[int, int]) -> str:
    code = "\n".join(demo_blocks(guide))
    code = NODE_VARIABLE.sub(
        lambda m: f"{m.group(1)}=http://127.0.0.1:{moved[int(m.group(2))]}", code
    )
    return code.replace(IDNODE, f"{sys.executable} -m node")


def documented_tree() -> str:
    """The tree the traceability guide shows for the first trace of the demo car."""
    text = (GUIDES / "traceability.md").read_text("utf-8")
    match = re.search(r"freshly started demo prints:\n\n```text\n(.*?)^```", text, re.M | re.S)
    assert match, "no documented tree in traceability.md"
    return match.group(1)


@pytest.mark.server
@pytest.mark.timeout(90)
@pytest.mark.parametrize("run", sorted(RUNS))
async def test_the_guides_blocks_run_against_the_demo(run: str, tmp_path: Path) -> None:
    outputs: dict[str, str] = {}
    async with demo_hierarchy(tmp_path / "demo") as launcher:
        moved = _ports(launcher)
        for guide in RUNS[run]:
            done = await asyncio.to_thread(
                subprocess.run,
                ["bash", "-e", "-o", "pipefail", "-c", script(guide, moved)],
                capture_output=True,
                text=True,
                timeout=30,
                cwd=ROOT,
            )
            assert done.returncode == 0, f"{guide}:\n{done.stdout}\n{done.stderr}"
            outputs[guide] = done.stdout
    ports = {str(port): str(moved[port]) for port in moved}
    for guide, out in outputs.items():
        at = 0
        for text in EXPECTED[guide]:
            wanted = DEMO_PORT.sub(lambda m: ports[m.group(1)], text)
            found = out.find(wanted, at)
            assert found >= 0, f"{guide}: {wanted!r} not found after position {at} in:\n{out}"
            at = found
    if "traceability" in outputs:
        back = {new: old for old, new in ports.items()}
        drawn = re.sub(
            r"127\.0\.0\.1:(\d+)",
            lambda m: f"127.0.0.1:{back[m.group(1)]}",
            outputs["traceability"],
        )
        assert drawn.startswith(documented_tree()), drawn
