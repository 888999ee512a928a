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
    DICTIONARY_SIZE,
    HELD_OUT,
    OUTPUT_GUESS,
    SAMPLES,
    TRAIN_EVERY,
    Dictionaries,
    dictionary_of,
    is_packed,
    marked,
    pack,
    train,
    unmarked,
    unpack,
)
from registry.record import HandleRecord
from registry.record_keys import record_field
from registry.stored_form import from_stored, is_compact, public_json, to_stored
from tests.registry.strategies import fast
from tests.registry.test_stored_form import records, value


def trained_on(records: list[HandleRecord]) -> bytes:
    return train([marked(to_stored(r), record_field(r.handle)) for r in records])


TRAINED = trained_on(demo_records(0, SAMPLES))


def test_dictionary_0_never_changes() -> None:
    # Records packed with it would no longer read back: add a new dictionary instead.
    assert hashlib.sha256(BUILTIN).hexdigest() == (
        "0321633990259d180d68bcba6390c5032ccfffa6e5cc0d4dcd03628532159d5f"
    )


def _packed(rec: HandleRecord, number: int, zdict: bytes) -> tuple[bytes, str, bytes]:
    """``rec``'s stored form, field and packed body with dictionary ``number``."""
    stored, field = to_stored(rec), record_field(rec.handle)
    return stored, field, pack(stored, field, number, zdict)


@fast
@given(records(), st.sampled_from([(0, BUILTIN), (1, TRAINED), (300, TRAINED)]))
def test_any_record_packed_answers_and_reads_back_as_unpacked(
    rec: HandleRecord, dictionary: tuple[int, bytes]
) -> None:
    number, zdict = dictionary
    stored, field, body = _packed(rec, number, zdict)
    assert is_packed(body) and is_compact(body) and not is_packed(stored)
    assert dictionary_of(body)[0] == number
    plain = unpack(body, field, zdict, dictionary_of(body)[1])
    assert plain == stored
    asked = Handle.parse(rec.handle.text.upper())
    assert public_json(plain, asked) == public_json(stored, asked) == rec.public_body()
    assert from_stored(plain, asked) == rec
    assert pack(stored, field, number, zdict) == body  # deterministic


@st.composite
def records_naming_their_suffix(draw: st.DrawFn) -> HandleRecord:
    """Records whose values hold their own suffix in lower, upper and mixed case, as
    URLs and serial numbers do, among any other text."""
    suffix = draw(st.text(alphabet="aBc-1.中", min_size=1, max_size=6))
    handle = Handle.parse(f"88.100.1/{suffix}")
    field = record_field(handle)
    cases = st.sampled_from([field, field.upper(), suffix, field.swapcase(), field[:-1]])
    pieces = st.lists(st.one_of(cases, st.text(max_size=6)), min_size=1, max_size=5)
    texts = draw(st.lists(pieces.map("".join), min_size=1, max_size=4))
    return HandleRecord(handle, tuple(value(i + 1, "URL", t) for i, t in enumerate(texts)))


@fast
@given(records_naming_their_suffix(), st.sampled_from([(0, BUILTIN), (1, TRAINED)]))
def test_records_naming_their_suffix_pack_and_read_back_byte_for_byte(
    rec: HandleRecord, dictionary: tuple[int, bytes]
) -> None:
    stored, field, body = _packed(rec, *dictionary)
    assert unpack(body, field, dictionary[1], dictionary_of(body)[1]) == stored
    assert from_stored(stored, rec.handle) == rec


def test_a_record_larger_than_the_output_guess_reads_back() -> None:
    big = HandleRecord(
        Handle.parse("88.100.1/big"),
        tuple(value(i, "DATA", f"{i:05d}" * 6000) for i in range(1, 60)),
    )
    stored = to_stored(big)
    assert len(stored) > OUTPUT_GUESS
    body = pack(stored, "big", 1, TRAINED)
    assert unpack(body, "big", TRAINED, dictionary_of(body)[1]) == stored


def test_demo_records_pack_small_with_either_dictionary() -> None:
    later = demo_records(700_000, 200)
    for zdict, most in ((BUILTIN, 90), (TRAINED, 25)):  # zlib made ~74 and ~17
        sizes = [len(pack(to_stored(r), record_field(r.handle), 1, zdict)) for r in later]
        assert sum(sizes) / len(sizes) < most, (len(zdict), sum(sizes) / len(sizes))


@fast
@given(
    st.text(alphabet="aB1-", min_size=1, max_size=8),
    st.lists(st.text(alphabet="aAbB1-.", max_size=12), max_size=6),
)
def test_the_suffix_in_any_case_marks_and_unmarks_byte_for_byte(
    suffix: str, pieces: list[str]
) -> None:
    field = suffix.lower()
    # The suffix in lower, upper and mixed case among other text, as values hold it.
    text = "".join(
        p + c for p, c in zip(pieces, [field, field.upper(), suffix, "x"] * 2, strict=False)
    ).encode()
    assert unmarked(marked(text, field), field) == text


def test_training_is_deterministic_and_fits_its_size() -> None:
    samples = [marked(to_stored(r), record_field(r.handle)) for r in demo_records(9, 2000)]
    made = train(samples)
    assert made == train(list(samples))
    assert 0 < len(made) <= DICTIONARY_SIZE


def test_a_table_trains_after_enough_records_and_keeps_only_a_better_dictionary() -> None:
    table = Dictionaries()
    recs = demo_records(0, TRAIN_EVERY)
    for rec in recs:
        assert not table.due()
        body = table.pack(to_stored(rec), record_field(rec.handle))
        assert dictionary_of(body)[0] == 0
    assert table.due()
    work = table.candidate()
    assert work is not None and not table.due()
    assert len(work.newest) == HELD_OUT and len(work.older) == SAMPLES - HELD_OUT
    made = work.run()
    assert made is not None and made.held_out_bytes <= 0.3 * work.now
    table.learn(1, made.dictionary, made.held_out_bytes)
    rec = recs[-1]
    body = table.pack(to_stored(rec), record_field(rec.handle))
    assert dictionary_of(body)[0] == 1 and table.unpack(body, record_field(rec.handle))
    # The same text again: dictionary 1 packs it as when adopted, nothing is trained.
    for rec in demo_records(TRAIN_EVERY, TRAIN_EVERY):
        table.pack(to_stored(rec), record_field(rec.handle))
    assert table.due() and table.candidate() is None and not table.due()


@pytest.mark.parametrize("packed", [SAMPLES - 1, SAMPLES + 1, 10 * SAMPLES, 25 * SAMPLES + 7])
def test_the_training_samples_are_a_uniform_sample_of_all_records_but_the_newest(
    packed: int,
) -> None:
    table = Dictionaries()
    for n in range(packed):
        table.pack(b"[%d]" % n, "suffix")
    work = table.candidate()
    assert work is not None
    newest = [int(text[1:-1]) for text in work.newest]
    older = [int(text[1:-1]) for text in work.older]
    assert newest == list(range(packed - HELD_OUT, packed))
    assert len(older) == min(packed - HELD_OUT, SAMPLES - HELD_OUT) == len(set(older))
    assert all(0 <= n < packed - HELD_OUT for n in older)
    if packed > SAMPLES:
        # Each tenth of the records before the newest holds a tenth of the samples,
        # within four standard deviations (the draws are seeded: the same every run).
        tenths = [0] * 10
        for n in older:
            tenths[n * 10 // (packed - HELD_OUT)] += 1
        expected = len(older) / 10
        assert all(abs(t - expected) < 4 * (expected * 0.9) ** 0.5 for t in tenths), tenths


def test_a_dictionary_learnt_from_another_process_is_judged_by_what_it_first_makes() -> None:
    table = Dictionaries()
    table.learn(1, TRAINED)  # read from the store: no baseline
    for rec in demo_records(3 * TRAIN_EVERY, TRAIN_EVERY):
        table.pack(to_stored(rec), record_field(rec.handle))
    assert table.candidate() is None  # the first look sets its baseline
    # Records of another text altogether (Handle JSON bodies, not stored forms) pack
    # far worse than that: a candidate is trained, and wins.
    for rec in demo_records(0, TRAIN_EVERY):
        table.pack(rec.bodies()[0], record_field(rec.handle))
    work = table.candidate()
    assert work is not None
    made = work.run()
    assert made is not None and made.held_out_bytes <= 0.6 * work.now


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
