"""The examples in the docstrings of the project's own modules hold: each module's
doctests run here (an example that went stale is a failing test, not a misleading
docstring)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("registry", "node", "resolver")


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        path = importlib.import_module(package).__path__
        for info in pkgutil.walk_packages(path, f"{package}."):
            if not info.name.endswith("__main__"):  # running it would start a node
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_the_docstring_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
