"""Sending a file response's body: by ``os.sendfile`` on the loop, or by reading and
writing where the transport or the file cannot be sent that way.

On every transport the connection starts with :func:`by_kernel` (on asyncio's own
transport too: ``os.sendfile`` on the loop sent 1.5 times what ``loop.sendfile`` did,
which waits for the transport to empty and pauses reading around every piece).  All run
in the connection's task, in pieces, so that the send timeout bounds progress rather than
the whole file.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
from typing import IO

from . import deadlines, flow
from .connstate import Conn
from .handoff import ClientGone, resolve

PIECE = 1024 * 1024


async def by_kernel(conn: Conn, file: IO[bytes], offset: int, count: int) -> int:
    """``os.sendfile`` on a duplicate of the connection's socket, where the transport is a
    plain socket and the file has a descriptor; else :func:`by_reading`.

    Once the transport has nothing buffered (nothing else writes meanwhile: the task owns
    the response), waiting for room with ``add_writer`` on the duplicate (uvloop refuses
    it on the transport's own descriptor)."""
    transport = conn.transport
    if transport.get_extra_info("sslcontext") is not None:
        return await by_reading(conn, file, offset, count)
    sock = transport.get_extra_info("socket")
    try:
        fileno, in_fd = sock.fileno(), file.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return await by_reading(conn, file, offset, count)
    await flow.flush(conn)
    out_fd = os.dup(fileno)
    timeout = conn.server.config.send_timeout
    sent = 0
    try:
        while sent < count:
            try:
                n = os.sendfile(out_fd, in_fd, offset + sent, min(count - sent, PIECE))
            except BlockingIOError:
                await deadlines.within(conn, _writable(conn.loop, out_fd), timeout)
                continue
            if n == 0:
                break
            sent += n
        return sent
    except TimeoutError:
        transport.abort()
        raise ClientGone("send timeout") from None
    except OSError as exc:
        if sent or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            transport.abort()
            raise ClientGone(str(exc)) from None
    finally:
        os.close(out_fd)
    return await by_reading(conn, file, offset, count)  # sendfile refused this file


async def by_reading(conn: Conn, file: IO[bytes], offset: int, count: int) -> int:
    """Read the file in the I/O thread and write it, a piece at a time (TLS, files
    without a descriptor, files sendfile refuses)."""
    transport = conn.transport
    sent = 0
    while sent < count:
        data = await conn.loop.run_in_executor(
            conn.server.io, pread, file, min(count - sent, PIECE), offset + sent)
        if not data:
            break
        if transport.is_closing():
            raise ClientGone("client closed the connection")
        transport.write(data)
        await flow.drain(conn)
        sent += len(data)
    return sent


def pread(file: IO[bytes], size: int, offset: int) -> bytes:
    """Up to ``size`` bytes of ``file`` at ``offset``, leaving its position alone."""
    return os.pread(file.fileno(), size, offset)


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    waiter: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, resolve, waiter)
    try:
        await waiter
    finally:
        loop.remove_writer(fd)
