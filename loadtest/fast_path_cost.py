"""What a plain resolution costs a node's app in process, without HTTP: the fast path
(``node.fast_path``) from the ASGI call to the answer's last ``send``.

::

    python -m loadtest.fast_path_cost [--requests 20000] [--rounds 7]

A secondary node's app (prefix 88.100) runs in this process on an embedded Redis; one
identifier is registered through the API, then ``GET /api/handles/88.100/bench`` (the
headers wrk sends, no credentials) is called ``--rounds`` times ``--requests`` times as
an ASGI call. Prints the best and the median round in microseconds per request. Run it
alternately on two commits to compare them: the figure leaves out uvicorn, the socket
and the client, which cost several times more, so a difference here is an upper bound
on what a change costs a real request.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx

from node.app import create_app
from node.config import NodeConfig
from node.embedded_redis import EmbeddedRedis

SECRET = "bench-secret"
PATH = "/api/handles/88.100/bench"
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": PATH,
    "raw_path": PATH.encode(),
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"127.0.0.1:8001"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8001),
    "state": {},
}


async def measure(requests: int, rounds: int) -> list[float]:
    """Microseconds per request of each round."""
    with tempfile.TemporaryDirectory() as data:
        redis = EmbeddedRedis(Path(data))
        url = redis.start()
        try:
            settings = {"role": "secondary", "prefix": "88.100", "redis_url": url}
            config = NodeConfig.from_sources({**settings, "admin_secret": SECRET}, env={})
            app = create_app(config)
            async with app.router.lifespan_context(app):
                auth = base64.b64encode(f"300%3A0.NA%2F88.100:{SECRET}".encode()).decode()
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://n") as http:
                    put = await http.put(
                        PATH,
                        json=[{"index": 1, "type": "URL", "data": "https://factory.example/1"}],
                        headers={"Authorization": f"Basic {auth}"},
                    )
                    if put.status_code != 201:
                        raise RuntimeError(f"registering the identifier: {put.text}")
                statuses: list[int] = []

                async def send(message: MutableMapping[str, Any]) -> None:
                    if message["type"] == "http.response.start":
                        statuses.append(message["status"])

                async def receive() -> dict[str, Any]:
                    return {"type": "http.request", "body": b"", "more_body": False}

                for _ in range(requests // 10):  # warm up
                    await app(dict(SCOPE), receive, send)
                times = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    for _ in range(requests):
                        await app(dict(SCOPE), receive, send)
                    times.append((time.perf_counter() - started) / requests * 1e6)
                if set(statuses) != {200}:
                    raise RuntimeError(f"answers other than 200: {sorted(set(statuses))}")
                return times
        finally:
            redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="per round (20000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (7)")
    options = parser.parse_args()
    times = asyncio.run(measure(options.requests, options.rounds))
    print(
        f"plain GET through the fast path: best {min(times):.2f} us, "
        f"median {statistics.median(times):.2f} us per request ({options.rounds} rounds "
        f"of {options.requests})"
    )


if __name__ == "__main__":
    main()
