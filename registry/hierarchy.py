"""The hierarchy as data: node roles, what each does, and which node answers a handle.

Every rule about *who answers what* lives in this module as tables, so the HTTP layer
never asks ``if role == ...``. A node's answer to a handle is one of three routes:

=========  ==================================================================
LOCAL      answer from this node's own store (it is authoritative)
RECURSE    resolve through the hierarchy: cache, then the responsible node
REFER      answer 301 "that prefix doesn't live here" with the referral known
=========  ==================================================================

The route depends on three facts, all computed before this table is consulted::

    held   the handle's home prefix lies under the prefix the node holds (and is
           national: digit segments, the only prefixes this hierarchy allocates)
    away   a delegation record at this node hands that prefix to another node
    rec    the role resolves recursively (top, recursive)

    held  away  rec   route      example
    yes   no    -     LOCAL      88.100/x at the secondary 88.100
    yes   yes   yes   RECURSE    88.100.1/x at the top 88 (filed by 88.100)
    yes   yes   no    REFER      88.101.1/x at 88.101, delegated to an enterprise node
    no    -     yes   RECURSE    anything at a recursive node (asks its root)
    no    -     no    REFER      88.102/x at the secondary 88.100 (refers to its parent)

One rule comes before the table: a home prefix outside the national policy
(``21.T14999``, ``88.T1``: valid Handle prefixes) is held by no node of this hierarchy,
so every node answers 301 with no referral, without asking its parent or its root.

Prefix records (``0.NA/P``) are never "away": the node that delegated ``P`` keeps the
record that says where ``P`` went (the top's prefix registry, a secondary's enterprise
records), so a held prefix record is always answered locally.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from registry.identifier import Handle, Prefix


class Role(StrEnum):
    """What a node is in the hierarchy (SPEC §3)."""

    TOP = "top"
    SECONDARY = "secondary"
    ENTERPRISE = "enterprise"
    RECURSIVE = "recursive"


@dataclass(frozen=True, slots=True)
class Traits:
    """What a role does; read from :data:`TRAITS`, never from ``if role == ...``."""

    stores: bool  # keeps an authoritative store for its prefix
    recursive: bool  # resolves other nodes' handles through a cache
    keeps_registry: bool  # accepts prefix registrations and filings (备案)
    onboards: bool  # takes enterprise applications and allocates prefixes
    parent: Role | None  # the role of the node it refers foreign prefixes to
    needs_parent: bool  # cannot run without one
    registers: bool  # registers its own prefix with its parent at start-up


TRAITS: dict[Role, Traits] = {
    Role.TOP: Traits(
        stores=True,
        recursive=True,
        keeps_registry=True,
        onboards=False,
        parent=None,
        needs_parent=False,
        registers=False,
    ),
    Role.SECONDARY: Traits(
        stores=True,
        recursive=False,
        keeps_registry=False,
        onboards=True,
        parent=Role.TOP,
        needs_parent=False,
        registers=True,
    ),
    Role.ENTERPRISE: Traits(
        stores=True,
        recursive=False,
        keeps_registry=False,
        onboards=False,
        parent=Role.SECONDARY,
        needs_parent=False,
        registers=False,
    ),
    Role.RECURSIVE: Traits(
        stores=False,
        recursive=True,
        keeps_registry=False,
        onboards=False,
        parent=Role.TOP,
        needs_parent=True,
        registers=False,
    ),
}


class Route(StrEnum):
    LOCAL = "local"
    RECURSE = "recurse"
    REFER = "refer"


# (held, away, recursive) -> route; see the module docstring.
ROUTES: dict[tuple[bool, bool, bool], Route] = {
    (True, False, False): Route.LOCAL,
    (True, False, True): Route.LOCAL,
    (True, True, True): Route.RECURSE,
    (True, True, False): Route.REFER,
    (False, False, True): Route.RECURSE,
    (False, False, False): Route.REFER,
}


def route(traits: Traits, *, held: bool, away: bool) -> Route:
    """The route for a handle, given whether it is held here and delegated away.

    >>> route(TRAITS[Role.SECONDARY], held=False, away=False)
    <Route.REFER: 'refer'>
    """
    return ROUTES[(held, away and held, traits.recursive)]


def holds(own: Prefix | None, handle: Handle) -> bool:
    """Whether a node holding ``own`` (None: a store-less node) is home for ``handle``.

    Only a national prefix (digit segments) is held by any node of this hierarchy: the
    node holding ``88`` is not home for ``88.T1/x`` (see :mod:`registry.authority`)."""
    home = handle.home_prefix
    return own is not None and home.national and own.contains(home)


def delegation_candidates(own: Prefix, handle: Handle) -> list[Prefix]:
    """The prefixes whose records could delegate ``handle`` away from ``own``, longest first.

    Only prefixes strictly below ``own`` can be delegated (a node never delegates its
    own prefix), and prefix records are never delegated (see the module docstring).

    >>> [p.text for p in delegation_candidates(Prefix("88"), Handle.parse("88.101.1/x"))]
    ['88.101.1', '88.101']
    """
    home = handle.home_prefix
    if handle.is_prefix_record or not own.contains(home):
        return []
    found: list[Prefix] = []
    current: Prefix | None = home
    while current is not None and current != own:
        found.append(current)
        current = current.parent
    return found


def walk_candidates(handle: Handle) -> list[Prefix]:
    """Every prefix above ``handle`` (its home prefix first) whose record may say where
    it lives; a recursive node with no registry of its own asks its root for them."""
    found: list[Prefix] = []
    current: Prefix | None = handle.home_prefix
    while current is not None:
        found.append(current)
        current = current.parent
    return found
