"""MkDocs hook: adds reference/cli.md, rendered from the argument parser at build time."""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

from node.cli_reference import render


def on_files(files: Files, config: Any, **_: Any) -> Files:
    files.append(File.generated(config, "reference/cli.md", content=render()))
    return files
