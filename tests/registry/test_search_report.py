"""Merging a search across nodes (pure): which nodes to ask, timeouts, the report."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.delegation import Referral
from registry.identifier import Prefix
from registry.search_report import (
    MAX_NODES_BELOW,
    SearchReport,
    child_timeout,
    children_by_node,
)
from tests.registry.strategies import fast

TOP = "http://top:8000"
A = "http://a:8001"
B = "http://b:8002"
E = "http://e:8010"


def test_each_node_is_asked_once_with_the_prefixes_it_answers_for() -> None:
    referrals = [
        Referral(Prefix("88.100"), A),
        Referral(Prefix("88.100.1"), A),
        Referral(Prefix("88.101"), B),
        Referral(Prefix("88.100.2"), A),
    ]
    assert children_by_node(referrals) == {A: ["88.100", "88.100.1", "88.100.2"], B: ["88.101"]}


def test_children_get_a_shorter_timeout_until_too_little_is_left() -> None:
    assert child_timeout(3.0) == 3.0 * 0.7
    assert child_timeout(0.2) is None


def test_answers_are_merged_in_order_without_duplicates() -> None:
    report = SearchReport(TOP, limit=10)
    report.found_here(["88/a"], ["88"])
    child = SearchReport(A, limit=10)
    child.found_here(["88.100.1/x", "88.100.1/y"], ["88.100"])
    child.answered(E, ["88.100.3"], {"handles": ["88.100.3/z"], "nodes": []})
    report.answered(A, ["88.100"], child.to_json())
    report.answered(B, ["88.101"], {"handles": ["88.101.1/q", "88.101.2/X"], "nodes": []})
    report.answered(A, ["88.100"], {"handles": ["88.100.1/X"], "nodes": []})  # a repeat
    body = report.to_json()
    assert body["handles"] == [
        "88/a",
        "88.100.1/x",
        "88.100.1/y",
        "88.100.3/z",
        "88.101.1/q",
        "88.101.2/X",
    ]
    assert body["complete"] is True and body["unanswered"] == [] and not body["truncated"]
    assert [(n["node"], n["status"], n["found"]) for n in body["nodes"]] == [
        (TOP, "ok", 1),
        (A, "ok", 2),
        (E, "ok", 1),
        (B, "ok", 2),
        (A, "ok", 1),
    ]


def test_nodes_that_did_not_answer_are_named_and_make_it_incomplete() -> None:
    report = SearchReport(TOP, limit=10)
    report.found_here(["88/a"])
    report.failed(A, ["88.100"], "timeout", "node http://a:8001 did not answer within 2.1s")
    below = SearchReport(B, limit=10)
    below.found_here(["88.101.2/k"])
    below.failed(E, ["88.101.1"], "unreachable", "connection refused")
    report.answered(B, ["88.101"], below.to_json())
    body = report.to_json()
    assert body["complete"] is False
    assert body["unanswered"] == [A, E]
    assert body["handles"] == ["88/a", "88.101.2/k"]
    timeout = next(n for n in body["nodes"] if n["node"] == A)
    assert timeout["status"] == "timeout" and "2.1s" in timeout["message"]


def test_a_malformed_answer_is_an_error_not_a_crash() -> None:
    report = SearchReport(TOP, limit=10)
    report.answered(A, ["88.100"], ["not", "a", "report"])
    report.answered(B, ["88.101"], {"handles": "nope"})
    assert [n["status"] for n in report.to_json()["nodes"]] == ["error", "error"]


def test_the_limit_caps_the_merged_list_and_says_so() -> None:
    report = SearchReport(TOP, limit=3)
    report.found_here(["88/a", "88/b"])
    report.answered(A, ["88.100"], {"handles": ["88.100/c", "88.100/d"], "nodes": []})
    body = report.to_json()
    assert body["handles"] == ["88/a", "88/b", "88.100/c"] and body["truncated"] is True
    child = SearchReport(A, limit=1)
    child.found_here(["x/1", "x/2"])
    parent = SearchReport(TOP, limit=10)
    parent.answered(A, [], child.to_json())
    assert parent.to_json()["truncated"] is True


# --- a child's answer is read defensively (it comes from another node) ----------------


def test_handles_under_other_prefixes_are_dropped_and_the_child_is_partial() -> None:
    report = SearchReport(TOP, limit=10)
    injected = {
        "handles": ["88.100.1/ok", "88.101.1/injected", "88/top-level", "88.1000/near-miss"],
        "nodes": [{"node": A, "prefixes": ["88.100"], "status": "ok", "found": 1}],
    }
    report.answered(A, ["88.100"], injected)
    body = report.to_json()
    assert body["handles"] == ["88.100.1/ok"]
    (node,) = body["nodes"]
    assert (node["node"], node["status"], node["found"]) == (A, "partial", 1)
    assert node["message"] == (
        f"node {A} sent 0 malformed entries and 3 outside its prefixes (88.100); they were dropped"
    )
    assert body["complete"] is False and body["unanswered"] == []  # it did answer


@pytest.mark.parametrize(
    "field",
    [
        {"found": "many"},
        {"found": -1},
        {"found": True},
        {"prefixes": "88.100.3"},
        {"prefixes": []},
        {"prefixes": [7]},
        {"prefixes": ["not a prefix"]},
        {"status": "splendid"},
        {"status": ["ok"]},
        {"node": 42},
        {"node": "ftp://e"},
        {"node": "http://e:8010/?q=" + "x" * 3000},
    ],
)
def test_a_malformed_node_below_a_child_is_dropped_not_an_error(field: dict[str, Any]) -> None:
    entry = {"node": E, "prefixes": ["88.100.3"], "status": "ok", "found": 1, **field}
    report = SearchReport(TOP, limit=10)
    report.answered(A, ["88.100"], {"handles": ["88.100.3/z"], "nodes": [entry]})
    body = report.to_json()
    assert body["handles"] == ["88.100.3/z"]
    assert [(n["node"], n["status"]) for n in body["nodes"]] == [(A, "partial")]
    assert "1 malformed entries" in body["nodes"][0]["message"]


def test_a_node_below_a_child_must_hold_prefixes_under_the_childs() -> None:
    claimed = {"node": E, "prefixes": ["88.101"], "status": "ok", "found": 0}
    report = SearchReport(TOP, limit=10)
    report.answered(A, ["88.100"], {"handles": [], "nodes": [claimed]})
    assert [(n["node"], n["status"]) for n in report.to_json()["nodes"]] == [(A, "partial")]


def test_what_a_child_says_about_nodes_below_it_is_put_in_this_nodes_words() -> None:
    below = {
        "node": E,
        "prefixes": ["88.100.3"],
        "status": "unreachable",
        "found": 9,
        "message": "<script>alert(1)</script> call +86 ...",
    }
    report = SearchReport(TOP, limit=10)
    report.answered(A, ["88.100"], {"handles": [], "nodes": [below]})
    reported = report.to_json()["nodes"][1]
    assert reported == {
        "node": E,
        "prefixes": ["88.100.3"],
        "status": "unreachable",
        "found": 0,
        "message": f"node {A} reports that this node could not be reached",
    }


def test_a_child_reports_a_bounded_number_of_nodes_below_it() -> None:
    many = [
        {"node": f"http://e{n}:8010", "prefixes": [f"88.100.{n}"], "status": "ok", "found": 0}
        for n in range(MAX_NODES_BELOW + 5)
    ]
    report = SearchReport(TOP, limit=10)
    report.answered(A, ["88.100"], {"handles": [], "nodes": many})
    nodes = report.to_json()["nodes"]
    assert len(nodes) == 1 + MAX_NODES_BELOW
    assert nodes[0]["status"] == "partial" and "5 malformed" in nodes[0]["message"]


def test_a_child_cannot_claim_to_have_found_more_than_it_sent() -> None:
    own = {"node": A, "prefixes": ["88.100"], "status": "ok", "found": 10**9}
    report = SearchReport(TOP, limit=10)
    report.answered(A, ["88.100"], {"handles": ["88.100/a"], "nodes": [own], "truncated": "yes"})
    body = report.to_json()
    assert body["nodes"][0]["found"] == 1 and body["truncated"] is False


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "handles": st.lists(
            st.sampled_from(["88.100/a", "88.101/b", "x", "88.100.1/c"]) | JSON, max_size=6
        )
        | JSON,
        "nodes": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "node": st.sampled_from([A, E, "nope"]) | JSON,
                    "prefixes": st.lists(st.sampled_from(["88.100.1", "88.101"]) | JSON) | JSON,
                    "status": st.sampled_from(["ok", "timeout", "?"]) | JSON,
                    "found": st.integers() | JSON,
                    "message": JSON,
                },
            )
            | JSON,
            max_size=4,
        )
        | JSON,
        "truncated": JSON,
    },
)


@fast
@given(answer=FIELDS | JSON)
def test_no_answer_makes_merging_fail(answer: object) -> None:
    report = SearchReport(TOP, limit=5)
    report.answered(A, ["88.100"], answer)
    body = report.to_json()
    assert body["nodes"][0]["node"] == A
    assert all(h.startswith("88.100") for h in body["handles"])
    assert len(body["handles"]) <= 5
