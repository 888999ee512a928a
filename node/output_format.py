"""How a ``/api/handles`` answer is written out: ``pretty`` JSON and ``callback`` (JSONP).

The Handle server applies both parameters to every answer of its REST API, errors
included, keeping the HTTP status:

- ``pretty``: indented JSON when the parameter is empty, ``true`` or ``yes`` (any
  case); any other value, ``pretty=1`` included, leaves the JSON compact, as Handle
  reads every boolean parameter;
- ``callback=NAME``: ``NAME(<json>);`` as ``application/javascript``.

Where this node differs, deliberately: Handle replaces every character of a callback
name that is not an identifier character by ``_`` and calls what results. Here a name
must be JavaScript identifiers joined by dots (``cb``, ``jQuery3_1``, ``ns.on_answer``),
ASCII, at most :data:`MAX_CALLBACK` characters; any other name is refused (400/202) and
never written back, so no request can make the node answer script of its choosing, and
no caller silently gets a call to a function it did not name. An answer refused for
its callback is plain JSON (``pretty`` still applies).

:class:`OutputFormat` is plain logic over bytes; :func:`reshape` applies it (and drops
the body of a HEAD answer) to a Starlette response.

>>> OutputFormat.parse(pretty=None, callback="cb").render(b'{"responseCode":1}')
b'cb({"responseCode":1});'
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from registry.errors import InvalidValue

MAX_CALLBACK = 128
JSON = "application/json"
# A script's bytes are decoded with its declared charset, else the page's: answers hold
# Chinese text, so say UTF-8 (JSON needs no charset, RFC 8259 §8.1).
JAVASCRIPT = "application/javascript; charset=utf-8"
# A callback name, as the OpenAPI schema states it (ECMA-262 syntax) and as it is checked.
CALLBACK_PATTERN = r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$"
_NAME = re.compile(CALLBACK_PATTERN.removesuffix("$") + r"\Z")
# U+2028 and U+2029 are valid raw in JSON strings but end a line in JavaScript before
# ES2019: escape them inside a script (they can only occur inside strings).
_LINE_ENDS = ((b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


def _flag(value: str | None) -> bool:
    """A boolean parameter as Handle reads it: present and empty, ``true`` or ``yes``."""
    return value is not None and value.lower() in ("", "true", "yes")


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """Compact or indented JSON, bare or wrapped in a JSONP call.

    >>> OutputFormat.parse(pretty="true", callback=None).render(b'{"a":[1]}')
    b'{\\n  "a": [\\n    1\\n  ]\\n}'
    >>> OutputFormat.parse(pretty=None, callback=None).plain
    True
    """

    PLAIN: ClassVar[OutputFormat]
    pretty: bool = False
    callback: str | None = None

    @classmethod
    def parse(cls, pretty: str | None, callback: str | None) -> OutputFormat:
        """The format a request's ``pretty`` and ``callback`` parameters ask for;
        :class:`~registry.errors.InvalidValue` for a callback that is not a safe name
        (the name is not repeated in the message)."""
        if callback is not None and not (len(callback) <= MAX_CALLBACK and _NAME.match(callback)):
            raise InvalidValue(
                "'callback' must be a JavaScript function name: identifiers of ASCII "
                f"letters, digits, _ and $ joined by dots, at most {MAX_CALLBACK} characters"
            )
        if callback is None and pretty is None:
            return cls.PLAIN
        return cls(_flag(pretty), callback)

    @classmethod
    def for_error(cls, pretty: str | None, callback: str | None) -> OutputFormat:
        """The format of an error answer: as asked, but plain JSON rather than a call
        when the callback itself is what was wrong."""
        try:
            return cls.parse(pretty, callback)
        except InvalidValue:
            return cls(_flag(pretty))

    @property
    def plain(self) -> bool:
        return not self.pretty and self.callback is None

    @property
    def media_type(self) -> str:
        return JSON if self.callback is None else JAVASCRIPT

    def render(self, body: bytes) -> bytes:
        """``body`` (compact JSON) in this format."""
        if self.pretty:
            try:
                body = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
            except orjson.JSONDecodeError:  # another node's odd bytes: sent as they came
                pass
        if self.callback is not None:
            for raw, escaped in _LINE_ENDS:
                body = body.replace(raw, escaped)
            body = b"%s(%s);" % (self.callback.encode(), body)
        return body


OutputFormat.PLAIN = OutputFormat()


def reshape(response: Response, fmt: OutputFormat, *, head: bool = False) -> Response:
    """``response`` written in ``fmt``; for a HEAD request, its headers alone, with the
    Content-Length of the body a GET would have had."""
    if fmt.plain and not head:
        return response
    body = fmt.render(bytes(response.body))
    response.raw_headers = [
        (name, value)
        for name, value in response.raw_headers
        if name not in (b"content-length", b"content-type")
    ]
    response.raw_headers += [
        (b"content-type", fmt.media_type.encode()),
        (b"content-length", b"%d" % len(body)),
    ]
    response.body = b"" if head else body
    return response


ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


def in_request_format(handler: ErrorHandler) -> ErrorHandler:
    """An exception handler whose answers to ``/api/handles`` requests come in the
    format the request asked for (HEAD: without the body), as Handle writes its errors."""

    async def formatted(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        path = request.url.path
        if path == "/api/handles" or path.startswith("/api/handles/"):
            params = request.query_params
            fmt = OutputFormat.for_error(params.get("pretty"), params.get("callback"))
            response = reshape(response, fmt, head=request.method == "HEAD")
        return response

    return formatted
