"""registry.hierarchy: roles, their traits, and which node answers a handle."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.hierarchy import (
    ROUTES,
    TRAITS,
    Role,
    Route,
    Traits,
    delegation_candidates,
    holds,
    route,
    walk_candidates,
)
from registry.identifier import Handle, Prefix
from tests.registry.strategies import fast, prefixes, valid_handles

RECURSIVE = TRAITS[Role.TOP]
NON_RECURSIVE = TRAITS[Role.SECONDARY]


def texts(found: list[Prefix]) -> list[str]:
    return [p.text for p in found]


# --- route ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "away", "traits", "expected"),
    [
        # held  away   rec    route          example from the module docstring
        (True, False, NON_RECURSIVE, Route.LOCAL),  # 88.100/x at the secondary 88.100
        (True, False, RECURSIVE, Route.LOCAL),  # 88/x at the top 88
        (True, True, RECURSIVE, Route.RECURSE),  # 88.100.1/x at the top 88
        (True, True, NON_RECURSIVE, Route.REFER),  # 88.101.1/x at 88.101, delegated
        (False, False, RECURSIVE, Route.RECURSE),  # anything at a recursive node
        (False, False, NON_RECURSIVE, Route.REFER),  # 88.102/x at the secondary 88.100
    ],
)
def test_route_follows_every_row_of_the_table(
    held: bool, away: bool, traits: Traits, expected: Route
) -> None:
    assert route(traits, held=held, away=away) is expected
    assert ROUTES[(held, away, traits.recursive)] is expected


def test_routes_table_has_exactly_the_documented_rows() -> None:
    assert len(ROUTES) == 6
    assert all(not away for (held, away, _) in ROUTES if not held)


@pytest.mark.parametrize("traits", [RECURSIVE, NON_RECURSIVE], ids=["recursive", "plain"])
def test_away_does_not_matter_for_a_prefix_not_held(traits: Traits) -> None:
    assert route(traits, held=False, away=True) is route(traits, held=False, away=False)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("held", "away"), list(itertools.product([True, False], repeat=2)))
def test_route_answers_for_every_role_and_fact(role: Role, held: bool, away: bool) -> None:
    assert isinstance(route(TRAITS[role], held=held, away=away), Route)


def test_route_docstring_example() -> None:
    assert route(TRAITS[Role.SECONDARY], held=False, away=False) is Route.REFER


@pytest.mark.parametrize(
    ("role", "held", "away", "expected"),
    [
        (Role.TOP, False, False, Route.RECURSE),
        (Role.SECONDARY, True, True, Route.REFER),
        (Role.ENTERPRISE, True, False, Route.LOCAL),
        (Role.ENTERPRISE, False, False, Route.REFER),
        (Role.RECURSIVE, False, False, Route.RECURSE),
    ],
)
def test_route_per_role(role: Role, held: bool, away: bool, expected: Route) -> None:
    assert route(TRAITS[role], held=held, away=away) is expected


# --- TRAITS -----------------------------------------------------------------------------


def test_every_role_has_traits() -> None:
    assert set(TRAITS) == set(Role)
    assert [r.value for r in Role] == ["top", "secondary", "enterprise", "recursive"]


def test_top_traits() -> None:
    top = TRAITS[Role.TOP]
    assert top.stores and top.recursive and top.keeps_registry
    assert not top.onboards and not top.registers and not top.needs_parent
    assert top.parent is None


def test_secondary_traits() -> None:
    secondary = TRAITS[Role.SECONDARY]
    assert secondary.stores and secondary.onboards and secondary.registers
    assert not secondary.recursive and not secondary.keeps_registry
    assert secondary.parent is Role.TOP
    assert not secondary.needs_parent


def test_enterprise_traits() -> None:
    enterprise = TRAITS[Role.ENTERPRISE]
    assert enterprise.stores
    assert not enterprise.recursive and not enterprise.keeps_registry
    assert not enterprise.onboards and not enterprise.registers and not enterprise.needs_parent
    assert enterprise.parent is Role.SECONDARY


def test_recursive_traits() -> None:
    recursive = TRAITS[Role.RECURSIVE]
    assert recursive.recursive and recursive.needs_parent
    assert not recursive.stores
    assert not recursive.keeps_registry and not recursive.onboards and not recursive.registers
    assert recursive.parent is Role.TOP


def test_single_holders_of_each_duty() -> None:
    assert [r for r in Role if TRAITS[r].keeps_registry] == [Role.TOP]
    assert [r for r in Role if TRAITS[r].onboards] == [Role.SECONDARY]
    assert [r for r in Role if TRAITS[r].registers] == [Role.SECONDARY]
    assert [r for r in Role if TRAITS[r].needs_parent] == [Role.RECURSIVE]
    assert [r for r in Role if not TRAITS[r].stores] == [Role.RECURSIVE]
    assert {r for r in Role if TRAITS[r].recursive} == {Role.TOP, Role.RECURSIVE}


def test_every_parent_is_a_storing_role() -> None:
    for traits in TRAITS.values():
        if traits.parent is not None:
            assert TRAITS[traits.parent].stores
        if traits.needs_parent:
            assert traits.parent is not None


# --- holds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("own", "handle", "expected"),
    [
        ("88.100", "88.100/x", True),
        ("88.100", "88.100.1/x", True),
        ("88.100", "88.100.1.2/x", True),
        ("88", "88.100/x", True),
        ("88.100", "88/x", False),
        ("88.100", "88.101/x", False),
        ("88.100", "88.1000/x", False),  # a string prefix is not a prefix
        ("88.100", "0.NA/88.100", True),  # a prefix record is homed at its prefix
        ("88.100", "0.NA/88.100.7", True),
        ("88.100", "0.NA/88", False),
        ("88", "0.NA/89", False),
        ("88", "88.T1/x", False),  # derived in Handle's syntax, but not a national prefix
        ("88.100", "0.NA/88.100.T1", False),
        ("88", "21.T14999/x", False),
        ("88", "0.NA/21.T14999", False),
    ],
)
def test_holds(own: str, handle: str, expected: bool) -> None:
    assert holds(Prefix.parse(own), Handle.parse(handle)) is expected


@pytest.mark.parametrize("handle", ["88/x", "0.NA/88", "88.100.1/x"])
def test_a_storeless_node_holds_nothing(handle: str) -> None:
    assert holds(None, Handle.parse(handle)) is False


# --- delegation_candidates --------------------------------------------------------------


@pytest.mark.parametrize(
    ("own", "handle", "expected"),
    [
        ("88", "88.101.1/x", ["88.101.1", "88.101"]),
        ("88.101", "88.101.1/x", ["88.101.1"]),
        ("88.101", "88.101.1.2.3/x", ["88.101.1.2.3", "88.101.1.2", "88.101.1"]),
        ("88.101", "88.101/x", []),  # own prefix: never delegated
        ("88", "88/x", []),
    ],
)
def test_delegation_candidates_longest_first_stopping_before_own(
    own: str, handle: str, expected: list[str]
) -> None:
    assert texts(delegation_candidates(Prefix.parse(own), Handle.parse(handle))) == expected


@pytest.mark.parametrize("handle", ["0.NA/88.101.1", "0.NA/88.101", "0.NA/88.101.1.2", "0.na/88.5"])
def test_no_delegation_candidates_for_prefix_records(handle: str) -> None:
    assert delegation_candidates(Prefix.parse("88"), Handle.parse(handle)) == []


@pytest.mark.parametrize("handle", ["89.1/x", "88.102/x", "88.1010/x", "8/x", "88/x"])
def test_no_delegation_candidates_for_foreign_prefixes(handle: str) -> None:
    assert delegation_candidates(Prefix.parse("88.101"), Handle.parse(handle)) == []


# --- walk_candidates --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handle", "expected"),
    [
        ("88.101.1/x", ["88.101.1", "88.101", "88"]),
        ("88/x", ["88"]),
        ("0.NA/88.100", ["88.100", "88"]),
        ("0.NA/88", ["88"]),
        ("20.500.1.2/a/b", ["20.500.1.2", "20.500.1", "20.500", "20"]),
    ],
)
def test_walk_candidates_home_prefix_first_up_to_the_root(handle: str, expected: list[str]) -> None:
    assert texts(walk_candidates(Handle.parse(handle))) == expected


# --- properties -------------------------------------------------------------------------


@st.composite
def own_and_handle(draw: st.DrawFn) -> tuple[Prefix, Handle]:
    """A handle and a prefix that is usually one of its home prefix's ancestors."""
    handle = Handle.parse(draw(valid_handles))
    ancestors = walk_candidates(handle)
    own = draw(st.one_of(st.sampled_from(ancestors), prefixes.map(Prefix)))
    return own, handle


@fast
@given(own_and_handle())
def test_candidates_lie_strictly_below_own_and_above_the_home_prefix(
    case: tuple[Prefix, Handle],
) -> None:
    own, handle = case
    home = handle.home_prefix
    found = delegation_candidates(own, handle)
    for candidate in found:
        assert own.contains(candidate) and candidate != own
        assert candidate.contains(home)
    lengths = [len(c.segments) for c in found]
    assert lengths == sorted(lengths, reverse=True)
    assert len(set(lengths)) == len(lengths)
    if found:
        assert found[0] == home
        assert found[-1].parent == own
    expected_any = not handle.is_prefix_record and own.contains(home) and own != home
    assert bool(found) is expected_any


@fast
@given(valid_handles)
def test_walk_candidates_are_every_ancestor_of_the_home_prefix(text: str) -> None:
    handle = Handle.parse(text)
    found = walk_candidates(handle)
    assert found[0] == handle.home_prefix
    assert found[-1].parent is None
    assert len(found) == len(handle.home_prefix.segments)
    for shorter, longer in itertools.pairwise(reversed(found)):
        assert longer.parent == shorter
    assert all(holds(p, handle) for p in found)
