"""One product trace as a state machine: which handles to resolve next, and the tree their
answers build. No I/O: the caller resolves each handle of :meth:`Trace.next_batch` the way
its node answers clients and feeds the outcome back through :meth:`Trace.resolved`, as
:class:`resolver.walk.Walk` does for one resolution::

    trace = Trace(Handle.parse("88.100.1/JM-E5-2026-000123"))
    while batch := trace.next_batch():          # one level of the tree at a time
        for handle in batch:
            trace.resolved(handle, Lookup.found(values, "http://127.0.0.1:8001", "MISS"))
    trace.result()                              # the JSON answer of /api/trace

The tree grows from the root, breadth first. Each link value of a found record (see
:mod:`registry.relation`) whose relation is followed becomes a child, decided in this
order, so that every handle is resolved at most once and the walk always ends::

    link ──► data is not a valid handle               INVALID       never resolved
         ├─► its handle is already in the tree        SEEN          a back-reference (a cycle,
         │   (ASCII case-insensitively, Handle's key)               a self-link, a shared part)
         ├─► the linking node is at the depth bound   NOT_FOLLOWED  the linking node TRUNCATED
         ├─► max_nodes handles are already resolved   NOT_FOLLOWED  the linking node TRUNCATED
         └─► otherwise: resolved with the next level  FOUND, NOT_FOUND, UNREACHABLE or INVALID

The root is depth 0, so ``depth=2`` resolves the root, its links and theirs, and lists
the links found at depth 2 without resolving them. A trace is ``complete`` when no branch
was unreachable and nothing was left unfollowed; not-found and invalid links are answers
(the records say so), not gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from registry.errors import InvalidValue
from registry.identifier import Handle
from registry.relation import ALL_RELATIONS, Link, Relation, links_in, value_data

DEFAULT_DEPTH = 5
MAX_DEPTH = 10
MAX_NODES = 200  # handles one trace resolves at most: bounds the fan-out of wide records


class Status(StrEnum):
    """What a node of the tree is; the first four are also what a lookup can give."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    UNREACHABLE = "unreachable"  # resolving it failed: its branch is missing
    INVALID = "invalid"  # not a valid handle, or the resolving node said so
    SEEN = "seen"  # already in the tree: not resolved again
    NOT_FOLLOWED = "not_followed"  # beyond the depth bound or the node budget


@dataclass(frozen=True, slots=True)
class Lookup:
    """What resolving one handle gave.

    >>> Lookup.unreachable("node http://127.0.0.1:8010 is unreachable").status
    <Status.UNREACHABLE: 'unreachable'>
    """

    status: Status
    values: tuple[object, ...] = ()
    resolved_by: str | None = None
    cache: str | None = None  # HIT, MISS, STALE; None when the node answered from its store
    message: str | None = None

    @classmethod
    def found(cls, values: Sequence[object], resolved_by: str, cache: str | None) -> Lookup:
        return cls(Status.FOUND, tuple(values), resolved_by, cache)

    @classmethod
    def not_found(cls, message: str, resolved_by: str | None, cache: str | None) -> Lookup:
        return cls(Status.NOT_FOUND, (), resolved_by, cache, message)

    @classmethod
    def unreachable(cls, message: str) -> Lookup:
        return cls(Status.UNREACHABLE, message=message)

    @classmethod
    def invalid(cls, message: str) -> Lookup:
        return cls(Status.INVALID, message=message)


@dataclass(slots=True)
class TraceNode:
    """One handle in the tree; ``status`` is None until its lookup comes back."""

    handle: str  # as the link (or the caller, for the root) spelled it
    depth: int
    status: Status | None = None
    resolved_by: str | None = None
    cache: str | None = None
    values: list[dict[str, Any]] = field(default_factory=list)
    links: list[TraceLink] = field(default_factory=list)
    truncated: bool = False
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        assert self.status is not None, f"{self.handle} was never answered"
        out: dict[str, Any] = {"handle": self.handle, "status": self.status.value}
        if self.status in (Status.FOUND, Status.NOT_FOUND):
            out["resolvedBy"] = self.resolved_by
            out["cache"] = self.cache
        if self.status is Status.FOUND:
            out["values"] = self.values
            out["links"] = [link.to_json() for link in self.links]
        if self.truncated:
            out["truncated"] = True
        if self.message is not None:
            out["message"] = self.message
        return out


@dataclass(slots=True)
class TraceLink:
    relation: Relation
    index: int | None
    target: TraceNode

    def to_json(self) -> dict[str, Any]:
        return {
            "relation": self.relation.value,
            "index": self.index,
            "target": self.target.to_json(),
        }


class Trace:
    """The state of tracing the links of ``root``.

    >>> trace = Trace(Handle.parse("88.100.1/car"), depth=1)
    >>> trace.next_batch()
    [Handle(prefix='88.100.1', suffix='car')]
    >>> link = {"index": 10, "type": "COMPONENT", "data": "88.100.2/pack"}
    >>> trace.resolved(Handle.parse("88.100.1/car"), Lookup.found([link], "http://n", None))
    >>> trace.next_batch()
    [Handle(prefix='88.100.2', suffix='pack')]
    """

    def __init__(
        self,
        root: Handle,
        *,
        depth: int = DEFAULT_DEPTH,
        relations: frozenset[Relation] = ALL_RELATIONS,
        max_nodes: int = MAX_NODES,
    ) -> None:
        if not 0 <= depth <= MAX_DEPTH:
            raise InvalidValue(f"depth must be between 0 and {MAX_DEPTH}, got {depth}")
        if max_nodes < 1:
            raise ValueError("a trace resolves at least its root")
        self.root = root
        self.depth = depth
        self.relations = relations
        self.max_nodes = max_nodes
        self.tree = TraceNode(root.text, 0)
        # Every handle given a place in the tree, resolved or about to be: the cycle guard.
        self._known: dict[str, TraceNode] = {root.key: self.tree}
        self._pending: list[tuple[Handle, TraceNode]] = [(root, self.tree)]
        self._asked: dict[str, TraceNode] = {}
        self._unreachable: list[str] = []
        self._not_followed: dict[str, str] = {}  # key -> text, first spelling met

    @property
    def done(self) -> bool:
        return not self._pending and not self._asked

    @property
    def resolutions(self) -> int:
        """Handles given to the caller to resolve so far (never above ``max_nodes``)."""
        return len(self._known)

    def next_batch(self) -> list[Handle]:
        """The handles to resolve now (all of one level), or [] when there are none."""
        batch, self._pending = self._pending, []
        for handle, node in batch:
            self._asked[handle.key] = node
        return [handle for handle, _ in batch]

    def resolved(self, handle: Handle, lookup: Lookup) -> None:
        """Take the outcome of resolving ``handle``, one of :meth:`next_batch`'s."""
        node = self._asked.pop(handle.key, None)
        if node is None:
            raise ValueError(f"{handle.text} is not awaiting an answer in this trace")
        node.status = lookup.status
        node.resolved_by = lookup.resolved_by
        node.cache = lookup.cache
        node.message = lookup.message
        if lookup.status is Status.UNREACHABLE:
            self._unreachable.append(node.handle)
        if lookup.status is not Status.FOUND:
            return
        node.values = summary(lookup.values)
        for link in links_in(lookup.values):
            if link.relation in self.relations:
                node.links.append(TraceLink(link.relation, link.index, self._child(node, link)))

    def _child(self, parent: TraceNode, link: Link) -> TraceNode:
        depth = parent.depth + 1
        target = link.target
        if target is None:
            return TraceNode(link.text, depth, Status.INVALID, message=link.problem)
        if target.key in self._known:
            return TraceNode(
                link.text,
                depth,
                Status.SEEN,
                message="already in this trace (a cycle or a shared part): not resolved again",
            )
        if parent.depth >= self.depth:
            reason = f"beyond the depth bound ({self.depth})"
        elif len(self._known) >= self.max_nodes:
            reason = f"over this trace's bound of {self.max_nodes} resolved handles"
        else:
            child = TraceNode(link.text, depth)
            self._known[target.key] = child
            self._pending.append((target, child))
            return child
        parent.truncated = True
        self._not_followed.setdefault(target.key, link.text)
        return TraceNode(link.text, depth, Status.NOT_FOLLOWED, message=reason)

    def result(self) -> dict[str, Any]:
        """The answer of ``GET /api/trace/{handle}``, once :attr:`done`."""
        if not self.done:
            raise ValueError("the trace is not finished")
        return {
            "responseCode": 1,
            "handle": self.root.text,
            "depth": self.depth,
            "relations": [r.value for r in Relation if r in self.relations],
            "complete": not self._unreachable and not self._not_followed,
            "resolved": self.resolutions,
            "unreachable": list(self._unreachable),
            "notFollowed": list(self._not_followed.values()),
            "tree": self.tree.to_json(),
        }


def summary(values: Sequence[object]) -> list[dict[str, Any]]:
    """A record's values as a trace shows them: ``{index, type, value}`` (plus ``format``
    when not a string), leaving out administrators and the links, shown as links.

    >>> summary([{"index": 1, "type": "BATCH", "data": {"format": "string", "value": "B7"}},
    ...          {"index": 10, "type": "COMPONENT", "data": "88.1/x"}])
    [{'index': 1, 'type': 'BATCH', 'value': 'B7'}]
    """
    shown = []
    for value in values:
        # Values come from other nodes: what is not shaped like a value is left out.
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            continue
        fmt, data = value_data(value.get("data"))
        if (
            not isinstance(fmt, str)
            or fmt == "admin"
            or Relation.of_type(value["type"]) is not None
        ):
            continue
        index = value.get("index")
        item = {
            "index": index if type(index) is int else None,
            "type": value["type"],
            "value": data,
        }
        if fmt != "string":
            item["format"] = fmt
        shown.append(item)
    return shown
