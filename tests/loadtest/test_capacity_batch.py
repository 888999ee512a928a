"""``loadtest.capacity_batch``: the items the batch-registration load posts are what a node
accepts (checked with the registry's own parsers; no node needed)."""

from __future__ import annotations

import orjson
import pytest

from loadtest.capacity_batch import BATCH, batch_body, batch_items, handle_name
from registry.identifier import Handle
from registry.limits import Limits
from registry.value import HandleValue


def test_handle_names_are_the_ones_the_walks_ask_for() -> None:
    # loadtest/capacity.lua and the open-loop generator append 8-digit numbers to the stem
    assert handle_name("88.102.1", 7) == "88.102.1/cap-00000007"
    assert handle_name("88.102.1", 12_345_678) == "88.102.1/cap-12345678"


def test_batch_items_are_consecutive_distinct_and_valid() -> None:
    items = batch_items("88.102.1", 1000, BATCH)
    assert len(items) == BATCH == Limits().max_batch
    names = [item["handle"] for item in items]
    assert names[0] == "88.102.1/cap-00001000" and names[-1] == "88.102.1/cap-00002999"
    assert len(set(names)) == BATCH
    for item in items[:50]:
        handle = Handle.parse(item["handle"])
        assert handle.home_prefix.text == "88.102.1"
        values = [
            HandleValue.from_input(v, now="2026-01-01T00:00:00Z", limits=Limits())
            for v in item["values"]
        ]
        assert [v.index for v in values] == [1, 2, 3, 4, 5]
        assert values[0].type == "URL" and str(values[0].value).endswith(item["handle"][-12:])


def test_a_batch_body_is_a_realistic_size() -> None:
    body = orjson.dumps({"handles": batch_items("88.102.1", 0, BATCH)})
    assert 400_000 < len(body) < Limits().max_body_bytes


@pytest.mark.parametrize(
    ("prefix", "first", "count"), [("88.102.1", 0, BATCH), ("88.7", 99_999_998, 3)]
)
def test_the_templated_body_is_what_orjson_writes(prefix: str, first: int, count: int) -> None:
    assert batch_body(prefix, first, count) == orjson.dumps(
        {"handles": batch_items(prefix, first, count)}
    )


def test_a_prefix_needing_escapes_is_refused() -> None:
    with pytest.raises(ValueError, match="escaping"):
        batch_body('88."1', 0, 1)
