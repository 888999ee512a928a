"""The Redis-backed authoritative store of handle records.

Key layout (``{...}`` is a Redis Cluster hash tag: every key of one prefix shares a slot,
so a write that touches a record and its indexes is one atomic script on one shard)::

    r:{<prefix>}:<handle key>     HASH  b = public body (the bytes a resolution returns)
                                        f = full body, only when some values are private
    l:{<prefix>}                  ZSET  handle texts under the prefix (listing, paging)
    v:{<prefix>}:<type key>       ZSET  "<value key> NUL <handle>" (reverse lookup)
    n:{<prefix>}:<type key>       ZSET  handle scored by its number or date (range queries)
    prefixes                      SET   every prefix that has held a handle here
    changes                       STREAM  h = keys of the handles a commit touches
    changes:epoch                 STRING  random; a new one means a new store

Writes are optimistic: load a record with its version (a SHA-1 over its bodies), compute
the new record in pure code (:mod:`registry.record`), then commit with a script that
applies it, and its index changes, only if the version is unchanged. A lost race returns
False and the caller plans again. With AOF ``appendfsync always`` Redis fsyncs a write
before replying, so an acknowledged write survives a crash.

Before its commits, a write appends the handles' keys to the ``changes`` stream (the
change feed of :mod:`registry.change_feed`) in the same pipeline, so no commit is ever
acknowledged without its feed entry.

Redis errors never leave this module: they become :class:`StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from registry.change_feed import StreamId, has_gap, next_cursor
from registry.errors import StoreUnavailable
from registry.identifier import Handle, Prefix, prefix_problem
from registry.local_copy import LocalCopies
from registry.query import Condition, Query, driver, page_of
from registry.record import HandleRecord
from registry.search import (
    ValuePattern,
    index_entries,
    intersect_in_order,
    numeric_entries,
    split_member,
)

ABSENT = "-"
PREFIXES_KEY = "prefixes"
CHANGES_KEY = "changes"
EPOCH_KEY = "changes:epoch"
DEFAULT_CHANGE_RETENTION_MS = 3_600_000
_SCAN_PAGE = 1000
_PROBE_CHUNK = 5000  # candidates checked per pipeline
FOLLOW_INTERVAL = 0.05  # seconds between reads of the change stream for local copies
_FOLLOW_COUNT = 500

# One call commits every change of a batch that falls under one prefix (one hash slot),
# each change atomic on its own and applied only if its record is unchanged.
# KEYS: every key the changes touch, once. ARGV[1]: JSON, one list per change:
#   [record key number, expected version ('-' = absent), new public body ('' = delete),
#    new full body ('' = none), listing member to remove, listing member to add
#    ('' = none), listing key number, [[op 'a'|'r', key number, member, score], ...]]
# Returns one 1 (committed) or 0 (the record changed meanwhile) per change.
_COMMIT_LUA = """
local changes = cjson.decode(ARGV[1])
local done = {}
-- Index changes are gathered per key and applied at the end, a few hundred members a
-- call: members name their handle, so changes of different records never meet.
local adds, removes = {}, {}
local function add(key, score, member)
  local list = adds[key]
  if not list then list = {}; adds[key] = list end
  list[#list + 1] = score
  list[#list + 1] = member
end
local function remove(key, member)
  local list = removes[key]
  if not list then list = {}; removes[key] = list end
  list[#list + 1] = member
end
for i, change in ipairs(changes) do
  local record = KEYS[change[1]]
  local b = redis.call('HGET', record, 'b')
  local version = '-'
  if b then
    version = redis.sha1hex(b .. '\\0' .. (redis.call('HGET', record, 'f') or ''))
  end
  if version ~= change[2] then
    done[i] = 0
  else
    if change[3] == '' then
      redis.call('DEL', record)
    elseif change[4] ~= '' then
      redis.call('HSET', record, 'b', change[3], 'f', change[4])
    else
      redis.call('HSET', record, 'b', change[3])
      if b then redis.call('HDEL', record, 'f') end
    end
    if change[5] ~= '' then remove(change[7], change[5]) end
    if change[6] ~= '' then add(change[7], 0, change[6]) end
    for _, op in ipairs(change[8]) do
      if op[1] == 'a' then add(op[2], op[4], op[3]) else remove(op[2], op[3]) end
    end
    done[i] = 1
  end
end
for key, members in pairs(removes) do
  for first = 1, #members, 500 do
    redis.call('ZREM', KEYS[key], unpack(members, first, math.min(first + 499, #members)))
  end
end
for key, list in pairs(adds) do
  for first = 1, #list, 1000 do
    redis.call('ZADD', KEYS[key], unpack(list, first, math.min(first + 999, #list)))
  end
end
return done
"""
_COMMIT_SHA = hashlib.sha1(_COMMIT_LUA.encode()).hexdigest()

# KEYS: records of one prefix. Returns their public and full bodies, flat: b1, f1, b2, ...
_LOAD_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  local row = redis.call('HMGET', key, 'b', 'f')
  out[2 * i - 1] = row[1]
  out[2 * i] = row[2]
end
return out
"""
_LOAD_SHA = hashlib.sha1(_LOAD_LUA.encode()).hexdigest()
_LOAD_SCRIPT_FROM = 16  # handles; fewer are loaded with pipelined HMGETs


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One read of the change feed."""

    epoch: str
    handle_keys: list[str]
    next: StreamId
    more: bool
    gap: bool


@dataclass(frozen=True, slots=True)
class Stored:
    """A record as loaded, with the version a commit must still find."""

    record: HandleRecord
    version: str


def record_key(handle: Handle) -> str:
    tag = handle.key.partition("/")[0]
    return f"r:{{{tag}}}:{handle.key}"


def listing_key(prefix: str) -> str:
    return f"l:{{{prefix.lower()}}}"


def value_index_key(prefix: str, type_key: str) -> str:
    return f"v:{{{prefix.lower()}}}:{type_key}"


def number_index_key(prefix: str, type_key: str) -> str:
    return f"n:{{{prefix.lower()}}}:{type_key}"


def version_of(public: bytes, full: bytes | None) -> str:
    return hashlib.sha1(public + b"\x00" + (full or b"")).hexdigest()


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except RedisError as exc:
        raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc


class HandleStore:
    """Authoritative records in Redis.

    >>> store = HandleStore(Redis.from_url("redis://127.0.0.1:6379"))  # doctest: +SKIP
    >>> await store.public_body(Handle.parse("88.100/a"))               # doctest: +SKIP
    b'{"responseCode":1,"handle":"88.100/a","values":[...]}'
    """

    def __init__(
        self,
        redis: Redis,
        *,
        change_retention_ms: int = DEFAULT_CHANGE_RETENTION_MS,
        local_ttl: float = 0.0,
    ):
        self._redis = redis
        self.change_retention_ms = change_retention_ms
        # Hot public bodies kept in process (registry.local_copy); 0 keeps none.
        self.local = LocalCopies(local_ttl)

    async def ping(self) -> None:
        async with translated():
            await self._redis.ping()

    async def public_body(self, handle: Handle) -> bytes | None:
        """The hot path: the in-process copy, else one HGET; the stored bytes as they are."""
        key = handle.key
        kept, body = self.local.get(key)
        if kept:
            return body
        generation = self.local.generation
        try:
            body = cast(bytes | None, await self._redis.hget(record_key(handle), "b"))
        except RedisError as exc:
            raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc
        self.local.put(key, body, generation)
        return body

    async def follow_changes(self, interval: float = FOLLOW_INTERVAL) -> None:
        """Forget the in-process copies of handles other processes change, as their
        commits appear in the change stream, read every ``interval`` seconds (not a
        blocking read: a connection parked in XREAD BLOCK does not cancel cleanly);
        runs until cancelled."""
        cursor: str | bytes | None = None
        this = asyncio.current_task()
        while True:
            # redis-py can swallow a cancellation that lands while a command is on the
            # wire; the request stays recorded on the task, so honour it here.
            if this is not None and this.cancelling():
                raise asyncio.CancelledError
            try:
                if cursor is None:  # start at the stream's end: older writes are past
                    last = cast(
                        list[tuple[bytes, object]],
                        await self._redis.xrevrange(CHANGES_KEY, count=1),
                    )
                    cursor = last[0][0] if last else b"0-0"
                found = cast(
                    list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
                    await self._redis.xread({CHANGES_KEY: cursor}, count=_FOLLOW_COUNT),
                )
            except RedisError:
                self.local.clear()  # entries may have been missed: start afresh
                cursor = None
                await asyncio.sleep(1.0)
                continue
            read = 0
            for _, entries in found:
                for entry_id, fields in entries:
                    cursor, read = entry_id, read + 1
                    self.local.forget(fields[b"h"].decode().split("\n"))
            if read < _FOLLOW_COUNT:
                await asyncio.sleep(interval)

    async def public_bodies(self, handles: Sequence[Handle]) -> list[bytes | None]:
        """Several public bodies in one pipelined round trip."""
        async with translated():
            pipe = self._redis.pipeline(transaction=False)
            for handle in handles:
                pipe.hget(record_key(handle), "b")
            return cast(list[bytes | None], await pipe.execute())

    async def load(self, handle: Handle) -> Stored | None:
        return (await self.load_many([handle]))[0]

    async def load_many(self, handles: Sequence[Handle]) -> list[Stored | None]:
        """The records (with their versions) in one round trip: a few HMGETs pipelined,
        or for a batch one script call per prefix, which costs Redis and the client far
        less than thousands of commands."""
        if len(handles) <= _LOAD_SCRIPT_FROM:
            async with translated():
                pipe = self._redis.pipeline(transaction=False)
                for handle in handles:
                    pipe.hmget(record_key(handle), ["b", "f"])
                rows = await pipe.execute()
            return [_stored(public, full) for public, full in rows]
        groups: dict[str, list[int]] = {}  # by hash tag: one slot per script call
        for position, handle in enumerate(handles):
            groups.setdefault(handle.key.partition("/")[0], []).append(position)
        found: list[Stored | None] = [None] * len(handles)

        async def call() -> list[list[bytes | None]]:
            pipe = self._redis.pipeline(transaction=False)
            for positions in groups.values():
                keys = [record_key(handles[p]) for p in positions]
                pipe.evalsha(_LOAD_SHA, len(keys), *keys)
            return cast(list[list[bytes | None]], await pipe.execute())

        async with translated():
            try:
                replies = await call()
            except NoScriptError:
                await self._redis.script_load(_LOAD_LUA)
                replies = await call()
        for positions, flat in zip(groups.values(), replies, strict=True):
            for n, position in enumerate(positions):
                found[position] = _stored(flat[2 * n], flat[2 * n + 1])
        return found

    async def commit(self, before: Stored | None, after: HandleRecord | None) -> bool:
        """Apply ``after`` (None deletes) if the record is still ``before``; False if not."""
        return (await self.commit_many([(before, after)]))[0]

    async def commit_many(
        self, changes: Sequence[tuple[Stored | None, HandleRecord | None]]
    ) -> list[bool]:
        """Commit several changes in one round trip (one script call per prefix); each
        is atomic on its own. Returns, per change, whether it was committed."""
        if not changes:
            return []
        groups: dict[str, CommitGroup] = {}
        placed: list[tuple[CommitGroup, int]] = []
        for before, after in changes:
            subject = _subject(before, after)
            group = groups.get(subject.prefix)
            if group is None:
                group = groups[subject.prefix] = CommitGroup(subject.prefix)
            placed.append((group, group.add(before, after, subject)))
        prefixes = {after.handle.prefix for _, after in changes if after is not None}
        # Forgotten before and after: no copy read before the commit outlives it.
        touched = [key for group in groups.values() for key in group.handle_keys]
        self.local.forget(touched)
        async with translated():
            try:
                try:
                    results = await self._run_commits(list(groups.values()), touched, prefixes)
                except NoScriptError:
                    await self._redis.script_load(_COMMIT_LUA)
                    results = await self._run_commits(list(groups.values()), touched, prefixes)
            finally:
                self.local.forget(touched)
        return [bool(results[group.prefix][n]) for group, n in placed]

    async def _run_commits(
        self, groups: list[CommitGroup], touched: list[str], prefixes: set[str]
    ) -> dict[str, list[int]]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.xadd(
            CHANGES_KEY,
            {"h": "\n".join(touched)},
            minid=str(int(time.time() * 1000) - self.change_retention_ms),
            approximate=True,
        )
        if prefixes:
            pipe.sadd(PREFIXES_KEY, *prefixes)
        for group in groups:
            keys, argument = group.call()
            pipe.evalsha(_COMMIT_SHA, len(keys), *keys, argument)
        results = await pipe.execute(raise_on_error=False)
        head = 2 if prefixes else 1
        for result in results[:head]:
            if isinstance(result, Exception):
                raise StoreUnavailable(f"The node's store (Redis) failed: {result}") from result
        committed = results[head:]
        for result in committed:
            if isinstance(result, NoScriptError):
                raise result
            if isinstance(result, Exception):
                raise StoreUnavailable(f"The node's store (Redis) failed: {result}") from result
        return {group.prefix: list(done) for group, done in zip(groups, committed, strict=True)}

    async def list_handles(
        self, prefix: Prefix, page: int, page_size: int
    ) -> tuple[int, list[str]]:
        """Total count and one page of the handles under exactly ``prefix``."""
        key = listing_key(prefix.text)
        start = page * page_size
        async with translated():
            pipe = self._redis.pipeline(transaction=False)
            pipe.zcard(key)
            pipe.zrange(key, start, start + page_size - 1)
            total, members = await pipe.execute()
        return int(total), [m.decode() for m in members]

    async def changes(self, after: StreamId | None, limit: int) -> ChangePage:
        """Up to ``limit`` feed entries after ``after`` (none without it), with the cursor
        to read from next; see :mod:`registry.change_feed`."""
        async with translated():
            await self._redis.set(EPOCH_KEY, uuid.uuid4().hex, nx=True)
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(EPOCH_KEY)
            pipe.time()
            if after is not None:
                pipe.xrange(CHANGES_KEY, min=f"({after}", max="+", count=limit)
            epoch, (seconds, micros), *rest = await pipe.execute()
        now = StreamId(int(seconds) * 1000 + int(micros) // 1000)
        entries = rest[0] if rest else []
        keys = [key for _, fields in entries for key in fields[b"h"].decode().split("\n")]
        last = StreamId.parse(entries[-1][0].decode()) if entries else None
        more = len(entries) == limit
        return ChangePage(
            epoch=epoch.decode(),
            handle_keys=list(dict.fromkeys(keys)),
            next=next_cursor(last, now, more=more),
            more=more,
            gap=after is not None and has_gap(after, now, self.change_retention_ms),
        )

    async def prefixes(self) -> list[str]:
        async with translated():
            members = cast(set[bytes], await self._redis.smembers(PREFIXES_KEY))
        return sorted(m.decode() for m in members)

    async def search(
        self, terms: Sequence[ValuePattern], limit: int, *, within: Prefix | None = None
    ) -> list[str]:
        """Handles having a value matching every term, across the prefixes here
        (only those under ``within`` when given), at most ``limit``."""
        found: list[str] = []
        for prefix in await self.prefixes():
            if within is not None and (
                prefix_problem(prefix) is not None or not within.contains(Prefix(prefix))
            ):
                continue  # outside the requested scope (0.NA records never match one)
            groups = [await self._matching(prefix, term) for term in terms]
            found.extend(intersect_in_order(groups, limit - len(found)))
            if len(found) >= limit:
                break
        return found

    async def query(self, query: Query) -> tuple[int, list[str]]:
        """How many identifiers under ``query.prefix`` meet every condition, and the
        page asked for, in byte order; see :mod:`registry.query` for how."""
        conditions = query.conditions
        keys = [self._condition_key(query.prefix.text, c) for c in conditions]
        async with translated():
            pipe = self._redis.pipeline(transaction=False)
            for condition, key in zip(conditions, keys, strict=True):
                if condition.scored:
                    pipe.zcount(key, _score(condition.low), _score(condition.high))
                else:
                    pipe.zlexcount(key, *condition.lex_range())
            chosen = driver([int(n) for n in await pipe.execute()])
            if chosen is None:
                return 0, []
            lead, key = conditions[chosen], keys[chosen]
            if lead.scored:
                raw = cast(
                    list[bytes],
                    await self._redis.zrangebyscore(key, _score(lead.low), _score(lead.high)),
                )
                found = [m.decode() for m in raw]
            else:
                raw = cast(list[bytes], await self._redis.zrangebylex(key, *lead.lex_range()))
                found = [h for h in map(lead.handle_of, raw) if h is not None]
            candidates = list(dict.fromkeys(found))
            others = [
                (c, k) for i, (c, k) in enumerate(zip(conditions, keys, strict=True)) if i != chosen
            ]
            matching = await self._meeting(candidates, others)
        matching.sort()
        return len(matching), page_of(matching, query.page, query.page_size)

    async def _meeting(
        self, candidates: list[str], conditions: list[tuple[Condition, str]]
    ) -> list[str]:
        """The candidates that meet every condition: one ZSCORE per probe, pipelined."""
        if not conditions:
            return candidates
        kept: list[str] = []
        for start in range(0, len(candidates), _PROBE_CHUNK):
            chunk = candidates[start : start + _PROBE_CHUNK]
            pipe = self._redis.pipeline(transaction=False)
            for handle in chunk:
                for condition, key in conditions:
                    for probe in condition.probes(handle):
                        pipe.zscore(key, probe)
            scores = iter(await pipe.execute())
            for handle in chunk:
                meets = True
                for condition, _ in conditions:
                    got = [next(scores) for _ in condition.probes(handle)]
                    meets = meets and condition.accepts(got)
                if meets:
                    kept.append(handle)
        return kept

    @staticmethod
    def _condition_key(prefix: str, condition: Condition) -> str:
        if condition.scored:
            return number_index_key(prefix, condition.field)
        return value_index_key(prefix, condition.field)

    async def _matching(self, prefix: str, term: ValuePattern) -> list[str]:
        key = value_index_key(prefix, term.type_key)
        low, high = term.lex_range()
        handles: list[str] = []
        offset = 0
        async with translated():
            while True:
                page = cast(
                    list[bytes], await self._redis.zrangebylex(key, low, high, offset, _SCAN_PAGE)
                )
                for raw in page:
                    value_key, handle_text = split_member(raw)
                    if term.is_exact or term.matches(value_key):
                        handles.append(handle_text)
                if len(page) < _SCAN_PAGE:
                    return handles
                offset += _SCAN_PAGE


def _score(bound: float) -> str:
    """A ZCOUNT/ZRANGEBYSCORE bound, inclusive; infinities as Redis spells them."""
    if math.isinf(bound):
        return "+inf" if bound > 0 else "-inf"
    return repr(bound)


def _stored(public: bytes | None, full: bytes | None) -> Stored | None:
    if public is None:
        return None
    return Stored(HandleRecord.decode(full or public), version_of(public, full))


def _subject(before: Stored | None, after: HandleRecord | None) -> Handle:
    if after is not None:
        return after.handle
    if before is not None:
        return before.record.handle
    raise ValueError("a commit needs a record before or after")


class CommitGroup:
    """The changes under one prefix, as the arguments of one commit script call: every
    key once (records, the listing, value indexes), and per change the numbers of the
    keys it touches."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.handle_keys: list[str] = []
        self._keys: dict[str, int] = {}  # key -> its 1-based number in KEYS
        self._indexes: dict[tuple[str, bool], int] = {}
        self._changes: list[list[object]] = []

    def add(self, before: Stored | None, after: HandleRecord | None, subject: Handle) -> int:
        """Add one change; returns its position in the group."""
        self.handle_keys.append(subject.key)
        ops: list[list[object]] = []
        old = index_entries(before.record if before else None)
        new = index_entries(after)
        for op, entries in (("r", old - new), ("a", new - old)):
            for type_key, member in sorted(entries):
                ops.append([op, self._index(type_key, False), member, 0])
        old_numbers = numeric_entries(before.record if before else None)
        new_numbers = numeric_entries(after)
        stored_as = before.record.handle.text if before else subject.text
        for type_key in sorted(old_numbers.keys() - new_numbers.keys()):
            ops.append(["r", self._index(type_key, True), stored_as, 0])
        for type_key, score in sorted(new_numbers.items()):
            if old_numbers.get(type_key) != score:
                ops.append(["a", self._index(type_key, True), subject.text, score])
        public, full = after.bodies() if after else (b"", None)
        self._changes.append(
            [
                self._number(record_key(subject)),
                before.version if before else ABSENT,
                public.decode(),
                (full or b"").decode(),
                before.record.handle.text if before and after is None else "",
                after.handle.text if after and before is None else "",
                self._number(listing_key(self.prefix)),
                ops,
            ]
        )
        return len(self._changes) - 1

    def _index(self, type_key: str, numeric: bool) -> int:
        """The KEYS number of a value index of this prefix (text or numeric)."""
        number = self._indexes.get((type_key, numeric))
        if number is None:
            make = number_index_key if numeric else value_index_key
            number = self._indexes[(type_key, numeric)] = self._number(make(self.prefix, type_key))
        return number

    def _number(self, key: str) -> int:
        number = self._keys.get(key)
        if number is None:
            number = self._keys[key] = len(self._keys) + 1
        return number

    def call(self) -> tuple[list[str], bytes]:
        """KEYS and the JSON argument of the commit script."""
        return list(self._keys), orjson.dumps(self._changes)
