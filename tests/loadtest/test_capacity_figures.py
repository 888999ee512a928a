"""``loadtest.capacity_figures``: wrk's and the open-loop generator's output read into
figures, the nodes' metrics, /proc (pure: captured outputs, hand-made timetables)."""

from __future__ import annotations

import json
import math

import pytest

from loadtest.capacity_figures import (
    Latency,
    Throughput,
    cpu_seconds,
    machine_busy_seconds,
    miss_ratio,
    open_loop_latency,
    parse_wrk,
    percentile,
    resolution_counts,
    walk_budget,
)

# Debian's wrk 4.1.0 with loadtest/capacity.lua, as captured.
WRK_OUTPUT = """\
Running 2s test @ http://127.0.0.1:18999/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.22ms    1.36ms  11.58ms   70.78%
    Req/Sec     0.94k    97.12     1.16k    75.00%
  1865 requests in 2.00s, 2.34MB read
Requests/sec:    932.00
Transfer/sec:      1.17MB
CAPACITY {"requests": 1865, "duration_us": 2001071, "bytes": 2448901, "connect_errors": 0, \
"read_errors": 0, "write_errors": 0, "status_errors": 0, "timeouts": 0, "p50_us": 4158.0, \
"p90_us": 5892.0, "p99_us": 7979.0, "max_us": 11577.0, "mean_us": 4218.2}
"""

WRK_WITH_ERRORS = """\
Running 2s test @ http://127.0.0.1:18999/
  7 requests in 2.00s, 3.55KB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:      3.50
CAPACITY {"requests": 1007, "duration_us": 2000000, "bytes": 3640, "connect_errors": 1, \
"read_errors": 2, "write_errors": 0, "status_errors": 5, "timeouts": 3, "p50_us": 14367.0, \
"p90_us": 20664.0, "p99_us": 20664.0, "max_us": 20664.0, "mean_us": 11068.6}
"""

METRICS = """\
# HELP idnode_resolutions_total Resolutions by outcome
# TYPE idnode_resolutions_total counter
idnode_resolutions_total{outcome="authoritative"} 0.0
idnode_resolutions_total{outcome="cache_hit"} 120.0
idnode_resolutions_total{outcome="cache_miss"} 4000.0
idnode_resolutions_total{outcome="negative_hit"} 0.0
# HELP idnode_cache_hit_ratio Share of cached-path resolutions answered from the cache
idnode_cache_hit_ratio 0.029
idnode_http_requests_total{method="GET",route="/api/handles/{handle:path}",status="200"} 9.0
"""


# --- wrk ---------------------------------------------------------------------------------


def test_parse_wrk_reads_the_capacity_line_exactly() -> None:
    run = parse_wrk(WRK_OUTPUT)
    assert run == Throughput(count=1865, failed=0, seconds=2.001071, p50_ms=4.158, p99_ms=7.979)
    assert run.rate == pytest.approx(1865 / 2.001071)
    assert run.failure_ratio == 0.0


def test_parse_wrk_counts_bad_statuses_and_socket_errors_as_failed() -> None:
    run = parse_wrk(WRK_WITH_ERRORS)
    assert run.count == 1002  # 1007 answers, 5 of them >= 400
    assert run.failed == 5 + 1 + 2 + 3
    assert run.rate == pytest.approx(501.0)
    assert run.failure_ratio == pytest.approx(11 / 1013)


def test_parse_wrk_without_the_script_line_says_so() -> None:
    with pytest.raises(ValueError, match="capacity.lua"):
        parse_wrk("Running 2s test @ http://x/\nRequests/sec: 10.0\n")


def test_throughput_json_round_trip() -> None:
    run = Throughput(count=40_000, failed=2, seconds=2.5, p50_ms=900.0, p99_ms=1200.5)
    raw = json.loads(json.dumps(run.to_json()))
    assert raw["rate"] == 16_000.0
    assert Throughput.from_json(raw) == run


def test_a_run_of_no_time_has_no_rate() -> None:
    assert Throughput(count=5, failed=0, seconds=0.0, p50_ms=None, p99_ms=None).rate == 0.0


# --- percentiles and the open-loop timetable ---------------------------------------------


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 99.9) == 100.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 1) == 7.0
    assert math.isnan(percentile([], 50))


def test_open_loop_latency_is_timed_from_when_requests_were_due() -> None:
    # 100 requests due every 10 ms, taken up on time. The server stalls once: request 50
    # waits 40 ms for a free connection and is answered 1 ms after it went out. From the
    # send it took 1 ms; from when it was due, 41 ms.
    due = [i * 0.01 for i in range(100)]
    sent = list(due)
    sent[50] = due[50] + 0.040
    answered = [s + 0.001 for s in sent]
    run = open_loop_latency(100.0, due, due, answered, [200] * 100, {"HIT": 100})
    assert run.p50_ms == pytest.approx(1.0)
    assert run.max_ms == pytest.approx(41.0)
    assert run.p99_ms == pytest.approx(1.0)  # one in 100: only the maximum sees it
    assert run.lag_p99_ms == pytest.approx(0.0)  # the generator itself was never late
    assert (run.scheduled, run.answered, run.failed) == (100, 100, 0)
    assert run.x_cache == {"HIT": 100}


def test_open_loop_unanswered_requests_make_the_tail_unbounded() -> None:
    due = [i * 0.001 for i in range(100)]
    answered = [d + 0.002 for d in due]
    statuses = [200] * 100
    for i in (97, 98, 99):  # never answered (connection lost, or still due at the end)
        answered[i], statuses[i] = math.inf, 0
    statuses[0] = 503  # answered, but not a resolution
    run = open_loop_latency(1000.0, due, due, answered, statuses)
    assert run.failed == 4 and run.answered == 96
    assert run.p50_ms == pytest.approx(2.0)
    assert run.p99_ms is None and run.max_ms is None
    assert json.loads(json.dumps(run.to_json()))["p99_ms"] is None


def test_latency_json_round_trip() -> None:
    run = open_loop_latency(10.0, [0.0, 0.1], [0.001, 0.1], [0.003, 0.104], [200, 404])
    raw = json.loads(json.dumps(run.to_json()))
    assert Latency.from_json(raw) == run
    assert run.failed == 1


# --- metrics and /proc --------------------------------------------------------------------


def test_resolution_counts_from_a_node_exposition() -> None:
    assert resolution_counts(METRICS) == {
        "authoritative": 0.0,
        "cache_hit": 120.0,
        "cache_miss": 4000.0,
        "negative_hit": 0.0,
    }


def test_miss_ratio_between_two_readings() -> None:
    before = {"cache_miss": 100.0, "cache_hit": 50.0}
    after = {"cache_miss": 1090.0, "cache_hit": 60.0, "stale": 0.0}
    assert miss_ratio(before, after) == pytest.approx(990 / 1000)
    assert miss_ratio(before, before) is None


def test_cpu_seconds_of_a_proc_stat_line() -> None:
    line = (
        "4242 (python -m (node)) S 1 4242 4242 0 -1 4194560 9000 0 0 0 "
        "1234 567 89 11 20 0 3 0 5000 1000000 5000 18446744073709551615\n"
    )
    assert cpu_seconds(line, 100) == pytest.approx(18.01)
    # With the children it waited for (Redis's AOF rewrites).
    assert cpu_seconds(line, 100, children=True) == pytest.approx(19.01)


def test_machine_busy_seconds_counts_processes_and_steal_only() -> None:
    # user nice system idle iowait irq softirq steal: idle, iowait and interrupts left out
    stat = "cpu  1000 10 500 90000 400 20 30 40 0 0\ncpu0 500 5 250 45000 200 10 15 20 0 0\n"
    assert machine_busy_seconds(stat, 100) == pytest.approx(15.5)


def test_walk_budget_covers_the_rate_with_a_margin() -> None:
    assert walk_budget(1000.0, 10.0) >= 10_000
    assert walk_budget(0.0, 10.0) > 0
    assert walk_budget(2000.0, 1.0, margin=1.0) == 2100
