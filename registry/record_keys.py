"""Where a handle record and its indexes live in Redis, and which keys a change of it
touches; free of I/O (:mod:`registry.store` applies what this computes).

Key layout (``{...}`` is a Redis Cluster hash tag: every key of one prefix's shard
shares a slot, ``<prefix>`` below standing for the tag; the last column is Redis memory
per identifier for the demo-shaped identifiers of ``python -m loadtest.storage_cost``,
200,000 of them, prefix ``88.100``, one shard)::

    key                           type    holds                                  B/id
    r:{<prefix>}:<bucket>         HASH    <handle key's suffix> -> the record,      40
                                          every value, in the compact form        (~95 a
                                          (registry.stored_form), packed with a   bucket;
                                          dictionary (registry.packed_form); a    260
                                          bucket holds the records bucket_of()    unpacked,
                                          sends there                             328 as
                                                                                  strings)
    l:{<prefix>}                  STRING  the listing: index members of the       17.4
                                          handles under the prefix (listing,      (96 as
                                          paging), a paged set: this counts them, one
                                          l:{<prefix>}# the directory of pages,  ZSET)
                                          l:{<prefix>}#<sha1> the pages, each a
                                          compact ZSET of 128-256 members
                                          (registry.paged_index)
    v:{<prefix>}:<type key>       STRING  "<value key> NUL <member>" (reverse     URL 71.9
                                          lookup, equality and date ranges), a    (160 as
                                          paged set as l: is (with # and #<sha1>) one ZSET)
    n:{<prefix>}:<type key>       ZSET    <member> scored by its number         ~100 a
                                          (number ranges); one sorted set, not    type
                                          paged (registry.paged_index says why)

Index figures: 200,000 identifiers, ``--indexed-types default`` (URL, TEMPLATE; the
demo-shaped records carry no TEMPLATE), layout 6, ``PAGE_MAX`` 256; in brackets the
one-ZSET layout 5 measured the same way.

The ``r:`` figure: 39.9 B/id packed against 260.1 unpacked, in one
``python -m loadtest.storage_cost --count 200000 --indexed-types default`` each, on
this code and the one before (the whole store: 324 B/id of used_memory against 563,
AOF 119 B/id against 129: the AOF's RDB preamble compressed records already).

Only the types the node's :class:`registry.index_policy.IndexPolicy` covers have ``v:``
and ``n:`` keys. An index *member* names a handle by its suffix alone (the key holds the
prefix): ``88.100/ABC`` is ``ABC`` in ``l:{88.100}``, which saves the prefix and slash
(7-20 bytes) in every member of every index. A handle whose prefix is not spelled in
lower case (``88.ABC/x``) keeps its whole text after a NUL (``NUL 88.ABC/x``), so its
text comes back exactly as written; suffixes are printable, so the NUL is unambiguous.

Records are grouped in small hashes, *buckets* (layout 5): a record alone in a string key
costs Redis about 86 bytes besides its body (the key's dict entry, its name, its object,
allocator padding), a field of a hash small enough for Redis's ziplist (listpack)
encoding a few bytes. A prefix's records spread over a store's fixed number of buckets
(``store:buckets``, from ``--record-buckets``) by a CRC-32 of the handle key
(:func:`bucket_of`), so a bucket holds a few dozen records at the scale the count was
chosen for; Redis keeps a bucket in the compact encoding while it has at most
``hash-max-ziplist-entries`` fields each at most ``hash-max-ziplist-value`` bytes
(:mod:`node.embedded_redis` raises both). Layout 4 kept one string per record at
:func:`string_key`; :meth:`registry.store.HandleStore.upgrade` moves them.

*Shards* spread one prefix over several Redis Cluster slots, so a big enterprise does
not sit on one node of a cluster. A store has ``store:shards`` of them (from
``--prefix-shards``, a power of two dividing the bucket count; set when the store is
new, like ``store:buckets``). A handle's shard is its bucket's remainder
(:func:`shard_of`), and the tag of every key above is its shard's, ``<prefix>/<s>``
(:func:`shard_tag`; ``/`` is never part of a prefix): ``r:{88.100/3}:7``,
``l:{88.100/3}``, ``v:{88.100/3}:url``. A record and its index entries share a shard, so
a commit stays one script call in one slot; a listing, search or query reads every
shard of the prefix (:mod:`registry.store`). With one shard (the default, and every
store written before shards existed) the tag is the prefix alone: layout 6 unchanged.

Growing the count later (not built): with a power-of-two count, bucket ``b`` of ``n``
splits into ``b`` and ``b + n`` of ``2n`` (linear hashing); a split moves only that
bucket's fields, and a store noting which buckets have split reads either meanwhile.

>>> record_key(Handle.parse("88.100.1/ABC"), 1024), record_field(Handle.parse("88.100.1/ABC"))
('r:{88.100.1}:985', 'abc')
>>> record_key(Handle.parse("88.100.1/ABC"), 1024, 4), listing_key(shard_tag("88.100.1", 1, 4))
('r:{88.100.1/1}:985', 'l:{88.100.1/1}')
>>> string_key(Handle.parse("88.100.1/ABC")), full_key(Handle.parse("88.100.1/ABC"))
('r:{88.100.1}:88.100.1/abc', 'f:{88.100.1}:88.100.1/abc')
>>> index_member(Handle.parse("88.100.1/ABC")), handle_text("88.100.1", "ABC")
('ABC', '88.100.1/ABC')
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from registry.identifier import Handle
from registry.index_policy import IndexPolicy
from registry.record import HandleRecord
from registry.search import search_entries, spellings, split_member
from registry.stored_form import to_stored

WHOLE = "\x00"  # an index member holding a whole handle text (see the module docstring)

ADD = "a"
REMOVE = "r"


# Records per bucket, 1亿 of them under one prefix: about 190 packed records of ~40 B
# (HGET's scan of the ziplist ~1.5 µs in Redis, the largest bucket well under the 512
# fields of COMPACT_BUCKETS); a smaller store holds fewer per bucket and pays a bucket
# key for every few records (1,000,000: about 2 a bucket). See
# docs/reference/storage.md for the measurements behind the choice.
DEFAULT_BUCKETS = 1 << 19


# What Redis must allow for a bucket to stay in the compact encoding: a few hundred
# fields (a bucket's mean is ~190 at 1亿 a prefix), values up to 1 KiB (a demo-shaped
# record's stored form is ~240 B, ~20 B packed). Redis 7 calls them hash-max-listpack-*; 6.2 and 7
# both answer to these names. A bucket past either is converted to a hash table for
# good: it still works, at about the cost of a string per record.
COMPACT_BUCKETS = {"hash-max-ziplist-entries": 512, "hash-max-ziplist-value": 1024}


def bucket_encoding_problems(settings: dict[str, str]) -> list[str]:
    """What in a Redis server's settings (CONFIG GET) would keep buckets out of the
    compact encoding, as sentences for the log.

    >>> bucket_encoding_problems({"hash-max-ziplist-entries": "128",
    ...                           "hash-max-ziplist-value": "1024"})
    ['hash-max-ziplist-entries is 128, below 512: larger buckets become hash tables']
    """
    return encoding_problems(settings, COMPACT_BUCKETS, "larger buckets become hash tables")


def encoding_problems(settings: dict[str, str], wanted: dict[str, int], outcome: str) -> list[str]:
    """Each of the ``wanted`` minimums that ``settings`` (CONFIG GET) holds lower, as a
    sentence ending with ``outcome`` (what Redis then does)."""
    problems = []
    for name, least in wanted.items():
        raw = settings.get(name)
        if raw is not None and raw.isdigit() and int(raw) < least:
            problems.append(f"{name} is {raw}, below {least}: {outcome}")
    return problems


def bucket_of(handle_key: str, buckets: int) -> int:
    """The bucket of the handle with this (lower-cased) key, of ``buckets``: stable
    across processes and versions (CRC-32, not Python's salted ``hash``). The one place
    that decides it, so spreading a prefix over Redis Cluster slots changes only this."""
    return zlib.crc32(handle_key.encode()) % buckets


# Most shards a prefix may spread over (``store:shards``); Redis Cluster has 16384 slots.
MAX_SHARDS = 4096
SHARD_MARK = "/"  # between a prefix and its shard in a tag; never part of a prefix


def shard_of(handle_key: str, buckets: int, shards: int) -> int:
    """The shard of the handle with this (lower-cased) key, of ``shards``: its bucket's
    remainder, so a bucket's records are all in one shard (``buckets`` is a multiple
    of ``shards``, :func:`layout_problem`).

    >>> shard_of("88.100.1/abc", 1024, 4), bucket_of("88.100.1/abc", 1024)
    (1, 985)
    """
    return bucket_of(handle_key, buckets) % shards


def shard_tag(prefix: str, shard: int, shards: int) -> str:
    """The hash tag's text of ``prefix``'s shard ``shard`` of ``shards``: the prefix
    (lower-cased) alone with one shard, so a store of one shard keeps layout 6's keys.

    >>> shard_tag("88.100.1", 0, 1), shard_tag("88.100.1", 3, 4)
    ('88.100.1', '88.100.1/3')
    """
    prefix = prefix.lower()
    return prefix if shards == 1 else f"{prefix}{SHARD_MARK}{shard}"


def shard_tags(prefix: str, shards: int) -> list[str]:
    """The tags of all of ``prefix``'s shards, shard 0 first (a read fans out over them)."""
    return [shard_tag(prefix, shard, shards) for shard in range(shards)]


def tag_of(handle: Handle, buckets: int, shards: int) -> str:
    """The tag of the shard holding ``handle``: its record, and its index entries."""
    prefix = handle.key.partition("/")[0]
    if shards == 1:
        return prefix
    return f"{prefix}{SHARD_MARK}{shard_of(handle.key, buckets, shards)}"


def tag_prefix(tag: str) -> str:
    """The (lower-cased) prefix a tag belongs to.

    >>> tag_prefix("88.100.1/3"), tag_prefix("88.100.1")
    ('88.100.1', '88.100.1')
    """
    return tag.partition(SHARD_MARK)[0]


def key_tag(key: bytes) -> str:
    """The hash tag's text of a record or index key (``r:{88.100/3}:5`` -> ``88.100/3``).

    >>> key_tag(b"r:{88.100/3}:5"), key_tag(b"l:{88.100}#")
    ('88.100/3', '88.100')
    """
    return key.decode().partition("{")[2].partition("}")[0]


def layout_problem(buckets: int, shards: int) -> str | None:
    """Why a store cannot spread prefixes over ``buckets`` buckets and ``shards`` shards,
    or None: a shard holds whole buckets, so the count must be a multiple of it.

    >>> layout_problem(1024, 4) is None, layout_problem(3, 4)
    (True, 'record buckets (3) must be a multiple of prefix shards (4)')
    """
    if shards < 1 or shards > MAX_SHARDS or shards & (shards - 1):
        return f"prefix shards must be a power of two from 1 to {MAX_SHARDS}, not {shards}"
    if buckets % shards:
        return f"record buckets ({buckets}) must be a multiple of prefix shards ({shards})"
    return None


def record_key(handle: Handle, buckets: int, shards: int = 1) -> str:
    """The bucket hash holding ``handle``'s record (:func:`record_field` names it), in
    its shard's tag.

    >>> record_key(Handle.parse("88.100.1/ABC"), 1024, 4)
    'r:{88.100.1/1}:985'
    """
    bucket = bucket_of(handle.key, buckets)
    prefix = handle.key.partition("/")[0]
    if shards == 1:
        return f"r:{{{prefix}}}:{bucket}"
    return f"r:{{{prefix}{SHARD_MARK}{bucket % shards}}}:{bucket}"


def record_field(handle: Handle) -> str:
    """The record's field in its bucket: the handle key's suffix (lower-cased)."""
    return handle.key.partition("/")[2]


def bucket_handle(bucket_key: bytes, field: bytes) -> Handle:
    """The handle whose record is ``field`` of the bucket at ``bucket_key``.

    >>> bucket_handle(b"r:{88.100/3}:7", b"abc").text
    '88.100/abc'
    """
    prefix = tag_prefix(key_tag(bucket_key))
    return Handle.parse(f"{prefix}/{field.decode()}")


def is_bucket_key(key: bytes) -> bool:
    """A bucket's key (``r:{p}:<number>``), not a layout-4 record's (``r:{p}:<p/suffix>``).

    >>> is_bucket_key(b"r:{88.100}:33"), is_bucket_key(b"r:{88.100}:88.100/a}:33")
    (True, False)
    """
    return key.partition(b"}:")[2].isdigit()  # a prefix holds no "}", a suffix may


def string_key(handle: Handle) -> str:
    """Where layout 4 (and older) kept the record: one string per record."""
    return f"r:{{{handle.key.partition('/')[0]}}}:{handle.key}"


def full_key(handle: Handle) -> str:
    return f"f:{{{handle.key.partition('/')[0]}}}:{handle.key}"


# A node holds a few prefixes and types: every batch asks for the same index keys.
# Each takes a prefix or a shard's tag (shard_tag): the keys of one shard.
@lru_cache(maxsize=4096)
def listing_key(prefix: str) -> str:
    return f"l:{{{prefix.lower()}}}"


@lru_cache(maxsize=4096)
def value_index_key(prefix: str, type_key: str) -> str:
    return f"v:{{{prefix.lower()}}}:{type_key}"


@lru_cache(maxsize=4096)
def number_index_key(prefix: str, type_key: str) -> str:
    return f"n:{{{prefix.lower()}}}:{type_key}"


def index_member(handle: Handle) -> str:
    """How the indexes of ``handle``'s prefix name it: its suffix, or NUL + its text
    when its prefix is not written in lower case (the key holds the lower-cased one)."""
    prefix = handle.prefix
    if prefix.lower() == prefix:
        return handle.suffix
    return WHOLE + handle.text


def handle_text(prefix: str, member: str) -> str:
    """The handle an index member of ``prefix``'s keys names (``prefix`` as the key
    holds it, lower-cased)."""
    if member.startswith(WHOLE):
        return member[1:]
    return f"{prefix.lower()}/{member}"


def version_of(public: bytes, full: bytes | None) -> str:
    """What a commit compares: a record changed iff its version did."""
    return hashlib.sha1(public + b"\x00" + (full or b"")).hexdigest()


def subject_of(before: HandleRecord | None, after: HandleRecord | None) -> Handle:
    """The handle a change is about."""
    if after is not None:
        return after.handle
    if before is not None:
        return before.handle
    raise ValueError("a change needs a record before or after")


def index_changes(
    before: HandleRecord | None,
    after: HandleRecord | None,
    policy: IndexPolicy,
    tag: str | None = None,
) -> Iterator[tuple[str, str, str, float]]:
    """``(ADD | REMOVE, index key, member, score)`` for each index entry the change
    adds or removes, the listing's included; removals first, each in no set order.
    Only the types ``policy`` covers are indexed. The keys are those of ``tag``, the
    record's shard (:func:`tag_of`; None: the prefix, one shard).

    >>> rec = HandleRecord(Handle.parse("88.100/a"), ())
    >>> list(index_changes(None, rec, IndexPolicy()))
    [('a', 'l:{88.100}', 'a', 0.0)]
    >>> list(index_changes(None, rec, IndexPolicy(), "88.100/2"))
    [('a', 'l:{88.100/2}', 'a', 0.0)]
    """
    subject = subject_of(before, after)
    prefix = subject.prefix if tag is None else tag
    name = index_member(subject)
    old, old_numbers = search_entries(before, policy, name)
    new, new_numbers = search_entries(after, policy, name)
    if before is not None:
        if after is None:
            yield REMOVE, listing_key(prefix), name, 0.0
        for type_key, member in old - new:
            key = value_index_key(prefix, type_key)
            for form in spellings(*split_member(member.encode())):
                yield REMOVE, key, form.decode(), 0.0  # a member may be in an older form
        for type_key in old_numbers.keys() - new_numbers.keys():
            yield REMOVE, number_index_key(prefix, type_key), name, 0.0
    if after is not None:
        if before is None:
            yield ADD, listing_key(prefix), name, 0.0
        for type_key, member in new - old:
            yield ADD, value_index_key(prefix, type_key), member, 0.0
        for type_key, score in new_numbers.items():
            if old_numbers.get(type_key) != score:
                yield ADD, number_index_key(prefix, type_key), name, score


@dataclass(slots=True)
class KeyChanges:
    """Many changes (of different records) as the few commands that make them: fields
    to set and delete by bucket, index members to add and remove by key.

    >>> changes = KeyChanges(IndexPolicy(), 16)
    >>> changes.add(None, HandleRecord(Handle.parse("88.100/a"), ()))
    >>> changes.sets, changes.adds
    ({'r:{88.100}:6': ['a', b'[""]']}, {'l:{88.100}': ['0', 'a']})
    """

    policy: IndexPolicy
    buckets: int
    shards: int = 1

    sets: dict[str, list[str | bytes]] = field(default_factory=dict)  # field, body, ...
    deletes: dict[str, list[str]] = field(default_factory=dict)  # fields by bucket
    adds: dict[str, list[float | str]] = field(default_factory=dict)  # score, member, ...
    removes: dict[str, list[str]] = field(default_factory=dict)
    handle_keys: list[str] = field(default_factory=list)
    prefixes: set[str] = field(default_factory=set)  # prefixes that hold a record now

    def add(self, before: HandleRecord | None, after: HandleRecord | None) -> None:
        """One change; ``before`` as it was loaded (None: absent), ``after`` None deletes.
        Two changes of one record in the same KeyChanges are not supported."""
        subject = subject_of(before, after)
        self.handle_keys.append(subject.key)
        bucket, name = record_key(subject, self.buckets, self.shards), record_field(subject)
        tag = tag_of(subject, self.buckets, self.shards)
        if after is None:
            self.deletes.setdefault(bucket, []).append(name)
        else:
            self.sets.setdefault(bucket, []).extend((name, to_stored(after)))
            self.prefixes.add(subject.prefix)
        adds, removes = self.adds, self.removes
        for op, key, member, score in index_changes(before, after, self.policy, tag):
            if op == ADD:
                scored = adds.get(key)  # setdefault would make a list per member
                if scored is None:
                    scored = adds[key] = []
                # Most scores are the lexical sets' 0: packed as "0", not formatted.
                scored += (score or "0", member)
            else:
                removes.setdefault(key, []).append(member)
