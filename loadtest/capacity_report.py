"""The capacity benchmark's scenarios, the issue's targets as data, the verdicts and the
report (console table, Markdown, JSON). Pure: no I/O.

Scenarios, measured one after another on one machine::

    nginx          baseline: nginx answering the same body as a static file
    fastapi        baseline: a minimal FastAPI app doing one Redis GET per request
    cached         (a) a cached identifier resolved through the top node
    authoritative  (b) an identifier resolved at the secondary node that holds it
    miss           (c) cache-miss resolution through the hierarchy (distinct identifiers)
    batch          (d) batch registration, identifiers/s

Targets (the issue; every ratio is between figures of the same run):

    cached         >= 4x fastapi, >= 15% of nginx, p99 < 10 ms at 50% of its maximum
    authoritative  >= 2.5x fastapi
    batch          >= 20,000 identifiers/s
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from loadtest.capacity_figures import Latency, Throughput


class Scenario(StrEnum):
    NGINX = "nginx"
    FASTAPI = "fastapi"
    CACHED = "cached"
    AUTHORITATIVE = "authoritative"
    MISS = "miss"
    BATCH = "batch"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def unit(self) -> str:
        return "ids/s" if self is Scenario.BATCH else "req/s"


_LABELS = {
    Scenario.NGINX: "nginx static file (baseline)",
    Scenario.FASTAPI: "FastAPI + Redis GET (baseline)",
    Scenario.CACHED: "(a) cached, through the top node",
    Scenario.AUTHORITATIVE: "(b) authoritative, at the secondary",
    Scenario.MISS: "(c) cache miss, through the hierarchy",
    Scenario.BATCH: "(d) batch registration, AOF on",
}


class Measure(StrEnum):
    TIMES_FASTAPI = "times the FastAPI+Redis rate"
    SHARE_OF_NGINX = "share of nginx's rate"
    P99_AT_HALF = "p99 ms at 50% of the maximum rate"
    RATE = "rate"


@dataclass(frozen=True, slots=True)
class Target:
    scenario: Scenario
    measure: Measure
    bound: float
    text: str

    def met(self, value: float) -> bool:
        """Latency must stay under its bound; everything else reach it."""
        return value < self.bound if self.measure is Measure.P99_AT_HALF else value >= self.bound


TARGETS: tuple[Target, ...] = (
    Target(Scenario.CACHED, Measure.TIMES_FASTAPI, 4.0, ">= 4x FastAPI+Redis"),
    Target(Scenario.CACHED, Measure.SHARE_OF_NGINX, 0.15, ">= 15% of nginx"),
    Target(Scenario.CACHED, Measure.P99_AT_HALF, 10.0, "p99 < 10 ms at 50% of max"),
    Target(Scenario.AUTHORITATIVE, Measure.TIMES_FASTAPI, 2.5, ">= 2.5x FastAPI+Redis"),
    Target(Scenario.BATCH, Measure.RATE, 20_000.0, ">= 20,000 ids/s"),
)


@dataclass(frozen=True, slots=True)
class CpuShare:
    """CPU used during a measurement, in cores (1.0 = one core busy all along)."""

    generator: float
    server: float  # the process(es) under test
    redis: float
    other: float = 0.0  # everything else on the machine: other users' load, steal

    def to_json(self) -> dict[str, float]:
        return {
            "generator": round(self.generator, 3),
            "server": round(self.server, 3),
            "redis": round(self.redis, 3),
            "other": round(self.other, 3),
        }


@dataclass(frozen=True, slots=True)
class Measurement:
    """One scenario's figures: the maximum rate, and latency at half of it."""

    scenario: Scenario
    throughput: Throughput
    latency: Latency | None = None
    cpu: CpuShare | None = None
    miss_ratio: float | None = None  # share of the top node's resolutions that missed
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.value,
            "label": self.scenario.label,
            "unit": self.scenario.unit,
            "throughput": self.throughput.to_json(),
            "latency": self.latency.to_json() if self.latency else None,
            "cpu": self.cpu.to_json() if self.cpu else None,
            "miss_ratio": self.miss_ratio,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    target: Target
    value: float | None  # None: not measured

    @property
    def passed(self) -> bool:
        return self.value is not None and self.target.met(self.value)

    def shown(self) -> str:
        if self.value is None:
            return "not measured"
        if math.isinf(self.value):
            return "unanswered requests"
        if self.target.measure is Measure.TIMES_FASTAPI:
            return f"{self.value:.2f}x"
        if self.target.measure is Measure.SHARE_OF_NGINX:
            return f"{self.value:.1%}"
        if self.target.measure is Measure.P99_AT_HALF:
            return f"{self.value:.2f} ms"
        return f"{self.value:,.0f}"

    def to_json(self) -> dict[str, Any]:
        finite = self.value is not None and math.isfinite(self.value)
        return {
            "scenario": self.target.scenario.value,
            "target": self.target.text,
            "value": self.value if finite else None,
            "shown": self.shown(),
            "passed": self.passed,
        }


@dataclass(frozen=True, slots=True)
class Setup:
    """How the run was made, for the report's header."""

    command: str
    started: str  # ISO time, UTC
    seconds: int
    cores: int
    wrk: str  # e.g. "1 thread, 16 connections"
    pinning: str
    open_loop: str
    appendfsync: str
    identifier: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "started": self.started,
            "seconds": self.seconds,
            "cores": self.cores,
            "wrk": self.wrk,
            "pinning": self.pinning,
            "open_loop": self.open_loop,
            "appendfsync": self.appendfsync,
            "identifier": self.identifier,
            "notes": list(self.notes),
        }


def _by_scenario(measurements: Sequence[Measurement]) -> dict[Scenario, Measurement]:
    return {m.scenario: m for m in measurements}


def ratio(value: float, base: float | None) -> float | None:
    """``value / base``, or None when there is no base to compare with.

    >>> ratio(300.0, 100.0), ratio(1.0, 0.0)
    (3.0, None)
    """
    return value / base if base else None


def ratios(
    measurement: Measurement, measurements: Sequence[Measurement]
) -> tuple[float | None, float | None]:
    """A resolution's rate relative to the FastAPI+Redis and the nginx rates (None for
    batch registration, which counts identifiers, not requests)."""
    if measurement.scenario is Scenario.BATCH:
        return None, None
    runs = _by_scenario(measurements)
    rate = measurement.throughput.rate
    fastapi = runs.get(Scenario.FASTAPI)
    nginx = runs.get(Scenario.NGINX)
    return (
        ratio(rate, fastapi.throughput.rate if fastapi else None),
        ratio(rate, nginx.throughput.rate if nginx else None),
    )


def judge(measurements: Sequence[Measurement]) -> list[Verdict]:
    """One verdict per target, in :data:`TARGETS` order."""
    runs = _by_scenario(measurements)
    verdicts = []
    for target in TARGETS:
        run = runs.get(target.scenario)
        value: float | None = None
        if run is not None:
            times_fastapi, share_of_nginx = ratios(run, measurements)
            value = {
                Measure.TIMES_FASTAPI: times_fastapi,
                Measure.SHARE_OF_NGINX: share_of_nginx,
                Measure.P99_AT_HALF: run.latency.p99_ms if run.latency else None,
                Measure.RATE: run.throughput.rate,
            }[target.measure]
            if target.measure is Measure.P99_AT_HALF and run.latency and value is None:
                value = float("inf")  # some requests were never answered: p99 is unbounded
        verdicts.append(Verdict(target, value))
    return verdicts


OTHER_LOAD = 0.1  # cores used by other processes above which a figure is disturbed
SATURATED = 0.9  # generator cores above which it, not the server, set the rate


def disturbances(measurements: Sequence[Measurement]) -> list[str]:
    """What makes a figure less than the server's own limit: other load on the machine
    during the run, or a load generator that used all of its core.

    >>> run = Measurement(Scenario.NGINX, Throughput(9, 0, 1.0, None, None),
    ...                   cpu=CpuShare(generator=0.97, server=0.5, redis=0.0, other=0.3))
    >>> disturbances([run])  # doctest: +NORMALIZE_WHITESPACE
    ['nginx static file (baseline): other processes used 0.30 cores meanwhile; the figure
    is disturbed, run again on a quiet machine',
     'nginx static file (baseline): the load generator used 0.97 cores, all it had; the
     rate is at least this']
    """
    found = []
    for m in measurements:
        if m.cpu is None:
            continue
        if m.cpu.other > OTHER_LOAD:
            found.append(
                f"{m.scenario.label}: other processes used {m.cpu.other:.2f} cores meanwhile; "
                "the figure is disturbed, run again on a quiet machine"
            )
        if m.cpu.generator > SATURATED:
            found.append(
                f"{m.scenario.label}: the load generator used {m.cpu.generator:.2f} cores, "
                "all it had; the rate is at least this"
            )
    return found


def passed(verdicts: Sequence[Verdict]) -> bool:
    return all(v.passed for v in verdicts)


HEADER = (
    "scenario",
    "rate",
    "failed",
    "p50 / p99 ms at 50%",
    "x FastAPI",
    "x nginx",
    "target",
    "result",
)


def table_rows(
    measurements: Sequence[Measurement], verdicts: Sequence[Verdict]
) -> list[tuple[str, ...]]:
    """The summary table: one row per scenario, targets and their verdicts joined."""
    rows: list[tuple[str, ...]] = []
    for m in measurements:
        times_fastapi, times_nginx = ratios(m, measurements)
        mine = [v for v in verdicts if v.target.scenario is m.scenario]
        target = "; ".join(v.target.text for v in mine) or "-"
        if not mine:
            result = "-"
        elif all(v.passed for v in mine):
            result = "pass"
        else:
            result = "FAIL: " + ", ".join(f"{v.shown()}" for v in mine if not v.passed)
        rate = f"{m.throughput.rate:,.0f} {m.scenario.unit}"
        if m.miss_ratio is not None:
            rate += f" ({m.miss_ratio:.1%} miss)"
        rows.append(
            (
                m.scenario.label,
                rate,
                f"{m.throughput.failure_ratio:.2%}",
                _latency_cell(m.latency),
                _times(times_fastapi),
                _times(times_nginx),
                target,
                result,
            )
        )
    return rows


def _latency_cell(latency: Latency | None) -> str:
    if latency is None:
        return "-"
    return f"{_ms(latency.p50_ms)} / {_ms(latency.p99_ms)} @ {latency.rate:,.0f}/s"


def _ms(value: float | None) -> str:
    return "unanswered" if value is None else f"{value:.2f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def render_table(measurements: Sequence[Measurement], verdicts: Sequence[Verdict]) -> str:
    """The summary as aligned plain text, for the terminal."""
    rows = [HEADER, *table_rows(measurements, verdicts)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render_markdown(
    setup: Setup, measurements: Sequence[Measurement], verdicts: Sequence[Verdict]
) -> str:
    """The whole report: summary, targets, the details of each measurement, the setup."""
    lines = [
        "# idnode capacity benchmark",
        "",
        f"`{setup.command}` at {setup.started}, {setup.seconds} s per measurement, "
        f"{setup.cores} cores; identifier `{setup.identifier}`.",
        "",
        _md_row(HEADER),
        _md_row(["---"] * len(HEADER)),
        *(_md_row(r) for r in table_rows(measurements, verdicts)),
        "",
        "## Targets",
        "",
        _md_row(("scenario", "target", "measured", "result")),
        _md_row(["---"] * 4),
        *(
            _md_row(
                (v.target.scenario.label, v.target.text, v.shown(), "pass" if v.passed else "FAIL")
            )
            for v in verdicts
        ),
        "",
        f"**{'PASS' if passed(verdicts) else 'FAIL'}**",
        "",
        "## Details",
        "",
        _md_row(DETAIL_HEADER),
        _md_row(["---"] * len(DETAIL_HEADER)),
        *(_md_row(r) for r in detail_rows(measurements)),
        "",
    ]
    for m in measurements:
        lines += [f"- {m.scenario.label}: {note}" for note in m.notes]
    lines += [f"- **warning**: {warning}" for warning in disturbances(measurements)]
    lines += [
        "",
        "## How it was measured",
        "",
        f"- maximum rate: wrk, closed loop, {setup.wrk}; the rate counts only good "
        "answers (status < 400); its p50/p99 above are at that maximum, where "
        "closed-loop latencies are only queueing",
        f"- latency: {setup.open_loop}",
        f"- pinning: {setup.pinning}",
        f"- batch registration: the embedded Redis runs with AOF on, appendfsync "
        f"{setup.appendfsync}",
        "- CPU cores: Redis's include its AOF rewrites (forked children); other is "
        "what the machine ran besides the benchmark's processes",
        *(f"- {note}" for note in setup.notes),
        "",
    ]
    return "\n".join(lines)


DETAIL_HEADER = (
    "scenario",
    "calls",
    "failed",
    "wrk p50 / p99 ms at max",
    "open loop: answered / scheduled, p99.9 / max ms, send lag p99 ms",
    "X-Cache seen (open loop)",
    "CPU cores: generator / server / Redis / other",
)


def detail_rows(measurements: Sequence[Measurement]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for m in measurements:
        t, lat, cpu = m.throughput, m.latency, m.cpu
        rows.append(
            (
                m.scenario.label,
                f"{t.count + t.failed:,}",
                f"{t.failed:,}",
                f"{_ms(t.p50_ms)} / {_ms(t.p99_ms)}",
                (
                    f"{lat.answered:,} / {lat.scheduled:,}, {_ms(lat.p999_ms)} / "
                    f"{_ms(lat.max_ms)}, {_ms(lat.lag_p99_ms)}"
                    if lat
                    else "-"
                ),
                ", ".join(f"{k} {v:,}" for k, v in sorted(lat.x_cache.items()))
                if lat and lat.x_cache
                else "-",
                (
                    f"{cpu.generator:.2f} / {cpu.server:.2f} / {cpu.redis:.2f} / {cpu.other:.2f}"
                    if cpu
                    else "-"
                ),
            )
        )
    return rows


def report_json(
    setup: Setup, measurements: Sequence[Measurement], verdicts: Sequence[Verdict]
) -> dict[str, Any]:
    return {
        "setup": setup.to_json(),
        "measurements": [
            {
                **m.to_json(),
                "times_fastapi": ratios(m, measurements)[0],
                "times_nginx": ratios(m, measurements)[1],
            }
            for m in measurements
        ],
        "targets": [v.to_json() for v in verdicts],
        "warnings": disturbances(measurements),
        "passed": passed(verdicts),
    }
