"""How response bytes leave: what the application thread handed over is written with one
write strategy per kind of transport.

The application thread hands its response over in pieces; where several are ready at
once they go out in one system call.  How depends on the transport, found once per
connection (:func:`strategy_for`): uvloop's ``writelines`` gathers buffers itself
(:data:`GATHERED`); under asyncio's own socket transport the connection gathers them with
``os.writev`` (:data:`VECTORED`: that transport's ``writelines`` joins them into a copy
first, and in some releases never pauses the protocol, CPython gh-127655); any other
transport (TLS) gets small pieces joined and large ones written one by one
(:data:`JOINED`).  A file response is sent the same way on every transport
(:mod:`aiowsgi.sendfile`).

When the transport holds too much, :mod:`aiowsgi.flow` says so.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from functools import partial

from . import flow, rarepaths
from .connstate import Conn, Strategy
from .handoff import Abort, ClientGone, Finish, Item, SendFile
from .states import State

# Pieces this small on average are joined before a write where the transport cannot
# gather them: copying them costs less than a system call each.
JOIN_BELOW = 16 * 1024
_IOV_MAX = 1024  # buffers per writev, at least this many on Linux


class Joined:
    """Any transport: small pieces joined into one write, large ones written in turn."""

    def write_many(self, conn: Conn, pieces: list[bytes], size: int) -> None:
        transport = conn.transport
        if size <= len(pieces) * JOIN_BELOW:
            transport.write(b"".join(pieces))
            return
        for piece in pieces:
            if transport.is_closing():
                return  # a write failed: the connection finds out and closes
            transport.write(piece)



class Gathered(Joined):
    """uvloop: ``writelines`` sends every piece in one system call."""

    def write_many(self, conn: Conn, pieces: list[bytes], size: int) -> None:
        conn.transport.writelines(pieces)


class Vectored(Joined):
    """asyncio's own socket transport: large pieces gathered with ``os.writev`` on its
    socket, small ones joined."""

    def write_many(self, conn: Conn, pieces: list[bytes], size: int) -> None:
        if size <= len(pieces) * JOIN_BELOW:
            super().write_many(conn, pieces, size)  # joined
        else:
            writev(conn, pieces, size)


JOINED, GATHERED, VECTORED = Joined(), Gathered(), Vectored()


def strategy_for(transport: asyncio.BaseTransport) -> Strategy:
    """The write strategy of ``transport`` (asked once per connection)."""
    if writev_socket(transport) is not None:
        return VECTORED
    return GATHERED if gathers_writes(transport) else JOINED


_gathering: dict[type, bool] = {}


def gathers_writes(transport: asyncio.BaseTransport) -> bool:
    """Whether ``transport.writelines`` sends several buffers in one system call (uvloop's
    does); the generic one joins them into a copy first, which costs more than it saves."""
    kind = type(transport)
    gathers = _gathering.get(kind)
    if gathers is None:
        gathers = _gathering[kind] = (
            getattr(kind, "writelines", None) not in (None, asyncio.WriteTransport.writelines))
    return gathers


def writev_socket(transport: asyncio.BaseTransport) -> socket.socket | None:
    """The socket under asyncio's selector transport for plain TCP and Unix sockets, on
    which the connection gathers its own writes (see :func:`writev`); None for any other
    transport."""
    kind = getattr(asyncio.selector_events, "_SelectorSocketTransport", None)
    if type(transport) is not kind or kind is None:
        return None
    sock = transport.get_extra_info("socket")
    return sock if sock is not None and sock.type == socket.SOCK_STREAM else None


def writev(conn: Conn, pieces: list[bytes], size: int) -> None:
    """Send ``pieces`` with one system call on asyncio's transport.

    Only while the transport holds nothing, so nothing overtakes its buffer; what the
    kernel does not take, and any error, is left to the transport's write (which pauses
    the protocol past its high-water mark), as if it had been the first to try.  The
    socket is the transport's own, open while the transport is not closing (checked by
    the caller on this same loop turn)."""
    transport = conn.transport
    sent = 0
    if not transport.get_write_buffer_size():
        try:
            sent = os.writev(transport.get_extra_info("socket").fileno(), pieces[:_IOV_MAX])
        except OSError:  # the transport's write below meets it too, and handles it
            sent = 0
        if sent == size:
            return
    for piece in pieces:
        if sent >= len(piece):
            sent -= len(piece)
            continue
        if transport.is_closing():
            return  # the transport met an error, and is closing
        transport.write(memoryview(piece)[sent:] if sent else piece)
        sent = 0


# -- writing what the application thread handed over ----------------------------------


def take_and_write(conn: Conn) -> None:
    """The application thread handed output over: write it (state APP)."""
    handoff = conn.handoff
    if handoff is None:
        return
    try:
        items = handoff.take_or_notify(conn.items_ready)
    except ClientGone:
        return
    if items is not None:
        write_items(conn, items)


def write_items(conn: Conn, items: list[Item]) -> None:
    """Write what the application thread handed over, until it has to wait for more
    output or for the client; a file or an abort continues in the connection's task."""
    handoff = conn.handoff
    assert handoff is not None
    conn.deadline = 0.0
    transport = conn.transport
    write = transport.write
    while True:
        written = 0
        if len(items) > 1 and (run := _leading_bytes(items)) > 1:
            # one system call for all of them, as the strategy can
            pieces: list[bytes] = items[:run]  # type: ignore[assignment]
            if transport.is_closing():
                conn.close()
                return
            size = sum(map(len, pieces))
            conn.output.write_many(conn, pieces, size)
            written = size
            items = items[run:]
        for item in items:
            if type(item) is bytes:
                if transport.is_closing():
                    conn.close()
                    return
                write(item)
                written += len(item)
            elif type(item) is Finish:
                if item.data:
                    if transport.is_closing():
                        conn.close()
                        return
                    write(item.data)
                if flow.blocked(conn) or transport.is_closing():
                    after_write(conn, partial(conn.response_done, item.keep_alive))
                else:
                    conn.response_done(item.keep_alive)
                return
            elif type(item) is SendFile:
                conn.start_task(rarepaths.send_file(conn, item))
                return
            else:
                assert type(item) is Abort
                if item.data and not transport.is_closing():
                    write(item.data)
                conn.start_task(rarepaths.abort_after_flush(conn))
                return
        if written:
            if flow.blocked(conn) or transport.is_closing():
                after_write(conn, partial(_release, conn, written))
                return
            handoff.release(written)
        try:
            more = handoff.take_or_notify(conn.items_ready)
        except ClientGone:
            conn.close()
            return
        if more is None:
            return
        items = more


def _release(conn: Conn, nbytes: int) -> None:
    """Written bytes have left: the thread may hand over as much again."""
    if conn.handoff is not None:
        conn.handoff.release(nbytes)
        take_and_write(conn)


def after_write(conn: Conn, then: Callable[[], object]) -> None:
    """Run ``then`` once the transport has taken what it buffered (below its high-water
    mark), within the send timeout: in state DRAIN meanwhile."""
    if conn.lost or conn.transport.is_closing():
        conn.close()
    elif conn.paused:
        conn.state = State.DRAIN
        conn.after_drain = then
        conn.deadline = conn.loop.time() + conn.server.config.send_timeout
    else:
        then()


def _leading_bytes(items: list[Item]) -> int:
    """How many of ``items`` are response bytes before anything else."""
    count = 0
    for item in items:
        if type(item) is not bytes:
            break
        count += 1
    return count
