"""What a hostile child costs the top node's cached resolutions.

::

    .venv/bin/python -m loadtest.hostile_peer [--rate 100] [--seconds 8] [--attackers 4]

Starts a real top node (``idnode serve``, its own embedded Redis) with two children at
the wire on loopback: a healthy one holding 88.100 and a hostile one holding 88.199
(``tests.resolver.hostile.HostileNode``). Cached GETs of 88.100 identifiers (warmed
first) go out open-loop at ``--rate`` per second, each timed from when it was due, in
three phases of ``--seconds`` each: alone; while ``--attackers`` clients keep asking
the top node for 88.199 identifiers whose node answers with a gzip bomb (1 MiB on the
wire, 1 GiB inflated); and while it streams an endless body (1 GiB, cut at the cap).
Prints p50/p99 of the cached GETs per phase, their ratio to the quiet phase, how many
attacks the top node answered and how, and the top node's RSS. Stops by itself (about
35 s with the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from node.embedded_redis import free_port
from resolver.upstream import Credentials
from tests.resolver.conftest import FakeNode
from tests.resolver.hostile import HostileNode, gzip_bomb

SECRET = "bench-secret"
WARM = 20  # cached identifiers cycled through


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def start_top(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "node", "serve", "--role", "top", "--prefix", "88"]
    args += ["--port", str(port), "--data-dir", str(data), "--admin-secret", SECRET]
    args += ["--log-level", "warning", "--appendfsync", "no"]
    log = (data.parent / "top.log").open("ab")
    process = subprocess.Popen(args, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(f"{url}/readyz") as ready:
                    if ready.status == 200:
                        return process, url
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError("the top node did not start")


async def cached_gets(
    http: aiohttp.ClientSession, top: str, rate: float, seconds: float
) -> list[float]:
    """Open loop: request i is due at start + i/rate; latency runs from when it was due."""
    latencies: list[float] = []
    start = time.perf_counter()

    async def one(i: int, due: float) -> None:
        async with http.get(f"{top}/api/handles/88.100/demo-{i % WARM}") as answer:
            await answer.read()
            assert answer.status == 200 and answer.headers.get("X-Cache") == "HIT"
        latencies.append(time.perf_counter() - due)

    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    return latencies


async def attack(
    http: aiohttp.ClientSession, top: str, stop: asyncio.Event, seen: Counter[str]
) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        async with http.get(f"{top}/api/handles/88.199/x-{id(seen)}-{n}") as answer:
            body = await answer.json()
            seen[f"{answer.status} {body.get('message', '')[:60]}"] += 1


def figures(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


async def main(rate: float, seconds: float, attackers: int) -> None:
    gzip_bomb()  # built before any timing
    healthy, hostile = await FakeNode().start(), await HostileNode().start()
    with tempfile.TemporaryDirectory() as tmp:
        process, top = await start_top(Path(tmp) / "top")
        try:
            connector = aiohttp.TCPConnector(limit=64)
            async with aiohttp.ClientSession(connector=connector) as http:
                auth = {"Authorization": Credentials("300:0.NA/88", SECRET).header()}
                for prefix, child in (("88.100", healthy), ("88.199", hostile)):
                    body = {"kind": "secondary", "nodeUrl": child.url, "secret": "node-secret"}
                    async with http.put(
                        f"{top}/api/prefixes/{prefix}", json=body, headers=auth
                    ) as r:
                        assert r.status == 201, await r.text()
                for i in range(WARM):  # MISS, then cached
                    for _ in range(2):
                        async with http.get(f"{top}/api/handles/88.100/demo-{i}") as r:
                            assert r.status == 200
                rows = []
                for phase, mode in (("quiet", None), ("gzip bomb", "gzip"), ("1 GiB", "endless")):
                    stop, seen = asyncio.Event(), Counter[str]()
                    if mode is not None:
                        hostile.mode = mode
                    hostile.sent = 0
                    attacks = [
                        asyncio.create_task(attack(http, top, stop, seen))
                        for _ in range(attackers if mode else 0)
                    ]
                    latencies = await cached_gets(http, top, rate, seconds)
                    stop.set()
                    await asyncio.gather(*attacks)
                    rss = rss_mib(process.pid)
                    rows.append((phase, *figures(latencies), seen, hostile.sent, rss))
        finally:
            process.terminate()
            process.wait(15)
    await healthy.stop()
    await hostile.stop()
    base = rows[0][2]
    print(f"cached GETs at {rate:g}/s for {seconds:g}s per phase, {attackers} attackers")
    print(
        f"{'phase':<10} {'p50 ms':>8} {'p99 ms':>8} {'p99/quiet':>9} {'attacks':>8} {'top RSS':>8}"
    )
    for phase, p50, p99, seen, _, rss in rows:
        line = f"{phase:<10} {p50:8.2f} {p99:8.2f} {p99 / base:9.2f} {sum(seen.values()):8d}"
        print(f"{line} {rss:6.0f} MiB")
        for answer, count in seen.most_common(2):
            print(f"{'':10}   {count} x {answer}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--attackers", type=int, default=4)
    options = parser.parse_args()
    asyncio.run(main(options.rate, options.seconds, options.attackers))
