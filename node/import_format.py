"""How the lines of a bulk-import file become batch-API items (``idnode import``).

Two formats, one record per physical line (so a byte offset always falls between
records, which is what lets an interrupted import resume):

* **NDJSON**: each line is a batch-API item, ``{"handle": "88.100.1/X", "values": [...]}``
  with values shaped as in the REST API. The line's bytes are sent as they are: a node
  parses them anyway, and re-encoding 1亿 items on the client would cost as much CPU as
  a fifth of the node's work.
* **CSV**: a header ``handle,TYPE1,TYPE2,...`` then one row per identifier, each
  non-empty cell a string value of its column's type at index 1, 2, ... (the column's
  position). Quoted cells may hold commas but not line breaks.

Blank lines are skipped. A line that is not a record (not JSON, no ``handle``, a CSV row
of the wrong width) raises :class:`~registry.errors.InvalidValue` with the reason, and
the import reports it with its line number; everything else (values, rights) is checked
by the node, as for any batch::

    >>> fmt = CsvFormat.from_header(b"handle,URL,BATCH\\n")
    >>> fmt.item(b'88.100.1/a,https://x.cn/a,\\n')
    b'{"handle":"88.100.1/a","values":[{"index":1,"type":"URL","data":{"format":"string","value":"https://x.cn/a"}}]}'
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Protocol

import orjson

from registry.errors import ConfigError, InvalidValue

FORMATS = ("ndjson", "csv")
_SUFFIXES = {".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "ndjson", ".csv": "csv"}


class LineFormat(Protocol):
    def item(self, line: bytes) -> bytes:
        """The batch-API item (JSON bytes) a line holds; InvalidValue if none."""


def format_of(path: str, chosen: str | None) -> str:
    """The format named, else the one the file name's suffix says.

    >>> format_of("ids.csv", None), format_of("ids.txt", "ndjson")
    ('csv', 'ndjson')
    """
    if chosen is not None:
        if chosen not in FORMATS:
            raise ConfigError(f"--format is one of {', '.join(FORMATS)}, not {chosen!r}")
        return chosen
    for suffix, name in _SUFFIXES.items():
        if path.lower().endswith(suffix):
            return name
    raise ConfigError(f"cannot tell the format of {path} from its name: give --format")


def is_blank(line: bytes) -> bool:
    """Whether ``line`` holds only ASCII whitespace (what ``bytes.strip`` removes): a
    record's line is answered at its first byte, without a stripped copy of it.

    >>> is_blank(b" \\r\\n"), is_blank(b""), is_blank(b'{"handle":"88.100/a"}\\n')
    (True, True, False)
    """
    return not line or line.isspace()


@dataclass(frozen=True, slots=True)
class NdjsonFormat:
    """Lines already batch items, sent unchanged.

    By default a line is only checked to look like an object (``{`` ... ``}``): parsing
    every line on the client too cost about a fifth of the importer's CPU, and a node
    refuses a chunk holding a line that is no JSON object (400), or answers it with
    another number of results, after which the importer checks that chunk's lines in
    full (``strict``) and sends it again without the bad ones.
    """

    strict: bool = False

    def item(self, line: bytes) -> bytes:
        item = line.strip()
        if not self.strict and item[:1] == b"{" and item[-1:] == b"}":
            return item
        try:
            parsed = orjson.loads(item)
        except orjson.JSONDecodeError as exc:
            raise InvalidValue(f"not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise InvalidValue('a line is an object {"handle": ..., "values": [...]}')
        if not isinstance(parsed.get("handle"), str):
            raise InvalidValue('the line has no "handle" string')
        return item


@dataclass(frozen=True, slots=True)
class CsvFormat:
    """Rows under a ``handle,TYPE1,...`` header, each cell a string value."""

    types: tuple[str, ...]
    # Per column, the JSON that precedes the cell's value: built once, not per row.
    _heads: tuple[bytes, ...]

    @classmethod
    def from_header(cls, line: bytes) -> CsvFormat:
        cells = _cells(line)
        if not cells or cells[0].strip().lower() != "handle":
            raise ConfigError('a CSV import starts with a header "handle,TYPE1,TYPE2,..."')
        types = tuple(cell.strip() for cell in cells[1:])
        if not types or any(not t for t in types):
            raise ConfigError("the CSV header names a value type for every column after handle")
        heads = tuple(
            b'{"index":%d,"type":%s,"data":{"format":"string","value":'
            % (index, orjson.dumps(kind))
            for index, kind in enumerate(types, start=1)
        )
        return cls(types, heads)

    def item(self, line: bytes) -> bytes:
        cells = _cells(line)
        if len(cells) != len(self.types) + 1:
            raise InvalidValue(f"the row has {len(cells)} cells, the header {len(self.types) + 1}")
        handle = cells[0].strip()
        if not handle:
            raise InvalidValue("the row has no handle")
        values = b",".join(
            head + orjson.dumps(cell) + b"}}"
            for head, cell in zip(self._heads, cells[1:], strict=True)
            if cell
        )
        return b'{"handle":%s,"values":[%s]}' % (orjson.dumps(handle), values)


def _cells(line: bytes) -> list[str]:
    try:
        text = line.decode()
    except UnicodeDecodeError:
        raise InvalidValue("the line is not UTF-8") from None
    text = text.rstrip("\r\n")
    if '"' not in text:  # no quoting: a split gives csv's cells at a tenth of its cost
        return text.split(",") if text else []
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise InvalidValue(f"not a CSV row: {exc}") from None
    return rows[0] if rows else []
