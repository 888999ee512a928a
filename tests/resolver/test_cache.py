"""resolver.cache: how long answers stay fresh, how they are kept, and their encoding."""

from __future__ import annotations

import string

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.cache import CacheEntry, CachePolicy, CacheStatus, Outcome, value_ttls
from tests.registry.strategies import fast

POLICY = CachePolicy(max_ttl=3600.0, negative_ttl=10.0, max_stale=86400.0)


def entry(outcome: Outcome = Outcome.FOUND, **changes: object) -> CacheEntry:
    fields: dict[str, object] = {
        "outcome": outcome,
        "body": b'{"responseCode":1}',
        "source": "http://127.0.0.1:8001",
        "fetched_at": 100.0,
        "fresh_until": 160.0,
    }
    fields.update(changes)
    return CacheEntry(**fields)  # type: ignore[arg-type]


def test_defaults() -> None:
    policy = CachePolicy()
    assert (policy.max_ttl, policy.negative_ttl, policy.max_stale) == (3600.0, 10.0, 86400.0)
    assert (policy.local_ttl, policy.local_size) == (1.0, 10_000)


def test_outcome_and_status_values() -> None:
    assert (Outcome.FOUND.value, Outcome.NOT_FOUND.value) == ("F", "N")
    assert [s.value for s in CacheStatus] == ["HIT", "MISS", "STALE"]


# --- fresh_seconds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttls", "expected"),
    [
        ([300], 300.0),
        ([86400, 300], 300.0),  # as fresh as the most volatile value
        ([300, 60, 900], 60.0),
        ([86400], 3600.0),  # capped by max_ttl
        ([3600], 3600.0),
        ([0], 0.0),  # 0 stays 0: not cached at all
        ([86400, 0, 300], 0.0),
        ([], 3600.0),  # no values: max_ttl
        ([-5], 0.0),  # never negative
    ],
)
def test_fresh_seconds_for_found_answers(ttls: list[int], expected: float) -> None:
    fresh = POLICY.fresh_seconds(Outcome.FOUND, ttls)
    assert fresh == expected
    assert isinstance(fresh, float)


def test_fresh_seconds_docstring_example() -> None:
    assert CachePolicy(max_ttl=60).fresh_seconds(Outcome.FOUND, [86400, 300]) == 60.0


@pytest.mark.parametrize("ttls", [[], [0], [86400], [5]])
def test_not_found_answers_use_the_negative_ttl(ttls: list[int]) -> None:
    assert POLICY.fresh_seconds(Outcome.NOT_FOUND, ttls) == 10.0
    assert CachePolicy(negative_ttl=2.5).fresh_seconds(Outcome.NOT_FOUND, ttls) == 2.5


@fast
@given(st.lists(st.integers(0, 2**31 - 1), max_size=10), st.floats(0, 10**6))
def test_fresh_seconds_is_bounded(ttls: list[int], max_ttl: float) -> None:
    fresh = CachePolicy(max_ttl=max_ttl).fresh_seconds(Outcome.FOUND, ttls)
    assert 0.0 <= fresh <= max_ttl
    if ttls:
        assert fresh <= min(ttls)


# --- keep_seconds -----------------------------------------------------------------------


def test_found_entries_are_kept_for_their_fresh_life_plus_the_stale_window() -> None:
    assert POLICY.keep_seconds(entry(Outcome.FOUND)) == 60.0 + 86400.0


def test_not_found_entries_are_kept_only_while_fresh() -> None:
    assert POLICY.keep_seconds(entry(Outcome.NOT_FOUND, fresh_until=110.0)) == 10.0


def test_keep_seconds_follows_the_policy_stale_window() -> None:
    assert CachePolicy(max_stale=0).keep_seconds(entry()) == 60.0
    assert CachePolicy(max_stale=30).keep_seconds(entry()) == 90.0


# --- CacheEntry -------------------------------------------------------------------------


def test_docstring_example() -> None:
    e = CacheEntry(Outcome.FOUND, b"{}", "http://n:1", fetched_at=100.0, fresh_until=160.0)
    assert CacheEntry.decode(e.encode()) == e
    assert e.age(130.5) == 30
    assert e.is_fresh(170.0) is False


def test_encoding_is_a_header_line_then_the_body_bytes() -> None:
    e = entry(body=b'{"a":\n1}')
    assert e.encode() == b'F 100.000 160.000 http://127.0.0.1:8001\n{"a":\n1}'


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\n",
        b"{}\n",
        b'{\n  "responseCode": 1,\n  "handle": "88.100/x"\n}\n\n',
        b"\xff\x00binary\r\n",
        '{"handle":"88.100/中文"}'.encode(),
    ],
)
@pytest.mark.parametrize("outcome", list(Outcome))
def test_encode_decode_round_trip(body: bytes, outcome: Outcome) -> None:
    e = entry(outcome, body=body)
    decoded = CacheEntry.decode(e.encode())
    assert decoded == e
    assert decoded.body == body


@pytest.mark.parametrize(
    "source",
    ["http://127.0.0.1:8001", "https://node.example/base/path", "http://[::1]:8000", ""],
)
def test_the_source_url_round_trips(source: str) -> None:
    e = entry(source=source, body=b"x\ny")
    assert CacheEntry.decode(e.encode()).source == source


_sources = st.text(string.ascii_letters + string.digits + ":/.-_[]% ", max_size=40)


@fast
@given(
    outcome=st.sampled_from(Outcome),
    body=st.binary(max_size=200),
    source=_sources,
    fetched_ms=st.integers(0, 10**13),
    life_ms=st.integers(0, 10**8),
)
def test_encode_decode_property(
    outcome: Outcome, body: bytes, source: str, fetched_ms: int, life_ms: int
) -> None:
    e = CacheEntry(outcome, body, source, fetched_ms / 1000, (fetched_ms + life_ms) / 1000)
    assert CacheEntry.decode(e.encode()) == e


def test_times_are_kept_to_the_millisecond() -> None:
    e = entry(fetched_at=1_700_000_000.1234, fresh_until=1_700_000_060.9876)
    decoded = CacheEntry.decode(e.encode())
    assert decoded.fetched_at == pytest.approx(1_700_000_000.123, abs=1e-6)
    assert decoded.fresh_until == pytest.approx(1_700_000_060.988, abs=1e-6)


def test_is_fresh_until_fresh_until() -> None:
    e = entry()
    assert e.is_fresh(100.0) and e.is_fresh(159.999)
    assert not e.is_fresh(160.0) and not e.is_fresh(1000.0)


def test_found_entries_may_be_served_stale_within_the_window() -> None:
    e = entry(Outcome.FOUND)
    assert e.may_serve_stale(160.0, max_stale=100.0)
    assert e.may_serve_stale(259.9, max_stale=100.0)
    assert not e.may_serve_stale(260.0, max_stale=100.0)
    assert not e.may_serve_stale(160.0, max_stale=0.0)


@pytest.mark.parametrize("now", [100.0, 150.0, 170.0, 10_000.0])
def test_not_found_entries_are_never_served_stale(now: float) -> None:
    assert not entry(Outcome.NOT_FOUND).may_serve_stale(now, max_stale=86400.0)


@pytest.mark.parametrize(
    ("now", "expected"), [(100.0, 0), (130.5, 30), (160.999, 60), (99.0, 0), (0.0, 0)]
)
def test_age_in_whole_seconds_never_negative(now: float, expected: int) -> None:
    age = entry().age(now)
    assert age == expected
    assert isinstance(age, int)


# --- value_ttls -------------------------------------------------------------------------


def test_value_ttls_of_a_found_body() -> None:
    body = orjson.dumps(
        {
            "responseCode": 1,
            "handle": "88.100/x",
            "values": [
                {"index": 1, "type": "URL", "data": {"format": "string", "value": "x"}, "ttl": 60},
                {"index": 2, "type": "EMAIL", "data": "y", "ttl": 86400},
                {"index": 3, "type": "NOTE", "data": "z"},  # no ttl
                "junk",
                7,
            ],
        }
    )
    assert value_ttls(body) == [60, 86400]


@pytest.mark.parametrize(
    "body", [b"{}", b'{"values": []}', b'{"values": null}', b'{"responseCode": 1}']
)
def test_value_ttls_of_bodies_without_values(body: bytes) -> None:
    assert value_ttls(body) == []


def test_value_ttls_ignores_ttls_that_are_not_whole_seconds() -> None:
    body = b'{"values": [{"ttl": "120"}, {"ttl": 30.5}, {"ttl": true}, {"ttl": -1}, {"ttl": 60}]}'
    assert value_ttls(body) == [60]
