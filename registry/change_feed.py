"""The change feed: which handles changed at a node, for caches to invalidate. Pure.

Every commit at an authoritative node first appends the keys of the handles it touches to
a Redis stream (``changes``); recursive nodes read it through ``GET /api/changes`` and
drop those handles from their caches (see :mod:`resolver.invalidation`).

Stream ids are ``<milliseconds>-<sequence>``, so a cursor is also a point in time. That
gives useful facts without any bookkeeping:

* a follower whose node's feed could not be read before its first question starts at
  "when the first answer came, minus a margin for clock skew", and misses nothing that
  happened after that answer (normally it asks the feed for a "from now on" cursor
  first, which needs no clock);
* the stream keeps ``retention`` worth of entries (trimmed by MINID as it grows), so a
  cursor older than that may have missed changes: the feed says ``gap`` and the follower
  drops everything it cached;
* each node's feed has an ``epoch`` (random, made once per store): a different epoch
  means the node's store was replaced and its ids restarted, which is a gap too.

An append that precedes a commit which then loses its compare-and-set race is harmless:
it only invalidates a cache entry that was still right.

An entry holds the keys of one commit or batch, newline-separated: in field ``h`` as they
are, or, from :data:`PACK_FROM` keys on, deflated in field ``z`` (:func:`entry_fields`).
A bulk import of 1亿 identifiers within the retention keeps every key in the stream: a
key is ~28 bytes, and a batch's keys, which share their prefix and mostly their
beginnings, deflate to ~3 bytes each (``python -m loadtest.storage_cost``: the "others"
family, mostly the stream).

>>> fields = entry_fields([f"88.100/a{n}" for n in range(PACK_FROM)])
>>> list(fields), entry_keys({k.encode(): v for k, v in fields.items()})[-1]
(['z'], '88.100/a15')
>>> entry_keys({b"h": b"88.100/a\\n88.100/b"})
['88.100/a', '88.100/b']
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from registry.errors import InvalidValue

MAX_SEQ = 2**64 - 1
PACK_FROM = 16  # keys in an entry from which they are deflated (fewer gain too little)
_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?", re.ASCII)


@dataclass(frozen=True, order=True, slots=True)
class StreamId:
    """A Redis stream id, ordered as Redis orders them.

    >>> StreamId.parse("1700000000000-3") < StreamId.parse("1700000000001-0")
    True
    """

    ms: int
    seq: int = 0

    @classmethod
    def parse(cls, text: str) -> StreamId:
        match = _ID.fullmatch(text)
        if match is None:
            raise InvalidValue(f"'after' must be a change id like 1700000000000-0, got {text!r}")
        parsed = cls(int(match[1]), int(match[2] or 0))
        if parsed.ms > MAX_SEQ or parsed.seq > MAX_SEQ:
            raise InvalidValue(f"'after' is beyond the largest change id, got {text!r}")
        return parsed

    @classmethod
    def at(cls, seconds: float) -> StreamId:
        return cls(max(0, int(seconds * 1000)))

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"


def has_gap(after: StreamId, now: StreamId, retention_ms: int) -> bool:
    """Whether changes after ``after`` may already have been trimmed from the feed.

    >>> has_gap(StreamId(5_000), now=StreamId(10_000), retention_ms=60_000)
    False
    >>> has_gap(StreamId(5_000), now=StreamId(100_000), retention_ms=60_000)
    True
    """
    return after.ms < now.ms - retention_ms


def next_cursor(last_read: StreamId | None, now: StreamId, *, more: bool) -> StreamId:
    """Where the follower reads next.

    With more entries waiting, right after the last one read. Otherwise just before
    ``now`` (the store's clock when it was read): every entry up to then was returned,
    and a later append gets an id at ``now`` or after, so the cursor keeps up with the
    clock even on a quiet node and never drifts out of the retention window.

    >>> next_cursor(StreamId(7, 1), StreamId(9), more=False)
    StreamId(ms=8, seq=18446744073709551615)
    """
    if more and last_read is not None:
        return last_read
    floor = StreamId(max(0, now.ms - 1), MAX_SEQ)
    return max(floor, last_read) if last_read is not None else floor


def entry_fields(keys: Sequence[str]) -> dict[str, str | bytes]:
    """The stream entry's fields for these handle keys."""
    joined = "\n".join(keys)
    if len(keys) < PACK_FROM:
        return {"h": joined}
    return {"z": zlib.compress(joined.encode(), 1)}


def entry_keys(fields: Mapping[bytes, bytes]) -> list[str]:
    """The handle keys of a stream entry (either form)."""
    packed = fields.get(b"z")
    text = zlib.decompress(packed) if packed is not None else fields[b"h"]
    return text.decode().split("\n")
