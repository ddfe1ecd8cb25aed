"""A gate: an app that holds each request in its thread until the test opens it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..waiting import SAFETY


class Gate:
    """Holds every request until ``release`` is set, then answers ``body`` (``done``).

    ``entered`` counts the requests that reached the app, ``finished`` those that left
    it; the test waits for them with :meth:`wait_entered` and :meth:`wait_finished`.
    """

    def __init__(self, body: bytes = b"done") -> None:
        self.body = body
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.finished = threading.Semaphore(0)

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.entered.release()
        try:
            self.release.wait(SAFETY)
            start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("Content-Length", str(len(self.body)))])
            return [self.body]
        finally:
            self.finished.release()

    async def wait_entered(self, count: int = 1) -> None:
        for _ in range(count):
            assert await asyncio.to_thread(self.entered.acquire, True, SAFETY)

    async def wait_finished(self, count: int = 1) -> None:
        for _ in range(count):
            assert await asyncio.to_thread(self.finished.acquire, True, SAFETY)
