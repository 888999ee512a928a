"""The import's progress line and ETA: pure."""

from __future__ import annotations

from node.import_progress import Progress, eta, summary


def test_eta_reads_as_seconds_minutes_or_hours() -> None:
    assert [eta(s) for s in (0, 42.4, 185, 3600, 3725, -3)] == [
        "0s",
        "42s",
        "3m05s",
        "1h00m",
        "1h02m",
        "0s",
    ]


def test_the_total_and_the_time_left_are_estimated_from_bytes() -> None:
    line = Progress(total_bytes=10_000, start_bytes=0).line(lines=20, done_bytes=2_000, seconds=4.0)
    assert "20/~100 lines" in line and "20%" in line
    assert "5/s" in line
    assert "ETA 16s" in line


def test_a_resumed_run_rates_only_what_it_sent() -> None:
    progress = Progress(total_bytes=10_000, start_bytes=5_000, start_lines=50)
    line = progress.line(lines=60, done_bytes=6_000, seconds=2.0)
    assert "5/s" in line
    assert "ETA 8s" in line  # 4,000 bytes left at 500 bytes/s


def test_before_anything_is_acknowledged_there_is_no_eta() -> None:
    line = Progress(total_bytes=10_000, start_bytes=0).line(lines=0, done_bytes=0, seconds=1.0)
    assert "ETA ?" in line and "0/~0" in line


def test_the_summary_counts_the_whole_import_and_rates_this_run() -> None:
    assert summary(imported=1_000_000, rejected=2, seconds=40.0, sent=500_000) == (
        "imported 1,000,000, rejected 2 in 40.0 s (12,500/s this run)"
    )
