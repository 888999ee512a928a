"""``loadtest.capacity_report``: the issue's targets, ratios between the figures of one
run, verdicts and the rendered report (pure: hand-made measurements)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from loadtest.capacity_figures import Latency, Throughput
from loadtest.capacity_report import (
    TARGETS,
    CpuShare,
    Measure,
    Measurement,
    Scenario,
    Setup,
    Verdict,
    disturbances,
    judge,
    passed,
    ratio,
    ratios,
    render_markdown,
    render_table,
    report_json,
)


def rate(per_second: float, failed: int = 0) -> Throughput:
    return Throughput(
        count=int(per_second * 10), failed=failed, seconds=10.0, p50_ms=2.0, p99_ms=9.0
    )


def latency(p99_ms: float | None, at: float = 500.0) -> Latency:
    return Latency(
        rate=at,
        scheduled=5000,
        answered=5000 if p99_ms is not None else 4990,
        failed=0 if p99_ms is not None else 10,
        p50_ms=0.8,
        p90_ms=1.5,
        p99_ms=p99_ms,
        p999_ms=p99_ms,
        max_ms=p99_ms,
        lag_p99_ms=0.9,
        x_cache={"HIT": 5000},
    )


CPU = CpuShare(generator=0.3, server=0.99, redis=0.02, other=0.01)


def run(
    *,
    nginx: float = 40_000.0,
    fastapi: float = 2_000.0,
    cached: float = 8_000.0,
    cached_p99: float | None = 4.0,
    authoritative: float = 5_000.0,
    miss: float = 700.0,
    batch: float = 25_000.0,
) -> list[Measurement]:
    """A complete run; by default every target is met."""
    return [
        Measurement(Scenario.NGINX, rate(nginx), cpu=CPU),
        Measurement(Scenario.FASTAPI, rate(fastapi), latency(12.0, fastapi / 2), CPU),
        Measurement(Scenario.CACHED, rate(cached), latency(cached_p99, cached / 2), CPU),
        Measurement(Scenario.AUTHORITATIVE, rate(authoritative), latency(3.0), CPU),
        Measurement(Scenario.MISS, rate(miss), latency(20.0), CPU, miss_ratio=0.999),
        Measurement(Scenario.BATCH, rate(batch), cpu=CPU, notes=("4 batches in flight",)),
    ]


SETUP = Setup(
    command="idnode bench --capacity --seconds 10",
    started="2026-12-03 08:00:00 UTC",
    seconds=10,
    cores=2,
    wrk="1 thread, 16 connections",
    pinning="generator on core 1, server on core 0",
    open_loop="open loop at 50%, timed from when requests were due",
    appendfsync="always",
    identifier="88.100.1/demo-0001, a 939-byte body",
    notes=("seeded 1,000 more identifiers",),
)


def verdict_of(verdicts: list[Verdict], scenario: Scenario, measure: Measure) -> Verdict:
    return next(
        v for v in verdicts if v.target.scenario is scenario and v.target.measure is measure
    )


# --- targets and verdicts ----------------------------------------------------------------


def test_the_targets_are_the_issues() -> None:
    assert [(t.scenario, t.measure, t.bound) for t in TARGETS] == [
        (Scenario.CACHED, Measure.TIMES_FASTAPI, 4.0),
        (Scenario.CACHED, Measure.SHARE_OF_NGINX, 0.15),
        (Scenario.CACHED, Measure.P99_AT_HALF, 10.0),
        (Scenario.AUTHORITATIVE, Measure.TIMES_FASTAPI, 2.5),
        (Scenario.BATCH, Measure.RATE, 20_000.0),
    ]


def test_a_run_meeting_every_target_passes() -> None:
    verdicts = judge(run())
    assert len(verdicts) == len(TARGETS)
    assert all(v.passed for v in verdicts) and passed(verdicts)
    assert verdict_of(verdicts, Scenario.CACHED, Measure.TIMES_FASTAPI).value == 4.0
    assert verdict_of(verdicts, Scenario.CACHED, Measure.SHARE_OF_NGINX).value == 0.2


def test_bounds_are_inclusive_for_rates_and_exclusive_for_latency() -> None:
    # exactly 4x, exactly 15% of nginx, exactly 20,000/s pass; p99 of exactly 10 ms fails
    verdicts = judge(run(nginx=8_000 / 0.15, cached_p99=10.0, batch=20_000.0))
    assert verdict_of(verdicts, Scenario.CACHED, Measure.SHARE_OF_NGINX).passed
    assert verdict_of(verdicts, Scenario.BATCH, Measure.RATE).passed
    assert not verdict_of(verdicts, Scenario.CACHED, Measure.P99_AT_HALF).passed
    assert not passed(verdicts)


@pytest.mark.parametrize(
    ("changes", "scenario", "measure"),
    [
        ({"cached": 7_999.0}, Scenario.CACHED, Measure.TIMES_FASTAPI),
        ({"nginx": 60_000.0}, Scenario.CACHED, Measure.SHARE_OF_NGINX),
        ({"cached_p99": 10.5}, Scenario.CACHED, Measure.P99_AT_HALF),
        ({"authoritative": 4_900.0}, Scenario.AUTHORITATIVE, Measure.TIMES_FASTAPI),
        ({"batch": 19_999.0}, Scenario.BATCH, Measure.RATE),
    ],
)
def test_each_missed_target_fails_the_run(
    changes: dict[str, float], scenario: Scenario, measure: Measure
) -> None:
    verdicts = judge(run(**changes))
    failing = [v for v in verdicts if not v.passed]
    assert [(v.target.scenario, v.target.measure) for v in failing] == [(scenario, measure)]
    assert not passed(verdicts)


def test_unanswered_requests_fail_the_latency_target() -> None:
    verdict = verdict_of(judge(run(cached_p99=None)), Scenario.CACHED, Measure.P99_AT_HALF)
    assert not verdict.passed
    assert verdict.shown() == "unanswered requests"
    assert verdict.to_json()["value"] is None


def test_a_missing_baseline_or_scenario_is_not_measured_and_fails() -> None:
    measurements = [m for m in run() if m.scenario not in (Scenario.FASTAPI, Scenario.BATCH)]
    verdicts = judge(measurements)
    for scenario, measure in [
        (Scenario.CACHED, Measure.TIMES_FASTAPI),
        (Scenario.AUTHORITATIVE, Measure.TIMES_FASTAPI),
        (Scenario.BATCH, Measure.RATE),
    ]:
        verdict = verdict_of(verdicts, scenario, measure)
        assert verdict.value is None and not verdict.passed
        assert verdict.shown() == "not measured"
    assert verdict_of(verdicts, Scenario.CACHED, Measure.SHARE_OF_NGINX).passed


def test_a_baseline_that_answered_nothing_gives_no_ratio() -> None:
    verdicts = judge(run(fastapi=0.0))
    assert verdict_of(verdicts, Scenario.CACHED, Measure.TIMES_FASTAPI).value is None
    assert ratio(5.0, 0.0) is None and ratio(5.0, None) is None


def test_ratios_are_to_both_baselines_and_none_for_batch() -> None:
    measurements = run()
    by = {m.scenario: m for m in measurements}
    assert ratios(by[Scenario.AUTHORITATIVE], measurements) == (2.5, 0.125)
    assert ratios(by[Scenario.FASTAPI], measurements) == (1.0, 0.05)
    assert ratios(by[Scenario.NGINX], measurements) == (20.0, 1.0)
    assert ratios(by[Scenario.BATCH], measurements) == (None, None)


def test_only_failed_answers_count_against_the_rate() -> None:
    measurements = run()
    measurements[2] = replace(measurements[2], throughput=rate(8_000.0, failed=500))
    assert passed(judge(measurements))  # the rate is of good answers; failures shown apart
    assert measurements[2].throughput.failure_ratio == pytest.approx(500 / 80_500)


# --- disturbances ------------------------------------------------------------------------


def test_other_load_and_a_saturated_generator_are_reported() -> None:
    measurements = run()
    quiet = CpuShare(generator=0.5, server=1.0, redis=0.0, other=0.05)
    busy = CpuShare(generator=0.95, server=0.6, redis=0.0, other=0.4)
    measurements[0] = replace(measurements[0], cpu=busy)
    measurements[1] = replace(measurements[1], cpu=quiet)
    found = disturbances(measurements)
    assert len(found) == 2
    assert all(text.startswith("nginx static file") for text in found)
    assert "0.40 cores" in found[0] and "0.95 cores" in found[1]


# --- rendering ---------------------------------------------------------------------------


def test_the_table_has_every_scenario_rate_ratio_target_and_result() -> None:
    text = render_table(run(cached=6_000.0), judge(run(cached=6_000.0)))
    lines = text.splitlines()
    assert lines[0].split()[0] == "scenario" and set(lines[1]) <= {"-", " "}
    body = lines[2:]
    assert [line.split("  ")[0] for line in body] == [s.label for s in Scenario]
    cached = next(line for line in body if line.startswith("(a)"))
    assert "6,000 req/s" in cached and "3.00x" in cached and "0.15x" in cached
    assert "FAIL: 3.00x" in cached
    assert "0.80 / 4.00 @ 3,000/s" in cached
    miss = next(line for line in body if line.startswith("(c)"))
    assert "(99.9% miss)" in miss
    batch = next(line for line in body if line.startswith("(d)"))
    assert "25,000 ids/s" in batch and "pass" in batch


def test_markdown_report_has_summary_targets_details_and_method() -> None:
    measurements = run(batch=5_000.0)
    text = render_markdown(SETUP, measurements, judge(measurements))
    for heading in ("# idnode capacity benchmark", "## Targets", "## Details"):
        assert heading in text
    assert "**FAIL**" in text
    assert "| (d) batch registration, AOF on | >= 20,000 ids/s | 5,000 | FAIL |" in text
    assert "appendfsync always" in text
    assert "timed from when requests were due" in text
    assert "- (d) batch registration, AOF on: 4 batches in flight" in text
    assert "seeded 1,000 more identifiers" in text


def test_json_report_is_strict_json_with_every_scenario() -> None:
    measurements = run(cached_p99=None)
    report = report_json(SETUP, measurements, judge(measurements))
    text = json.dumps(report, allow_nan=False)  # no Infinity/NaN anywhere
    back = json.loads(text)
    assert [m["scenario"] for m in back["measurements"]] == [s.value for s in Scenario]
    cached = back["measurements"][2]
    assert cached["times_fastapi"] == 4.0 and cached["throughput"]["rate"] == 8000.0
    assert back["passed"] is False
    assert back["setup"]["appendfsync"] == "always"
