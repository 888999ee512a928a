"""Which handles a ``GET /api/handles?prefix=P`` listing answers with, and how many.

The HANDLE.NET Technical Manual ("Methods - GET Prefix"): ``page`` is zero-based; a
``pageSize`` of zero returns the count and no handles; when either parameter is missing
or negative, every handle is returned. Listing "every handle" of a prefix is bounded
here: up to ``limit`` (the node's ``max_page_size``, 10,000 by default) they come in one
answer, beyond it the request is refused with a message saying to page.

Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry.errors import InvalidValue


@dataclass(frozen=True, slots=True)
class Listing:
    """One listing request.

    >>> Listing.parse(None, None, limit=10_000).every
    True
    >>> Listing.parse(-1, 10, limit=10_000).every
    True
    """

    page: int
    page_size: int
    every: bool  # no paging asked for: every handle, up to the limit

    @classmethod
    def parse(cls, page: int | None, page_size: int | None, *, limit: int) -> Listing:
        if page_size == 0:  # the count only (whatever the page)
            return cls(max(page or 0, 0), 0, every=False)
        if page is None or page_size is None or page < 0 or page_size < 0:
            return cls(0, limit, every=True)
        if page_size > limit:
            raise InvalidValue(f"pageSize is at most {limit}")
        return cls(page, page_size, every=False)

    def answer(self, prefix: str, total: int, handles: list[str]) -> dict[str, Any]:
        """The response body; refuses "every handle" of a prefix holding more than the
        limit rather than answer with a silently cut list."""
        if self.every and total > self.page_size:
            raise InvalidValue(
                f"prefix {prefix} holds {total} handles, more than one listing returns "
                f"({self.page_size}); ask for pages: page=0&pageSize={self.page_size}"
            )
        body: dict[str, Any] = {"responseCode": 1, "prefix": prefix, "totalCount": total}
        if not self.every:  # as the reference servlet: page and pageSize when paged
            body["page"] = self.page
            body["pageSize"] = self.page_size
        body["handles"] = handles
        return body
