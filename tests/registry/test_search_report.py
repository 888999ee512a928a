"""Merging a search across nodes (pure): which nodes to ask, timeouts, the report."""

from __future__ import annotations

from registry.delegation import Referral
from registry.identifier import Prefix
from registry.search_report import SearchReport, child_timeout, children_by_node

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
    report.answered(B, ["88.101"], {"handles": ["88.101.1/q", "88.100.1/X"], "nodes": []})
    body = report.to_json()
    assert body["handles"] == ["88/a", "88.100.1/x", "88.100.1/y", "88.100.3/z", "88.101.1/q"]
    assert body["complete"] is True and body["unanswered"] == [] and not body["truncated"]
    assert [(n["node"], n["status"], n["found"]) for n in body["nodes"]] == [
        (TOP, "ok", 1),
        (A, "ok", 2),
        (E, "ok", 1),
        (B, "ok", 2),
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
