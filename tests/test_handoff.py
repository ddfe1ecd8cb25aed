"""Wakeups: callbacks from application threads reach the loop, one wake-up per batch."""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

import pytest

from aiowsgi.handoff import Wakeups

from .waiting import SAFETY


class CountingLoop:
    """Counts the loop's wake-ups (``call_soon_threadsafe``) and passes them on."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.wakeups = 0

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> asyncio.Handle:
        self.wakeups += 1
        return self.loop.call_soon_threadsafe(callback, *args)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.loop.call_exception_handler(context)


async def test_calls_made_while_the_loop_is_busy_take_one_wake_up() -> None:
    loop = CountingLoop(asyncio.get_running_loop())
    wakeups = Wakeups(loop)  # type: ignore[arg-type]
    seen: list[int] = []
    done = asyncio.Event()

    def record(n: int) -> None:
        seen.append(n)
        if n == 99:
            done.set()

    def thread() -> None:
        for n in range(100):
            wakeups.call(record, n)

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join(SAFETY)  # the loop is held here: every call is made before it runs
    async with asyncio.timeout(SAFETY):
        await done.wait()
    assert seen == list(range(100))
    assert loop.wakeups == 1
    # once the batch has run, the next call wakes the loop again
    later = asyncio.Event()
    await asyncio.to_thread(wakeups.call, later.set)
    async with asyncio.timeout(SAFETY):
        await later.wait()
    assert loop.wakeups == 2


async def test_a_failing_callback_does_not_stop_the_others() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    wakeups = Wakeups(loop)
    seen: list[str] = []
    done = asyncio.Event()

    def fail() -> None:
        raise ValueError("boom")

    def thread() -> None:
        wakeups.call(seen.append, "before")
        wakeups.call(fail)
        wakeups.call(seen.append, "after")
        wakeups.call(done.set)

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join(SAFETY)
    async with asyncio.timeout(SAFETY):
        await done.wait()
    assert seen == ["before", "after"]
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], ValueError)


def test_a_call_to_a_closed_loop_is_dropped() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    wakeups = Wakeups(loop)

    class Token:
        pass

    for _ in range(3):  # neither raises nor runs, nor keeps what it was given
        token = Token()
        kept = weakref.ref(token)
        wakeups.call(pytest.fail, token)
        del token
        assert kept() is None
