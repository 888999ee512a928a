"""Which Redis keys a record change touches, without Redis: bodies to set or delete,
index members to add and remove (registry.record_keys)."""

from __future__ import annotations

import doctest

from hypothesis import given
from hypothesis import strategies as st

import registry.record_keys
from registry.identifier import Handle
from registry.index_policy import IndexPolicy
from registry.record import HandleRecord
from registry.record_keys import (
    ADD,
    REMOVE,
    KeyChanges,
    bucket_encoding_problems,
    bucket_handle,
    bucket_of,
    full_key,
    handle_text,
    index_changes,
    index_member,
    is_bucket_key,
    key_tag,
    layout_problem,
    listing_key,
    number_index_key,
    record_field,
    record_key,
    shard_of,
    shard_tag,
    shard_tags,
    string_key,
    tag_of,
    tag_prefix,
    value_index_key,
    version_of,
)
from registry.stored_form import to_stored
from registry.value import DataFormat, HandleValue

NOW = "2026-12-03T00:00:00Z"
EVERY = IndexPolicy(every=True)


def record(text: str, *values: tuple[str, str], private: bool = False) -> HandleRecord:
    made = [
        HandleValue(n, kind, DataFormat.STRING, value, 86400, NOW)
        for n, (kind, value) in enumerate(values, start=1)
    ]
    if private:
        made.append(HandleValue(99, "NOTE", DataFormat.STRING, "secret note", 86400, NOW, "1100"))
    return HandleRecord(Handle.parse(text), tuple(made))


def test_keys_share_the_prefix_hash_tag_and_fold_the_handle() -> None:
    handle = Handle.parse("88.100.1/ABC")
    assert record_key(handle, 1024) == "r:{88.100.1}:985"
    assert record_field(handle) == "abc"
    assert string_key(handle) == "r:{88.100.1}:88.100.1/abc"  # layout 4
    assert full_key(handle) == "f:{88.100.1}:88.100.1/abc"
    assert listing_key("88.100.1") == "l:{88.100.1}"
    assert value_index_key("88.100.1", "url") == "v:{88.100.1}:url"
    assert number_index_key("88.100.1", "weight") == "n:{88.100.1}:weight"


# The bucket of a handle must never change between processes or versions: a record
# written by one would be looked for elsewhere by the other.
def test_buckets_are_stable_and_fold_case() -> None:
    assert bucket_of("88.100/serial-1", 1 << 20) == 866683
    assert bucket_of("88.100/serial-1", 64) == bucket_of("88.100/serial-1", 1 << 20) % 64
    assert record_key(Handle.parse("88.100/SERIAL-1"), 64) == "r:{88.100}:59"


@given(
    st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9]{1,6}){0,2}", fullmatch=True),
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E) | st.sampled_from("码标识"),
        min_size=1,
        max_size=30,
    ),
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=0, max_value=12),
)
def test_a_bucket_field_gives_its_handle_back(
    prefix: str, suffix: str, more: int, shard_bits: int
) -> None:
    shards, buckets = 1 << shard_bits, (1 << shard_bits) * (1 << more)
    handle = Handle.parse(f"{prefix}/{suffix}")
    key = record_key(handle, buckets, shards)
    assert is_bucket_key(key.encode()) and not is_bucket_key(string_key(handle).encode())
    bucket = int(key.rpartition(":")[2])
    assert 0 <= bucket < buckets
    # The bucket's tag is its handle's shard: the index entries go to the same slot.
    tag = tag_of(handle, buckets, shards)
    assert key_tag(key.encode()) == tag == shard_tag(prefix, bucket % shards, shards)
    assert tag_prefix(tag) == handle.key.partition("/")[0]
    assert index_changes(None, HandleRecord(handle, ()), EVERY, tag).__next__()[1] == (
        listing_key(tag)
    )
    back = bucket_handle(key.encode(), record_field(handle).encode())
    assert back.key == handle.key


def test_one_shard_keeps_the_keys_of_layout_6_and_more_shards_tag_each_shard() -> None:
    handle = Handle.parse("88.100.1/ABC")
    assert record_key(handle, 1024, 1) == record_key(handle, 1024) == "r:{88.100.1}:985"
    assert tag_of(handle, 1024, 1) == "88.100.1" and shard_tags("88.100.1", 1) == ["88.100.1"]
    assert shard_of(handle.key, 1024, 4) == 985 % 4 == 1
    assert record_key(handle, 1024, 4) == "r:{88.100.1/1}:985"
    assert shard_tags("88.ABC", 4) == ["88.abc/0", "88.abc/1", "88.abc/2", "88.abc/3"]
    assert bucket_handle(b"r:{88.100.1/1}:985", b"abc").text == "88.100.1/abc"
    # The records of one prefix land in every shard.
    shards = {tag_of(Handle.parse(f"88.100/s{n}"), 1024, 4) for n in range(64)}
    assert shards == set(shard_tags("88.100", 4))


def test_a_shard_count_must_be_a_power_of_two_dividing_the_buckets() -> None:
    assert layout_problem(1 << 19, 4096) is None and layout_problem(7, 1) is None
    assert layout_problem(64, 3) == ("prefix shards must be a power of two from 1 to 4096, not 3")
    assert layout_problem(64, 8192) is not None and layout_problem(64, 0) is not None
    assert layout_problem(6, 4) == "record buckets (6) must be a multiple of prefix shards (4)"


def test_changes_of_a_sharded_prefix_go_to_their_shard_s_keys() -> None:
    changes = KeyChanges(EVERY, 16, 4)
    made = [record(f"88.100/h{n}", ("URL", f"https://h.cn/{n}")) for n in range(16)]
    for each in made:
        changes.add(None, each)
    for each in made:
        tag = tag_of(each.handle, 16, 4)
        assert record_key(each.handle, 16, 4) in changes.sets
        assert record_field(each.handle) in changes.adds[listing_key(tag)]
    # Every key a change touches is in its record's shard (one slot).
    for key in [*changes.sets, *changes.adds]:
        assert key_tag(key.encode()) in shard_tags("88.100", 4)


def test_a_server_too_strict_for_compact_buckets_is_named() -> None:
    assert (
        bucket_encoding_problems(
            {"hash-max-ziplist-entries": "512", "hash-max-ziplist-value": "1024"}
        )
        == []
    )
    assert bucket_encoding_problems({"hash-max-ziplist-value": "64"}) == [
        "hash-max-ziplist-value is 64, below 1024: larger buckets become hash tables"
    ]


def test_a_version_changes_with_either_body() -> None:
    assert version_of(b"a", None) == version_of(b"a", b"")
    assert len({version_of(b"a", None), version_of(b"b", None), version_of(b"a", b"f")}) == 3


def test_a_new_record_adds_its_listing_value_and_number_entries() -> None:
    new = record("88.100/Car", ("URL", "https://X.cn"), ("WEIGHT", "1500"))
    assert sorted(index_changes(None, new, EVERY)) == [
        (ADD, "l:{88.100}", "Car", 0.0),
        (ADD, "n:{88.100}:weight", "Car", 1500.0),
        (ADD, "v:{88.100}:url", "https://x.cn\x00Car", 0.0),
        (ADD, "v:{88.100}:weight", "1500\x00Car", 0.0),
    ]


def test_only_the_types_the_policy_covers_are_indexed() -> None:
    new = record("88.100/Car", ("URL", "https://X.cn"), ("WEIGHT", "1500"), ("MADE", "x"))
    assert sorted(index_changes(None, new, IndexPolicy.parse("URL"))) == [
        (ADD, "l:{88.100}", "Car", 0.0),
        (ADD, "v:{88.100}:url", "https://x.cn\x00Car", 0.0),
    ]


def test_a_date_gets_no_scored_entry_its_text_orders_it() -> None:
    new = record("88.100/Car", ("MADE_ON", "2026-01-05"))
    assert sorted(index_changes(None, new, EVERY)) == [
        (ADD, "l:{88.100}", "Car", 0.0),
        (ADD, "v:{88.100}:made_on", "2026-01-05\x00Car", 0.0),
    ]


def test_members_hold_the_suffix_and_give_the_handle_back() -> None:
    for text in ("88.100/Car", "88.100/a/b", "88.ABC/x", "88.abc/X"):
        handle = Handle.parse(text)
        assert handle_text(handle.prefix.lower(), index_member(handle)) == text
    assert index_member(Handle.parse("88.100/a/b")) == "a/b"
    assert index_member(Handle.parse("88.ABC/x")) == "\x0088.ABC/x"  # kept whole


def test_a_replacement_touches_only_what_changed_and_a_deletion_everything() -> None:
    old = record("88.100/car", ("URL", "https://a.cn"), ("WEIGHT", "1500"))
    new = record("88.100/car", ("URL", "https://a.cn"), ("WEIGHT", "1600"))
    assert sorted(index_changes(old, new, EVERY)) == [
        (ADD, "n:{88.100}:weight", "car", 1600.0),
        (ADD, "v:{88.100}:weight", "1600\x00car", 0.0),
        (REMOVE, "v:{88.100}:weight", "1500\x00car", 0.0),
    ]
    gone = list(index_changes(old, None, EVERY))
    assert gone[0] == (REMOVE, "l:{88.100}", "car", 0.0)  # removals come first
    assert {op for op, *_ in gone} == {REMOVE} and len(gone) == 4


def test_many_changes_become_a_few_commands() -> None:
    changes = KeyChanges(EVERY, 4)
    first = record("88.100/a", ("URL", "https://a.cn"))
    second = record("88.100/b", ("URL", "https://b.cn"), private=True)
    changes.add(None, first)
    changes.add(None, second)
    kept = record("88.100/c", ("URL", "https://c.cn"), private=True)
    changes.add(kept, record("88.100/c", ("URL", "https://c2.cn")))
    gone = record("88.100/d", ("URL", "https://d.cn"))
    changes.add(gone, None)
    # One field per record, private values included (registry.stored_form), grouped
    # by bucket: one HSET each.
    sets: dict[str, list[str | bytes]] = {}
    for made in (first, second, record("88.100/c", ("URL", "https://c2.cn"))):
        sets.setdefault(record_key(made.handle, 4), []).extend(
            (record_field(made.handle), to_stored(made))
        )
    assert changes.sets == sets
    assert changes.deletes == {record_key(gone.handle, 4): ["d"]}
    # Lexical index members all score 0, sent as "0" (no float formatting).
    assert changes.adds["v:{88.100}:url"] == [
        "0",
        "https://a.cn\x00a",
        "0",
        "https://b.cn\x00b",
        "0",
        "https://c2.cn\x00c",
    ]
    assert changes.removes == {
        "v:{88.100}:url": ["https://c.cn\x00c", "https://d.cn\x00d"],
        "l:{88.100}": ["d"],
    }
    assert changes.handle_keys == ["88.100/a", "88.100/b", "88.100/c", "88.100/d"]
    assert changes.prefixes == {"88.100"}


def test_the_examples_in_the_docstrings_hold() -> None:
    """The key layout's examples (shards' tags among them) are what the code does."""
    assert doctest.testmod(registry.record_keys).failed == 0
