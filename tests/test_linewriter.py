"""The line writer: lines added on the loop reach the stream in order, from a thread, in
few writes; a stream that blocks or fails never holds up the loop, and what it cannot
take is bounded, dropped and counted; closing writes what waits, within a bound."""

from __future__ import annotations

import asyncio
import threading

from aiowsgi.linewriter import HAND_OVER_SIZE, LineWriter

from .waiting import SAFETY, until


class Collected:
    def __init__(self) -> None:
        self.writes: list[str] = []
        self.threads: set[str] = set()
        self.written = threading.Event()

    def __call__(self, text: str) -> None:
        self.writes.append(text)
        self.threads.add(threading.current_thread().name)
        self.written.set()


class Stuck:
    """A stream whose writes block until ``release`` is set."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.writes: list[str] = []

    def __call__(self, text: str) -> None:
        self.entered.set()
        self.release.wait(SAFETY)
        self.writes.append(text)


async def test_every_line_in_order_by_close_in_few_writes_from_its_thread() -> None:
    out = Collected()
    writer = LineWriter(out, 1 << 20, "test-writer")
    lines = [f"line {number}\n" for number in range(5_000)]
    for line in lines:
        writer.add(line)
    assert await writer.close(SAFETY) == 0
    assert "".join(out.writes) == "".join(lines)
    assert len(out.writes) < 10
    assert out.threads == {"test-writer"}
    assert writer.dropped == 0


async def test_a_line_is_written_without_close() -> None:
    out = Collected()
    writer = LineWriter(out, 1000, "test-writer")
    writer.add("one\n")
    await until(out.written.is_set, "the line")
    assert out.writes == ["one\n"]
    assert await writer.close(SAFETY) == 0


async def test_enough_waiting_is_handed_over_without_the_loop() -> None:
    out = Collected()
    writer = LineWriter(out, 1 << 20, "test-writer")
    line = "x" * 99 + "\n"
    for _ in range(HAND_OVER_SIZE // len(line) + 1):
        writer.add(line)
    # the loop is held here: only a hand-over on add() lets the thread write
    assert out.written.wait(SAFETY)
    assert await writer.close(SAFETY) == 0


async def test_a_stuck_stream_never_blocks_and_what_passes_the_limit_is_dropped() -> None:
    out = Stuck()
    writer = LineWriter(out, 100, "test-writer")
    writer.add("a" * 39 + "\n")
    assert await asyncio.to_thread(out.entered.wait, SAFETY)  # the thread is stuck on it
    for letter in "bcdefghij":
        writer.add(letter * 39 + "\n")  # returns at once: 40 + 40 wait, the rest cannot
    assert writer.dropped_full == 8 and writer.dropped == 8
    out.release.set()
    assert await writer.close(SAFETY) == 0
    assert "".join(out.writes) == "a" * 39 + "\n" + "b" * 39 + "\n"


async def test_close_waits_a_bounded_time_and_says_what_was_not_written() -> None:
    out = Stuck()
    writer = LineWriter(out, 1000, "test-writer")
    for _ in range(3):
        writer.add("line\n")
    try:
        assert await writer.close(0.05) == 3  # the thread is still stuck on them
        writer.add("late\n")
        assert writer.dropped_full == 1  # nothing is taken after close
    finally:
        out.release.set()
    assert await writer.close(SAFETY) == 0  # closing again waits for the end
    assert out.writes == ["line\n" * 3]


async def test_failed_writes_are_counted_with_the_first_error() -> None:
    calls: list[str] = []

    def full_disk(text: str) -> None:
        calls.append(text)
        raise OSError(28, "No space left on device")

    writer = LineWriter(full_disk, 1000, "test-writer")
    for _ in range(5):
        writer.add("line\n")
    assert await writer.close(SAFETY) == 0
    assert writer.dropped_failed == 5 and writer.dropped == 5
    assert writer.failure == "OSError: [Errno 28] No space left on device"
    assert calls
