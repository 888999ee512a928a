"""The command-line reference page, rendered from the ``idnode`` argument parser.

The documentation site builds ``reference/cli.md`` from this at build time (the MkDocs
hook ``docs/hooks/cli_reference.py``), so the page can never drift from the parser: it
holds each command's ``--help`` text and, for ``idnode serve``, a table of every option
with the ``IDNODE_*`` environment variable that sets it.

>>> page = render()
>>> "## idnode serve" in page and "`IDNODE_PREFIX`" in page
True
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

from node.cli import _parser
from node.config import ENV_PREFIX

# argparse wraps help to the terminal's width; the page should not depend on the
# terminal of whoever builds the site.
_WIDTH = "96"


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The whole page, as Markdown."""
    parser = parser or _parser()
    lines = [
        "# Command line",
        "",
        "Generated from the `idnode` argument parser when the site is built; "
        "`idnode <command> --help` prints the same.",
        "",
        "| command | what it does |",
        "| --- | --- |",
    ]
    commands = list(_commands(parser))
    for name, _sub, help_text in commands:
        lines.append(f"| [`{name}`](#{_anchor(name)}) | {help_text} |")
    lines.append("")
    lines += _help_block(parser)
    for name, sub, _help in commands:
        lines += [f"## {name}", ""]
        if name == "idnode serve":
            lines += _serve_table(sub)
        lines += _help_block(sub)
    return "\n".join(lines) + "\n"


def serve_options(parser: argparse.ArgumentParser | None = None) -> list[tuple[str, str]]:
    """Every ``idnode serve`` option with the environment variable that also sets it."""
    serve = dict((n, s) for n, s, _ in _commands(parser or _parser()))["idnode serve"]
    return [
        (action.option_strings[-1], ENV_PREFIX + action.dest.upper())
        for action in serve._actions
        if action.option_strings and action.dest != "help"
    ]


def _commands(
    parser: argparse.ArgumentParser, prefix: str = "idnode"
) -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, sub in action.choices.items():
            full = f"{prefix} {name}"
            yield full, sub, helps.get(name, "")
            yield from _commands(sub, full)


def _serve_table(serve: argparse.ArgumentParser) -> list[str]:
    helps = {a.option_strings[-1]: a.help or "" for a in serve._actions if a.option_strings}
    lines = [
        "Every option can also be set in the environment (the option wins); see "
        "[Configuration](configuration.md) for the defaults and what each one does.",
        "",
        "| option | environment | meaning |",
        "| --- | --- | --- |",
    ]
    for option, env in serve_options():
        meaning = helps[option].replace("|", "\\|")
        lines.append(f"| `{option}` | `{env}` | {meaning} |")
    return [*lines, ""]


def _help_block(parser: argparse.ArgumentParser) -> list[str]:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = _WIDTH
    try:
        text = parser.format_help()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return ["```text", text.rstrip(), "```", ""]


def _anchor(name: str) -> str:
    return name.replace(" ", "-")
