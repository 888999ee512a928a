"""The collector is off while batches run, back on after the last, and a pause that
overlapping batches keep going still collects the young generation now and then."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from node.collection_pause import CollectionPause


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generations of the collections run while the collector is off, i.e. those
    the pause asked for (automatic ones run only while it is on)."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and not gc.isenabled():
            seen.append(info["generation"])

    gc.callbacks.append(record)
    yield seen
    gc.callbacks.remove(record)
    gc.enable()


def test_off_while_held_on_after_the_last_holder(collections: list[int]) -> None:
    pause = CollectionPause(clock=Clock())
    with pause.held():
        assert not gc.isenabled()
        with pause.held():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the first batch still runs
    assert gc.isenabled()


def test_overlapping_batches_collect_the_young_generation_after_the_limit(
    collections: list[int],
) -> None:
    clock = Clock()
    pause = CollectionPause(limit=2.0, clock=clock)
    with pause.held():
        with pause.held():
            clock.now += 1.0
        assert collections == []  # within the limit: nothing collected
        with pause.held():
            clock.now += 1.5
        assert collections == [0] and not gc.isenabled()
        with pause.held():
            clock.now += 1.0
        assert collections == [0]  # a new period began at the collection
    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off(collections: list[int]) -> None:
    clock = Clock()
    pause = CollectionPause(limit=0.0, clock=clock)
    gc.disable()
    with pause.held(), pause.held():
        clock.now += 5.0
    assert not gc.isenabled() and collections == []


def test_an_error_inside_still_turns_it_back_on(collections: list[int]) -> None:
    pause = CollectionPause(clock=Clock())
    with pytest.raises(RuntimeError), pause.held():
        raise RuntimeError("batch failed")
    assert gc.isenabled()
