"""ASGI middleware applying the per-address rate and daily quota before any routing, so
an over-limit client costs the node as little as possible (see registry/admission.py)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from node.responses import error_response
from registry.errors import IdnodeError

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})


class AddressLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        node = getattr(scope["app"].state, "node", None) if scope["type"] == "http" else None
        if node is None or (node.rate is None and node.quota is None) or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        who = f"client address {address}"
        try:
            if node.rate is not None:
                node.rate.check(f"addr:{address}", who)
            if node.quota is not None:
                await node.quota.spend(f"addr:{address}", who)
        except IdnodeError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)
