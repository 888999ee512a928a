"""Writes made in one event-loop turn leave as one write, over real loopback sockets;
and a real node answers through it byte for byte (keep-alive, pipelining, HEAD, large
bodies)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from node.coalescing import FLUSH_AT, CoalescingTransport
from tests.conftest import ADMIN_AUTH
from tests.server.node_process import NodeProcess

URL = {"index": 1, "type": "URL", "data": "https://a.cn"}


class Counted:
    """Observes a real transport: how many writes reach it, and what."""

    def __init__(self, inner: asyncio.Transport) -> None:
        self.inner = inner
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def connected() -> tuple[CoalescingTransport, Counted, asyncio.StreamReader, Any]:
    """A server-side transport wrapped for coalescing, and a client reading from it."""
    loop = asyncio.get_running_loop()
    made: asyncio.Future[asyncio.Transport] = loop.create_future()

    class Server(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.set_result(transport)  # type: ignore[arg-type]

    server = await loop.create_server(Server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    counted = Counted(await made)
    coalescing = CoalescingTransport(counted, loop)  # type: ignore[arg-type]
    return coalescing, counted, reader, (server, writer)


async def close(handles: Any) -> None:
    server, writer = handles
    writer.close()
    server.close()
    await server.wait_closed()


async def test_writes_of_one_turn_leave_together() -> None:
    transport, counted, reader, handles = await connected()
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
    transport.write(b"hello")
    assert counted.writes == []  # kept until the end of this turn
    await asyncio.sleep(0)
    assert counted.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"]
    assert await reader.readexactly(43) == counted.writes[0]
    await close(handles)


async def test_writes_of_different_turns_leave_apart() -> None:
    transport, counted, reader, handles = await connected()
    transport.write(b"one")
    await asyncio.sleep(0)
    transport.writelines([b"two", b"", b"three"])
    await asyncio.sleep(0)
    assert counted.writes == [b"one", b"twothree"]
    assert await reader.readexactly(11) == b"onetwothree"
    await close(handles)


async def test_a_large_body_is_sent_without_waiting() -> None:
    transport, counted, reader, handles = await connected()
    transport.write(b"h")
    transport.write(b"x" * FLUSH_AT)
    assert counted.writes == [b"h" + b"x" * FLUSH_AT]
    assert len(await reader.readexactly(FLUSH_AT + 1)) == FLUSH_AT + 1
    await close(handles)


async def test_close_sends_what_is_kept_and_abort_drops_it() -> None:
    transport, counted, reader, handles = await connected()
    transport.write(b"last words")
    transport.close()
    assert await reader.read() == b"last words"  # then end of stream
    await close(handles)
    transport, counted, reader, handles = await connected()
    transport.write(b"never sent")
    transport.abort()
    await asyncio.sleep(0)
    assert counted.writes == [] and transport.get_write_buffer_size() == 0
    await close(handles)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(tmp_path_factory.mktemp("coalescing") / "data")
    try:
        yield process.start()
    finally:
        process.stop()


def test_pipelined_requests_on_one_connection_get_whole_answers(node: NodeProcess) -> None:
    paths = ["/healthz", "/api/handles/88.100/absent", "/api/handles/88.100/absent", "/readyz"]
    requests = b"".join(f"GET {p} HTTP/1.1\r\nhost: node\r\n\r\n".encode() for p in paths)
    answers: list[tuple[bytes, bytes]] = []
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(requests)  # all at once: the node answers them in turn
        buffer = b""
        while len(answers) < len(paths):
            head, found, rest = buffer.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if found and length is not None and len(rest) >= length:
                answers.append((head.split(b"\r\n")[0], rest[:length]))
                buffer = rest[length:]
                continue
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(answers)} answers"
            buffer += chunk
    assert [status for status, _ in answers] == [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 404 Not Found",
        b"HTTP/1.1 404 Not Found",
        b"HTTP/1.1 200 OK",
    ]
    assert answers[1][1] == answers[2][1] and b'"responseCode":100' in answers[1][1]
    assert buffer == b""  # nothing beyond the four answers


def test_a_large_answer_arrives_whole(node: NodeProcess) -> None:
    items = [{"handle": f"88.100/large-{n:05d}", "values": [URL]} for n in range(1500)]
    with httpx.Client(base_url=node.url, timeout=30) as http:
        answer = http.post("/api/batch/handles", json={"handles": items}, headers=ADMIN_AUTH)
        assert answer.status_code == 200
        assert len(answer.content) == int(answer.headers["content-length"]) > FLUSH_AT
        assert answer.json()["created"] == 1500
