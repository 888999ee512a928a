"""The seeding progress bar (pure); seeding itself is tested against real nodes in
tests/server/test_bench.py."""

from __future__ import annotations

from node.seeder import progress_line


def test_the_bar_fills_with_the_share_done() -> None:
    assert "[" + " " * 30 + "]" in progress_line(0, 1000, 1.0)
    assert "[" + "#" * 15 + " " * 15 + "]" in progress_line(500, 1000, 1.0)
    assert "[" + "#" * 30 + "]" in progress_line(1000, 1000, 1.0)


def test_the_line_gives_counts_share_and_rate() -> None:
    line = progress_line(14_000, 70_000, 2.0)
    assert "14,000/70,000" in line
    assert "20%" in line
    assert "7,000/s" in line


def test_nothing_to_seed_is_complete_and_a_zero_time_has_no_rate() -> None:
    line = progress_line(0, 0, 0.0)
    assert "100%" in line and "#" * 30 in line
    assert " 0/s" in line
