"""The one channel from an application thread to the event loop.

A WSGI application produces response bytes in a worker thread; only the loop may write
them.  With the GIL a thread can produce hundreds of MiB between two loop iterations, so
the bound is enforced here by construction: the thread may have at most ``limit`` bytes
handed over and not yet released by the loop (which releases them once the transport
has taken them), and waits for credit past that.  Items handed over while the loop is
busy are batched, so the loop is woken once per batch, never once per chunk; and the
wake-ups of all the server's responses share one :class:`Wakeups`, so the loop is woken
once for all the responses finished while it was busy.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any


class ClientGone(ConnectionError):
    """Raised in the application thread when its response can no longer be delivered."""


@dataclass(slots=True)
class Finish:
    """Write ``data``; the response is complete."""

    data: bytes
    keep_alive: bool


@dataclass(slots=True)
class Abort:
    """Write ``data``, then close the connection without completing the response."""

    data: bytes = b""


@dataclass(slots=True)
class SendFile:
    """Write ``head``, then ``count`` bytes of ``file`` from ``offset``; then run ``close``."""

    head: bytes
    file: IO[bytes]
    offset: int
    count: int
    close: Callable[[], object]
    keep_alive: bool


# What an application thread hands the loop: response bytes, already framed for the wire,
# then one of the three endings, which says what to do once the bytes are out.
Item = bytes | Finish | Abort | SendFile


def resolve(waiter: asyncio.Future[None]) -> None:
    """Wake ``waiter`` unless it is done already (cancelled, or woken by another path)."""
    if not waiter.done():
        waiter.set_result(None)


class Wakeups:
    """Callbacks from application threads to the loop, with one wake-up of the loop for
    all those made while it was busy (one per response otherwise: on asyncio, a write to
    its self-pipe each)."""

    __slots__ = ("_lock", "_pending", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def call(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop soon; from any thread."""
        with self._lock:
            pending = self._pending
            pending.append((callback, args))
            if len(pending) > 1:
                return  # the loop is woken already, and runs this one too
        try:
            self.loop.call_soon_threadsafe(self._run)
        except RuntimeError:  # a closed loop: a thread outlived its server
            with self._lock:
                self._pending.clear()  # nobody waits any more; keep nothing for nobody

    def _run(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for callback, args in pending:
            try:
                callback(*args)
            except Exception as exc:  # noqa: BLE001 - the others must run all the same
                self.loop.call_exception_handler({
                    "message": f"exception in callback {callback!r}", "exception": exc})


class Handoff:
    __slots__ = ("_callback", "_credit", "_error", "_items", "_limit", "_lock", "_loop",
                 "_on_done", "_outstanding", "_started", "_thread_done", "_waiter",
                 "_wakeups")

    def __init__(self, wakeups: Wakeups, limit: int,
                 callback: Callable[[], object] | None = None,
                 lock: threading.Lock | None = None) -> None:
        """``callback`` runs on the loop once the thread hands something over (as after
        :meth:`take_or_notify`).  ``lock`` may be shared with other handoffs (those of
        one connection, which follow each other): it is held only briefly."""
        self._wakeups = wakeups
        self._loop = wakeups.loop
        self._limit = limit
        self._lock = threading.Lock() if lock is None else lock
        self._credit: threading.Condition | None = None  # made when a thread first waits
        self._items: list[Item] = []
        self._waiter: asyncio.Future[None] | None = None
        self._callback = callback
        self._outstanding = 0
        self._error: BaseException | None = None
        self._started = False
        self._thread_done = False
        self._on_done: Callable[[], object] | None = None

    # -- the application thread's side ------------------------------------------------

    def put(self, item: Item, nbytes: int = 0, *, last: bool = False) -> None:
        """Hand ``item`` to the loop; block while more than ``limit`` bytes are in flight.

        One item larger than the limit is let through alone.  Raises the abort error
        once the loop has given up on the response.  ``last``: the thread is done with
        the request (one lock for both, on the path every request takes).
        """
        with self._lock:
            if last:
                self._thread_done = True
            elif nbytes and self._error is None and self._outstanding and (
                self._outstanding + nbytes > self._limit
            ):
                if self._credit is None:
                    self._credit = threading.Condition(self._lock)
                while self._error is None and self._outstanding and (
                    self._outstanding + nbytes > self._limit
                ):
                    self._credit.wait()
            if self._error is not None:
                if last and self._on_done is not None:
                    self._wakeups.call(self._on_done)
                raise self._error
            self._items.append(item)
            self._outstanding += nbytes
            waiter, callback = self._waiter, self._callback
            self._waiter = self._callback = None
        if waiter is not None:
            self._wakeups.call(resolve, waiter)
        elif callback is not None:
            self._wakeups.call(callback)

    def start(self) -> bool:
        """A thread takes the request up; False if the loop has given up on it already."""
        with self._lock:
            self._started = self._error is None
            return self._started

    def thread_done(self) -> None:
        """The application thread has finished with this request (its last call)."""
        with self._lock:
            self._thread_done = True
            on_done = self._on_done
        if on_done is not None:
            self._wakeups.call(on_done)

    # -- the loop's side --------------------------------------------------------------

    async def take(self) -> list[Item]:
        """Everything handed over since the last call; waits while there is nothing."""
        with self._lock:
            items = self._ready()
            if items is not None:
                return items
            self._callback = None
            waiter = self._waiter = self._loop.create_future()
        await waiter
        with self._lock:
            items, self._items = self._items, []
        return items

    def take_or_notify(self, callback: Callable[[], object] | None) -> list[Item] | None:
        """Everything handed over since the last call, or None after arranging for
        ``callback`` to run on the loop once there is something (the callback style of
        :meth:`take`, for the connection's common path)."""
        with self._lock:
            items = self._ready()
            if items is None:
                self._callback = callback
            return items

    def _ready(self) -> list[Item] | None:
        """What was handed over, if anything (the lock is held); raises the abort error."""
        items = self._items
        if items:
            self._items = []
            return items
        if self._error is not None:
            raise self._error
        return None

    def release(self, nbytes: int) -> None:
        """The transport has taken ``nbytes`` more: give the thread that much credit."""
        with self._lock:
            self._outstanding -= nbytes
            if self._credit is not None:
                self._credit.notify()

    def abort(self, error: BaseException) -> None:
        """The response will not be delivered: the thread's next ``put`` raises ``error``,
        and so does a pending ``take``.  Called on the loop."""
        with self._lock:
            if self._error is None:
                self._error = error
            if self._credit is not None:
                self._credit.notify_all()
            waiter, self._waiter = self._waiter, None
            self._callback = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def cancel_unstarted(self, error: BaseException) -> bool:
        """Give up on a request that no thread has taken up yet; False if one has."""
        with self._lock:
            if self._started:
                return False
        self.abort(error)
        return True

    def detach(self, on_done: Callable[[], object]) -> bool:
        """The loop stops following this request.  Returns True when the thread has
        already finished; otherwise ``on_done`` runs on the loop once it has."""
        with self._lock:
            if self._thread_done:
                return True
            self._on_done = on_done
            return False
