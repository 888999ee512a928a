"""The packed form: a stored form packed with a dictionary reads back byte for byte, so
the answers and records built from it are those of the unpacked form; dictionaries are
trained deterministically, and dictionary 0 never changes."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtest.record_body_cost import demo_records
from registry.identifier import Handle
from registry.packed_form import (
    BUILTIN,
    MAX_DICTIONARY,
    SAMPLES,
    TRAIN_EVERY,
    Dictionaries,
    dictionary_of,
    is_packed,
    pack,
    train,
    unpack,
)
from registry.record import HandleRecord
from registry.record_keys import record_field
from registry.stored_form import from_stored, is_compact, public_json, to_stored
from tests.registry.strategies import fast
from tests.registry.test_stored_form import records

TRAINED = train([to_stored(r) for r in demo_records(0, SAMPLES)])


def test_dictionary_0_never_changes() -> None:
    # Records packed with it would no longer read back: add a new dictionary instead.
    assert hashlib.sha256(BUILTIN).hexdigest() == (
        "736b9db9120c645c075e631b9c409b81a5f60b212e19e9215aa2cc22a90f44bc"
    )


@fast
@given(records(), st.sampled_from([(0, BUILTIN), (1, TRAINED), (300, TRAINED)]))
def test_any_record_packed_answers_and_reads_back_as_unpacked(
    rec: HandleRecord, dictionary: tuple[int, bytes]
) -> None:
    number, zdict = dictionary
    stored = to_stored(rec)
    field = record_field(rec.handle)
    body = pack(stored, field, number, zdict)
    assert is_packed(body) and is_compact(body) and not is_packed(stored)
    assert dictionary_of(body)[0] == number
    plain = unpack(body, field, zdict, dictionary_of(body)[1])
    assert plain == stored
    asked = Handle.parse(rec.handle.text.upper())
    assert public_json(plain, asked) == public_json(stored, asked) == rec.public_body()
    assert from_stored(plain, asked) == rec
    assert pack(stored, field, number, zdict) == body  # deterministic


def test_demo_records_pack_small_with_either_dictionary() -> None:
    later = demo_records(700_000, 200)
    for zdict, most in ((BUILTIN, 90), (TRAINED, 25)):
        sizes = [len(pack(to_stored(r), record_field(r.handle), 1, zdict)) for r in later]
        assert sum(sizes) / len(sizes) < most, (len(zdict), sum(sizes) / len(sizes))


@fast
@given(st.lists(st.binary(min_size=1, max_size=600), max_size=40))
def test_training_is_deterministic_and_fits_the_window(samples: list[bytes]) -> None:
    made = train(samples)
    assert made == train(list(samples))
    assert len(made) <= MAX_DICTIONARY
    if samples and len(samples[-1]) <= MAX_DICTIONARY:
        assert made.endswith(samples[-1])  # the newest nearest


def test_a_table_trains_after_enough_records_and_keeps_only_a_better_dictionary() -> None:
    table = Dictionaries()
    recs = demo_records(0, TRAIN_EVERY)
    for rec in recs:
        assert not table.due()
        body = table.pack(to_stored(rec), record_field(rec.handle))
        assert dictionary_of(body)[0] == 0
    assert table.due()
    made = table.candidate()
    assert made is not None and not table.due()
    table.learn(1, made)
    rec = recs[-1]
    body = table.pack(to_stored(rec), record_field(rec.handle))
    assert dictionary_of(body)[0] == 1 and table.unpack(body, record_field(rec.handle))
    for rec in recs:
        table.pack(to_stored(rec), record_field(rec.handle))
    assert table.due() and table.candidate() is None  # the same text: no better


def test_an_unknown_dictionary_is_a_key_error_until_learnt() -> None:
    stored = to_stored(demo_records(5, 1)[0])
    body = pack(stored, "x", 7, TRAINED)
    table = Dictionaries()
    assert not table.knows(7)
    with pytest.raises(KeyError):
        table.unpack(body, "x")
    table.learn(7, TRAINED)
    assert table.unpack(body, "x") == stored
    assert table.unpack(stored, "x") is stored  # not packed: as it is
