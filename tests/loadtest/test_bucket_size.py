"""``loadtest.bucket_size``: every fill is measured on its own embedded Redis, buckets of
a few dozen records stay compact and cost less per record than strings."""

from __future__ import annotations

import pytest

from loadtest.bucket_size import main


def test_buckets_are_measured_compact_and_cheaper(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--records", "4000"])
    rows = {
        cells[0]: cells[1:]
        for line in capsys.readouterr().out.splitlines()[2:]
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert list(rows) == ["1 (strings)", "1", "16", "32", "64", "128", "256"]
    assert rows["64"][1] == "ziplist" and rows["1 (strings)"][1] in ("raw", "embstr")
    assert float(rows["64"][0].replace(",", "")) < float(rows["1 (strings)"][0].replace(",", ""))
