"""How fast ``idnode import`` loads identifiers into a real node: identifiers/s, and
where the CPU went, for one or more variants side by side.

::

    python -m loadtest.import_rate --count 500000
    python -m loadtest.import_rate --count 200000 --variants "w1,c2000,f4;w2,c2000,f4;w2,c1000,f8"
    python -m loadtest.import_rate --records scale --count 2000000 --rounds 2 \
        --trees "before=/work/wt-before;after=."

Each variant starts a fresh ``idnode serve`` (secondary node 88.100, ``w<N>`` worker
processes, its embedded Redis with AOF on and ``appendfsync always``, the default),
writes ``--count`` identifiers to an NDJSON file (``--records demo``: demo-shaped, URL,
PRODUCT_NAME, BATCH, PRODUCTION_DATE, MANUFACTURER, as ``idnode up`` seeds them;
``--records scale``: the realistic variety ``idnode bench --scale`` loads, from
:mod:`loadtest.scale_catalog`), and runs ``idnode import`` on it as a separate process
(``c<N>`` identifiers per chunk, ``f<N>`` chunks in flight). ``--trees`` runs the node
and the importer from other source trees (another commit's worktree, same virtualenv),
each variant once per tree, and ``--rounds`` repeats the whole in turn: A/B comparisons
alternate on a shared machine rather than run one after the other. The rate is the
import's lines over its wall time, start-up included. CPU seconds per process kind
(node, Redis, importer) come from ``/proc``, as microseconds per identifier
(``worker_cpu_us``: each node process's share, the supervisor first, to see how evenly
the kernel spread the importer's connections). The machine's other work meanwhile is
noted (``others_cores``: busy cores not ours, from ``/proc/stat``; ``steal_s``), and
``cpu_bound_ceiling``, the rate the CPU these processes spent per identifier would allow
on this machine's cores alone (cores x 10^6 / µs per identifier: an upper bound, reached
only with perfect overlap), and Redis's CPU per identifier by command (``INFO
commandstats``, start-up included). It prints one JSON line per variant, then a table
with each variant's rate as a ratio of the first's. Runs take a while: start them with
``nohup``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import cast

import httpx
from redis import Redis

from loadtest.scale_catalog import write_range
from node.embedded_redis import free_port

PREFIX = "88.100"
SECRET = "import-rate"
_PRODUCTS = ("5-axis machining centre", "CNC lathe CK6150", "Motorised spindle 24k rpm")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Variant:
    workers: int = 2
    chunk: int = 2000
    in_flight: int = 4

    @classmethod
    def parse(cls, text: str) -> Variant:
        """
        >>> Variant.parse("w1,c1000,f8")
        Variant(workers=1, chunk=1000, in_flight=8)
        """
        fields = {"w": "workers", "c": "chunk", "f": "in_flight"}
        given = {fields[part[0]]: int(part[1:]) for part in text.split(",") if part}
        return cls(**given)

    @property
    def name(self) -> str:
        return f"w{self.workers},c{self.chunk},f{self.in_flight}"


def write_file(path: Path, count: int) -> None:
    """``count`` demo-shaped NDJSON lines, ``88.100/imp-00000001`` onwards."""
    start = date(2026, 1, 5)
    template = (
        '{"handle":"%s/imp-%08d","values":['
        '{"index":1,"type":"URL","data":{"format":"string","value":'
        '"https://id.example.cn/products/imp-%08d"}},'
        '{"index":2,"type":"PRODUCT_NAME","data":{"format":"string","value":"%s"}},'
        '{"index":3,"type":"BATCH","data":{"format":"string","value":"B%s-%02d"}},'
        '{"index":4,"type":"PRODUCTION_DATE","data":{"format":"string","value":"%s"}},'
        '{"index":5,"type":"MANUFACTURER","data":{"format":"string",'
        '"value":"Import Rate Machinery"}}]}\n'
    )
    with path.open("w") as out:
        for n in range(1, count + 1):
            made = start + timedelta(days=(n - 1) // 10_000)
            out.write(
                template
                % (
                    PREFIX,
                    n,
                    n,
                    _PRODUCTS[n % 3],
                    made.strftime("%Y%m%d"),
                    (n // 1000) % 100,
                    made.isoformat(),
                )
            )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the whole machine has been busy, and stolen by the hypervisor."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / _TICKS, steal / _TICKS


def command_costs(data: Path, count: int) -> dict[str, float]:
    """Redis's CPU per identifier by command (``INFO commandstats``), largest first."""
    conf = (data / "redis.conf").read_text().splitlines()
    port = next(line.split()[1] for line in conf if line.startswith("port "))
    client = Redis(host="127.0.0.1", port=int(port))
    try:
        stats = cast(dict[str, dict[str, float]], client.info("commandstats"))
    finally:
        client.close()
    costs = {name.removeprefix("cmdstat_"): row["usec"] / count for name, row in stats.items()}
    return {name: round(us, 2) for name, us in sorted(costs.items(), key=lambda kv: -kv[1])}


def descendants(pid: int) -> list[int]:
    found = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return []
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def run(
    variant: Variant, count: int, work: Path, tree: tuple[str, Path] | None = None
) -> dict[str, object]:
    """One variant: a fresh node, the file imported; its figures. With ``tree`` (name,
    directory), the node and the importer run that source tree's code."""
    data = work / f"node-{variant.name.replace(',', '-')}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cwd, env = None, dict(os.environ)
    if tree is not None:
        cwd = tree[1]
        env["PYTHONPATH"] = str(tree[1])
    node = subprocess.Popen(
        [sys.executable, "-m", "node", "serve", "--role", "secondary", "--prefix", PREFIX]
        + ["--port", str(port), "--data-dir", str(data), "--admin-secret", SECRET]
        + ["--workers", str(variant.workers), "--appendfsync", "always", "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=(work / "node.log").open("ab"),
        cwd=cwd,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("the node did not start: see node.log")
        time.sleep(1.0)  # the workers' start-up is not the import's cost
        redis = int((data / "redis.pid").read_text())
        nodes = [node.pid, *descendants(node.pid)]
        nodes = [p for p in nodes if p != redis]
        each_before = [cpu_seconds(p) for p in nodes]
        redis_before = cpu_seconds(redis)
        busy_before, steal_before = machine_cpu()
        source = work / "ids.ndjson"
        began = time.monotonic()
        log = work / "import.log"
        with log.open("w") as err:
            importer = subprocess.Popen(
                [sys.executable, "-m", "node", "import", str(source), "--url", url]
                + ["--identity", f"300:0.NA/{PREFIX}", "--format", "ndjson", "--restart"]
                + ["--chunk", str(variant.chunk), "--in-flight", str(variant.in_flight)]
                + ["--checkpoint", str(work / "ids.checkpoint"), "--progress-every", "30"],
                env={**env, "IDNODE_IMPORT_SECRET": SECRET},
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=cwd,
            )
            # wait4: the importer's own CPU (the node's children are not waited for yet)
            _, status, usage = os.wait4(importer.pid, 0)
            importer.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - began
        importer_cpu = usage.ru_utime + usage.ru_stime
        stderr = log.read_text()
        busy, steal = machine_cpu()
        each = [cpu_seconds(p) - b for p, b in zip(nodes, each_before, strict=True)]
        node_cpu = sum(each)
        commands = command_costs(data, count)
        redis_cpu = cpu_seconds(redis) - redis_before
        if importer.returncode != 0:
            raise SystemExit(f"the import failed: {stderr[-2000:]}")
    finally:
        node.terminate()
        node.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    ours = node_cpu + redis_cpu + importer_cpu
    per_id = ours / count * 1e6
    return {
        "variant": variant.name if tree is None else f"{tree[0]}:{variant.name}",
        "count": count,
        "seconds": round(seconds, 2),
        "ids_per_s": round(count / seconds),
        "node_cpu_us": round(node_cpu / count * 1e6, 1),
        "redis_cpu_us": round(redis_cpu / count * 1e6, 1),
        "importer_cpu_us": round(importer_cpu / count * 1e6, 1),
        "worker_cpu_us": [round(cpu / count * 1e6, 1) for cpu in each],
        # Other work on the machine meanwhile (cores), and the rate all of this CPU
        # would allow if the import had the machine's cores to itself.
        "others_cores": round(max(0.0, busy - busy_before - ours) / seconds, 2),
        "steal_s": round(steal - steal_before, 2),
        "cpu_bound_ceiling": round(os.cpu_count() or 1) * round(1e6 / per_id),
        "summary": stderr.strip().splitlines()[-1],
        "redis_us_by_command": dict(list(commands.items())[:8]),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="idnode import's rate against a real node.")
    parser.add_argument("--count", type=int, default=500_000, help="identifiers per variant")
    parser.add_argument(
        "--variants",
        default="w2,c2000,f4",
        help="';'-separated variants: w<workers>,c<chunk>,f<in flight>",
    )
    parser.add_argument(
        "--records",
        choices=("demo", "scale"),
        default="demo",
        help="demo-shaped identifiers, or the variety idnode bench --scale loads",
    )
    parser.add_argument(
        "--trees",
        default="",
        help="';'-separated NAME=DIR: run each variant with each source tree's code",
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat every run, in turn")
    args = parser.parse_args(argv)
    variants = [Variant.parse(v) for v in args.variants.split(";") if v]
    trees: list[tuple[str, Path] | None] = [None]
    if args.trees:
        named = (part.partition("=") for part in args.trees.split(";") if part)
        trees = [(name, Path(where).resolve()) for name, _, where in named]
    with tempfile.TemporaryDirectory(prefix="idnode-import-rate-") as tmp:
        work = Path(tmp)
        if args.records == "scale":
            write_range(work / "ids.ndjson", 0, args.count)
        else:
            write_file(work / "ids.ndjson", args.count)
        figures = []
        for _ in range(args.rounds):
            for variant in variants:
                for tree in trees:
                    figure = run(variant, args.count, work, tree)
                    figures.append(figure)
                    print(json.dumps(figure), flush=True)
    first = int(str(figures[0]["ids_per_s"]))
    print(
        f"{'variant':<24} {'ids/s':>8} {'x first':>8} {'node µs':>8} {'redis µs':>9}"
        f" {'import µs':>9} {'others':>6} {'ceiling':>8}  per process"
    )
    for f in figures:
        ratio = int(str(f["ids_per_s"])) / first
        print(
            f"{f['variant']!s:<24} {f['ids_per_s']!s:>8} {ratio:>8.2f} {f['node_cpu_us']!s:>8}"
            f" {f['redis_cpu_us']!s:>9} {f['importer_cpu_us']!s:>9} {f['others_cores']!s:>6}"
            f" {f['cpu_bound_ceiling']!s:>8}  {f['worker_cpu_us']}"
        )


if __name__ == "__main__":
    main()
