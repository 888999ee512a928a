"""Connection hygiene against a real node process: a burst larger than the Redis pool
waits instead of failing, huge and slow request heads are cut off, idle connections are
closed, and a client holding sockets cannot lock others out."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_AUTH
from tests.server.node_process import NodeProcess

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    data = tmp_path_factory.mktemp("hygiene") / "data"
    node = NodeProcess(
        data,
        "--redis-max-connections",
        "4",
        "--local-cache-ttl",
        "0",  # every GET goes to Redis, through the small pool
        "--max-connections",
        "40",
        "--max-header-bytes",
        "8192",
        "--header-timeout",
        "1.5",
        "--body-timeout",
        "1.5",
        "--keep-alive-timeout",
        "1",
    ).start()
    put = httpx.put(
        f"{node.url}/api/handles/88.100/H",
        json=[{"index": 1, "type": "URL", "data": "https://factory.example/h"}],
        headers=ADMIN_AUTH,
    )
    assert put.status_code == 201
    yield node
    node.stop()


def _connect(node: NodeProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", node.port), timeout=10)


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (None if still open after ``seconds``),
    draining whatever it sent."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except OSError:
        pass
    return time.monotonic() - start


def _send_slowly(sock: socket.socket, data: bytes) -> None:
    """A byte every 0.1 s, until all is sent or the node closes the connection."""
    try:
        for byte in data:
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
    except OSError:
        pass


def _get_ok(node: NodeProcess) -> None:
    got = httpx.get(f"{node.url}/api/handles/88.100/H", timeout=5)
    assert got.status_code == 200


async def test_a_burst_beyond_the_redis_pool_waits_and_succeeds(node: NodeProcess) -> None:
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        # The node holds 40 connections at most: 500 in flight at once would have
        # most of them refused there; go 36 at a time, 500 in all, each a Redis GET
        # through a pool of 4.
        gate = asyncio.Semaphore(36)

        async def one() -> int:
            async with gate:
                return (await http.get(f"{node.url}/api/handles/88.100/H")).status_code

        codes = await asyncio.gather(*(one() for _ in range(500)))
    assert codes.count(200) == 500, {c: codes.count(c) for c in set(codes)}


def test_a_huge_header_is_cut_off_and_others_are_served(node: NodeProcess) -> None:
    sock = _connect(node)
    sent = 0
    answer = b""
    chunk = b"a" * 65536
    try:
        sock.sendall(b"GET /api/handles/88.100/H HTTP/1.1\r\nHost: x\r\nX-Big: ")
        while sent < 100 * 1024 * 1024:
            sock.sendall(chunk)
            sent += len(chunk)
            if sent == 4 * 65536:
                _get_ok(node)  # answered while the big head is being sent
    except OSError:
        pass  # closed by the node
    finally:
        sock.settimeout(2)
        try:
            answer = sock.recv(4096)
        except OSError:
            pass
        sock.close()
    assert sent < 8 * 1024 * 1024, f"{sent} bytes of header accepted"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431")
    _get_ok(node)


def test_a_head_over_the_limit_in_one_read_gets_431(node: NodeProcess) -> None:
    with _connect(node) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 431")
        assert _closed_within(sock, 2) is not None


def test_slowloris_is_closed_after_the_header_timeout(node: NodeProcess) -> None:
    with _connect(node) as sock:
        start = time.monotonic()
        _send_slowly(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100)
        closed = _closed_within(sock, 3)
        assert closed is not None
        assert time.monotonic() - start < 4.0


def test_a_slow_body_is_closed_after_the_body_timeout_and_writes_nothing(
    node: NodeProcess,
) -> None:
    body = b'[{"index": 1, "type": "URL", "data": "https://factory.example/slow"}]'
    head = (
        b"PUT /api/handles/88.100/slow-body HTTP/1.1\r\nHost: x\r\n"
        + b"Authorization: "
        + ADMIN_AUTH["Authorization"].encode()
        + b"\r\n"
        + b"Content-Type: application/json\r\n"
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
    )
    with _connect(node) as sock:
        sock.sendall(head)
        start = time.monotonic()
        _send_slowly(sock, body[:-1])  # one byte short of the whole
        closed = _closed_within(sock, 4)
        assert closed is not None
        assert time.monotonic() - start < 5.0
    _get_ok(node)
    gone = httpx.get(f"{node.url}/api/handles/88.100/slow-body", timeout=5)
    assert gone.status_code == 404


def test_a_silent_connection_is_closed_after_the_header_timeout(node: NodeProcess) -> None:
    with _connect(node) as sock:
        closed = _closed_within(sock, 4)
        assert closed is not None and 1.0 < closed < 3.0


def test_an_idle_keep_alive_connection_is_closed(node: NodeProcess) -> None:
    with _connect(node) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        closed = _closed_within(sock, 4)
        assert closed is not None and closed < 2.0


def test_held_idle_sockets_beyond_the_limit_do_not_lock_others_out(node: NodeProcess) -> None:
    held = [_connect(node) for _ in range(120)]  # 3 x --max-connections
    try:
        time.sleep(0.3)
        for _ in range(5):
            _get_ok(node)
        still_open = 0
        for sock in held:
            sock.setblocking(False)
            try:
                sock.recv(1)  # b"" (closed) or a 503 (refused)
            except BlockingIOError:
                still_open += 1  # nothing to read: open
            except OSError:
                pass
        assert still_open <= 40
    finally:
        for sock in held:
            sock.close()


def test_the_limits_are_in_serve_help(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "node", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    out = " ".join(out.split())  # argparse wraps lines
    for option in (
        "--max-connections",
        "--max-header-bytes",
        "--header-timeout",
        "--body-timeout",
        "--keep-alive-timeout",
        "--redis-max-connections",
        "--redis-pool-timeout",
        "--min-free-disk-bytes",
    ):
        assert option in out
    assert "default 4096" in out and "default 16384" in out
