"""``loadtest.scale_catalog`` and ``loadtest.scale_figures``: the identifiers' variety and
uniqueness, the projection and its refusal, percentiles, and the report's renderings."""

from __future__ import annotations

import doctest
from collections import Counter
from xml.etree import ElementTree

import orjson
import pytest

from loadtest import scale_catalog, scale_figures
from loadtest.scale_catalog import describe, handle, line, lines, lot_of
from loadtest.scale_figures import (
    Calibration,
    Latency,
    Machine,
    Point,
    Report,
    Restart,
    checkpoints,
    percentile,
    project,
    render_markdown,
    render_svg,
    table,
)


@pytest.mark.parametrize("module", [scale_catalog, scale_figures])
def test_the_docstring_examples_hold(module: object) -> None:
    failed, _ = doctest.testmod(module)  # type: ignore[arg-type]
    assert failed == 0


def test_identifiers_are_unique_and_as_varied_as_a_production() -> None:
    count = 200_000
    items = [orjson.loads(text) for text in lines(0, count)]
    handles = {item["handle"] for item in items}
    assert len(handles) == count
    values = [{v["type"]: v["data"]["value"] for v in item["values"]} for item in items]
    urls = {v["URL"] for v in values}
    assert len(urls) == count
    assert all(
        item["handle"].split("/", 1)[1] in v["URL"] for item, v in zip(items, values, strict=True)
    )
    assert len({v["PRODUCT_NAME"] for v in values}) > 400  # 600 lots, 1000 products
    assert len({describe(k).product for k in range(0, 10**7, 997)}) > 990
    assert len({v["MANUFACTURER"] for v in values}) == 50
    lots = Counter(v["BATCH"] for v in values)
    sizes = sorted(lots.values())
    assert 200 <= sizes[0] and sizes[-1] <= 600  # lots of a few hundred units
    assert len(lots) == 600  # three lots per thousand units
    by_lot: dict[str, set[tuple[str, str]]] = {}
    for v in values:
        by_lot.setdefault(v["BATCH"], set()).add((v["PRODUCT_NAME"], v["PRODUCTION_DATE"]))
    assert all(len(kinds) == 1 for kinds in by_lot.values())  # one product, one day a lot
    assert len({v["PRODUCTION_DATE"] for v in values}) == 600 // scale_catalog.LOTS_A_DAY


def test_any_range_is_the_same_lines_as_from_the_start() -> None:
    assert list(lines(123_456, 124_789)) == [line(k) for k in range(123_456, 124_789)]
    assert lot_of(999) == describe(999).lot and handle(5) == f"88.100/{describe(5).serial}"


def test_checkpoints_are_the_decades_and_n() -> None:
    assert checkpoints(10_000, 200_000) == [10_000, 100_000, 200_000]
    assert checkpoints(10_000, 100_000) == [10_000, 100_000]
    assert checkpoints(1000, 500) == [500]


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1000, 0, -1)]
    assert percentile(values, 50) == 500 and percentile(values, 99) == 990
    assert percentile(values, 100) == 1000
    with pytest.raises(ValueError):
        percentile([], 50)


CAL = Calibration(count=10_000, memory_per_id=200.0, aof_per_id=100.0, node_bytes=1e8, buckets=1)


def test_a_projection_that_fits() -> None:
    p = project(10**8, CAL, Machine(memory_available=24e9, disk_free=80e9), headroom=0.1)
    assert p.memory == pytest.approx(10**8 * 220 + 1e8)
    assert p.disk == pytest.approx(2e10)
    assert p.fits
    assert p.largest == int((24e9 - 1e8) / 220)


def test_a_refusal_names_the_need_what_there_is_and_the_largest_n() -> None:
    p = project(10**13, CAL, Machine(24e9, 80e9), headroom=0.1)
    assert not p.fits
    text = p.refusal()
    assert text.count(".") >= 1 and "\n" not in text and text.endswith(".")
    assert "--scale 10,000,000,000,000 does not fit" in text
    assert "2200.0 TB of memory" in text and "24.0 GB is available" in text
    assert "2000.0 TB of disk" in text and "80.0 GB is free" in text
    assert f"the largest N that fits is {p.largest:,}" in text
    disk_only = project(10**9, CAL, Machine(10**15, 80e9))
    assert not disk_only.fits and "of disk" in disk_only.refusal()
    assert disk_only.largest == 400_000_000


def test_a_resumed_run_counts_the_aof_it_has_written() -> None:
    fresh = project(10**9, CAL, Machine(10**15, 100e9))
    resumed = project(10**9, CAL, Machine(10**15, 100e9), aof_written=120e9)
    assert not fresh.fits and resumed.fits


def _report() -> Report:
    points = [
        Point(10_000, 10_000, 600.0, 900.0, 140.0, 20_000.0, Latency(2000, 0.4, 0.8, 2.0)),
        Point(100_000, 100_000, 580.0, 650.0, 136.0, 31_000.0, Latency(2000, 0.45, 1.0, 3.0)),
    ]
    cal = Calibration(10_000, 590.0, 137.0, 2e8, 10_486)
    return Report(
        command="idnode bench --scale 100000",
        n=100_000,
        started="2026-12-05 12:00:00 UTC",
        calibration=cal,
        projection=project(100_000, cal, Machine(24e9, 80e9)),
        points=points,
        restart=Restart(2.5, 3, "store loading: 80% of 5.0 MB", stop_seconds=0.4),
        workers=2,
        buckets=1 << 20,
    )


def test_the_report_has_every_figure() -> None:
    report = _report()
    text = render_markdown(report)
    assert "| 100,000 | 100,000 | 580 | 650 | 136 | 31,000 | 0.45 | 1.00 | 1.25x | 0.0 |" in text
    assert "ready (`/readyz` 200) after 2.5 s" in text and "loading 3 time(s)" in text
    assert "590 B/id of Redis memory" in text and "![memory and latency" in text
    assert table(report)[2].startswith("| 10,000 |")
    figures = report.to_json()
    assert figures["projection"]["fits"] is True
    assert figures["points"][1]["latency"]["p99_ms"] == 1.0
    assert orjson.loads(orjson.dumps(figures)) == figures


def test_the_plot_is_svg_with_both_panels() -> None:
    svg = render_svg(_report().points)
    root = ElementTree.fromstring(svg)
    assert root.tag.endswith("svg")
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 4  # Redis and AOF B/id, p99 and p50
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "1e4" in texts and "1e5" in texts
    one_point = render_svg(_report().points[:1])  # a single N still draws
    ElementTree.fromstring(one_point)
