"""Packed records on a real Redis: a store holding every form answers each alike, a
dictionary trained by one process is read by another, and versions of packed bytes
keep commits right whichever dictionary the committing process packs with."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from redis.asyncio import Redis

from loadtest.record_body_cost import demo_records
from registry.identifier import Handle
from registry.packed_form import BUILTIN, TRAIN_EVERY, dictionary_key, dictionary_of, pack
from registry.record import HandleRecord
from registry.record_keys import record_field, record_key
from registry.store import HandleStore, Stored
from registry.stored_form import to_stored
from tests.conftest import SHARDED
from tests.registry.test_packed_form import trained_on


@pytest.fixture(params=SHARDED)
def prefix_shards(request: pytest.FixtureRequest) -> int:
    return int(request.param)  # each test on a store of one shard and of several


OTHER = trained_on(demo_records(5_000_000, 2000))  # another process's


async def write_all(store: HandleStore, records: list[HandleRecord]) -> None:
    """Create ``records`` through the batch path, a thousand at a time."""
    for start in range(0, len(records), 1000):
        part = records[start : start + 1000]
        async with store.watched([r.handle for r in part]) as batch:
            changes: list[tuple[Stored | None, HandleRecord | None]] = [(None, r) for r in part]
            assert await batch.commit(changes) == [True] * len(part)


async def raw(redis: Redis, store: HandleStore, handle: Handle) -> bytes:
    body = await redis.hget(
        record_key(handle, await store.buckets(), await store.shards()), record_field(handle)
    )
    assert isinstance(body, bytes)
    return body


async def test_a_store_of_every_form_answers_each_alike(redis: Redis) -> None:
    store = HandleStore(redis)
    buckets = await store.buckets()
    records = demo_records(0, 4)
    legacy, compact, builtin, trained = records
    await redis.set(dictionary_key(1), OTHER)  # as a trainer would have (SET NX)
    for rec, body in (
        (legacy, legacy.bodies()[0]),
        (compact, to_stored(compact)),
        (builtin, pack(to_stored(builtin), record_field(builtin.handle), 0, BUILTIN)),
        (trained, pack(to_stored(trained), record_field(trained.handle), 1, OTHER)),
    ):
        await redis.hset(
            record_key(rec.handle, buckets, await store.shards()), record_field(rec.handle), body
        )
    handles = [Handle.parse(r.handle.text.upper()) for r in records]
    expected = [r.public_body() for r in records]
    assert [await store.public_body(h) for h in handles] == expected
    assert await HandleStore(redis).public_bodies(handles) == expected  # a fresh process
    loaded = await HandleStore(redis).load_many(handles)
    assert [s.record if s else None for s in loaded] == records
    # Each commits against its own bytes' version, and is written packed.
    changed = [HandleRecord(r.handle, r.values[:-1]) for r in records]
    assert await store.commit_many(list(zip(loaded, changed, strict=True))) == [True] * 4
    for rec in changed:
        assert (await raw(redis, store, rec.handle))[:1] == b"z"
        assert await store.public_body(rec.handle) == rec.public_body()


async def test_a_dictionary_one_process_trains_another_reads_and_adopts(redis: Redis) -> None:
    trainer, reader = HandleStore(redis), HandleStore(redis)
    first = demo_records(0, TRAIN_EVERY)
    await write_all(trainer, first)  # packed with dictionary 0: training becomes due
    assert not await redis.exists(dictionary_key(1))
    later = demo_records(TRAIN_EVERY, 1000)
    await write_all(trainer, later)  # trains and publishes dictionary 1
    assert trainer.dictionaries.current == 1
    assert await redis.get(dictionary_key(1)) is not None
    later = demo_records(2 * TRAIN_EVERY, 1000)
    await write_all(trainer, later)  # packed with dictionary 1
    body = await raw(redis, trainer, later[-1].handle)
    assert dictionary_of(body)[0] == 1 and len(body) < 30
    # The other process reads dictionary 1 when a record needs it.
    assert not reader.dictionaries.knows(1)
    for rec in (first[0], later[-1]):
        assert await reader.public_body(rec.handle) == rec.public_body()
    assert reader.dictionaries.knows(1)
    # And packs with it once it has looked for newer dictionaries (at its first write).
    late = HandleStore(redis)
    extra = demo_records(20_000_000, 1)[0]
    assert await late.commit(None, extra)
    assert dictionary_of(await raw(redis, late, extra.handle))[0] == 1


async def test_two_processes_training_at_once_agree_on_one_dictionary(redis: Redis) -> None:
    stores = [HandleStore(redis), HandleStore(redis)]
    for n, store in enumerate(stores):  # each has packed enough to train
        for rec in demo_records(n * TRAIN_EVERY, TRAIN_EVERY):
            store.dictionaries.pack(to_stored(rec), record_field(rec.handle))
        assert store.dictionaries.due()
    await asyncio.gather(*(s._dictionaries_fresh() for s in stores))
    kept = await redis.get(dictionary_key(1))
    assert not await redis.exists(dictionary_key(2))
    assert [s.dictionaries.current for s in stores] == [1, 1]
    rec = demo_records(9, 1)[0]
    packed = [s.dictionaries.pack(to_stored(rec), record_field(rec.handle)) for s in stores]
    assert packed[0] == packed[1] and isinstance(kept, bytes)  # the same dictionary


async def test_a_record_packed_with_an_older_dictionary_commits_by_its_version(
    redis: Redis,
) -> None:
    old, new = HandleStore(redis), HandleStore(redis)
    rec = demo_records(3, 1)[0]
    await redis.set(dictionary_key(1), trained_on(demo_records(0, 2000)))
    assert await old.commit(None, rec)  # packed with dictionary 1
    assert dictionary_of(await raw(redis, old, rec.handle))[0] == 1
    await redis.set(dictionary_key(2), OTHER)  # another process published dictionary 2
    loaded = await new.load(rec.handle)
    assert loaded is not None and loaded.record == rec
    # A concurrent writer (still on dictionary 1) changes it after the load: conflict.
    other = HandleRecord(rec.handle, rec.values[1:])
    again = await old.load(rec.handle)
    assert await old.commit(again, other)
    assert not await new.commit(loaded, HandleRecord(rec.handle, rec.values[:1]))
    # Loaded afresh, the dictionary-1 bytes' version matches and it commits, packed
    # with dictionary 2; the same goes for the batch path.
    fresh = await new.load(rec.handle)
    assert fresh is not None and fresh.record == other
    assert await new.commit(fresh, rec)
    assert dictionary_of(await raw(redis, new, rec.handle))[0] == 2
    assert await old.public_body(rec.handle) == rec.public_body()
    stored = cast(Stored, await old.load(rec.handle))
    async with new.watched([rec.handle]) as batch:
        assert await batch.commit([(stored, other)]) == [True]
    assert await new.public_body(rec.handle) == other.public_body()
