"""An in-memory transport and a held thread pool, to drive ``HTTPConnection`` without
sockets or threads: the test decides when bytes arrive, when the application runs and
when the client reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from aiowsgi import Config
from aiowsgi.connection import HTTPConnection
from aiowsgi.pool import WorkerPool
from aiowsgi.serverstate import ServerState
from aiowsgi.wsgi import WSGIApp


class FakeTransport(asyncio.Transport):
    """Records what the connection writes.  With ``hold`` set, written bytes stay
    "buffered" (the client does not read) and the protocol is paused past ``high``, as
    asyncio's transports do, until :meth:`client_reads`."""

    def __init__(self, protocol: asyncio.Protocol, *, low: int = 16 * 1024,
                 high: int = 64 * 1024) -> None:
        super().__init__()
        self.protocol = protocol
        self.written = bytearray()
        self.writes = 0  # write() and writelines() calls
        self.hold = False
        self.buffered = 0
        self.low, self.high = low, high
        self.paused_protocol = False
        self.reading = True
        self.closing = self.aborted = self.eof_written = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000),
                "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        self.written += data
        if self.hold:
            self.buffered += len(data)
            if self.buffered > self.high and not self.paused_protocol:
                self.paused_protocol = True
                self.protocol.pause_writing()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))  # one call, like uvloop's gathered writes

    def client_reads(self) -> None:
        """The client takes everything buffered: the protocol resumes if it was paused."""
        self.buffered = 0
        if self.paused_protocol:
            self.paused_protocol = False
            self.protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.low, self.high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high = 64 * 1024 if high is None else high
        self.low = self.high // 4 if low is None else low

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True


class HeldPool(WorkerPool):
    """A pool whose calls wait until the test runs them (:meth:`run_next`), on the loop's
    own thread: no thread, no race."""

    def __init__(self) -> None:
        super().__init__(1, "held")
        self.held: list[Callable[[], object]] = []

    def run_soon(self, fn: Callable[[], object]) -> None:
        self.held.append(fn)

    def run_next(self) -> None:
        self.held.pop(0)()


async def settle() -> None:
    """Let the loop run what is ready (callbacks the application's hand-over scheduled,
    a task's next step); a fixed number of turns, not a wait for time to pass."""
    for _ in range(10):
        await asyncio.sleep(0)


class Harness:
    """One connection over a :class:`FakeTransport`, its server state and held pool."""

    def __init__(self, app: WSGIApp, **options: Any) -> None:
        config = Config(**options)
        self.pool = HeldPool()
        self.io = WorkerPool(1, "held-io")
        self.server = ServerState(app, config, self.pool, self.io)
        self.conn = HTTPConnection(self.server)
        self.transport = FakeTransport(self.conn)
        self.conn.connection_made(self.transport)

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.io.shutdown(wait=True)

    @property
    def text(self) -> str:
        return self.transport.written.decode("latin-1")
