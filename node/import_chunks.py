"""Cutting an import file into chunks: one batch request each (``idnode import``).

A chunk holds whole lines, the items made of them, the line number of each item (to
name the line a node refuses) and the refusals found before sending (lines that are no
record). Its ``end_offset`` is the byte just after its last line: once the node has
acknowledged this chunk and every one before it, an interrupted import resumes there.

>>> from node.import_format import NdjsonFormat
>>> chunker = Chunker(NdjsonFormat(), size=2, first_line=1, offset=0)
>>> chunker.feed(b'{"handle":"88.1/a"}\\n'), chunker.feed(b"oops\\n")
([], [])
>>> chunk, = chunker.finish()
>>> chunk.lines, chunk.end_offset, [r.line for r in chunk.rejects]
([1], 25, [2])
"""

from __future__ import annotations

from dataclasses import dataclass, field

from node.import_format import LineFormat, is_blank
from registry.errors import IdnodeError


@dataclass(frozen=True, slots=True)
class Reject:
    """A line not imported, and why (``status`` 0: refused before sending)."""

    line: int
    handle: str | None
    reason: str
    status: int = 0
    response_code: int = 0

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"line": self.line, "reason": self.reason}
        if self.handle is not None:
            out["handle"] = self.handle
        if self.status:
            out["status"] = self.status
            out["responseCode"] = self.response_code
        return out


@dataclass(slots=True)
class Chunk:
    """Lines ``first_line`` .. ``end_line - 1``, ending at byte ``end_offset``."""

    number: int
    first_line: int
    end_line: int = 0
    end_offset: int = 0
    items: list[bytes] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line of each item
    rejects: list[Reject] = field(default_factory=list)

    def body(self) -> bytes:
        """The batch request's body, items as they are."""
        return b'{"handles":[' + b",".join(self.items) + b"]}"

    def checked(self, fmt: LineFormat) -> Chunk:
        """This chunk with every item checked again by ``fmt``: those it refuses become
        rejects (a node refused the chunk, or answered it with the wrong count)."""
        kept = Chunk(self.number, self.first_line, self.end_line, self.end_offset)
        kept.rejects = list(self.rejects)
        for line, item in zip(self.lines, self.items, strict=True):
            try:
                kept.items.append(fmt.item(item))
                kept.lines.append(line)
            except IdnodeError as exc:
                kept.rejects.append(Reject(line, None, exc.message))
        return kept


class Chunker:
    """Lines in, chunks of ``size`` items out (a chunk closes when it holds ``size``
    items: rejected and blank lines ride along without counting)."""

    def __init__(self, fmt: LineFormat, *, size: int, first_line: int, offset: int) -> None:
        if size < 1:
            raise ValueError("a chunk holds at least one item")
        self._fmt = fmt
        self._size = size
        self._line = first_line
        self._offset = offset
        self._count = 0
        self._chunk = Chunk(0, first_line)

    def feed(self, line: bytes) -> list[Chunk]:
        """Take the next line (with its line break); the chunk it closes, if any."""
        number = self._line
        self._line += 1
        self._offset += len(line)
        chunk = self._chunk
        if not is_blank(line):
            try:
                chunk.items.append(self._fmt.item(line))
                chunk.lines.append(number)
            except IdnodeError as exc:
                chunk.rejects.append(Reject(number, None, exc.message))
        if len(chunk.items) < self._size:
            return []
        return [self._close()]

    def finish(self) -> list[Chunk]:
        """The last, partly filled chunk (none if it holds no line)."""
        if self._line == self._chunk.first_line:
            return []
        return [self._close()]

    def _close(self) -> Chunk:
        chunk = self._chunk
        chunk.end_line, chunk.end_offset = self._line, self._offset
        self._count += 1
        self._chunk = Chunk(self._count, self._line)
        return chunk
