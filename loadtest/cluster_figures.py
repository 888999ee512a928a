"""The figures of ``idnode bench --scale N --cluster M``, without I/O: each store's run
(:class:`StoreRun`), the side-by-side table with ratios, where the CPU went, and the
report (Markdown, JSON, the terminal table).

Per identifier is per identifier *stored*: a run in which the node refused some
identifiers says so (:meth:`ClusterReport.failures`), and its rates count only what went
in. Where the CPU went decides what a comparison on a small machine means; for a run
whose import took ``wall`` seconds on ``cores`` cores::

    busy     = (node + Redis masters + replicas + importer CPU s) / (cores x wall)
    ceiling  = cores x 10^6 / (those CPU µs per identifier)       # ids/s the cores allow
    redis    = rate / (busiest master's CPU s / wall)             # ids/s its one core allows

``ceiling`` is the rate this machine's cores would allow with perfect overlap and no
other work: the ratio of the two stores' ceilings is how much of a difference the cores
allow, whatever the masters. ``redis`` is the rate at which the busiest Redis process
(one command thread) would be saturated: the ratio of the two is what spreading the
store over the masters gives when each process has a core of its own.

>>> cpu = Cpu(node=6.0, masters=3.0, replicas=1.0, importer=2.0, others=0.5)
>>> run = StoreRun("single Redis", 1, 0, 10_000, 10_000, 0, {}, 10_000, 5.0, 8e6, 0.0,
...                1.5e6, 0, Latency(100, 0.5, 1.2, 2.0), cpu, busiest_master=3.0)
>>> round(run.rate), round(run.cpu_us_per_id), round(run.ceiling(2)), round(run.redis_ceiling)
(2000, 1200, 1667, 3333)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from loadtest.scale_figures import Latency

CPU_BOUND = 0.85  # a share of the cores busy from which the cores bound the rate
OTHERS_NOTED = 0.1  # a share of the cores taken by other work that the verdict points out


@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU seconds (user + system, from ``/proc/<pid>/stat``) spent during an import."""

    node: float  # the node's supervisor and workers
    masters: float  # the Redis masters (the single Redis: one master)
    replicas: float  # their replicas
    importer: float  # the bench's own process, where the importer runs
    others: float = 0.0  # the machine's busy time that is none of these (/proc/stat)

    @property
    def ours(self) -> float:
        return self.node + self.masters + self.replicas + self.importer


@dataclass(frozen=True, slots=True)
class StoreRun:
    """One store's figures: N identifiers imported into a fresh node on it."""

    name: str
    masters: int
    replicas: int  # in all (a master's replicas times the masters)
    n: int  # identifiers sent
    imported: int  # the node stored them
    rejected: int  # the node refused them, per item
    reasons: dict[str, int]  # why, the most frequent first (at most a few)
    stored: int | None  # identifiers the node lists under the prefix afterwards
    seconds: float  # the import's wall time
    memory_masters: float  # Redis used_memory over the empty store's, summed over masters
    memory_replicas: float  # the same over the replicas
    aof_masters: int  # the masters' AOF directories after BGREWRITEAOF, bytes
    aof_replicas: int
    latency: Latency
    cpu: Cpu
    busiest_master: float  # the CPU s of the busiest master during the import

    @property
    def rate(self) -> float:
        """Identifiers stored per second of import."""
        return self.imported / self.seconds if self.seconds > 0 else 0.0

    def per_id(self, value: float) -> float:
        return value / self.imported if self.imported else 0.0

    @property
    def cpu_us_per_id(self) -> float:
        """Our processes' CPU per identifier stored, in µs."""
        return self.per_id(self.cpu.ours) * 1e6

    def busy(self, cores: int) -> float:
        """The share of the cores our processes kept busy during the import."""
        return self.cpu.ours / (cores * self.seconds) if self.seconds > 0 else 0.0

    def ceiling(self, cores: int) -> float:
        """Identifiers/s the cores allow at this CPU per identifier (perfect overlap)."""
        return cores * 1e6 / self.cpu_us_per_id if self.cpu_us_per_id > 0 else 0.0

    def others(self, cores: int) -> float:
        """The share of the cores other work on the machine took during the import."""
        return self.cpu.others / (cores * self.seconds) if self.seconds > 0 else 0.0

    @property
    def redis_ceiling(self) -> float:
        """Identifiers/s at which the busiest Redis process would use a whole core."""
        load = self.busiest_master / self.seconds if self.seconds > 0 else 0.0
        return self.rate / load if load > 0 else 0.0


@dataclass(slots=True)
class ClusterReport:
    """One run: the same identifiers into a single Redis, then into a cluster."""

    command: str
    n: int
    started: str
    cores: int
    workers: int
    buckets: int
    single: StoreRun
    cluster: StoreRun
    notes: list[str] = field(default_factory=list)

    @property
    def runs(self) -> tuple[StoreRun, StoreRun]:
        return self.single, self.cluster

    def failures(self) -> list[str]:
        """A sentence for each store on which some identifiers were not stored."""
        out = []
        for run in self.runs:
            if run.rejected or run.imported != run.n:
                why = ", ".join(f"{reason}: {count:,}" for reason, count in run.reasons.items())
                out.append(
                    f"{run.name}: {run.n - run.imported:,} of {run.n:,} identifiers not "
                    f"stored ({run.rejected:,} refused per item{f'; {why}' if why else ''})"
                )
            elif run.stored is not None and run.stored != run.imported:
                out.append(
                    f"{run.name}: the node lists {run.stored:,} identifiers, not the "
                    f"{run.imported:,} it acknowledged"
                )
        return out

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name, run in zip(("single", "cluster"), self.runs, strict=True):
            out[name]["derived"] = derived(run, self.cores)
        out["ratios"] = {row: ratio for row, _, _, ratio in rows(self) if ratio is not None}
        out["failures"] = self.failures()
        out["verdict"] = verdict(self)
        return out


def derived(run: StoreRun, cores: int) -> dict[str, float]:
    """A run's computed figures, as the JSON report keeps them."""
    return {
        "rate": run.rate,
        "memory_masters_per_id": run.per_id(run.memory_masters),
        "memory_total_per_id": run.per_id(run.memory_masters + run.memory_replicas),
        "aof_masters_per_id": run.per_id(run.aof_masters),
        "aof_total_per_id": run.per_id(run.aof_masters + run.aof_replicas),
        "cpu_us_per_id": run.cpu_us_per_id,
        "node_cpu_us_per_id": run.per_id(run.cpu.node) * 1e6,
        "masters_cpu_us_per_id": run.per_id(run.cpu.masters) * 1e6,
        "replicas_cpu_us_per_id": run.per_id(run.cpu.replicas) * 1e6,
        "importer_cpu_us_per_id": run.per_id(run.cpu.importer) * 1e6,
        "busy": run.busy(cores),
        "ceiling": run.ceiling(cores),
        "redis_ceiling": run.redis_ceiling,
    }


# (row, unit format, the figure from a run and the cores), in the table's order
_ROWS: tuple[tuple[str, str], ...] = (
    ("identifiers stored", "{:,.0f}"),
    ("refused per item", "{:,.0f}"),
    ("import ids/s", "{:,.0f}"),
    ("Redis B/id, masters", "{:,.0f}"),
    ("Redis B/id, with replicas", "{:,.0f}"),
    ("AOF B/id, masters", "{:,.0f}"),
    ("AOF B/id, with replicas", "{:,.0f}"),
    ("resolve p50 ms", "{:.2f}"),
    ("resolve p99 ms", "{:.2f}"),
    ("CPU µs/id, node", "{:,.0f}"),
    ("CPU µs/id, Redis masters", "{:,.0f}"),
    ("CPU µs/id, Redis replicas", "{:,.0f}"),
    ("CPU µs/id, importer", "{:,.0f}"),
    ("CPU µs/id, all", "{:,.0f}"),
    ("cores busy", "{:.0%}"),
    ("ids/s the cores allow", "{:,.0f}"),
    ("ids/s the busiest Redis allows", "{:,.0f}"),
)


def _figures(run: StoreRun, cores: int) -> list[float]:
    d = derived(run, cores)
    return [
        run.imported,
        run.rejected,
        d["rate"],
        d["memory_masters_per_id"],
        d["memory_total_per_id"],
        d["aof_masters_per_id"],
        d["aof_total_per_id"],
        run.latency.p50_ms,
        run.latency.p99_ms,
        d["node_cpu_us_per_id"],
        d["masters_cpu_us_per_id"],
        d["replicas_cpu_us_per_id"],
        d["importer_cpu_us_per_id"],
        d["cpu_us_per_id"],
        d["busy"],
        d["ceiling"],
        d["redis_ceiling"],
    ]


def rows(report: ClusterReport) -> list[tuple[str, str, str, float | None]]:
    """(figure, single, cluster, cluster / single) for each row of the table."""
    out = []
    single = _figures(report.single, report.cores)
    cluster = _figures(report.cluster, report.cores)
    for (name, form), a, b in zip(_ROWS, single, cluster, strict=True):
        out.append((name, form.format(a), form.format(b), b / a if a else None))
    return out


def table(report: ClusterReport) -> list[str]:
    """The side-by-side table as Markdown rows (also what the terminal shows)."""
    s, c = report.single, report.cluster
    lines = [
        f"| | {s.name} | {c.name} | cluster / single |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, a, b, ratio in rows(report):
        lines.append(f"| {name} | {a} | {b} | {'-' if ratio is None else f'{ratio:.2f}x'} |")
    return lines


def cpu_split(run: StoreRun, cores: int) -> str:
    """Where a run's CPU went, in one sentence.

    >>> cpu = Cpu(node=6.0, masters=3.0, replicas=1.0, importer=2.0, others=0.5)
    >>> run = StoreRun("cluster", 3, 3, 10, 10, 0, {}, 10, 10.0, 0, 0, 0, 0,
    ...                Latency(1, 1, 1, 1), cpu, 1.5)
    >>> print(cpu_split(run, 2))
    cluster: 12.0 CPU s in 10.0 s of import on 2 cores (60% of them): node 50%, Redis masters 25% (the busiest 15% of a core), replicas 8%, importer 17%; other work on the machine 0.5 CPU s (2% of the cores).
    """  # noqa: E501
    cpu, total = run.cpu, run.cpu.ours or 1.0
    busiest = run.busiest_master / run.seconds if run.seconds > 0 else 0.0
    return (
        f"{run.name}: {cpu.ours:,.1f} CPU s in {run.seconds:,.1f} s of import on {cores} "
        f"cores ({run.busy(cores):.0%} of them): node {cpu.node / total:.0%}, Redis masters "
        f"{cpu.masters / total:.0%} (the busiest {busiest:.0%} of a core), replicas "
        f"{cpu.replicas / total:.0%}, importer {cpu.importer / total:.0%}; other work on "
        f"the machine {cpu.others:,.1f} CPU s ({run.others(cores):.0%} of the cores)."
    )


def verdict(report: ClusterReport) -> str:
    """How much of the cluster's difference in rate the cores allow, computed.

    >>> cpu = Cpu(node=1.2, masters=0.5, replicas=0.2, importer=0.1, others=0.1)
    >>> one = StoreRun("single", 1, 0, 1000, 1000, 0, {}, 1000, 1.0, 0, 0, 0, 0,
    ...                Latency(1, 1, 1, 1), cpu, 0.5)
    >>> three = StoreRun("cluster", 3, 3, 1000, 1000, 0, {}, 1000, 1.25, 0, 0, 0, 0,
    ...                  Latency(1, 1, 1, 1), Cpu(1.3, 0.6, 0.3, 0.1, 0.2), 0.25)
    >>> print(verdict(ClusterReport("", 1000, "", 2, 2, 1, one, three)))
    This machine has 2 cores. The cluster of 3 masters stored 0.80x the single Redis's identifiers per second; its import kept the 2 cores 100% busy (its own processes 92%, other work 8%): the cores, not the masters, bound its throughput. At the CPU each store's processes spent per identifier (2,300 µs against 2,000), 2 cores allow the cluster 0.87x the single Redis's rate. The busiest master would use a whole core at 4,000 ids/s, the single Redis at 2,000 (2.00x): with a core for each Redis process and the node's workers, the masters would let the cluster go up to 2.00x as fast before a Redis process bounds it.
    """  # noqa: E501
    s, c, cores = report.single, report.cluster, report.cores
    if not (s.rate and c.rate and s.ceiling(cores) and c.ceiling(cores)):
        return "No verdict: a store stored nothing, or no CPU was measured."
    measured = c.rate / s.rate
    allowed = c.ceiling(cores) / s.ceiling(cores)
    others = c.others(cores)
    busy = c.busy(cores) + others
    bound = (
        "the cores, not the masters, bound its throughput"
        if busy >= CPU_BOUND
        else "something besides CPU (fsync, round trips, the importer's requests in "
        "flight) bound its throughput"
    )
    spread = c.redis_ceiling / s.redis_ceiling if s.redis_ceiling else 0.0
    redis = (
        f"with a core for each Redis process and the node's workers, the masters would "
        f"let the cluster go up to {spread:.2f}x as fast before a Redis process bounds it"
        if spread > 1
        else "spreading the store over the masters did not lighten its busiest Redis "
        "process at this N"
    )
    quiet = (
        ""
        if max(s.others(cores), others) < OTHERS_NOTED
        else f" Other work on the machine took {s.others(cores):.0%} of the cores during "
        f"the single Redis's import and {others:.0%} during the cluster's: both were "
        "measured under that load, and a quiet machine would give them more."
    )
    return (
        f"This machine has {cores} cores. The cluster of {c.masters} masters stored "
        f"{measured:.2f}x the single Redis's identifiers per second; its import kept the "
        f"{cores} cores {busy:.0%} busy (its own processes {c.busy(cores):.0%}, other work "
        f"{others:.0%}): {bound}. At the CPU each store's processes spent per identifier "
        f"({c.cpu_us_per_id:,.0f} µs against {s.cpu_us_per_id:,.0f}), {cores} cores allow "
        f"the cluster {allowed:.2f}x the single Redis's rate. The busiest master would use "
        f"a whole core at {c.redis_ceiling:,.0f} ids/s, the single Redis at "
        f"{s.redis_ceiling:,.0f} ({spread:.2f}x): {redis}.{quiet}"
    )


def render_markdown(report: ClusterReport) -> str:
    s, c = report.single, report.cluster
    failures = report.failures()
    lines = [
        f"# Single Redis against a Redis Cluster: {report.n:,} identifiers",
        "",
        f"`{report.command}`, started {report.started}; {report.cores} cores; each node "
        f"with {report.workers} worker(s) and {report.buckets:,} record buckets, AOF on "
        f"with `appendfsync always` on every Redis process. The same identifiers "
        f"(`loadtest.scale_catalog`) into a fresh node on each store, one after the "
        f"other, through `idnode import`'s code: {s.name}, then {c.name} "
        f"({c.masters} masters, {c.replicas} replicas).",
        "",
    ]
    if failures:
        lines += [
            "**Some identifiers were not stored**: the figures per identifier count only "
            "those that were.",
            "",
            *(f"- {failure}" for failure in failures),
            "",
        ]
    else:
        lines += ["Every identifier was stored on both stores.", ""]
    lines += [
        *table(report),
        "",
        "Redis B/id: `used_memory` over the empty store's, summed over the masters (and "
        "with the replicas, each of which holds a copy); AOF B/id: the AOF directories "
        "after `BGREWRITEAOF` on each process (automatic rewrites held during the "
        "import); import ids/s: identifiers stored over the import's wall time; "
        "p50/p99: sequential keep-alive GETs of `/api/handles/<id>` for distinct random "
        "stored identifiers; CPU: user + system seconds of each process during the "
        "import (`/proc/<pid>/stat`), per identifier stored; ids/s the cores allow: the "
        "cores over the CPU per identifier; ids/s the busiest Redis allows: the rate at "
        "which the busiest master would use a whole core.",
        "",
        "## Cores and CPU",
        "",
        f"- {cpu_split(s, report.cores)}",
        f"- {cpu_split(c, report.cores)}",
        "",
        verdict(report),
        "",
    ]
    if report.notes:
        lines += ["## Notes", "", *(f"- {note}" for note in report.notes), ""]
    return "\n".join(lines)
