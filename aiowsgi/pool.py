"""The thread pool that runs WSGI applications.

A ``concurrent.futures.Executor`` with the same semantics as ``ThreadPoolExecutor``
(threads started on demand up to ``max_workers``, FIFO queue), plus :meth:`run_soon`
for the request path: a request needs no ``Future`` (its response travels through a
``Handoff``), and the standard executor's per-task future and idle-semaphore
bookkeeping cost more than the application call of a small view.

Threads are daemons: an application stuck in a call cannot keep the process from
exiting after a shutdown has given up on it.

On Linux the threads may run under the ``SCHED_BATCH`` policy (``sched_batch``).  The
loop wakes a thread for every request; under the default policy the woken thread
preempts the loop at once, only to find the GIL held and sleep again: about three
context switches per request on a busy core.  A batch thread does not preempt on
wake-up, so it runs when the loop waits for events, and takes up everything queued by
then.  Its share of the CPU is unchanged.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_STOP = None
log = logging.getLogger("aiowsgi.error")


class WorkerPool(Executor):
    def __init__(self, max_workers: int, thread_name_prefix: str = "aiowsgi", *,
                 prestart: bool = False, sched_batch: bool = False) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self._sched_batch = sched_batch
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._busy = 0
        self._alive = 0
        self._shutdown = False
        self._on_stopped: Callable[[], object] | None = None
        if prestart:
            with self._lock:
                for _ in range(max_workers):
                    self._start_thread()
                    self._idle += 1

    @property
    def busy(self) -> int:
        """Threads running a task now."""
        return self._busy

    @property
    def threads(self) -> int:
        return len(self._threads)

    def run_soon(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` on a pool thread; ``fn`` must handle its own exceptions."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self.max_workers:
                self._start_thread()
        self._queue.put(fn)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()

        def task() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - delivered through the future
                future.set_exception(exc)
            else:
                future.set_result(result)

        self.run_soon(task)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False,
                 on_stopped: Callable[[], object] | None = None) -> None:
        """Stop the threads once the queue is done; ``on_stopped`` is called (from the
        last thread to exit, or at once if none is running) when all have exited."""
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
            self._on_stopped = on_stopped
            stopped_already = not self._alive
        if stopped_already and on_stopped is not None:
            on_stopped()
        if cancel_futures:
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
        for _ in threads:
            self._queue.put(_STOP)
        if wait:
            for thread in threads:
                thread.join()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads to end (after ``shutdown``); True when all have."""
        for thread in list(self._threads):
            thread.join(timeout)
        return not any(thread.is_alive() for thread in self._threads)

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._work, daemon=True,
                                  name=f"{self._prefix}-{len(self._threads)}")
        self._threads.append(thread)
        self._alive += 1
        thread.start()

    def _work(self) -> None:
        if self._sched_batch:
            enter_batch_policy()
        get = self._queue.get
        lock = self._lock
        while True:
            fn = get()
            if fn is _STOP:
                with lock:
                    self._alive -= 1
                    on_stopped = self._on_stopped if not self._alive else None
                if on_stopped is not None:
                    on_stopped()
                return
            with lock:
                self._busy += 1
            try:
                fn()
            except BaseException:
                log.exception("unhandled error in a pool task")
            finally:
                with lock:
                    self._busy -= 1
                    self._idle += 1
            del fn


def enter_batch_policy() -> bool:
    """Put the calling thread under ``SCHED_BATCH``; False where there is no such policy
    or the system refuses it (a seccomp profile, say): the thread then runs as before."""
    if not hasattr(os, "SCHED_BATCH"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError as exc:
        log.debug("SCHED_BATCH refused (%s); worker threads keep the default policy", exc)
        return False
    return True
