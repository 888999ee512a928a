"""The paged layout of the lexical indexes, in memory (:class:`PagedSet`): any sequence
of adds and removes leaves it holding what a plain sorted set would, each page within
its bounds and its size; and the range reads map onto pages exactly."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.paged_index import (
    LUA,
    PAGE_MAX,
    PagedSet,
    op_code,
    page_encoding_problems,
    page_key,
    pages_for,
    set_of,
    split_sizes,
    within,
)

# Members with shared heads, NULs (value-index members) and characters beyond ASCII,
# whose UTF-8 bytes order them as Redis does.
members = st.text(alphabet="ab\x00é中", min_size=1, max_size=6)
bounds = st.one_of(
    st.just("-"), st.just("+"), st.builds(lambda side, m: side + m, st.sampled_from("[("), members)
)


def ordered(items: set[str]) -> list[str]:
    return sorted(items, key=lambda m: m.encode())


def check_pages(paged: PagedSet, expected: set[str]) -> None:
    pages = paged.pages()
    assert [m for _, page in pages for m in page] == ordered(expected)
    assert paged.count == len(expected)
    if not expected:
        assert pages == []
        return
    assert pages[0][0] == ""
    for n, (bound, page) in enumerate(pages):
        assert len(page) <= paged.page_max
        assert n == 0 or page, "only the first page may stay empty"
        upper = pages[n + 1][0] if n + 1 < len(pages) else None
        for m in page:
            assert m.encode() >= bound.encode()
            assert upper is None or m.encode() < upper.encode()


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.booleans(), st.lists(members, max_size=12)), max_size=40),
    st.integers(2, 6),
)
def test_adds_and_removes_hold_what_a_sorted_set_holds(
    steps: list[tuple[bool, list[str]]], half: int
) -> None:
    paged, plain = PagedSet(page_max=2 * half), set[str]()
    for adding, batch in steps:
        for m in batch:
            if adding:
                assert paged.add(m) == (m not in plain)
                plain.add(m)
            else:
                assert paged.remove(m) == (m in plain)
                plain.discard(m)
        check_pages(paged, plain)


@given(st.sets(members, max_size=60), bounds, bounds, st.integers(0, 8), st.integers(-1, 8))
def test_a_range_read_through_the_pages_is_the_sorted_set_s(
    held: set[str], low: str, high: str, offset: int, limit: int
) -> None:
    paged = PagedSet(page_max=4)
    for m in held:
        paged.add(m)
    if low == "+" or high == "-":
        return  # not a range ZRANGEBYLEX takes in that place
    found = [m for m in ordered(held) if within(m, low, high)]
    expected = found[offset:] if limit < 0 else found[offset : offset + limit]
    assert paged.range(low, high, offset, limit) == expected
    # Only the pages that may hold the range are read, in order.
    chosen = pages_for(paged.bounds, low, high)
    assert chosen == sorted(chosen)


@given(st.integers(0, 5000), st.sampled_from([4, 16, 128, 256]))
def test_a_split_cuts_a_page_into_half_full_to_full_pieces(count: int, page_max: int) -> None:
    sizes = split_sizes(count, page_max)
    if count <= page_max:
        assert sizes == []
    else:
        assert sum(sizes) == count
        assert all(page_max // 2 <= size <= page_max for size in sizes)


def test_the_lua_and_the_model_split_at_the_same_size() -> None:
    found = re.search(r"local PAGE_MAX = (\d+)", LUA)
    assert found is not None and int(found.group(1)) == PAGE_MAX


def test_keys_of_a_paged_set_are_told_apart_by_name() -> None:
    key = "v:{88.100}:url"
    assert set_of(key) == (key, "count")
    assert set_of(key + "#") == (key, "directory")
    assert set_of(page_key(key, "https://x\x00a")) == (key, "page")
    assert set_of(key + "#zset") == (key, "old")
    assert set_of("v:{88.100}:a#b") == ("v:{88.100}:a#b", "count")  # a type holding '#'
    assert page_key(key, "a").startswith(key + "#")  # the prefix's hash tag, kept


def test_only_the_lexical_families_are_paged() -> None:
    assert op_code("a", "l:{88.100}") == "A"
    assert op_code("r", "v:{88.100}:url") == "R"
    assert op_code("a", "n:{88.100}:capacity") == "a"


def test_a_redis_keeping_pages_small_is_named() -> None:
    assert page_encoding_problems(
        {"zset-max-ziplist-entries": "128", "zset-max-ziplist-value": "64"}
    ) == [
        "zset-max-ziplist-entries is 128, below 256: larger index pages become skiplists",
        "zset-max-ziplist-value is 64, below 1024: larger index pages become skiplists",
    ]
    assert page_encoding_problems({"zset-max-ziplist-entries": "512"}) == []
