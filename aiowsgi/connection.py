"""One coroutine per client connection, over asyncio streams.

It reads a request head and body, hands the application call to the thread pool, writes
what the application thread hands back, and repeats while the connection is kept alive.
Parsing belongs to :mod:`aiowsgi.http11` and the WSGI contract to :mod:`aiowsgi.wsgi`;
this module owns the waiting: timeouts, backpressure, and closing.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import Awaitable
from typing import IO, TYPE_CHECKING, Any, TypeVar

from . import http11
from .body import BodyBuffer
from .handoff import ClientGone, Handoff
from .http11 import HTTPError, Request
from .pool import WorkerPool
from .wsgi import Abort, Finish, SendFile, WSGIApp, WSGICall, base_environ, build_environ

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger("aiowsgi.error")
T = TypeVar("T")

_SENDFILE_PIECE = 1024 * 1024
_LINGER_BYTES = 1024 * 1024
_LINGER_SECONDS = 2.0


class ServerState:
    """What every connection of one server shares."""

    __slots__ = ("app", "config", "connections", "executor", "shutting_down", "tick")

    def __init__(self, app: WSGIApp, config: Config, executor: WorkerPool) -> None:
        self.app = app
        self.config = config
        self.executor = executor
        self.connections: set[HTTPConnection] = set()
        self.shutting_down = False
        shortest = min(config.header_timeout, config.keepalive_timeout,
                       config.body_timeout, config.send_timeout)
        self.tick = min(1.0, max(0.01, shortest / 4))

    async def enforce_timeouts(self) -> None:
        """Expire the connections whose current wait has passed its deadline.

        One periodic sweep instead of a timer per wait: a wait only stores its deadline,
        which keeps the request path cheap; a timeout fires at most ``tick`` late.
        """
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.tick)
            now = loop.time()
            for conn in self.connections:
                if conn.deadline and now >= conn.deadline:
                    conn.expire()


class HTTPConnection:
    __slots__ = ("_base", "_expired", "deadline", "idle", "loop", "reader", "state", "task",
                 "transport", "writer")

    def __init__(self, state: ServerState, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.state = state
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.loop = asyncio.get_running_loop()
        self.idle = True
        self.task: asyncio.Task[Any] | None = None
        self.deadline = 0.0
        self._expired = False
        self._base = _connection_environ(writer)

    async def run(self) -> None:
        state = self.state
        state.connections.add(self)
        try:
            await self._serve()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            self.transport.abort()
            raise
        except Exception:
            log.exception("unexpected error on connection")
            self.transport.abort()
        finally:
            state.connections.discard(self)
            if not self.transport.is_closing():
                self.transport.close()

    def expire(self) -> None:
        """The current wait took too long: it raises TimeoutError."""
        self.deadline = 0.0
        if self.task is not None:
            self._expired = True
            self.task.cancel()

    async def _within(self, aw: Awaitable[T], timeout: float) -> T:
        self.deadline = self.loop.time() + timeout
        try:
            return await aw
        except asyncio.CancelledError:
            if self._expired:
                self._expired = False
                assert self.task is not None
                if self.task.uncancel() == 0:
                    raise TimeoutError from None
            raise
        finally:
            self.deadline = 0.0

    async def _serve(self) -> None:
        config = self.state.config
        first = True
        while not self.state.shutting_down:
            self.idle = True
            head = await self._read_head(first)
            if head is None:
                return
            self.idle = False
            first = False
            try:
                request = http11.parse_head(
                    head, max_request_line=config.max_request_line,
                    max_header_size=config.max_header_size,
                    max_header_count=config.max_header_count)
                body, size = await self._read_body(request)
            except HTTPError as exc:
                await self._refuse(exc)
                return
            environ = build_environ(self._base, request, body, size)
            keep_alive = request.keep_alive and not self.state.shutting_down
            if not await self._call_app(environ, request, keep_alive):
                return

    async def _read_head(self, first: bool) -> bytes | None:
        """The next request head, or None when the client is done or too slow."""
        config = self.state.config
        reader = self.reader
        # An idle kept-alive connection gets the keep-alive timeout; a client that has
        # begun a request by then gets the header timeout to finish it.
        waits = ((config.header_timeout,) if first else
                 (config.keepalive_timeout, config.header_timeout))
        for timeout in waits:
            try:
                return await self._within(reader.readuntil(b"\r\n\r\n"), timeout)
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip():
                    log.debug("client closed the connection inside a request head")
                return None
            except asyncio.LimitOverrunError:
                await self._refuse(HTTPError(431, "request head too large"))
                return None
            except TimeoutError:
                if not _buffered(reader):
                    return None
        await self._refuse(HTTPError(408, "request head not received in time"))
        return None

    async def _read_body(self, request: Request) -> tuple[IO[bytes], int]:
        config = self.state.config
        length = request.content_length
        if not request.chunked and not length:
            return io.BytesIO(), 0
        if length is not None and length > config.max_body_size:
            raise HTTPError(413, "request body too large")
        if request.expect_continue:
            self.writer.write(http11.CONTINUE)
        reader = self.reader
        timeout = config.body_timeout
        if length is not None and length <= config.body_buffer_size:
            try:
                data = await self._within(reader.readexactly(length), timeout)
            except TimeoutError:
                raise HTTPError(408, "request body not received in time") from None
            return io.BytesIO(data), length
        buffer = BodyBuffer(self.loop, config.body_buffer_size)
        try:
            if length is not None:
                remaining = length
                while remaining:
                    data = await self._within(reader.read(min(remaining, 256 * 1024)), timeout)
                    if not data:
                        raise asyncio.IncompleteReadError(b"", remaining)
                    remaining -= len(data)
                    await buffer.write(data)
            else:
                decoder = http11.ChunkedDecoder(
                    max_chunk_line=config.max_chunk_line,
                    max_trailer_size=config.max_trailer_size,
                    max_body_size=config.max_body_size)
                while not decoder.done:
                    wanted = decoder.bytes_wanted
                    data = await self._within(
                        reader.read(min(wanted, 256 * 1024)) if wanted
                        else reader.readuntil(b"\n"), timeout)
                    if not data:
                        raise asyncio.IncompleteReadError(b"", None)
                    for piece in decoder.feed(data):
                        await buffer.write(piece)
            return await buffer.finish(), buffer.size
        except TimeoutError:
            buffer.discard()
            raise HTTPError(408, "request body not received in time") from None
        except asyncio.LimitOverrunError:
            buffer.discard()
            raise HTTPError(400, "chunk line too long") from None
        except BaseException:
            buffer.discard()
            raise

    async def _call_app(self, environ: dict[str, Any], request: Request,
                        keep_alive: bool) -> bool:
        """Run the application and write its response; True to keep the connection."""
        state = self.state
        handoff = Handoff(self.loop, state.config.send_buffer_size)
        call = WSGICall(state.app, environ, request, handoff, keep_alive=keep_alive,
                        server_header=state.config.server_header)
        try:
            state.executor.run_soon(call.run)
        except RuntimeError:  # the executor is shutting down
            environ["wsgi.input"].close()
            self.writer.write(http11.error_response(503, "server is shutting down"))
            return False
        try:
            return await self._write_response(handoff)
        except BaseException as exc:
            handoff.abort(ClientGone(str(exc) or type(exc).__name__))
            raise

    async def _write_response(self, handoff: Handoff) -> bool:
        transport = self.transport
        write = transport.write
        while True:
            items = await handoff.take()
            written = 0
            for item in items:
                if type(item) is bytes:
                    if transport.is_closing():
                        raise ClientGone("client closed the connection")
                    write(item)
                    written += len(item)
                elif type(item) is Finish:
                    if item.data:
                        write(item.data)
                    await self._drain()
                    return item.keep_alive
                elif type(item) is SendFile:
                    return await self._send_file(item)
                else:
                    assert type(item) is Abort
                    if item.data:
                        write(item.data)
                    await self._abort_after_flush()
                    return False
            if written:
                await self._drain()
                handoff.release(written)

    async def _drain(self) -> None:
        """Wait until the transport has taken what it buffered, up to the send timeout."""
        if self.transport.get_write_buffer_size():
            try:
                await self._within(self.writer.drain(), self.state.config.send_timeout)
            except TimeoutError:
                log.info("client did not read its response for %ss; aborted",
                         self.state.config.send_timeout)
                self.transport.abort()
                raise ClientGone("send timeout") from None
        elif self.transport.is_closing():
            raise ClientGone("client closed the connection")

    async def _abort_after_flush(self) -> None:
        """Close without completing the response, after what was written has gone out
        (bounded by the send timeout)."""
        transport = self.transport
        try:
            if transport.get_write_buffer_size() and not transport.is_closing():
                transport.set_write_buffer_limits(high=0)
                await self._drain()
        except (ClientGone, ConnectionError):
            pass
        finally:
            transport.abort()

    async def _send_file(self, item: SendFile) -> bool:
        try:
            self.transport.write(item.head)
            sent = await self._sendfile(item.file, item.offset, item.count)
        finally:
            await self.loop.run_in_executor(self.state.executor, item.close)
        if sent < item.count:
            log.error("file ended %d bytes before its Content-Length", item.count - sent)
            await self._abort_after_flush()
            return False
        await self._drain()
        return item.keep_alive

    async def _sendfile(self, file: IO[bytes], offset: int, count: int) -> int:
        sent = 0
        timeout = self.state.config.send_timeout
        native = True
        while sent < count:
            piece = min(count - sent, _SENDFILE_PIECE)
            n = 0
            if native:
                try:
                    n = await self._within(self.loop.sendfile(
                        self.transport, file, offset + sent, piece, fallback=False), timeout)
                except (NotImplementedError, asyncio.SendfileNotAvailableError):
                    native = False
                except TimeoutError:
                    self.transport.abort()
                    raise ClientGone("send timeout") from None
            if not native:
                data = await self.loop.run_in_executor(None, _pread, file, piece, offset + sent)
                if data:
                    self.transport.write(data)
                    await self._drain()
                n = len(data)
            if not n:
                break
            sent += n
        return sent

    async def _refuse(self, exc: HTTPError) -> None:
        """Answer a request the server will not handle, then close the connection."""
        log.info("%s %s from %s", exc.status, exc.reason, self._base["REMOTE_ADDR"])
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(http11.error_response(exc.status, exc.reason))
        await self._linger()

    async def _linger(self) -> None:
        """Close gently: stop sending, then read and drop what the client still sends
        for a moment, so that a reset does not destroy the response before it is read."""
        transport = self.transport
        try:
            await self._drain()
            if transport.can_write_eof():
                transport.write_eof()
            dropped = 0
            deadline = self.loop.time() + _LINGER_SECONDS
            while dropped < _LINGER_BYTES:
                data = await self._within(self.reader.read(65536),
                                          deadline - self.loop.time())
                if not data:
                    break
                dropped += len(data)
        except (TimeoutError, ConnectionError, ClientGone, OSError):
            pass


def _pread(file: IO[bytes], size: int, offset: int) -> bytes:
    return os.pread(file.fileno(), size, offset)


def _buffered(reader: asyncio.StreamReader) -> int:
    # StreamReader has no public way to ask whether bytes are waiting; both asyncio and
    # uvloop use this same pure-Python class.
    return len(getattr(reader, "_buffer", b""))




def _connection_environ(writer: asyncio.StreamWriter) -> dict[str, Any]:
    sockname = writer.get_extra_info("sockname")
    peername = writer.get_extra_info("peername")
    if isinstance(sockname, tuple):
        server_name, server_port = str(sockname[0]), str(sockname[1])
    else:
        server_name, server_port = str(sockname or "localhost"), ""
    if isinstance(peername, tuple):
        remote_addr, remote_port = str(peername[0]), str(peername[1])
    else:
        remote_addr, remote_port = "", ""
    scheme = "https" if writer.get_extra_info("sslcontext") is not None else "http"
    return base_environ(server_name=server_name, server_port=server_port,
                        remote_addr=remote_addr, remote_port=remote_port, url_scheme=scheme)
