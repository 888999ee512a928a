"""``loadtest.storage_cost``: a small load on its own embedded Redis, through the batch
API, is counted by key family, and indexing fewer types costs less memory."""

from __future__ import annotations

from pathlib import Path

from loadtest.storage_cost import main, run


def test_a_small_load_is_measured_by_family() -> None:
    every = run(500, "all", sample=100)
    # 500 records fill 5 buckets as 1亿 fill the default count; 0.NA's record has its own.
    assert every.buckets == 5
    assert every.families["r:"].keys == 6
    assert every.families["r:"].sampled_fields == 501  # the identifiers and the prefix's
    assert every.families["r:"].compact == 6  # ziplist: about 100 records of 240 B each
    assert every.families["l:"].keys == 2  # 88.100 and 0.NA (the prefix record)
    assert every.families["v:"].keys == 5  # one per indexed type
    assert every.families["r:"].sampled == 6
    assert every.used_memory > 0 and every.aof_bytes > 0
    url_only = run(500, "default", sample=100)
    assert url_only.families["v:"].keys == 1
    assert url_only.used_memory < every.used_memory


def test_the_report_lands_in_reports(tmp_path: Path) -> None:
    main(["--count", "200", "--indexed-types", "URL", "--reports", str(tmp_path)])
    (report,) = tmp_path.glob("*/storage.md")
    text = report.read_text()
    assert "| URL | 200 |" in text and "| v: | 1 |" in text
