"""Lexical indexes as paged sorted sets: many small sorted sets instead of one big one;
free of I/O (the Lua of ``paged_index.lua`` does the same against Redis, and
:class:`PagedSet` here is its model, which the tests hold both to).

A big sorted set costs Redis a skiplist node and a dict entry per member, about 100
bytes besides the member's own; a small one, in the compact (ziplist/listpack)
encoding, a few bytes. So the listing (``l:``) and the value indexes (``v:``), whose
members all have score 0 and are ordered by their bytes, are cut into *pages*::

    K                        STRING  how many members the set holds (counts stay O(1))
    K#                       ZSET    the pages' low bounds, score 0; the first is ""
    K#<SHA-1 of the bound>   ZSET    the members m with bound <= m < the next bound

A member goes to the page with the greatest bound at or below it (:func:`page_of`).
A page past :data:`PAGE_MAX` members is cut into pieces of ``PAGE_MAX / 2`` to
``PAGE_MAX`` (:func:`split_sizes`), each a new page named by its first member. A run
of at least ``PAGE_MAX / 4`` members added in order that no member of its page falls
within (a bulk load in order) becomes pages of its own, and the page's members above
it another: merged into the page, its members would be rewritten with every run (the
capacity benchmark's batch registration lost a fifth of its rate to that). A page
left empty leaves the directory (Redis deletes an empty sorted set itself), and the
set's keys all go with its last member. Pages are never merged: a page thinned by
removals costs its key (~100 bytes) until it empties.

Reads map a range onto pages (:func:`pages_for`): the page of the range's low end,
then the directory's bounds up to its high end. A count or an offset sums the pages'
counts (ZCARD, O(1) each); an offset ``o`` deep into a set costs about ``o / 190``
ZCARDs in one script call (at 10 million members, the last page's ~50,000: tens of
milliseconds, which the listing's deep pages pay). A whole set's count is its counter.

The number indexes (``n:``) stay one sorted set each: they are ordered by score and
probed by member (a query's ZSCORE), two orders a page could keep only with a second
member-to-page map that costs what paging saves; and the default configuration
indexes no number.

Every key of a set keeps its set's hash tag, so a set is in one Redis Cluster slot,
with the records whose entries it holds. A large prefix is spread over slots by
*shards* (:mod:`registry.record_keys`): each shard has its own sets (``l:{<prefix>/<s>}``
and its pages), so a commit of a record and its index entries stays one script call.

>>> s = PagedSet(page_max=4)
>>> for m in "abcdef":
...     _ = s.add(m)
>>> s.pages()
[('', ['a', 'b']), ('c', ['c', 'd', 'e', 'f'])]
>>> s.range("[b", "[d", 1, 5)
['c', 'd']
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from registry.record_keys import encoding_problems

# Members a page holds before it is cut in two. Each page costs its key and its
# directory entry (~200 bytes), spread over 128-256 members; a larger page makes a
# write's insert (a memmove in the compact encoding) and a read's scan of it longer.
PAGE_MAX = 256
# Members a page gets when an old sorted set is cut into pages (the 5 -> 6 upgrade):
# room for a few inserts before a page splits.
BULK_FILL = 192
# The families kept in pages (the listing and the value indexes); ``n:`` is not.
PAGED_FAMILIES = ("l:", "v:")
DIRECTORY = "#"
OLD_SET = "#zset"  # where the 5 -> 6 upgrade keeps an old sorted set it is converting

# What Redis must allow for a page to stay compact: PAGE_MAX members, each as long as
# a value-index member can be (512 bytes of value, NUL, a handle's 255). Redis 7 calls
# them zset-max-listpack-*; 6.2 and 7 both answer to these names.
COMPACT_PAGES = {"zset-max-ziplist-entries": PAGE_MAX, "zset-max-ziplist-value": 1024}


def page_encoding_problems(settings: dict[str, str]) -> list[str]:
    """What in a Redis server's settings (CONFIG GET) would keep index pages out of the
    compact encoding, as sentences for the log.

    >>> page_encoding_problems({"zset-max-ziplist-entries": "128"})
    ['zset-max-ziplist-entries is 128, below 256: larger index pages become skiplists']
    """
    return encoding_problems(settings, COMPACT_PAGES, "larger index pages become skiplists")


LUA = (Path(__file__).parent / "paged_index.lua").read_text()


def is_paged(key: str) -> bool:
    """Whether the index at ``key`` is kept in pages."""
    return key[:2] in PAGED_FAMILIES


def directory_key(key: str) -> str:
    return key + DIRECTORY


def page_key(key: str, bound: str) -> str:
    """The page of set ``key`` whose low bound is ``bound``.

    >>> page_key("l:{88.100}", "")
    'l:{88.100}#da39a3ee5e6b4b0d3255bfef95601890afd80709'
    """
    return f"{key}{DIRECTORY}{hashlib.sha1(bound.encode()).hexdigest()}"


def set_of(part: str) -> tuple[str, str]:
    """The set a paged key belongs to, and what the key is to it: ``"count"``,
    ``"directory"``, ``"page"``, or ``"old"`` (an old sorted set being converted).
    Older layouts' sorted sets, at the set's own key, are ``"count"`` too: their type
    tells them apart.

    >>> set_of("v:{88.100}:url#"), set_of("v:{88.100}:url#" + "0" * 40)
    (('v:{88.100}:url', 'directory'), ('v:{88.100}:url', 'page'))
    """
    head, sep, tail = part.rpartition(DIRECTORY)
    if not sep:
        return part, "count"
    if tail == "":
        return head, "directory"
    if tail == OLD_SET[1:]:
        return head, "old"
    if len(tail) == 40 and all(c in "0123456789abcdef" for c in tail):
        return head, "page"
    return part, "count"  # a type key holding "#"


def split_sizes(count: int, page_max: int = PAGE_MAX) -> list[int]:
    """How a page of ``count`` members is cut: [] while it fits, else pieces of
    ``page_max / 2`` to ``page_max`` members, in order.

    >>> split_sizes(256), split_sizes(257), split_sizes(700)
    ([], [128, 129], [140, 140, 140, 140, 140])
    """
    if count <= page_max:
        return []
    pieces = count // (page_max // 2)
    ends = [count * p // pieces for p in range(pieces + 1)]
    return [ends[p + 1] - ends[p] for p in range(pieces)]


def _key(member: str) -> bytes:
    return member.encode()  # Redis orders members by their bytes


def page_of(bounds: list[str], member: str) -> int:
    """The position of the page holding ``member``, of pages with these (sorted) low
    bounds, the first ``""``: the last bound at or below it."""
    return bisect.bisect_right([_key(b) for b in bounds], _key(member)) - 1


def pages_for(bounds: list[str], low: str, high: str) -> list[int]:
    """The pages that may hold members of the ZRANGEBYLEX range ``low``..``high``
    (``-``, ``+``, ``[m`` or ``(m``): the page of the low end, then each page whose
    bound is within the high end."""
    if not bounds:
        return []
    first = 0 if low == "-" else page_of(bounds, low[1:])
    return [p for p in range(first, len(bounds)) if p == first or within(bounds[p], "-", high)]


def within(member: str, low: str, high: str) -> bool:
    """Whether ``member`` is in the ZRANGEBYLEX range ``low``..``high``."""
    m = _key(member)
    if low != "-":
        bound = _key(low[1:])
        if m < bound or (low[0] == "(" and m == bound):
            return False
    if high != "+":
        bound = _key(high[1:])
        if m > bound or (high[0] == "(" and m == bound):
            return False
    return True


@dataclass
class PagedSet:
    """The paged layout of one set, in memory: what the Lua does, step for step."""

    page_max: int = PAGE_MAX
    bounds: list[str] = field(default_factory=list)  # sorted; the first is ""
    held: dict[str, list[str]] = field(default_factory=dict)  # bound -> sorted members
    count: int = 0

    def add(self, member: str) -> bool:
        if not self.bounds:
            self.bounds.append("")
            self.held[""] = []
        bound = self.bounds[page_of(self.bounds, member)]
        page = self.held[bound]
        keys = [_key(m) for m in page]
        at = bisect.bisect_left(keys, _key(member))
        if at < len(page) and page[at] == member:
            return False
        page.insert(at, member)
        self.count += 1
        sizes = split_sizes(len(page), self.page_max)
        start = sizes[0] if sizes else len(page)
        self.held[bound] = page[:start]
        for size in sizes[1:]:
            piece = page[start : start + size]
            self.held[piece[0]] = piece
            bisect.insort(self.bounds, piece[0], key=_key)
            start += size
        return True

    def remove(self, member: str) -> bool:
        if not self.bounds:
            return False
        bound = self.bounds[page_of(self.bounds, member)]
        page = self.held[bound]
        if member not in page:
            return False
        page.remove(member)
        self.count -= 1
        if not page and bound != "":
            self.bounds.remove(bound)
            del self.held[bound]
        if self.count == 0:
            self.bounds, self.held = [], {}
        return True

    def pages(self) -> list[tuple[str, list[str]]]:
        """(bound, members) of each page, in order (an emptied first page included)."""
        return [(b, list(self.held[b])) for b in self.bounds]

    def range(self, low: str, high: str, offset: int = 0, limit: int = -1) -> list[str]:
        """ZRANGEBYLEX over the pages :func:`pages_for` picks."""
        found = [
            m
            for p in pages_for(self.bounds, low, high)
            for m in self.held[self.bounds[p]]
            if within(m, low, high)
        ]
        return found[offset:] if limit < 0 else found[offset : offset + limit]


# Op codes of the commit scripts (registry.store) for an entry of a paged set.
PAGED_ADD = "A"
PAGED_REMOVE = "R"


def op_code(op: str, key: str) -> str:
    """The commit scripts' op for ``op`` (``a`` add, ``r`` remove) on the index ``key``:
    ``A``/``R`` when the index is paged."""
    if not is_paged(key):
        return op
    return PAGED_ADD if op == "a" else PAGED_REMOVE


# Reads of one paged set. KEYS[1]: the set. ARGV: 'range', min, max, offset, limit
# (ZRANGEBYLEX) | 'count', min, max (ZLEXCOUNT) | 'scores', member, ... (ZSCORE each).
READ_LUA = (
    LUA
    + """
local key, what = KEYS[1], ARGV[1]
if what == 'range' then
  return paged_range(key, ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
elseif what == 'count' then
  return paged_count(key, ARGV[2], ARGV[3])
end
return paged_scores(key, ARGV, 2, #ARGV)
"""
)

# Members added to one paged set (an index build). KEYS[1]: the set; ARGV: members,
# best in byte order. Returns how many were new.
ADD_LUA = LUA + "\nreturn paged_add(KEYS[1], ARGV, 1, #ARGV, false)\n"

# One step of cutting an old sorted set (KEYS[2], renamed from the set's key KEYS[1])
# into pages: its lowest ARGV[1] members become a page of KEYS[1], ARGV[2] times.
# They are above every member paged before (the old set is taken in order), so each is
# a new last page. Atomic: a member is in the old set or in a page, never both.
# Returns how many members moved.
CONVERT_LUA = (
    LUA
    + """
local key, old = KEYS[1], KEYS[2]
local fill, times = tonumber(ARGV[1]), tonumber(ARGV[2])
local dir = key .. '#'
local moved = 0
for _ = 1, times do
  local members = redis.call('ZRANGE', old, 0, fill - 1)
  if #members == 0 then
    break
  end
  local low = members[1]
  if redis.call('EXISTS', dir) == 0 then
    low = ''
  end
  local args = {}
  for _, m in ipairs(members) do
    args[#args + 1] = 0
    args[#args + 1] = m
  end
  redis.call('ZADD', page_key(key, low), unpack(args))
  redis.call('ZADD', dir, 0, low)
  redis.call('ZREMRANGEBYRANK', old, 0, #members - 1)
  redis.call('INCRBY', key, #members)
  moved = moved + #members
end
return moved
"""
)
