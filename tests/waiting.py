"""How the tests wait: one safety timeout for the whole suite, and polling for a condition.

``SAFETY`` bounds every wait, so that a hang fails the test instead of the run; no test
relies on it firing, and a loaded machine never comes near it.  Tests wait for events
(a threading.Event the app sets, a line a process writes, a count in ``server.stats()``),
never for time to pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

SAFETY = 30.0
POLL = 0.01  # how often a condition that nothing signals is looked at again


def wait_for(condition: Callable[[], object], what: str) -> None:
    """Poll ``condition`` from a thread (no event loop) until it holds; fail after
    ``SAFETY``."""
    deadline = time.monotonic() + SAFETY
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL)


async def until(condition: Callable[[], object], what: str = "a condition") -> None:
    """Poll ``condition`` on the event loop until it holds; fail after ``SAFETY``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SAFETY
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(POLL)
