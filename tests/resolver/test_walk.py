"""resolver.walk: one recursive resolution as a state machine over node answers."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from registry.errors import NotResponsible, UpstreamTimeout, UpstreamUnavailable
from registry.identifier import Handle, Prefix
from resolver.cache import Outcome
from resolver.target import TargetPolicy
from resolver.walk import MAX_HOPS, STRICT, Answer, Hop, Resolved, Walk

TOP = "http://top:8000"
SECONDARY = "http://secondary:8001"
ENTERPRISE = "http://enterprise:8002"
VALUES: list[dict[str, Any]] = [
    {
        "index": 1,
        "type": "URL",
        "data": {"format": "string", "value": "https://example.com"},
        "ttl": 86400,
        "timestamp": "2026-01-01T00:00:00Z",
    }
]


def walk(handle: str = "88.101.1/ABC", start: str | Hop = TOP, **kwargs: Any) -> Walk:
    kwargs.setdefault("policy", STRICT)
    return Walk(Handle.parse(handle), start, **kwargs)


def found(handle: str = "88.101.1/ABC", values: list[dict[str, Any]] = VALUES) -> Answer:
    return Answer(200, orjson.dumps({"responseCode": 1, "handle": handle, "values": values}))


def not_found(handle: str = "88.101.1/ABC") -> Answer:
    body = {"responseCode": 100, "handle": handle, "message": "Handle not found"}
    return Answer(404, orjson.dumps(body))


def referral(url: object = ENTERPRISE, prefix: object = "88.101.1", **extra: Any) -> Answer:
    body: dict[str, Any] = {"responseCode": 301, "message": "That prefix doesn't live here"}
    if url is not None:
        body["referral"] = {"url": url, "prefix": prefix}
    body.update(extra)
    return Answer(400, orjson.dumps(body))


def canonical(handle: str = "88.101.1/ABC", values: list[dict[str, Any]] = VALUES) -> bytes:
    return orjson.dumps({"responseCode": 1, "handle": handle, "values": values})


# --- start ------------------------------------------------------------------------------


def test_the_walk_starts_at_the_start_node() -> None:
    w = walk()
    assert w.node == TOP
    assert w.asked == [TOP]
    assert w.max_hops == MAX_HOPS == 4


def test_the_start_node_loses_its_trailing_slash() -> None:
    assert walk(start=TOP + "/").node == TOP


def test_docstring_example() -> None:
    w = Walk(Handle.parse("88.101.1/x"), Hop("http://secondary.example", Prefix("88.101")), STRICT)
    body = b'{"responseCode":301,"referral":{"url":"http://ent.example","prefix":"88.101.1"}}'
    assert w.answered(Answer(400, body)) is None
    assert w.node == "http://ent.example"
    assert w.hop == Hop("http://ent.example", Prefix("88.101.1"))


# --- found ------------------------------------------------------------------------------


def test_a_record_is_found_at_the_first_node() -> None:
    resolved = walk().answered(found())
    assert resolved == Resolved(Outcome.FOUND, canonical(), TOP, (TOP,))


@pytest.mark.parametrize("answered_as", ["88.101.1/abc", "88.101.1/Abc", "88.101.1/ABC"])
def test_the_handle_matches_ascii_case_insensitively(answered_as: str) -> None:
    resolved = walk("88.101.1/ABC").answered(found(answered_as))
    assert resolved is not None and resolved.outcome is Outcome.FOUND
    assert orjson.loads(resolved.body)["handle"] == answered_as


def test_a_prefix_record_is_found_whatever_the_case_of_0_na() -> None:
    resolved = walk("0.NA/88.101").answered(found("0.na/88.101"))
    assert resolved is not None and resolved.outcome is Outcome.FOUND


def test_the_found_body_is_re_encoded_canonically() -> None:
    raw = (
        b'{ "values" : [ { "ttl": 86400, "index": 1, "type": "URL",\n'
        b'  "timestamp": "2026-01-01T00:00:00Z",\n'
        b'  "data": {"value": "https://example.com", "format": "string"} } ],\n'
        b'  "extra": "dropped",\n  "handle": "88.101.1/ABC",  "responseCode" : 1 }'
    )
    resolved = walk().answered(Answer(200, raw))
    assert resolved is not None
    assert resolved.body.startswith(b'{"responseCode":1,"handle":"88.101.1/ABC","values":[')
    assert b" " not in resolved.body.replace(b"https://example.com", b"")
    assert orjson.loads(resolved.body) == orjson.loads(canonical())
    assert b"extra" not in resolved.body


def test_an_already_canonical_body_is_kept_byte_for_byte() -> None:
    resolved = walk().answered(found())
    assert resolved is not None and resolved.body == canonical()


@pytest.mark.parametrize("other", ["88.101.1/ABD", "88.101.2/ABC", "88.101.1/ABC ", "0.NA/88"])
def test_a_200_for_another_handle_is_upstream_unavailable(other: str) -> None:
    with pytest.raises(UpstreamUnavailable, match=TOP) as info:
        walk().answered(found(other))
    assert info.value.http_status == 502


@pytest.mark.parametrize(
    "body",
    [
        {"responseCode": 1, "handle": "88.101.1/ABC"},  # no values
        {"responseCode": 1, "handle": "88.101.1/ABC", "values": {"1": "x"}},
        {"responseCode": 1, "values": []},  # no handle
        {"responseCode": 1, "handle": 5, "values": []},
        {"responseCode": 2, "handle": "88.101.1/ABC", "values": []},
        {"handle": "88.101.1/ABC", "values": []},
    ],
)
def test_a_200_that_is_not_a_record_is_upstream_unavailable(body: dict[str, Any]) -> None:
    with pytest.raises(UpstreamUnavailable, match="answered HTTP 200"):
        walk().answered(Answer(200, orjson.dumps(body)))


# --- not found --------------------------------------------------------------------------


def test_not_found_keeps_the_body_and_names_the_node() -> None:
    answer = not_found()
    resolved = walk().answered(answer)
    assert resolved == Resolved(Outcome.NOT_FOUND, answer.body, TOP, (TOP,))


def test_not_found_after_a_referral() -> None:
    w = walk()
    assert w.answered(referral()) is None
    resolved = w.answered(not_found())
    assert resolved is not None
    assert resolved.outcome is Outcome.NOT_FOUND
    assert resolved.source == ENTERPRISE and resolved.path == (TOP, ENTERPRISE)


@pytest.mark.parametrize(
    "answer",
    [
        Answer(404, b"<html>404 Not Found</html>"),
        Answer(404, b'{"responseCode": 2}'),
        Answer(404, b"{}"),
        Answer(200, orjson.dumps({"responseCode": 100, "handle": "88.101.1/ABC"})),
    ],
)
def test_a_404_is_not_found_only_with_response_code_100(answer: Answer) -> None:
    with pytest.raises(UpstreamUnavailable):
        walk().answered(answer)


# --- referrals --------------------------------------------------------------------------


def test_referrals_are_followed_and_the_path_recorded() -> None:
    w = walk()
    assert w.answered(referral(SECONDARY, "88.101")) is None
    assert w.node == SECONDARY
    assert w.answered(referral(ENTERPRISE + "/")) is None
    assert w.node == ENTERPRISE
    resolved = w.answered(found())
    assert resolved == Resolved(
        Outcome.FOUND,
        canonical(),
        ENTERPRISE,
        (TOP, SECONDARY, ENTERPRISE),
        Prefix("88.101.1"),
    )


DEEP = "88.1.2.3.4.5/ABC"  # deep enough for a walk of MAX_HOPS + 1 nodes
DEEP_PREFIXES = ["88.1", "88.1.2", "88.1.2.3", "88.1.2.3.4", "88.1.2.3.4.5"]


@pytest.mark.parametrize(
    "chain",
    [
        [TOP, SECONDARY, TOP],
        [TOP, SECONDARY, ENTERPRISE, SECONDARY],
        [TOP, TOP],
        [TOP, TOP + "/"],
    ],
)
def test_a_referral_loop_is_upstream_unavailable(chain: list[str]) -> None:
    w = walk(DEEP, start=chain[0])
    for url, prefix in zip(chain[1:-1], DEEP_PREFIXES, strict=False):
        assert w.answered(referral(url, prefix)) is None
    with pytest.raises(UpstreamUnavailable, match="loop") as info:
        w.answered(referral(chain[-1], DEEP_PREFIXES[len(chain) - 2]))
    assert DEEP in info.value.message
    assert info.value.http_status == 502


def test_at_most_max_hops_nodes_are_asked() -> None:
    nodes = [f"http://n{i}:80" for i in range(MAX_HOPS + 1)]
    w = walk(DEEP, start=nodes[0])
    for url, prefix in zip(nodes[1:MAX_HOPS], DEEP_PREFIXES, strict=False):
        assert w.answered(referral(url, prefix)) is None
    assert w.asked == nodes[:MAX_HOPS]
    resolved = w.answered(found(DEEP))
    assert resolved is not None and resolved.path == tuple(nodes[:MAX_HOPS])


def test_more_than_max_hops_is_upstream_unavailable() -> None:
    nodes = [f"http://n{i}:80" for i in range(MAX_HOPS + 1)]
    w = walk(DEEP, start=nodes[0])
    for url, prefix in zip(nodes[1:MAX_HOPS], DEEP_PREFIXES, strict=False):
        assert w.answered(referral(url, prefix)) is None
    with pytest.raises(UpstreamUnavailable, match=f"more than {MAX_HOPS}") as info:
        w.answered(referral(nodes[MAX_HOPS], DEEP_PREFIXES[MAX_HOPS - 1]))
    assert " -> ".join(nodes[:MAX_HOPS]) in info.value.message


def test_max_hops_is_configurable() -> None:
    w = walk(max_hops=2)
    assert w.answered(referral(SECONDARY, "88.101")) is None
    with pytest.raises(UpstreamUnavailable, match="more than 2"):
        w.answered(referral(ENTERPRISE))
    with pytest.raises(UpstreamUnavailable, match="more than 1"):
        walk(max_hops=1).answered(referral(SECONDARY))


@pytest.mark.parametrize(
    "answer",
    [
        referral(""),
        referral(5),
        referral(["http://x"]),
        Answer(400, b'{"responseCode":301,"referral":"http://ent"}'),
        Answer(400, b'{"responseCode":301,"referral":{}}'),
    ],
)
def test_a_301_with_a_malformed_referral_is_upstream_unavailable(answer: Answer) -> None:
    with pytest.raises(UpstreamUnavailable, match="named no node") as info:
        walk().answered(answer)
    assert TOP in info.value.message


@pytest.mark.parametrize(
    "body", [b'{"responseCode":301,"referral":null}', b'{"responseCode":301,"message":"x"}']
)
def test_a_root_holding_no_such_prefix_means_no_node_holds_it(body: bytes) -> None:
    """The root is asked for no prefix in particular: its 301 without a referral is the
    hierarchy's answer (400/301 to the client, as a node holding no such prefix says),
    not a failure of the root."""
    with pytest.raises(NotResponsible, match="no node of the hierarchy") as info:
        walk("99.1/ABC").answered(Answer(400, body))
    assert info.value.http_status == 400 and info.value.response_code == 301
    assert "99.1" in info.value.message and TOP in info.value.message


@pytest.mark.parametrize(
    "body", [b'{"responseCode":301,"referral":null}', b'{"responseCode":301,"message":"x"}']
)
def test_a_node_below_the_root_must_name_who_holds_what_it_was_asked_for(body: bytes) -> None:
    with pytest.raises(UpstreamUnavailable, match="named no node") as info:
        walk(start=Hop(SECONDARY, Prefix("88.101"))).answered(Answer(400, body))
    assert SECONDARY in info.value.message


# --- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 401, 403, 301, 302, 204])
def test_other_answers_are_upstream_unavailable_naming_the_node(status: int) -> None:
    with pytest.raises(UpstreamUnavailable) as info:
        walk(start=SECONDARY).answered(Answer(status, b'{"responseCode": 2}'))
    assert type(info.value) is UpstreamUnavailable
    assert info.value.http_status == 502
    assert SECONDARY in info.value.message and str(status) in info.value.message


@pytest.mark.parametrize("status", [503, 504, 418])
def test_the_nodes_own_message_is_never_passed_on(status: int) -> None:
    # It could be an internal service's text (a secret), or a hostile node's.
    body = orjson.dumps({"responseCode": 2, "message": "SECRET=hunter2", "handle": "X-EVIL"})
    with pytest.raises((UpstreamUnavailable, UpstreamTimeout)) as info:
        walk().answered(Answer(status, body))
    message = info.value.message
    assert "SECRET" not in message and "hunter2" not in message and "X-EVIL" not in message
    assert f"{status}" in message and "(responseCode 2)" in message and TOP in message


def test_a_504_is_upstream_timeout() -> None:
    with pytest.raises(UpstreamTimeout) as info:
        walk(start=SECONDARY).answered(Answer(504, b"gateway timeout"))
    assert info.value.http_status == 504
    assert SECONDARY in info.value.message and "504" in info.value.message


def test_a_504_after_a_referral_names_the_node_referred_to() -> None:
    w = walk()
    w.answered(referral(ENTERPRISE))
    with pytest.raises(UpstreamTimeout, match=ENTERPRISE):
        w.answered(Answer(504, orjson.dumps({"message": "slow"})))


@pytest.mark.parametrize("status", [200, 404, 400])
@pytest.mark.parametrize("body", [b"", b"not json", b"<html></html>", b"[1, 2]", b'"x"', b"null"])
def test_a_non_json_object_body_is_upstream_unavailable(status: int, body: bytes) -> None:
    with pytest.raises(UpstreamUnavailable, match=TOP):
        walk().answered(Answer(status, body))


def test_a_failure_leaves_no_false_not_found() -> None:
    w = walk()
    with pytest.raises(UpstreamUnavailable):
        w.answered(Answer(500, b""))
    assert w.asked == [TOP]


# --- trust: what a node may refer to ------------------------------------------------------

SECONDARY_HOP = Hop(SECONDARY, Prefix("88.101"))


def test_a_hop_is_asked_for_its_prefix_and_the_answer_says_so() -> None:
    resolved = walk(start=SECONDARY_HOP).answered(found())
    assert resolved is not None and resolved.prefix == Prefix("88.101")
    assert resolved.source == SECONDARY


@pytest.mark.parametrize("prefix", [None, "", 5, ["88.101.1"], "88..1", "abc"])
def test_a_referral_must_name_a_valid_prefix(prefix: object) -> None:
    with pytest.raises(UpstreamUnavailable, match="names no valid prefix") as info:
        walk(start=SECONDARY_HOP).answered(referral(ENTERPRISE, prefix))
    assert SECONDARY in info.value.message


@pytest.mark.parametrize(
    "prefix",
    [
        "88.102.1",  # another secondary's enterprise
        "88",  # up the hierarchy
        "88.1011",  # a prefix whose text merely starts with its own
    ],
)
def test_a_referral_outside_the_referring_nodes_prefix_is_refused(prefix: str) -> None:
    w = walk("88.101.1/ABC", start=SECONDARY_HOP)
    with pytest.raises(UpstreamUnavailable, match="not within its own|does not hold"):
        w.answered(referral(ENTERPRISE, prefix))
    assert w.asked == [SECONDARY]


def test_a_node_may_hand_on_the_whole_prefix_it_was_asked_for() -> None:
    # The top node files 88.101.1 as served through its secondary node, which refers on
    # to the enterprise's own node for the same prefix.
    w = walk("88.101.1/ABC", start=Hop(SECONDARY, Prefix("88.101.1")))
    assert w.answered(referral(ENTERPRISE, "88.101.1")) is None
    assert w.hop == Hop(ENTERPRISE, Prefix("88.101.1"))


def test_a_referral_to_a_prefix_that_does_not_hold_the_handle_is_refused() -> None:
    w = walk("88.101.1/ABC", start=SECONDARY_HOP)
    with pytest.raises(UpstreamUnavailable, match="does not hold 88.101.1"):
        w.answered(referral(ENTERPRISE, "88.101.2"))
    with pytest.raises(UpstreamUnavailable, match="does not hold 88.101.1"):
        walk("88.101.1/ABC", start=SECONDARY_HOP).answered(referral(ENTERPRISE, "88.101.1.7"))


def test_the_root_trusted_for_everything_may_refer_to_any_prefix_holding_the_handle() -> None:
    w = walk("88.101.1/ABC", start=TOP)
    assert w.answered(referral(ENTERPRISE, "88.101.1")) is None
    assert w.hop == Hop(ENTERPRISE, Prefix("88.101.1"))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379",
        "http://localhost:8080",
        "http://10.1.2.3",
        "http://192.168.0.1",
        "http://169.254.169.254/latest",
        "http://[::1]:8000",
        "http://0.0.0.0:80",
        "http://[::ffff:127.0.0.1]",
        "ftp://ent.example",
        "file:///etc/passwd",
        "http://user:pw@ent.example",
        "http://ent.example/?x=1",
        "http://ent.example/#frag",
        "http://ent.example:99999",
        "gopher://ent.example",
    ],
)
def test_a_referral_to_a_forbidden_url_is_refused_without_repeating_it(url: str) -> None:
    w = walk(start=SECONDARY_HOP)
    with pytest.raises(UpstreamUnavailable, match="refused") as info:
        w.answered(referral(url))
    assert url not in info.value.message
    assert w.asked == [SECONDARY]


def test_private_referrals_are_followed_when_allowed() -> None:
    w = walk(start=SECONDARY_HOP, policy=TargetPolicy(allow_private=True))
    assert w.answered(referral("http://127.0.0.1:8010")) is None
    assert w.node == "http://127.0.0.1:8010"


def test_without_a_policy_private_hosts_are_allowed_but_the_prefix_rules_hold() -> None:
    w = Walk(Handle.parse("88.101.1/ABC"), SECONDARY)
    assert w.answered(referral("http://127.0.0.1:8010", "88.101.1")) is None
    w = Walk(Handle.parse("88.101.1/ABC"), SECONDARY_HOP)
    with pytest.raises(UpstreamUnavailable, match="not within its own"):
        w.answered(referral("http://127.0.0.1:8010", "88.102"))


def test_a_start_hop_is_checked_too() -> None:
    with pytest.raises(UpstreamUnavailable, match="loopback or private"):
        walk(start=Hop("http://127.0.0.1:6379", Prefix("88.101")))
    with pytest.raises(UpstreamUnavailable, match="not under its prefix"):
        walk(start=Hop(SECONDARY, Prefix("88.102")))
    assert walk(start=Hop("http://127.0.0.1:1", Prefix("88.101")), policy=TargetPolicy(True))
