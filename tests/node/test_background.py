"""Background tasks stop at shutdown even when one swallows its cancellation (as
redis-py can while a command is on the wire)."""

from __future__ import annotations

import asyncio

from node.background import stop_all


async def test_a_task_that_swallows_its_first_cancellation_is_stopped() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed == 0:
                    swallowed += 1
                    continue  # what redis-py may do: the loop carries on
                raise

    async def plain() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(stubborn()), asyncio.create_task(plain())]
    await asyncio.sleep(0)
    await stop_all(tasks, timeout=5.0)
    assert swallowed == 1 and all(t.cancelled() for t in tasks)


async def test_a_task_that_will_not_stop_is_given_up_on_in_time() -> None:
    listening = False

    async def deaf() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if listening:
                    raise

    task = asyncio.create_task(deaf())
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await stop_all([task], timeout=0.3)
    assert loop.time() - started < 2.0 and not task.done()
    listening = True  # let the test end
    await stop_all([task])
    assert task.cancelled()


async def test_a_task_that_failed_or_finished_is_left_as_it_ended() -> None:
    async def fails() -> None:
        raise RuntimeError("flush failed")

    async def finishes() -> None:
        return None

    tasks = [asyncio.create_task(fails()), asyncio.create_task(finishes())]
    await asyncio.sleep(0)
    await stop_all(tasks)
    assert isinstance(tasks[0].exception(), RuntimeError) and tasks[1].result() is None
