"""``loadtest.storage_cost``: a small load on its own embedded Redis, through the batch
API, is counted by key family, and indexing fewer types costs less memory."""

from __future__ import annotations

from pathlib import Path

from loadtest.storage_cost import main, run


def test_a_small_load_is_measured_by_family() -> None:
    every = run(500, "all", sample=100)
    # 500 records fill 3 buckets as 1亿 fill the default count; 0.NA's record has its own.
    assert every.buckets == 3
    assert every.families["r:"].keys == 4
    assert every.families["r:"].sampled_fields == 501  # the identifiers and the prefix's
    assert every.families["r:"].compact == 4  # ziplist: about 170 packed records each
    # Two listings (88.100, and 0.NA for the prefix record), five value indexes (one
    # per indexed type), each a counter, a directory and its pages: every key measured.
    assert every.families["l:"].keys >= 2 * 3 and every.families["v:"].keys >= 5 * 3
    for name in ("l:", "v:"):
        assert every.families[name].sampled == every.families[name].keys
    assert every.families["r:"].sampled == 4
    assert every.used_memory > 0 and every.aof_bytes > 0
    url_only = run(500, "default", sample=100)
    assert 3 <= url_only.families["v:"].keys < every.families["v:"].keys  # URL's alone
    # The value indexes' own bytes (used_memory of 500 identifiers is mostly fixed costs:
    # scripts, buffers, a dictionary, and moves by tens of KB from run to run).
    assert url_only.families["v:"].estimated_bytes < every.families["v:"].estimated_bytes / 2


def test_the_report_lands_in_reports(tmp_path: Path) -> None:
    main(["--count", "200", "--indexed-types", "URL", "--reports", str(tmp_path)])
    (report,) = tmp_path.glob("*/storage.md")
    text = report.read_text()
    assert "| URL | 200 |" in text and "| v: | 3 | 3 |" in text  # counter, directory, page
