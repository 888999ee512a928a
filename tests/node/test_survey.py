"""The survey behind the status page: which nodes there are and what a probe says (pure)."""

from __future__ import annotations

import pytest

from node.survey import (
    SLOW_AFTER,
    Failure,
    Health,
    Member,
    Reply,
    health_of,
    member_json,
    members,
    with_enterprise_node,
)
from registry.identifier import Prefix
from registry.prefix_entry import PrefixEntry, PrefixKind

TOP, S1, S2, E = "http://t:8000", "http://s:8001", "http://s:8002", "http://e:8010"


def entry(prefix: str, url: str, kind: PrefixKind = PrefixKind.ENTERPRISE) -> PrefixEntry:
    return PrefixEntry(Prefix(prefix), node_url=url, kind=kind, owner=f"owner of {prefix}")


@pytest.mark.parametrize(
    ("reply", "health", "detail"),
    [
        (Reply(200, {"status": "ready"}, 0.01), Health.UP, ""),
        (Reply(200, {"status": "ready"}, SLOW_AFTER + 0.1), Health.SLOW, "answered in 0.60 s"),
        (
            Reply(503, {"message": "store unavailable: refused"}, 0.01),
            Health.NOT_READY,
            "store unavailable: refused",
        ),
        (Reply(503, None, 0.01), Health.NOT_READY, "not ready"),
        (
            Reply(None, None, 1.0, Failure.TIMEOUT, "no answer within 1 s"),
            Health.SLOW,
            "no answer within 1 s",
        ),
        (
            Reply(None, None, 0.0, Failure.UNREACHABLE, "node x is unreachable: refused"),
            Health.DOWN,
            "node x is unreachable: refused",
        ),
        (Reply(404, {}, 0.01), Health.DOWN, "answered HTTP 404 to /readyz"),
    ],
)
def test_health_of_a_readiness_probe(reply: Reply, health: Health, detail: str) -> None:
    assert health_of(reply) == (health, detail)


def test_members_list_every_prefix_in_tree_order() -> None:
    found = members(
        [
            entry("88.100.10", S1),
            entry("88.100.2", S1),
            entry("88.101.1", E),  # filed with a node of its own
            entry("88.102", S2, PrefixKind.SECONDARY),
            entry("88.100", S1, PrefixKind.SECONDARY),
            entry("88.101", S2, PrefixKind.SECONDARY),
            entry("88.9.1", S2),  # under no registered secondary
            entry("88", TOP, PrefixKind.TOP),
        ]
    )
    assert [(m.prefix, m.parent, m.depth, m.own_node) for m in found] == [
        ("88", None, 0, True),
        ("88.100", "88", 1, True),
        ("88.100.2", "88.100", 2, False),
        ("88.100.10", "88.100", 2, False),  # numeric order, not byte order
        ("88.101", "88", 1, True),
        ("88.101.1", "88.101", 2, True),
        ("88.102", "88", 1, True),
        ("88.9.1", None, 2, None),
    ]


def test_an_enterprise_node_named_by_its_secondary() -> None:
    (member,) = [
        m
        for m in members([entry("88.101", S2, PrefixKind.SECONDARY), entry("88.101.1", S2)])
        if m.kind is PrefixKind.ENTERPRISE
    ]
    assert member.own_node is False and member.node_url == S2
    named = with_enterprise_node(member, [{"prefix": "88.101.1", "url": E + "/"}])
    assert (named.node_url, named.own_node) == (E, True)
    other = with_enterprise_node(member, [{"prefix": "88.101.2", "url": E}])
    assert (other.node_url, other.own_node) == (S2, False)
    # The secondary did not answer, or answered nonsense: nobody knows.
    for listed in (None, "x", [{"prefix": "88.101.1", "url": 7}]):
        unknown = with_enterprise_node(member, listed)
        assert unknown.own_node is (False if isinstance(listed, list) else None)


def test_member_json_says_who_serves_an_unprobed_prefix() -> None:
    served = Member("88.100.1", PrefixKind.ENTERPRISE, "88.100", S1, False, owner="Motors")
    body = member_json(served, None, None)
    assert (body["health"], body["detail"], body["kpis"]) == (None, "served by 88.100", None)
    assert body["depth"] == 2 and body["owner"] == "Motors" and body["nodeUrl"] == S1
    unknown = member_json(Member("88.101.1", PrefixKind.ENTERPRISE, "88.101", S2, None), None, None)
    assert unknown["detail"].startswith("not known")
    probed = member_json(
        Member("88.101", PrefixKind.SECONDARY, "88", S2, True), (Health.DOWN, "refused"), None
    )
    assert (probed["health"], probed["detail"]) == ("down", "refused")
