"""What a record's body costs in bytes and in CPU, in process, for demo-shaped
identifiers (``capacity_batch.batch_items``: five string values, the default HS_ADMIN
value a node adds, one timestamp):

::

    python -m loadtest.record_body_cost [--records 2000] [--rounds 5]

Prints, per identifier, the bytes of the Handle JSON body (how records were stored
until layout 3), of the compact stored form (:mod:`registry.stored_form`), and of the
packed form the store writes (:mod:`registry.packed_form`) with dictionary 0 and with
one trained on other records (``registry.packed_form.train`` of 4,000 records a million
further on, as a store trains it); and the microseconds to produce the JSON answer from
each (from the JSON body: nothing, it is the answer; from the packed form: unpacked
first, what a resolution that misses the in-process copy costs), to rebuild the record
a write plans from (``from_stored``), and to write each form. Best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from statistics import mean

from loadtest.capacity_batch import batch_items
from registry.identifier import Handle
from registry.limits import Limits
from registry.packed_form import BUILTIN, SAMPLES, Codec, dictionary_of, marked, train
from registry.record import HandleRecord, current_body, plan_replace
from registry.record_keys import record_field
from registry.stored_form import from_stored, public_json, to_stored
from registry.value import HandleValue

PREFIX = "88.102.1"
WRITER = "300:0.NA/88.102.1"
NOW = "2026-01-05T08:30:00Z"


def demo_records(first: int, count: int) -> list[HandleRecord]:
    """Records as the batch path makes them (values parsed, default admin added)."""
    from registry.identifier import Identity

    limits = Limits()
    writer = Identity.parse(WRITER)
    records = []
    for item in batch_items(PREFIX, first, count):
        values = [HandleValue.from_input(v, now=NOW, limits=limits) for v in item["values"]]
        handle = Handle.parse(item["handle"])
        records.append(
            plan_replace(
                None, handle, values, overwrite=True, writer=writer, now=NOW, limits=limits
            )
        )
    return records


def best_us(work: Callable[[], object], count: int, rounds: int) -> float:
    """Best round's microseconds per item (``work`` handles ``count`` items)."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) / count * 1e6)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    records = demo_records(0, options.records)
    handles = [r.handle for r in records]
    bodies = [r.public_body() for r in records]
    fields = [record_field(h) for h in handles]
    stored = [to_stored(r) for r in records]
    # A dictionary trained as a store trains one, from records a million further on.
    trained = train(
        [marked(to_stored(r), record_field(r.handle)) for r in demo_records(10**6, SAMPLES)]
    )
    codecs = Codec(0, BUILTIN), Codec(1, trained)  # as a store keeps them
    builtin = [codecs[0].pack(s, f) for s, f in zip(stored, fields, strict=True)]
    packed = [codecs[1].pack(s, f) for s, f in zip(stored, fields, strict=True)]

    def unpacked(body: bytes, field: str) -> bytes:
        number, start = dictionary_of(body)
        return codecs[number].unpack(body, field, start)

    if any(public_json(s, h) != b for s, h, b in zip(stored, handles, bodies, strict=True)):
        raise SystemExit("the compact form does not give the same answer")
    if any(
        unpacked(p, f) != s
        for p, f, s in zip(packed + builtin, fields * 2, stored * 2, strict=True)
    ):
        raise SystemExit("the packed form does not give the stored form back")
    n, rounds = len(records), options.rounds
    figures = {
        "json_body_bytes": round(mean(map(len, bodies)), 1),
        "compact_bytes": round(mean(map(len, stored)), 1),
        "packed_builtin_bytes": round(mean(map(len, builtin)), 1),
        "packed_trained_bytes": round(mean(map(len, packed)), 1),
        "answer_from_json_us": round(
            best_us(lambda: [current_body(b) for b in bodies], n, rounds), 3
        ),
        "answer_from_compact_us": round(
            best_us(
                lambda: [public_json(s, h) for s, h in zip(stored, handles, strict=True)],
                n,
                rounds,
            ),
            3,
        ),
        "answer_from_packed_us": round(
            best_us(
                lambda: [
                    public_json(unpacked(p, f), h)
                    for p, f, h in zip(packed, fields, handles, strict=True)
                ],
                n,
                rounds,
            ),
            3,
        ),
        "unpack_us": round(
            best_us(
                lambda: [unpacked(p, f) for p, f in zip(packed, fields, strict=True)], n, rounds
            ),
            3,
        ),
        "record_from_json_us": round(
            best_us(lambda: [HandleRecord.decode(b) for b in bodies], n, rounds), 3
        ),
        "record_from_compact_us": round(
            best_us(
                lambda: [from_stored(s, h) for s, h in zip(stored, handles, strict=True)],
                n,
                rounds,
            ),
            3,
        ),
        "compact_from_record_us": round(
            best_us(lambda: [to_stored(r) for r in records], n, rounds), 3
        ),
        "packed_from_record_us": round(
            best_us(
                lambda: [
                    codecs[1].pack(to_stored(r), f) for r, f in zip(records, fields, strict=True)
                ],
                n,
                rounds,
            ),
            3,
        ),
        "json_from_record_us": round(best_us(lambda: [r.bodies() for r in records], n, rounds), 3),
    }
    print(f"sample compact body: {stored[0].decode()}")
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
