"""Structured queries, pure: parsing conditions, what each condition probes, the driver."""

from __future__ import annotations

import math

import pytest

from registry import search
from registry.errors import InvalidValue
from registry.identifier import Prefix
from registry.query import MAX_CANDIDATES, Condition, Kind, Query, driver, page_of
from registry.search import member, score_of
from registry.template import Template

P = Prefix("88.100.2")
NOW = "2026-01-05T00:00:00Z"
PACK = Template.draft(
    Prefix("88.100"),
    "battery-pack",
    {
        "items": [
            {"name": "model", "index": 2000, "type": "string"},
            {"name": "capacity_kwh", "index": 2001, "type": "number"},
            {"name": "made_on", "index": 2002, "type": "date"},
        ]
    },
    now=NOW,
).published(NOW)


def parse(*params: tuple[str, str], template: Template | None = None) -> Query:
    return Query.parse(P, list(params), template=template, page=0, page_size=10)


def test_equality_ranges_and_controls() -> None:
    query = parse(
        ("prefix", "88.100.2"),
        ("BATCH", "B20260105-01"),
        ("capacity_kwh.min", "70"),
        ("capacity_kwh.MAX", "80"),
        ("page", "0"),
        ("pageSize", "5"),
    )
    assert query.conditions == (
        Condition("batch", Kind.EQUAL, "b20260105-01"),
        Condition("capacity_kwh", Kind.RANGE, low=70.0, high=80.0),
    )


def test_dates_are_ranges_too() -> None:
    (condition,) = parse(("PRODUCTION_DATE.max", "2026-01-31")).conditions
    assert condition.high == 20260131 and condition.low == -math.inf


def test_with_a_template_fields_must_be_items_and_numbers_compare_as_numbers() -> None:
    query = parse(("capacity_kwh", "75.0"), ("model", "HB-75"), template=PACK)
    by_field = {c.field: c for c in query.conditions}
    assert by_field["capacity_kwh"] == Condition("capacity_kwh", Kind.RANGE, low=75, high=75)
    assert by_field["model"].kind is Kind.EQUAL
    assert by_field["template"] == Condition(
        "template", Kind.TEMPLATE, "88.100/battery-pack", versions=1
    )
    with pytest.raises(InvalidValue, match="colour is not an item of template"):
        parse(("colour", "red"), template=PACK)
    with pytest.raises(InvalidValue, match="ranges apply to number and date items"):
        parse(("model.min", "A"), template=PACK)
    with pytest.raises(InvalidValue, match="is not a date"):
        parse(("made_on.min", "75"), template=PACK)


def test_a_template_alone_is_a_query() -> None:
    (condition,) = parse(template=PACK).conditions
    assert condition.kind is Kind.TEMPLATE


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ((), "at least one condition"),
        ((("prefix", "88.100.2"),), "at least one condition"),
        ((("BATCH", ""),), "has no value"),
        ((("x.min", "ten"),), "is not a number or date"),
        ((("x.min", "5"), ("x.max", "1")), "min is larger than max"),
        ((("x.min", "5"), ("x.min", "6")), "more than one min"),
        ((("x", "a\x00b"),), "NUL"),
        (tuple((f"f{n}", "v") for n in range(17)), "at most 16 conditions"),
    ],
)
def test_malformed_queries_say_why(params: tuple[tuple[str, str], ...], says: str) -> None:
    with pytest.raises(InvalidValue, match=says):
        parse(*params)


def test_probes_and_acceptance() -> None:
    equal = Condition("batch", Kind.EQUAL, "b1")
    assert equal.probes("88.100.2/a") == [member("b1", "88.100.2/a")]
    assert equal.accepts([0.0]) and not equal.accepts([None])
    ranged = Condition("capacity_kwh", Kind.RANGE, low=70, high=80)
    assert ranged.probes("88.100.2/a") == ["88.100.2/a"]
    assert ranged.accepts([70.0]) and ranged.accepts([80.0])
    assert not ranged.accepts([80.5]) and not ranged.accepts([None])
    declares = Condition("template", Kind.TEMPLATE, "88.100/pack", versions=2)
    assert declares.probes("h") == [
        member("88.100/pack", "h"),
        member("88.100/pack@1", "h"),
        member("88.100/pack@2", "h"),
    ]
    assert declares.accepts([None, 0.0, None]) and not declares.accepts([None, None, None])


def test_a_template_condition_keeps_only_that_template() -> None:
    declares = Condition("template", Kind.TEMPLATE, "88.100/pack", versions=1)
    assert declares.handle_of(member("88.100/pack", "88.100.2/a")) == "88.100.2/a"
    assert declares.handle_of(member("88.100/pack@1", "88.100.2/b")) == "88.100.2/b"
    assert declares.handle_of(member("88.100/pack-2", "88.100.2/c")) is None
    assert declares.handle_of(member("88.100/pack@x", "88.100.2/d")) is None
    low, high = declares.lex_range()
    assert low == b"[88.100/pack" and high.startswith(b"[88.100/pack")


def test_the_smallest_set_drives() -> None:
    assert driver([50, 3, 9]) == 1
    assert driver([50, 0, 9]) is None
    with pytest.raises(InvalidValue, match="add a narrower condition"):
        driver([MAX_CANDIDATES + 1, MAX_CANDIDATES + 5])


def test_scores_are_the_same_remembered_or_not() -> None:
    texts = ["75", "2026-01-05", "-3.5", "5-axis machining centre", "1e3", "2026-02-30"]
    texts.append("1" * 60)  # longer than what is remembered (and than a number)
    first = [score_of(t) for t in texts]
    assert first == [75.0, 20260105.0, -3.5, None, 1000.0, None, None]
    assert [score_of(t) for t in texts] == first
    assert len(search._TEXTS) <= search._MEMO_SIZE
    for n in range(search._MEMO_SIZE + 10):  # a flood of distinct numbers stays bounded
        assert score_of(str(n)) == n
    assert len(search._TEXTS) <= search._MEMO_SIZE
    assert "1" * 60 not in search._TEXTS


def test_scores_and_pages() -> None:
    assert score_of("75") == 75 and score_of("2026-01-05") == 20260105
    assert score_of("B20260105-01") is None
    handles = [f"h{n}" for n in range(25)]
    assert page_of(handles, 2, 10) == handles[20:]
    assert page_of(handles, 3, 10) == []
