"""The permission rules (registry/permission.py) and the rights (registry/rights.py)."""

from __future__ import annotations

import pytest

from registry.identifier import Handle, Identity, Prefix
from registry.permission import Grants, Operation, administers, operations, rights_of
from registry.record import HandleRecord
from registry.rights import ALL_RIGHTS
from registry.value import DataFormat, HandleValue


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


def test_only_index_300_of_a_prefix_record_administers_the_prefix() -> None:
    """A key at another index of 0.NA/P is an identity like any other (the escalation
    of issue 17: a user who could write a key at 301 became P's administrator)."""
    handle = Handle.parse("88.100.1/x")
    assert rights_of(Identity.parse("300:0.NA/88.100"), handle, Grants()) == ALL_RIGHTS
    for index in (1, 100, 299, 301, 999):
        identity = Identity.parse(f"{index}:0.NA/88.100")
        assert identity.administered_prefix is None
        assert rights_of(identity, handle, Grants()) == frozenset()
        assert not administers(identity, Prefix.parse("88.100.1"))


def _record(handle: str, *values: HandleValue) -> HandleRecord:
    return HandleRecord(Handle.parse(handle), tuple(values))


def _value(index: int, type_: str, data: str) -> HandleValue:
    return HandleValue(index, type_, DataFormat.STRING, data, 86400, "2026-01-01T00:00:00Z")


@pytest.mark.parametrize("key_type", ["HS_SECKEY", "HS_PUBKEY", "hs_seckey"])
def test_keys_are_changed_with_admin_rights(key_type: str) -> None:
    url = _value(1, "URL", "https://a.example")
    key = _value(301, key_type, "secret-or-public-key")
    other = _value(301, key_type, "another-key")
    before = _record("0.NA/88.100.1", url)
    added = _record("0.NA/88.100.1", url, key)
    assert operations(before, added) == {Operation.ADD_ADMIN}
    assert operations(added, _record("0.NA/88.100.1", url, other)) == {Operation.MODIFY_ADMIN}
    assert operations(added, before) == {Operation.REMOVE_ADMIN}
    # a key becoming a plain value (or back) is an admin change too
    plain = _value(301, "DESC", "secret-or-public-key")
    assert operations(added, _record("0.NA/88.100.1", url, plain)) == {Operation.MODIFY_ADMIN}


def test_creating_a_handle_that_holds_keys_takes_the_right_to_add_admins() -> None:
    url = _value(1, "URL", "https://a.example")
    key = _value(300, "HS_SECKEY", "secret")
    assert operations(None, _record("88.100.1/a", url)) == {Operation.CREATE_HANDLE}
    assert operations(None, _record("88.100.1/users/a", url, key)) == {
        Operation.CREATE_HANDLE,
        Operation.ADD_ADMIN,
    }
    assert operations(None, _record("0.NA/88.100.1.9", key)) == {
        Operation.CREATE_PREFIX,
        Operation.ADD_ADMIN,
    }
