"""One recursive resolution as a state machine: which node to ask next, and what its
answer means. No I/O: the caller sends the request to :attr:`Walk.node` and feeds the
answer back through :meth:`Walk.answered` (dnspython's ``_Resolution`` does the same).

A walk starts at the node the prefix records name for the handle (the top node's
registry, or the records at a recursive node's root), asked as responsible for that
prefix, and follows referrals::

    ask node ──► 200, responseCode 1        FOUND       (cache it)
             ├─► 404, responseCode 100      NOT_FOUND   (cache it briefly)
             ├─► 400, responseCode 301 with an acceptable referral (below)
             │                              ask that node next (at most max_hops nodes)
             ├─► 400, responseCode 301 and no referral, from the root (asked for no
             │   prefix in particular)      NotResponsible: no node of this hierarchy
             │                              holds the prefix (400/301 to the client)
             └─► anything else              UpstreamUnavailable / UpstreamTimeout,
                                            naming the node: never a false "not found"

Nodes trust each other only for what they are responsible for. A node asked for prefix
``P`` may answer for handles under ``P`` (every hop is chosen so that the handle is) and
may hand on only what it holds: its referral is followed only when

    its prefix    lies within P (a node delegates only what it answers for: that is
                  what its delegation records are; P itself when it hands the whole
                  prefix on, as a secondary node does for an enterprise running its own
                  node, filed at the top node as served through the secondary) and
                  contains the handle's home prefix (it is about this handle)
    its URL       passes the node's :class:`resolver.target.TargetPolicy`
    its node      was not asked already in this walk (no loops)

A referral must name its prefix (the ``prefix`` every node sends with a delegation); one
without (a node pointing up to its parent) is never followed. The node the walk started
at is the one the asking node's own records name, so its URL is the one registered or
filed for that prefix; every later node is named by a node responsible for a prefix
above it, which is what filing it there would have said.

Error messages name the node by its URL and say how it failed (HTTP status, Handle
responseCode), never what it wrote: another node's text is not passed to a client.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from registry.errors import (
    IdnodeError,
    InvalidHandle,
    NotResponsible,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from registry.identifier import Handle, Prefix, ascii_lower
from resolver.cache import Outcome
from resolver.target import TargetPolicy

MAX_HOPS = 4
STRICT = TargetPolicy()
# What a walk allows when its caller passes no policy: private hosts too, so that the
# trace walk (node.trace), which passes none yet, keeps working; resolution passes the
# node's configured policy (resolver.recursion).
UNCHECKED_HOSTS = TargetPolicy(allow_private=True)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a node answered: HTTP status and body bytes, and, when that node resolved
    through its cache, what it said of it (``X-Resolved-By``, ``X-Cache``)."""

    status: int
    body: bytes
    resolved_by: str | None = None
    cache: str | None = None


@dataclass(frozen=True, slots=True)
class Hop:
    """A node to ask, and the prefix it is asked as responsible for; None: the node
    this one is configured to trust for everything (a recursive node's root)."""

    url: str
    prefix: Prefix | None

    def covers(self, handle: Handle) -> bool:
        return self.prefix is None or self.prefix.contains(handle.home_prefix)

    @property
    def label(self) -> str:
        return self.url if self.prefix is None else f"{self.url} (for {self.prefix.text})"


@dataclass(frozen=True, slots=True)
class Resolved:
    outcome: Outcome
    body: bytes
    source: str  # the node that answered authoritatively
    path: tuple[str, ...]  # every node asked, in order
    prefix: Prefix | None = None  # what the source was asked as responsible for


@dataclass(slots=True)
class Walk:
    """The state of resolving ``handle``, starting at ``start``.

    A plain URL as ``start`` names a node the caller trusts for everything (its
    configured parent) and is not checked against ``policy``; a :class:`Hop` is.

    >>> walk = Walk(Handle.parse("88.101.1/x"), Hop("http://secondary.example", Prefix("88.101")),
    ...             STRICT)
    >>> walk.answered(Answer(400, b'{"responseCode":301,'
    ...     b'"referral":{"url":"http://ent.example","prefix":"88.101.1"}}'))
    >>> walk.node
    'http://ent.example'
    """

    handle: Handle
    start: Hop | str
    policy: TargetPolicy = UNCHECKED_HOSTS
    max_hops: int = MAX_HOPS
    hops: list[Hop] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.start, str):
            self.hops.append(Hop(self.start.rstrip("/"), None))
            return
        hop = Hop(self.start.url.rstrip("/"), self.start.prefix)
        if not hop.covers(self.handle):
            raise UpstreamUnavailable(
                f"node {hop.label} was chosen for {self.handle.text}, which is not under "
                "its prefix: the prefix records disagree"
            )
        if (problem := self.policy.problem(hop.url)) is not None:
            raise UpstreamUnavailable(
                f"the node registered for {self.handle.home_prefix.text} is not asked: {problem}"
            )
        self.hops.append(hop)

    @property
    def node(self) -> str:
        return self.hops[-1].url

    @property
    def hop(self) -> Hop:
        return self.hops[-1]

    @property
    def asked(self) -> list[str]:
        return [hop.url for hop in self.hops]

    def answered(self, answer: Answer) -> Resolved | None:
        """The outcome, or None when the walk goes on to :attr:`node`; raises on failure."""
        hop = self.hop
        body = _json_object(answer.body)
        code = body.get("responseCode") if body is not None else None
        if answer.status == 200 and code == 1 and self._is_record(body):
            assert body is not None
            # Kept in this node's own encoding, whatever spacing or key order the other
            # node used, so serving it later needs no JSON work (misses are rare).
            canonical = orjson.dumps(
                {"responseCode": 1, "handle": body["handle"], "values": body["values"]}
            )
            return Resolved(Outcome.FOUND, canonical, hop.url, tuple(self.asked), hop.prefix)
        if answer.status == 404 and code == 100:
            return Resolved(Outcome.NOT_FOUND, answer.body, hop.url, tuple(self.asked), hop.prefix)
        if answer.status == 400 and code == 301 and body is not None:
            if body.get("referral") is None and hop.prefix is None:
                # The root, trusted for everything, holds no such prefix and knows no
                # node that does: the hierarchy has no answer, and the client is told so.
                raise NotResponsible(
                    f"no node of the hierarchy at {hop.label} holds prefix "
                    f"{self.handle.home_prefix.text}",
                    handle=self.handle.text,
                )
            self._follow(body.get("referral"))
            return None
        raise _failure(hop, answer.status, code)

    def _is_record(self, body: dict[str, object] | None) -> bool:
        return (
            body is not None
            and isinstance(body.get("values"), list)
            and isinstance(body.get("handle"), str)
            and ascii_lower(str(body["handle"])) == self.handle.key
        )

    def _follow(self, referral: object) -> None:
        hop = self.hop
        url = referral.get("url") if isinstance(referral, dict) else None
        if not isinstance(url, str) or not url:
            raise UpstreamUnavailable(
                f"node {hop.label} is not responsible for {self.handle.text} and named no "
                "node that is: the hierarchy's prefix records disagree"
            )
        assert isinstance(referral, dict)
        prefix = _prefix(referral.get("prefix"))
        refused = f"node {hop.label} referred {self.handle.text} elsewhere, refused: "
        if prefix is None:
            raise UpstreamUnavailable(refused + "the referral names no valid prefix")
        if hop.prefix is not None and not hop.prefix.contains(prefix):
            raise UpstreamUnavailable(refused + "the prefix it names is not within its own")
        if not prefix.contains(self.handle.home_prefix):
            raise UpstreamUnavailable(
                refused + f"the prefix it names does not hold {self.handle.home_prefix.text}"
            )
        if (problem := self.policy.problem(url)) is not None:
            raise UpstreamUnavailable(refused + problem)
        url = url.rstrip("/")
        if url in self.asked:
            raise UpstreamUnavailable(
                f"referral loop resolving {self.handle.text}: {' -> '.join(self.asked)} -> {url}"
            )
        if len(self.hops) >= self.max_hops:
            raise UpstreamUnavailable(
                f"resolving {self.handle.text} took more than {self.max_hops} referrals: "
                + " -> ".join(self.asked)
            )
        self.hops.append(Hop(url, prefix))


def _prefix(raw: object) -> Prefix | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return Prefix.parse_national(raw)  # a node of the hierarchy holds no other prefix
    except InvalidHandle:
        return None


def _json_object(raw: bytes) -> dict[str, object] | None:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _failure(hop: Hop, status: int, code: object) -> IdnodeError:
    # How it failed, in our words: the node's own message is not repeated (it may be an
    # internal service's text, or a hostile node's).
    said = f" (responseCode {code})" if type(code) is int else ""
    if status == 504:
        return UpstreamTimeout(f"node {hop.label} answered 504{said}")
    return UpstreamUnavailable(f"node {hop.label} answered HTTP {status} unexpectedly{said}")
