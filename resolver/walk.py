"""One recursive resolution as a state machine: which node to ask next, and what its
answer means. No I/O: the caller sends the request to :attr:`Walk.node` and feeds the
answer back through :meth:`Walk.answered` (dnspython's ``_Resolution`` does the same).

A walk starts at the node the prefix records name (the top node's registry, or the
root of a recursive node) and follows referrals::

    ask node ──► 200, responseCode 1        FOUND       (cache it)
             ├─► 404, responseCode 100      NOT_FOUND   (cache it briefly)
             ├─► 400, responseCode 301 with a referral to a node not yet asked
             │                              ask that node next (at most max_hops nodes)
             └─► anything else              UpstreamUnavailable / UpstreamTimeout,
                                            naming the node: never a false "not found"
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from registry.errors import IdnodeError, UpstreamTimeout, UpstreamUnavailable
from registry.identifier import Handle, ascii_lower
from resolver.cache import Outcome

MAX_HOPS = 4


@dataclass(frozen=True, slots=True)
class Answer:
    """What a node answered: HTTP status and body bytes, and, when that node resolved
    through its cache, what it said of it (``X-Resolved-By``, ``X-Cache``)."""

    status: int
    body: bytes
    resolved_by: str | None = None
    cache: str | None = None


@dataclass(frozen=True, slots=True)
class Resolved:
    outcome: Outcome
    body: bytes
    source: str  # the node that answered authoritatively
    path: tuple[str, ...]  # every node asked, in order


@dataclass(slots=True)
class Walk:
    """The state of resolving ``handle``, starting at node ``start``.

    >>> walk = Walk(Handle.parse("88.101.1/x"), "http://secondary")
    >>> walk.answered(Answer(400, b'{"responseCode":301,"referral":{"url":"http://ent"}}'))
    >>> walk.node
    'http://ent'
    """

    handle: Handle
    start: str
    max_hops: int = MAX_HOPS
    asked: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.asked.append(self.start.rstrip("/"))

    @property
    def node(self) -> str:
        return self.asked[-1]

    def answered(self, answer: Answer) -> Resolved | None:
        """The outcome, or None when the walk goes on to :attr:`node`; raises on failure."""
        node = self.node
        body = _json_object(answer.body)
        code = body.get("responseCode") if body is not None else None
        if answer.status == 200 and code == 1 and self._is_record(body):
            assert body is not None
            # Kept in this node's own encoding, whatever spacing or key order the other
            # node used, so serving it later needs no JSON work (misses are rare).
            canonical = orjson.dumps(
                {"responseCode": 1, "handle": body["handle"], "values": body["values"]}
            )
            return Resolved(Outcome.FOUND, canonical, node, tuple(self.asked))
        if answer.status == 404 and code == 100:
            return Resolved(Outcome.NOT_FOUND, answer.body, node, tuple(self.asked))
        if answer.status == 400 and code == 301 and body is not None:
            self._follow(body.get("referral"))
            return None
        raise _failure(node, answer.status, body)

    def _is_record(self, body: dict[str, object] | None) -> bool:
        return (
            body is not None
            and isinstance(body.get("values"), list)
            and isinstance(body.get("handle"), str)
            and ascii_lower(str(body["handle"])) == self.handle.key
        )

    def _follow(self, referral: object) -> None:
        url = referral.get("url") if isinstance(referral, dict) else None
        if not isinstance(url, str) or not url:
            raise UpstreamUnavailable(
                f"node {self.node} is not responsible for {self.handle.text} and named no "
                "node that is: the hierarchy's prefix records disagree"
            )
        url = url.rstrip("/")
        if url in self.asked:
            raise UpstreamUnavailable(
                f"referral loop resolving {self.handle.text}: {' -> '.join(self.asked)} -> {url}"
            )
        if len(self.asked) >= self.max_hops:
            raise UpstreamUnavailable(
                f"resolving {self.handle.text} took more than {self.max_hops} referrals: "
                + " -> ".join(self.asked)
            )
        self.asked.append(url)


def _json_object(raw: bytes) -> dict[str, object] | None:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _failure(node: str, status: int, body: dict[str, object] | None) -> IdnodeError:
    said = body.get("message") if body is not None else None
    detail = f": {said}" if isinstance(said, str) else ""
    if status == 504:
        return UpstreamTimeout(f"node {node} answered 504{detail}")
    return UpstreamUnavailable(f"node {node} answered HTTP {status} unexpectedly{detail}")
