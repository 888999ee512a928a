"""Cutting an import file into chunks: pure."""

from __future__ import annotations

import orjson
import pytest

from node.import_chunks import Chunk, Chunker, Reject
from node.import_format import NdjsonFormat


def _line(n: int) -> bytes:
    return b'{"handle":"88.100/x-%d","values":[]}\n' % n


def _cut(lines: list[bytes], size: int, first_line: int = 1, offset: int = 0) -> list[Chunk]:
    chunker = Chunker(NdjsonFormat(), size=size, first_line=first_line, offset=offset)
    chunks = [c for line in lines for c in chunker.feed(line)]
    return chunks + chunker.finish()


def test_chunks_hold_size_items_and_end_where_their_last_line_ends() -> None:
    lines = [_line(n) for n in range(5)]
    chunks = _cut(lines, 2)
    assert [c.lines for c in chunks] == [[1, 2], [3, 4], [5]]
    assert [c.number for c in chunks] == [0, 1, 2]
    assert [c.end_offset for c in chunks] == [
        sum(map(len, lines[:2])),
        sum(map(len, lines[:4])),
        sum(map(len, lines)),
    ]
    assert [(c.first_line, c.end_line) for c in chunks] == [(1, 3), (3, 5), (5, 6)]


def test_a_chunks_body_is_a_batch_of_its_lines() -> None:
    (chunk,) = _cut([_line(1), _line(2)], 5)
    assert orjson.loads(chunk.body()) == {
        "handles": [orjson.loads(_line(1)), orjson.loads(_line(2))]
    }


def test_bad_and_blank_lines_ride_along_without_counting() -> None:
    chunks = _cut([_line(1), b"\n", b"nope\n", _line(2), _line(3)], 2)
    assert [c.lines for c in chunks] == [[1, 4], [5]]
    assert chunks[0].rejects[0].line == 3
    assert chunks[0].rejects[0].reason.startswith("not JSON")
    assert chunks[1].first_line == 5


def test_a_resumed_cut_numbers_lines_and_bytes_from_where_it_starts() -> None:
    (chunk,) = _cut([_line(1)], 10, first_line=41, offset=1000)
    assert chunk.lines == [41]
    assert chunk.end_offset == 1000 + len(_line(1))


def test_a_refused_chunk_checked_again_keeps_the_items_and_rejects_the_rest() -> None:
    (chunk,) = _cut([_line(1), b'{"handle": 7}\n', b"nope\n", _line(4)], 5)
    assert chunk.lines == [1, 2, 4]  # the second line looks like an object
    checked = chunk.checked(NdjsonFormat(strict=True))
    assert checked.lines == [1, 4]
    assert [r.line for r in checked.rejects] == [3, 2]
    assert (checked.number, checked.first_line, checked.end_line, checked.end_offset) == (
        chunk.number,
        chunk.first_line,
        chunk.end_line,
        chunk.end_offset,
    )


def test_trailing_blank_lines_make_a_chunk_with_no_items_and_no_lines_make_none() -> None:
    (chunk,) = _cut([_line(1), b"\n"], 1)[1:]
    assert chunk.items == [] and chunk.end_line == 3
    assert _cut([], 3) == []


def test_a_chunk_holds_at_least_one_item() -> None:
    with pytest.raises(ValueError):
        Chunker(NdjsonFormat(), size=0, first_line=1, offset=0)


def test_a_reject_reports_the_node_status_only_when_the_node_refused() -> None:
    assert Reject(3, None, "not JSON").to_json() == {"line": 3, "reason": "not JSON"}
    assert Reject(4, "88.100/a", "no right", 403, 400).to_json() == {
        "line": 4,
        "handle": "88.100/a",
        "reason": "no right",
        "status": 403,
        "responseCode": 400,
    }
