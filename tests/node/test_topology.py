"""node.topology: the traced products of a topology ([[product]]), parsed and checked."""

from __future__ import annotations

import pytest

from node.embedded_redis import free_port
from node.topology import Topology, holder
from registry.errors import ConfigError
from registry.identifier import Handle
from registry.relation import links_in

HIERARCHY = """
[top]
prefix = "88"
port = 9000

[[secondary]]
prefix = "88.100"
port = 9001
industry = "automotive"

  [[secondary.enterprise]]
  name = "Car Co."
  credit_code = "91420100MA4K2B7C1Y"

  [[secondary.enterprise]]
  name = "Pack Co."
  credit_code = "91420100MA4L0D3E58"
"""

PRODUCT = """
[[product]]
name = "A car"
root = "88.100.1/car"

  [[product.identifier]]
  handle = "88.100.1/car"
  values = [{ index = 1, type = "PRODUCT_NAME", data = "car" },
            { index = 10, type = "COMPONENT", data = "88.100.2/pack" }]

  [[product.identifier]]
  handle = "88.100.2/pack"
  values = [{ index = 20, type = "COMPONENT_OF", data = "88.100.1/car" }]
"""


def parse(text: str) -> Topology:
    return Topology.parse(HIERARCHY + text, "test topology")


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as error:
        parse(text)
    return error.value.message


# --- the demo ---------------------------------------------------------------------------


def test_the_demo_ships_a_car_traced_across_three_enterprises_and_two_secondaries() -> None:
    demo = Topology.demo()
    (car,) = demo.products
    assert car.root == "88.100.1/JM-E5-2026-000123"
    by_owner = demo.traced_items(demo.enterprise_prefixes())
    assert set(by_owner) == {"88.100.1", "88.100.2", "88.100.3", "88.101.1"}
    pack = next(t for t in car.identifiers if t.handle == "88.100.2/HB75-2026-000123")
    made_from = [link.text for link in links_in(pack.values) if link.relation == "MADE_FROM"]
    assert len(made_from) >= 2 and all(t.startswith("88.101.1/") for t in made_from)
    # 88.101.1 runs its own node in the demo: the cells live there.
    optics = next(s for s in demo.secondaries if s.prefix == "88.101")
    assert optics.enterprises[0].port is not None
    # Every link of the product points at one of its identifiers (so the demo traces whole).
    handles = {Handle.parse(t.handle).key for t in car.identifiers}
    for traced in car.identifiers:
        for link in links_in(traced.values):
            assert link.target is not None and link.target.key in handles


def test_moving_ports_or_changing_samples_keeps_the_products() -> None:
    demo = Topology.demo()
    assert demo.on_ports(free_port).with_identifiers(5).products == demo.products


def test_a_topology_without_products_has_none() -> None:
    assert parse("").products == ()
    assert parse("").traced_items(["88.100.1"]) == {}


# --- parsing ----------------------------------------------------------------------------


def test_products_are_parsed_and_grouped_by_the_enterprise_holding_them() -> None:
    topology = parse(PRODUCT)
    (product,) = topology.products
    assert product.name == "A car" and product.root == "88.100.1/car"
    assert topology.enterprise_prefixes() == ["88.100.1", "88.100.2"]
    assert topology.traced_items(["88.100.1", "88.100.2"]) == {
        "88.100.1": [
            {
                "handle": "88.100.1/car",
                "values": [
                    {"index": 1, "type": "PRODUCT_NAME", "data": "car"},
                    {"index": 10, "type": "COMPONENT", "data": "88.100.2/pack"},
                ],
            }
        ],
        "88.100.2": [
            {
                "handle": "88.100.2/pack",
                "values": [{"index": 20, "type": "COMPONENT_OF", "data": "88.100.1/car"}],
            }
        ],
    }


def test_the_root_defaults_to_the_first_identifier() -> None:
    (product,) = parse(PRODUCT.replace('root = "88.100.1/car"\n', "")).products
    assert product.root == "88.100.1/car"


def test_an_identifier_no_enterprise_holds_at_run_time_is_refused() -> None:
    with pytest.raises(ConfigError, match="no enterprise holds the prefix of 88.100.2/pack"):
        parse(PRODUCT).traced_items(["88.100.1"])


def test_the_longest_prefix_holds_a_handle() -> None:
    assert holder("88.100.1.7/x", ["88.100.1", "88.100.1.7", "88.100"]) == "88.100.1.7"
    assert holder("88.100.10/x", ["88.100.1"]) is None
    assert holder("88.1/x", []) is None


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (('handle = "88.100.1/car"', 'handle = "88.100.1/"'), "the suffix is empty"),
        (('handle = "88.100.1/car"', 'handle = "88.100.3/car"'), "under no enterprise"),
        (('handle = "88.100.1/car"', 'handle = "88.101.1/car"'), "under no enterprise"),
        (('root = "88.100.1/car"', 'root = "88.100.1/other"'), "is not one of its identifiers"),
        (('name = "A car"', 'name = ""'), "name is required"),
        (("index = 20,", "index = 0,"), "'index' must be between 1"),
        (("index = 10,", "index = 1,"), "index 1 appears twice"),
        (('type = "PRODUCT_NAME", data = "car"', 'type = "PRODUCT_NAME"'), "'data'"),
        (('data = "88.100.2/pack"', 'data = "pack"'), "COMPONENT link: Invalid handle 'pack'"),
        # A misspelt key is named as such (it used to read as the values missing).
        (("values = [{ index = 20", "values_ = [{ index = 20"), "unknown key 'values_'"),
    ],
)
def test_a_wrong_product_is_refused_naming_the_entry(change: tuple[str, str], says: str) -> None:
    old, new = change
    assert old in PRODUCT
    message = refused(PRODUCT.replace(old, new, 1))
    assert message.startswith("test topology [[product]] #1")
    assert says in message


def test_a_product_needs_identifiers() -> None:
    assert "needs [[product.identifier]]" in refused('[[product]]\nname = "x"\n')


def test_an_identifier_listed_twice_is_refused() -> None:
    twice = PRODUCT + PRODUCT.replace('name = "A car"', 'name = "Again"').replace(
        '"88.100.1/car"\n  values', '"88.100.1/CAR"\n  values'
    )
    assert "a product identifier appears twice" in refused(twice)


def test_a_topology_prefix_must_follow_the_national_policy() -> None:
    text = HIERARCHY.replace('prefix = "88.100"', 'prefix = "88.T100"')
    with pytest.raises(ConfigError, match="prefix '88.T100': segment 'T100' is not ASCII digits"):
        Topology.parse(text, "test topology")


def test_a_misspelt_key_is_an_error_naming_it_and_the_known_keys() -> None:
    # Without the check, identifers = 5 left the default of 100 identifiers in force.
    text = HIERARCHY.replace('name = "Pack Co."', 'name = "Pack Co."\n  identifers = 5')
    with pytest.raises(ConfigError) as caught:
        Topology.parse(text, "t.toml")
    message = caught.value.message
    assert "enterprise #2: unknown key 'identifers' (did you mean 'identifiers'?)" in message
    assert "known keys: contact, credit_code, domain, identifiers, name, port, products" in message


@pytest.mark.parametrize(
    ("replaced", "replacement", "key"),
    [
        ("[top]\n", "[top]\nowenr = 'x'\n", "owenr"),
        ('industry = "automotive"', 'industry = "automotive"\nport_ = 1', "port_"),
        ("[top]\n", "[[recursiv]]\nport = 1\n[top]\n", "recursiv"),
        ("", "[[recursive]]\nport = 9005\nhost = 'x'\n", "host"),
        ('handle = "88.100.1/car"', 'handle = "88.100.1/car"\n  handel = "x"', "handel"),
    ],
)
def test_every_table_refuses_unknown_keys(replaced: str, replacement: str, key: str) -> None:
    text = HIERARCHY + PRODUCT
    text = text.replace(replaced, replacement, 1) if replaced else text + replacement
    with pytest.raises(ConfigError, match=f"unknown key '{key}'"):
        Topology.parse(text, "t.toml")


def test_moving_to_a_base_keeps_every_offset_from_the_top_node() -> None:
    demo = Topology.demo()
    moved = demo.moved_to(20000)
    assert moved.ports() == [port - demo.top_port + 20000 for port in demo.ports()]
    assert moved.products == demo.products
    with pytest.raises(ConfigError, match="--port-base 65530: .* must be 1 to 65525"):
        demo.moved_to(65530)
