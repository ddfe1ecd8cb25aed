"""Where a request body waits for the application: memory, or a temporary file.

The body is read on the event loop before the application runs.  Small bodies stay in
memory; past ``buffer_size`` they go to a temporary file, written from the server's I/O
thread so that disk I/O never blocks the loop.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from concurrent.futures import Executor
from typing import IO

_WRITE_BATCH = 256 * 1024


class BodyBuffer:
    __slots__ = ("_buffer_size", "_file", "_io", "_loop", "_parts", "_pending", "size")

    def __init__(self, loop: asyncio.AbstractEventLoop, io: Executor, buffer_size: int) -> None:
        self._loop = loop
        self._io = io
        self._buffer_size = buffer_size
        self._parts: list[bytes] = []
        self._pending = 0
        self._file: IO[bytes] | None = None
        self.size = 0

    async def write(self, data: bytes) -> None:
        self._parts.append(data)
        self._pending += len(data)
        self.size += len(data)
        if self._file is None and self.size > self._buffer_size:
            self._file = await self._loop.run_in_executor(self._io, tempfile.TemporaryFile)
        if self._file is not None and self._pending >= _WRITE_BATCH:
            await self._flush()

    async def _flush(self) -> None:
        assert self._file is not None
        data = b"".join(self._parts)
        self._parts.clear()
        self._pending = 0
        await self._loop.run_in_executor(self._io, self._file.write, data)

    @property
    def spooled(self) -> bool:
        return self._file is not None

    async def finish(self) -> IO[bytes]:
        """The body as a readable file positioned at its start."""
        if self._file is None:
            return io.BytesIO(b"".join(self._parts))
        try:
            if self._parts:
                await self._flush()
            await self._loop.run_in_executor(self._io, self._file.seek, 0)
        except BaseException:
            self.discard()
            raise
        return self._file

    def discard(self) -> None:
        """Drop what was collected (the request failed before the application ran)."""
        self._parts.clear()
        if self._file is not None:
            self._file.close()
            self._file = None
