"""In-process copies of hot records' public bodies, in front of Redis.

A node that holds a popular identifier answers it many times a second; each answer
would be one Redis round trip. :class:`LocalCopies` keeps the bytes (or the fact that
the handle does not exist) for ``ttl`` seconds at most, and drops them as soon as they
may be wrong:

- a write committed by this process forgets the handles it touched before it returns;
- writes committed by other processes (other instances of the node on the same Redis)
  reach every process through the store's change stream, which each process reads
  every 50 ms (:meth:`registry.store.HandleStore.follow_changes`), so they are forgotten
  within that; ``ttl`` bounds the rest, e.g. while the change stream cannot be read;
- a read that was in flight while anything was forgotten is not kept: its answer may
  predate the write (the generation check in :meth:`put`).

Nothing here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

MAX_ENTRIES = 100_000


class LocalCopies:
    """Bodies by handle key, each valid until its deadline.

    >>> copies = LocalCopies(ttl=1.0, clock=lambda: 0.0)
    >>> generation = copies.generation
    >>> copies.put("88.100/a", b"{}", generation)
    >>> copies.get("88.100/a")
    (True, b'{}')
    >>> copies.forget(["88.100/a"]); copies.get("88.100/a")
    (False, None)
    """

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.generation = 0  # bumped by every forget: reads begun before it are not kept
        self._clock = clock
        self._copies: dict[str, tuple[float, bytes | None]] = {}

    def get(self, key: str) -> tuple[bool, bytes | None]:
        """(True, body or None for "no such handle") while a copy is valid, else
        (False, None)."""
        entry = self._copies.get(key)
        if entry is None or entry[0] <= self._clock():
            return False, None
        return True, entry[1]

    def put(self, key: str, body: bytes | None, generation: int) -> None:
        """Keep ``body``, read when :attr:`generation` was ``generation``, unless
        something was forgotten since (the read may predate that write)."""
        if self.ttl <= 0 or generation != self.generation:
            return
        if len(self._copies) >= self.max_entries:
            self._copies.clear()  # crude, but bounded and rare: hot keys come back at once
        self._copies[key] = (self._clock() + self.ttl, body)

    def forget(self, keys: Iterable[str]) -> None:
        self.generation += 1
        for key in keys:
            self._copies.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._copies.clear()
