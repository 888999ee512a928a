"""Stopping the node's background tasks (KPI flushes, the change-stream follower, the
invalidation follower, parent registration) when it shuts down.

redis-py can swallow a cancellation that lands while one of its commands is on the
wire: the task's coroutine carries on as if nothing happened, and a shutdown that
awaits it after one ``cancel()`` waits forever. :func:`stop_all` cancels each task
again until it has ended (a swallowed cancellation is followed by another, which lands
in the task's next sleep or command), and gives up on a task only after ``timeout``
seconds, logging it, so a node always finishes shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

log = logging.getLogger("idnode.node")
RETRY = 0.1  # seconds between cancellations of a task that has not ended


async def stop_all(tasks: Sequence[asyncio.Task[None]], timeout: float = 5.0) -> None:
    """Cancel ``tasks`` until each has ended (at most ``timeout`` seconds in all)."""
    deadline = time.monotonic() + timeout
    pending = {task for task in tasks if not task.done()}
    while pending and time.monotonic() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RETRY)
    for task in pending:
        log.error("a background task did not stop", extra={"task": task.get_name()})
    for task in tasks:
        if task.done() and not task.cancelled():
            with contextlib.suppress(Exception):
                task.result()  # retrieved: no "exception never retrieved" at exit
