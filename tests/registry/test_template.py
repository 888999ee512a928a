"""Metadata templates, pure: items, validation of identifiers, versions."""

from __future__ import annotations

from typing import Any

import pytest

from registry.errors import InvalidValue, TemplateConflict, TemplateViolation
from registry.identifier import Identity, Prefix
from registry.limits import Limits
from registry.template import (
    Item,
    ItemType,
    State,
    Template,
    TemplateRef,
    declared,
    may_administer,
    parse_date,
    parse_number,
)
from registry.value import HandleValue

NOW = "2026-01-05T00:00:00Z"
PACK = Prefix("88.100")

ITEMS: list[dict[str, Any]] = [
    {"name": "model", "index": 2000, "type": "string", "required": True, "maxLength": 12},
    {
        "name": "capacity_kwh",
        "index": 2001,
        "type": "number",
        "required": True,
        "minimum": 10,
        "maximum": 150,
    },
    {
        "name": "made_on",
        "index": 2002,
        "type": "date",
        "minimum": "2020-01-01",
        "maximum": "2030-12-31",
    },
    {"name": "datasheet", "index": 2003, "type": "url"},
    {"name": "cell", "index": 2004, "type": "handle"},
    {"name": "serial", "index": 2005, "type": "string", "minLength": 6},
]


def template(items: list[dict[str, Any]] | None = None) -> Template:
    return Template.draft(PACK, "battery-pack", {"items": items or ITEMS}, now=NOW)


def value(index: int, type_: str, data: str) -> HandleValue:
    return HandleValue.from_input(
        {"index": index, "type": type_, "data": data}, now=NOW, limits=Limits()
    )


def good() -> list[HandleValue]:
    return [
        value(1, "URL", "https://example.cn/p/1"),
        value(2, "TEMPLATE", "88.100/battery-pack"),
        value(2000, "model", "HB-75"),
        value(2001, "capacity_kwh", "75"),
        value(2002, "made_on", "2026-01-05"),
        value(2003, "datasheet", "https://example.cn/hb75.pdf"),
        value(2004, "cell", "88.101.1/cell-0001"),
        value(2005, "serial", "SN-000123"),
    ]


def replaced(values: list[HandleValue], index: int, data: str) -> list[HandleValue]:
    return [value(v.index, v.type, data) if v.index == index else v for v in values]


def fields(t: Template, values: list[HandleValue]) -> dict[str, str]:
    return {v.field: v.message for v in t.violations(values)}


# --- validation of identifiers -----------------------------------------------------------


def test_a_complete_record_satisfies_the_template() -> None:
    assert template().violations(good()) == []
    template().check(good(), "88.100.2/x")  # does not raise


def test_a_missing_required_item_is_named() -> None:
    values = [v for v in good() if v.index != 2001]
    assert fields(template(), values) == {"capacity_kwh": "is required (index 2001, number)"}


def test_a_missing_optional_item_is_fine() -> None:
    values = [v for v in good() if v.index != 2003]
    assert template().violations(values) == []


@pytest.mark.parametrize(
    ("index", "data", "field", "says"),
    [
        (2001, "seventy", "capacity_kwh", "must be a number"),
        (2001, "5", "capacity_kwh", "must be at least 10"),
        (2001, "150.5", "capacity_kwh", "must be at most 150"),
        (2001, "nan", "capacity_kwh", "must be a number"),
        (2001, "0x1f", "capacity_kwh", "must be a number"),
        (2002, "05/01/2026", "made_on", "must be a date YYYY-MM-DD"),
        (2002, "2026-02-30", "made_on", "must be a date YYYY-MM-DD"),
        (2002, "2019-12-31", "made_on", "must be on or after 2020-01-01"),
        (2002, "2031-01-01", "made_on", "must be on or before 2030-12-31"),
        (2003, "ftp://example.cn/x", "datasheet", "absolute http(s) URL"),
        (2003, "https://", "datasheet", "absolute http(s) URL"),
        (2004, "no-slash", "cell", "must be an identifier"),
        (2000, "HB-75-EXTENDED-MODEL", "model", "at most 12 characters"),
        (2005, "SN-1", "serial", "at least 6 characters"),
    ],
)
def test_each_kind_of_violation_names_its_field(
    index: int, data: str, field: str, says: str
) -> None:
    found = fields(template(), replaced(good(), index, data))
    assert list(found) == [field]
    assert says in found[field]


def test_every_violation_is_reported_at_once_in_index_order() -> None:
    values = replaced(replaced(good(), 2001, "x"), 2003, "nope")
    values = [v for v in values if v.index != 2000]
    with pytest.raises(TemplateViolation) as caught:
        template().check(values, "88.100.2/x")
    error = caught.value
    assert [v["field"] for v in error.violations] == ["model", "capacity_kwh", "datasheet"]
    body = error.body()
    assert body["responseCode"] == 202 and body["handle"] == "88.100.2/x"
    assert body["errors"] == error.violations
    assert "model" in error.message and "datasheet" in error.message


def test_a_value_of_another_type_at_an_items_index_is_refused() -> None:
    values = [v if v.index != 2001 else value(2001, "weight_kg", "75") for v in good()]
    found = fields(template(), values)
    assert "weight_kg" not in found and "type 'weight_kg'" in found["capacity_kwh"]


def test_item_names_match_value_types_case_insensitively() -> None:
    values = [v if v.index != 2001 else value(2001, "CAPACITY_KWH", "75") for v in good()]
    assert template().violations(values) == []


def test_a_stray_value_in_the_template_range_is_refused_but_low_indexes_are_free() -> None:
    values = [*good(), value(2099, "colour", "red"), value(7, "NOTE", "anything")]
    found = fields(template(), values)
    assert list(found) == ["colour"]
    assert "2099 is not an item of template 88.100/battery-pack@1" in found["colour"]


def test_a_non_string_value_at_an_item_is_refused() -> None:
    values = [v for v in good() if v.index != 2000]
    values.append(
        HandleValue.from_input(
            {"index": 2000, "type": "model", "data": {"format": "hex", "value": "ab"}},
            now=NOW,
            limits=Limits(),
        )
    )
    assert "must be a string value" in fields(template(), values)["model"]


def test_a_disabled_item_is_neither_required_nor_checked() -> None:
    items = [dict(i) for i in ITEMS]
    items[1] = {**items[1], "enabled": False}  # capacity_kwh
    t = template(items)
    assert t.violations([v for v in good() if v.index != 2001]) == []
    assert t.violations(replaced(good(), 2001, "not a number")) == []


# --- templates themselves ----------------------------------------------------------------


def test_a_draft_is_version_1_sorted_by_index() -> None:
    t = template(list(reversed(ITEMS)))
    assert (t.version, t.state) == (1, State.DRAFT)
    assert [i.index for i in t.items] == [2000, 2001, 2002, 2003, 2004, 2005]
    assert t.item_named("CAPACITY_KWH") == t.item_at(2001)


def test_json_round_trip() -> None:
    t = template().published(NOW)
    again = Template.from_json(t.to_json())
    assert again == t
    assert t.to_json()["template"] == "88.100/battery-pack"
    capacity = t.to_json()["items"][1]
    assert capacity == {
        "name": "capacity_kwh",
        "index": 2001,
        "type": "number",
        "required": True,
        "enabled": True,
        "minimum": 10,
        "maximum": 150,
    }


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "non-empty list of 'items'"),
        ({"items": []}, "non-empty list of 'items'"),
        ([], "a template is"),
        ({"items": [{"name": "a", "index": 1999, "type": "string"}]}, "2000 or more"),
        ({"items": [{"name": "a", "index": "2000", "type": "string"}]}, "must be an integer"),
        ({"items": [{"name": "a", "index": True, "type": "string"}]}, "must be an integer"),
        ({"items": [{"name": "a", "index": 2000, "type": "text"}]}, "'type' must be one of"),
        ({"items": [{"name": "", "index": 2000, "type": "string"}]}, "'name' must be"),
        ({"items": [{"name": "a b", "index": 2000, "type": "string"}]}, "'name' must be"),
        ({"items": ["a"]}, "an item is an object"),
        (
            {"items": [{"name": "a", "index": 2000, "type": "string", "minimum": 1}]},
            "number and date items only",
        ),
        (
            {"items": [{"name": "a", "index": 2000, "type": "number", "minimum": "1"}]},
            "must be a number",
        ),
        (
            {"items": [{"name": "a", "index": 2000, "type": "date", "maximum": "tomorrow"}]},
            "must be a date",
        ),
        (
            {"items": [{"name": "a", "index": 2000, "type": "number", "minimum": 5, "maximum": 1}]},
            "'minimum' is larger",
        ),
        (
            {
                "items": [
                    {"name": "a", "index": 2000, "type": "string", "minLength": 5, "maxLength": 1}
                ]
            },
            "'minLength' is larger",
        ),
        (
            {"items": [{"name": "a", "index": 2000, "type": "string", "required": "yes"}]},
            "true or false",
        ),
        (
            {
                "items": [
                    {"name": "a", "index": 2000, "type": "string"},
                    {"name": "b", "index": 2000, "type": "string"},
                ]
            },
            "two items use index 2000",
        ),
        (
            {
                "items": [
                    {"name": "a", "index": 2000, "type": "string"},
                    {"name": "A", "index": 2001, "type": "string"},
                ]
            },
            "two items are named A",
        ),
        (
            {"description": 5, "items": [{"name": "a", "index": 2000, "type": "string"}]},
            "'description'",
        ),
    ],
)
def test_malformed_templates_are_refused_with_a_reason(body: object, says: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        Template.draft(PACK, "t", body, now=NOW)
    assert says in caught.value.message


def test_the_next_draft_may_add_disable_and_change_limits() -> None:
    v1 = template().published(NOW)
    items = [dict(i) for i in ITEMS]
    items[1] = {**items[1], "maximum": 200, "required": False}
    items[5] = {**items[5], "enabled": False}
    items.append({"name": "chemistry", "index": 2006, "type": "string"})
    v2 = Template.draft(PACK, "battery-pack", {"items": items}, now=NOW, previous=v1)
    assert (v2.version, v2.state) == (2, State.DRAFT)
    assert len(v2.items) == 7


def test_a_published_item_cannot_be_deleted() -> None:
    v1 = template().published(NOW)
    without_serial = [i for i in ITEMS if i["name"] != "serial"]
    with pytest.raises(TemplateConflict) as caught:
        Template.draft(PACK, "battery-pack", {"items": without_serial}, now=NOW, previous=v1)
    assert "serial" in caught.value.message and "cannot be deleted" in caught.value.message
    assert caught.value.http_status == 409


@pytest.mark.parametrize(
    "change", [{"index": 2010}, {"type": "string"}], ids=["moved index", "changed type"]
)
def test_a_published_item_keeps_its_index_and_type(change: dict[str, Any]) -> None:
    v1 = template().published(NOW)
    items = [dict(i) for i in ITEMS]
    items[1] = {**items[1], **change}
    items[1].pop("minimum"), items[1].pop("maximum")
    with pytest.raises(TemplateConflict, match="capacity_kwh keeps index 2001 and type number"):
        Template.draft(PACK, "battery-pack", {"items": items}, now=NOW, previous=v1)


# --- references, parsing helpers, permissions -------------------------------------------


def test_template_references() -> None:
    assert TemplateRef.parse("88.100/battery-pack").version is None
    ref = TemplateRef.parse(" 88.100.2/Cell@12 ")
    assert (ref.prefix, ref.name, ref.version) == (Prefix("88.100.2"), "Cell", 12)
    assert ref.text == "88.100.2/Cell@12" and ref.key == "88.100.2/cell"
    for bad in ("battery-pack", "88.100/", "88.x/a", "88.100/a@0", "88.100/a@v2", "88.100/a b"):
        with pytest.raises(InvalidValue):
            TemplateRef.parse(bad)


def test_declared_templates_come_from_template_values() -> None:
    values = [value(1, "URL", "https://x.cn"), value(3, "template", "88.100/a@2")]
    assert declared(values) == [TemplateRef(Prefix("88.100"), "a", 2)]
    with pytest.raises(InvalidValue, match="value at index 3"):
        declared([value(3, "TEMPLATE", "not a template")])


def test_numbers_and_dates() -> None:
    assert parse_number("75") == 75 and parse_number("-3.5") == -3.5
    assert parse_number("1e3") == 1000
    assert parse_number("0") == 0 and parse_number("10.25E-3") == 0.01025
    for bad in ("", "1.", ".5", "01", "1e999", "inf", "NaN", "1_000", "٣", "2026-01-05"):
        assert parse_number(bad) is None, bad
    for near_miss in ("1e", "1e+", "-", "12a", "1.5.2", "1-2"):
        assert parse_number(near_miss) is None, near_miss
    assert parse_date("2026-01-05") is not None
    for bad in ("2026-1-5", "2026-02-30", "20260105", "２０２６-01-05"):
        assert parse_date(bad) is None, bad


def test_administrators_of_the_prefix_or_above_may_write_templates() -> None:
    assert may_administer(Identity.parse("300:0.NA/88.100"), Prefix("88.100"))
    assert may_administer(Identity.parse("300:0.NA/88"), Prefix("88.100.2"))
    assert may_administer(Identity.parse("300:0.NA/88.100.2"), Prefix("88.100.2"))
    assert not may_administer(Identity.parse("300:0.NA/88.100.2"), Prefix("88.100"))
    assert not may_administer(Identity.parse("300:0.NA/88.101"), Prefix("88.100.2"))
    assert not may_administer(Identity.parse("300:88.100.2/users/alice"), Prefix("88.100.2"))


def test_item_types_are_the_five_the_issue_names() -> None:
    assert {t.value for t in ItemType} == {"string", "number", "date", "url", "handle"}
    item = Item.from_json({"name": "a", "index": 2000, "type": "handle"})
    assert item.type is ItemType.HANDLE and item.enabled and not item.required


def test_queryable_items_are_declared_per_item_and_kept() -> None:
    t = Template.draft(
        Prefix("88.100"),
        "pack",
        {
            "items": [
                {"name": "BATCH", "index": 2000, "type": "string", "queryable": True},
                {"name": "colour", "index": 2001, "type": "string"},
                {
                    "name": "old",
                    "index": 2002,
                    "type": "string",
                    "queryable": True,
                    "enabled": False,
                },
            ]
        },
        now="2026-01-05T00:00:00Z",
    )
    assert t.queryable_types == frozenset({"batch"})  # a disabled item is not indexed
    assert t.items[0].to_json()["queryable"] is True
    assert "queryable" not in t.items[1].to_json()
    assert Item.from_json(t.items[0].to_json()).queryable
