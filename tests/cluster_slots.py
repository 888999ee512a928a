"""What a Redis Cluster would refuse, found on a single Redis: every command it runs,
seen through MONITOR (the real server's own feed, no client patched), checked for keys
in more than one hash slot.

A cluster needs the keys of one command, of one script call (its KEYS and every key
the script's own commands touch) and of one transaction (its WATCH and the commands
between MULTI and EXEC) in one slot. MONITOR shows a script's commands (client
``lua``) right after the call, and a transaction's commands between its client's MULTI
and EXEC; which arguments of a command are keys, Redis says (COMMAND GETKEYS).

>>> parse_line(b'1.5 [0 127.0.0.1:5] "SET" "a\\\\x00" "b\\\\"c"')
('127.0.0.1:5', [b'SET', b'a\\x00', b'b"c'])
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import Redis
from redis.crc import key_slot

_LINE = re.compile(rb"^\S+ \[\d+ ([^\]]+)\] (.*)$", re.DOTALL)
_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)", re.DOTALL)
_SIMPLE = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b"}
# Commands without keys (GETKEYS would refuse them): not asked about.
_KEYLESS = {
    b"MULTI", b"EXEC", b"DISCARD", b"UNWATCH", b"PING", b"ECHO", b"HELLO", b"INFO",
    b"CONFIG", b"SCRIPT", b"SCAN", b"CLIENT", b"SELECT", b"FLUSHALL", b"FLUSHDB", b"TIME",
    b"COMMAND", b"DBSIZE", b"AUTH", b"BGREWRITEAOF", b"BGSAVE", b"SAVE", b"LASTSAVE",
    b"KEYS", b"MEMORY", b"SLOWLOG", b"LATENCY", b"WAIT", b"RANDOMKEY", b"SHUTDOWN",
}  # fmt: skip


def _unescape(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    if code[:1] == b"x" and len(code) == 3:
        return bytes([int(code[1:], 16)])
    return _SIMPLE.get(code, code)


def parse_line(line: bytes) -> tuple[str, list[bytes]]:
    """A MONITOR line's client (``lua`` for a script's command) and arguments."""
    matched = _LINE.match(line)
    assert matched is not None, line
    args = [_ESCAPE.sub(_unescape, arg) for arg in _ARG.findall(matched.group(2))]
    return matched.group(1).decode(), args


@dataclass
class _Unit:
    """Commands a cluster runs in one slot: one command, a script call, a transaction."""

    what: str
    commands: list[list[bytes]] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)  # known without asking (KEYS)


class SlotWatch:
    """Every command a Redis runs while the watch is on, grouped into what a cluster
    needs in one slot; :meth:`problems` names each group that spans several.

    >>> async with watching("redis://127.0.0.1:6379") as watch:  # doctest: +SKIP
    ...     await store.commit(None, record)
    >>> watch.problems                                           # doctest: +SKIP
    []
    """

    def __init__(self) -> None:
        self.units: list[_Unit] = []
        self.commands = 0
        self.problems: list[str] = []
        self._open: dict[str, _Unit] = {}  # a client's WATCH/MULTI under way
        self._script: _Unit | None = None  # the script call whose commands follow

    def feed(self, client: str, args: list[bytes]) -> None:
        self.commands += 1
        name = args[0].upper()
        if client == "lua":
            assert self._script is not None, args
            self._script.commands.append(args)
            return
        self._script = None
        unit = self._open.get(client)
        if name in (b"EXEC", b"DISCARD", b"UNWATCH"):
            self._open.pop(client, None)
            return
        if name in (b"WATCH", b"MULTI") and unit is None:
            unit = self._open[client] = _Unit(f"transaction of {client}")
            self.units.append(unit)
        if name in (b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO"):
            script = _Unit(f"script {args[1][:40]!r}", keys=args[3 : 3 + int(args[2])])
            self._script = script
            if unit is None:
                self.units.append(script)
            else:  # inside a transaction: the script's keys are the transaction's too
                unit.keys += script.keys
                self._script = unit
            return
        if name in (b"WATCH", b"MULTI"):
            if name == b"WATCH" and unit is not None:
                unit.commands.append(args)
            return
        if unit is not None:
            unit.commands.append(args)
        elif name not in _KEYLESS:
            self.units.append(_Unit(f"command {name.decode()}", commands=[args]))

    async def check(self, redis: Redis) -> list[str]:
        """The groups whose keys span several slots (Redis names each command's keys)."""
        asked = [args for unit in self.units for args in unit.commands]
        pipe = redis.pipeline(transaction=False)
        for args in asked:
            if args[0].upper() in _KEYLESS:
                pipe.echo(b"")  # a placeholder reply: no keys
            else:
                pipe.execute_command("COMMAND", "GETKEYS", *args)
        replies = iter(await pipe.execute(raise_on_error=False) if asked else [])
        for unit in self.units:
            keys = list(unit.keys)
            for _ in unit.commands:
                reply = next(replies)
                if isinstance(reply, list):
                    keys += reply
            slots = {key_slot(key) for key in keys}
            if len(slots) > 1:
                shown = sorted({k.decode(errors="replace") for k in keys})[:8]
                self.problems.append(f"{unit.what} spans {len(slots)} slots: {shown}")
        return self.problems


def _as_is(reply: object, **options: object) -> object:
    return reply


@asynccontextmanager
async def watching(url: str) -> AsyncIterator[SlotWatch]:
    """A :class:`SlotWatch` fed by MONITOR for the block; checked when it ends."""
    watch = SlotWatch()
    monitor = Redis.from_url(url)
    connection = monitor.connection_pool.make_connection()
    await connection.connect()
    await connection.send_command("MONITOR")
    assert await connection.read_response() in (b"OK", "OK")
    end = f"slot-watch-end:{uuid.uuid4().hex}".encode()
    checker = Redis.from_url(url)
    # GETKEYS's keys as Redis sends them, not parsed as COMMAND's table.
    checker.set_response_callback("COMMAND", cast(Any, _as_is))

    async def read() -> None:
        while True:
            line = await connection.read_response()
            assert isinstance(line, bytes), line
            client, args = parse_line(line)
            if args[-1:] == [end] and args[0].upper() == b"GET":
                return
            watch.feed(client, args)

    reader = asyncio.create_task(read())
    try:
        yield watch
    finally:
        try:
            await checker.get(end)  # the last command MONITOR shows: read up to it
            await asyncio.wait_for(reader, 30)
            await watch.check(checker)
        finally:
            reader.cancel()
            await connection.disconnect()
            await checker.aclose()
            await monitor.aclose()
