"""``loadtest.check.observed_from``: the top node's answers turned into measurements (pure),
and a whole judgement of them against the Wuhan 5G plan."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from loadtest.check import PUBLIC_SERVICES, node_observed, observed_from
from loadtest.plan import NOT_MEASURABLE, Measure, Measurement, Plan, evaluate, failed, render_text
from registry.errors import ConfigError

DAY = "20240305"
SECONDARY_MEASURES = (Measure.ENTERPRISES, Measure.REGISTRATIONS, Measure.RESOLUTIONS_PER_DAY)


def own(
    prefix: str,
    role: str = "secondary",
    *,
    resolutions: int = 0,
    registrations: int = 0,
    total_resolutions: int = 0,
    total_registrations: int = 0,
    enterprises: int = 0,
    peak: int = 0,
) -> dict[str, Any]:
    """One node's ``/api/kpis`` answer, as ``node.kpis.own_kpis`` builds it."""
    return {
        "responseCode": 1,
        "node": f"node-{prefix}",
        "role": role,
        "prefix": prefix,
        "url": f"http://{prefix}.example:8000",
        "day": DAY,
        "resolutions": resolutions,
        "registrations": registrations,
        "peakPerSecond": peak,
        "totalResolutions": total_resolutions,
        "totalRegistrations": total_registrations,
        "enterprises": enterprises,
    }


def national_answer() -> dict[str, Any]:
    """What ``GET /api/kpis/national`` answers at a top node 88 with three secondaries,
    one of which could not be asked."""
    secondaries = [
        own(
            "88.100",
            resolutions=75,
            registrations=40,
            total_resolutions=900,
            total_registrations=25_000,
            enterprises=3,
            peak=12,
        ),
        own(
            "88.101",
            resolutions=10,
            registrations=2,
            total_resolutions=50,
            total_registrations=4_000,
            enterprises=0,
            peak=3,
        ),
    ]
    summed = ("resolutions", "registrations", "totalResolutions", "totalRegistrations")
    totals = {name: sum(s[name] for s in secondaries) for name in summed}
    totals["enterprises"] = sum(s["enterprises"] for s in secondaries)
    totals["peakPerSecond"] = max(s["peakPerSecond"] for s in secondaries)
    return {
        "responseCode": 1,
        "day": DAY,
        "top": own(
            "88",
            "top",
            resolutions=7,
            registrations=1,
            total_resolutions=123_456,
            total_registrations=5,
        ),
        "secondaries": secondaries,
        "unreachable": [
            {
                "prefix": "88.102",
                "url": "http://127.0.0.1:1",
                "message": "Upstream node http://127.0.0.1:1 unavailable: connection refused",
            }
        ],
        "totals": totals,
        "secondaryNodes": 3,
        "enterprisePrefixes": 4,
    }


def operation(summary: str) -> dict[str, Any]:
    return {"summary": summary, "responses": {"200": {"description": "OK"}}}


def schema() -> dict[str, Any]:
    """An OpenAPI document like the top node's, with some services missing: searching
    (``/hrls/handles``) is absent and ``/api/prefixes/{prefix}`` only reads (no filing)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "idnode", "version": "0.1.0"},
        "paths": {
            "/api/handles/{handle}": {
                "get": operation("Resolve a handle"),
                "put": operation("Create or update a handle"),
                "delete": operation("Delete a handle"),
            },
            "/api/handles": {"get": operation("List handles")},
            "/api/sessions": {"post": operation("Log in"), "delete": operation("Log out")},
            "/api/sessions/challenge": {"post": operation("A login challenge")},
            "/api/prefixes": {"get": operation("List prefixes")},
            "/api/prefixes/{prefix}": {"get": operation("A prefix")},
            "/api/kpis": {"get": operation("KPIs")},
            "/api/kpis/national": {"get": operation("National KPIs")},
        },
    }


def full_schema() -> dict[str, Any]:
    raw = schema()
    raw["paths"]["/hrls/handles"] = {"get": operation("Search")}
    raw["paths"]["/api/prefixes/{prefix}"]["put"] = operation("File a prefix")
    return raw


# --- per secondary node --------------------------------------------------------------------


def test_reached_secondaries() -> None:
    observed = observed_from(national_answer(), schema())
    assert sorted(observed.secondaries) == ["88.100", "88.101", "88.102"]
    assert observed.secondaries["88.100"] == {
        Measure.ENTERPRISES: Measurement(3, "approved at the node"),
        Measure.REGISTRATIONS: Measurement(25_000, "identifiers created at the node"),
        Measure.RESOLUTIONS_PER_DAY: Measurement(75, f"resolutions answered on {DAY} (UTC)"),
    }
    figures = observed.secondaries["88.101"]
    assert [figures[m].value for m in SECONDARY_MEASURES] == [0, 4_000, 10]


def test_registrations_are_the_nodes_total_and_resolutions_the_days() -> None:
    """The plans count new identifiers since the node began, and resolutions per day."""
    answer = national_answer()
    answer["secondaries"][0].update(registrations=1, totalResolutions=10**9)
    figures = observed_from(answer, schema()).secondaries["88.100"]
    assert figures[Measure.REGISTRATIONS].value == 25_000
    assert figures[Measure.RESOLUTIONS_PER_DAY].value == 75


def test_unreachable_secondaries_have_no_values() -> None:
    observed = observed_from(national_answer(), schema())
    figures = observed.secondaries["88.102"]
    assert set(figures) == set(SECONDARY_MEASURES)
    for measurement in figures.values():
        assert measurement.value is None
        assert measurement.how.startswith("unreachable:")
        assert "connection refused" in measurement.how


def test_day_is_named_in_how_resolutions_were_measured() -> None:
    answer = national_answer()
    answer["day"] = "19991231"
    figures = observed_from(answer, schema()).secondaries["88.100"]
    assert figures[Measure.RESOLUTIONS_PER_DAY].how == "resolutions answered on 19991231 (UTC)"


def test_no_secondaries() -> None:
    answer = national_answer()
    answer.update(secondaries=[], unreachable=[], secondaryNodes=0)
    answer["totals"] = dict.fromkeys(answer["totals"], 0)
    observed = observed_from(answer, schema())
    assert observed.secondaries == {}
    assert observed.hierarchy[Measure.SECONDARY_NODES].value == 0
    assert observed.hierarchy[Measure.REGISTRATIONS].value == 5


# --- the hierarchy --------------------------------------------------------------------------


def test_hierarchy_figures() -> None:
    hierarchy = observed_from(national_answer(), schema()).hierarchy
    assert hierarchy[Measure.SECONDARY_NODES] == Measurement(
        3, "secondary nodes registered at the top node"
    )
    # Every node's identifiers: those of the secondaries that answered and the top's own.
    assert hierarchy[Measure.REGISTRATIONS] == Measurement(
        25_000 + 4_000 + 5, "identifiers created at every node"
    )
    assert hierarchy[Measure.ENTERPRISES] == Measurement(
        4, "enterprise prefixes filed at the top node"
    )
    assert hierarchy[Measure.TOTAL_RESOLUTIONS] == Measurement(
        123_456, "resolutions answered by the top node"
    )
    assert Measure.NATIONAL_RANK not in hierarchy
    assert Measure.INTEGRATED_APPLICATIONS not in hierarchy


def test_public_services_counts_only_offered_method_and_path() -> None:
    measured = observed_from(national_answer(), schema()).hierarchy[Measure.PUBLIC_SERVICES]
    assert measured.value == 4
    assert (
        measured.how == "offered by the top node: registration, resolution, query, authentication"
    )


def test_public_services_all_six() -> None:
    measured = observed_from(national_answer(), full_schema()).hierarchy[Measure.PUBLIC_SERVICES]
    assert measured.value == 6 == len(PUBLIC_SERVICES)
    assert measured.how == (
        "offered by the top node: registration, resolution, query, search, filing, authentication"
    )


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        pytest.param({}, 0, id="no-paths"),
        # The path alone is not enough: the method must be there.
        pytest.param({"/api/handles/{handle}": {"get": {}}}, 1, id="resolution-only"),
        pytest.param({"/api/sessions": {"delete": {}}}, 0, id="logout-is-not-login"),
        pytest.param({"/hrls/handles": {"post": {}}}, 0, id="wrong-method"),
        pytest.param({"/api/handles/{handle}/": {"get": {}, "put": {}}}, 0, id="other-path"),
        pytest.param({"/api/prefixes/{prefix}": {"put": {}}}, 1, id="filing-only"),
    ],
)
def test_public_services_method_and_path(paths: dict[str, Any], expected: int) -> None:
    measured = observed_from(national_answer(), {"paths": paths}).hierarchy[Measure.PUBLIC_SERVICES]
    assert measured.value == expected
    if not expected:
        assert measured.how == "offered by the top node: none"


def test_public_services_without_paths_at_all() -> None:
    hierarchy = observed_from(national_answer(), {"openapi": "3.1.0"}).hierarchy
    assert hierarchy[Measure.PUBLIC_SERVICES].value == 0
    assert hierarchy[Measure.COMMERCIAL_CRYPTOGRAPHY].value == 0


def test_commercial_cryptography_from_the_challenge_login() -> None:
    offered = observed_from(national_answer(), schema()).hierarchy
    assert offered[Measure.COMMERCIAL_CRYPTOGRAPHY] == Measurement(
        1, "SM2/SM3 challenge login offered by the top node"
    )
    without = schema()
    del without["paths"]["/api/sessions/challenge"]
    assert (
        observed_from(national_answer(), without).hierarchy[Measure.COMMERCIAL_CRYPTOGRAPHY].value
        == 0
    )
    # Password login alone is not commercial cryptography.
    assert "/api/sessions" in without["paths"]


def test_observed_from_does_not_change_its_inputs() -> None:
    answer, paths = national_answer(), schema()
    before = copy.deepcopy((answer, paths))
    observed_from(answer, paths)
    assert (answer, paths) == before


# --- judged against the Wuhan 5G plan ------------------------------------------------------


def test_wuhan_5g_end_to_end() -> None:
    """Scaled by 1/10,000 the plan asks each secondary node for 0.01 enterprises, 10,000
    identifiers and 60 resolutions a day, and the city for 0.0015 secondary nodes,
    1,000,000 identifiers and 0.2 enterprises."""
    wuhan = Plan.load("wuhan-5g-2021")
    rows = evaluate(wuhan, observed_from(national_answer(), schema()), scale=1e-4)
    table = {(r.target.id, r.subject): (r.required, r.measured, r.passed) for r in rows}
    assert table == {
        ("secondary-new-enterprises", "secondary 88.100"): (0.01, 3, True),
        ("secondary-new-enterprises", "secondary 88.101"): (0.01, 0, False),
        ("secondary-new-enterprises", "secondary 88.102"): (0.01, None, False),
        ("secondary-new-registrations", "secondary 88.100"): (10_000, 25_000, True),
        ("secondary-new-registrations", "secondary 88.101"): (10_000, 4_000, False),
        ("secondary-new-registrations", "secondary 88.102"): (10_000, None, False),
        ("secondary-daily-resolutions", "secondary 88.100"): (60, 75, True),
        ("secondary-daily-resolutions", "secondary 88.101"): (60, 10, False),
        ("secondary-daily-resolutions", "secondary 88.102"): (60, None, False),
        ("secondary-applications", "secondary 88.100"): (0.0002, None, None),
        ("secondary-applications", "secondary 88.101"): (0.0002, None, None),
        ("secondary-applications", "secondary 88.102"): (0.0002, None, None),
        ("city-secondary-nodes", "hierarchy"): (0.0015, 3, True),
        ("city-registrations", "hierarchy"): (1_000_000, 29_005, False),
        ("city-enterprises", "hierarchy"): (0.2, 4, True),
    }
    assert len(rows) == len(table)
    # Rows follow the plan's targets, secondaries in prefix order within each.
    assert [r.subject for r in rows[:3]] == [
        "secondary 88.100",
        "secondary 88.101",
        "secondary 88.102",
    ]
    unreachable = [r for r in rows if r.subject == "secondary 88.102" and r.passed is False]
    assert len(unreachable) == 3 and all(r.how.startswith("unreachable:") for r in unreachable)
    assert all(r.how == NOT_MEASURABLE for r in rows if r.passed is None)
    assert failed(rows)
    assert render_text(wuhan, rows, 1e-4).splitlines()[-1] == (
        "FAIL: 5 passed, 7 failed, 3 not measured"
    )


def test_wuhan_5g_passes_when_every_secondary_answers_and_meets_the_scaled_targets() -> None:
    answer = national_answer()
    answer["secondaries"] = answer["secondaries"][:1]
    answer["unreachable"] = []
    answer["secondaryNodes"] = 1
    answer["top"]["totalRegistrations"] = 1_000_000
    rows = evaluate(Plan.load("wuhan-5g-2021"), observed_from(answer, schema()), scale=1e-4)
    assert not failed(rows)
    assert {r.passed for r in rows} == {True, None}
    # At full scale the same hierarchy is far from the plan.
    full = evaluate(Plan.load("wuhan-5g-2021"), observed_from(answer, schema()))
    assert [r.target.id for r in full if r.passed is False] == [
        "secondary-new-enterprises",
        "secondary-new-registrations",
        "secondary-daily-resolutions",
        "city-secondary-nodes",
        "city-registrations",
        "city-enterprises",
    ]


def test_a_tiny_scale_shows_the_scaled_targets_significant_digits() -> None:
    """Scaled by 0.00001 the Wuhan plan asks each secondary for 0.001 enterprises: shown
    as such, not as "0.00 enterprises" (a target nobody can read)."""
    wuhan = Plan.load("wuhan-5g-2021")
    rows = evaluate(wuhan, observed_from(national_answer(), schema()), scale=1e-5)
    text = render_text(wuhan, rows, 1e-5)
    assert "0.00 " not in text
    assert "0.001 enterprises" in text
    assert "0.00002 " in text  # the applications target, 2 x 0.00001


def node_answer(role: str = "secondary") -> dict[str, Any]:
    """A secondary node's own ``/api/kpis`` answer, as ``idnode check --node`` reads it."""
    return {
        "responseCode": 1,
        "node": "secondary-88.100",
        "role": role,
        "prefix": "88.100",
        "day": "20261205",
        "resolutions": 12,
        "registrations": 3,
        "totalRegistrations": 100_000_000,
        "enterprises": 4,
    }


def test_one_node_is_measured_by_its_own_kpis() -> None:
    observed = node_observed(node_answer())
    assert observed.secondaries == {
        "88.100": {
            Measure.ENTERPRISES: Measurement(4, "approved at the node"),
            Measure.REGISTRATIONS: Measurement(100_000_000, "identifiers created at the node"),
            Measure.RESOLUTIONS_PER_DAY: Measurement(12, "resolutions answered on 20261205 (UTC)"),
        }
    }
    rows = evaluate(Plan.load("wuhan-5g-2021"), observed)
    registrations = next(r for r in rows if r.target.id == "secondary-new-registrations")
    assert registrations.passed is True and registrations.measured == 100_000_000
    hierarchy = [r for r in rows if r.subject == "hierarchy"]
    assert hierarchy and all(r.passed is None for r in hierarchy)
    assert all("one secondary node checked" in r.how for r in hierarchy)


def test_only_a_secondary_node_can_be_checked_alone() -> None:
    with pytest.raises(ConfigError, match="--node must be a secondary node"):
        node_observed(node_answer(role="top"))
