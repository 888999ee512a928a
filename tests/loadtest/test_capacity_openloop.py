"""``loadtest.capacity_openloop`` against a real HTTP server on loopback (a few hundred
requests, well under a second): every request is answered and counted, responses split
across reads are parsed, walks ask for distinct identifiers, and lost connections fail
their requests without hanging the run. No timing is asserted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from loadtest.capacity_figures import Latency
from loadtest.capacity_openloop import OpenLoop, path_function

Answer = Callable[[str, int], tuple[int, bytes, bool]]  # path, n -> status, body, close after


@asynccontextmanager
async def http_server(answer: Answer, paths: list[str]) -> AsyncIterator[int]:
    """A minimal HTTP/1.1 keep-alive server; yields its port."""
    served = 0

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                paths.append(path)
                served += 1
                status, body, close = answer(path, served)
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
                    f"X-Cache: {'HIT' if status == 200 else 'MISS'}\r\n\r\n".encode()
                )
                await writer.drain()  # head and body in separate writes: split reads
                writer.write(body)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def run(
    answer: Answer,
    path: str = "/x",
    walk: list[int] | None = None,
    *,
    rate: float,
    count: int,
    connections: int,
) -> tuple[Latency, list[str]]:
    """One open-loop run against a fresh server; the figures and the paths it was asked."""
    paths: list[str] = []
    async with http_server(answer, paths) as port:
        generator = OpenLoop(
            "127.0.0.1",
            port,
            path_function(path, walk),
            rate=rate,
            count=count,
            connections=connections,
        )
        return await generator.run(), paths


def ok(path: str, n: int) -> tuple[int, bytes, bool]:
    return 200, b"{}", False


async def test_every_request_is_answered_and_counted() -> None:
    def answer(path: str, n: int) -> tuple[int, bytes, bool]:
        return (404 if n % 10 == 0 else 200), b'{"responseCode":1}' * 20, False

    result, paths = await run(
        answer, "/api/handles/88.100.1/demo-0001", rate=2000.0, count=300, connections=8
    )
    assert result.scheduled == 300
    assert (result.answered, result.failed) == (270, 30)  # every tenth was a 404
    assert result.x_cache == {"HIT": 270, "MISS": 30}
    assert paths == ["/api/handles/88.100.1/demo-0001"] * 300
    assert result.p50_ms is not None and result.max_ms is not None
    assert result.p50_ms <= result.p99_ms <= result.max_ms  # type: ignore[operator]


async def test_a_walk_asks_for_each_identifier_once() -> None:
    stem = "/api/handles/88.102.1/cap-"
    result, paths = await run(ok, stem, [500, 10_000], rate=2000.0, count=200, connections=4)
    assert result.answered == 200
    assert sorted(paths) == [f"{stem}{n:08d}" for n in range(500, 700)]


async def test_lost_connections_fail_their_requests_and_the_run_ends() -> None:
    # every connection is closed after its first answer: 4 answers, then nothing can send
    result, _ = await run(lambda path, n: (200, b"{}", True), rate=1000.0, count=100, connections=4)
    assert result.answered == 4
    assert result.failed == 96
    assert result.p99_ms is None  # the tail was never answered


async def test_queueing_in_the_generator_counts_in_the_latency() -> None:
    # One connection at 5000/s: requests wait in the generator for it; each one's latency
    # runs from when it was due, so it is never less than the generator's own lag.
    result, _ = await run(ok, rate=5000.0, count=200, connections=1)
    assert result.answered == 200
    assert result.lag_p99_ms is not None and result.p99_ms is not None
    assert result.p99_ms >= result.lag_p99_ms
