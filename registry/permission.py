"""Who may do what: Handle's HS_ADMIN rights, as tables. Pure, no I/O.

Every write is checked the same way, after it is planned and before it is committed:
the change from the record as it was to the record as it will be says which operations
it performs (:func:`operations`), each operation needs one right (:data:`NEEDS`), and the
writer's rights come from HS_ADMIN values (:func:`rights_of`).

The rights themselves and their bit string are in :mod:`registry.rights`. Where rights
come from::

    identity                     rights on handles under P
    300:0.NA/Q  (Q contains P)   all of them: the administrator of Q (node or enterprise)
    any identity I               the union of the permissions of every HS_ADMIN value
                                 naming I in 0.NA/P or the record of a prefix above P
                                 (down to the node's own prefix), and, for an existing
                                 handle, in that handle's own HS_ADMIN values

Only index 300 of ``0.NA/Q`` is Q's administrator (:attr:`Identity.administered_prefix`):
a key at any other index of a prefix record is an identity like any other. Rights come
from HS_ADMIN values, never from holding a key somewhere.

Credentials are guarded like the grants they go with. A key value (HS_SECKEY,
HS_PUBKEY) makes its index an identity, so adding, changing or removing one is an
*admin* operation, as for HS_ADMIN values; creating a handle that holds keys takes the
right to add admin values as well as the right to create the handle. Otherwise a user
allowed to change values could put its own key where a grant already points (the
bootstrap index 300, or the index of a more privileged user) and act as that identity.

A prefix record ``0.NA/Q`` is created or deleted with the *derived prefix* rights held
at a prefix strictly above Q, so an administrator cannot delete its own identity. Named
presets (:data:`registry.rights.PRESETS`) make the common user kinds easy to grant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from registry.identifier import Handle, Identity, Prefix, ascii_lower
from registry.record import HandleRecord
from registry.rights import ALL_RIGHTS, Right, parse_permissions
from registry.value import AdminRef, HandleValue


class Operation(StrEnum):
    """What a write does, as far as rights are concerned."""

    CREATE_HANDLE = "create the handle"
    DELETE_HANDLE = "delete the handle"
    CREATE_PREFIX = "create the prefix record"
    DELETE_PREFIX = "delete the prefix record"
    ADD_VALUE = "add a value"
    MODIFY_VALUE = "modify a value"
    REMOVE_VALUE = "remove a value"
    ADD_ADMIN = "add an HS_ADMIN value"
    MODIFY_ADMIN = "modify an HS_ADMIN value"
    REMOVE_ADMIN = "remove an HS_ADMIN value"
    LIST = "list handles"
    READ_RESTRICTED = "read values that are not public"


NEEDS: dict[Operation, Right] = {
    Operation.CREATE_HANDLE: Right.ADD_HANDLE,
    Operation.DELETE_HANDLE: Right.DELETE_HANDLE,
    Operation.CREATE_PREFIX: Right.ADD_DERIVED_PREFIX,
    Operation.DELETE_PREFIX: Right.DELETE_DERIVED_PREFIX,
    Operation.ADD_VALUE: Right.ADD_VALUE,
    Operation.MODIFY_VALUE: Right.MODIFY_VALUE,
    Operation.REMOVE_VALUE: Right.REMOVE_VALUE,
    Operation.ADD_ADMIN: Right.ADD_ADMIN,
    Operation.MODIFY_ADMIN: Right.MODIFY_ADMIN,
    Operation.REMOVE_ADMIN: Right.REMOVE_ADMIN,
    Operation.LIST: Right.LIST_HANDLES,
    Operation.READ_RESTRICTED: Right.READ_VALUE,
}

# Operations whose right is looked up strictly above the handle's own prefix.
_FROM_ABOVE = frozenset({Operation.CREATE_PREFIX, Operation.DELETE_PREFIX})


def operations(before: HandleRecord | None, after: HandleRecord | None) -> set[Operation]:
    """The operations a write from ``before`` to ``after`` performs.

    Creating a handle with its values is one operation (as in Handle), plus adding an
    admin value when it holds keys; changing an existing one is one operation per kind
    of value change, where keys count as admin values. A timestamp alone is no change.
    """
    subject = after or before
    if subject is None:
        return set()
    prefix_record = subject.handle.is_prefix_record
    if before is None:
        created = Operation.CREATE_PREFIX if prefix_record else Operation.CREATE_HANDLE
        keys = any(v.is_key for v in subject.values)
        return {created, Operation.ADD_ADMIN} if keys else {created}
    if after is None:
        return {Operation.DELETE_PREFIX if prefix_record else Operation.DELETE_HANDLE}
    old = {v.index: v for v in before.values}
    new = {v.index: v for v in after.values}
    found: set[Operation] = set()
    for index in old.keys() | new.keys():
        was, now = old.get(index), new.get(index)
        admin = any(v is not None and (v.is_admin or v.is_key) for v in (was, now))
        if was is None:
            found.add(Operation.ADD_ADMIN if admin else Operation.ADD_VALUE)
        elif now is None:
            found.add(Operation.REMOVE_ADMIN if admin else Operation.REMOVE_VALUE)
        elif _content(was) != _content(now):
            found.add(Operation.MODIFY_ADMIN if admin else Operation.MODIFY_VALUE)
    return found


def _content(value: HandleValue) -> tuple[object, ...]:
    return value.content()


@dataclass(frozen=True, slots=True)
class Grants:
    """The HS_ADMIN values that can grant rights on one handle: those of the prefix
    records from the handle's home prefix up to the node's own (``prefix_records``,
    any order) and those of the handle itself."""

    prefix_records: tuple[tuple[Prefix, HandleRecord], ...] = ()
    handle_record: HandleRecord | None = None


def administers(identity: Identity, prefix: Prefix) -> bool:
    """Whether ``identity`` is the administrator of ``prefix`` or a prefix above it."""
    own = identity.administered_prefix
    return own is not None and own.contains(prefix)


def rights_of(
    identity: Identity, handle: Handle, grants: Grants, *, from_above: bool = False
) -> frozenset[Right]:
    """The rights ``identity`` holds on ``handle``.

    With ``from_above`` only grants strictly above the handle's home prefix count (the
    rule for creating and deleting prefix records).
    """
    home = handle.home_prefix
    own = identity.administered_prefix
    if own is not None and own.contains(home) and not (from_above and own == home):
        return ALL_RIGHTS
    rights: set[Right] = set()
    for prefix, record in grants.prefix_records:
        if prefix.contains(home) and not (from_above and prefix == home):
            rights |= _granted(identity, record.values)
    if grants.handle_record is not None and not from_above:
        rights |= _granted(identity, grants.handle_record.values)
    return frozenset(rights)


def _granted(identity: Identity, values: Iterable[HandleValue]) -> set[Right]:
    rights: set[Right] = set()
    for value in values:
        ref = value.value
        if (
            isinstance(ref, AdminRef)
            and ref.index == identity.index
            and ascii_lower(ref.handle) == identity.handle.key
        ):
            rights |= parse_permissions(ref.permissions)
    return rights


def missing(
    identity: Identity, handle: Handle, wanted: Iterable[Operation], grants: Grants
) -> Operation | None:
    """The first operation in ``wanted`` that ``identity`` lacks the right for, if any."""
    for operation in sorted(wanted):
        rights = rights_of(identity, handle, grants, from_above=operation in _FROM_ABOVE)
        if NEEDS[operation] not in rights:
            return operation
    return None
