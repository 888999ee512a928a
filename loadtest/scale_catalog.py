"""The identifiers ``idnode bench --scale`` loads: a production's worth of variety, made
on the fly from a number alone.

Identifier ``k`` (0, 1, 2, ...) is a unit of a product made in a lot:

- every 1000 consecutive units form three lots of 200 to 600 units (the cut points
  drawn from the group's number), each lot one of :data:`PRODUCT_COUNT` products made
  on one day (:data:`LOTS_A_DAY` lots a day from :data:`FIRST_DAY`);
- each product belongs to one of :data:`MANUFACTURER_COUNT` manufacturers (Chinese
  names, as registrants in the plans write them, so values carry multi-byte UTF-8);
- the handle's suffix is the unit's serial (manufacturer code, product code, ``k``):
  unique, and the ``URL`` value contains it, as a product's page would.

Since a line is a pure function of ``k``, a range of identifiers can be written (or
written again, after an interruption) anywhere, without a file of 1亿 lines::

    >>> line(0).decode()[:60]
    '{"handle":"88.100/M43-P0093-0000000000","values":[{"index":1'
    >>> describe(0)
    Unit(serial='M43-P0093-0000000000', product=93, manufacturer=43, lot=0, day='2024-01-01')
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

PREFIX = "88.100"
PRODUCT_COUNT = 1000
MANUFACTURER_COUNT = 50
GROUP = 1000  # units cut into LOTS_A_GROUP lots
LOTS_A_GROUP = 3
LOT_MIN, LOT_SPREAD = 200, 201  # the first two lots of a group: 200..400 units
LOTS_A_DAY = 200
FIRST_DAY = date(2024, 1, 1)

_CITIES = ("武汉", "上海", "广州", "重庆", "沈阳", "西安", "青岛", "苏州", "长沙", "成都")
_TRADES = ("重型机床", "精密仪器", "汽车零部件", "电气设备", "工业机器人")
MANUFACTURERS = tuple(f"{city}{trade}有限公司" for city in _CITIES for trade in _TRADES)
_KINDS = (
    "CNC lathe", "Machining centre", "Motorised spindle", "Servo drive", "Hydraulic pump",
    "Gearbox", "Ball screw", "Linear guide", "Torque sensor", "PLC module", "Frequency inverter",
    "Welding robot", "Air compressor", "Ring main unit", "Transformer", "Circuit breaker",
    "Bearing unit", "Injection mould", "Laser cutter", "Press brake",
)  # fmt: skip
_SERIES = ("A", "B", "C", "D", "E", "F", "G", "H", "K", "L")
PRODUCTS = tuple(
    f"{kind} {series}{model}"
    for kind in _KINDS
    for series in _SERIES
    for model in ("100", "200", "300", "500", "800")
)
_DOMAINS = tuple(f"m{m:02d}.example.cn" for m in range(MANUFACTURER_COUNT))

_TEMPLATE = (
    '{"handle":"%s/%s","values":['
    '{"index":1,"type":"URL","data":{"format":"string","value":"https://%s/p/P%04d/%s"}},'
    '{"index":2,"type":"PRODUCT_NAME","data":{"format":"string","value":"%s"}},'
    '{"index":3,"type":"MANUFACTURER","data":{"format":"string","value":"%s"}},'
    '{"index":4,"type":"BATCH","data":{"format":"string","value":"M%02d-L%08d"}},'
    '{"index":5,"type":"PRODUCTION_DATE","data":{"format":"string","value":"%s"}}]}\n'
)


def _mix(value: int) -> int:
    """A cheap 32-bit integer hash (Knuth's multiplicative, folded), for draws that must
    be the same on every run."""
    value = (value * 2654435761) & 0xFFFFFFFF
    return value ^ (value >> 16)


@dataclass(frozen=True, slots=True)
class Unit:
    """What identifier ``k`` stands for."""

    serial: str
    product: int
    manufacturer: int
    lot: int
    day: str


def lot_of(k: int) -> int:
    """The lot unit ``k`` belongs to (lots numbered from 0, in order).

    >>> [lot_of(k) for k in (0, 999, 1000)]
    [0, 2, 3]
    """
    group, offset = divmod(k, GROUP)
    first = LOT_MIN + _mix(2 * group) % LOT_SPREAD
    second = first + LOT_MIN + _mix(2 * group + 1) % LOT_SPREAD
    return group * LOTS_A_GROUP + (0 if offset < first else 1 if offset < second else 2)


def describe(k: int) -> Unit:
    lot = lot_of(k)
    product = _mix(lot * 7 + 3) % PRODUCT_COUNT
    manufacturer = product % MANUFACTURER_COUNT
    day = FIRST_DAY + timedelta(days=lot // LOTS_A_DAY)
    serial = f"M{manufacturer:02d}-P{product:04d}-{k:010d}"
    return Unit(serial, product, manufacturer, lot, day.isoformat())


def handle(k: int) -> str:
    return f"{PREFIX}/{describe(k).serial}"


def line(k: int) -> bytes:
    """Identifier ``k`` as an ``idnode import`` NDJSON line (a batch-API item)."""
    return next(lines(k, k + 1))


def lines(start: int, stop: int) -> Iterator[bytes]:
    """The lines of identifiers ``start`` .. ``stop - 1``, in order.

    A lot's lines differ only in the serial: its text around the serial is made once
    per lot, so a line costs a format and a join (about a fifth of :func:`describe`'s
    cost, which matters at 30,000 lines a second on the node's two cores).

    >>> list(lines(998, 1001)) == [line(998), line(999), line(1000)]
    True
    """
    k = start
    while k < stop:
        unit = describe(k)
        end = min(stop, _lot_end(k))
        m = unit.manufacturer
        parts = _TEMPLATE % (
            PREFIX,
            "\0",
            _DOMAINS[m],
            unit.product,
            "\0",
            PRODUCTS[unit.product],
            MANUFACTURERS[m],
            m,
            unit.lot,
            unit.day,
        )
        head, middle, tail = (part.encode() for part in parts.split("\0"))
        serial = f"M{m:02d}-P{unit.product:04d}-%010d".encode()
        for n in range(k, end):
            own = serial % n
            yield b"".join((head, own, middle, own, tail))
        k = end


def _lot_end(k: int) -> int:
    """The first unit after ``k``'s lot."""
    group, offset = divmod(k, GROUP)
    first = LOT_MIN + _mix(2 * group) % LOT_SPREAD
    second = first + LOT_MIN + _mix(2 * group + 1) % LOT_SPREAD
    base = group * GROUP
    return base + (first if offset < first else second if offset < second else GROUP)


def write_range(path: Path, start: int, stop: int) -> int:
    """Identifiers ``start`` .. ``stop - 1`` into ``path`` (NDJSON), whole or not at all:
    written beside it and renamed, so an interrupted write leaves no partial file for a
    resumed run to import. The bytes written."""
    temporary = path.with_name(path.name + ".tmp")
    size = 0
    with temporary.open("wb", buffering=1 << 20) as out:
        for text in lines(start, stop):
            size += out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    return size
