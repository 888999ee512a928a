"""registry.authority: which handles a node holds and who may write them."""

from __future__ import annotations

import pytest

from registry.authority import Authority, administered_prefix
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
    ],
)
def test_holds_prefix(held: list[str], prefix: str, expected: bool) -> None:
    assert Authority.of(held).holds_prefix(Prefix.parse(prefix)) is expected


def test_authority_of_parses_its_prefixes() -> None:
    authority = Authority.of(["88.100", "99"])
    assert authority.prefixes == (Prefix("88.100"), Prefix("99"))
    with pytest.raises(InvalidHandle, match="Invalid prefix"):
        Authority.of(["88.100", "0.NA"])


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
    ],
)
def test_administered_prefix(identity: str, prefix: str | None) -> None:
    expected = Prefix(prefix) if prefix is not None else None
    assert administered_prefix(Identity.parse(identity)) == expected
