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

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from registry.delegation import Referral

MAX_HOPS = 3  # top -> secondary -> enterprise node, and one more level
DEFAULT_TIMEOUT = 3.0
MAX_TIMEOUT = 10.0
_SHARE = 0.7  # of its own timeout a node gives the nodes it asks
_MIN_CHILD_TIMEOUT = 0.2


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
    status: str  # ok | timeout | unreachable | error | skipped
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
        """Merge a node's answer (itself a report's JSON); a malformed one is an error."""
        if not isinstance(answer, dict) or not isinstance(answer.get("handles"), list):
            self.failed(url, prefixes, "error", "the answer is not a search result")
            return
        handles = [h for h in answer["handles"] if isinstance(h, str)]
        reported = answer.get("nodes")
        below = reported if isinstance(reported, list) else []
        own = next((n for n in below if isinstance(n, dict) and n.get("node") == url), None)
        found = own.get("found", 0) if own is not None else len(handles)
        self.nodes.append(NodeAnswer(url, tuple(prefixes), "ok", int(found)))
        for node in below:
            if isinstance(node, dict) and node is not own and isinstance(node.get("node"), str):
                self.nodes.append(
                    NodeAnswer(
                        node["node"],
                        tuple(str(p) for p in node.get("prefixes", [])),
                        str(node.get("status", "error")),
                        int(node.get("found", 0)),
                        node.get("message"),
                    )
                )
        if answer.get("truncated"):
            self.truncated = True
        self._add(handles)

    def failed(self, url: str, prefixes: Sequence[str], status: str, message: str) -> None:
        self.nodes.append(NodeAnswer(url, tuple(prefixes), status, 0, message))

    @property
    def unanswered(self) -> list[str]:
        return [n.url for n in self.nodes if n.status != "ok"]

    def to_json(self) -> dict[str, Any]:
        return {
            "responseCode": 1,
            "complete": not self.unanswered,
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
