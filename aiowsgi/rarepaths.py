"""The coroutines of a connection's rare paths, each run as its task (state TASK).

A body too large to hold in memory or sent chunked, a file, a response the application
aborted, a refusal and the lingering close after it: each waits in ways the common path
does not (for pieces of a body, for the disk, for the client to read), so each runs as a
coroutine, started by ``HTTPConnection.start_task``.  A coroutine returns what the
connection does next (a callable, run in state APP) or None to close it.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from . import deadlines, flow, http11, sendfile
from .body import BodyBuffer
from .chunked import ChunkedDecoder
from .connstate import Conn, Continuation
from .handoff import ClientGone, SendFile
from .http11 import HTTPError, Request

log = logging.getLogger("aiowsgi.error")


_READ_PIECE = 256 * 1024
_LINGER_BYTES = 1024 * 1024
_LINGER_SECONDS = 2.0


# -- reading in a task ----------------------------------------------------------------


async def wait_for_data(conn: Conn) -> None:
    """Until more bytes arrive, the client closes its side, or the connection is lost."""
    if conn.lost:
        raise ConnectionResetError("connection lost")
    if conn.reading_paused:
        conn.resume_reading()
    waiter = conn.data_waiter = conn.loop.create_future()
    try:
        await waiter
    finally:
        conn.data_waiter = None


async def read(conn: Conn, size: int) -> bytes:
    """Up to ``size`` bytes; empty at the end of the stream."""
    while not conn.buffer:
        if conn.eof:
            return b""
        await wait_for_data(conn)
    buffer = conn.buffer
    if len(buffer) <= size:
        conn.buffer = b""
        return buffer
    conn.buffer = buffer[size:]
    return buffer[:size]


async def read_line(conn: Conn) -> bytes:
    """Bytes up to and including the next LF (a chunk-size or trailer line)."""
    limit = conn.head_limit
    start = 0
    while True:
        buffer = conn.buffer
        end = buffer.find(b"\n", start)
        if end >= 0:
            if end > limit:
                break
            conn.buffer = buffer[end + 1:]
            return buffer[:end + 1]
        if len(buffer) > limit:
            break
        if conn.eof:
            raise asyncio.IncompleteReadError(buffer, None)
        start = len(buffer)
        await wait_for_data(conn)
    raise HTTPError(400, "chunk line too long")


async def read_body(conn: Conn, request: Request, room: int) -> Continuation:
    """A chunked body, or one larger than what may stay in memory: collected into a buffer
    that spools to disk past ``room`` bytes, reserved from the budget meanwhile."""
    server = conn.server
    config = server.config
    timeout = config.body_timeout
    server.body_memory += room
    conn.in_memory = room
    buffer = BodyBuffer(conn.loop, server.io, room)
    try:
        if request.content_length is not None:
            remaining = request.content_length
            while remaining:
                data = await deadlines.within(conn, read(conn, min(remaining, _READ_PIECE)),
                                              timeout)
                if not data:
                    raise asyncio.IncompleteReadError(b"", remaining)
                remaining -= len(data)
                await buffer.write(data)
        else:
            decoder = ChunkedDecoder(
                max_chunk_line=config.max_chunk_line,
                max_trailer_size=config.max_trailer_size,
                max_body_size=config.max_body_size,
                max_chunk_extensions=config.max_chunk_extensions)
            while not decoder.done:
                wanted = decoder.bytes_wanted
                data = await deadlines.within(
                    conn, read(conn, min(wanted, _READ_PIECE)) if wanted else read_line(conn),
                    timeout)
                if not data:
                    raise asyncio.IncompleteReadError(b"", None)
                for piece in decoder.feed(data):
                    await buffer.write(piece)
        body = await buffer.finish()
    except BaseException as exc:
        buffer.discard()
        server.body_memory -= room
        conn.in_memory = 0
        if isinstance(exc, TimeoutError):
            exc = HTTPError(408, "request body not received in time")
        if isinstance(exc, HTTPError):
            await refuse(conn, exc)
            return None
        raise
    held = 0 if buffer.spooled else buffer.size
    server.body_memory -= room - held
    conn.in_memory = held
    return partial(conn.dispatch, request, body, buffer.size)


# -- responses that need waiting --------------------------------------------------------


async def send_file(conn: Conn, item: SendFile) -> Continuation:
    """A file response: its head, then the file (:func:`aiowsgi.sendfile.by_kernel`)."""
    transport = conn.transport
    try:
        if transport.is_closing():
            raise ClientGone("client closed the connection")
        transport.write(item.head)
        sent = await sendfile.by_kernel(conn, item.file, item.offset, item.count)
        if conn.call is not None:
            conn.call.body_bytes += sent
    finally:
        await conn.loop.run_in_executor(conn.server.executor, item.close)
    if sent < item.count:
        log.error("file ended %d bytes before its Content-Length", item.count - sent)
        return await abort_after_flush(conn)
    await flow.drain(conn)
    return partial(conn.response_done, item.keep_alive)


async def abort_after_flush(conn: Conn) -> Continuation:
    """Close without completing the response, after what was written has gone out
    (bounded by the send timeout)."""
    if conn.server.access and conn.call is not None:
        conn.log_access(conn.call, "X")
    conn.forget_request()
    conn.server.release()
    transport = conn.transport
    try:
        if not transport.is_closing():
            await flow.flush(conn)
    except (ClientGone, ConnectionError):
        pass
    finally:
        transport.abort()
    return None


# -- refusing -------------------------------------------------------------------------


async def refuse(conn: Conn, exc: HTTPError, *,
                 head_only: bool = False) -> Continuation:
    """Answer a request the server will not handle, then close gently.  ``head_only``:
    the refused request is a HEAD whose head could not be parsed (one that was parsed is
    known from ``conn.request``)."""
    log.info("%s %s from %s", exc.status, exc.reason, conn.facts["REMOTE_ADDR"])
    transport = conn.transport
    if transport.is_closing():
        return None
    request = conn.request
    head_only = head_only or (request is not None and request.method == "HEAD")
    transport.write(http11.error_response(exc.status, exc.reason, head_only=head_only))
    await linger(conn)
    return None


async def linger(conn: Conn) -> None:
    """Close gently: stop sending, then read and drop what the client still sends for a
    moment, so that a reset does not destroy the response before it is read."""
    transport = conn.transport
    try:
        await flow.drain(conn)
        if transport.can_write_eof():
            transport.write_eof()
        dropped = 0
        deadline = conn.loop.time() + _LINGER_SECONDS
        while dropped < _LINGER_BYTES:
            data = await deadlines.within(conn, read(conn, 65536), deadline - conn.loop.time())
            if not data:
                break
            dropped += len(data)
    except (TimeoutError, ConnectionError, ClientGone, OSError):
        pass
