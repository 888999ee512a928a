"""The seed plans as data and how measured figures are judged against them (pure)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from loadtest.plan import (
    GROWTH,
    NOT_MEASURABLE,
    Growth,
    Measure,
    Measurement,
    Observed,
    Plan,
    Row,
    Scope,
    Standing,
    Target,
    evaluate,
    failed,
    overall,
    render_markdown,
    render_text,
    standing,
)
from registry.errors import ConfigError

SEEDS = Path("/work/shared/seeds")
SHIPPED = ["guangzhou-2018", "tianjin-2021", "wuhan-5g-2021", "wuhan-digital-2020"]


def target(
    id: str,
    measure: Measure,
    scope: Scope = Scope.PER_TOP_NODE,
    required: float = 10,
    quote: str = "引文",
) -> Target:
    return Target(id, measure, scope, required, "units", quote)


def plan(*targets: Target) -> Plan:
    return Plan("demo", "演示计划", "A demo plan", "demo.txt", targets)


def secondary(
    enterprises: float | None = 1, registrations: float | None = 1, resolutions: float | None = 1
) -> dict[Measure, Measurement]:
    return {
        Measure.ENTERPRISES: Measurement(enterprises, "approved"),
        Measure.REGISTRATIONS: Measurement(registrations, "created"),
        Measure.RESOLUTIONS_PER_DAY: Measurement(resolutions, "answered"),
    }


# --- the shipped plans -------------------------------------------------------------------


def test_names_lists_exactly_the_shipped_plans() -> None:
    assert Plan.names() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_plan_loads(name: str) -> None:
    loaded = Plan.load(name)
    assert loaded.name == name
    assert loaded.title and loaded.english and loaded.source.endswith(".txt")
    assert loaded.targets
    ids = [t.id for t in loaded.targets]
    assert len(ids) == len(set(ids))
    for t in loaded.targets:
        assert isinstance(t.measure, Measure) and isinstance(t.scope, Scope)
        assert t.required > 0 and t.unit and t.quote


@pytest.mark.parametrize("name", SHIPPED)
def test_every_quote_occurs_in_its_seed_document(name: str) -> None:
    if not SEEDS.is_dir():
        pytest.skip(f"no seed documents at {SEEDS}")
    loaded = Plan.load(name)
    document = re.sub(r"\s+", "", (SEEDS / loaded.source).read_text("utf-8"))
    for t in loaded.targets:
        assert re.sub(r"\s+", "", t.quote) in document, (t.id, t.quote)


def test_wuhan_5g_targets() -> None:
    wuhan = Plan.load("wuhan-5g-2021")
    by_id = {t.id: t for t in wuhan.targets}
    daily = by_id["secondary-daily-resolutions"]
    assert (daily.measure, daily.scope, daily.required) == (
        Measure.RESOLUTIONS_PER_DAY,
        Scope.PER_SECONDARY_NODE,
        600_000,
    )
    assert "60万" in daily.quote
    enterprises = by_id["secondary-new-enterprises"]
    assert (enterprises.measure, enterprises.scope, enterprises.required) == (
        Measure.ENTERPRISES,
        Scope.PER_SECONDARY_NODE,
        100,
    )
    registrations = by_id["secondary-new-registrations"]
    assert (registrations.measure, registrations.scope, registrations.required) == (
        Measure.REGISTRATIONS,
        Scope.PER_SECONDARY_NODE,
        100_000_000,
    )
    # The class docstring's example.
    assert wuhan.targets[2].required == 600000


def test_load_of_an_unknown_plan_lists_the_plans() -> None:
    with pytest.raises(ConfigError) as caught:
        Plan.load("atlantis-2030")
    assert "atlantis-2030" in caught.value.message
    for name in SHIPPED:
        assert name in caught.value.message


GOOD: dict[str, Any] = {
    "name": "x",
    "title": "标题",
    "english": "Title",
    "source": "x.txt",
    "target": [
        {
            "id": "t",
            "measure": "enterprises",
            "scope": "per_city",
            "required": 3,
            "unit": "enterprises",
            "quote": "引文",
        }
    ],
}


def test_parse_of_good_data() -> None:
    parsed = Plan.parse(GOOD)
    assert parsed.targets == (
        Target("t", Measure.ENTERPRISES, Scope.PER_CITY, 3, "enterprises", "引文"),
    )


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != key}


def _target_with(**changes: Any) -> dict[str, Any]:
    return {**GOOD, "target": [{**GOOD["target"][0], **changes}]}


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({}, id="empty"),
        pytest.param(_without("title"), id="no-title"),
        pytest.param(_without("target"), id="no-targets"),
        pytest.param({**GOOD, "target": 5}, id="targets-not-a-list"),
        pytest.param({**GOOD, "target": ["enterprises"]}, id="target-not-a-table"),
        pytest.param(_target_with(measure="happiness"), id="unknown-measure"),
        pytest.param(_target_with(scope="per_planet"), id="unknown-scope"),
        pytest.param(
            {**GOOD, "target": [{k: v for k, v in GOOD["target"][0].items() if k != "quote"}]},
            id="target-missing-quote",
        ),
        pytest.param(["not", "a", "table"], id="not-a-table"),
    ],
)
def test_parse_of_malformed_data_raises_config_error(raw: Any) -> None:
    with pytest.raises(ConfigError, match="malformed plan"):
        Plan.parse(raw)


def test_parse_refuses_a_non_numeric_required() -> None:
    with pytest.raises(ConfigError):
        Plan.parse(_target_with(required="lots"))


# --- evaluate ----------------------------------------------------------------------------


def test_per_secondary_targets_give_one_row_per_secondary_sorted_by_prefix() -> None:
    t = target("e", Measure.ENTERPRISES, Scope.PER_SECONDARY_NODE, required=2)
    observed = Observed(
        secondaries={
            "88.102": secondary(enterprises=5),
            "88.100": secondary(enterprises=2),
            "88.101": secondary(enterprises=1),
        }
    )
    rows = evaluate(plan(t), observed)
    assert [r.subject for r in rows] == ["secondary 88.100", "secondary 88.101", "secondary 88.102"]
    assert [r.measured for r in rows] == [2, 1, 5]
    assert [r.passed for r in rows] == [True, False, True]
    assert all(r.target is t and r.required == 2 for r in rows)
    assert [r.how for r in rows] == ["approved"] * 3
    assert failed(rows)


@pytest.mark.parametrize("scope", [Scope.PER_TOP_NODE, Scope.PER_CITY])
def test_other_targets_give_one_hierarchy_row(scope: Scope) -> None:
    t = target("n", Measure.SECONDARY_NODES, scope, required=5)
    observed = Observed(
        secondaries={"88.100": secondary(), "88.101": secondary()},
        hierarchy={Measure.SECONDARY_NODES: Measurement(5, "registered")},
    )
    (row,) = evaluate(plan(t), observed)
    assert row == Row(t, "hierarchy", 5, 5, True, "registered")
    assert not failed([row])


@pytest.mark.parametrize(
    ("measured", "passed"), [(9, False), (9.999, False), (10, True), (10.5, True), (1e12, True)]
)
def test_pass_when_measured_reaches_required(measured: float, passed: bool) -> None:
    t = target("r", Measure.TOTAL_RESOLUTIONS, required=10)
    observed = Observed(hierarchy={Measure.TOTAL_RESOLUTIONS: Measurement(measured, "m")})
    (row,) = evaluate(plan(t), observed)
    assert (row.measured, row.passed) == (measured, passed)
    assert failed([row]) is not passed


@pytest.mark.parametrize(("rank", "passed"), [(1, True), (3, True), (4, False), (30, False)])
def test_national_rank_passes_at_or_below_required_and_is_never_scaled(
    rank: int, passed: bool
) -> None:
    t = target("rank", Measure.NATIONAL_RANK, required=3)
    observed = Observed(hierarchy={Measure.NATIONAL_RANK: Measurement(rank, "ranked")})
    for scale in (1.0, 0.001, 1000.0):
        (row,) = evaluate(plan(t), observed, scale)
        assert row.required == 3
        assert row.passed is passed


def test_scale_multiplies_the_other_requirements() -> None:
    daily = target("d", Measure.RESOLUTIONS_PER_DAY, Scope.PER_SECONDARY_NODE, 600_000)
    city = target("c", Measure.REGISTRATIONS, Scope.PER_TOP_NODE, 10_000_000_000)
    observed = Observed(
        secondaries={"88.100": secondary(resolutions=6), "88.101": secondary(resolutions=5)},
        hierarchy={Measure.REGISTRATIONS: Measurement(100_000, "created")},
    )
    rows = evaluate(plan(daily, city), observed, scale=0.00001)
    # 600,000 x 0.00001 is exactly 6 (not 6.000000000000001), so 6 passes.
    assert [(r.subject, r.required, r.passed) for r in rows] == [
        ("secondary 88.100", 6, True),
        ("secondary 88.101", 6, False),
        ("hierarchy", 100_000, True),
    ]
    unscaled = evaluate(plan(daily, city), observed)
    assert [r.required for r in unscaled] == [600_000, 600_000, 10_000_000_000]
    assert not any(r.passed for r in unscaled)
    doubled = evaluate(plan(city), observed, scale=2.0)
    assert doubled[0].required == 20_000_000_000


def test_unmeasurable_targets_are_not_measured_and_do_not_fail() -> None:
    apps = target("a", Measure.INTEGRATED_APPLICATIONS, Scope.PER_SECONDARY_NODE, 2)
    rank = target("r", Measure.NATIONAL_RANK, Scope.PER_TOP_NODE, 3)
    nodes = target("n", Measure.SECONDARY_NODES, Scope.PER_CITY, 1)
    observed = Observed(
        secondaries={"88.100": secondary()},
        hierarchy={Measure.SECONDARY_NODES: Measurement(1, "registered")},
    )
    rows = evaluate(plan(apps, rank, nodes), observed)
    assert [(r.subject, r.measured, r.passed, r.how) for r in rows] == [
        ("secondary 88.100", None, None, NOT_MEASURABLE),
        ("hierarchy", None, None, NOT_MEASURABLE),
        ("hierarchy", 1, True, "registered"),
    ]
    assert not failed(rows)
    assert not failed(rows[:2])
    assert rows[0].to_json()["result"] == "not measured"


def test_a_measurement_without_value_fails() -> None:
    t = target("e", Measure.ENTERPRISES, Scope.PER_SECONDARY_NODE, required=1)
    observed = Observed(
        secondaries={
            "88.100": secondary(enterprises=3),
            "88.101": {Measure.ENTERPRISES: Measurement(None, "unreachable: refused")},
        }
    )
    rows = evaluate(plan(t), observed)
    assert [(r.measured, r.passed, r.how) for r in rows] == [
        (3, True, "approved"),
        (None, False, "unreachable: refused"),
    ]
    assert failed(rows)
    # Even a requirement of zero is not met by a figure nobody could obtain.
    zero = target("z", Measure.TOTAL_RESOLUTIONS, required=0)
    (row,) = evaluate(plan(zero), Observed(hierarchy={zero.measure: Measurement(None, "?")}))
    assert row.passed is False


def test_no_secondaries_gives_a_failing_row() -> None:
    per_node = target("e", Measure.ENTERPRISES, Scope.PER_SECONDARY_NODE, required=1)
    city = target("n", Measure.SECONDARY_NODES, Scope.PER_CITY, required=0)
    observed = Observed(hierarchy={Measure.SECONDARY_NODES: Measurement(0, "registered")})
    rows = evaluate(plan(per_node, city), observed)
    assert [(r.subject, r.measured, r.passed, r.how) for r in rows] == [
        ("no secondary node", None, False, "none found"),
        ("hierarchy", 0, True, "registered"),
    ]
    assert rows[0].required == 1
    assert failed(rows)


def test_no_targets_no_rows() -> None:
    rows = evaluate(plan(), Observed())
    assert rows == [] and not failed(rows)


def test_row_to_json() -> None:
    t = target("e", Measure.ENTERPRISES, Scope.PER_SECONDARY_NODE, required=2, quote="不低于")
    (row,) = evaluate(plan(t), Observed(secondaries={"88.100": secondary(enterprises=1)}))
    assert row.to_json() == {
        "target": "e",
        "subject": "secondary 88.100",
        "measure": "enterprises",
        "scope": "per_secondary_node",
        "required": 2,
        "unit": "units",
        "measured": 1,
        "result": "FAIL",
        "how": "approved",
        "quote": "不低于",
    }


# --- standing: how a live view judges a row ------------------------------------------------


def test_every_measure_says_how_it_grows() -> None:
    assert set(GROWTH) == set(Measure)


def _judged(t: Target, measured: float | None, *, day_over: bool = False) -> tuple[str, str]:
    (row,) = evaluate(plan(t), Observed(hierarchy={t.measure: Measurement(measured, "how")}))
    verdict, reason = standing(row, day_over=day_over)
    return verdict.value, reason


@pytest.mark.parametrize("measure", [m for m, g in GROWTH.items() if g is Growth.CUMULATIVE])
def test_a_cumulative_count_below_its_target_is_pending_not_failed(measure: Measure) -> None:
    t = target("c", measure, required=100)
    verdict, reason = _judged(t, 3, day_over=True)
    assert verdict == "pending"
    assert reason == "3 of 100 units so far; a cumulative target, judged at the plan's end"
    assert _judged(t, 100) == ("pass", "how")  # met: counts never go down


def test_a_daily_count_is_pending_while_the_day_lasts_and_failed_after() -> None:
    t = target("d", Measure.RESOLUTIONS_PER_DAY, required=600_000)
    assert _judged(t, 42) == ("pending", "42 of 600,000 units so far; the day (UTC) is not over")
    assert _judged(t, 42, day_over=True) == ("FAIL", "how")
    assert _judged(t, 600_000) == ("pass", "how")  # met before the day is over


@pytest.mark.parametrize(
    "measure", [Measure.PUBLIC_SERVICES, Measure.COMMERCIAL_CRYPTOGRAPHY, Measure.NATIONAL_RANK]
)
def test_what_the_hierarchy_offers_now_is_judged_at_once(measure: Measure) -> None:
    t = target("s", measure, required=6)
    breach = 7 if measure is Measure.NATIONAL_RANK else 5  # ranks: lower is better
    assert _judged(t, breach) == ("FAIL", "how")
    assert _judged(t, 6) == ("pass", "how")


def test_a_figure_nobody_could_obtain_stays_failed() -> None:
    t = target("c", Measure.ENTERPRISES, Scope.PER_SECONDARY_NODE, required=100)
    observed = Observed(
        secondaries={"88.101": {Measure.ENTERPRISES: Measurement(None, "unreachable: frozen")}}
    )
    (row,) = evaluate(plan(t), observed)
    assert standing(row, day_over=False) == (Standing.BREACHED, "unreachable: frozen")
    (none,) = evaluate(plan(t), Observed())  # no secondary node at all
    assert standing(none, day_over=False) == (Standing.BREACHED, "none found")


def test_a_target_the_simulator_cannot_measure_stays_not_measured() -> None:
    t = target("a", Measure.INTEGRATED_APPLICATIONS, required=2)
    (row,) = evaluate(plan(t), Observed())
    assert standing(row, day_over=True) == (Standing.NOT_MEASURED, NOT_MEASURABLE)


def test_overall_fails_on_any_breach_else_waits_on_any_pending() -> None:
    met, fail, wait, unmeasured = (
        Standing.MET,
        Standing.BREACHED,
        Standing.PENDING,
        Standing.NOT_MEASURED,
    )
    assert overall([met, wait, fail, unmeasured]) is fail
    assert overall([met, wait, unmeasured]) is wait
    assert overall([met, unmeasured]) is met
    assert overall([]) is met


def test_the_shipped_plans_on_a_young_healthy_demo_fail_nothing() -> None:
    """Issue 19: a demo started minutes ago (the demo topology's figures) failed 12 rows
    of the default plan; none is a breach, all wait for the plan's period or the day."""
    demo = {"enterprises": 3, "registrations": 304, "resolutions": 40}
    observed = Observed(
        secondaries={
            p: {
                Measure.ENTERPRISES: Measurement(demo["enterprises"], "approved"),
                Measure.REGISTRATIONS: Measurement(demo["registrations"], "created"),
                Measure.RESOLUTIONS_PER_DAY: Measurement(demo["resolutions"], "today"),
            }
            for p in ("88.100", "88.101", "88.102")
        },
        hierarchy={
            Measure.SECONDARY_NODES: Measurement(3, "registered"),
            Measure.REGISTRATIONS: Measurement(604, "created"),
            Measure.ENTERPRISES: Measurement(7, "filed"),
            Measure.TOTAL_RESOLUTIONS: Measurement(120, "answered"),
            Measure.PUBLIC_SERVICES: Measurement(6, "offered"),
            Measure.COMMERCIAL_CRYPTOGRAPHY: Measurement(1, "SM2"),
        },
    )
    for name in SHIPPED:
        rows = evaluate(Plan.load(name), observed)
        verdicts = [standing(row, day_over=False)[0] for row in rows]
        assert Standing.BREACHED not in verdicts, (name, verdicts)
        assert overall(verdicts) is Standing.PENDING, name


# --- rendering ---------------------------------------------------------------------------


def _mixed() -> tuple[Plan, list[Row]]:
    demo = plan(
        target("e", Measure.ENTERPRISES, Scope.PER_SECONDARY_NODE, 2, quote="接入企业"),
        target("a", Measure.INTEGRATED_APPLICATIONS, Scope.PER_TOP_NODE, 2, quote="集成应用"),
        target("r", Measure.TOTAL_RESOLUTIONS, Scope.PER_TOP_NODE, 600_000, quote="解析量"),
    )
    observed = Observed(
        secondaries={"88.100": secondary(enterprises=5), "88.101": secondary(enterprises=0)},
        hierarchy={Measure.TOTAL_RESOLUTIONS: Measurement(1_234_567, "answered")},
    )
    return demo, evaluate(demo, observed)


def test_render_text() -> None:
    demo, rows = _mixed()
    text = render_text(demo, rows, 1.0)
    lines = text.splitlines()
    assert lines[0] == "demo: A demo plan (演示计划)"
    assert lines[1] == ""
    header = ["target", "subject", "required", "measured", "result", "how", "measured"]
    assert lines[2].split() == header
    body = lines[3 : 3 + len(rows)]
    assert len(body) == len(rows) == 4
    assert body[0].split()[:2] == ["e", "secondary"] and "pass" in body[0]
    assert "88.101" in body[1] and "FAIL" in body[1]
    assert "n/a" in body[2] and NOT_MEASURABLE in body[2]
    assert "600,000 units" in body[3] and "1,234,567" in body[3] and "pass" in body[3]
    assert lines[3 + len(rows)] == ""
    assert lines[-1] == "FAIL: 2 passed, 1 failed, 1 not measured"
    assert len(lines) == len(rows) + 5
    # Columns line up: every row's second column starts where the header's does.
    column = lines[2].index("subject")
    assert all(line[column - 2 : column] == "  " and line[column] != " " for line in body)


def test_render_text_pass_and_scale() -> None:
    demo, rows = _mixed()
    passing = [r for r in rows if r.passed is not False]
    text = render_text(demo, passing, 0.5)
    lines = text.splitlines()
    assert lines[0] == "demo: A demo plan (演示计划); targets scaled by 0.5"
    assert lines[-1] == "PASS: 2 passed, 0 failed, 1 not measured"
    assert len(lines) == len(passing) + 5


def test_render_markdown() -> None:
    demo, rows = _mixed()
    markdown = render_markdown(demo, rows, 1.0)
    lines = markdown.splitlines()
    assert markdown.endswith("\n")
    assert lines[0] == "# A demo plan"
    assert "演示计划" in lines[2] and "`demo.txt`" in lines[2] and "scaled" not in lines[2]
    header = "| target | subject | required | measured | result | how measured | source |"
    at = lines.index(header)
    assert lines[at + 1] == "| --- | --- | --- | --- | --- | --- | --- |"
    table = lines[at + 2 :]
    assert len(table) == len(rows)
    for line, row in zip(table, rows, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 7
        assert cells[0] == row.target.id and cells[1] == row.subject
        assert cells[-1] == row.target.quote
    assert [c.split("|")[5].strip() for c in table] == ["pass", "**FAIL**", "n/a", "pass"]
    assert "targets scaled by 0.001" in render_markdown(demo, rows, 0.001).splitlines()[2]
