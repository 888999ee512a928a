"""Drawing a trace answer, without I/O: the answers are built by the real trace state
machine (resolver.trace.Trace) fed with made-up lookups, so they have the shape the
node sends."""

from __future__ import annotations

import textwrap
from typing import Any

from node.trace_tree import draw
from registry.identifier import Handle
from resolver.trace import Lookup, Trace

AUTO = "http://127.0.0.1:8001"
ENTERPRISE = "http://127.0.0.1:8010"


def link(index: int, relation: str, target: str) -> dict[str, Any]:
    return {"index": index, "type": relation, "data": target}


def traced(root: str, lookups: dict[str, Lookup], depth: int = 5) -> dict[str, Any]:
    """Run a trace of ``root``, answering each handle from ``lookups`` (by text)."""
    trace = Trace(Handle.parse(root), depth=depth)
    while batch := trace.next_batch():
        for handle in batch:
            trace.resolved(handle, lookups[handle.text])
    return trace.result()


CAR = "88.100.1/car"
PACK = "88.100.2/pack"
CELL = "88.101.1/cell"
UNIT = "88.100.1/unit"


def car_lookups() -> dict[str, Lookup]:
    return {
        CAR: Lookup.found(
            [link(10, "COMPONENT", PACK), link(11, "SHIPPED_IN", UNIT)], AUTO, "MISS"
        ),
        PACK: Lookup.found(
            [link(10, "MADE_FROM", CELL), link(11, "COMPONENT_OF", CAR)], AUTO, None
        ),
        CELL: Lookup.found([link(10, "COMPONENT_OF", PACK)], ENTERPRISE, "HIT"),
        UNIT: Lookup.found([], AUTO, "MISS"),
    }


def drawing(text: str) -> list[str]:
    return textwrap.dedent(text).strip("\n").splitlines()


def test_each_link_under_its_parent_with_who_resolved_it_and_cycles_as_back_references() -> None:
    assert draw(traced(CAR, car_lookups())) == drawing(
        """
        88.100.1/car                          found  http://127.0.0.1:8001  MISS
        ├─ COMPONENT   88.100.2/pack          found  http://127.0.0.1:8001  store
        │  ├─ MADE_FROM     88.101.1/cell     found  http://127.0.0.1:8010  HIT
        │  │  └─ COMPONENT_OF  88.100.2/pack  seen  (already above: not resolved again)
        │  └─ COMPONENT_OF  88.100.1/car      seen  (already above: not resolved again)
        └─ SHIPPED_IN  88.100.1/unit          found  http://127.0.0.1:8001  MISS
        4 handles resolved; complete
        """
    )


def test_not_found_unreachable_and_invalid_nodes_say_why() -> None:
    lookups = {
        CAR: Lookup.found(
            [
                link(10, "COMPONENT", PACK),
                link(11, "COMPONENT", CELL),
                link(12, "SHIPPED_IN", "bad"),
            ],
            AUTO,
            "MISS",
        ),
        PACK: Lookup.not_found(f"Handle {PACK} not found", AUTO, "MISS"),
        CELL: Lookup.unreachable(f"node {ENTERPRISE} is unreachable"),
    }
    assert draw(traced(CAR, lookups)) == drawing(
        """
        88.100.1/car                  found  http://127.0.0.1:8001  MISS
        ├─ COMPONENT   88.100.2/pack  not_found  http://127.0.0.1:8001  MISS
        ├─ COMPONENT   88.101.1/cell  unreachable  (node http://127.0.0.1:8010 is unreachable)
        └─ SHIPPED_IN  bad            invalid  (Invalid handle 'bad': expected prefix/suffix)
        3 handles resolved; incomplete (unreachable: 88.101.1/cell)
        """
    )


def test_links_beyond_the_depth_are_not_followed_and_back_links_cost_no_depth() -> None:
    assert draw(traced(CAR, car_lookups(), depth=1)) == drawing(
        """
        88.100.1/car                       found  http://127.0.0.1:8001  MISS
        ├─ COMPONENT   88.100.2/pack       found  http://127.0.0.1:8001  store
        │  ├─ MADE_FROM     88.101.1/cell  not_followed  (beyond the depth bound (1))
        │  └─ COMPONENT_OF  88.100.1/car   seen  (already above: not resolved again)
        └─ SHIPPED_IN  88.100.1/unit       found  http://127.0.0.1:8001  MISS
        3 handles resolved; incomplete (not followed: 88.101.1/cell)
        """
    )


def test_the_root_alone() -> None:
    assert draw(traced(CAR, car_lookups(), depth=0)) == drawing(
        """
        88.100.1/car                  found  http://127.0.0.1:8001  MISS
        ├─ COMPONENT   88.100.2/pack  not_followed  (beyond the depth bound (0))
        └─ SHIPPED_IN  88.100.1/unit  not_followed  (beyond the depth bound (0))
        1 handle resolved; incomplete (not followed: 88.100.2/pack, 88.100.1/unit)
        """
    )


def test_a_malformed_answer_is_drawn_with_question_marks() -> None:
    answer: dict[str, Any] = {
        "tree": {"handle": 7, "links": [{"relation": "COMPONENT", "target": None}, "x"]}
    }
    assert draw(answer) == [
        "?                ?",
        "└─ COMPONENT  ?  ?",
        "? handles resolved; incomplete",
    ]
