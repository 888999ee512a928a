"""What attacks cost the top node's cached resolutions, side by side in one run.

::

    .venv/bin/python -m loadtest.under_attack [--rate 100] [--seconds 8] [--attackers 4]
                                              [--idle 2000]

Starts a real top node (``idnode serve``, its own embedded Redis, the default limits)
with two children at the wire on loopback: a healthy one holding 88.100 and a hostile
one holding 88.199 (``tests.resolver.hostile.HostileNode``). Cached GETs of 88.100
identifiers (warmed first) go out open-loop at ``--rate`` per second, each timed from
when it was due, in phases of ``--seconds`` each:

    quiet       nothing else
    gzip bomb   ``--attackers`` clients keep asking the top node for 88.199 identifiers,
                whose node answers with a gzip bomb (1 MiB on the wire, 1 GiB inflated)
    1 GiB body  the same, the hostile node streaming an endless body (cut at the cap)
    drip        the same, the hostile node sending one byte every 50 ms
    idle        ``--idle`` connections opened to the top node and held silent (inside
                the 10 s header timeout, so none is closed meanwhile)

Prints p50/p99 of the cached GETs per phase, their ratio to the quiet phase, how many
attacks the top node answered and how, and the top node's RSS after the phase. Stops by
itself (about 50 s with the defaults).
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
from yarl import URL

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
    # Its children listen on 127.0.0.1: private targets allowed, as in the demo.
    args += ["--log-level", "warning", "--appendfsync", "no", "--allow-private-nodes"]
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
            if answer.status != 200 or answer.headers.get("X-Cache") != "HIT":
                cache = answer.headers.get("X-Cache")
                raise RuntimeError(f"a cached GET answered {answer.status} {cache}")
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


async def hold_idle(top: str, count: int) -> list[asyncio.StreamWriter]:
    """``count`` connections to the top node that send nothing."""
    url = URL(top)
    assert url.host is not None and url.port is not None
    held = []
    for _ in range(count):
        _, writer = await asyncio.open_connection(url.host, url.port)
        held.append(writer)
    return held


def still_open(held: list[asyncio.StreamWriter]) -> int:
    return sum(not writer.transport.is_closing() for writer in held)


async def main(rate: float, seconds: float, attackers: int, idle: int) -> None:
    gzip_bomb()  # built before any timing
    healthy, hostile = await FakeNode().start(), await HostileNode().start()
    hostile.drip_every = 0.05
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
                        if r.status != 201:
                            raise RuntimeError(f"placing {prefix}: {await r.text()}")
                for i in range(WARM):  # MISS, then cached
                    for _ in range(2):
                        async with http.get(f"{top}/api/handles/88.100/demo-{i}") as r:
                            if r.status != 200:
                                raise RuntimeError(f"warming: {await r.text()}")
                rows = []
                for phase, mode in PHASES:
                    stop, seen = asyncio.Event(), Counter[str]()
                    hostile.mode = mode or "json"
                    attacks = [
                        asyncio.create_task(attack(http, top, stop, seen))
                        for _ in range(attackers if mode else 0)
                    ]
                    held = await hold_idle(top, idle) if phase == "idle" else []
                    latencies = await cached_gets(http, top, rate, seconds)
                    stop.set()
                    await asyncio.gather(*attacks)
                    if held:
                        seen[f"{still_open(held)} of {idle} idle connections still open"] = 0
                        for writer in held:
                            writer.close()
                    rows.append((phase, *figures(latencies), seen, rss_mib(process.pid)))
        finally:
            process.terminate()
            process.wait(15)
    await healthy.stop()
    await hostile.stop()
    base = rows[0][2]
    print(f"cached GETs at {rate:g}/s for {seconds:g}s per phase, {attackers} attackers")
    print(f"{'phase':<11} {'p50 ms':>8} {'p99 ms':>8} {'p99/quiet':>9} {'attacks':>8} top RSS")
    for phase, p50, p99, seen, rss in rows:
        line = f"{phase:<11} {p50:8.2f} {p99:8.2f} {p99 / base:9.2f} {sum(seen.values()):8d}"
        print(f"{line} {rss:6.0f} MiB")
        for answer, count in seen.most_common(2):
            print(f"{'':11}   {count} x {answer}" if count else f"{'':11}   {answer}")


# (phase, what the hostile node does while attackers ask it; None: no attackers)
PHASES = (
    ("quiet", None),
    ("gzip bomb", "gzip"),
    ("1 GiB body", "endless"),
    ("drip", "drip"),
    ("idle", None),
)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="cached GETs per second (100)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase (8)")
    parser.add_argument(
        "--attackers",
        type=int,
        default=4,
        help="clients asking for the hostile node's identifiers, one at a time each (4)",
    )
    parser.add_argument(
        "--idle", type=int, default=2000, help="connections held open in the idle phase (2000)"
    )
    options = parser.parse_args()
    asyncio.run(main(options.rate, options.seconds, options.attackers, options.idle))
