"""Reading requests in the protocol's callbacks: the head, and a body small enough to hold.

The head is parsed where its last bytes arrive; a body that fits the memory budget is
collected in state BODY; anything else (a chunked body, a large one, a refusal) goes to
a task (:mod:`aiowsgi.rarepaths`).
"""

from __future__ import annotations

import io
import logging

from . import admission, http11, rarepaths
from .connstate import Conn
from .http11 import HTTPError, Request
from .states import State

log = logging.getLogger("aiowsgi.error")


def read_head(conn: Conn, data: bytes = b"") -> None:
    """Take the next request head from the buffer, with ``data`` just arrived, or wait
    for more of it (state HEAD: the DATA and EOF events, and after a response)."""
    if data:
        conn.buffer = conn.buffer + data if conn.buffer else data
    buffer = conn.buffer
    if buffer[:1] == b"\r" and not conn.lost:
        rest = _skip_empty_lines(conn, buffer)
        if rest is None:
            return
        buffer = rest
    if not buffer or conn.lost:
        if conn.eof or conn.lost:
            conn.close()
        elif conn.reading_paused:
            conn.resume_reading()
        return
    end = buffer.find(b"\r\n\r\n", conn.scanned)
    limit = conn.head_limit
    if end < 0:
        if len(buffer) >= limit:
            conn.refuse(HTTPError(431, "request head too large"),
                        head_only=buffer.startswith(b"HEAD "))
        elif conn.eof:
            if buffer.strip():
                log.debug("client closed the connection inside a request head")
            conn.close()
        else:
            conn.scanned = max(0, len(buffer) - 3)
            if conn.reading_paused:
                conn.resume_reading()
        return
    end += 4
    if end > limit:
        conn.refuse(HTTPError(431, "request head too large"),
                    head_only=buffer.startswith(b"HEAD "))
        return
    conn.buffer = buffer[end:]
    conn.scanned = conn.skipped = 0
    conn.served += 1
    config = conn.server.config
    try:
        request = http11.parse_head(
            buffer[:end], max_request_line=config.max_request_line,
            max_header_size=limit, max_header_count=config.max_header_count)
    except HTTPError as exc:
        conn.refuse(exc, head_only=buffer.startswith(b"HEAD "))
        return
    conn.request = request
    if not request.chunked and not request.content_length:
        admission.dispatch(conn, request, io.BytesIO(), 0)
        return
    _begin_body(conn, request)


def _skip_empty_lines(conn: Conn, buffer: bytes) -> bytes | None:
    """``buffer`` without the empty lines before a request line; None if there were more
    of them than a request line may be long (the connection is refused)."""
    skip = http11.leading_empty_lines(buffer)
    if not skip:
        return buffer
    conn.skipped += skip
    if conn.skipped > conn.server.config.max_request_line:
        conn.buffer = b""
        conn.refuse(HTTPError(400, "too many empty lines before the request line"))
        return None
    conn.scanned = max(0, conn.scanned - skip)
    buffer = conn.buffer = buffer[skip:]
    return buffer


def _begin_body(conn: Conn, request: Request) -> None:
    server = conn.server
    config = server.config
    length = request.content_length
    if length is not None and length > config.max_body_size:
        conn.refuse(HTTPError(413, "request body too large"))
        return
    if request.expect_continue:
        conn.transport.write(http11.CONTINUE)
    room = max(0, min(config.body_buffer_size, config.max_body_memory - server.body_memory))
    if length is None or length > room:
        conn.start_task(rarepaths.read_body(conn, request, room))
        return
    server.body_memory += length
    conn.in_memory = length
    buffer = conn.buffer
    if len(buffer) >= length:
        conn.buffer = buffer[length:]
        admission.dispatch(conn, request, io.BytesIO(buffer[:length]), length)
        return
    conn.state = State.BODY
    conn.body_parts = [buffer] if buffer else []
    conn.body_size = len(buffer)
    conn.buffer = b""
    conn.deadline = conn.loop.time() + config.body_timeout
    if conn.eof:
        conn.close()
    elif conn.reading_paused:
        conn.resume_reading()


def body_data(conn: Conn, data: bytes) -> None:
    """More of a body held in memory (state BODY); the call is dispatched once complete."""
    conn.body_parts.append(data)
    conn.body_size += len(data)
    request = conn.request
    assert request is not None and request.content_length is not None
    length = request.content_length
    if conn.body_size < length:
        return
    data = b"".join(conn.body_parts)
    conn.body_parts = []
    conn.body_size = 0
    conn.buffer = data[length:]
    conn.deadline = 0.0
    conn.state = State.APP
    admission.dispatch(conn, request, io.BytesIO(data[:length]), length)
