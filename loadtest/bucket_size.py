"""How many records a bucket should hold: Redis memory per record and the server's time
per read for records of one size grouped ``n`` to a bucket (registry.record_keys), on a
fresh embedded Redis with the node's bucket settings.

::

    python -m loadtest.bucket_size [--records 100000] [--size 242]

For each fill (0: one string key per record, as layout 4 kept them; 1: one-field
hashes; then 16 ... 256 records a bucket) the records are written with a CRC-32 bucket
of ``records / fill`` as the node does, then read back in random order. Prints per fill
``used_memory`` per record (after minus before), the buckets' encoding, and
``usec_per_call`` of ``HGET`` (``GET``) from ``INFO commandstats``: the server's own time,
without the round trip.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from redis import Redis

from node.embedded_redis import EmbeddedRedis
from registry.record_keys import bucket_of

FILLS = (0, 1, 16, 32, 64, 128, 256)
PREFIX = "88.100"


def place(serial: int, fill: int, records: int) -> tuple[str, str | None]:
    """The key (and field: None for a string) of record ``serial`` at a fill.

    >>> place(7, 0, 100)
    ('r:{88.100}:88.100/serial-00000007', None)
    >>> place(7, 1, 100)[1]
    'serial-00000007'
    """
    suffix = f"serial-{serial:08d}"
    if fill == 0:
        return f"r:{{{PREFIX}}}:{PREFIX}/{suffix}", None
    bucket = bucket_of(f"{PREFIX}/{suffix}", max(1, records // fill))
    return f"r:{{{PREFIX}}}:{bucket}", suffix


def measure(redis: Redis, fill: int, records: int, size: int) -> tuple[float, str, float]:
    """Bytes per record, the encoding of one bucket, µs in Redis per read."""
    redis.flushall()
    before = int(cast(dict[str, int], redis.info("memory"))["used_memory"])
    pipe = redis.pipeline(transaction=False)
    for serial in range(records):
        key, field = place(serial, fill, records)
        body = f'[1767571200,[1,"URL","https://factory.example/{serial}"]'.ljust(size, " ")
        if field is None:
            pipe.set(key, body)
        else:
            pipe.hset(key, field, body)
        if serial % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    used = int(cast(dict[str, int], redis.info("memory"))["used_memory"]) - before
    encoding = cast(bytes, redis.object("encoding", place(0, fill, records)[0])).decode()
    redis.config_resetstat()
    order = random.sample(range(records), min(records, 20_000))
    for start in range(0, len(order), 100):
        pipe = redis.pipeline(transaction=False)
        for serial in order[start : start + 100]:
            key, field = place(serial, fill, records)
            pipe.get(key) if field is None else pipe.hget(key, field)
        pipe.execute()
    stats = cast(dict[str, dict[str, float]], redis.info("commandstats"))
    read = stats.get("cmdstat_get") or stats["cmdstat_hget"]
    return used / records, encoding, read["usec_per_call"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="records (100000)")
    parser.add_argument("--size", type=int, default=242, help="bytes per record (242)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idnode-bucket-size-") as data:
        server = EmbeddedRedis(Path(data), appendfsync="no")
        try:
            redis = Redis.from_url(server.start())
            print("| records per bucket | B per record | encoding | read µs in Redis |")
            print("| --- | ---: | --- | ---: |")
            for fill in FILLS:
                per, encoding, micros = measure(redis, fill, args.records, args.size)
                label = "1 (strings)" if fill == 0 else str(fill)
                print(f"| {label} | {per:,.1f} | {encoding} | {micros:.2f} |", flush=True)
            redis.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
