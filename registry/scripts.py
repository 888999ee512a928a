"""Lua scripts called by their SHA-1 in pipelines, on a single Redis or a Redis Cluster.

A pipeline's ``EVALSHA`` finds its script missing (``NOSCRIPT``) when the server has
not loaded it: a Redis restarted (or its scripts flushed) since it was loaded, or, on a
cluster, a master that was not one when it was loaded (a replica failed over, a master
added): ``SCRIPT LOAD`` reaches the masters of its time only (redis-py's cluster client
sends it to every master). :func:`pipelined` runs a pipeline and, when a reply says
NOSCRIPT, loads the scripts and runs the pipeline once more. While the scripts are
there it costs nothing: redis-py's own way, a ``SCRIPT EXISTS`` before every pipeline
that calls a registered script, costs a round trip each time, and its cluster pipeline
does not load scripts at all.

>>> READ = Script("return redis.call('GET', KEYS[1])")
>>> READ.sha
'd3c21d0c2b9ca22f82737626a27bcaf5d288f99f'
>>> replies = await pipelined(redis, lambda pipe: READ.queue(pipe, ["k"]), [READ])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from registry.replication import ReplicaAcks


class Script:
    """A Lua script, called by its SHA-1 (``EVALSHA``)."""

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def queue(self, pipe: Pipeline, keys: Sequence[str | bytes], args: Iterable[Any] = ()) -> None:
        """Queue a call of the script on ``pipe`` (a pipeline or a transaction)."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)


async def load(redis: Redis, scripts: Iterable[Script]) -> None:
    """Load ``scripts`` into the store: on a cluster into every master."""
    for script in scripts:
        await redis.script_load(script.text)


async def rerun_missing(
    redis: Redis,
    script: Script,
    calls: Sequence[tuple[Sequence[str], Sequence[Any]]],
    replies: list[Any],
    acks: ReplicaAcks | None = None,
) -> list[Any]:
    """``replies`` of ``calls`` of ``script`` (one reply a call), with the calls that
    found the script missing loaded and run again, and only those: a call that ran is
    never sent twice, as a write must not be (on a cluster one master may lack a script
    that the others have, so some calls of a pipeline run and others do not). The
    calls run again are waited for as ``acks`` says (registry.replication)."""
    again = [n for n, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if not again:
        return replies
    await load(redis, [script])
    pipe = redis.pipeline(transaction=False)
    for n in again:
        script.queue(pipe, *calls[n])
    waits = acks.queue(pipe, redis, [calls[n][0][0] for n in again]) if acks else 0
    ran = await pipe.execute(raise_on_error=False)
    done = list(replies)
    for n, reply in zip(again, ran[: len(ran) - waits], strict=True):
        done[n] = reply
    if acks:
        acks.check(ran[len(ran) - waits :])
    return done


def missing(replies: Iterable[object]) -> bool:
    """Whether a pipeline's replies say a script was missing."""
    return any(isinstance(reply, NoScriptError) for reply in replies)


async def pipelined(
    redis: Redis,
    fill: Callable[[Pipeline], object],
    scripts: Iterable[Script],
    *,
    raise_on_error: bool = True,
) -> list[Any]:
    """The replies of the commands ``fill`` queues on a pipeline (not a transaction),
    run again once after loading ``scripts`` if one of them was missing: ``fill`` is
    called once more then, so its commands must be safe to run twice (reads, or writes
    that change nothing the second time). With ``raise_on_error`` the first error
    reply is raised, else errors are left in the replies."""
    pipe = redis.pipeline(transaction=False)
    fill(pipe)
    replies = await pipe.execute(raise_on_error=False)
    if missing(replies):
        await load(redis, scripts)
        pipe = redis.pipeline(transaction=False)
        fill(pipe)
        replies = await pipe.execute(raise_on_error=False)
    if raise_on_error:
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
    return list(replies)
