"""``idnode bench --scale N --cluster M``: the same N identifiers into a node on a single
Redis and into a node on a Redis Cluster of M masters, side by side, in one run.

::

    idnode bench --scale 200000 --cluster 3

The run, every process real, data under ``--work``/``vs-cluster`` (removed before and
after: each store starts fresh):

1. The catalogue of :mod:`loadtest.scale_catalog` (identifiers 0 .. N-1) written to files
   of up to ``--segment`` identifiers, before any import: nothing else uses the cores
   while a store is measured.
2. **Single Redis**: ``idnode serve`` with its embedded Redis
   (:class:`loadtest.scale_bench.NodeRun`), the files imported through the code of
   ``idnode import`` (:class:`node.importer.Importer`, in this process).
3. **Cluster**: an :class:`node.embedded_cluster.EmbeddedCluster` of M masters with one
   replica each, and ``idnode serve --redis-url <its URL>`` (the node spreads a prefix
   over 16 shards there), the same files imported.

For each: the import's wall time; identifiers refused per item (counted with their
reasons, never hidden: a run with any exits 1 and its report says so); Redis
``used_memory`` over the empty store's, summed over the masters and over the replicas;
the AOF directories after ``BGREWRITEAOF`` on every Redis process; resolve p50/p99
(:func:`loadtest.scale_bench.resolve_latency`); and CPU seconds during the import of the
node's processes, each master, each replica and this process (the importer), from
``/proc/<pid>/stat``, with the machine's other work from ``/proc/stat``. The figures and
what they mean on this machine's cores: :mod:`loadtest.cluster_figures`. Report:
``reports/<timestamp>/cluster.md`` and ``cluster.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from loadtest.cluster_figures import ClusterReport, Cpu, StoreRun, render_markdown, table
from loadtest.import_rate import cpu_seconds, machine_cpu
from loadtest.scale_bench import ADMIN, SECRET, NodeRun, resolve_latency
from loadtest.scale_catalog import write_range
from loadtest.scale_figures import Latency
from loadtest.storage_cost import rewrite_aof
from node.embedded_cluster import EmbeddedCluster
from node.importer import Importer, ImportOptions
from registry.errors import ConfigError
from registry.record_keys import DEFAULT_BUCKETS
from resolver.upstream import Credentials

REASONS_KEPT = 5  # the most frequent reasons for refusals a report names
_SETTLE = 1.0  # seconds after start-up before measuring (workers finish starting)


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    """The ``idnode bench --scale N --cluster M`` options."""

    n: int
    masters: int = 3
    replicas: int = 1  # per master
    work: Path = Path(".idnode/bench-scale")
    reports: Path = Path("reports")
    requests: int = 2000  # resolve GETs timed on each store
    workers: int = 2
    buckets: int = DEFAULT_BUCKETS
    segment: int = 1_000_000  # identifiers per import file
    chunk: int = 2000
    in_flight: int = 4
    progress_every: float = 5.0


@dataclass(frozen=True, slots=True)
class Processes:
    """The Redis processes of a store: the masters' and replicas' ports, each one's
    process id and data directory."""

    masters: list[int]
    replicas: list[int]
    pids: dict[int, int]
    dirs: dict[int, Path]

    @property
    def ports(self) -> list[int]:
        return [*self.masters, *self.replicas]


@dataclass(slots=True)
class _Imported:
    imported: int = 0
    rejected: int = 0
    seconds: float = 0.0


class ClusterBench:
    """One ``idnode bench --scale N --cluster M`` run (see the module docstring)."""

    def __init__(self, options: ClusterOptions, command: str, out: TextIO = sys.stdout) -> None:
        if options.n < 1 or options.segment < 1:
            raise ConfigError("--scale and --segment are at least 1")
        if options.masters < 3:
            raise ConfigError(
                f"--cluster: a Redis Cluster needs 3 masters or more, not {options.masters}"
            )
        self.options = options
        self.command = command
        self.out = out
        self.work = (options.work / "vs-cluster").resolve()
        self.logs = options.work.resolve()  # kept: the stores are removed after the run
        self.files: list[Path] = []

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def run(self) -> tuple[Path, ClusterReport]:
        """The run; the report's folder and the report."""
        o = self.options
        started = datetime.now(UTC)
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        try:
            self.write_catalogue()
            single = self.single()
            cluster = self.cluster()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)
        report = ClusterReport(
            command=self.command,
            n=o.n,
            started=started.strftime("%Y-%m-%d %H:%M:%S UTC"),
            cores=os.cpu_count() or 1,
            workers=o.workers,
            buckets=o.buckets,
            single=single,
            cluster=cluster,
            notes=[
                "The single Redis holds a prefix in one shard (the node's default off a "
                "cluster); on the cluster the node spreads it over 16 shards (its default "
                "there), so its keys are spread over the masters' slots.",
                "The importer runs in the bench's process on the same cores as the "
                "stores: its CPU is counted beside theirs.",
            ],
        )
        return self.write(report, started), report

    def write_catalogue(self) -> None:
        o = self.options
        segments = self.work / "segments"
        segments.mkdir()
        self.say(f"writing {o.n:,} identifiers in files of up to {o.segment:,}")
        for start in range(0, o.n, o.segment):
            stop = min(o.n, start + o.segment)
            file = segments / f"{start:012d}-{stop:012d}.ndjson"
            write_range(file, start, stop)
            self.files.append(file)

    def single(self) -> StoreRun:
        """The identifiers into a node on its embedded Redis."""
        o = self.options
        self.say("single Redis: starting a node on its embedded Redis")
        node = NodeRun(
            self.work / "single",
            self.logs / "vs-cluster-single.log",
            workers=o.workers,
            buckets=o.buckets,
        )
        try:
            node.start()
            time.sleep(_SETTLE)
            port = int(node.redis_url().rsplit(":", 1)[1].split("/")[0])
            pid = int((node.data / "redis.pid").read_text())
            redis = Processes([port], [], {port: pid}, {port: node.data})
            return self.measure("single Redis", node, redis)
        finally:
            node.stop()

    def cluster(self) -> StoreRun:
        """The identifiers into a node on an embedded Redis Cluster."""
        o = self.options
        name = f"cluster {o.masters}+{o.masters * o.replicas}"
        self.say(f"{name}: starting {o.masters} masters with {o.replicas} replica(s) each")
        cluster = EmbeddedCluster(self.work / "cluster", masters=o.masters, replicas=o.replicas)
        url = cluster.start()
        node = NodeRun(
            self.work / "cluster-node",
            self.logs / "vs-cluster-node.log",
            workers=o.workers,
            buckets=o.buckets,
            redis_url=url,
        )
        try:
            node.start()
            time.sleep(_SETTLE)
            masters = cluster.master_ports()
            pids: dict[int, int] = {}
            dirs: dict[int, Path] = {}
            for member in cluster.members:
                if member.port is not None and member.pid is not None:
                    pids[member.port], dirs[member.port] = member.pid, member.data_dir
            replicas = [port for port in pids if port not in masters]
            store = Processes(masters, replicas, pids, dirs)
            return self.measure(name, node, store)
        finally:
            node.stop()
            cluster.stop()

    def measure(self, name: str, node: NodeRun, store: Processes) -> StoreRun:
        """Import every file into ``node``, whose store is ``store``, and take the
        store's figures."""
        o = self.options
        ports, masters, replicas = store.ports, store.masters, store.replicas
        for port in ports:  # rewrites while nothing is written, as in --scale
            _redis(port, lambda r: r.config_set("auto-aof-rewrite-percentage", 0))
        empty = {port: _used_memory(port) for port in ports}
        redis_pids = store.pids
        node_pids = node.node_pids()
        before = _cpu(node_pids, redis_pids)
        busy_before, _ = machine_cpu()
        rejects: list[Path] = []
        done = _Imported()
        for file in self.files:
            self.say(f"{name}: importing {file.name}")
            self.import_file(node, file, done, rejects)
        busy = machine_cpu()[0] - busy_before
        after = _cpu(node_pids, redis_pids)
        spent = {key: after[key] - before.get(key, 0.0) for key in after}
        by_port = {port: spent.get(pid, 0.0) for port, pid in redis_pids.items()}
        cpu = Cpu(
            node=sum(spent[pid] for pid in node_pids),
            masters=sum(by_port.get(port, 0.0) for port in masters),
            replicas=sum(by_port.get(port, 0.0) for port in replicas),
            importer=spent[-1],
        )
        cpu = Cpu(cpu.node, cpu.masters, cpu.replicas, cpu.importer, max(0.0, busy - cpu.ours))
        memory = {port: _used_memory(port) - empty[port] for port in ports}
        aof = asyncio.run(_rewrite_all(ports, store.dirs))
        refused, reasons = _refusals(rejects)
        latency = (
            resolve_latency(node.url, o.n, o.requests, seed=o.n, skip=refused)
            if done.imported
            else Latency(0, 0.0, 0.0, 0.0)
        )
        try:
            stored: int | None = node.stored()
        except Exception as exc:  # noqa: BLE001 - a listing that fails is a figure too
            self.say(f"{name}: the node could not list its identifiers: {exc}")
            stored = None
        run = StoreRun(
            name=name,
            masters=len(masters),
            replicas=len(replicas),
            n=o.n,
            imported=done.imported,
            rejected=done.rejected,
            reasons=reasons,
            stored=stored,
            seconds=done.seconds,
            memory_masters=float(sum(memory[p] for p in masters)),
            memory_replicas=float(sum(memory[p] for p in replicas)),
            aof_masters=sum(aof[p] for p in masters),
            aof_replicas=sum(aof[p] for p in replicas),
            latency=latency,
            cpu=cpu,
            busiest_master=max((by_port.get(p, 0.0) for p in masters), default=0.0),
        )
        failed = f", {run.rejected:,} REFUSED" if run.rejected else ""
        self.say(
            f"{name}: {run.imported:,} identifiers in {run.seconds:,.1f} s "
            f"({run.rate:,.0f}/s){failed}"
        )
        return run

    def import_file(self, node: NodeRun, file: Path, done: _Imported, rejects: list[Path]) -> None:
        """One file through ``idnode import``'s code; its refusals kept in ``rejects``."""
        options = ImportOptions(
            file=file,
            url=node.url,
            credentials=Credentials(ADMIN, SECRET),
            chunk=self.options.chunk,
            in_flight=self.options.in_flight,
            progress_every=self.options.progress_every,
            checkpoint=file.with_name(f"{file.name}.{node.port}.checkpoint"),
            rejects=file.with_name(f"{file.name}.{node.port}.rejects"),
            restart=True,
        )
        began = time.monotonic()
        outcome = asyncio.run(Importer(options).run())
        done.seconds += time.monotonic() - began
        done.imported += outcome.imported
        done.rejected += outcome.rejected
        rejects.append(options.rejects_path)
        options.checkpoint_path.unlink(missing_ok=True)

    def write(self, report: ClusterReport, started: datetime) -> Path:
        out = (self.options.reports / started.strftime("%Y%m%dT%H%M%SZ")).resolve()
        out.mkdir(parents=True, exist_ok=True)
        (out / "cluster.md").write_text(render_markdown(report), "utf-8")
        (out / "cluster.json").write_text(json.dumps(report.to_json(), indent=2), "utf-8")
        self.say("\n".join(table(report)))
        for failure in report.failures():
            self.say(f"NOT STORED: {failure}")
        self.say(f"report: {out / 'cluster.md'}")
        return out


def _redis(port: int, call: Callable[[Redis], object]) -> object:
    client = Redis(host="127.0.0.1", port=port)
    try:
        return call(client)
    finally:
        client.close()


def _used_memory(port: int) -> int:
    info = _redis(port, lambda r: r.info("memory"))
    assert isinstance(info, dict)
    return int(info["used_memory"])


async def _rewrite_all(ports: list[int], dirs: dict[int, Path]) -> dict[int, int]:
    """BGREWRITEAOF on every process at once; each one's AOF bytes afterwards."""

    async def one(port: int) -> int:
        client = AsyncRedis(host="127.0.0.1", port=port)
        try:
            return await rewrite_aof(client, dirs[port])
        finally:
            await client.aclose()

    sizes = await asyncio.gather(*(one(port) for port in ports))
    return dict(zip(ports, sizes, strict=True))


def _cpu(node_pids: list[int], redis_pids: dict[int, int]) -> dict[int, float]:
    """CPU seconds by process id; this process's (the importer's) under -1."""
    out = {pid: cpu_seconds(pid) for pid in [*node_pids, *redis_pids.values()]}
    out[-1] = sum(os.times()[:2])
    return out


def _refusals(files: list[Path]) -> tuple[frozenset[str], dict[str, int]]:
    """The handles refused, and the most frequent reasons with their counts."""
    handles: set[str] = set()
    reasons: Counter[str] = Counter()
    for file in files:
        for text in _lines(file):
            item = json.loads(text)
            if item.get("handle"):
                handles.add(str(item["handle"]))
            reasons[str(item.get("reason", "?"))[:120]] += 1
    return frozenset(handles), dict(reasons.most_common(REASONS_KEPT))


def _lines(file: Path) -> Iterator[str]:
    if not file.exists():
        return
    with file.open(encoding="utf-8") as lines:
        yield from (line for line in lines if line.strip())
