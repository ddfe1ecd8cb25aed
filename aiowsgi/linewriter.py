"""Text lines collected on the loop and written by a thread of their own.

The access log makes a line per request.  Written on the loop, a slow stderr (a pipe
nobody reads fast enough, a terminal being scrolled) or a full disk would stall every
connection; handed to a thread one by one, the hand-overs would cost more than the
lines.  So the loop appends lines to a list, hands the list over at most every
``HAND_OVER_AFTER`` seconds (sooner once ``HAND_OVER_SIZE`` characters wait), and the
writer thread writes each hand-over in one call.  At most ``limit`` characters wait at
any time: a line that would pass the limit is dropped and counted, and so are lines
whose write failed.  Closing writes what is left, waiting a bounded time for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Callable

HAND_OVER_AFTER = 0.05  # seconds a line may wait on the loop
HAND_OVER_SIZE = 64 * 1024  # characters after which it is handed over at once


class LineWriter:
    """Lines go in on the loop (:meth:`add`), out through ``write`` on the thread."""

    def __init__(self, write: Callable[[str], object], limit: int, name: str) -> None:
        self._write = write
        self.limit = limit
        self._room = limit  # the limit while open, -1 once closing: nothing more is taken
        self._loop = asyncio.get_running_loop()
        self._lines: list[str] = []  # the loop's, not handed over yet
        self._timer: asyncio.TimerHandle | None = None
        # The loop counts what it added and handed over, the thread what it finished
        # (written or failed): each counter has one writer; what waits is a difference.
        self._added = self._handed = self._handed_lines = 0
        self._finished = self._finished_lines = 0
        self.dropped_full = 0  # lines dropped because too much was waiting (loop)
        self.dropped_failed = 0  # lines whose write failed (thread)
        self.failure: str | None = None  # the first write error, for the report
        self._ready = threading.Condition(threading.Lock())
        self._batches: list[list[str]] = []  # handed over, not yet taken by the thread
        self._closing = False
        self._done: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.dropped_failed

    def add(self, line: str) -> None:
        """Queue ``line`` (with its newline), or drop it if too much waits already."""
        added = self._added + len(line)
        if added - self._finished > self._room:
            self.dropped_full += 1
            return
        self._lines.append(line)
        self._added = added
        if added - self._handed >= HAND_OVER_SIZE:
            self._hand_over()
        elif self._timer is None:
            self._timer = self._loop.call_later(HAND_OVER_AFTER, self._hand_over)

    def _hand_over(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        self._handed = self._added
        self._handed_lines += len(lines)
        with self._ready:
            self._batches.append(lines)
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._batches and not self._closing:
                    self._ready.wait()
                batches, self._batches = self._batches, []
                closing = self._closing
            if batches:
                count = sum(map(len, batches))
                text = "".join(itertools.chain.from_iterable(batches))
                try:
                    self._write(text)
                except Exception as exc:  # noqa: BLE001 - a full disk, a closed pipe...
                    self.dropped_failed += count
                    if self.failure is None:
                        self.failure = f"{type(exc).__name__}: {exc}"
                self._finished += len(text)
                self._finished_lines += count
            elif closing:
                break
        done = self._done
        if done is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(_settle, done)

    async def close(self, timeout: float) -> int:
        """Write what is waiting, within ``timeout`` seconds; the number of lines that
        could not be written then (dropped lines not counted)."""
        if self._done is None:
            self._hand_over()
            self._done = self._loop.create_future()
            self._room = -1
            with self._ready:
                self._closing = True
                self._ready.notify()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._done), timeout)
        return self._handed_lines - self._finished_lines


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
