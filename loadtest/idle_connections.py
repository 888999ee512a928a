"""p99 of a cached GET at a top node, alone and while 2000 idle connections are held.

    .venv/bin/python -m loadtest.idle_connections [--idle 2000] [--requests 3000]

Starts its own top node (embedded Redis, default connection limits) on a free port,
registers one identifier, then times sequential GETs of it over one keep-alive
connection: first with nothing else connected, then with ``--idle`` sockets opened
and held silent (inside the 10 s header timeout, so none is closed meanwhile).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time

import httpx

from node.embedded_redis import free_port


def _p99(client: httpx.Client, url: str, count: int) -> tuple[float, float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        assert client.get(url).status_code == 200
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1000, times[int(len(times) * 0.99)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        node = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node",
                "serve",
                "--role",
                "top",
                "--prefix",
                "88",
                "--port",
                str(port),
                "--data-dir",
                data,
                "--admin-secret",
                "s3cret",
                "--log-level",
                "warning",
            ],
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "node not ready"
                time.sleep(0.1)
            auth = ("300:0.NA/88", "s3cret")
            values = [{"index": 1, "type": "URL", "data": "https://factory.example/x"}]
            put = httpx.put(f"{base}/api/handles/88/idle-probe", json=values, auth=auth)
            assert put.status_code in (200, 201), put.text
            url = f"{base}/api/handles/88/idle-probe"
            with httpx.Client() as client:
                _p99(client, url, 300)  # warm up
                alone = _p99(client, url, args.requests)
                held = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.idle)]
                time.sleep(0.5)
                start = time.monotonic()
                busy = _p99(client, url, args.requests)
                elapsed = time.monotonic() - start
                still = 0
                for sock in held:
                    sock.setblocking(False)
                    try:
                        sock.recv(1)
                    except BlockingIOError:
                        still += 1
                    except OSError:
                        pass
                    sock.close()
            print(f"alone:          p50 {alone[0]:.2f} ms  p99 {alone[1]:.2f} ms")
            print(
                f"{args.idle} idle held: p50 {busy[0]:.2f} ms  p99 {busy[1]:.2f} ms "
                f"({elapsed:.1f} s; {still} of {args.idle} still open at the end)"
            )
        finally:
            node.terminate()
            node.wait(15)


if __name__ == "__main__":
    main()
