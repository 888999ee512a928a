"""resolver.trace: a product trace as a state machine over resolution outcomes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.errors import InvalidValue
from registry.identifier import Handle
from registry.relation import ALL_RELATIONS, Relation
from resolver.trace import (
    DEFAULT_DEPTH,
    MAX_DEPTH,
    MAX_NODES,
    Lookup,
    Status,
    Trace,
    summary,
)
from tests.registry.strategies import fast

CAR = "88.100.1/car"
PACK = "88.100.2/pack"
SEAT = "88.100.3/seat"
CELL1 = "88.101.1/cell-1"
CELL2 = "88.101.1/cell-2"
UNIT = "88.100.1/LU-1"
SECONDARY = "http://secondary:8001"
ENTERPRISE = "http://enterprise:8010"

Graph = dict[str, Lookup]


def record(*links: tuple[str, object], by: str = SECONDARY, cache: str | None = None) -> Lookup:
    """A found record: a product name, then each (relation, data) as a link value."""
    values: list[object] = [
        {"index": 1, "type": "PRODUCT_NAME", "data": {"format": "string", "value": "thing"}}
    ]
    for i, (relation, data) in enumerate(links):
        values.append({"index": 10 + i, "type": relation, "data": data})
    return Lookup.found(values, by, cache)


def build(entries: dict[str, Lookup]) -> Graph:
    return {Handle.parse(handle).key: lookup for handle, lookup in entries.items()}


def run(trace: Trace, known: Graph) -> list[list[str]]:
    """Answer every batch from ``known`` (a missing handle is not found); the batches."""
    batches: list[list[str]] = []
    for _ in range(MAX_DEPTH + 2):
        batch = trace.next_batch()
        if not batch:
            break
        batches.append([h.text for h in batch])
        for handle in batch:
            lookup = known.get(handle.key) or Lookup.not_found(
                f"Handle {handle.text} not found", SECONDARY, None
            )
            trace.resolved(handle, lookup)
    assert trace.done
    return batches


def traced(root: str, known: Graph, **options: Any) -> tuple[dict[str, Any], list[list[str]]]:
    trace = Trace(Handle.parse(root), **options)
    batches = run(trace, known)
    return trace.result(), batches


def target(node: dict[str, Any], *path: int) -> dict[str, Any]:
    """The node reached from ``node`` by following links at these positions."""
    for position in path:
        node = node["links"][position]["target"]
    return node


PRODUCT = build(
    {
        CAR: record(("COMPONENT", PACK), ("COMPONENT", SEAT), ("SHIPPED_IN", UNIT)),
        PACK: record(
            ("MADE_FROM", CELL1), ("MADE_FROM", CELL2), ("COMPONENT_OF", CAR), cache="MISS"
        ),
        SEAT: record(("COMPONENT_OF", CAR)),
        UNIT: record(),
        CELL1: record(("COMPONENT_OF", PACK), by=ENTERPRISE, cache="MISS"),
        CELL2: record(("COMPONENT_OF", PACK), by=ENTERPRISE, cache="STALE"),
    }
)


# --- the whole tree ---------------------------------------------------------------------


def test_a_product_is_traced_level_by_level_into_a_tree() -> None:
    result, batches = traced(CAR, PRODUCT)
    assert batches == [[CAR], [PACK, SEAT, UNIT], [CELL1, CELL2]]
    assert result["responseCode"] == 1 and result["handle"] == CAR
    assert result["depth"] == DEFAULT_DEPTH == 5
    assert result["relations"] == ["COMPONENT", "MADE_FROM", "COMPONENT_OF", "SHIPPED_IN"]
    assert result["complete"] is True
    assert result["resolved"] == 6
    assert result["unreachable"] == [] and result["notFollowed"] == []
    tree = result["tree"]
    assert tree["handle"] == CAR and tree["status"] == "found"
    assert tree["resolvedBy"] == SECONDARY and tree["cache"] is None
    assert tree["values"] == [{"index": 1, "type": "PRODUCT_NAME", "value": "thing"}]
    assert [(link["relation"], link["index"]) for link in tree["links"]] == [
        ("COMPONENT", 10),
        ("COMPONENT", 11),
        ("SHIPPED_IN", 12),
    ]
    pack = target(tree, 0)
    assert (pack["handle"], pack["status"], pack["cache"]) == (PACK, "found", "MISS")
    cell1, cell2 = target(pack, 0), target(pack, 1)
    assert (cell1["handle"], cell1["resolvedBy"], cell1["cache"]) == (CELL1, ENTERPRISE, "MISS")
    assert (cell2["handle"], cell2["resolvedBy"], cell2["cache"]) == (CELL2, ENTERPRISE, "STALE")
    assert target(tree, 2) == {
        "handle": UNIT,
        "status": "found",
        "resolvedBy": SECONDARY,
        "cache": None,
        "values": [{"index": 1, "type": "PRODUCT_NAME", "value": "thing"}],
        "links": [],
    }


# --- cycles -----------------------------------------------------------------------------


def test_back_links_are_seen_not_resolved_again() -> None:
    result, batches = traced(CAR, PRODUCT)
    asked = [handle for batch in batches for handle in batch]
    assert len(asked) == len(set(asked))  # every handle resolved once
    pack = target(result["tree"], 0)
    back = pack["links"][2]
    assert back["relation"] == "COMPONENT_OF"
    assert back["target"]["handle"] == CAR
    assert back["target"]["status"] == "seen"
    assert "not resolved again" in back["target"]["message"]
    assert "links" not in back["target"] and "resolvedBy" not in back["target"]
    assert target(pack, 0, 0)["status"] == "seen"  # cell -> pack


def test_a_self_link_is_seen() -> None:
    result, batches = traced(CAR, build({CAR: record(("COMPONENT", CAR))}))
    assert batches == [[CAR]]
    assert target(result["tree"], 0)["status"] == "seen"
    assert result["complete"] is True


def test_a_link_spelled_in_another_case_is_the_same_handle() -> None:
    known = build(
        {CAR: record(("COMPONENT", PACK)), PACK: record(("COMPONENT_OF", "88.100.1/CAR"))}
    )
    result, batches = traced(CAR, known)
    assert batches == [[CAR], [PACK]]
    back = target(result["tree"], 0, 0)
    assert (back["handle"], back["status"]) == ("88.100.1/CAR", "seen")  # as the link spells it


def test_a_long_cycle_ends() -> None:
    ring = [f"88.100.1/r{i}" for i in range(6)]
    known = build({h: record(("COMPONENT", ring[(i + 1) % 6])) for i, h in enumerate(ring)})
    result, batches = traced(ring[0], known, depth=MAX_DEPTH)
    assert batches == [[h] for h in ring]
    assert target(result["tree"], *[0] * 6)["status"] == "seen"
    assert result["complete"] is True


def test_a_diamond_resolves_the_shared_part_once_under_its_first_parent() -> None:
    known = build(
        {
            CAR: record(("COMPONENT", PACK), ("COMPONENT", SEAT)),
            PACK: record(("COMPONENT", CELL1)),
            SEAT: record(("COMPONENT", CELL1)),
            CELL1: record(by=ENTERPRISE),
        }
    )
    result, batches = traced(CAR, known)
    assert batches == [[CAR], [PACK, SEAT], [CELL1]]
    assert target(result["tree"], 0, 0)["status"] == "found"
    assert target(result["tree"], 1, 0)["status"] == "seen"


def test_the_same_target_twice_in_one_record_is_resolved_once() -> None:
    known = build({PACK: record(("MADE_FROM", CELL1), ("MADE_FROM", CELL1.upper()))})
    result, batches = traced(PACK, known)
    assert batches == [[PACK], [CELL1]]
    assert [target(result["tree"], i)["status"] for i in (0, 1)] == ["not_found", "seen"]


# --- depth bound ------------------------------------------------------------------------

CHAIN = [f"88.100.1/c{i}" for i in range(5)]
CHAIN_GRAPH = build({h: record(("COMPONENT", CHAIN[i + 1])) for i, h in enumerate(CHAIN[:-1])})


def test_the_depth_bound_truncates_the_nodes_at_the_bound() -> None:
    result, batches = traced(CHAIN[0], CHAIN_GRAPH, depth=2)
    assert batches == [[CHAIN[0]], [CHAIN[1]], [CHAIN[2]]]
    at_bound = target(result["tree"], 0, 0)
    assert at_bound["status"] == "found" and at_bound["truncated"] is True
    beyond = target(at_bound, 0)
    assert beyond == {
        "handle": CHAIN[3],
        "status": "not_followed",
        "message": "beyond the depth bound (2)",
    }
    assert "truncated" not in result["tree"] and "truncated" not in target(result["tree"], 0)
    assert result["complete"] is False
    assert result["notFollowed"] == [CHAIN[3]]
    assert result["resolved"] == 3


def test_depth_zero_resolves_the_root_only() -> None:
    result, batches = traced(CHAIN[0], CHAIN_GRAPH, depth=0)
    assert batches == [[CHAIN[0]]]
    assert result["tree"]["truncated"] is True
    assert target(result["tree"], 0)["status"] == "not_followed"


def test_a_node_at_the_bound_without_links_is_not_truncated() -> None:
    result, _ = traced(CHAIN[0], CHAIN_GRAPH, depth=4)
    assert result["complete"] is True
    assert "truncated" not in target(result["tree"], 0, 0, 0, 0)


def test_a_back_link_at_the_bound_is_seen_and_truncates_nothing() -> None:
    result, _ = traced(CAR, PRODUCT, depth=2)
    cell = target(result["tree"], 0, 0)
    assert target(cell, 0)["status"] == "seen"
    assert "truncated" not in cell
    assert result["complete"] is True


@pytest.mark.parametrize("depth", [-1, MAX_DEPTH + 1, 100])
def test_a_depth_out_of_range_is_refused(depth: int) -> None:
    with pytest.raises(InvalidValue) as refused:
        Trace(Handle.parse(CAR), depth=depth)
    assert refused.value.response_code == 202
    assert f"between 0 and {MAX_DEPTH}" in refused.value.message


# --- node budget ------------------------------------------------------------------------


def test_the_node_budget_bounds_the_resolutions_of_a_wide_record() -> None:
    parts = [f"88.100.2/p{i}" for i in range(10)]
    known = build({CAR: record(*[("COMPONENT", p) for p in parts])})
    result, batches = traced(CAR, known, max_nodes=4)
    assert batches == [[CAR], parts[:3]]
    assert result["resolved"] == 4
    statuses = [link["target"]["status"] for link in result["tree"]["links"]]
    assert statuses == ["not_found"] * 3 + ["not_followed"] * 7
    assert "bound of 4 resolved handles" in target(result["tree"], 9)["message"]
    assert result["tree"]["truncated"] is True
    assert result["notFollowed"] == parts[3:]
    assert result["complete"] is False


def test_the_default_budget_holds_for_a_huge_fan_out() -> None:
    parts = [f"88.100.2/p{i}" for i in range(MAX_NODES + 50)]
    known = build({CAR: record(*[("COMPONENT", p) for p in parts])})
    result, batches = traced(CAR, known)
    assert sum(len(b) for b in batches) == MAX_NODES == result["resolved"]


def test_a_trace_resolves_at_least_its_root() -> None:
    with pytest.raises(ValueError, match="at least its root"):
        Trace(Handle.parse(CAR), max_nodes=0)


# --- invalid links ----------------------------------------------------------------------


def test_an_invalid_link_is_reported_and_never_resolved() -> None:
    known = build(
        {
            CAR: record(
                ("COMPONENT", "not a handle"),
                ("COMPONENT", {"format": "hex", "value": "0a"}),
                ("COMPONENT", PACK),
            )
        }
    )
    result, batches = traced(CAR, known)
    assert batches == [[CAR], [PACK]]
    first, second = target(result["tree"], 0), target(result["tree"], 1)
    assert first["handle"] == "not a handle" and first["status"] == "invalid"
    assert "expected prefix/suffix" in first["message"]
    assert second["status"] == "invalid" and "format string" in second["message"]
    assert result["complete"] is True  # the record says so: an answer, not a gap


# --- relation filter --------------------------------------------------------------------


def test_only_the_chosen_relations_are_followed() -> None:
    chosen = frozenset({Relation.COMPONENT, Relation.MADE_FROM})
    result, batches = traced(CAR, PRODUCT, relations=chosen)
    assert batches == [[CAR], [PACK, SEAT], [CELL1, CELL2]]
    assert result["relations"] == ["COMPONENT", "MADE_FROM"]
    assert [link["relation"] for link in result["tree"]["links"]] == ["COMPONENT", "COMPONENT"]
    assert target(result["tree"], 0, 0)["links"] == []  # COMPONENT_OF not followed
    assert all(v["type"] == "PRODUCT_NAME" for v in target(result["tree"], 0)["values"])


def test_upward_links_trace_where_a_part_went() -> None:
    result, batches = traced(CELL1, PRODUCT, relations=frozenset({Relation.COMPONENT_OF}))
    assert batches == [[CELL1], [PACK], [CAR]]
    assert target(result["tree"], 0, 0)["handle"] == CAR


# --- outcomes ---------------------------------------------------------------------------


def test_an_unreachable_branch_is_marked_and_the_rest_returned() -> None:
    known = dict(PRODUCT)
    known[Handle.parse(CELL1).key] = Lookup.unreachable("node http://enterprise:8010 is down")
    result, batches = traced(CAR, known)
    assert batches == [[CAR], [PACK, SEAT, UNIT], [CELL1, CELL2]]
    cell1 = target(result["tree"], 0, 0)
    assert cell1 == {
        "handle": CELL1,
        "status": "unreachable",
        "message": "node http://enterprise:8010 is down",
    }
    assert target(result["tree"], 0, 1)["status"] == "found"
    assert result["unreachable"] == [CELL1]
    assert result["complete"] is False


def test_an_unreachable_part_hides_its_subtree_only() -> None:
    known = dict(PRODUCT)
    known[Handle.parse(PACK).key] = Lookup.unreachable("timed out")
    result, batches = traced(CAR, known)
    assert batches == [[CAR], [PACK, SEAT, UNIT]]  # the cells are behind the pack
    assert result["unreachable"] == [PACK]
    assert target(result["tree"], 1)["status"] == "found"


def test_a_missing_part_is_not_found_with_where_it_was_asked() -> None:
    known = build({CAR: record(("COMPONENT", PACK))})
    known[Handle.parse(PACK).key] = Lookup.not_found(
        "Handle 88.100.2/pack not found", SECONDARY, "HIT"
    )
    result, _ = traced(CAR, known)
    assert target(result["tree"], 0) == {
        "handle": PACK,
        "status": "not_found",
        "resolvedBy": SECONDARY,
        "cache": "HIT",
        "message": "Handle 88.100.2/pack not found",
    }
    assert result["complete"] is True


def test_a_handle_its_node_calls_invalid_is_invalid() -> None:
    known = build({CAR: record(("COMPONENT", PACK))})
    known[Handle.parse(PACK).key] = Lookup.invalid("Invalid handle")
    result, _ = traced(CAR, known)
    assert target(result["tree"], 0) == {
        "handle": PACK,
        "status": "invalid",
        "message": "Invalid handle",
    }


# --- protocol ---------------------------------------------------------------------------


def test_an_answer_for_a_handle_not_asked_is_refused() -> None:
    trace = Trace(Handle.parse(CAR))
    with pytest.raises(ValueError, match="not awaiting"):
        trace.resolved(Handle.parse(PACK), record())
    (root,) = trace.next_batch()
    trace.resolved(root, record())
    with pytest.raises(ValueError, match="not awaiting"):  # nor twice
        trace.resolved(root, record())


def test_the_result_waits_for_every_answer() -> None:
    trace = Trace(Handle.parse(CAR))
    with pytest.raises(ValueError, match="not finished"):
        trace.result()
    trace.next_batch()
    assert not trace.done
    with pytest.raises(ValueError, match="not finished"):
        trace.result()


def test_docstring_example() -> None:
    trace = Trace(Handle.parse("88.100.1/car"), depth=1)
    assert trace.next_batch() == [Handle.parse("88.100.1/car")]
    link = {"index": 10, "type": "COMPONENT", "data": "88.100.2/pack"}
    trace.resolved(Handle.parse("88.100.1/car"), Lookup.found([link], "http://n", None))
    assert trace.next_batch() == [Handle.parse("88.100.2/pack")]


def test_the_default_relations_are_all_of_them() -> None:
    assert Trace(Handle.parse(CAR)).relations == ALL_RELATIONS


# --- what a trace shows of a record's values --------------------------------------------


def test_the_summary_leaves_out_administrators_and_links() -> None:
    values = [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://x.cn"}},
        {"index": 2, "type": "CERT", "data": {"format": "base64", "value": "AA=="}},
        {"index": 3, "type": "NOTE", "data": "bare string"},
        {"index": 10, "type": "component", "data": PACK},
        {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": {"handle": "x"}}},
        "junk",
        {"index": 4},
    ]
    assert summary(values) == [
        {"index": 1, "type": "URL", "value": "https://x.cn"},
        {"index": 2, "type": "CERT", "value": "AA==", "format": "base64"},
        {"index": 3, "type": "NOTE", "value": "bare string"},
    ]


# --- properties -------------------------------------------------------------------------

NAMES = [f"88.100.{i % 3 + 1}/n{i}" for i in range(8)]


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    """Random link graphs over a few handles: cycles, self-links, shared parts, misses."""
    known: Graph = {}
    for name in NAMES:
        outcome = draw(st.sampled_from(["found", "found", "found", "missing", "down"]))
        if outcome == "missing":
            continue
        if outcome == "down":
            known[Handle.parse(name).key] = Lookup.unreachable("down")
            continue
        links = draw(
            st.lists(
                st.tuples(st.sampled_from(list(Relation)), st.sampled_from([*NAMES, "bad"])),
                max_size=5,
            )
        )
        known[Handle.parse(name).key] = record(*[(r.value, t) for r, t in links])
    return known


def walk_tree(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node]
    for link in node.get("links", []):
        found.extend(walk_tree(link["target"]))
    return found


@fast
@given(graphs(), st.integers(0, MAX_DEPTH), st.integers(1, 10))
def test_any_graph_ends_with_every_handle_resolved_at_most_once(
    known: Graph, depth: int, max_nodes: int
) -> None:
    result, batches = traced(NAMES[0], known, depth=depth, max_nodes=max_nodes)
    asked = [Handle.parse(h).key for batch in batches for h in batch]
    assert len(asked) == len(set(asked)) == result["resolved"] <= max_nodes
    assert len(batches) <= depth + 1
    nodes = walk_tree(result["tree"])
    answered = {Status.FOUND, Status.NOT_FOUND, Status.UNREACHABLE}
    resolved = [n for n in nodes if n["status"] in answered]
    assert len(resolved) == len(asked)  # each resolved handle appears once in the tree
    unreachable = [n["handle"] for n in nodes if n["status"] == "unreachable"]
    assert sorted(result["unreachable"]) == sorted(unreachable)
    not_followed = [n for n in nodes if n["status"] == "not_followed"]
    assert result["complete"] == (not unreachable and not not_followed)
