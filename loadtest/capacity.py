"""``idnode bench --capacity``: the nodes' maximum sustained rates and their latency, against
two baselines measured in the same run, on the same machine, for the same identifier.

::

    make bench-tools                 # Debian's wrk and nginx, once
    idnode bench --capacity          # about 2-3 minutes
    idnode bench --capacity --seconds 5 --reports /tmp/reports --profile

It starts the demo hierarchy on free ports (as ``idnode bench --up`` does: one embedded
Redis with AOF on, every node its own process), the two baselines
(:mod:`loadtest.capacity_baselines`: nginx serving the node's resolution body as a static
file, and the FastAPI app of :mod:`loadtest.baseline` doing one Redis GET per request),
checks that all of them answer ``88.100.1/demo-0001`` with the same bytes, and measures,
one scenario after another, never two at once (:mod:`loadtest.capacity_report`):

1. nginx, 2. FastAPI + Redis, 3. (a) that identifier cached at the top node, 4. (b) it
   at its secondary node: wrk for ``--seconds`` after a 1 s warm-up, closed loop (1
   thread, 16 connections: near the best rates measured for both nginx and one Python
   process on a 2-core machine), gives the maximum rate (good answers only); then the open-loop
   generator (:mod:`loadtest.capacity_openloop`) at 50% of that rate for ``--seconds``
   gives p50/p99 timed from when each request was due (no coordinated omission);
5. (d) batch registration: 2000-handle batches, 4 in flight, posted for ``--seconds``
   to secondary node 88.102 as enterprise 88.102.1 (:mod:`loadtest.capacity_batch`);
   that node runs one worker process per core (``--workers``: batches are CPU-bound)
   and, unlike the nodes of the resolution scenarios, is not pinned;
   the top node has resolved nothing there, so it follows no change feed of that node
   and does no invalidation work meanwhile;
6. (c) cache misses: the top node resolves identifiers that (d) registered, each asked
   once (wrk walks them with ``loadtest/capacity.lua``; more are seeded first if (d)
   made too few for the rate (a) reached, a bound on the miss rate); the miss ratio is
   read from the top node's ``/metrics`` around the run, and from ``X-Cache`` in the
   open-loop run, which walks on through identifiers not asked yet. The top node starts
   following the pool node's change feed from "now" when it first asks it, so (d)'s
   writes are not replayed as invalidations while (c) is measured.

Before each scenario it waits (up to 20 s, and up to twice ``--seconds``) until its
processes and the rest of the machine are idle and Redis is not rewriting its AOF. On a
machine of two or more cores the load generator runs pinned to the last core and the
process it talks to to the others, while measured (``sched_setaffinity``, what
``taskset`` does); Redis, (c)'s secondary node and (d)'s node are not pinned. The
report gives every measurement's CPU use (generator, server, Redis, and everything else on the
machine) and warns when a generator used its whole core or other processes ran
meanwhile: a figure then says more about the machine than about the server.

It writes ``reports/<timestamp>/capacity.md`` and ``capacity.json`` (with ``--profile``
also ``profile-cached.md`` and py-spy's raw stacks: the top node sampled during an extra
cached-resolution run after the measurements), prints the table, and exits 1 when a
target is missed. Every process it starts is stopped at the end, on errors and on
Ctrl-C, and dies with it if it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from redis import Redis

from loadtest.capacity_baselines import Baseline, start_fastapi, start_nginx
from loadtest.capacity_batch import IDENTITY_ENV, SECRET_ENV, SUFFIX, batch_items
from loadtest.capacity_figures import (
    Latency,
    Throughput,
    cpu_seconds,
    machine_busy_seconds,
    miss_ratio,
    parse_wrk,
    resolution_counts,
    steal_seconds,
    walk_budget,
)
from loadtest.capacity_profile import hot_functions, render_profile
from loadtest.capacity_report import (
    CpuShare,
    Measurement,
    Scenario,
    Setup,
    disturbances,
    judge,
    passed,
    render_markdown,
    render_table,
    report_json,
)
from node.embedded_redis import die_with_parent, free_port
from node.launcher import Launcher, RunningNode
from node.seeder import Seeder, SeedJob
from node.topology import Topology
from registry.errors import ConfigError
from resolver.upstream import Credentials

TOOLS = ("wrk", "nginx")
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")  # nginx lives there, off a user's PATH
LUA = Path(__file__).with_name("capacity.lua")
IDENTIFIER = "88.100.1/demo-0001"  # (a), (b) and both baselines
TOP = "top-88"
SECONDARY = "secondary-88.100"  # holds IDENTIFIER
POOL_NODE = "secondary-88.102"  # (d) registers here, (c) resolves what it registered
POOL_PREFIX = "88.102.1"
BASELINE_DB = 255  # a database of the hierarchy's Redis that no node uses
WARM_SECONDS = 1
SETTLE_SECONDS = 20.0  # at most, and at most twice --seconds
QUIET_CORES = 0.15  # busy cores below which the benchmark, and the machine, count as idle
SEED_CHUNK = 20_000
MISS_RATE_BOUND = 5_000.0  # requests/s, when (a) gave no bound for (c)
_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CapacityOptions:
    seconds: int = 10  # per measurement
    reports: Path = Path("reports")
    profile: bool = False  # sample the top node with py-spy in an extra cached run
    wrk_threads: int = 1
    wrk_connections: int = 16
    open_loop_connections: int = 32
    batch_in_flight: int = 4
    # Worker processes of (d)'s node: one per core (node.workers), for it is CPU-bound.
    batch_workers: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))


@dataclass(frozen=True, slots=True)
class Walk:
    """Distinct identifiers for wrk: ``stem`` + 8-digit ``first`` ... ``first+count-1``."""

    stem: str
    first: int
    count: int


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in SBIN:
        candidate = Path(folder) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_tools() -> dict[str, str]:
    """The load generator and nginx binaries, or a ConfigError naming what is missing."""
    found = {name: find_tool(name) for name in TOOLS}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise ConfigError(
            f"idnode bench --capacity needs {' and '.join(missing)}, not found on PATH: run "
            "`make bench-tools` (it installs Debian's wrk and nginx with apt-get)"
        )
    return {name: path for name, path in found.items() if path is not None}


def find_py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("py-spy")
    if found is None:
        raise ConfigError("--profile needs py-spy: pip install py-spy (into the venv)")
    return found


def cpu_plan() -> tuple[set[int] | None, set[int] | None]:
    """(generator's CPUs, server's CPUs): the last core, and the others; no pinning on
    a one-core machine."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (a node's worker processes and its embedded Redis)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return [pid]
    return [pid, *(int(child) for child in text.split())]


def process_cpu(pids: Sequence[int]) -> float:
    """CPU seconds the processes have used so far (those gone count nothing)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), _TICKS)
    return total


def _machine_cpu() -> float:
    return machine_busy_seconds(Path("/proc/stat").read_text(), _TICKS)


def _machine_steal() -> float:
    return steal_seconds(Path("/proc/stat").read_text(), _TICKS)


def _steal_note(stolen: float) -> str:
    return f"the virtual machine lost {stolen * 1000:,.0f} ms of CPU time to steal meanwhile"


def _set_affinity(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` (a thread started later inherits its starter's set)."""
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cpus)


@contextlib.contextmanager
def pinned(pids: Sequence[int], cpus: set[int] | None) -> Iterator[None]:
    """Keep ``pids`` on ``cpus`` for the block; free them on every CPU afterwards."""
    if cpus is None:
        yield
        return
    everywhere = os.sched_getaffinity(0)
    for pid in pids:
        _set_affinity(pid, cpus)
    try:
        yield
    finally:
        for pid in pids:
            _set_affinity(pid, everywhere)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        body: bytes = answer.read()
        return body


class CapacityRun:
    """One capacity run: the processes it started and the measurements, in order.

    >>> with contextlib.ExitStack() as stack:                  # doctest: +SKIP
    ...     run = CapacityRun(CapacityOptions(seconds=2), out, require_tools())
    ...     run.start(stack)
    ...     measurements = run.measure_all()
    """

    def __init__(self, options: CapacityOptions, out: Path, tools: dict[str, str]) -> None:
        self.options = options
        self.out = out
        self.tools = tools
        self.generator_cpus, self.server_cpus = cpu_plan()
        self.notes: list[str] = []
        self._launcher: Launcher | None = None
        self._redis: Redis | None = None
        self._baselines: dict[Scenario, Baseline] = {}
        self.body = b""

    # -- processes -------------------------------------------------------------------

    def start(self, stack: contextlib.ExitStack) -> None:
        """The hierarchy and the baselines; ``stack`` stops them, whatever happens."""
        launcher = Launcher(
            Topology.demo().on_ports(free_port),
            data_dir=None,
            out=io.StringIO(),
            workers={POOL_NODE: self.options.batch_workers},
        )
        stack.callback(launcher.stop)  # also stops a hierarchy that failed half-way
        asyncio.run(launcher.start())
        self._launcher = launcher
        assert launcher.redis_url is not None
        self._redis = Redis.from_url(launcher.redis_url)
        stack.callback(self._redis.close)
        path = f"/api/handles/{IDENTIFIER}"
        self.body = _get(self.node(TOP).url + path)  # and the top node caches it
        if _get(self.node(SECONDARY).url + path) != self.body:
            raise ConfigError(f"the top and secondary nodes answer {IDENTIFIER} differently")
        spare = urlunsplit(urlsplit(launcher.redis_url)._replace(path=f"/{BASELINE_DB}"))
        fastapi = start_fastapi(spare, IDENTIFIER, self.body, self.out / "logs")
        stack.callback(fastapi.stop)
        nginx = start_nginx(self.tools["nginx"], self.body)
        stack.callback(nginx.stop)
        for baseline in (fastapi, nginx):
            baseline.check(path, self.body)
        self._baselines = {Scenario.FASTAPI: fastapi, Scenario.NGINX: nginx}

    def node(self, name: str) -> RunningNode:
        assert self._launcher is not None
        return self._launcher.node(name)

    @property
    def redis(self) -> Redis:
        assert self._redis is not None
        return self._redis

    @property
    def redis_pid(self) -> int:
        return int(self.redis.info("server")["process_id"])

    def redis_cpu(self) -> float:
        """CPU seconds Redis has used so far, its AOF rewrites (forked children, running
        or ended) included: a rewrite is part of keeping an append-only file."""
        pid = self.redis_pid
        try:
            own = cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), _TICKS, children=True)
        except OSError:
            return 0.0
        return own + process_cpu(process_tree(pid)[1:])

    def _watched(self) -> list[int]:
        """Every process but Redis that could still be busy from the previous measurement."""
        assert self._launcher is not None
        pids = [p for node in self._launcher.nodes for p in process_tree(node.process.pid)]
        for baseline in self._baselines.values():
            pids += baseline.pids()
        return pids

    def _ours_cpu(self, pids: Sequence[int]) -> float:
        return process_cpu(pids) + self.redis_cpu()

    def settle(self) -> None:
        """Wait (bounded) until Redis is not rewriting its AOF, the benchmark's processes
        are idle (the top node's change-feed follower, or Redis after (d), may still be
        at work) and so is the rest of the machine, as far as it can be waited for."""
        bound = min(SETTLE_SECONDS, 2.0 * self.options.seconds)
        deadline = time.monotonic() + bound
        while True:
            info = self.redis.info("persistence")
            rewriting = bool(
                info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
            )
            pids = [*self._watched(), os.getpid()]
            ours, machine = self._ours_cpu(pids), _machine_cpu()
            time.sleep(0.5)
            busy = (self._ours_cpu(pids) - ours) / 0.5
            other = (_machine_cpu() - machine) / 0.5 - busy
            if not rewriting and busy < QUIET_CORES and other < QUIET_CORES:
                return
            if time.monotonic() > deadline:
                self.notes.append(
                    f"did not settle within {bound:g} s before a measurement: "
                    f"{busy:.2f} cores busy in the benchmark's processes, {other:.2f} in "
                    f"others; AOF rewrite: {rewriting}"
                )
                return

    # -- generators ------------------------------------------------------------------

    def _generate(
        self, command: list[str], seconds: float, env: dict[str, str] | None = None
    ) -> tuple[str, float]:
        """Run a load generator pinned to the generator's core; its output and the CPU
        seconds it used."""
        cpus = self.generator_cpus

        def prepare() -> None:
            die_with_parent()
            if cpus is not None:
                os.sched_setaffinity(0, cpus)

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=seconds + 90,
            env={**os.environ, **(env or {})},
            preexec_fn=prepare,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise ConfigError(
                f"{Path(command[0]).name} {' '.join(command[1:3])} ... exited with "
                f"{done.returncode}: {(done.stderr or done.stdout)[-800:]}"
            )
        used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return done.stdout, used

    def wrk(self, url: str, seconds: int, walk: Walk | None = None) -> tuple[Throughput, float]:
        threads, connections = self.options.wrk_threads, self.options.wrk_connections
        command = [self.tools["wrk"], f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
        command += ["--timeout", "10s", "-s", str(LUA), url]
        if walk is not None:
            command += ["--", walk.stem, str(walk.first), str(walk.count), str(threads)]
        output, cpu = self._generate(command, seconds)
        try:
            return parse_wrk(output), cpu
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"cannot read wrk's output ({exc}):\n{output[-800:]}") from None

    def open_loop(
        self, base: str, path: str, rate: float, seconds: int, walk: tuple[int, int] | None = None
    ) -> tuple[Latency, str]:
        """The latency at ``rate``, and a note on the generator's CPU and the steal."""
        command = [sys.executable, "-m", "loadtest.capacity_openloop", "--url", base]
        command += ["--path", path, "--rate", f"{rate:.1f}", "--seconds", str(seconds)]
        command += ["--connections", str(self.options.open_loop_connections)]
        if walk is not None:
            command += ["--walk", str(walk[0]), str(walk[1])]
        stolen = _machine_steal()
        output, cpu = self._generate(command, seconds)
        stolen = _machine_steal() - stolen
        note = f"open-loop generator used {cpu / seconds:.2f} cores; {_steal_note(stolen)}"
        return Latency.from_json(json.loads(output.strip().splitlines()[-1])), note

    def timed(self, pids: Sequence[int], run: Callable[[], tuple[T, float]]) -> tuple[T, CpuShare]:
        """Run a generator; what it returned, and the CPU shares of it, ``pids``, Redis and
        whatever else ran on the machine meanwhile."""
        ours = [*self._watched(), os.getpid()]
        server, store, own = process_cpu(pids), self.redis_cpu(), process_cpu(ours)
        machine, started = _machine_cpu(), time.monotonic()
        result, generator = run()
        wall = time.monotonic() - started
        redis = self.redis_cpu() - store
        other = _machine_cpu() - machine - generator - (process_cpu(ours) - own) - redis
        return result, CpuShare(
            generator / wall,
            (process_cpu(pids) - server) / wall,
            redis / wall,
            max(0.0, other / wall),
        )

    # -- scenarios -------------------------------------------------------------------

    def measure_all(self) -> list[Measurement]:
        fastapi, nginx = self._baselines[Scenario.FASTAPI], self._baselines[Scenario.NGINX]
        top, secondary = self.node(TOP), self.node(SECONDARY)
        measurements = [
            self.resolution(Scenario.NGINX, nginx.url, nginx.pids(), latency=False),
            self.resolution(Scenario.FASTAPI, fastapi.url, fastapi.pids()),
            self.resolution(Scenario.CACHED, top.url, [top.process.pid]),
            self.resolution(Scenario.AUTHORITATIVE, secondary.url, [secondary.process.pid]),
        ]
        batch, registered = self.batch()
        cached = measurements[2].throughput.rate
        measurements += [self.miss(registered, cached or MISS_RATE_BOUND), batch]
        return measurements

    def _announce(self, scenario: Scenario, what: str) -> None:
        print(f"{scenario.label}: {what}", flush=True)

    def resolution(
        self, scenario: Scenario, base: str, pids: list[int], *, latency: bool = True
    ) -> Measurement:
        """(a), (b) or a baseline: the maximum rate, then latency at half of it."""
        seconds = self.options.seconds
        url = f"{base}/api/handles/{IDENTIFIER}"
        self.settle()
        with pinned(pids, self.server_cpus):
            self._announce(scenario, f"wrk for {seconds} s...")
            self.wrk(url, WARM_SECONDS)
            throughput, cpu = self.timed(pids, lambda: self.wrk(url, seconds))
            notes = []
            found = None
            if latency and throughput.rate > 0:
                rate = max(1.0, throughput.rate / 2)
                self._announce(scenario, f"open loop at {rate:,.0f}/s for {seconds} s...")
                found, note = self.open_loop(base, url.removeprefix(base), rate, seconds)
                notes.append(note)
        return Measurement(scenario, throughput, found, cpu, notes=tuple(notes))

    def _pool_credentials(self) -> tuple[str, str]:
        assert self._launcher is not None
        ident = next(i for i in self._launcher.identities if i.prefix == POOL_PREFIX)
        return ident.text, ident.secret

    def batch(self) -> tuple[Measurement, int]:
        """(d): returns the measurement and how many identifiers (numbers 0 up to it) were
        registered. The node runs ``batch_workers`` processes, left free to use every
        core (pinning them to the server's cores would leave one core to all of them)."""
        seconds, in_flight = self.options.seconds, self.options.batch_in_flight
        node = self.node(POOL_NODE)
        pids = process_tree(node.process.pid)
        identity, secret = self._pool_credentials()
        command = [sys.executable, "-m", "loadtest.capacity_batch", "--url", node.url]
        command += ["--prefix", POOL_PREFIX, "--first", "0", "--seconds", str(seconds)]
        command += ["--in-flight", str(in_flight)]
        env = {IDENTITY_ENV: identity, SECRET_ENV: secret}
        self.settle()
        workers = self.options.batch_workers
        self._announce(Scenario.BATCH, f"{in_flight} batches in flight for {seconds} s...")
        stolen = _machine_steal()
        output, cpu = self.timed(pids, lambda: self._generate(command, seconds, env))
        stolen = _machine_steal() - stolen
        raw = json.loads(output.strip().splitlines()[-1])
        throughput = Throughput.from_json(raw)
        notes = (
            f"{in_flight} batches of 2000 handles in flight, into {POOL_NODE} as "
            f"{POOL_PREFIX}; a batch call took {throughput.p50_ms} ms (p50), "
            f"{throughput.p99_ms} ms (p99); {_steal_note(stolen)}",
            f"the node ran {workers} worker process{'es' if workers > 1 else ''} "
            "(--workers), free to use every core; the generator ran on the last core",
        )
        return Measurement(Scenario.BATCH, throughput, cpu=cpu, notes=notes), int(raw["next"])

    def top_up(self, have: int, need: int) -> int:
        """Register pool identifiers ``have`` ... ``need - 1`` if (d) did not."""
        if have >= need:
            return have
        node = self.node(POOL_NODE)
        identity, secret = self._pool_credentials()
        credentials = Credentials(identity, secret)
        for start in range(have, need, SEED_CHUNK):
            items = batch_items(POOL_PREFIX, start, min(SEED_CHUNK, need - start))
            asyncio.run(_seed([SeedJob(POOL_PREFIX, node.url, credentials, items)]))
        self.notes.append(f"seeded {need - have:,} more identifiers for the cache-miss walk")
        return need

    def resolutions(self, node: str) -> dict[str, float]:
        return resolution_counts(_get(f"{node}/metrics").decode())

    def miss(self, registered: int, bound: float) -> Measurement:
        """(c): distinct identifiers, each asked once, through the top node.

        The walk regions: [0, warm) for the warm-up, [warm, warm + walk) for wrk, then
        the open-loop run's. ``bound`` caps the miss rate (the cached rate: a miss does
        all a hit does and more), so wrk cannot run out of identifiers.
        """
        seconds = self.options.seconds
        top, holder = self.node(TOP), self.node(POOL_NODE)
        pids = [top.process.pid, holder.process.pid]
        stem = f"/api/handles/{POOL_PREFIX}/{SUFFIX}"
        warm, walk = walk_budget(bound, WARM_SECONDS), walk_budget(bound, seconds)
        registered = self.top_up(registered, warm + walk)
        self.settle()
        with pinned([top.process.pid], self.server_cpus):
            self._announce(Scenario.MISS, f"wrk for {seconds} s...")
            self.wrk(top.url + "/", WARM_SECONDS, Walk(stem, 0, warm))
            before = self.resolutions(top.url)
            throughput, cpu = self.timed(
                pids, lambda: self.wrk(top.url + "/", seconds, Walk(stem, warm, walk))
            )
            ratio = miss_ratio(before, self.resolutions(top.url))
        rate = max(1.0, throughput.rate / 2)
        first = warm + walk
        count = walk_budget(rate, seconds)
        self.top_up(registered, first + count)
        self.settle()
        with pinned([top.process.pid], self.server_cpus):
            self._announce(Scenario.MISS, f"open loop at {rate:,.0f}/s for {seconds} s...")
            latency, note = self.open_loop(top.url, stem, rate, seconds, (first, count))
        notes = (
            f"wrk asked for {throughput.count + throughput.failed:,} distinct identifiers "
            f"{POOL_PREFIX}/{SUFFIX}NNNNNNNN (of {walk:,} set aside) registered by (d); the "
            "miss ratio is the top node's idnode_resolutions_total (/metrics) around the run",
            note,
        )
        return Measurement(Scenario.MISS, throughput, latency, cpu, ratio, notes)

    # -- profile and report ----------------------------------------------------------

    def profile(self, py_spy: str) -> None:
        """py-spy on the top node during an extra cached-resolution run (not measured:
        sampling slows the node down a little). Only the thread holding the GIL is
        sampled: where the Python work is, not threads waiting for work."""
        seconds = self.options.seconds
        top = self.node(TOP)
        raw = self.out / "profile-cached.txt"
        url = f"{top.url}/api/handles/{IDENTIFIER}"
        self.settle()
        print(f"profiling the top node with py-spy for {seconds} s...", flush=True)
        with pinned([top.process.pid], self.server_cpus):
            spy = subprocess.Popen(
                [py_spy, "record", "--pid", str(top.process.pid), "--duration", str(seconds)]
                + ["--rate", "250", "--format", "raw", "--nonblocking", "--gil"]
                + ["--output", str(raw)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
            try:
                self.wrk(url, seconds)
                spy.wait(seconds + 30)
            finally:
                if spy.poll() is None:
                    spy.kill()
                    spy.wait()
        if not raw.exists():
            raise ConfigError("py-spy wrote no profile (does it have ptrace permission?)")
        functions = hot_functions(raw.read_text())
        what = f"top node, cached resolution of {IDENTIFIER} under wrk, {seconds} s"
        (self.out / "profile-cached.md").write_text(render_profile(functions, what))

    def setup(self, command: str, started: datetime) -> Setup:
        seconds, options = self.options.seconds, self.options
        generator = self.generator_cpus
        if generator is None or self.server_cpus is None:
            pinning = "none (one core)"
        else:
            pinning = (
                f"load generators on core {_cores(generator)}, the process under test (nginx's "
                f"worker, uvicorn, the node the generator talks to) on core "
                f"{_cores(self.server_cpus)} while measured (sched_setaffinity, as taskset "
                "does); Redis, (c)'s secondary node and (d)'s node (its worker processes) "
                "unpinned"
            )
        appendfsync = self.redis.config_get("appendfsync").get("appendfsync", "?")
        return Setup(
            command=command,
            started=started.strftime("%Y-%m-%d %H:%M:%S UTC"),
            seconds=seconds,
            cores=os.cpu_count() or 1,
            wrk=(
                f"{options.wrk_threads} thread, {options.wrk_connections} connections, "
                f"{seconds} s after a {WARM_SECONDS} s warm-up"
            ),
            pinning=pinning,
            open_loop=(
                "loadtest/capacity_openloop.py at 50% of each scenario's maximum rate for "
                f"{seconds} s, up to {options.open_loop_connections} keep-alive connections: "
                "requests are due on a fixed timetable and timed from when they were due, "
                "so waiting behind a stall counts in full (no coordinated omission); a "
                "timer thread wakes the generator when each request is due, and its own "
                "send lag, part of every figure, is shown in the details"
            ),
            appendfsync=str(appendfsync),
            identifier=f"{IDENTIFIER}, a {len(self.body):,}-byte body",
            notes=tuple(self.notes),
        )


def _cores(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


async def _seed(jobs: list[SeedJob]) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        return await Seeder(http).seed(jobs)


def capacity(options: CapacityOptions, command: str) -> int:
    """Run every measurement, write the report, print the table; 1 if a target is missed."""
    tools = require_tools()
    py_spy = find_py_spy() if options.profile else None
    started = datetime.now(UTC)
    out = (options.reports / started.strftime("%Y%m%dT%H%M%SZ")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        run = CapacityRun(options, out, tools)
        print("starting the demo hierarchy and the baselines...", flush=True)
        run.start(stack)
        measurements = run.measure_all()
        if py_spy is not None:
            run.profile(py_spy)
        setup = run.setup(command, started)
        print("stopping...", flush=True)
    verdicts = judge(measurements)
    (out / "capacity.md").write_text(render_markdown(setup, measurements, verdicts))
    report = report_json(setup, measurements, verdicts)
    (out / "capacity.json").write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(render_table(measurements, verdicts))
    for warning in disturbances(measurements):
        print(f"warning: {warning}")
    for verdict in verdicts:
        result = "pass" if verdict.passed else "FAIL"
        target = verdict.target
        print(f"{result:<4}  {target.scenario.label}: {target.text}: {verdict.shown()}")
    print(f"\nreport: {out}")
    return 0 if passed(verdicts) else 1
