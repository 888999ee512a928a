"""Where a node spends its time under load: py-spy's folded stacks, summarised. Pure.

``py-spy record --format raw`` writes one line per distinct stack: its frames from the
outermost to the innermost, separated by ``;``, then a space and how many samples found
the process in that stack. A frame reads ``function (path/to/file.py:line)``; lines of
one function are counted together here.

* own time: samples in which the function was the innermost frame (where the CPU was);
* total time: samples in which it was anywhere on the stack (it or what it called).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_LINE = re.compile(r":\d+\)$")


@dataclass(frozen=True, slots=True)
class HotFunction:
    name: str  # "function (file)"
    own: float  # share of all samples
    total: float


def _frame(raw: str) -> str:
    """
    >>> _frame("resolve (node/handles.py:95)")
    'resolve (node/handles.py)'
    """
    return _LINE.sub(")", raw.strip())


def hot_functions(folded: str, count: int = 10) -> list[HotFunction]:
    """The ``count`` functions with the most own time, most first.

    >>> stacks = "main (a.py:1);work (a.py:5);parse (b.py:9) 3\\nmain (a.py:1);work (a.py:6) 1\\n"
    >>> [(f.name, f.own, f.total) for f in hot_functions(stacks, 2)]
    [('parse (b.py)', 0.75, 0.75), ('work (a.py)', 0.25, 1.0)]
    """
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in folded.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        n = int(number)
        frames = [_frame(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        for name in set(frames):  # a recursive function counts once per sample
            total[name] += n
    if not samples:
        return []
    return [
        HotFunction(name, n / samples, total[name] / samples) for name, n in own.most_common(count)
    ]


def render_profile(functions: Sequence[HotFunction], what: str) -> str:
    """A Markdown section listing the hot functions."""
    lines = [
        f"# Profile: {what}",
        "",
        "py-spy samples of the thread holding the GIL; own = innermost frame, total = "
        "anywhere on the stack.",
        "",
        "| # | function | own | total |",
        "| --- | --- | --- | --- |",
    ]
    for rank, f in enumerate(functions, start=1):
        name = f.name.replace("|", "\\|")
        lines.append(f"| {rank} | `{name}` | {f.own:.1%} | {f.total:.1%} |")
    return "\n".join(lines) + "\n"
