"""Flow control: memory stays bounded whatever the client's pace, on every loop, and
when the transport fails to pause the protocol (CPython gh-127655).  A client that
stops reading altogether is cut off by the send timeout: test_deadlines.py."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

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
