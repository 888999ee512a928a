"""A search across the hierarchy, merged: what each node found and which did not answer.

The top node's ``GET /api/search`` searches its own store and asks every node its
records delegate to (its secondary nodes), which do the same for theirs (enterprise
nodes with their own node), each with a shorter timeout than its caller so that answers
arrive before the caller gives up. This module merges what comes back; the node does
the asking (:mod:`node.search`)::

    report = SearchReport("http://top:8000", limit=100)
    report.found_here(["88/x"])
    report.answered("http://sec:8001", ["88.100"], child_json)
    report.failed("http://sec:8002", ["88.101"], "timeout", "did not answer within 2s")
    report.to_json()  # {"responseCode": 1, "complete": False, "handles": [...], "nodes": [...]}

A child's answer comes from another node, so it is read defensively
(:func:`read_child`, finding 5 of the "trust boundaries" review): every field is
type-checked, a handle is kept only when it lies under a prefix that child answers for
(the prefixes it was asked about), a node it reports below itself only when that node's
prefixes lie there too, and whatever is dropped is counted. A child that sent anything
dropped is ``partial``; one whose answer is not a search result at all is ``error``.
Neither fails the search, and no other child is affected. Messages are this node's own
words: what a child said about itself or the nodes below it is never repeated.

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from registry.delegation import Referral
from registry.errors import InvalidHandle
from registry.identifier import Handle, Prefix
from registry.prefix_entry import node_url_problem

MAX_HOPS = 3  # top -> secondary -> enterprise node, and one more level
DEFAULT_TIMEOUT = 3.0
MAX_TIMEOUT = 10.0
_SHARE = 0.7  # of its own timeout a node gives the nodes it asks
_MIN_CHILD_TIMEOUT = 0.2
MAX_NODES_BELOW = 256  # nodes a child may report below itself; the rest are dropped
_MAX_URL_CHARS = 2048
# What a reported status means, in this node's words (a child's own message is not kept).
STATUSES = {
    "ok": "answered",
    "partial": "answered with entries that were dropped",
    "timeout": "did not answer in time",
    "unreachable": "could not be reached",
    "error": "did not answer with a search result",
    "skipped": "was not asked",
    "unindexed": "does not index a searched value type",
}


def children_by_node(referrals: Iterable[Referral]) -> dict[str, list[str]]:
    """The nodes to ask, each once, with the prefixes it answers for, in first-seen
    order (the top node files several prefixes with one secondary node)."""
    nodes: dict[str, list[str]] = {}
    for referral in referrals:
        nodes.setdefault(referral.url, []).append(referral.prefix.text)
    return nodes


def child_timeout(timeout: float) -> float | None:
    """The timeout a node gives the nodes it asks, or None when too little is left."""
    share = timeout * _SHARE
    return share if share >= _MIN_CHILD_TIMEOUT else None


@dataclass(frozen=True, slots=True)
class NodeAnswer:
    url: str
    prefixes: tuple[str, ...]
    status: str  # one of STATUSES
    found: int = 0
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "node": self.url,
            "prefixes": list(self.prefixes),
            "status": self.status,
            "found": self.found,
        }
        if self.message:
            out["message"] = self.message
        return out


@dataclass(frozen=True, slots=True)
class ChildAnswer:
    """What is kept of a child's search answer, and how much was dropped."""

    handles: list[str]
    found: int  # what the child found in its own store, as it says (or as kept)
    truncated: bool
    below: list[NodeAnswer]  # nodes it reports below itself
    malformed: int  # entries that were not what a search answer holds
    foreign: int  # handles and nodes outside the prefixes the child answers for

    @property
    def dropped(self) -> int:
        return self.malformed + self.foreign


def read_child(url: str, prefixes: Sequence[str], answer: object) -> ChildAnswer | None:
    """A child's answer, kept only where it is well-formed and inside ``prefixes`` (the
    prefixes the child was asked about); None when it is not a search result at all.
    Never raises, whatever ``answer`` is.

    >>> kept = read_child("http://a", ["88.100"], {"handles": ["88.100.1/x", "88.101/y", 7]})
    >>> kept.handles, kept.foreign, kept.malformed
    (['88.100.1/x'], 1, 1)
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("handles"), list):
        return None
    scope = [Prefix(p) for p in prefixes]
    handles: list[str] = []
    malformed = foreign = 0
    for item in answer["handles"]:
        match _within(item, scope):
            case None:
                malformed += 1
            case False:
                foreign += 1
            case True:
                assert isinstance(item, str)
                handles.append(item)
    found = len(handles)
    below: list[NodeAnswer] = []
    reported = answer.get("nodes", [])
    if not isinstance(reported, list):
        reported, malformed = [], malformed + 1
    for entry in reported:
        if isinstance(entry, dict) and entry.get("node") == url:  # the child itself
            own = entry.get("found")
            # Its own count, if sensible: it cannot have found more than it sent.
            if isinstance(own, int) and not isinstance(own, bool) and 0 <= own <= found:
                found = own
            continue
        node = _reported_node(entry, url, scope)
        if node is None or (isinstance(node, NodeAnswer) and len(below) >= MAX_NODES_BELOW):
            malformed += 1
        elif isinstance(node, NodeAnswer):
            below.append(node)
        else:
            foreign += 1
    return ChildAnswer(handles, found, answer.get("truncated") is True, below, malformed, foreign)


def _within(item: object, scope: Sequence[Prefix]) -> bool | None:
    """None: not a handle; False: a handle outside ``scope``; True: one inside it."""
    if not isinstance(item, str):
        return None
    try:
        handle = Handle.parse(item)
    except InvalidHandle:
        return None
    return _covered(handle.prefix, scope)


def _covered(prefix: str, scope: Sequence[Prefix]) -> bool:
    # Handle.parse and Prefix.parse validated ``prefix``; contains compares text.
    return any(mine.contains(Prefix(prefix)) for mine in scope)


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def _reported_node(
    entry: object, via: str, scope: Sequence[Prefix]
) -> NodeAnswer | Literal["foreign"] | None:
    """A node a child reports below itself: None when malformed, "foreign" when it
    claims prefixes outside the child's, else the entry in this node's words."""
    if not isinstance(entry, dict):
        return None
    url, prefixes, status, found = (entry.get(k) for k in ("node", "prefixes", "status", "found"))
    if (
        not isinstance(url, str)
        or len(url) > _MAX_URL_CHARS
        or node_url_problem(url) is not None
        or not isinstance(prefixes, list)
        or not prefixes
        or not isinstance(status, str)
        or status not in STATUSES
        or not _count(found)
    ):
        return None
    parsed = []
    for text in prefixes:
        if not isinstance(text, str):
            return None
        try:
            parsed.append(Prefix.parse_national(text))  # what nodes here hold
        except InvalidHandle:
            return None
    if not all(_covered(p.text, scope) for p in parsed):
        return "foreign"
    assert isinstance(found, int)
    message = None if status == "ok" else f"node {via} reports that this node {STATUSES[status]}"
    shown = 0 if status in ("timeout", "unreachable", "error", "skipped", "unindexed") else found
    return NodeAnswer(url, tuple(p.text for p in parsed), status, shown, message)


class SearchReport:
    """The merged answer of one node and the nodes below it."""

    def __init__(self, own_url: str, *, limit: int) -> None:
        self.own_url = own_url
        self.limit = limit
        self.handles: list[str] = []
        self.nodes: list[NodeAnswer] = []
        self.truncated = False
        self._seen: set[str] = set()

    def found_here(self, handles: Sequence[str], prefixes: Sequence[str] = ()) -> None:
        self.nodes.append(NodeAnswer(self.own_url, tuple(prefixes), "ok", len(handles)))
        self._add(handles)

    def answered(self, url: str, prefixes: Sequence[str], answer: object) -> None:
        """Merge a child's answer (itself a report's JSON), read by :func:`read_child`."""
        child = read_child(url, prefixes, answer)
        if child is None:
            self.failed(url, prefixes, "error", f"node {url} {STATUSES['error']}")
            return
        if child.dropped:
            message = (
                f"node {url} sent {child.malformed} malformed entries and {child.foreign} "
                f"outside its prefixes ({', '.join(prefixes)}); they were dropped"
            )
            self.nodes.append(NodeAnswer(url, tuple(prefixes), "partial", child.found, message))
        else:
            self.nodes.append(NodeAnswer(url, tuple(prefixes), "ok", child.found))
        self.nodes.extend(child.below)
        if child.truncated:
            self.truncated = True
        self._add(child.handles)

    def failed(self, url: str, prefixes: Sequence[str], status: str, message: str) -> None:
        self.nodes.append(NodeAnswer(url, tuple(prefixes), status, 0, message))

    @property
    def unanswered(self) -> list[str]:
        return [n.url for n in self.nodes if n.status not in ("ok", "partial")]

    def to_json(self) -> dict[str, Any]:
        return {
            "responseCode": 1,
            # A partial answer is not complete: what was dropped may have been meant.
            "complete": all(n.status == "ok" for n in self.nodes),
            "truncated": self.truncated,
            "handles": self.handles,
            "nodes": [n.to_json() for n in self.nodes],
            "unanswered": self.unanswered,
        }

    def _add(self, handles: Sequence[str]) -> None:
        for handle in handles:
            key = handle.lower()
            if key in self._seen:
                continue
            if len(self.handles) >= self.limit:
                self.truncated = True
                return
            self._seen.add(key)
            self.handles.append(handle)
