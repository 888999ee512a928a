"""A hostile node at the wire: a real HTTP server (aiohttp.web on 127.0.0.1, a free port)
that answers every request the way a test sets, to attack the node asking it.

``mode``:

    json       ``status`` with ``answer`` as JSON (junk, foreign handles, long messages)
    raw        ``status`` with the bytes ``raw``
    endless    200, chunked, spaces without end (up to 1 GiB)
    declared   200 announcing a 1 GiB Content-Length, then spaces
    gzip       200, Content-Encoding gzip: 1 MiB on the wire that inflates to 1 GiB
    drip       200, one byte every ``drip_every`` seconds, without end
    redirect   302 to ``location``

``sent`` counts the body bytes the server managed to hand to its socket, so a test can
tell a client that hung up from one that drained the body.
"""

from __future__ import annotations

import asyncio
import functools
import struct
import zlib
from typing import Any

import orjson
from aiohttp import web

from tests.resolver.conftest import LoopbackServer

GIB = 1 << 30
_MIB_OF_ZEROS = bytes(1 << 20)
_SPACES = b" " * (64 * 1024)


@functools.cache
def gzip_bomb(inflated_mib: int = 1024) -> bytes:
    """A valid gzip member of ``inflated_mib`` MiB of zeros, about 1 KiB per MiB.

    Built in a fraction of a second: after a full flush the compressor's state is reset,
    so every further MiB of zeros compresses to the same bytes, which are repeated.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate, header added here
    first = compressor.compress(_MIB_OF_ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(_MIB_OF_ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush()
    crc = 0
    for _ in range(inflated_mib):
        crc = zlib.crc32(_MIB_OF_ZEROS, crc)
    size = (inflated_mib << 20) & 0xFFFFFFFF
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + first + again * (inflated_mib - 1) + end + struct.pack("<II", crc, size)


class HostileNode(LoopbackServer):
    """A node that answers to hurt.

    >>> hostile = await HostileNode().start()       # doctest: +SKIP
    >>> hostile.mode = "gzip"                       # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.mode = "json"
        self.status = 200
        self.answer: Any = {"responseCode": 1}
        self.raw = b""
        self.location = "http://127.0.0.1:9/elsewhere"
        self.drip_every = 0.05
        self.sent = 0
        self.requests: list[str] = []
        self.headers: list[dict[str, str]] = []  # of each request

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._answer)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        self.headers.append(dict(request.headers))
        if self.mode == "raw":
            return web.Response(body=self.raw, status=self.status)
        if self.mode == "json":
            body = orjson.dumps(self.answer)
            return web.Response(body=body, status=self.status, content_type="application/json")
        if self.mode == "redirect":
            raise web.HTTPFound(self.location)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if self.mode == "declared":
            response.content_length = GIB
        elif self.mode == "gzip":
            bomb = gzip_bomb()
            response.headers["Content-Encoding"] = "gzip"
            response.content_length = len(bomb)
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if self.mode == "gzip":
                for start in range(0, len(bomb), 64 * 1024):
                    await self._write(response, bomb[start : start + 64 * 1024])
            elif self.mode == "drip":
                while True:
                    await self._write(response, b" ")
                    await asyncio.sleep(self.drip_every)
            else:
                for _ in range(GIB // len(_SPACES)):  # 1 GiB per request
                    await self._write(response, _SPACES)
        except ConnectionError:  # the client hung up: what a bounded client does
            pass
        return response

    async def _write(self, response: web.StreamResponse, chunk: bytes) -> None:
        await response.write(chunk)
        self.sent += len(chunk)
