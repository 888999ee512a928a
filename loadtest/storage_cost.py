"""What one identifier costs a node's store: Redis memory and AOF bytes per identifier,
and which key family holds them, measured on a fresh embedded Redis.

::

    python -m loadtest.storage_cost --count 200000
    python -m loadtest.storage_cost --count 200000 --indexed-types all --indexed-types default
    python -m loadtest.storage_cost --count 1000000 --indexed-types default --record-buckets 524288
    make bench-storage                      # 200,000 identifiers, all fields vs default

For each ``--indexed-types`` setting (``all``: every string type, the layout before
indexes were chosen; ``default``: the node's default; else a list such as
``URL,BATCH``), a secondary node's app (prefix 88.100) runs in this process on its own
embedded Redis (AOF on, ``appendfsync everysec``: the bytes are the same, the load is
faster) and registers ``--count`` identifiers shaped like the demo's (URL,
PRODUCT_NAME, BATCH, PRODUCTION_DATE, MANUFACTURER; a unique serial and URL each,
``loadtest.capacity_batch.batch_body``) through ``POST /api/batch/handles`` as ASGI
calls, the path the batch API takes. Then it reads:

- ``used_memory`` (INFO memory) after the load minus before it, per identifier;
- the AOF directory's size after ``BGREWRITEAOF``, per identifier;
- per key family (``r:`` record buckets, ``f:`` older nodes' full bodies, ``l:``
  listings, ``v:`` value indexes, ``n:`` number indexes, others): the key count from a
  SCAN of every key, and ``MEMORY USAGE key SAMPLES 0`` of up to ``--sample`` keys of
  the family, extrapolated by the count (every key of the index families: a paged
  index's counter, directory and pages differ too much in size to extrapolate); for
  ``r:`` also the fields (records) the sampled buckets hold and how many are compactly
  encoded.

Records are grouped in buckets (:mod:`registry.record_keys`); how full they are decides
the cost per record. By default the node gets the bucket count that gives a bucket as
many records as the node's default count (``--record-buckets``) gives at 1亿 identifiers
under one prefix (about 190), so the figures stand for a node at that scale; pass
``--record-buckets`` to measure another fill (the node's default on a small load: about
one record a bucket).

The table is printed and written, with the command, to ``reports/<timestamp>/storage.md``;
with two settings or more it also gives each one's memory as a ratio of the first's.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from loadtest.batch_cost import PREFIX, SECRET, _post
from loadtest.capacity_batch import BATCH, batch_body
from node.app import create_app
from node.config import NodeConfig
from node.embedded_redis import EmbeddedRedis
from registry.record_keys import DEFAULT_BUCKETS
from resolver.upstream import Credentials

FAMILIES = ("r:", "f:", "l:", "v:", "n:")
MEASURED_WHOLE = ("l:", "v:", "n:")  # every key measured (registry.paged_index)
OTHERS = "others"
ALL_TYPES = "all"
DEFAULT_TYPES = "default"
# Every type the demo-shaped identifiers carry: "all" indexes each, as every release
# before configurable indexes did.
DEMO_TYPES = "URL,PRODUCT_NAME,BATCH,PRODUCTION_DATE,MANUFACTURER"
FULL_SCALE = 100_000_000  # 1亿: what the node's default bucket count is sized for


def scaled_buckets(count: int) -> int:
    """Buckets giving ``count`` records the fill the default gives 1亿.

    >>> scaled_buckets(1_000_000), scaled_buckets(100_000_000) == DEFAULT_BUCKETS
    (5243, True)
    """
    return max(1, round(DEFAULT_BUCKETS * count / FULL_SCALE))


def family_of(key: bytes) -> str:
    """
    >>> family_of(b"v:{88.100}:url"), family_of(b"prefixes")
    ('v:', 'others')
    """
    head = key[:2].decode(errors="replace")
    return head if head in FAMILIES else OTHERS


@dataclass(slots=True)
class Family:
    """One key family's count and the memory of the keys sampled."""

    keys: int = 0
    sampled: int = 0
    sampled_bytes: int = 0
    sampled_fields: int = 0  # buckets: the records the sampled ones hold
    compact: int = 0  # buckets: sampled ones in the ziplist/listpack encoding

    @property
    def estimated_bytes(self) -> float:
        return self.sampled_bytes / self.sampled * self.keys if self.sampled else 0.0


@dataclass(slots=True)
class Measurement:
    """One setting's figures."""

    setting: str
    count: int
    used_memory: int  # after the load minus before it
    aof_bytes: int
    seconds: float
    families: dict[str, Family] = field(default_factory=dict)
    buckets: int = 0  # the store's bucket count

    def per_identifier(self, total: float) -> float:
        return total / self.count


def render(measurements: Sequence[Measurement], command: str) -> str:
    """The report: one table of totals, one breakdown per setting (pure, for tests).

    >>> m = Measurement("all", 10, 20_000, 5_000, 1.0, {"r:": Family(2, 2, 4000, 10, 2)}, 4)
    >>> print(render([m], "cmd").splitlines()[6])
    | all | 10 | 4 | 2,000 | 500 | 1.0 | 1.00 |
    >>> print(render([m], "cmd").splitlines()[-1])
    records per bucket (sampled): 5.0, compact: 100%
    """
    first = measurements[0]
    lines = [
        "# Storage cost per identifier",
        "",
        f"`{command}`",
        "",
        "| indexed types | identifiers | buckets | Redis used_memory B/id | AOF B/id "
        "| load s | memory vs first |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in measurements:
        ratio = m.used_memory / first.used_memory if first.used_memory else 0.0
        lines.append(
            f"| {m.setting} | {m.count:,} | {m.buckets:,} "
            f"| {m.per_identifier(m.used_memory):,.0f} "
            f"| {m.per_identifier(m.aof_bytes):,.0f} | {m.seconds:.1f} | {ratio:.2f} |"
        )
    for m in measurements:
        lines += [
            "",
            f"## {m.setting}: memory by key family (MEMORY USAGE, extrapolated)",
            "",
            "| family | keys | sampled | B/id | share of used_memory |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name in (*FAMILIES, OTHERS):
            fam = m.families.get(name, Family())
            share = fam.estimated_bytes / m.used_memory if m.used_memory else 0.0
            lines.append(
                f"| {name} | {fam.keys:,} | {fam.sampled:,} "
                f"| {m.per_identifier(fam.estimated_bytes):,.1f} | {share:.0%} |"
            )
        held = m.families.get("r:", Family())
        if held.sampled:
            lines += [
                "",
                f"records per bucket (sampled): {held.sampled_fields / held.sampled:.1f}, "
                f"compact: {held.compact / held.sampled:.0%}",
            ]
    return "\n".join(lines) + "\n"


def types_setting(setting: str) -> str | None:
    """The node's ``indexed_types`` for a benchmark setting (None: the default).

    >>> types_setting("all"), types_setting("default"), types_setting("URL,BATCH")
    ('URL,PRODUCT_NAME,BATCH,PRODUCTION_DATE,MANUFACTURER', None, 'URL,BATCH')
    """
    if setting == ALL_TYPES:
        return DEMO_TYPES
    if setting == DEFAULT_TYPES:
        return None
    return setting


async def load(redis_url: str, count: int, setting: str, buckets: int) -> float:
    """Register ``count`` demo-shaped identifiers through the batch API; seconds taken."""
    args: dict[str, object | None] = {
        "role": "secondary",
        "prefix": PREFIX,
        "redis_url": redis_url,
        "admin_secret": SECRET,
        "indexed_types": types_setting(setting),
        "record_buckets": str(buckets),
    }
    app = create_app(NodeConfig.from_sources(args, env={}))
    authorization = Credentials(f"300:0.NA/{PREFIX}", SECRET).header()
    began = time.monotonic()
    async with app.router.lifespan_context(app):
        for first in range(0, count, BATCH):
            size = min(BATCH, count - first)
            body = batch_body(PREFIX, first, size)
            await _post(app, body, authorization, expected=size)
    return time.monotonic() - began


async def used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def rewrite_aof(redis: Redis, directory: Path) -> int:
    """BGREWRITEAOF once no rewrite runs (Redis starts its own as the AOF grows), wait
    for it, and the AOF directory's size in bytes."""
    while True:
        await _rewrites_done(redis)
        try:
            await redis.bgrewriteaof()
            break
        except ResponseError:  # one started in between: wait for it and ask again
            continue
    await _rewrites_done(redis)
    return sum(f.stat().st_size for f in directory.rglob("*") if "appendonly" in str(f))


async def _rewrites_done(redis: Redis) -> None:
    while True:
        info = await redis.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return
        await asyncio.sleep(0.2)


async def families(redis: Redis, sample: int) -> dict[str, Family]:
    """Key counts by family from a SCAN of every key, and the memory of up to
    ``sample`` keys of each (SCAN's order is the hash table's: no family's keys cluster)."""
    found = {name: Family() for name in (*FAMILIES, OTHERS)}
    chosen = dict.fromkeys(found, 0)
    queued: list[tuple[str, bytes]] = []
    async for key in redis.scan_iter(count=1000):
        name = family_of(key)
        found[name].keys += 1
        if chosen[name] < sample or name in MEASURED_WHOLE:
            chosen[name] += 1
            queued.append((name, key))
        if len(queued) >= 500:
            await _sample(redis, queued, found)
    await _sample(redis, queued, found)
    return found


async def _sample(redis: Redis, queued: list[tuple[str, bytes]], found: dict[str, Family]) -> None:
    pipe = redis.pipeline(transaction=False)
    for name, key in queued:
        pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
        if name == "r:":
            pipe.hlen(key)
            pipe.object("encoding", key)
    replies = iter(await pipe.execute(raise_on_error=False))
    for name, _ in queued:
        used = next(replies)
        fields, encoding = (next(replies), next(replies)) if name == "r:" else (0, None)
        if used is not None:
            found[name].sampled += 1
            found[name].sampled_bytes += int(used)
            if isinstance(fields, int):  # not a bucket (an older layout's string): 0
                found[name].sampled_fields += fields
            found[name].compact += encoding in (b"ziplist", b"listpack")
    queued.clear()


async def measure_on(
    redis_url: str, data: Path, count: int, setting: str, sample: int, buckets: int
) -> Measurement:
    redis = Redis.from_url(redis_url)
    try:
        before = await used_memory(redis)
        seconds = await load(redis_url, count, setting, buckets)
        after = await used_memory(redis)
        aof = await rewrite_aof(redis, data)
        found = await families(redis, sample)
        return Measurement(setting, count, after - before, aof, seconds, found, buckets)
    finally:
        await redis.aclose()


def run(count: int, setting: str, sample: int, buckets: int | None = None) -> Measurement:
    """One setting on a fresh embedded Redis, its data removed afterwards (``buckets``
    None: :func:`scaled_buckets`)."""
    buckets = buckets or scaled_buckets(count)
    with tempfile.TemporaryDirectory(prefix="idnode-storage-cost-") as tmp:
        data = Path(tmp)
        redis = EmbeddedRedis(data, appendfsync="everysec")
        try:
            return asyncio.run(measure_on(redis.start(), data, count, setting, sample, buckets))
        finally:
            redis.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Redis memory and AOF bytes per identifier.")
    parser.add_argument("--count", type=int, default=200_000, help="identifiers loaded")
    parser.add_argument(
        "--indexed-types",
        action="append",
        help="'all', 'default' or a list such as URL,BATCH; repeat to compare "
        "(default: all, then default)",
    )
    parser.add_argument("--sample", type=int, default=2000, help="keys sampled per family")
    parser.add_argument(
        "--record-buckets",
        type=int,
        help="the store's bucket count (default: the fill the node's default gives 1亿)",
    )
    parser.add_argument("--reports", type=Path, default=Path("reports"), help="report folder")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    settings = args.indexed_types or [ALL_TYPES, DEFAULT_TYPES]
    measured = []
    for setting in settings:
        measured.append(run(args.count, setting, args.sample, args.record_buckets))
        print(f"{setting}: {measured[-1].used_memory / args.count:,.0f} B/id", flush=True)
    command = "python -m loadtest.storage_cost " + " ".join(
        [f"--count {args.count}"]
        + [f"--indexed-types {s}" for s in settings]
        + ([f"--record-buckets {args.record_buckets}"] if args.record_buckets else [])
    )
    report = render(measured, command)
    out = args.reports / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    (out / "storage.md").write_text(report)
    print(report, flush=True)
    print(f"written to {out / 'storage.md'}", flush=True)


if __name__ == "__main__":
    main()
