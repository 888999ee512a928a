"""Seeding: loading many identifiers into a hierarchy quickly, through its batch API.

Each enterprise's identifiers go to the node that holds its prefix, with the
enterprise's own credentials, in batches of the API's maximum (2000), several batches
in flight at once, and one progress bar over all of them::

    seeder = Seeder(http, progress=sys.stdout)
    await seeder.seed([SeedJob("88.100.1", "http://127.0.0.1:8001", credentials, items)])

A refused item fails the whole seeding with the node's first messages: a load test on
half-seeded data would measure the wrong thing. So credentials are tried first
(:meth:`Seeder.refused`): an enterprise whose node refuses them (onboarded by hand, with
a secret of its own) can be left out, and named, before anything is written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import aiohttp

from registry.errors import ConfigError
from registry.limits import Limits
from resolver.upstream import Credentials

BATCH = Limits().max_batch
IN_FLIGHT = 4  # batches sent at once: enough to keep Redis busy, not enough to queue


@dataclass(frozen=True, slots=True)
class SeedJob:
    """One enterprise's identifiers (batch-API items) and where they go."""

    prefix: str
    node_url: str
    credentials: Credentials
    items: list[dict[str, Any]]


def progress_line(done: int, total: int, seconds: float, width: int = 30) -> str:
    """One line of the progress bar.

    >>> progress_line(500, 2000, 0.5)
    '  seeding [#######                       ]     500/2,000  25%  1,000/s'
    """
    share = done / total if total else 1.0
    bar = "#" * int(width * share)
    rate = done / seconds if seconds > 0 else 0.0
    return f"  seeding [{bar:<{width}}] {done:>7,}/{total:,} {share:>4.0%} {rate:>6,.0f}/s"


class Seeder:
    """Registers identifiers through ``POST /api/batch/handles?overwrite=true``."""

    def __init__(self, http: aiohttp.ClientSession, *, progress: TextIO | None = None) -> None:
        self._http = http
        self._progress = progress
        self._done = 0
        self._total = 0
        self._started = 0.0
        self._shown = -1

    async def refused(self, jobs: Sequence[SeedJob]) -> list[SeedJob]:
        """The jobs whose node refuses their credentials (HTTP 401 to a login)."""
        answers = await asyncio.gather(*(self._logs_in(job) for job in jobs))
        return [job for job, accepted in zip(jobs, answers, strict=True) if not accepted]

    async def _logs_in(self, job: SeedJob) -> bool:
        url = f"{job.node_url}/api/sessions"
        headers = {"Authorization": job.credentials.header()}
        try:
            async with self._http.post(url, headers=headers) as response:
                return response.status != 401
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConfigError(f"seeding {job.prefix}: cannot reach {job.node_url}: {exc}") from exc

    async def seed(self, jobs: Sequence[SeedJob]) -> int:
        """Register every job's items; returns how many identifiers were written."""
        self._total = sum(len(job.items) for job in jobs)
        self._done = 0
        self._started = time.monotonic()
        slots = asyncio.Semaphore(IN_FLIGHT)
        await asyncio.gather(
            *(
                self._send(job, job.items[start : start + BATCH], slots)
                for job in jobs
                for start in range(0, len(job.items), BATCH)
            )
        )
        return self._done

    async def _send(
        self, job: SeedJob, items: list[dict[str, Any]], slots: asyncio.Semaphore
    ) -> None:
        url = f"{job.node_url}/api/batch/handles?overwrite=true"
        headers = {"Authorization": job.credentials.header()}
        async with slots:
            try:
                async with self._http.post(url, json={"handles": items}, headers=headers) as r:
                    answer = await r.json(content_type=None)
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ConfigError(f"seeding {job.prefix} at {job.node_url} failed: {exc}") from exc
        if status != 200 or answer.get("failed"):
            detail = answer.get("results", [])[:3] if isinstance(answer, dict) else answer
            raise ConfigError(
                f"seeding {job.prefix} at {job.node_url} failed (HTTP {status}): {detail}"
            )
        self._done += len(items)
        self._show()

    def _show(self) -> None:
        """Print at every tenth of the way (a log file gets ten lines, not thousands)."""
        tenth = 10 * self._done // self._total
        if self._progress is None or tenth == self._shown:
            return
        self._shown = tenth
        line = progress_line(self._done, self._total, time.monotonic() - self._started)
        print(line, file=self._progress, flush=True)
