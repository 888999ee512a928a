"""``idnode bench``: run a Locust scenario against a hierarchy and report what it proves.

::

    idnode bench --up --scenario resolve --duration 60 --users 20
    idnode bench --target http://10.0.0.5:8000 --scenario mixed --duration 600 --users 200

With ``--up`` it starts the demo hierarchy on free ports (``--identifiers N`` sample
identifiers per enterprise, seeded through the batch API); with ``--target <top URL>``
it reads a running hierarchy from the top node's registry (and each secondary node's
delegations) and uses the demo credentials and ``--identifiers`` as the number of
sample identifiers per enterprise; ``--catalog FILE`` describes any other hierarchy.
Locust runs headless in its own process (it patches the standard library with gevent;
the nodes never import it), following a day squeezed into the run (``--shape day``, the
default) or a flat load (``--shape flat``).

``reports/<timestamp>/`` receives Locust's CSV and HTML, ``throughput.png`` and
``latency.png`` (p50/p95/p99 per node over time) and ``summary.md``: per secondary node
its resolutions, failures, average and peak rates, the average as resolutions/day
against the plan's per-node target (Wuhan 5G+II: 600,000/day), and the error budget
(default 0.1%); and the load generator's own CPU use, so that a saturated generator is
not mistaken for the nodes' limit. The exit code is 1 when a node misses the target or
the budget.
"""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import io
import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from loadtest import catalog
from loadtest.plan import Measure, Plan, Scope
from loadtest.traffic import NodeVerdict, verdict
from node.embedded_redis import free_port
from node.launcher import Launcher
from node.seeder import Seeder, SeedJob
from node.topology import Topology
from registry.errors import ConfigError

RESOLVE_AT = "resolve at "
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


@dataclass(frozen=True, slots=True)
class BenchOptions:
    scenario: str
    duration: int
    users: int
    shape: str = "day"
    up: bool = True
    target: str | None = None
    catalog: Path | None = None
    identifiers: int = 100
    processes: int = 1
    unknown_share: float = 0.02
    error_budget: float = 0.001
    plan: str = "wuhan-5g-2021"
    per_day: float | None = None  # overrides the plan's per-node target
    seed: bool = False  # with --target: seed the identifiers first
    reports: Path = Path("reports")


def required_per_day(plan_name: str) -> float:
    """The plan's per-secondary-node daily resolutions target."""
    plan = Plan.load(plan_name)
    for target in plan.targets:
        if (
            target.measure is Measure.RESOLUTIONS_PER_DAY
            and target.scope is Scope.PER_SECONDARY_NODE
        ):
            return float(target.required)
    raise ConfigError(f"plan {plan_name} has no per-secondary-node daily resolutions target")


def run_locust(hierarchy: dict[str, Any], options: BenchOptions, out: Path) -> tuple[float, float]:
    """Run Locust headless; returns (wall seconds, CPU seconds the generator used)."""
    catalog_file = out / "catalog.json"
    catalog_file.write_text(json.dumps(hierarchy, indent=2))
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--csv",
        str(out / "locust"),
        "--csv-full-history",
        "--html",
        str(out / "locust.html"),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    if options.processes > 1:
        command += ["--processes", str(options.processes)]
    env = {**os.environ, "IDNODE_BENCH_CATALOG": str(catalog_file)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with (out / "locust.log").open("w") as log:
        done = subprocess.run(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=options.duration + 120
        )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 1):  # 1: some requests failed, which the report judges
        raise ConfigError(f"locust exited with {done.returncode}; see {out / 'locust.log'}")
    return wall, cpu


def read_stats(out: Path) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    with (out / "locust_stats.csv").open() as f:
        stats = list(csv.DictReader(f))
    with (out / "locust_stats_history.csv").open() as f:
        history = list(csv.DictReader(f))
    return stats, history


def node_verdicts(
    stats: list[dict[str, str]],
    history: list[dict[str, str]],
    seconds: float,
    required: float,
    budget: float,
    nodes: Sequence[str] = (),
) -> list[NodeVerdict]:
    """One verdict per secondary node measured, and per node of ``nodes`` (the catalog's
    secondaries): a node that answered nothing is judged on zero resolutions."""
    per_second: dict[str, list[float]] = defaultdict(list)
    for row in history:
        if row["Name"].startswith(RESOLVE_AT):
            per_second[row["Name"]].append(float(row["Requests/s"] or 0))
    counts = {
        row["Name"].removeprefix(RESOLVE_AT): (int(row["Request Count"]), int(row["Failure Count"]))
        for row in stats
        if row["Name"].startswith(RESOLVE_AT)
    }
    return [
        verdict(
            node,
            *counts.get(node, (0, 0)),
            seconds,
            per_second[RESOLVE_AT + node],
            required_per_day=required,
            error_budget=budget,
        )
        for node in sorted(set(counts) | set(nodes))
    ]


def plot(history: list[dict[str, str]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    start = min((int(r["Timestamp"]) for r in history), default=0)
    for row in history:
        name = row["Name"]
        if name == "Aggregated" or not row["Requests/s"]:
            continue
        s = series[name]
        s["t"].append(int(row["Timestamp"]) - start)
        s["rps"].append(float(row["Requests/s"]))
        for p in ("50%", "95%", "99%"):
            value = row.get(p, "N/A")
            s[p].append(float(value) if value not in ("N/A", "") else float("nan"))
    fig, ax = plt.subplots(figsize=(10, 5))
    for name, s in sorted(series.items()):
        ax.plot(s["t"], s["rps"], label=name)
    ax.set(xlabel="seconds into the run", ylabel="requests/s", title="Throughput per node")
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=100)
    plt.close(fig)
    names = sorted(series)
    fig, axes = plt.subplots(
        len(names) or 1, 1, figsize=(10, 2.4 * max(1, len(names))), squeeze=False
    )
    for ax, name in zip(axes[:, 0], names, strict=False):
        s = series[name]
        for p in ("50%", "95%", "99%"):
            ax.plot(s["t"], s[p], label=f"p{p[:-1]}")
        ax.set(ylabel="ms", title=name)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("seconds into the run")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=100)
    plt.close(fig)


def summary(
    options: BenchOptions,
    stats: list[dict[str, str]],
    verdicts: list[NodeVerdict],
    wall: float,
    cpu: float,
    command: str,
) -> tuple[str, bool]:
    """The Markdown summary and whether every node passed."""
    cores = os.cpu_count() or 1
    source = "--per-day" if options.per_day is not None else options.plan
    passed = bool(verdicts) and all(v.passed for v in verdicts)
    total = next((r for r in stats if r["Name"] == "Aggregated"), None)
    lines = [
        f"# idnode bench: {options.scenario}, {options.shape} shape",
        "",
        f"`{command}`",
        "",
        f"- run: {wall:.0f} s wall, peak {options.users} users, {options.processes} Locust "
        f"process(es); unknown identifiers {options.unknown_share:.0%}",
        f"- load generator CPU: {cpu:.1f} s = {cpu / wall:.0%} of one core "
        f"({cpu / wall / cores:.0%} of this machine's {cores} cores); "
        + (
            "it was saturated, so the rates below are its limit, not the nodes'"
            if cpu / wall > 0.9 * max(1, options.processes)
            else "not saturated"
        ),
        f"- target per secondary node: {verdicts[0].required_per_day:,.0f} resolutions/day "
        f"({source}); error budget {options.error_budget:.2%}"
        if verdicts
        else "- no secondary node was measured",
    ]
    if total is not None:
        lines.append(
            f"- all requests: {int(total['Request Count']):,}, failures "
            f"{int(total['Failure Count']):,}, median {total['Median Response Time']} ms, "
            f"p95 {total['95%']} ms, p99 {total['99%']} ms"
        )
    lines += [
        "",
        "| secondary node | resolutions | failures | average /s | peak /s | per day "
        "| target /day | result |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for v in verdicts:
        result = "pass" if v.passed else ("FAIL (rate)" if not v.meets_rate else "FAIL (errors)")
        lines.append(
            f"| {v.node} | {v.requests:,} | {v.failures:,} ({v.failure_ratio:.3%}) | "
            f"{v.average_rate:,.1f} | {v.peak_rate:,.1f} | {v.per_day:,.0f} | "
            f"{v.required_per_day:,.0f} | {result} |"
        )
    lines += [
        "",
        "| request | count | failures | median ms | p95 ms | p99 ms | avg /s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in stats:
        lines.append(
            f"| {r['Name']} | {int(r['Request Count']):,} | {int(r['Failure Count']):,} | "
            f"{r['Median Response Time']} | {r['95%']} | {r['99%']} | "
            f"{float(r['Requests/s']):,.1f} |"
        )
    lines += ["", "![throughput](throughput.png)", "", "![latency](latency.png)", ""]
    lines.append(f"**{'PASS' if passed else 'FAIL'}**")
    return "\n".join(lines) + "\n", passed


async def _start(options: BenchOptions, out: Path) -> tuple[Launcher, dict[str, Any]]:
    topology = Topology.demo().on_ports(free_port).with_identifiers(options.identifiers)
    launcher = Launcher(
        topology, data_dir=out / "hierarchy", out=io.StringIO(), progress=sys.stdout
    )
    await launcher.start()
    return launcher, catalog.from_launcher(launcher)


async def seed(jobs: list[SeedJob]) -> tuple[int, list[SeedJob]]:
    """Load the jobs' identifiers, with a progress bar on standard output; a job whose
    node refuses its credentials (an enterprise onboarded by hand, whose secret is not
    the demo one) is skipped with a note on standard error. Returns the identifiers
    written and the jobs skipped."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        seeder = Seeder(http, progress=sys.stdout)
        refused = await seeder.refused(jobs)
        for job in refused:
            print(
                f"skipping {job.prefix}: {job.node_url} refuses {job.credentials.identity} "
                "with the demo secret (an enterprise onboarded by hand?); seed it with its "
                "own secret through POST /api/batch/handles",
                file=sys.stderr,
                flush=True,
            )
        skipped = {job.prefix for job in refused}
        usable = [job for job in jobs if job.prefix not in skipped]
        if not usable:
            raise ConfigError("no enterprise accepts the demo credentials: nothing seeded")
        return await seeder.seed(usable), refused


def _check_locust() -> None:
    if importlib.util.find_spec("locust") is None:
        raise ConfigError("idnode bench needs Locust and matplotlib: pip install 'idnode[bench]'")


def bench(options: BenchOptions, command: str) -> int:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = (options.reports / stamp).resolve()
    out.mkdir(parents=True, exist_ok=True)
    launcher: Launcher | None = None
    _check_locust()
    required = options.per_day if options.per_day is not None else required_per_day(options.plan)
    try:
        if options.catalog is not None:
            hierarchy = json.loads(options.catalog.read_text())
        elif options.target is not None:
            hierarchy = catalog.from_top(options.target, options.identifiers)
        elif options.up:
            print("starting the demo hierarchy and seeding it...", flush=True)
            launcher, hierarchy = asyncio.run(_start(options, out))
        else:
            raise ConfigError("give --up, --target <top URL> or --catalog FILE")
        if options.seed and launcher is None:
            _, refused = asyncio.run(seed(catalog.seed_jobs(hierarchy)))
            skipped = {job.prefix for job in refused}  # not seeded: not load-tested either
            hierarchy["enterprises"] = [
                e for e in hierarchy["enterprises"] if e["prefix"] not in skipped
            ]
        hierarchy.update(
            scenario=options.scenario,
            unknown_share=options.unknown_share,
            run_seconds=options.duration,
            peak_users=options.users,
            shape=options.shape,
        )
        print(f"running Locust for {options.duration} s ({options.scenario})...", flush=True)
        wall, cpu = run_locust(hierarchy, options, out)
    finally:
        if launcher is not None:
            launcher.stop()
    stats, history = read_stats(out)
    verdicts = node_verdicts(
        stats,
        history,
        float(options.duration),
        required,
        options.error_budget,
        nodes=sorted(hierarchy["secondaries"]),
    )
    plot(history, out)
    text, passed = summary(options, stats, verdicts, wall, cpu, command)
    (out / "summary.md").write_text(text)
    print(text)
    print(f"report: {out}")
    return 0 if passed else 1
