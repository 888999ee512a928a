"""The audit log: every write and every refused write, who, what, when, outcome.

Kept in a Redis stream (``audit``) trimmed to about ``max_entries`` (oldest first), so it
is bounded and survives restarts with the store. Entries are flat string maps::

    time        2026-11-21T10:00:00.123Z
    client      127.0.0.1
    identity    300:0.NA/88.100.1        (as authenticated, else "claimed:<username>")
    method      PUT
    target      /api/handles/88.100.2/x?overwrite=false
    status      403
    code        400                      (the Handle responseCode of the answer)
    outcome     ok | refused | failed    (2xx/3xx, 4xx, 5xx)
    message     Identity ... may not create the handle of 88.100.2/x: ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from registry.errors import InvalidValue, StoreUnavailable
from registry.redis_client import STORE_ERRORS

AUDIT_KEY = "audit"
FIELDS = ("time", "client", "identity", "method", "target", "status", "code", "outcome", "message")
MAX_TEXT = 512


def outcome_of(status: int) -> str:
    return "ok" if status < 400 else "refused" if status < 500 else "failed"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    time: str
    client: str
    identity: str
    method: str
    target: str
    status: int
    code: int
    message: str = ""

    def fields(self) -> dict[str, str]:
        return {
            "time": self.time,
            "client": self.client,
            "identity": self.identity[:MAX_TEXT],
            "method": self.method,
            "target": self.target[:MAX_TEXT],
            "status": str(self.status),
            "code": str(self.code),
            "outcome": outcome_of(self.status),
            "message": self.message[:MAX_TEXT],
        }


class AuditLog:
    """Appends and reads audit entries.

    >>> audit = AuditLog(redis, max_entries=100_000)        # doctest: +SKIP
    >>> await audit.record(entry)                            # doctest: +SKIP
    >>> (await audit.read(10, before=None))[0]["outcome"]    # doctest: +SKIP
    'refused'
    """

    def __init__(self, redis: Redis, *, max_entries: int) -> None:
        self.redis = redis
        self.max_entries = max_entries

    async def record(self, entry: AuditEntry) -> None:
        try:
            await self.redis.xadd(
                AUDIT_KEY,
                dict(entry.fields()),  # type: ignore[arg-type]
                maxlen=self.max_entries,
                approximate=True,
            )
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"The audit log (Redis) failed: {exc}") from exc

    async def read(self, count: int, before: str | None) -> list[dict[str, str]]:
        """Newest first: up to ``count`` entries older than the entry id ``before``."""
        if before is not None and not _is_stream_id(before):
            raise InvalidValue(f"'before' must be an entry id like 1700000000000-0, not {before!r}")
        try:
            rows = await self.redis.xrevrange(
                AUDIT_KEY, max=f"({before}" if before else "+", min="-", count=count
            )
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"The audit log (Redis) failed: {exc}") from exc
        out = []
        for entry_id, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], rows):
            row = {k.decode(): v.decode() for k, v in fields.items()}
            out.append({"id": entry_id.decode(), **row})
        return out


def _is_stream_id(text: str) -> bool:
    ms, _, seq = text.partition("-")
    return ms.isdigit() and len(ms) <= 20 and (seq == "" or (seq.isdigit() and len(seq) <= 20))
