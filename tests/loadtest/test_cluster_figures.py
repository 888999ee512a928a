"""``loadtest.cluster_figures``: the side-by-side figures of ``idnode bench --scale N
--cluster M``, refusals reported rather than hidden, and the CPU verdict."""

from __future__ import annotations

import doctest
import json
from dataclasses import replace

import pytest

from loadtest import cluster_figures
from loadtest.cluster_figures import (
    ClusterReport,
    Cpu,
    StoreRun,
    derived,
    render_markdown,
    rows,
    table,
    verdict,
)
from loadtest.scale_figures import Latency

SINGLE = StoreRun(
    name="single Redis",
    masters=1,
    replicas=0,
    n=10_000,
    imported=10_000,
    rejected=0,
    reasons={},
    stored=10_000,
    seconds=2.0,
    memory_masters=6e6,
    memory_replicas=0.0,
    aof_masters=2_000_000,
    aof_replicas=0,
    latency=Latency(200, 0.5, 1.0, 2.0),
    cpu=Cpu(node=2.0, masters=1.2, replicas=0.0, importer=0.4, others=0.1),
    busiest_master=1.2,
)
CLUSTER = replace(
    SINGLE,
    name="cluster 3+3",
    masters=3,
    replicas=3,
    seconds=2.5,
    memory_masters=9e6,
    memory_replicas=8e6,
    aof_masters=2_100_000,
    aof_replicas=2_000_000,
    latency=Latency(200, 0.6, 1.5, 3.0),
    cpu=Cpu(node=2.2, masters=1.5, replicas=0.6, importer=0.4, others=0.2),
    busiest_master=0.55,
)


def _report(single: StoreRun = SINGLE, cluster: StoreRun = CLUSTER) -> ClusterReport:
    return ClusterReport("idnode bench", 10_000, "now", 2, 2, 1024, single, cluster)


def test_the_docstring_examples_hold() -> None:
    failed, _ = doctest.testmod(cluster_figures)
    assert failed == 0


def test_per_identifier_figures_count_masters_and_replicas_apart() -> None:
    d = derived(CLUSTER, 2)
    assert d["rate"] == 4000
    assert d["memory_masters_per_id"] == 900 and d["memory_total_per_id"] == 1700
    assert d["aof_masters_per_id"] == 210 and d["aof_total_per_id"] == 410
    assert d["cpu_us_per_id"] == pytest.approx(470)
    assert d["busy"] == pytest.approx(4.7 / 5)
    assert d["ceiling"] == pytest.approx(2e6 / 470)
    assert d["redis_ceiling"] == pytest.approx(4000 / 0.22)


def test_the_table_sets_the_stores_side_by_side_with_ratios() -> None:
    lines = table(_report())
    assert lines[0] == "| | single Redis | cluster 3+3 | cluster / single |"
    by_name = {name: (a, b, ratio) for name, a, b, ratio in rows(_report())}
    assert by_name["import ids/s"][:2] == ("5,000", "4,000")
    assert by_name["import ids/s"][2] == pytest.approx(0.8)
    assert by_name["Redis B/id, with replicas"][:2] == ("600", "1,700")
    assert by_name["CPU µs/id, Redis replicas"] == ("0", "60", None)  # no ratio to 0
    assert "| CPU µs/id, Redis replicas | 0 | 60 | - |" in lines
    assert len(lines) == 2 + len(rows(_report()))


def test_a_run_without_refusals_says_every_identifier_was_stored() -> None:
    report = _report()
    assert report.failures() == []
    assert "Every identifier was stored on both stores." in render_markdown(report)


def test_refused_identifiers_are_counted_named_and_left_out_of_the_rates() -> None:
    refused = replace(
        CLUSTER, imported=9_889, rejected=111, reasons={"handle already exists": 111}, stored=9_889
    )
    report = _report(cluster=refused)
    (failure,) = report.failures()
    assert failure == (
        "cluster 3+3: 111 of 10,000 identifiers not stored (111 refused per item; "
        "handle already exists: 111)"
    )
    text = render_markdown(report)
    assert "**Some identifiers were not stored**" in text and failure in text
    assert derived(refused, 2)["rate"] == pytest.approx(9_889 / 2.5)
    as_json = json.loads(json.dumps(report.to_json()))
    assert as_json["failures"] == [failure]
    assert as_json["cluster"]["rejected"] == 111


def test_a_listing_that_disagrees_with_the_acknowledgements_is_a_failure() -> None:
    report = _report(cluster=replace(CLUSTER, stored=9_990))
    assert report.failures() == [
        "cluster 3+3: the node lists 9,990 identifiers, not the 10,000 it acknowledged"
    ]


def test_the_verdict_says_whether_the_cores_bound_the_cluster() -> None:
    busy = verdict(_report())
    assert busy.startswith("This machine has 2 cores. The cluster of 3 masters stored 0.80x")
    assert "kept the 2 cores 98% busy (its own processes 94%, other work 4%)" in busy
    assert "the cores, not the masters, bound its throughput" in busy
    assert "go up to 2.18x as fast" in busy
    idle = verdict(_report(cluster=replace(CLUSTER, seconds=10.0)))
    assert "25% busy (its own processes 24%, other work 1%): something besides CPU" in idle
    heavier = verdict(_report(cluster=replace(CLUSTER, busiest_master=2.0)))
    assert "did not lighten its busiest Redis process" in heavier
    assert "Other work" not in busy
    crowded = replace(CLUSTER, cpu=replace(CLUSTER.cpu, others=2.5))
    assert verdict(_report(cluster=crowded)).endswith(
        "Other work on the machine took 2% of the cores during the single Redis's import "
        "and 50% during the cluster's: both were measured under that load, and a quiet "
        "machine would give them more."
    )
    nothing = verdict(_report(cluster=replace(CLUSTER, imported=0)))
    assert nothing.startswith("No verdict")


def test_the_report_names_the_cores_and_the_cpu_split() -> None:
    text = render_markdown(_report())
    assert text.startswith("# Single Redis against a Redis Cluster: 10,000 identifiers")
    assert "## Cores and CPU" in text
    assert "- cluster 3+3: 4.7 CPU s in 2.5 s of import on 2 cores (94% of them): node 47%" in text
    assert "replicas 13%" in text
