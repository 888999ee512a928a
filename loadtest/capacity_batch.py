"""The batch-registration load of ``idnode bench --capacity``: batches of 2000 handles
posted back to back, a few in flight at once, for a fixed time.

::

    IDNODE_BENCH_IDENTITY=300:0.NA/88.102.1 IDNODE_BENCH_SECRET=demo-88.102.1 \\
    python -m loadtest.capacity_batch --url http://127.0.0.1:8003 --prefix 88.102.1 \\
        --first 0 --seconds 10 --in-flight 4

Handle ``n`` is ``<prefix>/cap-<n, 8 digits>`` (:func:`handle_name`) with five values
like the demo's sample identifiers (:func:`batch_items`). Batches take consecutive
numbers from ``--first``; one started before the time is up is awaited, and the rate is
the identifiers created over the time from the first request to the last answer. The
credentials come from the environment, not the command line (where ``ps`` shows them).

It prints one JSON line: ``count`` identifiers created, ``failed`` identifiers refused
or lost with a failed call, ``seconds``, the calls' ``p50_ms``/``p99_ms``, and ``next``,
the first number no batch used (numbers ``--first`` up to it hold identifiers when
nothing failed: the cache-miss scenario walks through them).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from loadtest.capacity_figures import Throughput, percentile
from registry.limits import Limits
from resolver.upstream import Credentials

BATCH = Limits().max_batch
SUFFIX = "cap-"
IDENTITY_ENV = "IDNODE_BENCH_IDENTITY"
SECRET_ENV = "IDNODE_BENCH_SECRET"
_PRODUCTS = ("5-axis machining centre", "CNC lathe CK6150", "Motorised spindle 24k rpm")


def handle_name(prefix: str, number: int) -> str:
    """
    >>> handle_name("88.102.1", 42)
    '88.102.1/cap-00000042'
    """
    return f"{prefix}/{SUFFIX}{number:08d}"


def batch_items(prefix: str, first: int, count: int) -> list[dict[str, Any]]:
    """Batch-API items for handles ``first`` ... ``first + count - 1``.

    >>> items = batch_items("88.102.1", 7, 2)
    >>> [i["handle"] for i in items], [v["type"] for v in items[0]["values"]][:2]
    (['88.102.1/cap-00000007', '88.102.1/cap-00000008'], ['URL', 'PRODUCT_NAME'])
    """
    items = []
    for number in range(first, first + count):
        fields = {
            "URL": f"https://id.capacity.example.cn/products/{SUFFIX}{number:08d}",
            "PRODUCT_NAME": _PRODUCTS[number % len(_PRODUCTS)],
            "BATCH": f"B-{number // 1000:06d}",
            "PRODUCTION_DATE": "2026-01-05",
            "MANUFACTURER": "Capacity Test Machinery",
        }
        values = [
            {"index": index, "type": kind, "data": {"format": "string", "value": value}}
            for index, (kind, value) in enumerate(fields.items(), start=1)
        ]
        items.append({"handle": handle_name(prefix, number), "values": values})
    return items


def batch_body(prefix: str, first: int, count: int) -> bytes:
    """``{"handles": batch_items(prefix, first, count)}`` as JSON, the same bytes orjson
    writes, formatted from a template: the generator shares the machine with the node
    under test, and building thousands of dicts per batch cost it a tenth of a core.

    >>> batch_body("88.102.1", 7, 2) == orjson.dumps({"handles": batch_items("88.102.1", 7, 2)})
    True
    """
    if orjson.dumps(prefix)[1:-1] != prefix.encode():
        raise ValueError(f"prefix {prefix!r} needs JSON escaping")
    items = []
    for number in range(first, first + count):
        suffix = f"{SUFFIX}{number:08d}"
        product, batch = _PRODUCTS[number % len(_PRODUCTS)], f"B-{number // 1000:06d}"
        items.append(_ITEM % (prefix, suffix, suffix, product, batch))  # _ITEM_FIELDS
    return b'{"handles":[' + ",".join(items).encode() + b"]}"


_ITEM_FIELDS = ("prefix", "suffix", "suffix", "product", "batch")  # in template order


def _item_template() -> str:
    """One batch item as orjson writes it, with a %s where each of ``_ITEM_FIELDS`` goes
    (positional: formatting from a dict cost the generator a third more)."""
    marks = {"prefix": "\x01", "suffix": "\x02", "product": "\x03", "batch": "\x04"}
    item = batch_items("P", 0, 1)[0]
    item["handle"] = f"{marks['prefix']}/{marks['suffix']}"
    fields = {v["type"]: v for v in item["values"]}
    fields["URL"]["data"]["value"] = f"https://id.capacity.example.cn/products/{marks['suffix']}"
    fields["PRODUCT_NAME"]["data"]["value"] = marks["product"]
    fields["BATCH"]["data"]["value"] = marks["batch"]
    text = orjson.dumps(item).decode().replace("%", "%%")
    escaped = {orjson.dumps(mark).decode()[1:-1]: name for name, mark in marks.items()}
    found = re.findall("|".join(map(re.escape, escaped)), text)  # in order
    if tuple(escaped[mark] for mark in found) != _ITEM_FIELDS:
        raise AssertionError(f"the batch item template changed: {text}")
    for mark in escaped:
        text = text.replace(mark, "%s")
    return text


async def post_batches(
    url: str,
    credentials: Credentials,
    prefix: str,
    *,
    first: int,
    seconds: float,
    in_flight: int,
) -> tuple[Throughput, int]:
    """Post batches to ``url``'s batch API for ``seconds``; returns the figures and the
    first number not used."""
    numbers = itertools.count(first, BATCH)
    target = f"{url.rstrip('/')}/api/batch/handles"
    headers = {"Authorization": credentials.header(), "Content-Type": "application/json"}
    durations: list[float] = []
    created = failed = 0
    began = time.perf_counter()
    deadline = began + seconds
    last = began

    async def sender(http: aiohttp.ClientSession) -> None:
        nonlocal created, failed, last
        while time.perf_counter() < deadline:
            body = batch_body(prefix, next(numbers), BATCH)
            sent = time.perf_counter()
            async with http.post(target, data=body, headers=headers) as response:
                raw = await response.read()
            last = time.perf_counter()
            durations.append(last - sent)
            answer = orjson.loads(raw) if response.status == 200 else {}
            created += int(answer.get("created", 0))
            failed += BATCH - int(answer.get("created", 0))

    timeout = aiohttp.ClientTimeout(total=max(60.0, 2 * seconds))
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(sender(http) for _ in range(in_flight)))
    durations.sort()
    figures = Throughput(
        count=created,
        failed=failed,
        seconds=last - began,
        p50_ms=round(percentile(durations, 50) * 1000, 3) if durations else None,
        p99_ms=round(percentile(durations, 99) * 1000, 3) if durations else None,
    )
    return figures, next(numbers)


_ITEM = _item_template()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Batch-registration load (see the module).")
    parser.add_argument("--url", required=True, help="the node holding --prefix")
    parser.add_argument("--prefix", required=True, help="an enterprise prefix, e.g. 88.102.1")
    parser.add_argument("--first", type=int, default=0, help="the first handle number")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--in-flight", type=int, default=4, help="batches sent at once")
    args = parser.parse_args(argv)
    identity, secret = os.environ.get(IDENTITY_ENV), os.environ.get(SECRET_ENV)
    if not identity or not secret:
        parser.error(f"set {IDENTITY_ENV} and {SECRET_ENV}")
    figures, following = asyncio.run(
        post_batches(
            args.url,
            Credentials(identity, secret),
            args.prefix,
            first=args.first,
            seconds=args.seconds,
            in_flight=max(1, args.in_flight),
        )
    )
    print(json.dumps({**figures.to_json(), "next": following}), flush=True)


if __name__ == "__main__":
    main()
