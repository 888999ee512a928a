"""The permission rules (registry/permission.py) and the rights (registry/rights.py)."""

from __future__ import annotations

import pytest

from registry.identifier import Handle, Identity
from registry.permission import Grants, rights_of
from registry.rights import ALL_RIGHTS


@pytest.mark.parametrize(
    ("identity", "handle", "expected"),
    [
        # the administrator of 88.100
        ("300:0.NA/88.100", "88.100/x", True),
        ("300:0.NA/88.100", "88.100/0.NA", True),
        ("300:0.NA/88.100", "88.100.1/x", True),
        ("300:0.NA/88.100", "88.100.1.2/x", True),
        ("300:0.NA/88.100", "0.NA/88.100.1", True),
        ("300:0.NA/88.100", "0.na/88.100", True),  # its own prefix record
        ("300:0.NA/88.100", "88.101/x", False),
        ("300:0.NA/88.100", "88.1000/x", False),
        ("300:0.NA/88.100", "88.10/x", False),
        ("300:0.NA/88.100", "88/x", False),
        ("300:0.NA/88.100", "0.NA/88", False),
        ("300:0.NA/88.100", "0.NA/88.101", False),
        ("300:0.NA/88.100", "99/x", False),
        # a lower-case spelling of the identity is the same administrator
        ("300:0.na/88.100", "88.100/x", True),
        # the administrator of the derived prefix 88.100.1
        ("300:0.NA/88.100.1", "88.100.1/x", True),
        ("300:0.NA/88.100.1", "88.100.1.5/x", True),
        ("300:0.NA/88.100.1", "0.NA/88.100.1", True),
        ("300:0.NA/88.100.1", "88.100/x", False),
        ("300:0.NA/88.100.1", "88.100.2/x", False),
        ("300:0.NA/88.100.1", "88.100.10/x", False),
        ("300:0.NA/88.100.1", "0.NA/88.100", False),
        ("300:0.NA/88.100.1", "99/x", False),
        # a plain (non-0.NA) identity administers nothing
        ("300:88.100/user", "88.100/user", False),
        ("300:88.100/user", "88.100/x", False),
        ("300:88.100/user", "0.NA/88.100", False),
        ("300:88.100/user", "88.100.1/x", False),
    ],
)
def test_prefix_administrators_hold_every_right_below_their_prefix(
    identity: str, handle: str, expected: bool
) -> None:
    rights = rights_of(Identity.parse(identity), Handle.parse(handle), Grants())
    assert (rights == ALL_RIGHTS) is expected
    assert bool(rights) is expected  # and nothing at all elsewhere, without grants


def test_administration_does_not_depend_on_the_index() -> None:
    handle = Handle.parse("88.100.1/x")
    for index in (1, 300, 999):
        assert rights_of(Identity.parse(f"{index}:0.NA/88.100"), handle, Grants()) == ALL_RIGHTS
