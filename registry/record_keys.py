"""Where a handle record and its indexes live in Redis, and which keys a change of it
touches; free of I/O (:mod:`registry.store` applies what this computes).

Key layout (``{...}`` is a Redis Cluster hash tag: every key of one prefix shares a slot;
the last column is Redis memory per identifier for the demo-shaped identifiers of
``python -m loadtest.storage_cost``, 200,000 of them, prefix ``88.100``)::

    key                           type    holds                                  B/id
    r:{<prefix>}:<handle key>     STRING  the record, every value, in the          328
                                          compact form (registry.stored_form)
    f:{<prefix>}:<handle key>     STRING  older nodes' full body beside a            0
                                          public one (converted at start-up)
    l:{<prefix>}                  ZSET    index members of the handles under        96
                                          the prefix (listing, paging)
    v:{<prefix>}:<type key>       ZSET    "<value key> NUL <member>" (reverse    ~125 a
                                          lookup, equality and date ranges)       type (URL 160)
    n:{<prefix>}:<type key>       ZSET    <member> scored by its number         ~100 a
                                          (number ranges)                         type

Only the types the node's :class:`registry.index_policy.IndexPolicy` covers have ``v:``
and ``n:`` keys. An index *member* names a handle by its suffix alone (the key holds the
prefix): ``88.100/ABC`` is ``ABC`` in ``l:{88.100}``, which saves the prefix and slash
(7-20 bytes) in every member of every index. A handle whose prefix is not spelled in
lower case (``88.ABC/x``) keeps its whole text after a NUL (``NUL 88.ABC/x``), so its
text comes back exactly as written; suffixes are printable, so the NUL is unambiguous.

Bodies are plain strings, not fields of one hash per record, so a batch sets thousands
of records with a few MSETs instead of one command each.

>>> record_key(Handle.parse("88.100.1/ABC")), full_key(Handle.parse("88.100.1/ABC"))
('r:{88.100.1}:88.100.1/abc', 'f:{88.100.1}:88.100.1/abc')
>>> index_member(Handle.parse("88.100.1/ABC")), handle_text("88.100.1", "ABC")
('ABC', '88.100.1/ABC')
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from registry.identifier import Handle
from registry.index_policy import IndexPolicy
from registry.record import HandleRecord
from registry.search import search_entries
from registry.stored_form import to_stored

WHOLE = "\x00"  # an index member holding a whole handle text (see the module docstring)

ADD = "a"
REMOVE = "r"


def record_key(handle: Handle) -> str:
    return f"r:{{{handle.key.partition('/')[0]}}}:{handle.key}"


def full_key(handle: Handle) -> str:
    return f"f:{{{handle.key.partition('/')[0]}}}:{handle.key}"


# A node holds a few prefixes and types: every batch asks for the same index keys.
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
    before: HandleRecord | None, after: HandleRecord | None, policy: IndexPolicy
) -> Iterator[tuple[str, str, str, float]]:
    """``(ADD | REMOVE, index key, member, score)`` for each index entry the change
    adds or removes, the listing's included; removals first, each in no set order.
    Only the types ``policy`` covers are indexed.

    >>> rec = HandleRecord(Handle.parse("88.100/a"), ())
    >>> list(index_changes(None, rec, IndexPolicy()))
    [('a', 'l:{88.100}', 'a', 0.0)]
    """
    subject = subject_of(before, after)
    prefix = subject.prefix
    name = index_member(subject)
    old, old_numbers = search_entries(before, policy, name)
    new, new_numbers = search_entries(after, policy, name)
    if before is not None:
        if after is None:
            yield REMOVE, listing_key(prefix), name, 0.0
        for type_key, member in old - new:
            yield REMOVE, value_index_key(prefix, type_key), member, 0.0
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
    """Many changes (of different records) as the few commands that make them: bodies
    to set and keys to delete, index members to add and remove by key.

    >>> changes = KeyChanges(IndexPolicy())
    >>> changes.add(None, HandleRecord(Handle.parse("88.100/a"), ()))
    >>> changes.sets, changes.adds
    (['r:{88.100}:88.100/a', b'[""]'], {'l:{88.100}': ['0', 'a']})
    """

    policy: IndexPolicy

    sets: list[str | bytes] = field(default_factory=list)  # key, body, key, body, ...
    deletes: list[str] = field(default_factory=list)
    adds: dict[str, list[float | str]] = field(default_factory=dict)  # score, member, ...
    removes: dict[str, list[str]] = field(default_factory=dict)
    handle_keys: list[str] = field(default_factory=list)
    prefixes: set[str] = field(default_factory=set)  # prefixes that hold a record now

    def add(self, before: HandleRecord | None, after: HandleRecord | None) -> None:
        """One change; ``before`` as it was loaded (None: absent), ``after`` None deletes.
        Two changes of one record in the same KeyChanges are not supported."""
        subject = subject_of(before, after)
        self.handle_keys.append(subject.key)
        if after is None:
            self.deletes += (record_key(subject), full_key(subject))
        else:
            # The stored form holds every value: an older node's full body goes.
            self.sets += (record_key(subject), to_stored(after))
            if before is not None:
                self.deletes.append(full_key(subject))
            self.prefixes.add(subject.prefix)
        adds, removes = self.adds, self.removes
        for op, key, member, score in index_changes(before, after, self.policy):
            if op == ADD:
                scored = adds.get(key)  # setdefault would make a list per member
                if scored is None:
                    scored = adds[key] = []
                # Most scores are the lexical sets' 0: packed as "0", not formatted.
                scored += (score or "0", member)
            else:
                removes.setdefault(key, []).append(member)
