"""A survey of the hierarchy for the top node's status page: which nodes there are, and
what a bounded probe of each says about it. Pure: :mod:`node.status_page` does the I/O.

Every node is listed, the top node first, then each secondary node followed by the
enterprise prefixes under it. The top's registry names, for an enterprise prefix, the
secondary node that filed it; whether the enterprise runs a node of its own is said by
that secondary's record ``0.NA/<prefix>`` (its ``NODE_URL`` delegating away), which the
secondary lists in its ``/api/kpis`` answer (``enterpriseNodes``): the status page asks
each secondary once, then the enterprise nodes it names.

A node's health comes from one ``GET /readyz`` within the status deadline::

    outcome of the probe                          health     detail
    200 within SLOW_AFTER of the deadline         up
    200, later                                    slow       answered in N s
    503 (its store is down, ...)                  not ready  the node's message
    no answer within the deadline (frozen)        slow       no answer within N s
    refused, reset, any other status, not JSON    down       why
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from registry.prefix_entry import PrefixEntry, PrefixKind

STATUS_DEADLINE = 1.0  # seconds a status answer waits for the slowest node
SLOW_AFTER = 0.5  # a readiness answer later than this is "slow"


class Health(StrEnum):
    UP = "up"
    NOT_READY = "not ready"
    SLOW = "slow"
    DOWN = "down"


class Failure(StrEnum):
    """Why a call to a node brought no answer."""

    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class Reply:
    """What one bounded call to a node brought: a status and JSON body, or a failure.

    >>> health_of(Reply(200, {"status": "ready"}, 0.01))
    (<Health.UP: 'up'>, '')
    """

    status: int | None
    body: Any
    seconds: float
    failure: Failure | None = None
    message: str = ""


def health_of(readiness: Reply, slow_after: float = SLOW_AFTER) -> tuple[Health, str]:
    """A node's health and why, from its answer to ``GET /readyz`` (module docstring)."""
    if readiness.failure is Failure.TIMEOUT:
        return Health.SLOW, readiness.message or "no answer in time"
    if readiness.failure is not None:
        return Health.DOWN, readiness.message
    if readiness.status == 503:
        said = readiness.body.get("message") if isinstance(readiness.body, dict) else None
        return Health.NOT_READY, str(said or "not ready")
    if readiness.status != 200:
        return Health.DOWN, f"answered HTTP {readiness.status} to /readyz"
    if readiness.seconds > slow_after:
        return Health.SLOW, f"answered in {readiness.seconds:.2f} s"
    return Health.UP, ""


@dataclass(frozen=True, slots=True)
class Member:
    """A prefix of the hierarchy and the node answering for it.

    ``node_url`` is the node holding the prefix's handles; ``own_node`` says whether
    that node is the prefix's own (false for an enterprise served by its secondary;
    None while nobody knows, its secondary not having answered).
    """

    prefix: str
    kind: PrefixKind
    parent: str | None
    node_url: str
    own_node: bool | None
    owner: str = ""
    industry: str = ""
    credit_code: str = ""

    @property
    def depth(self) -> int:
        return {PrefixKind.TOP: 0, PrefixKind.SECONDARY: 1}.get(self.kind, 2)


def members(entries: Iterable[PrefixEntry]) -> list[Member]:
    """Every prefix of the top's registry in tree order: the top, then each secondary
    followed by the enterprises under it (an enterprise whose secondary is not
    registered comes last). Enterprises are listed as served by the node the registry
    names until :func:`with_enterprise_node` says otherwise.

    >>> from registry.identifier import Prefix
    >>> found = members([PrefixEntry(Prefix("88.100.1"), "http://s:1"),
    ...     PrefixEntry(Prefix("88.100"), "http://s:1", kind=PrefixKind.SECONDARY),
    ...     PrefixEntry(Prefix("88"), "http://t:1", kind=PrefixKind.TOP)])
    >>> [(m.prefix, m.parent) for m in found]
    [('88', None), ('88.100', '88'), ('88.100.1', '88.100')]
    """
    by_kind: dict[PrefixKind, list[PrefixEntry]] = {kind: [] for kind in PrefixKind}
    for entry in entries:
        by_kind[entry.kind].append(entry)
    tops = sorted(by_kind[PrefixKind.TOP], key=_order)
    top = tops[0].prefix.text if tops else None
    secondaries = sorted(by_kind[PrefixKind.SECONDARY], key=_order)
    enterprises = sorted(by_kind[PrefixKind.ENTERPRISE], key=_order)
    found = [_member(e, None, own_node=True) for e in tops]
    placed: set[str] = set()
    for secondary in secondaries:
        found.append(_member(secondary, top, own_node=True))
        for ent in enterprises:
            if secondary.prefix.contains(ent.prefix) and ent.prefix.text not in placed:
                placed.add(ent.prefix.text)
                own = ent.node_url.rstrip("/") != secondary.node_url.rstrip("/")
                found.append(_member(ent, secondary.prefix.text, own_node=own))
    for ent in enterprises:
        if ent.prefix.text not in placed:
            found.append(_member(ent, None, own_node=None))
    return found


def with_enterprise_node(member: Member, listed: Any) -> Member:
    """``member`` once its secondary node's ``enterpriseNodes`` (from its ``/api/kpis``)
    are known; None or anything malformed: the secondary did not say.

    >>> m = Member("88.101.1", PrefixKind.ENTERPRISE, "88.101", "http://s:2", False)
    >>> with_enterprise_node(m, [{"prefix": "88.101.1", "url": "http://e:10"}]).node_url
    'http://e:10'
    """
    if not isinstance(listed, list):
        return replace(member, own_node=None)
    for node in listed:
        if isinstance(node, dict) and node.get("prefix") == member.prefix:
            url = node.get("url")
            if isinstance(url, str) and url:
                return replace(member, node_url=url.rstrip("/"), own_node=True)
    return replace(member, own_node=False)


def member_json(
    member: Member, health: tuple[Health, str] | None, kpis: dict[str, Any] | None
) -> dict[str, Any]:
    """One node row of the status answer; ``health`` None: not probed (no own node)."""
    state, detail = health if health is not None else (None, _unprobed(member))
    return {
        "prefix": member.prefix,
        "kind": member.kind.value,
        "parent": member.parent,
        "depth": member.depth,
        "owner": member.owner,
        "industry": member.industry,
        "creditCode": member.credit_code,
        "nodeUrl": member.node_url,
        "ownNode": member.own_node,
        "health": state.value if state is not None else None,
        "detail": detail,
        "kpis": kpis,
    }


def _unprobed(member: Member) -> str:
    if member.own_node is None:
        return "not known: its secondary node did not say where it is served"
    return f"served by {member.parent or 'its secondary node'}"


def _member(entry: PrefixEntry, parent: str | None, *, own_node: bool | None) -> Member:
    return Member(
        prefix=entry.prefix.text,
        kind=entry.kind,
        parent=parent,
        node_url=entry.node_url.rstrip("/"),
        own_node=own_node,
        owner=entry.owner,
        industry=entry.industry,
        credit_code=entry.credit_code,
    )


def _order(entry: PrefixEntry) -> tuple[int, ...]:
    """Numeric order of dotted national prefixes (88.2 before 88.10)."""
    return tuple(int(part) if part.isdigit() else 1 << 30 for part in entry.prefix.text.split("."))
