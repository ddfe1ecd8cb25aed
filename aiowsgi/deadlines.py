"""The one timeout mechanism of every connection: a deadline and a sweep.

Every wait of a connection (for a head, a body, the application's first output, a
client that must read, a coroutine's read or drain) stores when it must end in
``conn.deadline`` (0: no limit) and nothing else: no timer per wait, which keeps the
request path cheap.  One periodic sweep per server finds the connections past their
deadline and gives each the DEADLINE event; the state table (:mod:`aiowsgi.states`)
says what that means where the connection is.  In TASK it cancels the coroutine, and
:func:`within` turns that cancellation into the ``TimeoutError`` of the wait it bounded.
A timeout fires at most one ``tick`` late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Expiring(Protocol):
    """A connection, as the sweep and :func:`within` see it."""

    deadline: float
    expired: bool  # the task was cancelled by the sweep (not by a shutdown)
    task: asyncio.Task[None] | None
    loop: asyncio.AbstractEventLoop

    def expire(self) -> None: ...


def tick(*timeouts: float) -> float:
    """How often the sweep looks: a quarter of the shortest timeout, within [10 ms, 1 s]."""
    return min(1.0, max(0.01, min(timeouts) / 4))


async def sweep(connections: Callable[[], Iterable[Expiring]], interval: float) -> None:
    """Every ``interval`` seconds, expire the connections past their deadline; runs until
    cancelled (by the server's shutdown)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        now = loop.time()
        # expiring may close a connection, which leaves the set: look at a copy
        for conn in [c for c in connections() if c.deadline and now >= c.deadline]:
            conn.expire()


async def within(conn: Expiring, aw: Awaitable[T], timeout: float) -> T:
    """``await aw`` in the connection's task, bounded by ``timeout`` seconds: the
    deadline is set for the sweep, whose cancellation becomes ``TimeoutError`` here."""
    conn.deadline = conn.loop.time() + timeout
    try:
        return await aw
    except asyncio.CancelledError:
        if conn.expired:
            conn.expired = False
            assert conn.task is not None
            if conn.task.uncancel() == 0:
                raise TimeoutError from None
        raise
    finally:
        conn.deadline = 0.0
