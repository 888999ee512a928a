"""Where an interrupted import resumes (``idnode import``): the checkpoint.

A checkpoint records the first line and byte not yet acknowledged *in order*: chunks
go out several at a time and may be answered out of order, so :class:`Frontier` holds
an answered chunk back until every chunk before it is answered too, and only then does
the checkpoint move past it (written atomically: a temporary file renamed over the
old one, after an fsync). Its rejects are written at the same moment, and the
checkpoint records the rejects file's length, so a resumed import cuts the file back
to it: every reject is reported once.

A chunk may have been written by the node but not acknowledged when the import
stopped: it is sent again on resume, and since an import replaces existing handles
(``overwrite=true``), sending it again writes the same records and duplicates nothing.

The checkpoint also records the input's size and modification time: resuming on a
file that changed is refused (the offset would point into other lines).

>>> frontier = Frontier(first=0)
>>> frontier.answered(1, "b"), frontier.answered(0, "a"), frontier.answered(2, "c")
([], ['a', 'b'], ['c'])
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Generic, TypeVar

import orjson

from registry.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Source:
    """The input file as it was when the import started."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Source:
        stat = path.stat()
        return cls(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Lines before ``line`` (bytes before ``offset``) are done, with these counts.

    >>> cp = Checkpoint(Source("/a.csv", 10, 1), line=3, offset=40, imported=1, rejected=1,
    ...                 rejects_bytes=52)
    >>> Checkpoint.decode(cp.encode()) == cp
    True
    """

    source: Source
    line: int = 1
    offset: int = 0
    imported: int = 0
    rejected: int = 0
    rejects_bytes: int = 0

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def decode(cls, raw: bytes) -> Checkpoint:
        try:
            fields = orjson.loads(raw)
            source = Source(**fields.pop("source"))
            return cls(source, **fields)
        except (orjson.JSONDecodeError, TypeError, AttributeError, KeyError) as exc:
            raise ConfigError(f"the checkpoint file is damaged ({exc}): remove it") from None

    def resumable_for(self, source: Source) -> str | None:
        """Why this checkpoint cannot resume an import of ``source``, or None."""
        if self.source.path != source.path:
            return f"it belongs to {self.source.path}"
        if (self.source.size, self.source.mtime_ns) != (source.size, source.mtime_ns):
            return "the file changed since (size or modification time)"
        return None


class Frontier(Generic[T]):
    """Answered chunks (numbered from ``first``) released in their order."""

    def __init__(self, first: int) -> None:
        self._next = first
        self._waiting: dict[int, T] = {}

    def answered(self, number: int, chunk: T) -> list[T]:
        """Note chunk ``number`` answered; the chunks now next in order, in order."""
        self._waiting[number] = chunk
        released = []
        while self._next in self._waiting:
            released.append(self._waiting.pop(self._next))
            self._next += 1
        return released

    @property
    def pending(self) -> int:
        return len(self._waiting)


def load(path: Path) -> Checkpoint | None:
    try:
        return Checkpoint.decode(path.read_bytes())
    except FileNotFoundError:
        return None


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Replace the checkpoint atomically and durably (rename after fsync)."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as out:
        out.write(checkpoint.encode())
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
