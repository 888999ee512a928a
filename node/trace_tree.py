"""The answer of ``GET /api/trace/{handle}`` drawn as a text tree (``idnode trace``).

No I/O: :func:`draw` turns the JSON answer (see :mod:`resolver.trace`) into lines. Each
line is one node of the tree, its link's relation, the handle as the link spells it,
its status and where it was resolved (and how: ``HIT``, ``MISS`` or ``STALE`` through a
cache, ``store`` when a node answered from its own store)::

    88.100.1/JM-E5-2026-000123                        found  http://127.0.0.1:8001  MISS
    ├─ COMPONENT   88.100.2/HB75-2026-000123          found  http://127.0.0.1:8001  MISS
    │  ├─ MADE_FROM     88.101.1/LFP280-2026-000451   found  http://127.0.0.1:8010  MISS
    │  │  └─ COMPONENT_OF  88.100.2/HB75-2026-000123  seen  (already above: not resolved again)
    │  └─ COMPONENT_OF  88.100.1/JM-E5-2026-000123    seen  (already above: not resolved again)
    └─ SHIPPED_IN  88.100.1/LU-2026-0042              found  http://127.0.0.1:8001  MISS
    4 handles resolved; complete

Siblings' relations are padded alike and the status column is aligned across the tree.
A ``seen`` node is a back-reference (a cycle, a back-link or a shared part): the answer
holds no links under it, so the drawing ends there too. Nodes that are not ``found``
carry their message (why it is unreachable, invalid or not followed). The last line sums
the trace up: how many handles it resolved, and what is missing when it is not complete.
The answer comes from another process: a field that is missing or of the wrong type is
drawn as ``?`` rather than failing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

# How the cache column reads when a node answered from its own store (cache null).
FROM_STORE = "store"


def draw(answer: Mapping[str, Any]) -> list[str]:
    """The tree of a trace answer, one line per node, then a summary line.

    >>> answer = {"resolved": 1, "complete": True, "unreachable": [], "notFollowed": [],
    ...           "tree": {"handle": "88.100.1/car", "status": "found",
    ...                    "resolvedBy": "http://127.0.0.1:8001", "cache": None, "links": []}}
    >>> draw(answer)
    ['88.100.1/car  found  http://127.0.0.1:8001  store', '1 handle resolved; complete']
    """
    tree = answer.get("tree")
    rows = list(_rows(tree if isinstance(tree, Mapping) else {}, "", ""))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)}  {detail}".rstrip() for label, detail in rows]
    return [*lines, _summary(answer)]


def _rows(node: Mapping[str, Any], label: str, indent: str) -> Iterator[tuple[str, str]]:
    """(the tree part of a line, its status part) for ``node`` and everything under it;
    ``label`` is what precedes the handle, ``indent`` what precedes its children."""
    yield label + _text(node.get("handle")), _detail(node)
    links = node.get("links")
    links = [link for link in links if isinstance(link, Mapping)] if isinstance(links, list) else []
    # Siblings' relations padded alike, so that their handles line up.
    width = max((len(_text(link.get("relation"))) for link in links), default=0)
    for position, link in enumerate(links):
        last = position == len(links) - 1
        branch, below = ("└─ ", "   ") if last else ("├─ ", "│  ")
        target = link.get("target")
        yield from _rows(
            target if isinstance(target, Mapping) else {},
            f"{indent}{branch}{_text(link.get('relation')).ljust(width)}  ",
            indent + below,
        )


def _detail(node: Mapping[str, Any]) -> str:
    status = _text(node.get("status"))
    if status in ("found", "not_found"):
        cache = node.get("cache")
        where = f"{_text(node.get('resolvedBy'))}  {FROM_STORE if cache is None else _text(cache)}"
        return f"{status}  {where}"
    if status == "seen":
        return "seen  (already above: not resolved again)"
    message = node.get("message")
    return f"{status}  ({_text(message)})" if message is not None else status


def _summary(answer: Mapping[str, Any]) -> str:
    resolved = answer.get("resolved")
    count = resolved if isinstance(resolved, int) else "?"
    text = f"{count} handle{'' if count == 1 else 's'} resolved"
    if answer.get("complete") is True:
        return f"{text}; complete"
    gaps = []
    for field, what in (("unreachable", "unreachable"), ("notFollowed", "not followed")):
        handles = answer.get(field)
        if isinstance(handles, list) and handles:
            gaps.append(f"{what}: {', '.join(map(_text, handles))}")
    return f"{text}; incomplete" + (f" ({'; '.join(gaps)})" if gaps else "")


def _text(value: object) -> str:
    return value if isinstance(value, str) else "?"
