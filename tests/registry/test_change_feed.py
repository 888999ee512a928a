"""registry.change_feed: stream ids as cursors, gaps, and where a follower reads next."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.change_feed import MAX_SEQ, StreamId, has_gap, next_cursor
from registry.errors import InvalidValue
from tests.registry.strategies import fast

# --- StreamId.parse ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1700000000000-3", StreamId(1_700_000_000_000, 3)),
        ("0-0", StreamId(0, 0)),
        ("123", StreamId(123, 0)),
        ("0", StreamId(0)),
        (f"5-{MAX_SEQ}", StreamId(5, MAX_SEQ)),
    ],
)
def test_parse_valid(text: str, expected: StreamId) -> None:
    assert StreamId.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["", "abc", "12-x", "x-1", "5-", "-", "-1", "-5-1", "1-2-3", "1.5-0", "0x10-0"]
)
def test_parse_garbage_is_an_invalid_value(text: str) -> None:
    with pytest.raises(InvalidValue, match="'after' must be a change id") as info:
        StreamId.parse(text)
    assert info.value.http_status == 400
    assert repr(text) in info.value.message


@pytest.mark.parametrize("text", ["1--1", "0--5"])
def test_parse_negative_sequence_is_an_invalid_value(text: str) -> None:
    with pytest.raises(InvalidValue, match="change id"):
        StreamId.parse(text)


@pytest.mark.parametrize("text", [f"1-{MAX_SEQ + 1}", f"{2**64}-0"])
def test_parse_rejects_ids_beyond_redis_range(text: str) -> None:
    with pytest.raises(InvalidValue):
        StreamId.parse(text)


@pytest.mark.parametrize(
    "stream_id", [StreamId(0), StreamId(1_700_000_000_000, 3), StreamId(7, MAX_SEQ)]
)
def test_str_round_trips(stream_id: StreamId) -> None:
    assert StreamId.parse(str(stream_id)) == stream_id


def test_str_format() -> None:
    assert str(StreamId(1_700_000_000_000, 3)) == "1700000000000-3"
    assert str(StreamId(5)) == "5-0"


@fast
@given(st.integers(0, 2**63), st.integers(0, MAX_SEQ))
def test_parse_str_property(ms: int, seq: int) -> None:
    assert StreamId.parse(str(StreamId(ms, seq))) == StreamId(ms, seq)


# --- ordering ---------------------------------------------------------------------------


def test_ordering_is_by_milliseconds_then_sequence() -> None:
    assert StreamId.parse("1700000000000-3") < StreamId.parse("1700000000001-0")
    assert StreamId(5, MAX_SEQ) < StreamId(6, 0)
    assert StreamId(5, 1) < StreamId(5, 2)
    assert StreamId(5, 2) == StreamId(5, 2)
    ids = [StreamId(9), StreamId(1, 5), StreamId(1, 2), StreamId(10, 0), StreamId(9, 1)]
    assert sorted(ids) == [
        StreamId(1, 2),
        StreamId(1, 5),
        StreamId(9),
        StreamId(9, 1),
        StreamId(10),
    ]
    assert max(ids) == StreamId(10)


def test_ordering_is_numeric_not_textual() -> None:
    assert StreamId.parse("9-0") < StreamId.parse("10-0")
    assert StreamId.parse("1-9") < StreamId.parse("1-10")


# --- at ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (1.5, StreamId(1500)),
        (1_700_000_000.0, StreamId(1_700_000_000_000)),
        (0.0, StreamId(0)),
        (0.0009, StreamId(0)),
        (-3.0, StreamId(0)),  # never before the epoch
    ],
)
def test_at(seconds: float, expected: StreamId) -> None:
    assert StreamId.at(seconds) == expected
    assert StreamId.at(seconds).seq == 0


# --- has_gap ----------------------------------------------------------------------------


def test_has_gap_docstring_examples() -> None:
    assert has_gap(StreamId(5_000), now=StreamId(10_000), retention_ms=60_000) is False
    assert has_gap(StreamId(5_000), now=StreamId(100_000), retention_ms=60_000) is True


@pytest.mark.parametrize(
    ("after_ms", "now_ms", "retention_ms", "expected"),
    [
        (40_000, 100_000, 60_000, False),  # exactly at the edge of the window
        (39_999, 100_000, 60_000, True),
        (100_000, 100_000, 0, False),
        (99_999, 100_000, 0, True),
        (200_000, 100_000, 60_000, False),  # a cursor from the future is no gap
        (0, 0, 60_000, False),
    ],
)
def test_has_gap_boundaries(after_ms: int, now_ms: int, retention_ms: int, expected: bool) -> None:
    assert has_gap(StreamId(after_ms, 7), StreamId(now_ms, 3), retention_ms) is expected


# --- next_cursor ------------------------------------------------------------------------


def test_next_cursor_docstring_example() -> None:
    assert next_cursor(StreamId(7, 1), StreamId(9), more=False) == StreamId(8, MAX_SEQ)


def test_with_more_waiting_the_cursor_stays_at_the_last_entry_read() -> None:
    assert next_cursor(StreamId(7, 1), StreamId(9_000), more=True) == StreamId(7, 1)


def test_with_more_but_nothing_read_the_cursor_goes_just_below_now() -> None:
    assert next_cursor(None, StreamId(9_000), more=True) == StreamId(8_999, MAX_SEQ)


def test_a_first_read_starts_just_below_now() -> None:
    assert next_cursor(None, StreamId(9_000, 4), more=False) == StreamId(8_999, MAX_SEQ)


def test_at_time_zero_the_cursor_is_not_negative() -> None:
    assert next_cursor(None, StreamId(0), more=False) == StreamId(0, MAX_SEQ)


@pytest.mark.parametrize(
    "last_read", [StreamId(9_000, 2), StreamId(9_001), StreamId(8_999, 2**64 - 1)]
)
def test_the_cursor_never_goes_back_below_the_last_entry_read(last_read: StreamId) -> None:
    assert next_cursor(last_read, StreamId(9_000), more=False) == last_read


def test_a_quiet_node_moves_the_cursor_up_to_the_clock() -> None:
    assert next_cursor(StreamId(1_000, 5), StreamId(500_000), more=False) == StreamId(
        499_999, MAX_SEQ
    )


@fast
@given(
    last=st.none() | st.builds(StreamId, st.integers(0, 2**50), st.integers(0, MAX_SEQ)),
    now_ms=st.integers(0, 2**50),
    more=st.booleans(),
)
def test_next_cursor_property(last: StreamId | None, now_ms: int, more: bool) -> None:
    now = StreamId(now_ms)
    cursor = next_cursor(last, now, more=more)
    if last is not None:
        assert cursor >= last
        if more:
            assert cursor == last
    if not (more and last is not None):
        assert cursor >= StreamId(max(0, now_ms - 1), MAX_SEQ)
        # every id a later append can get (at ``now`` or after) is above the cursor
        if now_ms > 0 and (last is None or last < now):
            assert cursor < StreamId(now_ms, 0)
