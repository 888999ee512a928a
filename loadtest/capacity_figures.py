"""What the capacity benchmark's load generators and nodes report, read into figures.
Pure: no processes, no sockets, no files.

* :func:`parse_wrk` reads the ``CAPACITY {json}`` line that ``loadtest/capacity.lua``
  makes wrk print (wrk's exact totals rather than its rounded text) into a
  :class:`Throughput`: the closed-loop maximum rate.
* :func:`open_loop_latency` turns the timetable of an open-loop run (when each request
  was due, taken up and answered) into a :class:`Latency`; :func:`percentile` is the
  nearest-rank percentile both use.
* :func:`resolution_counts` reads a node's ``/metrics`` for its resolutions by outcome,
  and :func:`miss_ratio` compares two readings: the share of the resolutions in between
  that the node answered as cache misses.
* :func:`cpu_seconds` reads the CPU time of a process from its ``/proc/<pid>/stat`` line,
  :func:`machine_busy_seconds` that of the whole machine from ``/proc/stat`` (what is
  left after the benchmark's own processes is other load, which spoils a measurement).
* :func:`walk_budget` sizes the identifier pool a cache-miss run walks through.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

WRK_MARKER = "CAPACITY "
_RESOLUTION = re.compile(r'^idnode_resolutions_total\{outcome="([a-z_]+)"\}\s+(\S+)$', re.M)


@dataclass(frozen=True, slots=True)
class Throughput:
    """A run at full speed: ``count`` good answers (or identifiers registered) in
    ``seconds``, with the latency of each call as the generator saw it.

    >>> Throughput(count=2_000, failed=0, seconds=2.0, p50_ms=1.0, p99_ms=3.0).rate
    1000.0
    """

    count: int
    failed: int
    seconds: float
    p50_ms: float | None
    p99_ms: float | None

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @property
    def failure_ratio(self) -> float:
        calls = self.count + self.failed
        return self.failed / calls if calls else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Throughput:
        return cls(
            count=int(raw["count"]),
            failed=int(raw["failed"]),
            seconds=float(raw["seconds"]),
            p50_ms=raw.get("p50_ms"),
            p99_ms=raw.get("p99_ms"),
        )


def parse_wrk(output: str) -> Throughput:
    """The run reported by ``capacity.lua``'s ``done()`` in wrk's output.

    Answers with a status of 400 or more count as failed, as do socket errors and
    timeouts; only good answers count towards the rate.

    >>> out = 'Running 1s test\\nCAPACITY {"requests": 980, "duration_us": 1000000, '
    >>> out += '"status_errors": 20, "p50_us": 800, "p99_us": 2500}'
    >>> t = parse_wrk(out)
    >>> t.rate, t.failed, t.p99_ms
    (960.0, 20, 2.5)
    """
    line = next((s for s in output.splitlines() if s.startswith(WRK_MARKER)), None)
    if line is None:
        raise ValueError("wrk printed no CAPACITY line: was it run with loadtest/capacity.lua?")
    raw = json.loads(line.removeprefix(WRK_MARKER))
    requests = int(raw["requests"])
    bad_status = int(raw.get("status_errors", 0))
    socket_errors = sum(
        int(raw.get(k, 0)) for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return Throughput(
        count=requests - bad_status,
        failed=bad_status + socket_errors,
        seconds=int(raw["duration_us"]) / 1e6,
        p50_ms=_ms(raw.get("p50_us")),
        p99_ms=_ms(raw.get("p99_us")),
    )


def _ms(microseconds: object) -> float | None:
    return None if microseconds is None else round(float(str(microseconds)) / 1000, 3)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of ascending ``ordered`` (``inf`` stands for
    a request never answered, so a percentile that reaches one is ``inf``).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 99)
    (2.0, 4.0)
    """
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class Latency:
    """An open-loop run: requests due on a fixed timetable at ``rate`` per second, each
    timed from the moment it was due, so time spent waiting for a connection or for the
    generator itself counts (no coordinated omission). A percentile of ``None`` reaches
    requests that were never answered.
    """

    rate: float  # offered requests/s
    scheduled: int
    answered: int  # 2xx
    failed: int  # other statuses, connection errors, never answered
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    max_ms: float | None
    lag_p99_ms: float | None  # how late the generator got to requests (part of the above)
    x_cache: dict[str, int] = field(default_factory=dict)  # X-Cache header values seen

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": round(self.rate, 1),
            "scheduled": self.scheduled,
            "answered": self.answered,
            "failed": self.failed,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "p999_ms": self.p999_ms,
            "max_ms": self.max_ms,
            "lag_p99_ms": self.lag_p99_ms,
            "x_cache": dict(self.x_cache),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Latency:
        return cls(
            rate=float(raw["rate"]),
            scheduled=int(raw["scheduled"]),
            answered=int(raw["answered"]),
            failed=int(raw["failed"]),
            p50_ms=raw.get("p50_ms"),
            p90_ms=raw.get("p90_ms"),
            p99_ms=raw.get("p99_ms"),
            p999_ms=raw.get("p999_ms"),
            max_ms=raw.get("max_ms"),
            lag_p99_ms=raw.get("lag_p99_ms"),
            x_cache={str(k): int(v) for k, v in dict(raw.get("x_cache") or {}).items()},
        )


def open_loop_latency(
    rate: float,
    due: Sequence[float],
    taken: Sequence[float],
    answered_at: Sequence[float],
    statuses: Sequence[int],
    x_cache: Mapping[str, int] | None = None,
) -> Latency:
    """Summarise an open-loop run. For request ``i``: ``due[i]`` is when the timetable
    said to send it, ``taken[i]`` when the generator got to it (sent it, or queued it
    for a free connection), ``answered_at[i]`` when its answer was complete (``inf``:
    never) and ``statuses[i]`` the HTTP status (0: none). Times are seconds on one
    clock.

    >>> run = open_loop_latency(10.0, [0.0, 0.1], [0.0, 0.1], [0.002, 0.104], [200, 200])
    >>> run.p50_ms, run.p99_ms, run.failed
    (2.0, 4.0, 0)
    """
    latencies = sorted(a - d for a, d in zip(answered_at, due, strict=True))
    lags = sorted(t - d for t, d in zip(taken, due, strict=True))
    good = sum(200 <= s < 300 for s in statuses)

    def ms(q: float, values: Sequence[float]) -> float | None:
        value = percentile(values, q)
        return None if math.isinf(value) or math.isnan(value) else round(value * 1000, 3)

    return Latency(
        rate=rate,
        scheduled=len(due),
        answered=good,
        failed=len(due) - good,
        p50_ms=ms(50, latencies),
        p90_ms=ms(90, latencies),
        p99_ms=ms(99, latencies),
        p999_ms=ms(99.9, latencies),
        max_ms=ms(100, latencies),
        lag_p99_ms=ms(99, lags),
        x_cache=dict(x_cache or {}),
    )


def resolution_counts(exposition: str) -> dict[str, float]:
    """Resolutions by outcome from a node's Prometheus exposition.

    >>> resolution_counts('idnode_resolutions_total{outcome="cache_hit"} 12.0\\n')
    {'cache_hit': 12.0}
    """
    return {outcome: float(value) for outcome, value in _RESOLUTION.findall(exposition)}


def miss_ratio(before: Mapping[str, float], after: Mapping[str, float]) -> float | None:
    """The share of resolutions between two readings answered as cache misses (None
    when there were none).

    >>> miss_ratio({"cache_miss": 5.0}, {"cache_miss": 95.0, "cache_hit": 10.0})
    0.9
    """
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in set(before) | set(after)}
    total = sum(delta.values())
    return delta.get("cache_miss", 0.0) / total if total > 0 else None


def cpu_seconds(stat_line: str, ticks_per_second: int, *, children: bool = False) -> float:
    """User plus system CPU time of a process, from its ``/proc/<pid>/stat`` line (the
    command name in parentheses may itself hold spaces and parentheses); with
    ``children``, also that of the children it has waited for.

    >>> line = "42 (my (odd) name) S 1 " + "0 " * 9 + "150 50 30 20"
    >>> cpu_seconds(line, 100), cpu_seconds(line, 100, children=True)
    (2.0, 2.5)
    """
    fields = stat_line.rsplit(")", 1)[1].split()
    # fields[0] is the state, field 3 of proc(5); utime and stime are fields 14 and 15,
    # cutime and cstime 16 and 17.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / ticks_per_second


def machine_busy_seconds(proc_stat: str, ticks_per_second: int) -> float:
    """CPU seconds all cores together have spent running processes (user, nice, system)
    or lost to other virtual machines (steal), from ``/proc/stat``. Interrupt time is
    left out: loopback networking under load spends it for the benchmark itself.

    >>> machine_busy_seconds("cpu  100 0 50 900 10 7 9 5 0 0\\ncpu0 1 2 3\\n", 100)
    1.55
    """
    fields = [int(f) for f in proc_stat.split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = fields
    return (user + nice + system + steal) / ticks_per_second


def steal_seconds(proc_stat: str, ticks_per_second: int) -> float:
    """CPU seconds the virtual machine's cores were ready to run but the hypervisor ran
    something else (``steal`` in ``/proc/stat``). It comes in bursts of tens of
    milliseconds, and every request due during one waits for it.

    >>> steal_seconds("cpu  100 0 50 900 10 7 9 5 0 0\\ncpu0 1 2 3\\n", 100)
    0.05
    """
    return int(proc_stat.split("\n", 1)[0].split()[8]) / ticks_per_second


def walk_budget(rate: float, seconds: float, margin: float = 1.2) -> int:
    """Identifiers a walk of ``seconds`` at up to ``rate`` requests/s may ask for, with
    a margin, so that the walk never has to ask for one twice.

    >>> walk_budget(1000.0, 10.0)
    12100
    """
    return math.ceil(rate * seconds * margin) + 100
