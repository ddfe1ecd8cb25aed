"""Flow control: whether a connection may write more, and the waits of its task until
it may.

A transport that holds more than its high-water mark pauses the protocol
(``pause_writing``); :func:`blocked` is asked after every write all the same, and catches a
transport that failed to pause (asyncio's ``writelines`` in 3.12.0-3.12.8 and
3.13.0-3.13.1, CPython gh-127655, would otherwise buffer a whole response): then the
connection pauses itself, and looks again until the buffer is down to the low-water mark.
"""

from __future__ import annotations

import logging

from . import deadlines
from .connstate import Conn
from .handoff import ClientGone, resolve
from .states import State

log = logging.getLogger("aiowsgi.error")

_BUFFER_POLL = 0.005  # seconds between looks at a buffer whose transport did not pause us


def blocked(conn: Conn) -> bool:
    """Whether the transport holds more than its high-water mark, so that no more output
    may be taken for now (see the module's docstring)."""
    if conn.paused:
        return True
    if conn.transport.get_write_buffer_size() <= conn.write_limits[1]:
        return False
    conn.paused = True
    conn.loop.call_later(_BUFFER_POLL, _poll_write_buffer, conn)
    return True


def _poll_write_buffer(conn: Conn) -> None:
    """The transport did not pause the connection: resume it once the buffer has drained
    to the low-water mark, as the transport would have."""
    if not conn.paused or conn.state is State.CLOSED:
        return  # resumed by the transport after all, or gone
    if conn.transport.get_write_buffer_size() <= conn.write_limits[0]:
        conn.resume_writing()
    else:
        conn.loop.call_later(_BUFFER_POLL, _poll_write_buffer, conn)


async def drain(conn: Conn) -> None:
    """In the connection's task: wait until the transport has taken what it buffered,
    down to its low-water mark, within the send timeout."""
    if conn.lost:
        raise ClientGone("client closed the connection")
    if blocked(conn):
        waiter = conn.drain_waiter = conn.loop.create_future()
        try:
            await deadlines.within(conn, waiter, conn.server.config.send_timeout)
        except TimeoutError:
            log.info("client did not read its response for %ss; aborted",
                     conn.server.config.send_timeout)
            conn.transport.abort()
            raise ClientGone("send timeout") from None
        finally:
            conn.drain_waiter = None
    elif conn.transport.is_closing():
        raise ClientGone("client closed the connection")


def wake_drain(conn: Conn) -> None:
    """The transport can take more: a task waiting in :func:`drain` goes on."""
    waiter = conn.drain_waiter
    if waiter is not None:
        conn.drain_waiter = None
        resolve(waiter)


async def flush(conn: Conn) -> None:
    """In the connection's task: wait until the transport has sent everything it
    buffered (not just most)."""
    transport = conn.transport
    if transport.get_write_buffer_size():
        low, high = transport.get_write_buffer_limits()
        transport.set_write_buffer_limits(high=0)
        try:
            await drain(conn)
        finally:
            if not transport.is_closing():
                transport.set_write_buffer_limits(high=high, low=low)
