"""What a record's body costs in bytes and in CPU, in process, for demo-shaped
identifiers (``capacity_batch.batch_items``: five string values, the default HS_ADMIN
value a node adds, one timestamp):

::

    python -m loadtest.record_body_cost [--records 2000] [--rounds 5]

Prints, per identifier, the bytes of the Handle JSON body (how records were stored
until layout 3), of the compact stored form (:mod:`registry.stored_form`), and of the
compact form compressed with zlib and a dictionary of sample records (an option that
is measured here, not used); and the microseconds to produce the JSON answer from each
(from the JSON body: nothing, it is the answer), and to rebuild the record a write
plans from (``from_stored``). Best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from collections.abc import Callable
from statistics import mean

from loadtest.capacity_batch import batch_items
from registry.identifier import Handle
from registry.limits import Limits
from registry.record import HandleRecord, current_body, plan_replace
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
    stored = [to_stored(r) for r in records]
    # A dictionary from other records (trained on a sample, stored once, versioned).
    sample = b"".join(to_stored(r) for r in demo_records(10**6, 200))
    zdict = sample[-32768:]

    def squeeze(body: bytes) -> bytes:
        packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict)
        return packer.compress(body) + packer.flush()

    squeezed = [squeeze(s) for s in stored]

    def unsqueeze(body: bytes) -> bytes:
        return zlib.decompressobj(-15, zdict).decompress(body)

    if any(public_json(s, h) != b for s, h, b in zip(stored, handles, bodies, strict=True)):
        raise SystemExit("the compact form does not give the same answer")
    n, rounds = len(records), options.rounds
    figures = {
        "json_body_bytes": round(mean(map(len, bodies)), 1),
        "compact_bytes": round(mean(map(len, stored)), 1),
        "compact_zlib_dict_bytes": round(mean(map(len, squeezed)), 1),
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
        "answer_from_compact_zlib_us": round(
            best_us(
                lambda: [
                    public_json(unsqueeze(s), h) for s, h in zip(squeezed, handles, strict=True)
                ],
                n,
                rounds,
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
        "json_from_record_us": round(best_us(lambda: [r.bodies() for r in records], n, rounds), 3),
    }
    print(f"sample compact body: {stored[0].decode()}")
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
