"""The generated command-line page, and the hand-written configuration page it links to,
cover every option the parser has."""

from __future__ import annotations

from pathlib import Path

from node.cli import _parser
from node.cli_reference import render, serve_options

CONFIGURATION = Path(__file__).resolve().parents[2] / "docs/reference/configuration.md"


def test_every_command_has_its_section_with_its_help() -> None:
    page = render()
    for command in ("serve", "up", "setup", "check", "bench", "seed", "trace", "keys generate"):
        assert f"## idnode {command}\n" in page
    assert "usage: idnode serve" in page
    assert "--random-secrets" in page


def test_every_serve_option_is_in_the_table_with_its_environment_variable() -> None:
    page = render()
    options = serve_options()
    assert ("--prefix", "IDNODE_PREFIX") in options
    assert ("--min-free-disk-bytes", "IDNODE_MIN_FREE_DISK_BYTES") in options
    for option, env in options:
        assert f"| `{option}` | `{env}` |" in page


def test_the_configuration_page_lists_every_serve_option() -> None:
    text = CONFIGURATION.read_text("utf-8")
    missing = [
        (option, env)
        for option, env in serve_options(_parser())
        if f"`{option}" not in text or env not in text
    ]
    assert not missing, "add these to docs/reference/configuration.md"
