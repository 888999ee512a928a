"""``GET /api/trace/{handle}``: product traceability across nodes, on every role.

The walk itself is :class:`resolver.trace.Trace`; this module resolves the handles it
asks for, each the way this node answers a client's ``GET /api/handles/{handle}``:

    top, recursive          the answerer: own store or cache, else a walk through the
                            hierarchy (so HIT / MISS / STALE, and where it was resolved)
    secondary, enterprise   the answerer: own store for held prefixes; for a prefix it
                            does not hold or has delegated away, the 301 it would answer
                            names the node to ask, and the handle is fetched there
                            (following further referrals, as resolver.walk does)

One level of the tree is resolved at a time, its handles concurrently (at most
``IN_FLIGHT`` at once), each call bounded by the node's upstream timeout. The root is
resolved like a resolution: its errors are the trace's (404/100, 502, 504). Below it, a
failure marks only that branch unreachable.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from node.anonymous_limits import FAN_OUT_RESPONSES
from node.answerer import Answerer
from node.responses import json_response
from node.state import NodeState, node_state
from registry.errors import (
    HandleNotFound,
    IdnodeError,
    NotResponsible,
    RequestError,
)
from registry.identifier import Handle
from registry.relation import parse_relations
from resolver.cache import Outcome
from resolver.trace import DEFAULT_DEPTH, MAX_DEPTH, Lookup, Status, Trace
from resolver.upstream import Upstream
from resolver.walk import Walk

router = APIRouter(tags=["Traceability"])
State = Annotated[NodeState, Depends(node_state)]
IN_FLIGHT = 16  # handles of one level resolved at once


class Tracer:
    """Resolves the handles of a :class:`Trace` as this node resolves for its clients.

    >>> trace = Trace(Handle.parse("88.100.1/JM-E5-2026-000123"))  # doctest: +SKIP
    >>> tracer = Tracer(state.answerer, state.upstream, state.config.public_url)  # doctest: +SKIP
    >>> await tracer.run(trace)  # doctest: +SKIP
    >>> trace.result()["complete"]  # doctest: +SKIP
    True
    """

    def __init__(
        self, answerer: Answerer, upstream: Upstream, own_url: str, in_flight: int = IN_FLIGHT
    ) -> None:
        self.answerer = answerer
        self.upstream = upstream
        self.own_url = own_url
        self.in_flight = in_flight

    async def run(self, trace: Trace) -> None:
        """Resolve until the trace is done; at most depth + 1 levels."""
        for root in trace.next_batch():
            lookup = await self.resolve(root)
            if lookup.status is Status.NOT_FOUND:
                raise HandleNotFound(f"Handle {root.text} not found", handle=root.text)
            trace.resolved(root, lookup)
        slots = asyncio.Semaphore(self.in_flight)
        while batch := trace.next_batch():
            lookups = await asyncio.gather(*(self._lookup(handle, slots) for handle in batch))
            for handle, lookup in zip(batch, lookups, strict=True):
                trace.resolved(handle, lookup)

    async def resolve(self, handle: Handle) -> Lookup:
        """Found or not found; anything else raises the error a resolution would."""
        try:
            reply = await self.answerer.answer(handle, handle.text)
        except HandleNotFound as exc:  # this node holds the prefix, and not the handle
            return Lookup.not_found(exc.message, self.own_url, None)
        except NotResponsible as exc:
            if exc.referral is None:
                raise
            return await self._ask(handle, exc.referral)
        source = reply.source or self.own_url
        cache = reply.cache.value if reply.cache is not None else None
        if not reply.found:
            return Lookup.not_found(f"Handle {handle.text} not found", source, cache)
        return Lookup.found(orjson.loads(reply.body)["values"], source, cache)

    async def _ask(self, handle: Handle, start: str) -> Lookup:
        """Fetch ``handle`` from the node a referral names, following its referrals."""
        walk = Walk(handle, start)
        answer = await self.upstream.get_handle(walk.node, handle)
        while (resolved := walk.answered(answer)) is None:  # ends: a walk has MAX_HOPS
            answer = await self.upstream.get_handle(walk.node, handle)
        # A resolving node (the parent top node) says where it got the answer from.
        source = answer.resolved_by or resolved.source
        if resolved.outcome is Outcome.NOT_FOUND:
            return Lookup.not_found(f"Handle {handle.text} not found", source, answer.cache)
        return Lookup.found(orjson.loads(resolved.body)["values"], source, answer.cache)

    async def _lookup(self, handle: Handle, slots: asyncio.Semaphore) -> Lookup:
        async with slots:
            try:
                return await self.resolve(handle)
            except NotResponsible as exc:  # no node to ask about that prefix
                return Lookup.unreachable(exc.message)
            except RequestError as exc:
                return Lookup.invalid(exc.message)
            except IdnodeError as exc:  # upstream down or too slow, store unavailable
                return Lookup.unreachable(exc.message)


@router.get(
    "/api/trace/{handle:path}",
    summary="Trace a product's links across nodes",
    responses={
        400: {
            "description": "Invalid handle (102), depth or relation (202), or prefix "
            "not held here and no node to ask (301)"
        },
        404: {"description": "The root handle does not exist (100)"},
        502: {"description": "The root's responsible node is unreachable (2)"},
        504: {"description": "The root's responsible node did not answer in time (2)"},
        **FAN_OUT_RESPONSES,
    },
)
async def trace(
    handle: str,
    state: State,
    depth: Annotated[
        int, Query(ge=0, le=MAX_DEPTH, description="levels of links to follow below the root")
    ] = DEFAULT_DEPTH,
    relations: Annotated[
        list[str],
        Query(description="relations to follow, comma-separated or repeated (default: all)"),
    ] = [],  # noqa: B006
) -> Response:
    """Walk the links of ``handle`` (``COMPONENT``, ``MADE_FROM``, ``COMPONENT_OF``,
    ``SHIPPED_IN`` values whose data is another handle) through resolution, across
    enterprises and secondary nodes, and return the tree::

        {"responseCode": 1, "handle": "88.100.1/JM-E5-2026-000123", "depth": 5,
         "relations": ["COMPONENT", "MADE_FROM", "COMPONENT_OF", "SHIPPED_IN"],
         "complete": true, "resolved": 7, "unreachable": [], "notFollowed": [],
         "tree": {"handle": "88.100.1/JM-E5-2026-000123", "status": "found",
                  "resolvedBy": "http://127.0.0.1:8001", "cache": "MISS",
                  "values": [{"index": 1, "type": "PRODUCT_NAME", "value": "..."}],
                  "links": [{"relation": "COMPONENT", "index": 10,
                             "target": {"handle": "88.100.2/HB75-2026-000123", ...}}]}}

    A node's ``status``: ``found``; ``not_found``; ``unreachable`` (resolving it failed;
    ``message`` says why, and it is listed in ``unreachable``); ``invalid`` (the link's
    data is not a handle); ``seen`` (already in the tree: a cycle, back-link or shared
    part, not resolved again); ``not_followed`` (beyond ``depth`` or the bound of 200
    resolved handles; its linking node says ``"truncated": true``, and it is listed in
    ``notFollowed``). ``resolvedBy`` and ``cache`` (HIT, MISS, STALE, or null when a
    node answered from its own store) are given for found and not-found handles;
    ``values`` leaves out HS_ADMIN values and the links. ``complete`` is true when no
    branch was unreachable and nothing was left unfollowed.

    The root is resolved as ``GET /api/handles/{handle}`` would be: 404/100 when it does
    not exist, 502/504 when its node fails.
    """
    root = Handle.parse(handle)
    walk = Trace(root, depth=depth, relations=parse_relations(relations))
    await Tracer(state.answerer, state.upstream, state.config.public_url).run(walk)
    return json_response(walk.result())
