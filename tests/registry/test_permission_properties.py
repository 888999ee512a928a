"""Properties of the permission rules (registry/permission.py, registry/rights.py).

Records, values and grants are built directly; the identities, prefixes and handles come
from small pools so that grants often name the identity asking and prefixes often nest.
"""

from __future__ import annotations

import string
from dataclasses import replace

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from registry.errors import InvalidHandle
from registry.identifier import Handle, Identity, Prefix
from registry.permission import NEEDS, Grants, Operation, missing, operations, rights_of
from registry.record import HandleRecord
from registry.rights import ALL_RIGHTS, BITS, PRESETS, Right, format_permissions, parse_permissions
from registry.value import ADMIN_TYPE, AdminRef, DataFormat, HandleValue
from tests.registry.strategies import (
    fast,
    flip_ascii_case,
    plain_handles,
    prefixes,
    suffixes,
    valid_handles,
)

# -- rights and their bit string ------------------------------------------------------

bit_strings = st.text("01", min_size=BITS, max_size=BITS)
right_sets = st.frozensets(st.sampled_from(list(Right)))


@fast
@given(bit_strings)
def test_any_bit_string_round_trips(text: str) -> None:
    rights = parse_permissions(text)
    assert format_permissions(rights) == text
    # bit i is the i-th character from the right
    assert rights == {r for r in Right if text[-1 - r.value] == "1"}


@fast
@given(right_sets)
def test_any_set_of_rights_round_trips(rights: frozenset[Right]) -> None:
    text = format_permissions(rights)
    assert len(text) == BITS and set(text) <= {"0", "1"}
    assert parse_permissions(text) == rights


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_round_trips(name: str) -> None:
    rights = parse_permissions(name)
    assert rights == PRESETS[name]
    assert parse_permissions(format_permissions(rights)) == rights


def test_presets_are_nested() -> None:
    assert PRESETS["read-only"] < PRESETS["write-values"] < PRESETS["registrar"]
    assert PRESETS["registrar"] < PRESETS["admin"] == ALL_RIGHTS


@fast
@given(st.text("01x ", max_size=BITS + 2))
def test_anything_else_is_refused(text: str) -> None:
    if len(text) == BITS and set(text) <= {"0", "1"}:
        return
    with pytest.raises(ValueError):
        parse_permissions(text)


# -- pools: identities, handles and grants that meet often ----------------------------

TIMESTAMP = "2026-01-01T00:00:00Z"
POOL_PREFIXES = ["88", "88.100", "88.100.1", "88.100.1.5", "88.100.2", "88.200"]
POOL_IDENTITIES = [
    "300:0.NA/88.100",
    "300:0.NA/88.100.1",
    "7:0.NA/88.100.1",
    "300:0.NA/88.200",
    "300:88.100.1/users/a",
    "301:88.100.1/users/a",
    "300:88.100.1/USERS/B",
    "300:88.100/x",
]
POOL_HANDLES = [
    "88.100/h",
    "88.100.1/h",
    "88.100.1.5/h",
    "88.100.2/h",
    "88.200/h",
    "0.NA/88.100",
    "0.NA/88.100.1",
    "0.NA/88.100.1.5",
    "0.NA/88.200",
]
FROM_ABOVE = {Operation.CREATE_PREFIX, Operation.DELETE_PREFIX}

identities = st.sampled_from(POOL_IDENTITIES).map(Identity.parse)
pool_handles = st.sampled_from(POOL_HANDLES).map(Handle.parse)
permissions = st.one_of(bit_strings, st.sampled_from(sorted(PRESETS)))


@st.composite
def admin_values(draw: st.DrawFn, asker: Identity | None = None) -> HandleValue:
    """An HS_ADMIN value naming a pool identity, often ``asker`` (its handle in any ASCII
    case)."""
    named = draw(identities if asker is None else st.one_of(st.just(asker), identities))
    text = named.handle.text
    spelled = flip_ascii_case(
        text, draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    )
    ref = AdminRef(spelled, named.index, draw(permissions))
    at = draw(st.integers(100, 400))
    return HandleValue(at, ADMIN_TYPE, DataFormat.ADMIN, ref, 86400, TIMESTAMP)


def _record(handle: Handle, values: list[HandleValue]) -> HandleRecord:
    """A record whose values get distinct indexes, in order."""
    return HandleRecord(
        handle,
        tuple(replace(v, index=i) for i, v in enumerate(values, start=1)),
    )


url_values = st.builds(
    lambda data: HandleValue(1, "URL", DataFormat.STRING, data, 86400, TIMESTAMP),
    st.sampled_from(["https://a.example", "https://b.example"]),
)


@st.composite
def grants(draw: st.DrawFn, handle: Handle, asker: Identity) -> Grants:
    """HS_ADMIN values in some pool prefix records (not all above ``handle``) and maybe in
    the handle's own record."""
    grant_lists = st.lists(st.one_of(admin_values(asker), url_values), max_size=4)
    chosen = draw(st.lists(st.sampled_from(POOL_PREFIXES), unique=True, max_size=4))
    records = tuple(
        (Prefix.parse(p), _record(Prefix.parse(p).record_handle, draw(grant_lists))) for p in chosen
    )
    own = draw(st.one_of(st.none(), grant_lists.map(lambda vs: _record(handle, vs))))
    return Grants(records, own)


def _with_value(grants: Grants, where: str | None, handle: Handle, value: HandleValue) -> Grants:
    """``grants`` with ``value`` added to the prefix record of ``where`` (created if absent)
    or, for None, to the handle's own record."""
    if where is None:
        old = grants.handle_record
        values = [*(old.values if old else ()), value]
        return Grants(grants.prefix_records, _record(handle, values))
    prefix = Prefix.parse(where)
    records = list(grants.prefix_records)
    for i, (p, record) in enumerate(records):
        if p == prefix:
            records[i] = (p, _record(record.handle, [*record.values, value]))
            break
    else:
        records.append((prefix, _record(prefix.record_handle, [value])))
    return Grants(tuple(records), grants.handle_record)


# -- rights_of ------------------------------------------------------------------------


@fast
@given(st.data(), identities, pool_handles, st.booleans())
def test_adding_a_grant_never_removes_rights(
    data: st.DataObject, identity: Identity, handle: Handle, from_above: bool
) -> None:
    granted = data.draw(grants(handle, identity))
    above = [p for p in POOL_PREFIXES if Prefix.parse(p).contains(handle.home_prefix)]
    where = data.draw(st.one_of(st.none(), st.sampled_from(above), st.sampled_from(POOL_PREFIXES)))
    extra = data.draw(admin_values(identity))
    more = _with_value(granted, where, handle, extra)
    before = rights_of(identity, handle, granted, from_above=from_above)
    after = rights_of(identity, handle, more, from_above=from_above)
    assert before <= after


@fast
@given(identities, pool_handles, st.booleans())
def test_the_same_grant_for_the_asker_adds_exactly_its_rights(
    identity: Identity, handle: Handle, from_above: bool
) -> None:
    """A grant naming the asker in the handle's own record gives its rights (unless the
    check is from above, where only prefix records above count)."""
    for text in ["000000000000", "read-only", "registrar", "100000000001"]:
        ref = AdminRef(identity.handle.text, identity.index, text)
        value = HandleValue(100, ADMIN_TYPE, DataFormat.ADMIN, ref, 86400, TIMESTAMP)
        rights = rights_of(
            identity, handle, Grants((), _record(handle, [value])), from_above=from_above
        )
        alone = rights_of(identity, handle, Grants(), from_above=from_above)
        assert rights == alone | (set() if from_above else parse_permissions(text))


@st.composite
def below(draw: st.DrawFn, prefix: str) -> Handle:
    """A handle homed at ``prefix`` or a prefix below it: plain, or a prefix record."""
    extra = draw(st.lists(st.text(string.digits, min_size=1, max_size=3), max_size=2))
    home = ".".join([prefix, *extra])
    text = f"0.NA/{home}" if draw(st.booleans()) else f"{home}/{draw(suffixes)}"
    try:
        return Handle.parse(text)
    except InvalidHandle:  # too long
        reject()


@fast
@given(st.data(), prefixes, st.integers(1, 2**31 - 1))
def test_a_prefix_administrator_holds_every_right_below_its_prefix(
    data: st.DataObject, prefix: str, index: int
) -> None:
    handle = data.draw(below(prefix))
    # Only index 300 of 0.NA/P administers P; any other index is a plain identity.
    other = Identity(index, Prefix.parse(prefix).record_handle)
    expected_other = ALL_RIGHTS if index == 300 else frozenset()
    assert rights_of(other, handle, Grants()) == expected_other
    admin = Identity(300, Prefix.parse(prefix).record_handle)
    assert rights_of(admin, handle, Grants()) == ALL_RIGHTS
    # From above (the rule for prefix records) only strictly below its prefix: it may
    # not create or delete its own prefix record.
    expected = frozenset() if handle.home_prefix.text == prefix else ALL_RIGHTS
    assert rights_of(admin, handle, Grants(), from_above=True) == expected


@fast
@given(st.data(), prefixes, st.integers(1, 2**31 - 1))
def test_a_prefix_administrator_holds_nothing_elsewhere_without_grants(
    data: st.DataObject, prefix: str, index: int
) -> None:
    admin = Identity(index, Prefix.parse(prefix).record_handle)
    handle = data.draw(
        valid_handles.map(Handle.parse).filter(
            lambda h: not Prefix.parse(prefix).contains(h.home_prefix)
        )
    )
    # grants that name somebody else do not count either
    other = AdminRef(f"{prefix}/someone", index, "admin")
    value = HandleValue(100, ADMIN_TYPE, DataFormat.ADMIN, other, 86400, TIMESTAMP)
    records = ((handle.home_prefix, _record(handle.home_prefix.record_handle, [value])),)
    for granted in (Grants(), Grants(records, _record(handle, [value]))):
        for from_above in (False, True):
            assert rights_of(admin, handle, granted, from_above=from_above) == frozenset()


@fast
@given(plain_handles.map(Handle.parse), st.integers(1, 2**31 - 1))
def test_a_plain_identity_administers_nothing(handle: Handle, index: int) -> None:
    identity = Identity(index, handle)  # even its own handle
    assert rights_of(identity, handle, Grants()) == frozenset()


# -- operations -----------------------------------------------------------------------

CREATES = {Operation.CREATE_HANDLE, Operation.CREATE_PREFIX}
DELETES = {Operation.DELETE_HANDLE, Operation.DELETE_PREFIX}
VALUE_LEVEL = {
    Operation.ADD_VALUE,
    Operation.MODIFY_VALUE,
    Operation.REMOVE_VALUE,
    Operation.ADD_ADMIN,
    Operation.MODIFY_ADMIN,
    Operation.REMOVE_ADMIN,
}


@st.composite
def some_value(draw: st.DrawFn, index: int) -> HandleValue:
    """A value from a small universe, so that two draws are often equal."""
    kind = draw(st.sampled_from(["URL", "EMAIL", "HS_SECKEY", ADMIN_TYPE, "hs_admin"]))
    timestamp = draw(st.sampled_from([TIMESTAMP, "2026-06-01T00:00:00Z"]))
    ttl = draw(st.sampled_from([0, 86400]))
    public = draw(st.sampled_from(["1110", "1100", "0110", "0100"]))  # permissions
    if kind.upper() == ADMIN_TYPE:
        ref = AdminRef("0.NA/88.100", 300, draw(st.sampled_from(["admin", "registrar"])))
        return HandleValue(index, kind, DataFormat.ADMIN, ref, ttl, timestamp, public)
    data = draw(st.sampled_from(["a", "b"]))
    return HandleValue(index, kind, DataFormat.STRING, data, ttl, timestamp, public)


KEY_TYPES = ("HS_SECKEY", "HS_PUBKEY")


@st.composite
def records(draw: st.DrawFn, handle: Handle) -> HandleRecord:
    indexes = draw(st.lists(st.integers(1, 5), unique=True, max_size=4).map(sorted))
    return HandleRecord(handle, tuple(draw(some_value(i)) for i in indexes))


def _content(value: HandleValue) -> tuple[object, ...]:
    return value.content()


handles = valid_handles.map(Handle.parse)


@fast
@given(st.data(), handles)
def test_no_change_is_no_operation(data: st.DataObject, handle: Handle) -> None:
    record = data.draw(records(handle))
    assert operations(record, record) == set()
    assert operations(None, None) == set()
    restamped = HandleRecord(
        handle, tuple(v.stamped("2030-01-01T00:00:00Z") for v in record.values)
    )
    assert operations(record, restamped) == set()  # a timestamp alone is no change


@fast
@given(st.data(), handles, st.booleans(), st.booleans())
def test_operations_of_any_write(
    data: st.DataObject, handle: Handle, exists: bool, stays: bool
) -> None:
    before = data.draw(records(handle)) if exists else None
    after = data.draw(records(handle)) if stays or before is None else None
    found = operations(before, after)

    assert bool(found & CREATES) is (before is None)
    assert bool(found & DELETES) is (after is None)
    if before is None:
        created = Operation.CREATE_PREFIX if handle.is_prefix_record else Operation.CREATE_HANDLE
        assert after is not None
        keys = any(v.type.upper() in KEY_TYPES for v in after.values)
        assert found == ({created, Operation.ADD_ADMIN} if keys else {created})
    elif after is None:
        assert found == {
            Operation.DELETE_PREFIX if handle.is_prefix_record else Operation.DELETE_HANDLE
        }
    else:
        assert found <= VALUE_LEVEL
        old = {v.index: _content(v) for v in before.values}
        new = {v.index: _content(v) for v in after.values}
        assert (found == set()) is (old == new)
        admin_touched = any(
            v.type.upper() in (ADMIN_TYPE, *KEY_TYPES)  # keys are guarded like grants
            for v in (*before.values, *after.values)
            if old.get(v.index) != new.get(v.index)
        )
        admin_ops = {Operation.ADD_ADMIN, Operation.MODIFY_ADMIN, Operation.REMOVE_ADMIN}
        assert bool(found & admin_ops) is admin_touched


# -- missing --------------------------------------------------------------------------


@fast
@given(
    st.data(),
    identities,
    pool_handles,
    st.frozensets(st.sampled_from(list(Operation)), max_size=5),
)
def test_missing_is_none_exactly_when_every_right_is_held(
    data: st.DataObject, identity: Identity, handle: Handle, wanted: frozenset[Operation]
) -> None:
    granted = data.draw(grants(handle, identity))
    lacking = missing(identity, handle, wanted, granted)

    def held(operation: Operation) -> bool:
        rights = rights_of(identity, handle, granted, from_above=operation in FROM_ABOVE)
        return NEEDS[operation] in rights

    assert (lacking is None) is all(held(op) for op in wanted)
    if lacking is not None:
        assert lacking in wanted and not held(lacking)


def test_every_operation_needs_one_right() -> None:
    assert set(NEEDS) == set(Operation)
    assert sorted(NEEDS.values()) == sorted(Right)  # a different right for each
