"""What one identifier costs the batch path of a node, measured in process: the figures
behind "Less work per identifier" and "A batch's repeated values parsed once" in
docs/benchmarks/capacity.md, which anyone can rerun.

::

    python -m loadtest.batch_cost --batches 8      # CPU µs per identifier
    python -m loadtest.batch_cost --instructions   # instructions per identifier (valgrind)
    make bench-batch-cost                          # the latter, valgrind installed first

A secondary node's app (prefix 88.100) runs in this process on an embedded Redis (AOF
on, as the nodes run it), without HTTP: each batch of ``capacity_batch.batch_body``'s
2000 identifiers of five values goes to ``POST /api/batch/handles`` as an ASGI call,
request to answer (body parsing, values, plans, rights, the Redis commands and their
packing, the answer). One batch warms the process up first.

``--instructions`` runs this module under ``valgrind --tool=cachegrind`` with 1 and 4
measured batches and divides the difference by 6000 identifiers, so start-up cancels
out: the count is the same from run to run within a fraction of a percent, where CPU
time on a shared machine moves by tens of percent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from loadtest.capacity_batch import BATCH, batch_body
from node.app import create_app
from node.config import NodeConfig
from node.embedded_redis import EmbeddedRedis
from resolver.upstream import Credentials

PREFIX = "88.100"
SECRET = "batch-cost"
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


async def _post(
    app: Any, body: bytes, authorization: str, *, expected: int = BATCH
) -> dict[str, Any]:
    """One ``POST /api/batch/handles`` as an ASGI call; the answer's JSON (an error
    unless ``expected`` identifiers were created)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/batch/handles",
        "raw_path": b"/api/batch/handles",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"node"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"authorization", authorization.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    sent = False
    answer: list[bytes] = []
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            answer.append(message.get("body", b""))

    await app(scope, receive, send)
    result: dict[str, Any] = orjson.loads(b"".join(answer))
    if status != 200 or result.get("created") != expected:
        raise RuntimeError(f"a batch was not registered whole ({status}): {result}")
    return result


async def measure(redis_url: str, batches: int) -> float:
    """CPU seconds this process spent on ``batches`` batches after one to warm up."""
    config = NodeConfig.from_sources(
        {"role": "secondary", "prefix": PREFIX, "redis_url": redis_url, "admin_secret": SECRET},
        env={},
    )
    app = create_app(config)
    authorization = Credentials(f"300:0.NA/{PREFIX}", SECRET).header()
    bodies = [batch_body(PREFIX, n * BATCH, BATCH) for n in range(batches + 1)]
    async with app.router.lifespan_context(app):
        await _post(app, bodies[0], authorization)
        began = time.process_time()
        for body in bodies[1:]:
            await _post(app, body, authorization)
        return time.process_time() - began


def run(batches: int) -> float:
    """CPU µs per identifier of ``batches`` batches, on a fresh embedded Redis."""
    with tempfile.TemporaryDirectory(prefix="idnode-batch-cost-") as data:
        redis = EmbeddedRedis(Path(data))
        try:
            seconds = asyncio.run(measure(redis.start(), batches))
        finally:
            redis.stop()
    return seconds / (batches * BATCH) * 1e6


def instructions(first: int = 1, last: int = 4) -> int:
    """Instructions per identifier: cachegrind's count with ``last`` measured batches
    minus the count with ``first``, over the identifiers between."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit(
            "valgrind is not on PATH: apt-get install valgrind (or make bench-batch-cost)"
        )
    counts = []
    for batches in (first, last):
        command = [valgrind, "--tool=cachegrind", "--cache-sim=no"]
        command += ["--cachegrind-out-file=/dev/null", sys.executable, "-m", __spec__.name]
        command += ["--batches", str(batches)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
        found = _REFS.search(done.stderr)
        if found is None:
            raise SystemExit(f"no instruction count in valgrind's output: {done.stderr[-500:]}")
        counts.append(int(found.group(1).replace(",", "")))
    return round((counts[1] - counts[0]) / ((last - first) * BATCH))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The batch path's cost per identifier.")
    parser.add_argument("--batches", type=int, default=8, help="batches measured (2000 each)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per identifier under valgrind instead of CPU time",
    )
    args = parser.parse_args(argv)
    if args.instructions:
        print(json.dumps({"instructions_per_identifier": instructions()}), flush=True)
        return
    if args.batches < 1:
        parser.error("--batches must be at least 1")
    cpu = run(args.batches)
    figures = {"batches": args.batches, "cpu_us_per_identifier": round(cpu, 1)}
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
