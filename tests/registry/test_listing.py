"""registry.listing: the paging rules of GET /api/handles?prefix=P."""

from __future__ import annotations

import pytest

from registry.errors import InvalidValue
from registry.listing import Listing

LIMIT = 100


@pytest.mark.parametrize(
    ("page", "size", "expected"),
    [
        (None, None, Listing(0, LIMIT, every=True)),  # no paging: every handle
        (3, None, Listing(0, LIMIT, every=True)),  # either missing: every handle
        (None, 10, Listing(0, LIMIT, every=True)),
        (-1, 10, Listing(0, LIMIT, every=True)),  # either negative: every handle
        (2, -5, Listing(0, LIMIT, every=True)),
        (2, 10, Listing(2, 10, every=False)),
        (0, LIMIT, Listing(0, LIMIT, every=False)),
        (4, 0, Listing(4, 0, every=False)),  # the count only
        (None, 0, Listing(0, 0, every=False)),
        (-3, 0, Listing(0, 0, every=False)),
    ],
)
def test_parse(page: int | None, size: int | None, expected: Listing) -> None:
    assert Listing.parse(page, size, limit=LIMIT) == expected


def test_page_size_over_the_limit_is_refused() -> None:
    with pytest.raises(InvalidValue, match="at most 100"):
        Listing.parse(0, LIMIT + 1, limit=LIMIT)


def test_paged_answer_says_which_page() -> None:
    body = Listing(1, 2, every=False).answer("88.100", 5, ["88.100/c", "88.100/d"])
    assert body == {
        "responseCode": 1,
        "prefix": "88.100",
        "totalCount": 5,
        "page": 1,
        "pageSize": 2,
        "handles": ["88.100/c", "88.100/d"],
    }


def test_answer_with_every_handle_has_no_page() -> None:
    body = Listing.parse(None, None, limit=LIMIT).answer("88.100", 1, ["88.100/a"])
    assert body == {"responseCode": 1, "prefix": "88.100", "totalCount": 1, "handles": ["88.100/a"]}


def test_every_handle_beyond_the_limit_is_refused_not_cut() -> None:
    every = Listing.parse(None, None, limit=LIMIT)
    assert every.answer("88.100", LIMIT, ["h"] * LIMIT)["totalCount"] == LIMIT
    with pytest.raises(InvalidValue, match="holds 101 handles.*page=0&pageSize=100"):
        every.answer("88.100", LIMIT + 1, ["h"] * LIMIT)
