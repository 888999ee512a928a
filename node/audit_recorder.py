"""ASGI middleware that records every write request, accepted or refused, in the audit
log (:mod:`registry.audit`), after its answer has been sent.

Reads are not recorded (they change nothing and are the hot path). The identity is the
one the request authenticated as; a request refused before that is recorded with the
username it claimed.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.audit import AuditEntry
from registry.credential import parse_basic
from registry.errors import IdnodeError

log = logging.getLogger("idnode.node")
WRITE_METHODS = frozenset({"PUT", "POST", "DELETE", "PATCH"})
_BODY_PEEK = 4096


class AuditRecorder:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        status = 500
        head = b""

        async def recording_send(message: Message) -> None:
            nonlocal status, head
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and len(head) < _BODY_PEEK:
                head += bytes(message.get("body", b""))[: _BODY_PEEK - len(head)]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            await self._record(scope, status, head)

    async def _record(self, scope: Scope, status: int, head: bytes) -> None:
        node = getattr(scope["app"].state, "node", None)
        if node is None or node.audit is None:
            return
        code, message = _code_and_message(head, status)
        query = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client")
        entry = AuditEntry(
            time=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            client=client[0] if client else "",
            identity=_who(scope),
            method=scope["method"],
            target=scope["path"] + (f"?{query}" if query else ""),
            status=status,
            code=code,
            message=message,
        )
        started = time.monotonic()
        try:
            await node.audit.record(entry)
        except IdnodeError as exc:
            log.warning("audit entry lost (%.0f ms): %s", (time.monotonic() - started) * 1000, exc)


def _who(scope: Scope) -> str:
    identity = scope.get("state", {}).get("identity")
    if identity is not None:
        return str(identity.text)
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            header = value.decode("latin-1")
            if header.lower().startswith("bearer "):
                return "claimed:bearer-token"
            try:
                claimed, _ = parse_basic(header)
            except IdnodeError:
                return "claimed:malformed-credentials"
            return f"claimed:{claimed.text}"
    return "anonymous"


def _code_and_message(head: bytes, status: int) -> tuple[int, str]:
    try:
        body = orjson.loads(head)
    except orjson.JSONDecodeError:
        return (1 if status < 400 else 2), ""
    if not isinstance(body, dict):
        return (1 if status < 400 else 2), ""
    code = body.get("responseCode")
    message = body.get("message")
    return (
        code if isinstance(code, int) else (1 if status < 400 else 2),
        message if isinstance(message, str) else "",
    )
