"""Grafana's provisioning and the dashboard: it parses, it is laid out, it shows what the
issue asks, and every metric and label its queries read is in the nodes' real
``/metrics`` (or is a label Prometheus gives the target)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from node.metrics import Outcome
from registry.hierarchy import Role
from tests.containers.conftest import Scrape
from tests.containers.project import ROOT, mounts
from tests.containers.promql import parse

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "idnode.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "idnode.yml"
# Values a label may take though the compose hierarchy shows none: the roles a node can
# have (a recursive node added to the compose file), every resolution outcome.
KNOWN_VALUES = {"role": {r.value for r in Role}, "outcome": {o.value for o in Outcome}}
# Series Prometheus makes itself for each target: labels are the target's only.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
_PLAIN_ALTERNATIVES = re.compile(r"[\w:/.{}-]+(\|[\w:/.{}-]+)*")


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text("utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, expression, legend) of every query of every panel."""
    return [
        (p["title"], t["expr"], t.get("legendFormat", ""))
        for p in panels(dashboard)
        for t in p["targets"]
    ]


# -- provisioning -----------------------------------------------------------------------------


def test_the_data_source_is_the_compose_prometheus(
    compose: dict[str, Any], prometheus_config: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    (source,) = load_yaml(DATASOURCES)["datasources"]
    assert source["type"] == "prometheus" and source["access"] == "proxy"
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
    assert source["jsonData"]["timeInterval"] == prometheus_config["global"]["scrape_interval"]
    uses = [p["datasource"] for p in panels(dashboard)]
    uses += [t["datasource"] for p in panels(dashboard) for t in p["targets"]]
    uses += [v["datasource"] for v in dashboard["templating"]["list"]]
    assert uses and all(u == {"type": "prometheus", "uid": source["uid"]} for u in uses), uses


def test_the_dashboard_is_provisioned_from_where_compose_mounts_it(
    compose: dict[str, Any],
) -> None:
    grafana = compose["services"]["grafana"]
    binds = {Path(m.source).resolve(): m.target for m in mounts(grafana) if m.type == "bind"}
    assert binds[(GRAFANA / "provisioning").resolve()] == "/etc/grafana/provisioning"
    dashboards = binds[DASHBOARD.parent.resolve()]
    (provider,) = load_yaml(PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == dashboards
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards}/{DASHBOARD.name}"


# -- the dashboard ----------------------------------------------------------------------------


def test_the_dashboard_is_laid_out(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
    for panel in panels(dashboard):
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_the_dashboard_shows_what_the_issue_asks(dashboard: dict[str, Any]) -> None:
    exprs = {
        title: [expr for t, expr, _ in queries(dashboard) if t == title]
        for title, _, _ in queries(dashboard)
    }

    def find(*needles: str) -> list[str]:
        return [
            title
            for title, texts in exprs.items()
            if any(all(n in text for n in needles) for text in texts)
        ]

    assert find("rate(idnode_resolutions_total", "by (node)"), "resolution rate per node"
    assert find('outcome=~"cache_hit|negative_hit"', "/"), "cache hit ratio"
    assert find("idnode_cache_hit_ratio"), "the node's own hit ratio"
    latency = find("histogram_quantile", "idnode_http_request_duration_seconds_bucket")
    quantiles = {
        q
        for title in latency
        for text in exprs[title]
        for q in re.findall(r"histogram_quantile\((0\.\d+)", text)
    }
    assert {"0.5", "0.95", "0.99"} <= quantiles, quantiles
    assert find("idnode_resolutions_total", "* 86400"), "resolutions/day KPI"
    assert find("idnode_registrations_total"), "registrations KPI"
    assert find("idnode_enterprises"), "enterprises KPI"
    (per_day,) = [p for p in panels(dashboard) if "* 86400" in p["targets"][0]["expr"]]
    steps = per_day["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert 600_000 in [s["value"] for s in steps]  # the Wuhan plan's per-node target


# -- every query against the nodes' real /metrics --------------------------------------------


def series(metric: str, scrapes: list[Scrape]) -> list[dict[str, str]] | None:
    """The label sets of ``metric`` as Prometheus would store them (the node's labels
    plus the target's), or None if no node exposes such a metric at all."""
    if metric in SYNTHETIC:
        return [dict(s.labels) for s in scrapes]
    found = [
        {**sample.labels, **scrape.labels}
        for scrape in scrapes
        for sample in scrape.samples
        if sample.name == metric
    ]
    if found:
        return found
    # A labelled metric with no series yet (no upstream error so far) is still declared.
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for scrape in scrapes:
        for family, kind in scrape.families.items():
            if metric in {family + s for s in suffixes.get(kind, ("",))}:
                return [dict(scrape.labels)]
    return None


def problems(expr: str, legend: str, scrapes: list[Scrape]) -> list[str]:
    """What in ``expr`` (and its legend) names a metric, label or value the nodes do not
    have."""
    found: list[str] = []
    query = parse(expr)
    if not query.selectors:
        return [f"reads no metric: {expr}"]
    labels_seen: set[str] = set()
    for selector in query.selectors:
        rows = series(selector.metric, scrapes)
        if rows is None:
            found.append(f"no node exposes {selector.metric}")
            continue
        labels = {label for row in rows for label in row}
        labels_seen |= labels
        for matcher in selector.matchers:
            if matcher.label not in labels:
                found.append(f"{selector.metric} has no label {matcher.label}")
                continue
            if "$" in matcher.value:  # a dashboard variable, checked as a variable
                continue
            values = {row[matcher.label] for row in rows if matcher.label in row}
            known = values | KNOWN_VALUES.get(matcher.label, set())
            if matcher.op == "=" and matcher.value not in values:
                found.append(f"{selector.metric}{{{matcher.label}={matcher.value!r}}}: no series")
            elif matcher.op == "=~" and not any(re.fullmatch(matcher.value, v) for v in values):
                found.append(f"{selector.metric}{{{matcher.label}=~{matcher.value!r}}}: no series")
            if matcher.op in ("=~", "!~") and _PLAIN_ALTERNATIVES.fullmatch(matcher.value):
                unknown = set(matcher.value.split("|")) - known
                if unknown:
                    found.append(f"{selector.metric}: {matcher.label} is never {sorted(unknown)}")
            if matcher.op == "!=" and matcher.value not in known:
                found.append(f"{selector.metric}: {matcher.label} is never {matcher.value!r}")
    for label in query.grouping - labels_seen:
        found.append(f"groups by {label}, which no series it reads has")
    shown = query.grouping - {"le"} if query.grouping else labels_seen
    for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
        if label not in shown:
            found.append(f"the legend shows {{{{{label}}}}}, which the result has not")
    return found


def test_every_panel_metric_is_in_the_nodes_metrics(
    dashboard: dict[str, Any], scrapes: list[Scrape]
) -> None:
    found = {
        f"{title}: {expr}": problems(expr, legend, scrapes)
        for title, expr, legend in queries(dashboard)
    }
    assert not {k: v for k, v in found.items() if v}


def test_the_node_variable_lists_the_nodes(
    dashboard: dict[str, Any], scrapes: list[Scrape]
) -> None:
    (variable,) = dashboard["templating"]["list"]
    match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"])
    assert match, variable["query"]
    rows = series(match[1], scrapes)
    assert rows is not None, f"no node exposes {match[1]}"
    assert {row.get(match[2]) for row in rows} == {s.labels["node"] for s in scrapes}
    assert variable["name"] == match[2] == "node"
    uses = {expr for _, expr, _ in queries(dashboard) if 'node=~"$node"' in expr}
    assert uses == {expr for _, expr, _ in queries(dashboard)}, "every query follows $node"


@pytest.mark.parametrize(
    ("expr", "legend", "problem"),
    [
        ("rate(idnode_resolution_total[5m])", "", "no node exposes idnode_resolution_total"),
        ('idnode_resolutions_total{outcome="cache_hti"}', "", "no series"),
        ('idnode_resolutions_total{outcome!~"referral|upstream_eror"}', "", "is never"),
        ('idnode_resolutions_total{nod=~"$node"}', "", "has no label nod"),
        ('idnode_http_requests_total{route="/api/handles/{handle}"}', "", "no series"),
        ("sum by (nodes) (idnode_enterprises)", "", "groups by nodes"),
        ("sum by (node) (idnode_enterprises)", "{{role}}", "the legend shows {{role}}"),
        ('up{job="idnodes"}', "", "no series"),
        ("1 + 1", "", "reads no metric"),
    ],
)
def test_the_check_finds_what_the_nodes_lack(
    expr: str, legend: str, problem: str, scrapes: list[Scrape]
) -> None:
    """The check above is not vacuous: each of these mistakes is reported."""
    found = problems(expr, legend, scrapes)
    assert any(problem in p for p in found), found
