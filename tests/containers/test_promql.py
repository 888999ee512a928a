"""The PromQL reading the dashboard check relies on."""

from __future__ import annotations

import pytest

from tests.containers.promql import Matcher, parse, selectors


def test_metric_names_and_matchers() -> None:
    found = selectors(
        'histogram_quantile(0.99, sum by (le, node) (rate(lat_bucket{route="/a/{h:path}", '
        "node=~'$node'}[$__rate_interval])))"
    )
    assert [s.metric for s in found] == ["lat_bucket"]
    assert found[0].matchers == [
        Matcher("route", "=", "/a/{h:path}"),
        Matcher("node", "=~", "$node"),
    ]


def test_aggregations_functions_and_keywords_are_not_metrics() -> None:
    query = parse(
        "sum without (instance) (rate(a_total[5m] offset 1h)) / on (node) group_left (role) "
        "count(b) by (node) > bool 0.5 and c unless max_over_time(d[24h:1m]) * 1e3"
    )
    assert [s.metric for s in query.selectors] == ["a_total", "b", "c", "d"]
    assert query.grouping == {"instance", "node", "role"}


def test_a_name_selector_and_escaped_strings() -> None:
    (found,) = selectors('{__name__="x_total", a!="b\\"}", c!~`d|e`}')
    assert found.metric == "x_total"
    assert found.matchers == [Matcher("a", "!=", 'b"}'), Matcher("c", "!~", "d|e")]


@pytest.mark.parametrize("expr", ['x{a="b}', "x{a}", '{a="b"}', "x $"])
def test_malformed_expressions_are_refused(expr: str) -> None:
    with pytest.raises(ValueError):
        parse(expr)
