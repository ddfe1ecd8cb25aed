"""Backpressure: memory stays bounded whatever the client's pace; a stalled client
cannot hold an application thread past the send timeout."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import StartServer
from .http import RawClient
from .process import ServeProcess
from .waiting import SAFETY

MiB = 1024 * 1024


def _status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    assert match, field
    return int(match.group(1))


# The server with asyncio transports that never pause their protocol, as the writelines
# of CPython 3.12.0-3.12.8 and 3.13.0-3.13.1 does (gh-127655), here for every write: the
# server's own look at the write buffer is all that bounds the memory.
UNPAUSED = """
import asyncio.transports, sys
asyncio.transports._FlowControlMixin._maybe_pause_protocol = lambda self: None
from aiowsgi.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "asyncio-unpaused"])
async def test_256_mib_to_a_slow_reader_keeps_memory_bounded(loop: str) -> None:
    entry = ("-c", UNPAUSED) if loop.endswith("-unpaused") else ("-m", "aiowsgi")
    with ServeProcess("tests.apps.stream:app", "--port", "0",
                      "--loop", loop.removesuffix("-unpaused"), "--log-level", "info",
                      "--send-buffer-size", str(512 * 1024), entry=entry) as server:
        client = await RawClient.connect("127.0.0.1", server.port)
        try:
            warm = await client.request("GET", "/?mib=4")
            assert len(warm.body) == 4 * MiB
            baseline = _status_kib(server.proc.pid, "VmRSS")

            await client.send(b"GET /?mib=256 HTTP/1.1\r\nHost: t\r\n\r\n")
            head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), SAFETY)
            assert b"Content-Length: 268435456" in head
            received = 0
            paused = 0
            async with asyncio.timeout(120):
                while received < 256 * MiB:
                    data = await client.reader.read(64 * 1024)
                    assert data, "server closed early"
                    received += len(data)
                    if received // MiB > paused:  # a slow reader: a pause every MiB
                        paused = received // MiB
                        await asyncio.sleep(0.001)
            assert received == 256 * MiB
            peak = _status_kib(server.proc.pid, "VmHWM")
            assert (peak - baseline) * 1024 < 32 * MiB, (peak, baseline)
        finally:
            await client.close()


def stalled_stream_app(closed: threading.Event, started: threading.Event
                       ) -> Callable[..., Iterable[bytes]]:
    class Body:
        def __init__(self) -> None:
            self.sent = 0

        def __iter__(self) -> Iterator[bytes]:
            started.set()
            for _ in range(16 * 1024):  # at most 1 GiB; the client never reads it all
                self.sent += 1
                yield b"z" * 65536

        def close(self) -> None:
            closed.set()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Body:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Body()

    return app


async def test_client_that_stops_reading_is_cut_off(start_server: StartServer) -> None:
    closed, started = threading.Event(), threading.Event()
    server = await start_server(stalled_stream_app(closed, started), send_timeout=0.5)
    client = await RawClient.connect(server.host, server.port)
    await client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert await asyncio.to_thread(started.wait, SAFETY)
    # The client reads nothing more. The server must give up after the send timeout:
    # the thread waiting for credit wakes, the iteration stops, close() runs.
    assert await asyncio.to_thread(closed.wait, SAFETY)
    # and the connection is gone: reading drains what the kernel buffered, then EOF
    async with asyncio.timeout(SAFETY):
        while True:
            try:
                if not await client.reader.read(1 << 20):
                    break
            except ConnectionResetError:
                break
    await client.close()
