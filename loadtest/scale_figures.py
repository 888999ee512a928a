"""The figures of ``idnode bench --scale N``, without I/O: where to stop and measure, the
projection that decides whether N fits the machine, latency percentiles, and the report
(Markdown, JSON, an SVG plot, the terminal table).

The projection, from what this run's calibration measured (never a constant: the bytes
an identifier costs change as the store's layout does)::

    memory = N x (Redis used_memory B/id) x (1 + headroom) + the node's own memory
    disk   = N x (AOF B/id) x 2 - the AOF already written

``headroom`` (default :data:`HEADROOM`) covers what a Redis data set needs beyond
``used_memory``: allocator fragmentation, and the pages a rewrite's fork copies while
writes go on (the report shows ``aof_last_cow_size`` and RSS at each checkpoint, so the
assumption can be checked). The disk holds the AOF twice while a rewrite writes the new
one beside the old. Memory is compared with ``MemAvailable`` (/proc/meminfo), disk with
the free space of the work directory's file system.

>>> cal = Calibration(count=10_000, memory_per_id=580.0, aof_per_id=136.0, node_bytes=200e6)
>>> p = project(100_000_000, cal, Machine(24e9, 80e9))
>>> p.fits, p.largest
(False, 35682158)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from node.startup import size

HEADROOM = 0.15
AOF_COPIES = 2  # the old AOF and the one a rewrite writes beside it


def checkpoints(first: int, n: int) -> list[int]:
    """Where the load stops to measure: ``first``, each tenfold of it below ``n``, and ``n``.

    >>> checkpoints(10_000, 100_000_000)
    [10000, 100000, 1000000, 10000000, 100000000]
    >>> checkpoints(10_000, 250_000), checkpoints(10_000, 3_000)
    ([10000, 100000, 250000], [3000])
    """
    points = []
    at = first
    while at < n:
        points.append(at)
        at *= 10
    return [*points, n]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (the smallest value with at least q% of the
    values at or below it): always a value that was measured.

    >>> percentile([5, 1, 4, 2, 3], 50), percentile(range(1, 101), 99), percentile([7], 99)
    (3, 99, 7)
    """
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Latency:
    """Resolution latency from ``count`` sequential GETs, in milliseconds."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        """
        >>> Latency.of([0.001, 0.002, 0.003])
        Latency(count=3, p50_ms=2.0, p99_ms=3.0, max_ms=3.0)
        """
        ms = [s * 1000 for s in seconds]
        return cls(len(ms), percentile(ms, 50), percentile(ms, 99), max(ms))


@dataclass(frozen=True, slots=True)
class Calibration:
    """What ``count`` identifiers cost a store filled as the N-store will be."""

    count: int
    memory_per_id: float  # Redis used_memory, B/id
    aof_per_id: float  # the AOF after a rewrite, B/id
    node_bytes: float  # the node's processes (RSS), beside Redis
    buckets: int = 0  # the calibration store's record buckets


@dataclass(frozen=True, slots=True)
class Machine:
    """What the machine has for the run, when it starts."""

    memory_available: float  # MemAvailable
    disk_free: float  # in the work directory's file system


@dataclass(frozen=True, slots=True)
class Projection:
    """What N identifiers would need, against what the machine has."""

    n: int
    memory: float
    disk: float
    machine: Machine
    calibration: Calibration
    headroom: float
    largest: int  # the largest N that fits both

    @property
    def fits(self) -> bool:
        return self.memory <= self.machine.memory_available and self.disk <= self.machine.disk_free

    def refusal(self) -> str:
        """Why N does not fit, in one sentence, with the largest N that would.

        >>> cal = Calibration(10_000, 580.0, 136.0, 200e6)
        >>> print(project(10**13, cal, Machine(24e9, 80e9)).refusal())
        --scale 10,000,000,000,000 does not fit this machine: it needs about 6670.0 TB of memory (580 B/id of Redis memory measured at 10,000 identifiers, plus 15% headroom, plus 200.0 MB for the node) where 24.0 GB is available, and 2720.0 TB of disk (136 B/id of AOF, twice over during a rewrite) where 80.0 GB is free; the largest N that fits is 35,682,158.
        """  # noqa: E501
        cal = self.calibration
        memory_ok = self.memory <= self.machine.memory_available
        disk_ok = self.disk <= self.machine.disk_free
        memory = (
            f"about {size(round(self.memory))} of memory ({cal.memory_per_id:,.0f} B/id of "
            f"Redis memory measured at {cal.count:,} identifiers, plus {self.headroom:.0%} "
            f"headroom, plus {size(round(cal.node_bytes))} for the node) where "
            f"{size(round(self.machine.memory_available))} is available"
        )
        disk = (
            f"{size(round(self.disk))} of disk ({cal.aof_per_id:,.0f} B/id of AOF, twice "
            f"over during a rewrite) where {size(round(self.machine.disk_free))} is free"
        )
        needs = (
            f"{memory}, and {disk}"
            if not memory_ok and not disk_ok
            else memory
            if not memory_ok
            else f"{disk} (memory: {size(round(self.memory))} of "
            f"{size(round(self.machine.memory_available))})"
        )
        largest = (
            f"the largest N that fits is {self.largest:,}"
            if self.largest > 0
            else "not even the calibration's identifiers fit"
        )
        return f"--scale {self.n:,} does not fit this machine: it needs {needs}; {largest}."


def project(
    n: int,
    calibration: Calibration,
    machine: Machine,
    *,
    headroom: float = HEADROOM,
    aof_written: float = 0.0,
) -> Projection:
    """The projection for ``n`` identifiers (see the module docstring); ``aof_written``:
    the AOF a resumed run already has on the disk (counted in the free space already)."""
    per_id_memory = calibration.memory_per_id * (1 + headroom)
    per_id_disk = calibration.aof_per_id * AOF_COPIES
    memory = n * per_id_memory + calibration.node_bytes
    disk = max(0.0, n * per_id_disk - aof_written)
    by_memory = (machine.memory_available - calibration.node_bytes) / per_id_memory
    by_disk = (machine.disk_free + aof_written) / per_id_disk if per_id_disk > 0 else math.inf
    largest = max(0, math.floor(min(by_memory, by_disk)))
    return Projection(n, memory, disk, machine, calibration, headroom, largest)


@dataclass(frozen=True, slots=True)
class Point:
    """The figures at one checkpoint of the load."""

    count: int  # identifiers loaded
    stored: int  # identifiers the node lists under the prefix (should equal count)
    memory_per_id: float  # Redis used_memory over the baseline, B/id
    rss_per_id: float  # Redis used_memory_rss, B/id
    aof_per_id: float  # the AOF directory after BGREWRITEAOF, B/id
    import_rate: float  # identifiers/s over the segment since the previous checkpoint
    latency: Latency
    rewrite_cow_bytes: int = 0  # aof_last_cow_size before our rewrite: the load's own


@dataclass(frozen=True, slots=True)
class Restart:
    """The node and its Redis stopped cleanly and started again on the loaded store."""

    seconds: float  # from the start to /readyz saying ready
    loading_answers: int  # /readyz answers saying the store was loading
    last_loading: str = ""  # the last such answer's message
    stop_seconds: float = 0.0


@dataclass(slots=True)
class Report:
    """One run's figures."""

    command: str
    n: int
    started: str
    calibration: Calibration
    projection: Projection
    points: list[Point] = field(default_factory=list)
    restart: Restart | None = None
    workers: int = 1
    buckets: int = 0  # the N-store's record buckets
    # `idnode check --node` on the restarted node: (target, measured, required, result)
    check: list[tuple[str, float | None, float, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["projection"]["fits"] = self.projection.fits
        return out

    def growth(self, point: Point) -> float | None:
        """The point's p99 as a multiple of the first checkpoint's (the 10k one)."""
        first = self.points[0].latency.p99_ms if self.points else 0.0
        return point.latency.p99_ms / first if first > 0 else None


def table(report: Report) -> list[str]:
    """The checkpoints as Markdown table rows (also what the terminal shows)."""
    rows = [
        "| identifiers | stored | Redis B/id | RSS B/id | AOF B/id | import ids/s "
        "| p50 ms | p99 ms | p99 vs first | fork COW MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in report.points:
        growth = report.growth(p)
        rows.append(
            f"| {p.count:,} | {p.stored:,} | {p.memory_per_id:,.0f} | {p.rss_per_id:,.0f} "
            f"| {p.aof_per_id:,.0f} | {p.import_rate:,.0f} | {p.latency.p50_ms:.2f} "
            f"| {p.latency.p99_ms:.2f} | {f'{growth:.2f}x' if growth else '-'} "
            f"| {p.rewrite_cow_bytes / 1e6:,.1f} |"
        )
    return rows


def render_markdown(report: Report, plot: str = "scale.svg") -> str:
    cal, proj = report.calibration, report.projection
    lines = [
        f"# Storage scale: {report.n:,} identifiers",
        "",
        f"`{report.command}`, started {report.started}; the node with {report.workers} "
        f"worker(s), {report.buckets:,} record buckets, AOF on with `appendfsync always`.",
        "",
        "## Calibration and projection",
        "",
        f"At {cal.count:,} identifiers on a store with {cal.buckets:,} buckets (each as "
        f"full as the N-store's will be at N): {cal.memory_per_id:,.0f} B/id of Redis "
        f"memory, {cal.aof_per_id:,.0f} B/id of AOF, {size(round(cal.node_bytes))} for "
        "the node's processes.",
        "",
        f"Projected for {report.n:,}: {size(round(proj.memory))} of memory "
        f"({proj.headroom:.0%} headroom) of {size(round(proj.machine.memory_available))} "
        f"available, {size(round(proj.disk))} of disk of "
        f"{size(round(proj.machine.disk_free))} free; the largest N that fits: "
        f"{proj.largest:,}.",
        "",
        "## Checkpoints",
        "",
        *table(report),
        "",
        "Redis B/id: `used_memory` over the empty node's, per identifier; RSS B/id: "
        "`used_memory_rss` per identifier; AOF B/id: the AOF directory after "
        "`BGREWRITEAOF` (automatic rewrites are held during the load, so a fork's "
        "copy-on-write never meets a write); import ids/s: the segment since the "
        "previous checkpoint, through `idnode import`'s code; p50/p99: sequential "
        "keep-alive GETs of `/api/handles/<id>` for distinct random loaded identifiers; "
        "fork COW: `aof_last_cow_size` of the last rewrite.",
        "",
    ]
    if report.restart is not None:
        r = report.restart
        seen = f", last seen: {r.last_loading}" if r.last_loading else ""
        lines += [
            "## Restart",
            "",
            f"Stopped cleanly in {r.stop_seconds:.1f} s; started again, ready "
            f"(`/readyz` 200) after {r.seconds:.1f} s; `/readyz` said the store was "
            f"loading {r.loading_answers} time(s){seen}.",
            "",
        ]
    if report.check:
        lines += [
            "## The seed plan's per-node targets",
            "",
            "`idnode check --plan wuhan-5g-2021 --node <the node>` on the restarted node "
            "(its own KPIs; the resolution target counts the day's resolutions, which a "
            "storage run does not aim at):",
            "",
            "| target | measured | required | result |",
            "| --- | ---: | ---: | --- |",
            *(
                f"| {target} | {'-' if measured is None else f'{measured:,.0f}'} "
                f"| {required:,.0f} | {result} |"
                for target, measured, required, result in report.check
            ),
            "",
        ]
    lines += [f"![memory and latency against N]({plot})", ""]
    return "\n".join(lines)


def render_svg(points: Sequence[Point], width: int = 720, height: int = 300) -> str:
    """Two panels against N on a log scale: Redis B/id (and AOF B/id), and p50/p99 ms."""
    panel_w = width // 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    counts = [p.count for p in points]
    parts += _panel(
        0,
        panel_w,
        height,
        "bytes per identifier",
        counts,
        [
            ("Redis used_memory", "#1f77b4", [p.memory_per_id for p in points]),
            ("AOF", "#ff7f0e", [p.aof_per_id for p in points]),
        ],
    )
    parts += _panel(
        panel_w,
        panel_w,
        height,
        "resolve latency, ms",
        counts,
        [
            ("p99", "#d62728", [p.latency.p99_ms for p in points]),
            ("p50", "#2ca02c", [p.latency.p50_ms for p in points]),
        ],
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _panel(
    left: int,
    width: int,
    height: int,
    title: str,
    counts: Sequence[int],
    series: Sequence[tuple[str, str, Sequence[float]]],
) -> list[str]:
    x0, x1 = left + 55, left + width - 15
    y0, y1 = height - 40, 30  # bottom, top
    low = math.log10(min(counts)) if counts else 0.0
    high = math.log10(max(counts)) if counts else 1.0
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    top = max((v for _, _, values in series for v in values), default=1.0) * 1.1 or 1.0

    def x(count: float) -> float:
        return x0 + (math.log10(count) - low) / (high - low) * (x1 - x0)

    def y(value: float) -> float:
        return y0 - value / top * (y0 - y1)

    out = [
        f'<text x="{left + width / 2:.0f}" y="16" text-anchor="middle" '
        f'font-weight="bold">{title} against N</text>',
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>',
    ]
    for decade in range(math.ceil(low), math.floor(high) + 1):
        at = x(10**decade)
        out.append(f'<line x1="{at:.1f}" y1="{y0}" x2="{at:.1f}" y2="{y0 + 4}" stroke="black"/>')
        out.append(f'<text x="{at:.1f}" y="{y0 + 16}" text-anchor="middle">1e{decade}</text>')
    for tick in range(5):
        value = top * tick / 4
        out.append(
            f'<text x="{x0 - 4}" y="{y(value) + 4:.1f}" text-anchor="end">{value:,.4g}</text>'
        )
    for row, (name, colour, values) in enumerate(series):
        path = " ".join(f"{x(c):.1f},{y(v):.1f}" for c, v in zip(counts, values, strict=True))
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for c, v in zip(counts, values, strict=True):
            out.append(f'<circle cx="{x(c):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>')
        out.append(f'<text x="{x0 + 8}" y="{y1 + 12 + 14 * row}" fill="{colour}">{name}</text>')
    out.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{height - 8}" text-anchor="middle">'
               "identifiers (N, log scale)</text>")  # fmt: skip
    return out
