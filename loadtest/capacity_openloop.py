"""The open-loop load generator of ``idnode bench --capacity``: requests on a fixed
timetable, each timed from the moment it was due.

::

    python -m loadtest.capacity_openloop --url http://127.0.0.1:8000 \\
        --path /api/handles/88.100.1/demo-0001 --rate 1000 --seconds 10

Request ``i`` is due at ``start + i / rate`` whatever happened to the requests before it.
A closed-loop generator (wrk, or hey, whose ``-q`` paces each worker but still waits for
each answer before the next request) sends less while the server stalls, so the
requests that a stall would have delayed are never sent and never counted: coordinated
omission, which makes p99 look better the worse the stalls are. Here a due request goes
out at once on an idle keep-alive connection (one request in flight per connection, no
pipelining, at most ``--connections``), or waits in a queue for one; either way its
latency runs from when it was due to when its answer is complete, so waiting behind a
stall counts in full. The generator's own lateness counts too: a timer thread sleeps
until each request is due (to a fraction of a millisecond: the event loop's own timers
keep only to a whole one) and wakes the event loop to send it, and how late it got to
requests (the send lag, not counting waits for a free connection) is reported beside
the latencies it is already part of.

``--walk FIRST COUNT`` makes request ``i`` ask for ``--path`` followed by the 8-digit
number ``FIRST + i % COUNT`` (distinct identifiers, for cache-miss runs; the same
numbering as ``loadtest/capacity.lua``).

It prints one JSON line, :meth:`loadtest.capacity_figures.Latency.to_json`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import cast
from urllib.parse import urlsplit

from loadtest.capacity_figures import Latency, open_loop_latency

DRAIN_SECONDS = 10.0  # how long answers still due are awaited after the last request
TICK_SECONDS = 0.0001  # the timer thread wakes the event loop at most this often
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)")
_X_CACHE = re.compile(rb"\r\nx-cache:[ \t]*([a-z]+)")


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, run: OpenLoop) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: int | None = None  # the request in flight

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.pending is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            if b"\r\ntransfer-encoding:" in head:  # the servers measured never chunk
                assert self.transport is not None
                self.transport.close()
                return
            length = _LENGTH.search(head)
            size = end + 4 + (int(length.group(1)) if length else 0)
            if len(self.buffer) < size:
                return
            del self.buffer[:size]
            index, self.pending = self.pending, None
            self.run.answered(self, index, head)

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.lost(self)


class OpenLoop:
    """``count`` requests at ``rate`` per second to ``host:port``; ``path_of(i)`` is the
    path of request ``i``.

    >>> run = OpenLoop("127.0.0.1", 8000, lambda i: "/api/handles/88.100.1/demo-0001",
    ...                rate=500.0, count=5000, connections=32)          # doctest: +SKIP
    >>> (await run.run()).p99_ms                                        # doctest: +SKIP
    1.8
    """

    def __init__(
        self,
        host: str,
        port: int,
        path_of: Callable[[int], str],
        *,
        rate: float,
        count: int,
        connections: int,
    ) -> None:
        self.host = host
        self.port = port
        self.path_of = path_of
        self.rate = rate
        self.count = count
        self.connections = connections
        self.start = 0.0
        self.taken = [math.inf] * count  # when the generator got to each request
        self.done = [math.inf] * count
        self.status = [0] * count
        self.x_cache: collections.Counter[str] = collections.Counter()
        self._host = f"{host}:{port}".encode()
        self._idle: collections.deque[_Connection] = collections.deque()
        self._queue: collections.deque[int] = collections.deque()
        self._open: list[_Connection] = []
        self._outstanding = 0
        self._submitted_all = False
        self._finished: asyncio.Event | None = None
        self._all_taken: asyncio.Event | None = None
        self._taken = 0  # requests sent or queued so far

    def due(self, i: int) -> float:
        return self.start + i / self.rate

    async def run(self) -> Latency:
        loop = asyncio.get_running_loop()
        self._finished = asyncio.Event()
        for _ in range(self.connections):
            _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
            self._open.append(conn)
            self._idle.append(conn)
        self.start = time.perf_counter() + 0.01
        self._all_taken = asyncio.Event()
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(loop, stop), daemon=True)
        ticker.start()
        try:
            with contextlib.suppress(TimeoutError):
                last = self.due(self.count) - time.perf_counter()
                await asyncio.wait_for(self._all_taken.wait(), last + DRAIN_SECONDS)
        finally:
            stop.set()
            ticker.join()
        while self._taken < self.count:  # only if the timer thread fell silent: late
            self._submit(self._taken)
            self._taken += 1
        self._submitted_all = True
        if self._outstanding == 0:
            self._finished.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._finished.wait(), DRAIN_SECONDS)
        for conn in list(self._open):
            if conn.transport is not None:
                conn.transport.close()
        due = [self.due(i) for i in range(self.count)]
        return open_loop_latency(self.rate, due, self.taken, self.done, self.status, self.x_cache)

    def _tick(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        """The timer thread: sleep until the next request is due (time.sleep keeps to a
        fraction of a millisecond, the event loop's timers only to a whole one), then wake
        the loop to send everything due by then. It wakes at most every TICK_SECONDS, so
        at high rates one wake-up serves several requests."""
        i, woke = 0, -math.inf
        while i < self.count and not stop.is_set():
            delay = max(self.due(i), woke + TICK_SECONDS) - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            woke = time.perf_counter()
            try:
                loop.call_soon_threadsafe(self._take_due)
            except RuntimeError:  # the loop is closing: the run was interrupted
                return
            # The loop takes everything due by the time it runs, so at least all that
            # is due by now: the next wake-up is for the first request due after now.
            i = max(i + 1, math.floor((woke - self.start) * self.rate) + 1)

    def _take_due(self) -> None:
        """In the loop: send (or queue) every request due by now."""
        due_now = min(self.count, math.floor((time.perf_counter() - self.start) * self.rate) + 1)
        while self._taken < due_now:
            self._submit(self._taken)
            self._taken += 1
        if self._taken >= self.count and self._all_taken is not None:
            self._all_taken.set()

    def _submit(self, i: int) -> None:
        self.taken[i] = time.perf_counter()
        self._outstanding += 1
        if self._idle:
            self._send(self._idle.popleft(), i)
        elif self._open:
            self._queue.append(i)
        else:  # every connection is gone: nothing will answer it
            self._settled()

    def _send(self, conn: _Connection, i: int) -> None:
        assert conn.transport is not None
        conn.pending = i
        path = self.path_of(i).encode()
        conn.transport.write(b"GET " + path + b" HTTP/1.1\r\nHost: " + self._host + b"\r\n\r\n")

    def answered(self, conn: _Connection, i: int, head: bytes) -> None:
        self.done[i] = time.perf_counter()
        self.status[i] = int(head[9:12]) if head.startswith(b"http/1.") else 0
        cache = _X_CACHE.search(head)
        if cache is not None:
            self.x_cache[cache.group(1).decode().upper()] += 1
        self._settled()
        if self._queue:
            self._send(conn, self._queue.popleft())
        else:
            self._idle.append(conn)

    def lost(self, conn: _Connection) -> None:
        """A connection closed: its request in flight failed; with no connection left,
        so does every queued one."""
        if conn in self._open:
            self._open.remove(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        if conn.pending is not None:
            conn.pending = None
            self._settled()
        if not self._open:
            while self._queue:
                self._queue.popleft()
                self._settled()

    def _settled(self) -> None:
        self._outstanding -= 1
        if self._outstanding == 0 and self._submitted_all and self._finished is not None:
            self._finished.set()


def path_function(path: str, walk: Sequence[int] | None) -> Callable[[int], str]:
    """The path of request ``i``: ``path`` itself, or with ``walk = (first, count)`` the
    stem ``path`` and an 8-digit number (as ``loadtest/capacity.lua`` numbers them).

    >>> path_function("/api/handles/88.102.1/cap-", (7, 100))(2)
    '/api/handles/88.102.1/cap-00000009'
    """
    if walk is None:
        return lambda i: path
    first, count = walk
    return lambda i: f"{path}{first + i % count:08d}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--path", required=True, help="request path (with --walk: its stem)")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--walk", type=int, nargs=2, metavar=("FIRST", "COUNT"))
    args = parser.parse_args(argv)
    url = urlsplit(args.url)
    if url.hostname is None or url.port is None or not args.rate > 0 or args.seconds <= 0:
        parser.error("give --url http://HOST:PORT, a positive --rate and --seconds")
    run = OpenLoop(
        url.hostname,
        url.port,
        path_function(args.path, args.walk),
        rate=args.rate,
        count=max(1, round(args.rate * args.seconds)),
        connections=max(1, args.connections),
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
        result = asyncio.run(run.run())
    else:
        result = uvloop.run(run.run())
    print(json.dumps(result.to_json()), flush=True)


if __name__ == "__main__":
    main()
