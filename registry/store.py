"""The Redis-backed authoritative store of handle records.

Key layout (``{...}`` is a Redis Cluster hash tag: every key of one prefix shares a slot,
so a write that touches a record and its indexes is one atomic script on one shard)::

    r:{<prefix>}:<handle key>     HASH  b = public body (the bytes a resolution returns)
                                        f = full body, only when some values are private
    l:{<prefix>}                  ZSET  handle texts under the prefix (listing, paging)
    v:{<prefix>}:<type key>       ZSET  "<value key> NUL <handle>" (reverse lookup)
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

import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from registry.change_feed import StreamId, has_gap, next_cursor
from registry.errors import StoreUnavailable
from registry.identifier import Handle, Prefix, prefix_problem
from registry.record import HandleRecord
from registry.search import ValuePattern, index_entries, intersect_in_order, split_member

ABSENT = "-"
PREFIXES_KEY = "prefixes"
CHANGES_KEY = "changes"
EPOCH_KEY = "changes:epoch"
DEFAULT_CHANGE_RETENTION_MS = 3_600_000
_SCAN_PAGE = 1000

# KEYS[1] record, KEYS[2] listing, KEYS[3..] reverse-index sets.
# ARGV[1] expected version ('-' = absent), ARGV[2] new public body ('' = delete),
# ARGV[3] new full body ('' = none), ARGV[4] listing member to remove ('' = none),
# ARGV[5] listing member to add ('' = none), then triples (op 'a'|'r', key number, member).
_COMMIT_LUA = """
local b = redis.call('HGET', KEYS[1], 'b')
local version = '-'
if b then
  version = redis.sha1hex(b .. '\\0' .. (redis.call('HGET', KEYS[1], 'f') or ''))
end
if version ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'b', ARGV[2])
  if ARGV[3] == '' then redis.call('HDEL', KEYS[1], 'f')
  else redis.call('HSET', KEYS[1], 'f', ARGV[3]) end
end
if ARGV[4] ~= '' then redis.call('ZREM', KEYS[2], ARGV[4]) end
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[2], 0, ARGV[5]) end
for i = 6, #ARGV, 3 do
  local key = KEYS[tonumber(ARGV[i + 1])]
  if ARGV[i] == 'a' then redis.call('ZADD', key, 0, ARGV[i + 2])
  else redis.call('ZREM', key, ARGV[i + 2]) end
end
return 1
"""
_COMMIT_SHA = hashlib.sha1(_COMMIT_LUA.encode()).hexdigest()


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


def version_of(public: bytes, full: bytes | None) -> str:
    return hashlib.sha1(public + b"\x00" + (full or b"")).hexdigest()


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
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

    def __init__(self, redis: Redis, *, change_retention_ms: int = DEFAULT_CHANGE_RETENTION_MS):
        self._redis = redis
        self.change_retention_ms = change_retention_ms

    async def ping(self) -> None:
        async with _translated():
            await self._redis.ping()

    async def public_body(self, handle: Handle) -> bytes | None:
        """The hot path: one HGET, the stored bytes as they are."""
        try:
            body = await self._redis.hget(record_key(handle), "b")
        except RedisError as exc:
            raise StoreUnavailable(f"The node's store (Redis) failed: {exc}") from exc
        return cast(bytes | None, body)

    async def public_bodies(self, handles: Sequence[Handle]) -> list[bytes | None]:
        """Several public bodies in one pipelined round trip."""
        async with _translated():
            pipe = self._redis.pipeline(transaction=False)
            for handle in handles:
                pipe.hget(record_key(handle), "b")
            return cast(list[bytes | None], await pipe.execute())

    async def load(self, handle: Handle) -> Stored | None:
        return (await self.load_many([handle]))[0]

    async def load_many(self, handles: Sequence[Handle]) -> list[Stored | None]:
        async with _translated():
            pipe = self._redis.pipeline(transaction=False)
            for handle in handles:
                pipe.hmget(record_key(handle), ["b", "f"])
            rows = await pipe.execute()
        return [_stored(public, full) for public, full in rows]

    async def commit(self, before: Stored | None, after: HandleRecord | None) -> bool:
        """Apply ``after`` (None deletes) if the record is still ``before``; False if not."""
        return (await self.commit_many([(before, after)]))[0]

    async def commit_many(
        self, changes: Sequence[tuple[Stored | None, HandleRecord | None]]
    ) -> list[bool]:
        """Commit several changes in one pipelined round trip; each is atomic on its own."""
        calls = [_commit_call(before, after) for before, after in changes]
        if not calls:
            return []
        prefixes = {after.handle.prefix for _, after in changes if after is not None}
        async with _translated():
            try:
                return await self._run_commits(calls, prefixes)
            except NoScriptError:
                await self._redis.script_load(_COMMIT_LUA)
                return await self._run_commits(calls, prefixes)

    async def _run_commits(
        self, calls: list[tuple[list[str], list[str | bytes]]], prefixes: set[str]
    ) -> list[bool]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.xadd(
            CHANGES_KEY,
            {"h": "\n".join(keys[0].partition("}:")[2] for keys, _ in calls)},
            minid=str(int(time.time() * 1000) - self.change_retention_ms),
            approximate=True,
        )
        if prefixes:
            pipe.sadd(PREFIXES_KEY, *prefixes)
        for keys, args in calls:
            pipe.evalsha(_COMMIT_SHA, len(keys), *keys, *args)
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
        return [bool(r) for r in committed]

    async def list_handles(
        self, prefix: Prefix, page: int, page_size: int
    ) -> tuple[int, list[str]]:
        """Total count and one page of the handles under exactly ``prefix``."""
        key = listing_key(prefix.text)
        start = page * page_size
        async with _translated():
            pipe = self._redis.pipeline(transaction=False)
            pipe.zcard(key)
            pipe.zrange(key, start, start + page_size - 1)
            total, members = await pipe.execute()
        return int(total), [m.decode() for m in members]

    async def changes(self, after: StreamId | None, limit: int) -> ChangePage:
        """Up to ``limit`` feed entries after ``after`` (none without it), with the cursor
        to read from next; see :mod:`registry.change_feed`."""
        async with _translated():
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
        async with _translated():
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

    async def _matching(self, prefix: str, term: ValuePattern) -> list[str]:
        key = value_index_key(prefix, term.type_key)
        low, high = term.lex_range()
        handles: list[str] = []
        offset = 0
        async with _translated():
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


def _stored(public: bytes | None, full: bytes | None) -> Stored | None:
    if public is None:
        return None
    return Stored(HandleRecord.decode(full or public), version_of(public, full))


def _commit_call(
    before: Stored | None, after: HandleRecord | None
) -> tuple[list[str], list[str | bytes]]:
    subject = after.handle if after is not None else before.record.handle if before else None
    if subject is None:
        raise ValueError("a commit needs a record before or after")
    prefix = subject.prefix
    keys = [record_key(subject), listing_key(prefix)]
    args: list[str | bytes] = [
        before.version if before else ABSENT,
        after.public_body() if after else b"",
        (after.full_body() or b"") if after else b"",
        before.record.handle.text if before and after is None else "",
        after.handle.text if after and before is None else "",
    ]
    old = index_entries(before.record if before else None)
    new = index_entries(after)
    key_numbers: dict[str, int] = {}
    for op, entries in (("r", old - new), ("a", new - old)):
        for type_key, member in sorted(entries):
            if type_key not in key_numbers:
                keys.append(value_index_key(prefix, type_key))
                key_numbers[type_key] = len(keys)
            args.extend([op, str(key_numbers[type_key]), member])
    return keys, args
