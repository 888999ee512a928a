"""registry.authority: which handles a node holds and who may write them."""

from __future__ import annotations

import pytest

from registry.authority import Authority, administered_prefix, held_by_no_node
from registry.errors import InvalidHandle
from registry.identifier import Handle, Identity, Prefix


@pytest.mark.parametrize(
    ("held", "handle", "expected"),
    [
        (["88.100"], "88.100/x", True),
        (["88.100"], "88.100.3/x", True),
        (["88.100"], "88.100.3.9/x", True),
        (["88.100"], "0.NA/88.100", True),
        (["88.100"], "0.na/88.100.1", True),
        (["88.100"], "88.101/x", False),
        (["88.100"], "88.1000/x", False),
        (["88.100"], "88/x", False),
        (["88.100"], "0.NA/88", False),
        (["88.100"], "99/x", False),
        (["88.100.1"], "88.100/x", False),
        (["88.100.1"], "88.100.1/x", True),
        (["88.100", "99.1"], "99.1.2/x", True),
        (["88.100", "99.1"], "99.2/x", False),
        ([], "88.100/x", False),
        # Handle-syntax prefixes outside the national policy: held by no node here,
        # even where Handle's syntax derives them from a held prefix.
        (["88.100"], "21.T14999/X", False),
        (["88.100"], "0.NA/21.T14999", False),
        (["88.100"], "88.100.T1/x", False),
        (["88.100"], "0.NA/88.100.T1", False),
        (["88"], "88.T1/x", False),
    ],
)
def test_holds(held: list[str], handle: str, expected: bool) -> None:
    assert Authority.of(held).holds(Handle.parse(handle)) is expected


@pytest.mark.parametrize(
    ("held", "prefix", "expected"),
    [
        (["88.100"], "88.100", True),
        (["88.100"], "88.100.1", True),
        (["88.100"], "88", False),
        (["88.100"], "88.1000", False),
        (["88"], "88.100.1", True),
        (["88.100", "99"], "99.5", True),
        (["88"], "88.T1", False),
        (["88"], "21.T14999", False),
    ],
)
def test_holds_prefix(held: list[str], prefix: str, expected: bool) -> None:
    assert Authority.of(held).holds_prefix(Prefix.parse(prefix)) is expected


def test_authority_of_parses_its_prefixes() -> None:
    authority = Authority.of(["88.100", "99"])
    assert authority.prefixes == (Prefix("88.100"), Prefix("99"))
    with pytest.raises(InvalidHandle, match="Invalid prefix"):
        Authority.of(["88.100", "0.NA"])


@pytest.mark.parametrize("prefix", ["21.T14999", "88.T1", "0.NA"])
def test_a_node_holds_only_national_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidHandle, match="this hierarchy's prefixes are, e.g. 88.100.1") as info:
        Authority.of([prefix])
    assert info.value.response_code == 102


@pytest.mark.parametrize("prefix", ["21.T14999", "88.T1"])
def test_a_prefix_held_by_no_node_is_301_without_a_referral(prefix: str) -> None:
    error = held_by_no_node(Prefix.parse(prefix), handle=f"{prefix}/X")
    assert (error.http_status, error.response_code, error.referral) == (400, 301, None)
    assert error.body() == {
        "responseCode": 301,
        "handle": f"{prefix}/X",
        "message": error.message,
    }
    assert f"Prefix {prefix} doesn't live here" in error.message
    assert "no node of this hierarchy holds it" in error.message


@pytest.mark.parametrize(
    ("identity", "prefix"),
    [
        ("300:0.NA/88.100", "88.100"),
        ("300:0.na/88.100.1", "88.100.1"),
        ("300:0.NA/99", "99"),
        ("1:0.NA/99", None),  # only the bootstrap index 300 administers
        ("301:0.NA/88.100", None),
        ("300:88.100/user", None),
        ("300:88/0.NA", None),
        ("300:0.NA/21.T14999", "21.T14999"),  # someone else's administrator: named, not held
    ],
)
def test_administered_prefix(identity: str, prefix: str | None) -> None:
    expected = Prefix(prefix) if prefix is not None else None
    assert administered_prefix(Identity.parse(identity)) == expected
