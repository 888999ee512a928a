"""The Redis-backed authoritative store of handle records.

Records and indexes are laid out as :mod:`registry.record_keys` says; besides them::

    prefixes                      SET     every prefix that has held a handle here
    changes                       STREAM  h = keys of the handles a commit touches
    changes:epoch                 STRING  random; a new one means a new store
    store:layout                  STRING  "6": compact records in bucket hashes, index
                                          members hold suffixes, listing and value
                                          indexes in pages (:meth:`HandleStore.upgrade`)
    store:buckets                 STRING  how many buckets a prefix's records spread
                                          over; set once, when the store is first used
    store:shards                  STRING  how many shards (hash tags, Redis Cluster
                                          slots) a prefix spreads over
                                          (:func:`registry.record_keys.shard_tag`); set
                                          with store:buckets; absent: 1
    store:indexed                 STRING  the types the indexes are complete for
                                          (:class:`registry.index_policy.IndexPolicy`)
    store:upgrade                 HASH    a rebuild of the indexes under way: its phase,
                                          SCAN cursor, types and records done (resumable)
    z:dict:<id>                   STRING  a dictionary records are packed with, trained
                                          from the store's records (registry.packed_form);
                                          written once (SET NX), never changed, <= 1 KB

Writes are optimistic: load a record with its version (a SHA-1 over its stored form),
compute the new record in pure code (:mod:`registry.record`), then commit with a script
that applies it, and its index changes, only if the version is unchanged. A lost race
returns False and the caller plans again. A batch (:meth:`HandleStore.watched`) loads its
records with one script call per prefix shard and commits them a slice of ``WATCH_SLICE``
at a time, one script call per slice and shard (:data:`_SLICE_LUA`) that applies it
only if none of its records changed since: cheaper for both sides than the per-record
script (no JSON to decode, one ZADD per index key), and a record's own version is
compared, so a neighbour's write in the same bucket is no conflict (a WATCH of the
bucket would make it one). A refused slice's records are then committed one by one by
the per-record script, each against its own version. With AOF ``appendfsync always`` Redis
fsyncs a write before replying, so an acknowledged write survives a crash.

A prefix spread over several shards (``store:shards``, :mod:`registry.record_keys`) is
written a shard per script call, and read by asking every shard at once: a
resolution reads its record's bucket (its shard is known), a listing the shards'
counters and then the shards its page falls in (ordered by shard, then byte order), a
search or query one pipelined round trip a step with a command per shard; no read
takes keys of two shards in one command.

Before its commits, a write appends the handles' keys to the ``changes`` stream (the
change feed of :mod:`registry.change_feed`) in the same pipeline, ahead of the scripts,
so no commit is ever acknowledged without its feed entry.

Records are written packed (:mod:`registry.packed_form`: zstd with a dictionary, the
store's newest one, looked for every ``REFRESH_SECONDS``; a process trains and publishes
a new one as that module decides) and read in whichever form they are: a dictionary a
body names and the process does not know yet is read from ``z:dict:<id>`` once, then
kept (they never change). Versions are hashes of the bytes as stored, packed or not.

Redis errors never leave this module: they become :class:`StoreUnavailable` (a write
refused for a full disk or memory: :class:`StoreFull`) by :func:`store_error`.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import BusyLoadingError, NoScriptError, WatchError

from registry import keyspace, paged_index, scripts
from registry.change_feed import StreamId, entry_fields, entry_keys, has_gap, next_cursor
from registry.errors import ConfigError, StoreFull, StoreLoading, StoreUnavailable
from registry.identifier import Handle, Prefix, national_prefix_problem
from registry.index_policy import EVERY, IndexPolicy
from registry.local_copy import LocalCopies
from registry.packed_form import MARK, REFRESH_SECONDS, Dictionaries, dictionary_key, dictionary_of
from registry.query import Condition, Query, driver, page_of
from registry.record import HandleRecord
from registry.record_keys import (
    DEFAULT_BUCKETS,
    KeyChanges,
    bucket_handle,
    handle_text,
    index_changes,
    is_bucket_key,
    key_tag,
    layout_problem,
    listing_key,
    number_index_key,
    record_field,
    record_key,
    shard_tags,
    subject_of,
    tag_of,
    value_index_key,
    version_of,
)
from registry.redis_client import STORE_ERRORS, refusal_in
from registry.replication import NO_WAIT, ReplicaAcks
from registry.scripts import Script, pipelined
from registry.search import ValuePattern, intersect_in_order, split_member
from registry.stored_form import from_stored, is_compact, public_json, to_stored

ABSENT = "-"
PREFIXES_KEY = "prefixes"
CHANGES_KEY = "changes"
EPOCH_KEY = "changes:epoch"
DEFAULT_CHANGE_RETENTION_MS = 3_600_000
_SCAN_PAGE = 1000
_PROBE_CHUNK = 5000  # candidates checked per pipeline
_BUCKETS_PER_INDEX = 16  # buckets (a few dozen records each) per index-build transaction
_PAGES_PER_CALL = 16  # pages an upgrade's script call makes of an old sorted set
WATCH_SLICE = 250  # records per WATCH and transaction of a batch (HandleStore.watched)
FOLLOW_INTERVAL = 0.05  # seconds between reads of the change stream for local copies
_FOLLOW_COUNT = 500

LAYOUT_KEY = "store:layout"
LAYOUT = b"6"  # the last of HandleStore.upgrade_steps
BUCKETS_KEY = "store:buckets"
SHARDS_KEY = "store:shards"
INDEXED_KEY = "store:indexed"
UPGRADE_KEY = "store:upgrade"
_INDEX_FAMILIES = ("l:", "v:", "n:")
EVERY_TYPE = IndexPolicy(every=True)  # a store told nothing indexes every type

# One call commits changes that fall under one prefix (one hash slot), each change
# atomic on its own and applied only if its record is unchanged (its own field: a
# neighbour in the same bucket does not matter).
# KEYS: every key the changes touch, once. ARGV[1]: JSON, one list per change:
#   [bucket key number, field, expected version ('-' = absent),
#    number of the ARGV holding the new body (0 = delete),
#    [[op 'a'|'r', index key number, member, score as text], ...]]
# then the new bodies, ARGV[2], ...: packed bodies are binary, which JSON cannot carry.
# Returns one 1 (committed) or 0 (the record changed meanwhile) per change.
_COMMIT_LUA = (
    paged_index.LUA
    + """
local changes = cjson.decode(ARGV[1])
local done = {}
for i, change in ipairs(changes) do
  local bucket, field = KEYS[change[1]], change[2]
  local b = redis.call('HGET', bucket, field)
  local version = '-'
  if b then
    version = redis.sha1hex(b .. '\\0')
  end
  if version ~= change[3] then
    done[i] = 0
  else
    if change[4] == 0 then
      redis.call('HDEL', bucket, field)
    else
      redis.call('HSET', bucket, field, ARGV[change[4]])
    end
    for _, op in ipairs(change[5]) do
      if op[1] == 'a' then
        redis.call('ZADD', KEYS[op[2]], op[4], op[3])
      elseif op[1] == 'r' then
        redis.call('ZREM', KEYS[op[2]], op[3])
      elseif op[1] == 'A' then
        paged_add(KEYS[op[2]], { op[3] }, 1, 1, true)
      else
        paged_remove(KEYS[op[2]], { op[3] }, 1, 1)
      end
    end
    done[i] = 1
  end
end
return done
"""
)
_COMMIT = Script(_COMMIT_LUA)

# Many records' fields read in one command: KEYS[i] is the bucket of the i-th record,
# ARGV[i] its field. A batch touches about a bucket per record; an HMGET each cost the
# node's Python more than the records' whole planning (redis-py packs and parses every
# command), one script call the same for all.
_FIELDS_GET_LUA = """
local found = {}
for i = 1, #KEYS do
  found[i] = redis.call('HGET', KEYS[i], ARGV[i])
end
return found
"""
# A batch's slice of changes under one prefix, all or nothing: applied only if every
# record still has the version it was planned on (its own field: a neighbour in the
# same bucket does not matter, as it would under a WATCH of the bucket).
# KEYS: the n records' buckets (KEYS[i] the i-th's), then the index keys.
# ARGV[1] = n; ARGV[3i-1], ARGV[3i], ARGV[3i+1]: the i-th's field, expected version
# ('-' = absent), new stored form ('' = delete); then index groups: 'a'|'r', key
# number, m, then m (score, member) pairs for 'a' or m members for 'r'; 'A'|'R' for
# a paged set (registry.paged_index), then m members (for 'A' in byte order, which
# the script relies on: it cuts them into pages' runs by binary search).
# Returns the numbers of the records that changed: empty when it applied the slice.
_SLICE_LUA = (
    paged_index.LUA
    + """
local n = tonumber(ARGV[1])
local changed = {}
for i = 1, n do
  local b = redis.call('HGET', KEYS[i], ARGV[3 * i - 1])
  local version = '-'
  if b then
    version = redis.sha1hex(b .. '\\0')
  end
  if version ~= ARGV[3 * i] then
    changed[#changed + 1] = i
  end
end
if #changed > 0 then
  return changed
end
for i = 1, n do
  if ARGV[3 * i + 1] == '' then
    redis.call('HDEL', KEYS[i], ARGV[3 * i - 1])
  else
    redis.call('HSET', KEYS[i], ARGV[3 * i - 1], ARGV[3 * i + 1])
  end
end
local a = 3 * n + 2
while a <= #ARGV do
  local op, key, m = ARGV[a], KEYS[tonumber(ARGV[a + 1])], tonumber(ARGV[a + 2])
  a = a + 3
  if op == 'a' then
    redis.call('ZADD', key, unpack(ARGV, a, a + 2 * m - 1))
    a = a + 2 * m
  elseif op == 'r' then
    redis.call('ZREM', key, unpack(ARGV, a, a + m - 1))
    a = a + m
  elseif op == 'A' then
    paged_add(key, ARGV, a, a + m - 1, true)
    a = a + m
  else
    paged_remove(key, ARGV, a, a + m - 1)
    a = a + m
  end
end
return changed
"""
)
_SLICE = Script(_SLICE_LUA)
_UNPACKED = 2000  # items per ZADD/ZREM in the slice script (Lua's stack holds ~8000)
_CLOCK_LUA = "return redis.call('TIME')"  # the server's time, where KEYS[1] is
_PAGED_READ = Script(paged_index.READ_LUA)  # reads of a paged set
_PAGED_ADD = Script(paged_index.ADD_LUA)  # members added to a paged set (index builds)
_READS = (_PAGED_READ,)  # the scripts a read pipeline calls (scripts.pipelined)
# The scripts called by their SHA-1, loaded as the node starts (HandleStore.upgrade).
_SCRIPTS = (_COMMIT, _SLICE, _PAGED_READ, _PAGED_ADD)


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One read of the change feed."""

    epoch: str
    handle_keys: list[str]
    next: StreamId
    more: bool
    gap: bool


UpgradeProgress = Callable[[str, int], None]  # a step's name, records gone through


class _Progress:
    """An upgrade's progress, told to its :data:`UpgradeProgress` if it has one."""

    def __init__(self, tell: UpgradeProgress | None = None) -> None:
        self._tell = tell
        self._step, self._done = "", 0

    def begin(self, step: str) -> None:
        self._step, self._done = step, 0
        if self._tell is not None:
            self._tell(step, 0)

    def advance(self, records: int) -> None:
        self._done += records
        if self._tell is not None:
            self._tell(self._step, self._done)


@dataclass(frozen=True, slots=True)
class UpgradeStep:
    """One change of the store's layout (:meth:`HandleStore.upgrade`): what it does, and
    the coroutine doing it (returns how many records it converted)."""

    layout: bytes  # the value of the layout key once it has run
    name: str
    run: Callable[[], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Stored:
    """A record as loaded, with the version a commit must still find."""

    record: HandleRecord
    version: str


def store_error(exc: BaseException) -> StoreUnavailable:
    """The node's error for a Redis failure, naming its cause."""
    if refused := refusal_in(exc):
        return StoreFull(str(refused))
    if isinstance(exc, BusyLoadingError):
        return StoreLoading("The node's store (Redis) is loading its data; try again")
    if str(exc) == "No connection available.":  # the pool's wait ran out
        return StoreUnavailable("The node's store is busy: no Redis connection came free")
    return StoreUnavailable(f"The node's store (Redis) failed: {exc}")


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except STORE_ERRORS as exc:
        raise store_error(exc) from exc


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
        indexes: IndexPolicy = EVERY_TYPE,
        record_buckets: int = DEFAULT_BUCKETS,
        prefix_shards: int = 1,
        replica_acks: ReplicaAcks = NO_WAIT,
        log: Callable[[str, dict[str, object]], None] | None = None,
    ):
        self._redis = redis
        # Replicas that must confirm each commit before it is acknowledged.
        self.replica_acks = replica_acks
        self._converting = redis.register_script(paged_index.CONVERT_LUA)  # layout 6
        # The bucket count a new store gets; a store keeps the one it was created with.
        self._new_buckets = record_buckets
        self._buckets = 0  # read from the store on first use (buckets())
        self._new_shards = prefix_shards  # likewise for the shard count
        self._shards = 0
        self.refused_slices = 0  # batch transactions Redis refused (WatchedBatch)
        # Which value types are indexed; widened by templates' queryable items (learn).
        self.indexes = indexes
        self._log = log or (lambda message, extra: None)
        self._progress = _Progress()  # of the upgrade running, if any (upgrade())
        self._builds: set[asyncio.Task[None]] = set()
        self.change_retention_ms = change_retention_ms
        # Hot public bodies kept in process (registry.local_copy); 0 keeps none.
        self.local = LocalCopies(local_ttl)
        # The dictionaries records are packed with (registry.packed_form).
        self.dictionaries = Dictionaries()
        self._dictionaries_seen = -math.inf  # when the store was last asked for newer ones

    async def ping(self) -> None:
        async with translated():
            await self._redis.ping()

    async def persistence(self) -> dict[str, Any]:
        """Redis's ``INFO persistence`` (answered while it loads its data, too)."""
        async with translated():
            return dict(await self._redis.info("persistence"))

    async def buckets(self) -> int:
        """How many buckets each prefix's records spread over (``store:buckets``): the
        store's own, set to this node's ``record_buckets`` when the store is new."""
        if not self._buckets:
            await self._settle()
        return self._buckets or self._new_buckets

    async def shards(self) -> int:
        """How many shards each prefix spreads over (``store:shards``): the store's own,
        set to this node's ``prefix_shards`` when the store is new; a store written
        before shards existed (it has a bucket count, a layout or prefixes) has one."""
        if not self._shards:
            await self._settle()
        return self._shards or self._new_shards

    async def _settle(self) -> None:
        """Read (or, for a new store, set) the bucket and shard counts; a pair that
        cannot work together is a :class:`registry.errors.ConfigError`."""
        async with translated():
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(BUCKETS_KEY)
            pipe.get(SHARDS_KEY)
            pipe.exists(LAYOUT_KEY)
            pipe.exists(PREFIXES_KEY)
            buckets, shards, *older = await pipe.execute()
        try:
            async with translated():
                if shards is None:
                    new = 1 if buckets is not None or any(older) else self._new_shards
                    await self._redis.set(SHARDS_KEY, new, nx=True)
                    shards = await self._redis.get(SHARDS_KEY)
                if buckets is None:
                    await self._redis.set(BUCKETS_KEY, self._new_buckets, nx=True)
                    buckets = await self._redis.get(BUCKETS_KEY)
        except StoreFull:
            # Writes refused (a full disk): no record can be written either, and reads
            # find none; the counts are set by the first write after.
            return
        kept_buckets, kept_shards = int(buckets or self._new_buckets), int(shards or 1)
        if problem := layout_problem(kept_buckets, kept_shards):
            raise ConfigError(f"The store cannot be used: {problem}")
        self._buckets, self._shards = kept_buckets, kept_shards

    async def public_body(self, handle: Handle) -> bytes | None:
        """The hot path: the in-process copy, else one GET and the answer built from the
        stored form (:func:`registry.stored_form.public_json`), then kept in process."""
        key = handle.key
        kept, body = self.local.get(key)
        if kept:
            return body
        generation = self.local.generation
        buckets = self._buckets or await self.buckets()
        place = record_key(handle, buckets, self._shards or await self.shards())
        try:
            body = cast(bytes | None, await self._redis.hget(place, record_field(handle)))
        except STORE_ERRORS as exc:
            raise store_error(exc) from exc
        if body is not None:
            if body[0] == MARK:
                body = await self._unpacked(body, record_field(handle))
            body = public_json(body, handle)  # built once, then kept in process
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
            except STORE_ERRORS:
                self.local.clear()  # entries may have been missed: start afresh
                cursor = None
                await asyncio.sleep(1.0)
                continue
            read = 0
            for _, entries in found:
                for entry_id, fields in entries:
                    cursor, read = entry_id, read + 1
                    self.local.forget(entry_keys(fields))
            if read < _FOLLOW_COUNT:
                await asyncio.sleep(interval)

    async def public_bodies(self, handles: Sequence[Handle]) -> list[bytes | None]:
        """Several public bodies in one pipelined round trip."""
        buckets = self._buckets or await self.buckets()
        shards = self._shards or await self.shards()
        async with translated():
            pipe = self._redis.pipeline(transaction=False)
            for handle in handles:
                pipe.hget(record_key(handle, buckets, shards), record_field(handle))
            bodies = cast(list[bytes | None], await pipe.execute())
        await self._know(bodies)
        unpack = self.dictionaries.unpack
        return [
            None if body is None else public_json(unpack(body, record_field(handle)), handle)
            for body, handle in zip(bodies, handles, strict=True)
        ]

    async def _unpacked(self, body: bytes, field: str) -> bytes:
        """The stored form of a packed body, its dictionary read first if need be."""
        await self._know((body,))
        return self.dictionaries.unpack(body, field)

    async def _know(self, bodies: Iterable[bytes | None]) -> None:
        """Read the dictionaries these bodies are packed with that this process does
        not know yet (once each: they never change)."""
        table = self.dictionaries
        for body in bodies:
            if body is None or body[0] != MARK:
                continue
            number = dictionary_of(body)[0]
            if table.knows(number):
                continue
            async with translated():
                dictionary = cast(bytes | None, await self._redis.get(dictionary_key(number)))
            if dictionary is None:
                raise StoreUnavailable(
                    f"A record is packed with dictionary {number}, which the store lacks"
                )
            table.learn(number, dictionary)

    async def _dictionaries_fresh(self) -> None:
        """Before packing: look for dictionaries newer than this process's (every
        ``REFRESH_SECONDS``), and train one when the table says it is due, publishing
        it if no other process took its id first (SET NX: then that one is adopted)."""
        table = self.dictionaries
        now = time.monotonic()
        if now - self._dictionaries_seen >= REFRESH_SECONDS:
            self._dictionaries_seen = now
            async with translated():
                while found := cast(
                    bytes | None, await self._redis.get(dictionary_key(table.current + 1))
                ):
                    table.learn(table.current + 1, found)
        if not table.due():
            return
        work = table.candidate()
        if work is None:
            return
        # Training takes 40-400 ms of a core: in a worker thread, so resolutions go on
        # meanwhile (this write waits). The thread uses codecs of its own; the table
        # packs on with its own on the loop, and trains nothing else meanwhile.
        table.training = True
        try:
            made = await asyncio.to_thread(work.run)
        finally:
            table.training = False
        if made is None:
            return
        number = table.current + 1
        async with translated():
            if await self._redis.set(dictionary_key(number), made.dictionary, nx=True):
                table.learn(number, made.dictionary, made.held_out_bytes)
                self._log("dictionary trained", {"id": number, "bytes": len(made.dictionary)})
            elif (theirs := await self._redis.get(dictionary_key(number))) is not None:
                table.learn(number, cast(bytes, theirs))

    async def load(self, handle: Handle) -> Stored | None:
        return (await self.load_many([handle]))[0]

    async def load_many(self, handles: Sequence[Handle]) -> list[Stored | None]:
        """The records (with their versions) in one round trip: one script call per
        shard (:data:`_FIELDS_GET_LUA`; its buckets share the shard's hash slot)."""
        buckets = self._buckets or await self.buckets()
        shards = self._shards or await self.shards()
        groups: dict[str, list[int]] = {}  # by hash tag: one slot per call
        for position, handle in enumerate(handles):
            groups.setdefault(tag_of(handle, buckets, shards), []).append(position)
        async with translated():
            pipe = self._redis.pipeline(transaction=False)
            for positions in groups.values():
                keys = [record_key(handles[p], buckets, shards) for p in positions]
                fields = [record_field(handles[p]) for p in positions]
                pipe.eval(_FIELDS_GET_LUA, len(keys), *keys, *fields)
            replies = await pipe.execute()
        await self._know(body for bodies in replies for body in bodies)
        unpack = self.dictionaries.unpack
        found: list[Stored | None] = [None] * len(handles)
        for positions, bodies in zip(groups.values(), replies, strict=True):
            for position, body in zip(positions, bodies, strict=True):
                if body is not None:
                    handle = handles[position]
                    plain = unpack(body, record_field(handle))
                    found[position] = _stored(handle, body, None, plain)
        return found

    async def commit(self, before: Stored | None, after: HandleRecord | None) -> bool:
        """Apply ``after`` (None deletes) if the record is still ``before``; False if not."""
        return (await self.commit_many([(before, after)]))[0]

    async def commit_many(
        self, changes: Sequence[tuple[Stored | None, HandleRecord | None]]
    ) -> list[bool]:
        """Commit several changes in one round trip (one script call per prefix's shard:
        one hash slot each); each is atomic on its own. Returns, per change, whether it
        was committed."""
        if not changes:
            return []
        buckets = self._buckets or await self.buckets()
        shards = self._shards or await self.shards()
        await self._dictionaries_fresh()
        groups: dict[str, CommitGroup] = {}
        placed: list[tuple[CommitGroup, int]] = []
        for before, after in changes:
            subject = subject_of(before.record if before else None, after)
            tag = tag_of(subject, buckets, shards)
            group = groups.get(tag)
            if group is None:
                group = groups[tag] = CommitGroup(self.indexes, buckets, self.dictionaries, shards)
            placed.append((group, group.add(before, after, subject)))
        prefixes = {after.handle.prefix for _, after in changes if after is not None}
        touched = [key for group in groups.values() for key in group.handle_keys]
        async with self._forgetting(touched), translated():
            results = await self._run_commits(list(groups.values()), touched, prefixes)
        return [bool(results[id(group)][n]) for group, n in placed]

    @asynccontextmanager
    async def _forgetting(self, handle_keys: list[str]) -> AsyncIterator[None]:
        """In-process copies of these handles are forgotten before and after the block
        (a commit): no copy read before the commit outlives it."""
        self.local.forget(handle_keys)
        try:
            yield
        finally:
            self.local.forget(handle_keys)

    def _log_changes(self, pipe: Pipeline, touched: list[str], prefixes: set[str]) -> None:
        """Queue the change-feed entry (and the prefixes now holding records) on ``pipe``."""
        pipe.xadd(
            CHANGES_KEY,
            entry_fields(touched),  # type: ignore[arg-type]
            minid=str(int(time.time() * 1000) - self.change_retention_ms),
            approximate=True,
        )
        if prefixes:
            pipe.sadd(PREFIXES_KEY, *prefixes)

    async def _run_commits(
        self, groups: list[CommitGroup], touched: list[str], prefixes: set[str]
    ) -> dict[int, list[int]]:
        committed = await self._write(_COMMIT, [g.call() for g in groups], touched, prefixes)
        return {id(group): list(done) for group, done in zip(groups, committed, strict=True)}

    async def _write(
        self,
        script: Script,
        calls: list[tuple[list[str], list[Any]]],
        touched: list[str],
        prefixes: set[str],
    ) -> list[Any]:
        """Send the change-feed entry (:meth:`_log_changes`), then ``calls`` of a
        writing ``script`` (one per hash tag), then the ``WAIT`` commands that
        :attr:`replica_acks` asks for, in one pipeline; the calls' replies. The calls
        that found the script missing are sent again, and only those
        (:func:`registry.scripts.rerun_missing`). An error reply raises the store's
        error (the feed entry's before any call is sent again), and replicas that fall
        short :class:`WriteNotReplicated`."""
        pipe = self._redis.pipeline(transaction=False)
        self._log_changes(pipe, touched, prefixes)
        for keys, argv in calls:
            script.queue(pipe, keys, argv)
        acks = self.replica_acks
        waits = acks.queue(pipe, self._redis, [CHANGES_KEY, *(keys[0] for keys, _ in calls)])
        replies = await pipe.execute(raise_on_error=False)
        replies, waited = replies[: len(replies) - waits], replies[len(replies) - waits :]
        head = 2 if prefixes else 1  # the feed entry (and the prefixes) went first
        for reply in replies[:head]:
            if isinstance(reply, Exception):
                raise store_error(reply) from reply
        ran = await scripts.rerun_missing(self._redis, script, calls, replies[head:], acks)
        for reply in ran:
            if isinstance(reply, Exception):
                raise store_error(reply) from reply
        acks.check(waited)
        return ran

    @asynccontextmanager
    async def watched(self, handles: Sequence[Handle]) -> AsyncIterator[WatchedBatch]:
        """Load ``handles`` (different records) for a batch: the block plans its changes
        from :attr:`WatchedBatch.loaded` and commits them with :meth:`WatchedBatch.commit`,
        which applies each slice of ``WATCH_SLICE`` records only if none of them changed
        since. (The batch used to WATCH the records' keys; a WATCH of a bucket would make
        every neighbour's write a conflict, so the versions are compared by the slice's
        script instead, record by record.)"""
        buckets = self._buckets or await self.buckets()
        shards = self._shards or await self.shards()
        loaded = await self.load_many(handles)
        slices = [handles[n : n + WATCH_SLICE] for n in range(0, len(handles), WATCH_SLICE)]
        yield WatchedBatch(self, slices, loaded, buckets, shards)

    async def upgrade(self, progress: UpgradeProgress | None = None) -> int:
        """Bring a store written by an older version to the current layout, and its
        indexes to this node's :attr:`indexes`; returns how many records were converted
        or re-indexed. Each step of :meth:`upgrade_steps` newer than the layout key runs,
        then sets the key to its layout: a step interrupted (a crash) runs again at the
        next start and finishes (each skips what it converted already). Then, if the
        indexed types changed (``store:indexed``), indexes of types no longer indexed
        are dropped and those of newly indexed types built (resumable alike). Runs at
        start-up; once the layout key says :data:`LAYOUT`, no rebuild is pending and
        ``store:indexed`` matches the policy, it only reads those keys. Nodes of older
        versions must not write to the store while it runs. ``progress`` is told each
        step's name and the records it has gone through, a page at a time (a node is
        alive and progressing meanwhile, however long a large store takes)."""
        self._progress = _Progress(progress)
        try:
            async with translated():  # no NOSCRIPT round trip at each script's first call
                await scripts.load(self._redis, _SCRIPTS)
            converted = await self._upgrade()
        finally:
            # Told only during the upgrade: later index builds (learn) run with the
            # node serving, and are not the start-up's progress.
            self._progress = _Progress()
        if converted:
            self.local.clear()
        return converted

    async def _upgrade(self) -> int:
        converted = 0
        buckets = await self.buckets()
        async with translated():
            layout = await self._redis.get(LAYOUT_KEY)
            pending = cast(dict[bytes, bytes], await self._redis.hgetall(UPGRADE_KEY))
            if layout != LAYOUT:
                done = int(layout or b"1")
                for step in self.upgrade_steps():
                    if int(step.layout) <= done:
                        continue
                    self._progress.begin(step.name)
                    converted += await step.run()
                    await self._redis.set(LAYOUT_KEY, step.layout)
                shards = await self.shards()
                self._log(
                    "store layout",
                    {"layout": LAYOUT.decode(), "buckets": buckets, "shards": shards},
                )
            elif pending:  # a build of newly indexed types, interrupted: resume it
                self._progress.begin("indexes built for new types")
                converted += await self._rebuild()
            recorded = cast(bytes | None, await self._redis.get(INDEXED_KEY))
            if recorded is not None and recorded.decode() != self.indexes.text:
                self._progress.begin("indexes follow the indexed types")
                converted += await self._retype(IndexPolicy.from_text(recorded.decode()))
            elif recorded is None:
                await self._redis.set(INDEXED_KEY, self.indexes.text)
        return converted

    def upgrade_steps(self) -> list[UpgradeStep]:
        """The layout changes, oldest first, each named by the layout it leads to."""
        return [
            UpgradeStep(b"2", "records are strings, not hashes", self._records_to_strings),
            UpgradeStep(b"3", "records in the compact stored form", self._compact_records),
            UpgradeStep(b"4", "indexes hold suffixes, no date scores", self._reindex),
            UpgradeStep(b"5", "records in bucket hashes", self._records_to_buckets),
            UpgradeStep(b"6", "indexes in pages", self._indexes_to_pages),
        ]

    async def _indexes_to_pages(self) -> int:
        """Layout 5 kept each listing and value index in one sorted set; each becomes a
        paged set (:mod:`registry.paged_index`): renamed aside (``K#zset``: the set's
        key becomes its counter), then cut into pages from its lowest members up,
        :data:`registry.paged_index.BULK_FILL` to a page, a script call moving a few
        pages atomically (a member is in the old set or in a page, never both). A
        restart finds the sets renamed aside and carries on; sets already paged are
        left alone. Progress counts the listings' members (the records)."""
        moved = 0
        async for raw in self._redis.scan_iter(count=_SCAN_PAGE, _type="zset"):
            key = raw.decode()
            if not paged_index.is_paged(key):
                continue
            base, role = paged_index.set_of(key)
            if role == "count":  # a layout-5 sorted set at the set's own key
                await self._redis.rename(base, base + paged_index.OLD_SET)
            elif role != "old":
                continue  # a directory or a page: paged already
            moved += await self._to_pages(base, counted=key.startswith("l:"))
        return moved

    async def _to_pages(self, key: str, *, counted: bool) -> int:
        moved = 0
        while True:
            step = int(
                await self._converting(
                    [key, key + paged_index.OLD_SET], [paged_index.BULK_FILL, _PAGES_PER_CALL]
                )
            )
            if not step:
                return moved
            moved += step if counted else 0
            self._progress.advance(step if counted else 0)

    async def _records_to_buckets(self) -> int:
        """Layout 4 kept each record in its own string (``r:{p}:<handle key>``); each
        moves to its field of its bucket (:func:`registry.record_keys.record_key`), a
        thousand at a time, each thousand in one transaction (under WATCH, repeated if
        one is written meanwhile) that sets the fields and deletes the strings: a record
        is in exactly one place whenever the upgrade stops, and a restart moves the
        strings left. The node serves no request before the upgrade has finished, so
        nothing reads a record while it may still be a string."""
        return sum([await self._move(page) async for page in self._pages("string")])

    async def _move(self, keys: list[bytes]) -> int:
        # A layout-4 store has one shard (HandleStore.shards): targets share its tag.
        buckets, shards = await self.buckets(), await self.shards()
        handles = [Handle.parse(key.decode().partition("}:")[2]) for key in keys]
        targets = [record_key(handle, buckets, shards) for handle in handles]
        while True:
            async with self._redis.pipeline(transaction=True) as pipe:
                await pipe.watch(*keys, *dict.fromkeys(targets))
                bodies = cast(list[bytes | None], await self._redis.mget(keys))
                pipe.multi()  # type: ignore[no-untyped-call]
                done = 0
                for key, handle, target, body in zip(keys, handles, targets, bodies, strict=True):
                    if body is None:
                        continue  # moved or deleted meanwhile
                    # A field there already was written in this layout: it is newer.
                    pipe.hsetnx(target, record_field(handle), body)
                    pipe.delete(key)
                    done += 1
                try:
                    await pipe.execute()
                except WatchError:
                    continue
                return done

    async def _records_to_strings(self) -> int:
        """Records used to be hashes (``b`` public body, ``f`` full body); they become
        strings a thousand at a time, each thousand in one transaction that Redis
        refuses (and this repeats) if one of them is written meanwhile."""
        return sum([await self._convert(page) async for page in self._pages("hash")])

    async def _reindex(self) -> int:
        """Layout 3 to 4 (index members held whole handle texts, dates had a scored
        entry as well): every ``l:``/``v:``/``n:`` key is dropped and the indexes are
        rebuilt from the records (:meth:`_rebuild`). Records are never touched, so no
        identifier can be lost; the rebuild notes its phase and SCAN cursor in
        ``store:upgrade`` after every page and resumes there if interrupted."""
        if not await self._redis.exists(UPGRADE_KEY):
            await self._redis.hset(
                UPGRADE_KEY, mapping={"phase": "drop", "types": self.indexes.text}
            )
        return await self._rebuild()

    async def _retype(self, recorded: IndexPolicy) -> int:
        """From the indexes ``recorded`` as complete to those of :attr:`indexes`."""
        build, dropped = self.indexes.difference(recorded)
        if dropped:
            gone = await self._drop_indexes(
                lambda type_key: (
                    type_key in dropped or (EVERY in dropped and not self.indexes.covers(type_key))
                ),
                families=("v:", "n:"),
            )
            self._log("indexes dropped", {"types": sorted(dropped), "keys": gone})
        done = 0
        if build is not None:
            await self._redis.hset(
                UPGRADE_KEY, mapping={"phase": "build", "cursor": 0, "types": build.text}
            )
            done = await self._rebuild()
        await self._redis.set(INDEXED_KEY, self.indexes.text)
        return done

    async def _drop_indexes(
        self, dropping: Callable[[str], bool], families: Sequence[str] = _INDEX_FAMILIES
    ) -> int:
        """UNLINK the index keys of ``families`` whose type ``dropping`` says to drop
        (``l:`` keys have no type: they go whenever ``l:`` is listed); a paged set's
        counter, directory and pages all go (:mod:`registry.paged_index`)."""
        gone = 0
        async for key in self._redis.scan_iter(count=_SCAN_PAGE):
            text = key.decode(errors="replace")
            if text[:2] not in families:
                continue
            base, _ = paged_index.set_of(text) if paged_index.is_paged(text) else (text, "")
            if text[:2] != "l:" and not dropping(base.rpartition("}:")[2]):
                continue
            gone += int(await self._redis.unlink(key))
        return gone

    async def _rebuild(self) -> int:
        """Carry out the index rebuild ``store:upgrade`` describes, from where it was
        left: phase ``drop`` unlinks every index key, phase ``build`` adds the entries
        of every record for the types noted there, a SCAN page at a time."""
        raw = cast(dict[bytes, bytes], await self._redis.hgetall(UPGRADE_KEY))
        state = {k.decode(): v.decode() for k, v in raw.items()}
        await self._redis.script_load(_PAGED_ADD.text)  # called inside transactions
        types = IndexPolicy.from_text(state.get("types", self.indexes.text))
        if state.get("phase") == "drop":
            gone = await self._drop_indexes(lambda type_key: True)
            self._log("old indexes dropped", {"keys": gone})
            await self._redis.hset(UPGRADE_KEY, mapping={"phase": "build", "cursor": 0, "done": 0})
            state.update(cursor="0", done="0")
        cursor, done = state.get("cursor", keyspace.START), int(state.get("done", 0))
        reached = done
        began, logged = time.monotonic(), time.monotonic()
        while True:
            # Strings while step 4 runs (layout 4), buckets after step 5.
            cursor, keys = await keyspace.scan_page(
                self._redis, cursor, match="r:*", count=_SCAN_PAGE
            )
            strings = [key for key in keys if not is_bucket_key(key)]
            for part in _by_tag(strings):  # a transaction's keys in one slot
                done += await self._index(part, types)
            # A transaction reads and indexes buckets of one tag (one slot): their
            # records' index entries are in that tag too.
            for held in _by_tag([key for key in keys if is_bucket_key(key)]):
                for start in range(0, len(held), _BUCKETS_PER_INDEX):
                    part = held[start : start + _BUCKETS_PER_INDEX]
                    done += await self._index_buckets(part, types)
            await self._redis.hset(UPGRADE_KEY, mapping={"cursor": cursor, "done": done})
            self._progress.advance(done - reached)
            reached = done
            if time.monotonic() - logged > 10:
                logged = time.monotonic()
                self._log("indexes building", {"records": done, "types": types.text})
            if cursor == keyspace.START:
                break
        await self._redis.delete(UPGRADE_KEY)
        await self._redis.set(INDEXED_KEY, self.indexes.text)
        seconds = round(time.monotonic() - began, 1)
        self._log("indexes built", {"records": done, "types": types.text, "seconds": seconds})
        return done

    async def _index(self, keys: list[bytes], types: IndexPolicy) -> int:
        """Add the index entries of the records at ``keys`` (strings) for ``types``."""

        async def records() -> list[HandleRecord]:
            fulls = [b"f:" + key.removeprefix(b"r:") for key in keys]
            bodies = cast(list[bytes | None], await self._redis.mget(keys + fulls))
            found = []
            for n, key in enumerate(keys):
                handle = Handle.parse(key.decode().partition("}:")[2])
                body, full = bodies[n], bodies[len(keys) + n]
                if body is not None:
                    await self._know((body,))
                    plain = self.dictionaries.unpack(body, record_field(handle))
                    found.append(from_stored(plain, handle, full))
            return found

        return await self._index_watched(keys, types, records)

    async def _index_buckets(self, keys: list[bytes], types: IndexPolicy) -> int:
        """:meth:`_index` for the records of the buckets at ``keys``."""

        async def records() -> list[HandleRecord]:
            read = self._redis.pipeline(transaction=False)
            for key in keys:
                read.hgetall(key)
            held = cast(list[dict[bytes, bytes]], await read.execute())
            await self._know(body for fields in held for body in fields.values())
            unpack = self.dictionaries.unpack
            return [
                from_stored(unpack(body, name.decode()), bucket_handle(key, name), None)
                for key, fields in zip(keys, held, strict=True)
                for name, body in fields.items()
            ]

        return await self._index_watched(keys, types, records)

    async def _index_watched(
        self,
        keys: list[bytes],
        types: IndexPolicy,
        records: Callable[[], Awaitable[list[HandleRecord]]],
    ) -> int:
        """Add the index entries of what ``records`` reads for ``types``, under WATCH of
        ``keys``: a record written meanwhile makes the page repeat (a deleted one must
        not be indexed again). Returns how many records were indexed."""
        while True:
            async with self._redis.pipeline(transaction=True) as pipe:
                await pipe.watch(*keys)
                found = await records()
                changes = KeyChanges(types, await self.buckets(), await self.shards())
                for record in found:
                    changes.add(None, record)
                pipe.multi()  # type: ignore[no-untyped-call]
                for index, scored in changes.adds.items():
                    if not paged_index.is_paged(index):
                        pipe.execute_command("ZADD", index, *scored)
                        continue
                    members = sorted(cast(list[str], scored[1::2]))  # byte order: runs
                    for start in range(0, len(members), _UNPACKED):
                        part = members[start : start + _UNPACKED]
                        _PAGED_ADD.queue(pipe, [index], part)
                try:
                    await pipe.execute()
                except WatchError:
                    continue
                except NoScriptError:  # a master that came since the build began
                    await self._redis.script_load(_PAGED_ADD.text)
                    continue  # adding entries again adds nothing
                return len(found)

    def learn(self, queryable: Iterable[str]) -> None:
        """Index these types too (a template's queryable items): from now on for every
        write, and for the records already here by a build in the background."""
        widened = self.indexes.with_types(queryable)
        if widened is self.indexes:
            return
        added = IndexPolicy(widened.types - self.indexes.types)
        self.indexes = widened
        task = asyncio.get_running_loop().create_task(self._build_later(added))
        self._builds.add(task)
        task.add_done_callback(self._builds.discard)

    async def _build_later(self, added: IndexPolicy) -> None:
        try:
            async with translated():
                await self._redis.hset(
                    UPGRADE_KEY, mapping={"phase": "build", "cursor": 0, "types": added.text}
                )
                await self._rebuild()
        except StoreUnavailable as exc:  # the next start resumes it
            self._log("index build stopped", {"types": added.text, "error": str(exc)})

    async def close(self) -> None:
        """Stop index builds running in the background (the next start resumes them)."""
        for task in list(self._builds):
            task.cancel()
        await asyncio.gather(*self._builds, return_exceptions=True)

    async def _convert(self, keys: list[bytes]) -> int:
        while True:
            async with self._redis.pipeline(transaction=True) as pipe:
                await pipe.watch(*keys)
                read = self._redis.pipeline(transaction=False)
                for key in keys:
                    read.hmget(key, ["b", "f"])
                rows = await read.execute(raise_on_error=False)
                pipe.multi()  # type: ignore[no-untyped-call]
                done = 0
                for key, row in zip(keys, rows, strict=True):
                    if isinstance(row, Exception):
                        continue  # no longer a hash: converted already
                    public, full = row
                    pipe.delete(key)
                    if public is not None:
                        pipe.set(key, public)
                        if full is not None:
                            pipe.set(b"f:" + key.removeprefix(b"r:"), full)
                    done += 1
                try:
                    await pipe.execute()
                except WatchError:
                    continue
                return done

    async def _compact_records(self) -> int:
        """Bodies stored as Handle JSON (a public body, and a full one beside it when
        some values were private) become the compact stored form
        (:mod:`registry.stored_form`), the full body's values in one key, a thousand
        records at a time as :meth:`_records_to_strings` does. Records already compact
        (converted by an interrupted run, or written by this version meanwhile) are
        left as they are."""
        return sum([await self._compact(page) async for page in self._pages("string")])

    async def _pages(self, of_type: str) -> AsyncIterator[list[bytes]]:
        """The record keys of Redis type ``of_type``, a page of :data:`_SCAN_PAGE` at a
        time (the last one shorter), each page cut by hash tag (:func:`_by_tag`): a
        page's transaction must keep its keys in one slot on a cluster."""
        page: list[bytes] = []
        async for key in self._redis.scan_iter(match="r:*", count=_SCAN_PAGE, _type=of_type):
            if is_bucket_key(key):
                continue  # a bucket (layout 5) written before this store was upgraded
            page.append(key)
            if len(page) == _SCAN_PAGE:
                for part in _by_tag(page):
                    yield part
                    self._progress.advance(len(part))
                page = []
        for part in _by_tag(page):
            yield part
            self._progress.advance(len(part))

    async def _compact(self, keys: list[bytes]) -> int:
        fulls = [b"f:" + key.removeprefix(b"r:") for key in keys]
        while True:
            async with self._redis.pipeline(transaction=True) as pipe:
                await pipe.watch(*keys, *fulls)
                read = self._redis.pipeline(transaction=False)
                for key, full in zip(keys, fulls, strict=True):
                    read.get(key)
                    read.get(full)
                rows = await read.execute()
                pipe.multi()  # type: ignore[no-untyped-call]
                done = 0
                for n, (key, full) in enumerate(zip(keys, fulls, strict=True)):
                    body, full_body = rows[2 * n], rows[2 * n + 1]
                    if body is None or is_compact(body):
                        continue  # deleted, or written in the compact form already
                    handle = Handle.parse(key.decode().partition("}:")[2])
                    pipe.set(key, to_stored(from_stored(body, handle, full_body)))
                    if full_body is not None:
                        pipe.delete(full)
                    done += 1
                try:
                    await pipe.execute()
                except WatchError:
                    continue
                return done

    async def list_handles(
        self, prefix: Prefix, page: int, page_size: int, *, merged: bool = False
    ) -> tuple[int, list[str]]:
        """Total count and one page of the handles under exactly ``prefix``
        (``page_size`` 0: the count alone), in byte order of their index members.
        With several shards (``store:shards``) the listing is ordered by shard, then
        byte order: shard 0's members, then shard 1's, ...; the shards' counters say
        which shards a page falls in, so a page costs one more round trip, not a merge
        of every shard's members up to it. ``merged`` keeps byte order across the
        shards instead, by merging each shard's members up to the page's end: for small
        listings only (the prefix registry), as it reads ``shards * (offset + page)``."""
        start = page * page_size
        shards = self._shards or await self.shards()
        keys = [listing_key(tag) for tag in shard_tags(prefix.text, shards)]

        def counted(pipe: Pipeline) -> None:
            for key in keys:  # a GET each: an MGET would span the shards' slots
                pipe.get(key)
            if page_size > 0 and shards == 1:  # the counter and the page at once
                _PAGED_READ.queue(pipe, keys, ["range", "-", "+", start, page_size])
            elif page_size > 0 and merged:  # each shard's members up to the page's end
                for key in keys:
                    _PAGED_READ.queue(pipe, [key], ["range", "-", "+", 0, start + page_size])

        async with translated():
            replies = await pipelined(self._redis, counted, _READS)
            counts = [int(n or 0) for n in replies[:shards]]
            if page_size <= 0:  # the count alone: the sets' counters
                return sum(counts), []
            if shards == 1:
                return counts[0], [handle_text(prefix.text, m.decode()) for m in replies[1]]
            if merged:
                members = list(heapq.merge(*replies[shards:]))[start : start + page_size]
                return sum(counts), [handle_text(prefix.text, m.decode()) for m in members]
            reads: list[tuple[str, int, int]] = []  # (shard's set, skip, take)
            reached, wanted = 0, page_size
            for key, count in zip(keys, counts, strict=True):
                skip = max(0, start - reached)
                reached += count
                if skip >= count or wanted <= 0:
                    continue
                take = min(count - skip, wanted)
                wanted -= take
                reads.append((key, skip, take))

            def ranges(pipe: Pipeline) -> None:
                for key, skip, take in reads:
                    _PAGED_READ.queue(pipe, [key], ["range", "-", "+", skip, take])

            found = await pipelined(self._redis, ranges, _READS) if reads else []
        members = [m for part in found for m in part][:page_size]
        return sum(counts), [handle_text(prefix.text, m.decode()) for m in members]

    async def changes(self, after: StreamId | None, limit: int) -> ChangePage:
        """Up to ``limit`` feed entries after ``after`` (none without it), with the cursor
        to read from next; see :mod:`registry.change_feed`."""
        async with translated():
            await self._redis.set(EPOCH_KEY, uuid.uuid4().hex, nx=True)
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(EPOCH_KEY)
            # The clock of the Redis holding the stream (its entries' ids are of that
            # clock): TIME through a script keyed by the stream, as a cluster routes
            # it by the key (TIME in a pipeline it refuses, and would send anywhere).
            pipe.eval(_CLOCK_LUA, 1, CHANGES_KEY)
            if after is not None:
                pipe.xrange(CHANGES_KEY, min=f"({after}", max="+", count=limit)
            epoch, (seconds, micros), *rest = await pipe.execute()
        now = StreamId(int(seconds) * 1000 + int(micros) // 1000)
        entries = rest[0] if rest else []
        keys = [key for _, fields in entries for key in entry_keys(fields)]
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
        (only those under ``within`` when given), at most ``limit``; a term on a type
        not indexed here is refused (:class:`registry.errors.NotIndexed`)."""
        for term in terms:
            self.indexes.check(term.type_key)
        found: list[str] = []
        for prefix in await self.prefixes():
            if within is not None and (
                national_prefix_problem(prefix) is not None or not within.contains(Prefix(prefix))
            ):
                continue  # outside the requested scope (0.NA records never match one)
            groups = [await self._matching(prefix, term) for term in terms]
            found.extend(intersect_in_order(groups, limit - len(found)))
            if len(found) >= limit:
                break
        return found

    async def query(self, query: Query) -> tuple[int, list[str]]:
        """How many identifiers under ``query.prefix`` meet every condition, and the
        page asked for, in byte order; see :mod:`registry.query` for how. With several
        shards each step asks every shard at once (one round trip): a condition's count
        is the sum of its shards', the narrowest condition's members come from each
        shard, and each candidate is probed in its own shard's indexes."""
        conditions = query.conditions
        for condition in conditions:
            self.indexes.check(condition.field)
        tags = shard_tags(query.prefix.text, self._shards or await self.shards())

        def counts_of(pipe: Pipeline) -> None:
            for condition in conditions:
                for tag in tags:
                    key = self._condition_key(tag, condition)
                    if condition.scored:
                        pipe.zcount(key, _score(condition.low), _score(condition.high))
                    else:
                        _PAGED_READ.queue(pipe, [key], ["count", *condition.lex_range()])

        async with translated():
            counts = [int(n) for n in await pipelined(self._redis, counts_of, _READS)]
            width = len(tags)
            chosen = driver(
                [sum(counts[c * width : (c + 1) * width]) for c in range(len(conditions))]
            )
            if chosen is None:
                return 0, []
            lead = conditions[chosen]

            def members_of(pipe: Pipeline) -> None:
                for tag in tags:
                    key = self._condition_key(tag, lead)
                    if lead.scored:
                        pipe.zrangebyscore(key, _score(lead.low), _score(lead.high))
                    else:
                        _PAGED_READ.queue(pipe, [key], ["range", *lead.lex_range(), 0, -1])

            led = cast(list[list[bytes]], await pipelined(self._redis, members_of, _READS))
            candidates: list[tuple[str, str]] = []  # (tag, index member), not yet handles
            for tag, raw in zip(tags, led, strict=True):
                if lead.scored:
                    found = [m.decode() for m in raw]
                else:
                    found = [h for h in map(lead.handle_of, raw) if h is not None]
                candidates += ((tag, name) for name in dict.fromkeys(found))
            others = [c for i, c in enumerate(conditions) if i != chosen]
            matching = await self._meeting(query.prefix.text, candidates, others)
        handles = sorted(handle_text(query.prefix.text, m) for m in matching)
        return len(handles), page_of(handles, query.page, query.page_size)

    async def _meeting(
        self, prefix: str, candidates: list[tuple[str, str]], conditions: list[Condition]
    ) -> list[str]:
        """The candidates (index members, each with its shard's tag) that meet every
        condition: one ZSCORE per probe, pipelined, in the candidate's own shard's
        index; date ranges by the candidates' public bodies."""
        probed = [c for c in conditions if c.probed]
        read = [c for c in conditions if not c.probed]
        if not conditions:
            return [name for _, name in candidates]
        kept: list[str] = []
        for start in range(0, len(candidates), _PROBE_CHUNK):
            chunk = candidates[start : start + _PROBE_CHUNK]
            by_tag: dict[str, list[str]] = {}
            for tag, name in chunk:
                by_tag.setdefault(tag, []).append(name)
            calls: list[tuple[int, str]] = []  # (condition, tag) of each reply
            reads: list[tuple[str, list[str | bytes]]] = []  # (index, probes) of each
            for number, condition in enumerate(probed):
                for tag, names in by_tag.items():  # a shard's probes of the chunk in one call
                    probes = [probe for name in names for probe in condition.probes(name)]
                    reads.append((self._condition_key(tag, condition), probes))
                    calls.append((number, tag))
            replies = (
                await pipelined(self._redis, partial(_probing, reads), _READS) if probed else []
            )
            scores = {call: iter(reply) for call, reply in zip(calls, replies, strict=True)}
            met = []
            for tag, name in chunk:
                meets = True
                for number, condition in enumerate(probed):
                    found = scores[number, tag]
                    got = [_float(next(found)) for _ in condition.probes(name)]
                    meets = meets and condition.accepts(got)
                if meets:
                    met.append(name)
            if read and met:
                handles = [Handle.parse(handle_text(prefix, name)) for name in met]
                bodies = await self.public_bodies(handles)
                met = [
                    name
                    for name, body in zip(met, bodies, strict=True)
                    if body is not None
                    and all(c.accepts_values(HandleRecord.decode(body).values) for c in read)
                ]
            kept.extend(met)
        return kept

    @staticmethod
    def _condition_key(tag: str, condition: Condition) -> str:
        if condition.scored:
            return number_index_key(tag, condition.field)
        return value_index_key(tag, condition.field)

    async def _matching(self, prefix: str, term: ValuePattern) -> list[str]:
        """The handles of ``prefix`` with a value matching ``term``, in the byte order of
        their index members (as one shard would hold them): every shard's range read a
        page at a time, the shards' pages in one round trip."""
        tags = shard_tags(prefix, self._shards or await self.shards())
        low, high = term.lex_range()
        lows = {value_index_key(tag, term.type_key): low for tag in tags}
        members: list[bytes] = []
        async with translated():
            while lows:

                def ranges(pipe: Pipeline) -> None:
                    for key, start in lows.items():
                        _PAGED_READ.queue(pipe, [key], ["range", start, high, 0, _SCAN_PAGE])

                pages = cast(list[list[bytes]], await pipelined(self._redis, ranges, _READS))
                for key, page in zip(list(lows), pages, strict=True):
                    members += page
                    if len(page) < _SCAN_PAGE:
                        del lows[key]
                    else:  # the next page starts after the last member read
                        lows[key] = b"(" + page[-1]
        if len(tags) > 1:
            members.sort()  # the shards' members in one byte order, as one shard's are
        handles: list[str] = []
        for raw in members:
            value_key, name = split_member(raw)
            if term.is_exact or term.matches(value_key):
                handles.append(handle_text(prefix, name))
        return handles


def _by_tag(keys: list[bytes]) -> list[list[bytes]]:
    """``keys`` (of records or indexes) grouped by their hash tag, each group in the
    order found: the keys one transaction may watch on a cluster (one slot)."""
    groups: dict[str, list[bytes]] = {}
    for key in keys:
        groups.setdefault(key_tag(key), []).append(key)
    return list(groups.values())


def _probing(reads: list[tuple[str, list[str | bytes]]], pipe: Pipeline) -> None:
    """Queue the probes of a query's candidates (:meth:`HandleStore._meeting`): the
    scores of ``probes`` in each index."""
    for key, probes in reads:
        if paged_index.is_paged(key):
            _PAGED_READ.queue(pipe, [key], ["scores", *probes])
        else:
            pipe.zmscore(key, cast(list[str], probes))  # bytes pass as they are


def _float(score: bytes | float | None) -> float | None:
    """A ZSCORE's answer as a number (a script's comes as text)."""
    return None if score is None else float(score)


def _score(bound: float) -> str:
    """A ZCOUNT/ZRANGEBYSCORE bound, inclusive; infinities as Redis spells them."""
    if math.isinf(bound):
        return "+inf" if bound > 0 else "-inf"
    return repr(bound)


def _stored(handle: Handle, stored: bytes, full: bytes | None, plain: bytes) -> Stored:
    """The record in ``stored`` (``plain``: its stored form, unpacked), with the version
    of the bytes as they are in Redis (packed or not: what the commit scripts hash)."""
    return Stored(from_stored(plain, handle, full), version_of(stored, full))


class WatchedBatch:
    """A batch's records as loaded (:meth:`HandleStore.watched`), committed a slice per
    script call (:data:`_SLICE_LUA`)."""

    def __init__(
        self,
        store: HandleStore,
        slices: list[Sequence[Handle]],
        loaded: list[Stored | None],
        buckets: int,
        shards: int = 1,
    ) -> None:
        self._store = store
        self._slices = slices
        self._buckets = buckets
        self._shards = shards
        self._slice_of = {h.key: n for n, part in enumerate(slices) for h in part}
        self.loaded = loaded  # in the order the handles were given

    async def commit(
        self, changes: Sequence[tuple[Stored | None, HandleRecord | None]]
    ) -> list[bool]:
        """Apply the changes (each of a loaded record, at most one per record), a slice
        at a time, the slices at once, each slice's changes under one prefix's shard
        (one hash slot: :func:`registry.record_keys.tag_of`) all or nothing. When one
        of a slice's records changed since the load, nothing of that shard's part was
        written: each of its changes is then committed on its own against the version
        it was planned on. Returns, per change, whether it was committed."""
        done = [False] * len(changes)
        by_slice: list[list[int]] = [[] for _ in self._slices]
        for position, (before, after) in enumerate(changes):
            subject = subject_of(before.record if before else None, after)
            by_slice[self._slice_of[subject.key]].append(position)

        async def run(positions: list[int]) -> None:
            results = await self._apply([changes[p] for p in positions])
            for position, committed in zip(positions, results, strict=True):
                done[position] = committed

        await asyncio.gather(*(run(positions) for positions in by_slice if positions))
        return done

    async def _apply(
        self, changes: Sequence[tuple[Stored | None, HandleRecord | None]]
    ) -> list[bool]:
        store = self._store
        await store._dictionaries_fresh()
        groups: dict[str, SliceScript] = {}
        placed: list[SliceScript] = []
        for before, after in changes:
            subject = subject_of(before.record if before else None, after)
            tag = tag_of(subject, self._buckets, self._shards)
            group = groups.get(tag)
            if group is None:
                group = groups[tag] = SliceScript(
                    store.indexes, self._buckets, store.dictionaries, self._shards
                )
            group.add(before, after, subject)
            placed.append(group)
        touched = [key for group in groups.values() for key in group.handle_keys]
        prefixes = {after.handle.prefix for _, after in changes if after is not None}
        async with store._forgetting(touched), translated():
            calls = [group.call() for group in groups.values()]
            replies = await store._write(_SLICE, calls, touched, prefixes)
        refused = {
            id(group) for group, reply in zip(groups.values(), replies, strict=True) if reply
        }
        if not refused:
            return [True] * len(changes)
        # A record changed since the load: that shard's changes go one by one, each
        # against its own version.
        store.refused_slices += 1
        again = [n for n, group in enumerate(placed) if id(group) in refused]
        results = await store.commit_many([changes[n] for n in again])
        done = [True] * len(changes)
        for n, committed in zip(again, results, strict=True):
            done[n] = committed
        return done


class SliceScript:
    """A slice's changes under one prefix's shard (one hash slot) as the arguments of
    one :data:`_SLICE_LUA` call: the records' buckets, fields, versions and stored
    forms, then their index changes grouped by key."""

    def __init__(
        self, policy: IndexPolicy, buckets: int, dictionaries: Dictionaries, shards: int = 1
    ) -> None:
        self.policy = policy
        self.buckets = buckets
        self.shards = shards
        self.dictionaries = dictionaries
        self.handle_keys: list[str] = []
        self.adds: dict[str, list[float | str]] = {}  # score, member, ... by key
        self.removes: dict[str, list[str]] = {}
        self._records: list[str] = []  # bucket key per record
        self._argv: list[str | bytes] = []

    def add(self, before: Stored | None, after: HandleRecord | None, subject: Handle) -> None:
        self.handle_keys.append(subject.key)
        adds, removes = self.adds, self.removes
        tag = tag_of(subject, self.buckets, self.shards)
        for op, key, member, score in index_changes(
            before.record if before else None, after, self.policy, tag
        ):
            if op == "a":
                scored = adds.get(key)  # setdefault would make a list per member
                if scored is None:
                    scored = adds[key] = []
                scored += (score or "0", member)  # lexical sets' 0: not formatted
            else:
                removes.setdefault(key, []).append(member)
        self._records.append(record_key(subject, self.buckets, self.shards))
        name = record_field(subject)
        self._argv += (
            name,
            before.version if before else ABSENT,
            self.dictionaries.pack(to_stored(after), name) if after else b"",
        )

    def call(self) -> tuple[list[str], list[str | bytes | float]]:
        """KEYS and ARGV of the script call."""
        keys: list[str] = list(self._records)
        argv: list[str | bytes | float] = [len(self._records), *self._argv]
        numbers: dict[str, int] = {}
        for op, grouped, width in (
            ("r", self.removes, 1),
            ("a", self.adds, 2),
        ):
            for key, items in grouped.items():
                number = numbers.get(key)
                if number is None:
                    keys.append(key)
                    number = numbers[key] = len(keys)
                if paged_index.is_paged(key):
                    # Members only, in byte order (str order is UTF-8's byte order): the
                    # script cuts them into pages' runs by binary search.
                    members = items[1::2] if width == 2 else items
                    ordered = sorted(cast(list[str], members))
                    code = paged_index.op_code(op, key)
                    for start in range(0, len(ordered), _UNPACKED):
                        part = ordered[start : start + _UNPACKED]
                        argv += (code, number, len(part), *part)
                    continue
                step = _UNPACKED - _UNPACKED % width
                for start in range(0, len(items), step):
                    chunk = items[start : start + step]
                    argv += (op, number, len(chunk) // width, *chunk)
        return keys, argv


class CommitGroup:
    """Changes under one prefix's shard (one hash slot) as the arguments of one commit
    script call: every key once, and per change the numbers of the keys it touches."""

    def __init__(
        self, policy: IndexPolicy, buckets: int, dictionaries: Dictionaries, shards: int = 1
    ) -> None:
        self.policy = policy
        self.buckets = buckets
        self.shards = shards
        self.dictionaries = dictionaries
        self.handle_keys: list[str] = []
        self._keys: dict[str, int] = {}  # key -> its 1-based number in KEYS
        self._changes: list[list[object]] = []
        self._bodies: list[bytes] = []  # ARGV[2], ...: the new bodies

    def add(self, before: Stored | None, after: HandleRecord | None, subject: Handle) -> int:
        """Add one change; returns its position in the group."""
        self.handle_keys.append(subject.key)
        tag = tag_of(subject, self.buckets, self.shards)
        # Scores as Python spells them: Lua would print numbers with 14 digits.
        ops = [
            [paged_index.op_code(op, key), self._number(key), member, repr(score)]
            for op, key, member, score in index_changes(
                before.record if before else None, after, self.policy, tag
            )
        ]
        name = record_field(subject)
        body = 0
        if after is not None:
            self._bodies.append(self.dictionaries.pack(to_stored(after), name))
            body = len(self._bodies) + 1
        self._changes.append(
            [
                self._number(record_key(subject, self.buckets, self.shards)),
                name,
                before.version if before else ABSENT,
                body,
                ops,
            ]
        )
        return len(self._changes) - 1

    def _number(self, key: str) -> int:
        number = self._keys.get(key)
        if number is None:
            number = self._keys[key] = len(self._keys) + 1
        return number

    def call(self) -> tuple[list[str], list[bytes]]:
        """KEYS and ARGV of the commit script: the changes as JSON, then the bodies."""
        return list(self._keys), [orjson.dumps(self._changes), *self._bodies]
