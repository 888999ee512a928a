"""``loadtest.bench``: the plan's target, Locust's CSV turned into verdicts, the summary and
the plots (pure: hand-written Locust-like rows, no network, no Locust)."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from loadtest.bench import (
    RESOLVE_AT,
    BenchOptions,
    node_verdicts,
    plot,
    read_stats,
    required_per_day,
    summary,
)
from loadtest.traffic import NodeVerdict, verdict
from registry.errors import ConfigError

SECONDS = 100.0
REQUIRED = 600_000.0
BUDGET = 0.001
COMMAND = "idnode bench --up --scenario resolve --duration 100 --users 20"

STATS_FIELDS = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "95%",
    "99%",
    "Requests/s",
]
HISTORY_FIELDS = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "50%", "95%", "99%"]


def stat(name: str, requests: int, failures: int = 0, rps: float | None = None) -> dict[str, str]:
    """One row of ``locust_stats.csv``."""
    rate = requests / SECONDS if rps is None else rps
    return {
        "Type": "" if name == "Aggregated" else "GET",
        "Name": name,
        "Request Count": str(requests),
        "Failure Count": str(failures),
        "Median Response Time": "4",
        "95%": "12",
        "99%": "30",
        "Requests/s": f"{rate:.6f}",
    }


def point(
    timestamp: int, name: str, rps: str, p50: str = "4", p95: str = "12", p99: str = "30"
) -> dict[str, str]:
    """One row of ``locust_stats_history.csv``."""
    return {
        "Timestamp": str(timestamp),
        "User Count": "20",
        "Type": "" if name == "Aggregated" else "GET",
        "Name": name,
        "Requests/s": rps,
        "50%": p50,
        "95%": p95,
        "99%": p99,
    }


def stats_rows() -> list[dict[str, str]]:
    # 88.300 listed first on purpose: verdicts come back sorted by node
    return [
        stat("resolve at 88.300", 500, 0),  # 5/s: 432,000/day, misses the rate
        stat("resolve at 88.100", 1000, 0),  # 10/s: 864,000/day, passes
        stat("resolve at 88.200", 1000, 5),  # 0.5% failures: over the 0.1% budget
        stat("register one", 300, 0),
        stat("list a page", 50, 1),
        stat("Aggregated", 2850, 6),
    ]


def history_rows() -> list[dict[str, str]]:
    rows = []
    for second, (a, b, c) in enumerate([(8, 9, 4), (12, 11, 6), (10, 10, 5)]):
        t = 1_700_000_000 + second
        rows += [
            point(t, "resolve at 88.100", f"{a:.6f}"),
            point(t, "resolve at 88.200", f"{b:.6f}"),
            point(t, "resolve at 88.300", f"{c:.6f}"),
            point(t, "register one", "99.000000"),  # not a resolution: never a peak
            point(t, "Aggregated", "500.000000"),
        ]
    return rows


def options(**changes: object) -> BenchOptions:
    base = BenchOptions(scenario="resolve", duration=int(SECONDS), users=20)
    return replace(base, **changes)  # type: ignore[arg-type]


def passing(node: str = "88.100") -> NodeVerdict:
    return verdict(node, 1000, 0, SECONDS, [12.0], required_per_day=REQUIRED)


# --- required_per_day -------------------------------------------------------------------


def test_required_per_day_of_the_wuhan_5g_plan() -> None:
    assert required_per_day("wuhan-5g-2021") == 600_000
    assert isinstance(required_per_day("wuhan-5g-2021"), float)


def test_required_per_day_of_an_unknown_plan_raises() -> None:
    with pytest.raises(ConfigError):
        required_per_day("no-such-plan")


# --- node_verdicts ----------------------------------------------------------------------


def test_node_verdicts_keep_only_resolutions_sorted_by_node() -> None:
    verdicts = node_verdicts(stats_rows(), history_rows(), SECONDS, REQUIRED, BUDGET)
    assert [v.node for v in verdicts] == ["88.100", "88.200", "88.300"]
    assert all(not v.node.startswith(RESOLVE_AT) for v in verdicts)


def test_node_verdicts_figures() -> None:
    by_node = {
        v.node: v for v in node_verdicts(stats_rows(), history_rows(), SECONDS, REQUIRED, BUDGET)
    }
    first, second, third = by_node["88.100"], by_node["88.200"], by_node["88.300"]
    assert (first.requests, first.failures) == (1000, 0)
    assert first.average_rate == pytest.approx(10.0)
    assert first.peak_rate == pytest.approx(12.0)  # from the history, not the average
    assert first.per_day == pytest.approx(864_000)
    assert first.required_per_day == REQUIRED and first.error_budget == BUDGET
    assert first.passed
    assert second.peak_rate == pytest.approx(11.0)
    assert second.meets_rate and not second.within_budget and not second.passed
    assert third.peak_rate == pytest.approx(6.0)
    assert not third.meets_rate and third.within_budget and not third.passed


def test_node_verdicts_without_history_use_the_average_as_peak() -> None:
    verdicts = node_verdicts(stats_rows(), [], SECONDS, REQUIRED, BUDGET)
    assert [v.peak_rate for v in verdicts] == pytest.approx([10.0, 10.0, 5.0])


def test_node_verdicts_treat_empty_history_rates_as_zero() -> None:
    history = [
        point(1, "resolve at 88.100", ""),
        point(2, "resolve at 88.100", "7.5"),
    ]
    (v,) = node_verdicts([stat("resolve at 88.100", 1000)], history, SECONDS, REQUIRED, BUDGET)
    assert v.peak_rate == pytest.approx(7.5)


def test_node_verdicts_without_resolutions_are_empty() -> None:
    stats = [stat("register one", 300), stat("Aggregated", 300)]
    assert node_verdicts(stats, history_rows(), SECONDS, REQUIRED, BUDGET) == []


def test_a_catalog_node_that_answered_nothing_fails() -> None:
    """A secondary node no resolution reached is judged on zero, not left out."""
    verdicts = node_verdicts(
        stats_rows(), history_rows(), SECONDS, REQUIRED, BUDGET, nodes=["88.100", "88.400"]
    )
    assert [v.node for v in verdicts] == ["88.100", "88.200", "88.300", "88.400"]
    silent = verdicts[-1]
    assert (silent.requests, silent.failures, silent.average_rate) == (0, 0, 0.0)
    assert not silent.meets_rate and not silent.within_budget and not silent.passed


# --- summary ----------------------------------------------------------------------------


def test_summary_passes_when_every_node_passes() -> None:
    verdicts = [passing("88.100"), passing("88.200")]
    text, passed = summary(options(), stats_rows(), verdicts, 100.0, 20.0, COMMAND)
    assert passed
    assert text.rstrip().endswith("**PASS**")
    assert "FAIL" not in text
    assert "| 88.100 | 1,000 | 0 (0.000%) | 10.0 | 12.0 | 864,000 | 600,000 | pass |" in text
    assert "| 88.200 |" in text


def test_summary_includes_the_command_and_the_run() -> None:
    text, _ = summary(options(), stats_rows(), [passing()], 100.0, 20.0, COMMAND)
    assert text.startswith("# idnode bench: resolve, day shape\n")
    assert f"`{COMMAND}`" in text
    assert "600,000 resolutions/day (wuhan-5g-2021); error budget 0.10%" in text
    assert "peak 20 users, 1 Locust process(es); unknown identifiers 2%" in text
    assert "- all requests: 2,850, failures 6, median 4 ms, p95 12 ms, p99 30 ms" in text
    assert "| register one | 300 | 0 | 4 | 12 | 30 | 3.0 |" in text
    assert "![throughput](throughput.png)" in text and "![latency](latency.png)" in text


def test_summary_marks_rate_and_error_failures() -> None:
    verdicts = node_verdicts(stats_rows(), history_rows(), SECONDS, REQUIRED, BUDGET)
    text, passed = summary(options(), stats_rows(), verdicts, 100.0, 20.0, COMMAND)
    assert not passed
    assert text.rstrip().endswith("**FAIL**")
    lines = {line.split(" | ")[0].removeprefix("| "): line for line in text.splitlines()}
    assert lines["88.100"].endswith("| pass |")
    assert lines["88.200"].endswith("| FAIL (errors) |")
    assert lines["88.300"].endswith("| FAIL (rate) |")


def test_summary_one_failing_node_fails_the_run() -> None:
    slow = verdict("88.200", 100, 0, SECONDS, [1.0], required_per_day=REQUIRED)
    _, passed = summary(options(), stats_rows(), [passing(), slow], 100.0, 20.0, COMMAND)
    assert not passed


def test_summary_missing_rate_and_errors_reports_the_rate() -> None:
    both = verdict("88.100", 100, 50, SECONDS, [1.0], required_per_day=REQUIRED)
    text, passed = summary(options(), stats_rows(), [both], 100.0, 20.0, COMMAND)
    assert not passed
    assert "| FAIL (rate) |" in text and "FAIL (errors)" not in text


def test_summary_without_verdicts_fails() -> None:
    text, passed = summary(options(), stats_rows(), [], 100.0, 20.0, COMMAND)
    assert not passed
    assert "- no secondary node was measured" in text
    assert text.rstrip().endswith("**FAIL**")


def test_summary_without_an_aggregated_row() -> None:
    stats = [stat("resolve at 88.100", 1000)]
    text, passed = summary(options(), stats, [passing()], 100.0, 20.0, COMMAND)
    assert passed
    assert "- all requests:" not in text


def test_summary_saturated_generator() -> None:
    text, _ = summary(options(), stats_rows(), [passing()], 100.0, 95.0, COMMAND)
    assert "it was saturated" in text
    assert "not saturated" not in text
    assert "load generator CPU: 95.0 s = 95% of one core" in text


def test_summary_generator_not_saturated() -> None:
    text, _ = summary(options(), stats_rows(), [passing()], 100.0, 30.0, COMMAND)
    assert "not saturated" in text
    assert "it was saturated" not in text


def test_summary_saturation_scales_with_processes() -> None:
    # 150% of one core: saturated with one process, not with four
    one, _ = summary(options(), stats_rows(), [passing()], 100.0, 150.0, COMMAND)
    assert "it was saturated" in one
    four, _ = summary(options(processes=4), stats_rows(), [passing()], 100.0, 150.0, COMMAND)
    assert "not saturated" in four
    assert "4 Locust process(es)" in four


def test_summary_saturation_does_not_change_the_verdict() -> None:
    _, passed = summary(options(), stats_rows(), [passing()], 100.0, 99.0, COMMAND)
    assert passed


# --- read_stats and plot ----------------------------------------------------------------


def write_csv(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def test_read_stats_reads_back_what_locust_wrote(tmp_path: Path) -> None:
    write_csv(tmp_path / "locust_stats.csv", STATS_FIELDS, stats_rows())
    write_csv(tmp_path / "locust_stats_history.csv", HISTORY_FIELDS, history_rows())
    stats, history = read_stats(tmp_path)
    assert stats == stats_rows()
    assert history == history_rows()
    verdicts = node_verdicts(stats, history, SECONDS, REQUIRED, BUDGET)
    assert [(v.node, v.passed) for v in verdicts] == [
        ("88.100", True),
        ("88.200", False),
        ("88.300", False),
    ]


def test_read_stats_without_files_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_stats(tmp_path)


def test_plot_writes_both_images(tmp_path: Path) -> None:
    history = history_rows() + [
        # Locust writes N/A before a request has a percentile, and empty rates are skipped
        point(1_700_000_003, "resolve at 88.100", "0.000000", "N/A", "N/A", "N/A"),
        point(1_700_000_003, "resolve at 88.200", "3.000000", "", "N/A", "40"),
        point(1_700_000_003, "resolve at 88.300", ""),
    ]
    plot(history, tmp_path)
    for name in ("throughput.png", "latency.png"):
        image = tmp_path / name
        assert image.is_file() and image.stat().st_size > 0
        assert image.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_plot_from_csv_read_back(tmp_path: Path) -> None:
    rows = [point(10, "resolve at 88.100", "5.0", "N/A", "N/A", "N/A")] + history_rows()
    write_csv(tmp_path / "locust_stats.csv", STATS_FIELDS, stats_rows())
    write_csv(tmp_path / "locust_stats_history.csv", HISTORY_FIELDS, rows)
    _, history = read_stats(tmp_path)
    plot(history, tmp_path)
    assert (tmp_path / "throughput.png").stat().st_size > 0
    assert (tmp_path / "latency.png").stat().st_size > 0


# An empty history still yields both files; matplotlib warns that the legend is empty.
def test_plot_with_no_history(tmp_path: Path) -> None:
    plot([], tmp_path)
    assert (tmp_path / "throughput.png").stat().st_size > 0
    assert (tmp_path / "latency.png").stat().st_size > 0
