"""Links between identifiers, for product traceability (关键产品追溯). Pure, no I/O.

A link is an ordinary handle value whose ``type`` names a relation and whose data (format
``string``) is the text of the handle it points to::

    {"index": 10, "type": "COMPONENT", "data": "88.100.2/HB75-2026-000123"}

The relations are one table, :data:`RELATIONS`; a relation type matches ASCII
case-insensitively, and a record may hold several links of one relation::

    relation       direction  this item ... that item
    COMPONENT      down       contains                   (a car its battery pack)
    MADE_FROM      down       was made from              (a pack the cells in it)
    COMPONENT_OF   up         is part of                 (a cell the pack it sits in)
    SHIPPED_IN     along      travelled in               (a car the logistic unit)

A value of a relation type whose data is not a valid handle is still a :class:`Link`,
with ``target`` None and the ``problem``: a trace shows it as an invalid link.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from registry.errors import InvalidHandle, InvalidValue
from registry.identifier import Handle


class Direction(StrEnum):
    """Which way a relation points along the product's structure."""

    DOWN = "down"  # towards parts and materials
    UP = "up"  # towards the assembly the item went into
    ALONG = "along"  # logistics: what carried the item


class Relation(StrEnum):
    COMPONENT = "COMPONENT"
    MADE_FROM = "MADE_FROM"
    COMPONENT_OF = "COMPONENT_OF"
    SHIPPED_IN = "SHIPPED_IN"

    @classmethod
    def of_type(cls, value_type: str) -> Relation | None:
        """The relation a value type names (ASCII case-insensitively), or None.

        >>> Relation.of_type("component_of"), Relation.of_type("URL")
        (<Relation.COMPONENT_OF: 'COMPONENT_OF'>, None)
        """
        return _BY_TYPE.get(value_type.upper() if value_type.isascii() else value_type)


@dataclass(frozen=True, slots=True)
class RelationInfo:
    direction: Direction
    description: str


RELATIONS: dict[Relation, RelationInfo] = {
    Relation.COMPONENT: RelationInfo(Direction.DOWN, "this item contains that one"),
    Relation.MADE_FROM: RelationInfo(
        Direction.DOWN, "this item was made from that one (material or sub-assembly)"
    ),
    Relation.COMPONENT_OF: RelationInfo(Direction.UP, "this item is part of that one"),
    Relation.SHIPPED_IN: RelationInfo(Direction.ALONG, "this item travelled in that logistic unit"),
}
ALL_RELATIONS = frozenset(Relation)
_BY_TYPE = {relation.value: relation for relation in Relation}


def parse_relations(raw: Iterable[str]) -> frozenset[Relation]:
    """The relations named in ``raw`` (each comma-separated); none named means all.

    >>> sorted(parse_relations(["made_from,COMPONENT"]))
    [<Relation.COMPONENT: 'COMPONENT'>, <Relation.MADE_FROM: 'MADE_FROM'>]
    """
    names = [name.strip() for text in raw for name in text.split(",") if name.strip()]
    if not names:
        return ALL_RELATIONS
    chosen = set()
    for name in names:
        relation = Relation.of_type(name)
        if relation is None:
            known = ", ".join(Relation)
            raise InvalidValue(f"unknown relation {name[:40]!r}; the relations are {known}")
        chosen.add(relation)
    return frozenset(chosen)


@dataclass(frozen=True, slots=True)
class Link:
    """One link value: its relation, index, the target as written and, if valid, parsed."""

    relation: Relation
    index: int | None
    text: str
    target: Handle | None
    problem: str | None = None


def links_in(values: Sequence[object]) -> list[Link]:
    """The links among a record's values (as JSON objects), in the record's order.

    Values come from other nodes, so anything unexpected is skipped or, for a relation
    value whose data is not a handle, returned as a link with a ``problem``.

    >>> [(l.relation.value, l.text) for l in links_in(
    ...     [{"index": 10, "type": "component", "data": {"format": "string", "value": "88.1/x"}},
    ...      {"index": 1, "type": "URL", "data": "https://example.cn"}])]
    [('COMPONENT', '88.1/x')]
    """
    found = []
    for value in values:
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            continue
        relation = Relation.of_type(value["type"])
        if relation is None:
            continue
        raw_index = value.get("index")
        index = raw_index if type(raw_index) is int else None
        found.append(_link(relation, index, value.get("data")))
    return found


def _link(relation: Relation, index: int | None, data: object) -> Link:
    fmt, text = value_data(data)
    if fmt != "string" or not isinstance(text, str):
        shown = text if isinstance(text, str) else ""
        return Link(relation, index, shown, None, "a link's data must be a handle (format string)")
    try:
        return Link(relation, index, text, Handle.parse(text))
    except InvalidHandle as exc:
        return Link(relation, index, text, None, exc.message)


def value_data(data: object) -> tuple[object, object]:
    """The format and value of a value's ``data`` as JSON; a bare string is format string.

    >>> value_data("88.1/x"), value_data({"format": "hex", "value": "0a"}), value_data(7)
    (('string', '88.1/x'), ('hex', '0a'), (None, None))
    """
    if isinstance(data, str):
        return "string", data
    if not isinstance(data, dict):
        return None, None
    return data.get("format", "string"), data.get("value")
