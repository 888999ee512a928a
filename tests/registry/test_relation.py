"""registry.relation: the relation table, the relations a trace follows, and link values."""

from __future__ import annotations

import pytest

from registry.errors import InvalidValue
from registry.identifier import Handle
from registry.relation import (
    ALL_RELATIONS,
    RELATIONS,
    Direction,
    Link,
    Relation,
    links_in,
    parse_relations,
    value_data,
)


def link_value(relation: str, data: object, index: object = 10) -> dict[str, object]:
    return {"index": index, "type": relation, "data": data}


# --- the table --------------------------------------------------------------------------


def test_every_relation_is_in_the_table_with_a_direction_and_a_description() -> None:
    assert set(RELATIONS) == set(Relation) == ALL_RELATIONS
    assert {r.value for r in Relation} == {"COMPONENT", "MADE_FROM", "COMPONENT_OF", "SHIPPED_IN"}
    assert RELATIONS[Relation.COMPONENT].direction is Direction.DOWN
    assert RELATIONS[Relation.MADE_FROM].direction is Direction.DOWN
    assert RELATIONS[Relation.COMPONENT_OF].direction is Direction.UP
    assert RELATIONS[Relation.SHIPPED_IN].direction is Direction.ALONG
    assert all(info.description for info in RELATIONS.values())


@pytest.mark.parametrize("spelled", ["COMPONENT_OF", "component_of", "Component_Of"])
def test_relation_types_match_ascii_case_insensitively(spelled: str) -> None:
    assert Relation.of_type(spelled) is Relation.COMPONENT_OF


@pytest.mark.parametrize(
    "other", ["URL", "COMPONENTS", "COMPONENT OF", "", "ＣＯＭＰＯＮＥＮＴ", "shıpped_ın"]
)
def test_other_types_are_no_relation(other: str) -> None:
    # Handle's matching folds ASCII letters only: full-width letters, and the dotless ı
    # that Python's str.upper() would turn into I, stay what they are.
    assert Relation.of_type(other) is None


# --- which relations a trace follows ------------------------------------------------------


def test_no_relations_named_means_all() -> None:
    assert parse_relations([]) == ALL_RELATIONS
    assert parse_relations([""]) == ALL_RELATIONS
    assert parse_relations([" , "]) == ALL_RELATIONS


def test_relations_may_be_comma_separated_repeated_and_any_case() -> None:
    chosen = parse_relations(["component, made_from", "SHIPPED_IN", "component"])
    assert chosen == {Relation.COMPONENT, Relation.MADE_FROM, Relation.SHIPPED_IN}


def test_an_unknown_relation_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(InvalidValue) as refused:
        parse_relations(["COMPONENT,PART_OF"])
    assert refused.value.response_code == 202 and refused.value.http_status == 400
    assert "'PART_OF'" in refused.value.message
    assert "COMPONENT, MADE_FROM, COMPONENT_OF, SHIPPED_IN" in refused.value.message


# --- links among a record's values ------------------------------------------------------


def test_links_are_found_in_record_order_with_their_index() -> None:
    values = [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://x.cn"}},
        link_value("MADE_FROM", {"format": "string", "value": "88.101.1/cell-2"}, 11),
        link_value("made_from", "88.101.1/cell-1", 10),
        link_value("COMPONENT_OF", "88.100.1/car", 20),
    ]
    assert links_in(values) == [
        Link(Relation.MADE_FROM, 11, "88.101.1/cell-2", Handle.parse("88.101.1/cell-2")),
        Link(Relation.MADE_FROM, 10, "88.101.1/cell-1", Handle.parse("88.101.1/cell-1")),
        Link(Relation.COMPONENT_OF, 20, "88.100.1/car", Handle.parse("88.100.1/car")),
    ]


def test_a_link_keeps_the_spelling_of_its_target() -> None:
    (link,) = links_in([link_value("COMPONENT", "88.100.2/HB75-X")])
    assert link.text == "88.100.2/HB75-X"
    assert link.target is not None and link.target.key == "88.100.2/hb75-x"


@pytest.mark.parametrize(
    ("data", "text", "problem"),
    [
        ("not a handle", "not a handle", "expected prefix/suffix"),
        ("88..x/a", "88..x/a", "empty segment"),
        ("88.100/", "88.100/", "the suffix is empty"),
        ({"format": "hex", "value": "0a0b"}, "0a0b", "must be a handle (format string)"),
        ({"format": "string", "value": 7}, "", "must be a handle (format string)"),
        (None, "", "must be a handle (format string)"),
    ],
)
def test_a_relation_value_that_names_no_handle_is_an_invalid_link(
    data: object, text: str, problem: str
) -> None:
    (link,) = links_in([link_value("COMPONENT", data)])
    assert link.relation is Relation.COMPONENT and link.target is None
    assert link.text == text
    assert link.problem is not None and problem in link.problem


def test_values_that_are_not_objects_or_lack_a_type_are_skipped() -> None:
    values: list[object] = [
        "COMPONENT",
        None,
        {"index": 1, "data": "88.1/x"},
        {"index": 2, "type": 5, "data": "88.1/x"},
    ]
    assert links_in(values) == []


@pytest.mark.parametrize("index", ["10", None, True, 1.5])
def test_an_index_that_is_not_an_integer_is_left_out(index: object) -> None:
    (link,) = links_in([link_value("SHIPPED_IN", "88.100.1/LU-1", index)])
    assert link.index is None and link.target == Handle.parse("88.100.1/LU-1")


def test_value_data_reads_bare_strings_and_objects() -> None:
    assert value_data("88.1/x") == ("string", "88.1/x")
    assert value_data({"value": "88.1/x"}) == ("string", "88.1/x")
    assert value_data({"format": "base64", "value": "AA=="}) == ("base64", "AA==")
    assert value_data(["88.1/x"]) == (None, None)
