"""``idnode bench --scale N``: N identifiers loaded into a real node, measured as they grow.

::

    idnode bench --scale 200000
    idnode bench --scale 100000000 --work /data/scale      # about an hour; --resume after a stop

The run, every process real (``idnode serve`` as a child process with its embedded Redis,
AOF on with the node's defaults, on free loopback ports, data under ``--work``):

1. **Calibration**: ``--calibration`` identifiers (200,000, at most N; at 10,000 the
   fixed costs and the records' first, untrained dictionary overstate a large store's
   bytes per identifier twice over) into a store of its own whose
   record buckets are as full as the N-store's will be at N (bytes per identifier depend
   on the fill: :mod:`registry.record_keys`); Redis ``used_memory`` over the empty
   store's, the AOF after ``BGREWRITEAOF``, the node's own memory. Then the store is
   removed.
2. **Projection** (:func:`loadtest.scale_figures.project`): refused (exit 2, one
   sentence) when N does not fit ``MemAvailable`` or the free disk; ``--force`` skips it.
3. **Load** to N through the code of ``idnode import`` (:class:`node.importer.Importer`:
   its chunks, requests in flight and checkpoint), one file of up to ``--segment``
   identifiers at a time (:mod:`loadtest.scale_catalog` writes the next while one is
   imported; each is removed once imported), a progress line with an ETA every few
   seconds. Automatic AOF rewrites are held meanwhile (:meth:`NodeRun.hold_rewrites`: a
   fork under the load would copy most of a large store's pages). At
   ``--first-checkpoint`` identifiers (10,000), each tenfold of it and N: Redis memory,
   the AOF after a rewrite (nothing written meanwhile), the segment's import rate, the
   identifiers the node lists, and resolve p50/p99 (sequential keep-alive GETs of
   distinct random identifiers).
4. **Restart**: the node stopped cleanly (it stops its Redis last) and started again;
   seconds until ``/readyz`` says ready, and what it said while the store loaded.
5. **Report**: ``reports/<timestamp>/scale.md``, ``scale.json``, ``scale.svg``.

``state.json`` in the work directory records the calibration, the identifiers loaded
and the checkpoints' figures after each segment; ``--resume`` continues from there (the
segment under way resumes at its importer checkpoint; an import replaces identifiers,
so a chunk sent twice duplicates nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from loadtest.check import observe_node
from loadtest.import_rate import descendants
from loadtest.plan import Plan, evaluate
from loadtest.scale_catalog import PREFIX, handle, write_range
from loadtest.scale_figures import (
    HEADROOM,
    Calibration,
    Latency,
    Machine,
    Point,
    Report,
    Restart,
    checkpoints,
    project,
    render_markdown,
    render_svg,
    table,
)
from loadtest.storage_cost import rewrite_aof
from node.embedded_redis import die_with_parent, free_port
from node.import_checkpoint import load as load_checkpoint
from node.import_progress import eta
from node.importer import Importer, ImportOptions
from registry.errors import ConfigError, IdnodeError
from registry.record_keys import DEFAULT_BUCKETS
from resolver.upstream import Credentials

SECRET = "scale-bench"
ADMIN = f"300:0.NA/{PREFIX}"
STATE_VERSION = 1
_NO_PROGRESS_TIMEOUT = 120.0  # a node that neither answers nor loads for this long failed


@dataclass(frozen=True, slots=True)
class ScaleOptions:
    """The ``idnode bench --scale`` options."""

    n: int
    work: Path = Path(".idnode/bench-scale")
    reports: Path = Path("reports")
    resume: bool = False
    force: bool = False
    calibration: int = 200_000  # identifiers (at most n) the projection is made from
    first_checkpoint: int = 10_000
    requests: int = 2000  # resolve GETs at each checkpoint
    headroom: float = HEADROOM
    workers: int = 2
    buckets: int = DEFAULT_BUCKETS  # the N-store's record buckets
    segment: int = 1_000_000  # identifiers per import file
    chunk: int = 2000
    in_flight: int = 4
    progress_every: float = 5.0


class NodeRun:
    """``idnode serve`` (secondary node 88.100) in a child process on ``data``: with its
    embedded Redis, or on the Redis at ``redis_url`` (``redis+cluster://...``: a cluster
    the caller runs)."""

    def __init__(
        self, data: Path, log: Path, *, workers: int, buckets: int, redis_url: str | None = None
    ) -> None:
        self.data, self.log = data, log
        self.workers, self.buckets = workers, buckets
        self.store_url = redis_url
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Restart:
        """Start the node; return once ``/readyz`` says ready, with what it said meanwhile."""
        self.data.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        command = [sys.executable, "-m", "node", "serve", "--role", "secondary"]
        command += ["--prefix", PREFIX, "--port", str(self.port), "--data-dir", str(self.data)]
        command += ["--admin-secret", SECRET, "--workers", str(self.workers)]
        command += ["--record-buckets", str(self.buckets), "--log-level", "warning"]
        if self.store_url is not None:
            command += ["--redis-url", self.store_url]
        began = time.monotonic()
        with self.log.open("ab") as log:
            # Its own session (a Ctrl-C reaches the bench, which stops the node cleanly),
            # and SIGTERM when the bench dies, whichever way.
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        loading, last = 0, ""
        progressed = time.monotonic()
        with httpx.Client(timeout=2) as http:
            while True:
                if self.process.poll() is not None:
                    raise IdnodeError(f"the node exited during start-up: see {self.log}")
                try:
                    answer = http.get(f"{self.url}/readyz")
                    if answer.status_code == 200:
                        return Restart(time.monotonic() - began, loading, last)
                    body = answer.json()
                    if body.get("status") in ("loading", "upgrading"):
                        loading, last = loading + 1, str(body.get("message", ""))
                        progressed = time.monotonic()
                except (httpx.TransportError, ValueError):
                    pass
                if time.monotonic() - progressed > _NO_PROGRESS_TIMEOUT:
                    raise IdnodeError(f"the node did not get ready: see {self.log}")
                time.sleep(0.1)

    def stop(self) -> float:
        """SIGINT (the node finishes, then stops its Redis); seconds it took."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return 0.0
        began = time.monotonic()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(600)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return time.monotonic() - began

    def redis_url(self) -> str:
        """The node's Redis: the URL it was given, else its embedded Redis's, from the
        configuration the node wrote for it."""
        if self.store_url is not None:
            return self.store_url
        conf = (self.data / "redis.conf").read_text().splitlines()
        port = next(line.split()[1] for line in conf if line.startswith("port "))
        return f"redis://127.0.0.1:{port}/0"

    def hold_rewrites(self) -> None:
        """No automatic AOF rewrite until Redis restarts (CONFIG SET, not written to its
        configuration): the load's checkpoints rewrite while nothing is written. A
        rewrite's fork under a bulk load of random buckets would copy most of a large
        store's memory pages (copy-on-write), on a machine the store nearly fills."""
        client = Redis.from_url(self.redis_url())
        try:
            client.config_set("auto-aof-rewrite-percentage", 0)
        finally:
            client.close()

    def redis_info(self, section: str) -> dict[str, Any]:
        client = Redis.from_url(self.redis_url())
        try:
            info: dict[str, Any] = client.info(section)
            return info
        finally:
            client.close()

    def aof_bytes(self) -> int:
        """BGREWRITEAOF, then the AOF's size."""

        async def rewrite() -> int:
            client = AsyncRedis.from_url(self.redis_url())
            try:
                return await rewrite_aof(client, self.data)
            finally:
                await client.aclose()

        return asyncio.run(rewrite())

    def node_bytes(self) -> int:
        """Resident memory of the node's processes (workers included, Redis not)."""
        return sum(_rss(pid) for pid in self.node_pids())

    def node_pids(self) -> list[int]:
        """The node's processes (its supervisor and workers), its embedded Redis not."""
        if self.process is None:
            return []
        pid_file = self.data / "redis.pid"
        redis = int(pid_file.read_text()) if self.store_url is None else 0
        pids = [self.process.pid, *descendants(self.process.pid)]
        return [pid for pid in pids if pid != redis]

    def stored(self) -> int:
        """The identifiers the node lists under the prefix."""
        headers = {"Authorization": Credentials(ADMIN, SECRET).header()}
        answer = httpx.get(
            f"{self.url}/api/handles",
            params={"prefix": PREFIX, "pageSize": 0},
            headers=headers,
            timeout=60,
        )
        answer.raise_for_status()
        return int(answer.json()["totalCount"])


def _rss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def machine(work: Path) -> Machine:
    """MemAvailable and the free disk where ``work`` is (its nearest existing parent)."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    available = next(int(line.split()[1]) * 1024 for line in meminfo if "MemAvailable" in line)
    where = work.resolve()
    while not where.exists():
        where = where.parent
    stat = os.statvfs(where)
    return Machine(float(available), float(stat.f_bavail * stat.f_frsize))


def resolve_latency(
    url: str, loaded: int, requests: int, seed: int, skip: Collection[str] = ()
) -> Latency:
    """``requests`` sequential GETs over one keep-alive connection, of distinct random
    identifiers among the ``loaded`` first (after a few not counted, to open the path);
    none of the handles in ``skip`` (those the node refused to store)."""
    draw = random.Random(seed)
    chosen = draw.sample(range(loaded), min(requests + len(skip), loaded))
    chosen = [k for k in chosen if not skip or handle(k) not in skip][:requests]
    host, _, port = url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    seconds: list[float] = []
    try:
        for number, k in enumerate([*chosen[:20], *chosen]):
            began = time.perf_counter()
            connection.request("GET", f"/api/handles/{handle(k)}")
            response = connection.getresponse()
            body = response.read()
            took = time.perf_counter() - began
            if response.status != 200:
                raise IdnodeError(f"GET {handle(k)}: HTTP {response.status} {body[:200]!r}")
            if number >= 20:
                seconds.append(took)
    finally:
        connection.close()
    return Latency.of(seconds)


@dataclass(slots=True)
class State:
    """What ``state.json`` keeps between runs."""

    n: int
    calibration: Calibration
    buckets: int
    workers: int
    baseline_memory: int = 0  # the empty N-store's used_memory
    loaded: int = 0
    points: list[Point] | None = None
    segment_seconds: float = 0.0  # import time since the last checkpoint
    version: int = STATE_VERSION

    def save(self, path: Path) -> None:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> State:
        raw = json.loads(path.read_text())
        if raw.get("version") != STATE_VERSION:
            raise ConfigError(f"{path} was written by another version: remove its folder")
        points = [
            Point(**{**p, "latency": Latency(**p["latency"])}) for p in raw.pop("points") or []
        ]
        return cls(**{**raw, "calibration": Calibration(**raw["calibration"]), "points": points})


class ScaleBench:
    """One ``idnode bench --scale`` run (see the module docstring)."""

    def __init__(self, options: ScaleOptions, command: str, out: TextIO = sys.stdout) -> None:
        if min(options.n, options.calibration, options.first_checkpoint, options.segment) < 1:
            raise ConfigError(
                "--scale, --calibration, --first-checkpoint and --segment are at least 1"
            )
        self.options = options
        self.command = command
        self.out = out
        self.work = options.work.resolve()
        self.state_path = self.work / "state.json"
        self.segments = self.work / "segments"

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def run(self) -> Path:
        """The run; the report's folder."""
        o = self.options
        started = datetime.now(UTC)
        if o.resume:
            if not self.state_path.exists():
                raise ConfigError(f"--resume: no earlier run in {self.work}")
            state = State.load(self.state_path)
            if o.n < state.loaded:
                raise ConfigError(f"--scale {o.n:,}: the store already holds {state.loaded:,}")
            state.n = o.n
        else:
            if self.state_path.exists():
                held = State.load(self.state_path)
                raise ConfigError(
                    f"{self.work} holds an earlier run ({held.loaded:,} of {held.n:,} "
                    "loaded): --resume continues it; remove the folder to start over"
                )
            self.work.mkdir(parents=True, exist_ok=True)
            buckets = o.buckets
            count = min(o.calibration, o.n)
            calibration = self.calibrate(count, max(1, round(buckets * count / o.n)))
            state = State(o.n, calibration, buckets, o.workers, points=[])
        aof_written = _aof_size(self.work / "store")
        projection = project(
            o.n, state.calibration, machine(self.work), headroom=o.headroom, aof_written=aof_written
        )
        if not projection.fits:
            if not o.force:
                raise ConfigError(projection.refusal())
            self.say(f"--force: going on although {projection.refusal()}")
        state.save(self.state_path)
        node = NodeRun(
            self.work / "store",
            self.work / "node.log",
            workers=state.workers,
            buckets=state.buckets,
        )
        try:
            node.start()
            if not state.loaded and not state.baseline_memory:
                state.baseline_memory = int(node.redis_info("memory")["used_memory"])
                state.save(self.state_path)
            self.load(node, state)
            self.say("restarting the node on the loaded store")
            stop_seconds = node.stop()
            restart = replace(node.start(), stop_seconds=stop_seconds)
            self.say(f"ready again after {restart.seconds:.1f} s")
            check = plan_check(node.url)
            for target, measured, required, result in check:
                self.say(f"idnode check --node: {target}: {measured} of {required:,.0f}: {result}")
        finally:
            node.stop()
        report = Report(
            command=self.command,
            n=o.n,
            started=started.strftime("%Y-%m-%d %H:%M:%S UTC"),
            calibration=state.calibration,
            projection=projection,
            points=list(state.points or []),
            restart=restart,
            workers=state.workers,
            buckets=state.buckets,
            check=check,
        )
        return self.write(report, started)

    def calibrate(self, count: int, buckets: int) -> Calibration:
        o = self.options
        data = self.work / "calibration"
        shutil.rmtree(data, ignore_errors=True)
        self.say(f"calibration: {count:,} identifiers, {buckets:,} record buckets")
        node = NodeRun(data, self.work / "node.log", workers=o.workers, buckets=buckets)
        try:
            node.start()
            before = int(node.redis_info("memory")["used_memory"])
            self.import_range(node, 0, count)
            used = int(node.redis_info("memory")["used_memory"]) - before
            aof = node.aof_bytes()
            node_bytes = node.node_bytes()
        finally:
            node.stop()
        shutil.rmtree(data, ignore_errors=True)
        calibration = Calibration(count, used / count, aof / count, float(node_bytes), buckets)
        self.say(
            f"calibration: {calibration.memory_per_id:,.0f} B/id of Redis memory, "
            f"{calibration.aof_per_id:,.0f} B/id of AOF, node {node_bytes / 1e6:,.0f} MB"
        )
        return calibration

    def load(self, node: NodeRun, state: State) -> None:
        o = self.options
        self.segments.mkdir(exist_ok=True)
        for stale in self.segments.glob("*.tmp"):
            stale.unlink()
        points = state.points if state.points is not None else []
        measured = {p.count for p in points}
        stops = [c for c in checkpoints(o.first_checkpoint, o.n) if c not in measured]
        node.hold_rewrites()
        run_started, run_loaded = time.monotonic(), state.loaded
        with self._progress(state, run_started, run_loaded):
            for stop in stops:
                while state.loaded < stop:
                    end = min(stop, state.loaded + o.segment)
                    began = time.monotonic()
                    self.import_range(node, state.loaded, end, keep=True, ahead=(stop, o.n))
                    state.segment_seconds += time.monotonic() - began
                    state.loaded = end
                    state.save(self.state_path)
                points.append(self.measure(node, state))
                state.points = points
                state.segment_seconds = 0.0
                state.save(self.state_path)
        for left in self.segments.iterdir():  # ranges written ahead for an N since lowered
            left.unlink()

    def import_range(
        self,
        node: NodeRun,
        start: int,
        stop: int,
        *,
        keep: bool = False,
        ahead: tuple[int, int] | None = None,
    ) -> None:
        """Identifiers ``start`` .. ``stop - 1`` through ``idnode import``'s code, from a
        file written for them (or left by an interrupted run, with its checkpoint),
        removed once they are in. With ``ahead``, the next range's file is written
        meanwhile."""
        self.segments.mkdir(parents=True, exist_ok=True)
        file = self._segment_file(start, stop)
        if not file.exists():
            write_range(file, start, stop)
        writer: threading.Thread | None = None
        if ahead is not None and stop < ahead[1]:
            # The next range: up to the next checkpoint, which may be past this one's stop.
            following = checkpoints(self.options.first_checkpoint, ahead[1])
            next_stop = next(c for c in following if c > stop)
            after = self._segment_file(stop, min(next_stop, stop + self.options.segment))
            if not after.exists():
                bounds = (stop, min(next_stop, stop + self.options.segment))
                writer = threading.Thread(target=write_range, args=(after, *bounds), daemon=True)
                writer.start()
        options = ImportOptions(
            file=file,
            url=node.url,
            credentials=Credentials(ADMIN, SECRET),
            chunk=self.options.chunk,
            in_flight=self.options.in_flight,
            progress_every=self.options.progress_every,
        )
        self._importing = (start, options.checkpoint_path)
        try:
            outcome = asyncio.run(Importer(options).run())
        finally:
            if writer is not None:
                writer.join()
        if outcome.rejected:
            raise IdnodeError(
                f"the node refused {outcome.rejected:,} identifiers: see {options.rejects_path}"
            )
        for done in (file, options.checkpoint_path, options.rejects_path):
            done.unlink(missing_ok=True)

    def _segment_file(self, start: int, stop: int) -> Path:
        return self.segments / f"{start:012d}-{stop:012d}.ndjson"

    @contextlib.contextmanager
    def _progress(self, state: State, started: float, start_loaded: int) -> Iterator[None]:
        """A line every ``progress_every`` seconds: identifiers in, rate, ETA to N."""
        stopped = threading.Event()

        def report() -> None:
            while not stopped.wait(self.options.progress_every):
                done = state.loaded
                importing = getattr(self, "_importing", None)
                if importing is not None and importing[0] == state.loaded:
                    with contextlib.suppress(OSError, ConfigError):
                        checkpoint = load_checkpoint(importing[1])
                        done += checkpoint.imported if checkpoint else 0
                seconds = time.monotonic() - started
                rate = (done - start_loaded) / seconds if seconds > 0 else 0.0
                left = (state.n - done) / rate if rate > 0 else None
                self.say(
                    f"  {done:,}/{state.n:,} identifiers {done / state.n:>4.0%}  {rate:,.0f}/s"
                    f"  ETA {eta(left) if left is not None else '?'}"
                )

        thread = threading.Thread(target=report, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stopped.set()
            thread.join()

    def measure(self, node: NodeRun, state: State) -> Point:
        count = state.loaded
        rate = (count - _previous(state)) / state.segment_seconds if state.segment_seconds else 0.0
        cow = int(node.redis_info("persistence").get("aof_last_cow_size", 0))
        memory = node.redis_info("memory")
        aof = node.aof_bytes()
        latency = resolve_latency(node.url, count, self.options.requests, seed=count)
        point = Point(
            count=count,
            stored=node.stored(),
            memory_per_id=(int(memory["used_memory"]) - state.baseline_memory) / count,
            rss_per_id=int(memory["used_memory_rss"]) / count,
            aof_per_id=aof / count,
            import_rate=rate,
            latency=latency,
            rewrite_cow_bytes=cow,
        )
        self.say(
            f"at {count:,}: {point.memory_per_id:,.0f} B/id Redis, {point.aof_per_id:,.0f} "
            f"B/id AOF, {rate:,.0f} ids/s, resolve p50 {latency.p50_ms:.2f} ms "
            f"p99 {latency.p99_ms:.2f} ms"
        )
        return point

    def write(self, report: Report, started: datetime) -> Path:
        out = (self.options.reports / started.strftime("%Y%m%dT%H%M%SZ")).resolve()
        out.mkdir(parents=True, exist_ok=True)
        (out / "scale.md").write_text(render_markdown(report), "utf-8")
        (out / "scale.json").write_text(json.dumps(report.to_json(), indent=2), "utf-8")
        (out / "scale.svg").write_text(render_svg(report.points), "utf-8")
        self.say("\n".join(table(report)))
        if report.restart is not None:
            self.say(f"restart: ready after {report.restart.seconds:.1f} s")
        self.say(f"report: {out / 'scale.md'}")
        return out


def plan_check(node_url: str) -> list[tuple[str, float | None, float, str]]:
    """The Wuhan plan's per-secondary-node targets judged on the node's own KPIs, as
    ``idnode check --plan wuhan-5g-2021 --node URL`` judges them."""
    rows = evaluate(Plan.load("wuhan-5g-2021"), observe_node(node_url))
    return [
        (row.target.id, row.measured, row.required, row.to_json()["result"])
        for row in rows
        if row.subject != "hierarchy"
    ]


def _previous(state: State) -> int:
    """The identifiers at the checkpoint before the one being measured."""
    return state.points[-1].count if state.points else 0


def _aof_size(data: Path) -> int:
    if not data.exists():
        return 0
    return sum(f.stat().st_size for f in data.rglob("*") if "appendonly" in str(f))
