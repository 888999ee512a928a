"""registry.enterprise: enterprise applications and their pending -> decided life."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from registry.enterprise import (
    DEFAULT_LIFETIME,
    OPTIONAL,
    REQUIRED,
    Application,
    CodeClaim,
    Status,
    blocks_application,
    code_claim,
    next_enterprise_prefix,
    overdue,
)
from registry.errors import Conflict, InvalidValue
from registry.identifier import Prefix
from registry.prefix_entry import MAX_FIELD_CHARS, PrefixEntry, PrefixKind, PrefixStatus

VALID_CODE = "91350100M000100Y43"
BODY: dict[str, Any] = {
    "name": "Wuhan Auto Parts",
    "creditCode": VALID_CODE,
    "industry": "automotive",
    "contact": "ops@example.com",
}


def apply(**changes: Any) -> Application:
    return Application.from_input("a1", {**BODY, **changes}, now="t0")


def pending() -> Application:
    return apply()


def approved() -> Application:
    return pending().allocated("88.100.1").approved(now="t1")


def rejected() -> Application:
    return pending().rejected("incomplete papers", now="t1")


# --- from_input -------------------------------------------------------------------------


def test_from_input_builds_a_pending_application() -> None:
    app = pending()
    assert app == Application(
        id="a1",
        name="Wuhan Auto Parts",
        credit_code=VALID_CODE,
        industry="automotive",
        contact="ops@example.com",
        node_url="",
        submitted="t0",
    )
    assert app.status is Status.PENDING
    assert app.prefix == app.decided == app.reason == ""


def test_from_input_normalises_fields() -> None:
    app = apply(
        name="  Wuhan Auto Parts ",
        creditCode=VALID_CODE.lower(),
        nodeUrl=" https://ent.example:8443/ ",
    )
    assert app.name == "Wuhan Auto Parts"
    assert app.credit_code == VALID_CODE
    assert app.node_url == "https://ent.example:8443"


def test_required_and_optional_fields() -> None:
    assert REQUIRED == ("name", "creditCode", "industry", "contact")
    assert OPTIONAL == ("nodeUrl",)


@pytest.mark.parametrize("name", REQUIRED)
def test_each_required_field_missing_is_named(name: str) -> None:
    body = {k: v for k, v in BODY.items() if k != name}
    with pytest.raises(InvalidValue, match=f"'{name}' is required"):
        Application.from_input("a1", body, now="t0")


@pytest.mark.parametrize("name", REQUIRED)
@pytest.mark.parametrize("blank", ["", "   "])
def test_each_required_field_blank_is_named(name: str, blank: str) -> None:
    with pytest.raises(InvalidValue, match=f"'{name}' is required"):
        apply(**{name: blank})


@pytest.mark.parametrize("obj", [None, [], "name", 3])
def test_from_input_needs_an_object(obj: object) -> None:
    with pytest.raises(InvalidValue, match="JSON object"):
        Application.from_input("a1", obj, now="t0")


@pytest.mark.parametrize("field", ["prefix", "status", "id", "secret", "Name"])
def test_from_input_rejects_unknown_fields(field: str) -> None:
    with pytest.raises(InvalidValue, match="unknown fields") as info:
        apply(**{field: "x"})
    assert repr(field) in info.value.message
    assert "'nodeUrl'" in info.value.message  # lists the known fields


@pytest.mark.parametrize("name", REQUIRED + OPTIONAL)
@pytest.mark.parametrize("value", [1, None, False, ["x"], {"x": 1}])
def test_from_input_rejects_non_strings(name: str, value: object) -> None:
    with pytest.raises(InvalidValue, match=f"'{name}' must be a string"):
        apply(**{name: value})


@pytest.mark.parametrize("name", ["name", "industry", "contact"])
def test_from_input_length_limit(name: str) -> None:
    assert getattr(apply(**{name: "x" * MAX_FIELD_CHARS}), name) == "x" * MAX_FIELD_CHARS
    with pytest.raises(InvalidValue, match=f"'{name}' must be printable, at most"):
        apply(**{name: "x" * (MAX_FIELD_CHARS + 1)})


def test_from_input_rejects_non_printable_text() -> None:
    with pytest.raises(InvalidValue, match="'name' must be printable"):
        apply(name="Wuhan\nAuto")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("91350100M000100Y44", "the check character should be '3', got '4'"),
        ("9135", "has 18 characters, got 4"),
        ("91350100M000100I43", "is not allowed"),
    ],
)
def test_invalid_credit_code_message_contains_the_reason(code: str, reason: str) -> None:
    with pytest.raises(InvalidValue, match="creditCode") as info:
        apply(creditCode=code)
    assert reason in info.value.message


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://ent.example", "http:// or https://"),
        ("ent.example", "http:// or https://"),
        ("http://", "names a host"),
        ("http://ent.example?x=1", "no query or fragment"),
        ("http://ent.example:0x50", "valid port"),
    ],
)
def test_invalid_node_url_is_named(url: str, reason: str) -> None:
    with pytest.raises(InvalidValue, match="'nodeUrl'") as info:
        apply(nodeUrl=url)
    assert reason in info.value.message


def test_malformed_ipv6_node_url_is_an_invalid_value() -> None:
    with pytest.raises(InvalidValue, match="'nodeUrl'"):
        apply(nodeUrl="http://[::1")


# --- transitions ------------------------------------------------------------------------


def test_allocate_then_approve() -> None:
    app = pending()
    allocated = app.allocated("88.100.1")
    assert allocated.status is Status.PENDING and allocated.prefix == "88.100.1"
    assert app.prefix == ""  # the original is unchanged
    done = allocated.approved(now="t1")
    assert done.status is Status.APPROVED
    assert done.decided == "t1" and done.prefix == "88.100.1" and done.reason == ""


def test_allocating_again_while_pending_replaces_the_prefix() -> None:
    assert pending().allocated("88.100.1").allocated("88.100.2").prefix == "88.100.2"


def test_approving_needs_an_allocated_prefix() -> None:
    with pytest.raises(ValueError, match="allocate a prefix"):
        pending().approved(now="t1")


def test_reject_records_the_reason() -> None:
    app = pending().rejected("  incomplete papers ", now="t1")
    assert app.status is Status.REJECTED
    assert app.reason == "incomplete papers" and app.decided == "t1"


def test_a_pending_application_with_a_prefix_may_still_be_rejected() -> None:
    app = pending().allocated("88.100.1").rejected("duplicate", now="t1")
    assert app.status is Status.REJECTED


@pytest.mark.parametrize("reason", ["", "   ", "x" * (MAX_FIELD_CHARS + 1)])
def test_rejecting_needs_a_reason(reason: str) -> None:
    with pytest.raises(InvalidValue, match="'reason' is required"):
        pending().rejected(reason, now="t1")


def test_a_reason_of_the_maximum_length_is_accepted() -> None:
    assert pending().rejected("r" * MAX_FIELD_CHARS, now="t1").reason == "r" * MAX_FIELD_CHARS


@pytest.mark.parametrize(("make", "status"), [(approved, "approved"), (rejected, "rejected")])
@pytest.mark.parametrize(
    "action",
    [
        lambda app: app.allocated("88.100.9"),
        lambda app: app.approved(now="t2"),
        lambda app: app.rejected("too late", now="t2"),
        lambda app: app.rejected("", now="t2"),  # the state is checked first
    ],
    ids=["allocate", "approve", "reject", "reject-without-reason"],
)
def test_a_decided_application_is_final(make: Any, status: str, action: Any) -> None:
    app = make()
    with pytest.raises(Conflict) as info:
        action(app)
    assert info.value.http_status == 409
    assert info.value.response_code == 101
    assert f"already {status}" in info.value.message
    assert "a1" in info.value.message


# --- to_json / from_json ----------------------------------------------------------------


@pytest.mark.parametrize("make", [pending, approved, rejected])
def test_json_round_trip(make: Any) -> None:
    app = make()
    assert Application.from_json(app.to_json()) == app
    assert Application.from_json(orjson.loads(orjson.dumps(app.to_json()))) == app


def test_to_json_fields() -> None:
    assert approved().to_json() == {
        "id": "a1",
        "name": "Wuhan Auto Parts",
        "creditCode": VALID_CODE,
        "industry": "automotive",
        "contact": "ops@example.com",
        "nodeUrl": "",
        "status": "approved",
        "submitted": "t0",
        "prefix": "88.100.1",
        "decided": "t1",
        "reason": "",
    }
    assert rejected().to_json()["reason"] == "incomplete papers"


def test_from_json_status_is_the_enum() -> None:
    assert Application.from_json(rejected().to_json()).status is Status.REJECTED


# --- entry ------------------------------------------------------------------------------


def test_entry_is_the_prefix_record_the_application_becomes() -> None:
    app = apply(nodeUrl="http://ent.example").allocated("88.100.1").approved(now="t1")
    entry = app.entry("http://ent.example")
    assert entry == PrefixEntry(
        prefix=Prefix("88.100.1"),
        node_url="http://ent.example",
        kind=PrefixKind.ENTERPRISE,
        industry="automotive",
        owner="Wuhan Auto Parts",
        status=PrefixStatus.ACTIVE,
        credit_code=VALID_CODE,
        contact="ops@example.com",
        filed_by="",
    )


def test_entry_may_name_the_hosting_secondary_node() -> None:
    entry = pending().allocated("88.100.2").entry("http://secondary:8001")
    assert entry.node_url == "http://secondary:8001"
    assert entry.prefix == Prefix("88.100.2")


def test_entry_needs_a_prefix() -> None:
    with pytest.raises(ValueError, match="no prefix allocated"):
        pending().entry("http://ent.example")


# --- next_enterprise_prefix -------------------------------------------------------------


@pytest.mark.parametrize(
    ("parent", "counter", "expected"),
    [("88.100", 3, "88.100.3"), ("88.100", 1, "88.100.1"), ("88.101.7", 42, "88.101.7.42")],
)
def test_next_enterprise_prefix(parent: str, counter: int, expected: str) -> None:
    prefix = next_enterprise_prefix(parent, counter)
    assert prefix == expected
    assert Prefix.parse(prefix).parent == Prefix(parent)


# --- squatting: who holds a credit code, expiry ------------------------------------------


def other(**changes: Any) -> Application:
    """Another application with the same credit code (a squatter's, or a second try)."""
    return Application.from_input("a2", {**BODY, "name": "Squatter Ltd", **changes}, now="t0")


def test_only_an_approved_enterprise_blocks_a_new_application() -> None:
    assert blocks_application(approved())
    for holder in (None, pending(), pending().allocated("88.100.1"), rejected()):
        assert not blocks_application(holder)
    assert not blocks_application(pending().expired(DEFAULT_LIFETIME, now="t9"))


@pytest.mark.parametrize(
    ("holder", "claim"),
    [
        pytest.param(None, CodeClaim.FREE, id="free"),
        pytest.param(
            other().allocated("88.100.1").approved(now="t1"), CodeClaim.REGISTERED, id="registered"
        ),
        pytest.param(other().allocated("88.100.1"), CodeClaim.IN_APPROVAL, id="in-approval"),
        pytest.param(other(), CodeClaim.STALE, id="legacy-pending-pointer"),
        pytest.param(other().rejected("no", now="t1"), CodeClaim.STALE, id="rejected"),
        pytest.param(other().expired(60, now="t1"), CodeClaim.STALE, id="expired"),
    ],
)
def test_code_claim_of_another_holder(holder: Application | None, claim: CodeClaim) -> None:
    assert code_claim(pending(), holder) is claim
    assert claim.proceeds is (claim in (CodeClaim.FREE, CodeClaim.STALE))


def test_code_claim_of_the_applicant_itself() -> None:
    interrupted = pending().allocated("88.100.1")  # its own approval failed half-way
    assert code_claim(interrupted, interrupted) is CodeClaim.OURS
    assert CodeClaim.OURS.proceeds


def test_overdue() -> None:
    assert not overdue(1000.0, 1000.0 + DEFAULT_LIFETIME - 1, DEFAULT_LIFETIME)
    assert overdue(1000.0, 1000.0 + DEFAULT_LIFETIME, DEFAULT_LIFETIME)
    assert not overdue(0.0, 10.0**9, 0)  # lifetime 0: never


def test_expiry_is_a_decision() -> None:
    expired = pending().expired(DEFAULT_LIFETIME, now="t9")
    assert expired.status is Status.EXPIRED and expired.decided == "t9"
    assert expired.reason == "not decided within 7 days"
    assert pending().expired(60, now="t9").reason == "not decided in time"
    assert Application.from_json(orjson.loads(orjson.dumps(expired.to_json()))) == expired
    for decide in (
        lambda a: a.approved(now="t10"),
        lambda a: a.rejected("late", now="t10"),
        lambda a: a.expired(60, now="t10"),
    ):
        with pytest.raises(Conflict, match="already expired"):
            decide(expired)
    with pytest.raises(Conflict, match="already approved"):
        approved().expired(60, now="t10")
