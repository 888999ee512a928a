"""Size limits a node enforces on what it is sent (a small value object, like httpx's Timeout)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Upper bounds on request and record sizes.

    >>> Limits(max_batch=100).max_batch
    100
    """

    max_body_bytes: int = 4 * 1024 * 1024
    max_values_per_handle: int = 500
    max_value_bytes: int = 32 * 1024
    max_type_chars: int = 255
    max_batch: int = 2000
    max_page_size: int = 10_000
    max_search_results: int = 10_000
    default_ttl: int = 86_400


# Page numbers of listings stop here, so page x pageSize always fits a 64-bit offset.
MAX_PAGE_NUMBER = 1_000_000_000
MAX_PAGE_SIZE = Limits().max_page_size
