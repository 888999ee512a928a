"""ASGI middleware refusing request paths that would be read as something else.

Starlette decodes a path leniently: invalid UTF-8 becomes U+FFFD (so different bytes
would name one handle), and a trailing ``%0A`` slips past the route pattern's ``$``
(so ``88.100/x%0A`` would act on ``88.100/x``). No identifier may contain control
characters (SPEC §2), so any path with them, or that is not UTF-8, is refused here
with 400, responseCode 102, before routing.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from node.responses import error_response
from registry.errors import InvalidHandle

_CONTROL = frozenset(range(0x20)) | {0x7F}


class PathGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = path_problem(scope.get("raw_path") or scope["path"].encode())
            if problem is not None:
                await error_response(InvalidHandle(problem))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def path_problem(raw_path: bytes) -> str | None:
    """Why the (percent-encoded) request path can't name anything, or None.

    >>> path_problem(b"/api/handles/88.100/x%0A")
    'the request path contains a control character (byte 0x0a)'
    """
    decoded = unquote_to_bytes(raw_path.partition(b"?")[0])
    bad = next((b for b in decoded if b in _CONTROL), None)
    if bad is not None:
        return f"the request path contains a control character (byte 0x{bad:02x})"
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return "the request path is not valid UTF-8 once percent-decoded"
    return None
