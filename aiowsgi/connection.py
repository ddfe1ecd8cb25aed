"""One coroutine per client connection, over asyncio streams.

It reads a request head and body, hands the application call to the thread pool, writes
what the application thread hands back, and repeats while the connection is kept alive.
Parsing belongs to :mod:`aiowsgi.http11` and the WSGI contract to :mod:`aiowsgi.wsgi`;
this module owns the waiting: timeouts, backpressure, and closing.
"""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import IO, TYPE_CHECKING, Any, TypeVar

from . import accesslog, http11
from .body import BodyBuffer
from .handoff import ClientGone, Handoff, resolve
from .http11 import HTTPError, Request
from .pool import WorkerPool
from .proxy import TrustedProxies, apply_proxy_headers
from .wsgi import (
    Abort,
    Disconnected,
    Finish,
    SendFile,
    WSGIApp,
    WSGICall,
    base_environ,
    build_environ,
)

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger("aiowsgi.error")
T = TypeVar("T")

_SENDFILE_PIECE = 1024 * 1024
_RETRY_AFTER = 1  # seconds, in the Retry-After of a 503
_LINGER_BYTES = 1024 * 1024
_LINGER_SECONDS = 2.0


class ServerState:
    """What every connection of one server shares, including the admission of requests
    to the thread pool: ``capacity`` threads run application calls, and at most
    ``max_queue`` more wait in the pool's FIFO queue."""

    __slots__ = (
        "abandoned",
        "access",
        "active",
        "admit_limit",
        "app",
        "body_memory",
        "config",
        "connections",
        "executor",
        "io",
        "max_connections",
        "on_max_requests",
        "refused",
        "requests",
        "shutting_down",
        "tick",
        "trusted",
    )

    def __init__(self, app: WSGIApp, config: Config, executor: WorkerPool,
                 io: WorkerPool) -> None:
        self.app = app
        self.config = config
        self.executor = executor  # runs the application
        self.io = io  # file I/O for request bodies and the sendfile fallback
        self.connections: set[HTTPConnection] = set()
        self.shutting_down = False
        self.active = 0  # application calls handed to the pool and not finished, queued
        # ones and abandoned ones included
        self.abandoned = 0  # of those, calls whose client got a 504
        self.admit_limit = config.threads + config.max_queue  # past it a request gets 503
        self.body_memory = 0  # bytes of request bodies held in memory
        self.refused = 0  # connections refused at the connection limit
        self.requests = 0  # application calls started, all told
        self.on_max_requests: Callable[[], object] | None = None  # set by the server
        self.max_connections = config.max_connections  # lowered to fit the open-files limit
        self.access = accesslog.enabled(config.access_log)  # decided once, at start
        # whose forwarding headers are believed (None: nobody's)
        self.trusted = (TrustedProxies.parse(config.forwarded_allow_ips)
                        if config.proxy_headers else None)
        shortest = min(config.header_timeout, config.keepalive_timeout,
                       config.body_timeout, config.send_timeout)
        self.tick = min(1.0, max(0.01, shortest / 4))

    @property
    def capacity(self) -> int:
        """Threads available to requests: abandoned ones are replaced, up to a cap."""
        return self.config.threads + min(self.abandoned, self.config.max_abandoned_threads)

    def _update_limits(self) -> None:
        self.admit_limit = self.capacity + self.config.max_queue
        self.executor.max_workers = self.capacity

    def release(self) -> None:
        """An application call has ended (or was dropped from the queue)."""
        self.active -= 1

    def abandon(self) -> None:
        """The current call's client was given up on while its thread runs on."""
        self.abandoned += 1
        self._update_limits()
        if self.abandoned > self.config.max_abandoned_threads:
            log.warning("%d threads are running abandoned requests (more than "
                        "max_abandoned_threads=%d): capacity is reduced", self.abandoned,
                        self.config.max_abandoned_threads)

    def abandoned_done(self) -> None:
        self.abandoned -= 1
        self._update_limits()
        self.release()

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


class StreamProtocol(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol, telling its connection at once when the peer closed
    its side (EOF) or is gone."""

    on_eof: Callable[[], object] | None = None
    on_lost: Callable[[], object] | None = None

    def eof_received(self) -> bool:
        if self.on_eof is not None:
            self.on_eof()
        return bool(super().eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        on_lost, self.on_lost = self.on_lost, None
        if on_lost is not None:
            on_lost()


class _RequestTimeout(Exception):
    """The application did not start its response within ``request_timeout``."""


class _QueueTimeout(Exception):
    """No thread took the request up within ``queue_timeout``."""


class HTTPConnection:
    __slots__ = ("_base", "_disconnected", "_eof", "_expired", "_handoff", "_lost", "_proxied",
                 "_sent", "deadline", "idle", "loop", "reader", "served", "state", "task",
                 "transport", "writer")

    def __init__(self, state: ServerState, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, protocol: StreamProtocol) -> None:
        self.state = state
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.loop = asyncio.get_running_loop()
        self.idle = True
        self.task: asyncio.Task[Any] | None = None
        self.deadline = 0.0
        self._expired = False
        self._base = _connection_environ(writer, state.config.root_path)
        # the peer is a trusted proxy: its forwarding headers describe the client
        self._proxied = state.trusted is not None and self._base["REMOTE_ADDR"] in state.trusted
        # the request whose application call is running, while one is
        self._handoff: Handoff | None = None
        self._disconnected: Disconnected | None = None
        self._eof = self._lost = False
        self._sent = 0  # response bytes of the current request, for the access log
        self.served = 0  # requests answered on this connection
        protocol.on_lost = self._on_lost
        protocol.on_eof = self._on_eof
        state.connections.add(self)

    async def run(self) -> None:
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
            self.state.connections.discard(self)
            if not self.transport.is_closing():
                self.transport.close()

    @property
    def closable_when_idle(self) -> bool:
        """Whether shutting down may close this idle connection without losing a request:
        not when bytes of one are already here, nor when the client connected and has not
        sent its first request yet (it is surely about to)."""
        return self.served > 0 and _buffered(self.reader) == 0

    def _on_eof(self) -> None:
        """The client closed its sending side.  It may still read (a half-close), so the
        response goes on; the application is told, and may stop early."""
        self._eof = True
        if self._disconnected is not None:
            self._disconnected.set()

    def _on_lost(self) -> None:
        """The client is gone: a request waiting for a thread is dropped, a running
        application call is told at once and its next write raises."""
        self._lost = True
        if self._disconnected is not None:
            self._disconnected.set()
        if self._handoff is not None:
            self._handoff.abort(ClientGone("client disconnected"))

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
            self.served += 1
            try:
                request = http11.parse_head(
                    head, max_request_line=config.max_request_line,
                    max_header_size=config.max_header_size,
                    max_header_count=config.max_header_count)
                body, size, in_memory = await self._read_body(request)
            except HTTPError as exc:
                await self._refuse(exc)
                return
            try:
                environ = build_environ(self._base, request, body, size)
                if self._proxied:
                    apply_proxy_headers(environ, self.state.trusted)  # type: ignore[arg-type]
                keep_alive = request.keep_alive and not self.state.shutting_down
                if not await self._call_app(environ, request, keep_alive):
                    return
            finally:
                self.state.body_memory -= in_memory
            # nothing of this request stays referenced while the connection idles
            del head, request, body, environ

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

    async def _read_body(self, request: Request) -> tuple[IO[bytes], int, int]:
        """The request body, its size, and how many bytes of the server's memory budget
        for bodies it holds (to give back when the request is done)."""
        state = self.state
        config = state.config
        length = request.content_length
        if not request.chunked and not length:
            return io.BytesIO(), 0, 0
        if length is not None and length > config.max_body_size:
            raise HTTPError(413, "request body too large")
        if request.expect_continue:
            self.writer.write(http11.CONTINUE)
        reader = self.reader
        timeout = config.body_timeout
        room = max(0, min(config.body_buffer_size, config.max_body_memory - state.body_memory))
        if length is not None and length <= room:
            state.body_memory += length
            try:
                data = await self._within(reader.readexactly(length), timeout)
            except TimeoutError:
                state.body_memory -= length
                raise HTTPError(408, "request body not received in time") from None
            except BaseException:
                state.body_memory -= length
                raise
            return io.BytesIO(data), length, length
        # Chunked, or larger than what may stay in memory: collect into a buffer that
        # spools to disk past ``room`` bytes, reserved from the budget meanwhile.
        state.body_memory += room
        buffer = BodyBuffer(self.loop, state.io, room)
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
                    max_body_size=config.max_body_size,
                    max_chunk_extensions=config.max_chunk_extensions)
                while not decoder.done:
                    wanted = decoder.bytes_wanted
                    data = await self._within(
                        reader.read(min(wanted, 256 * 1024)) if wanted
                        else reader.readuntil(b"\n"), timeout)
                    if not data:
                        raise asyncio.IncompleteReadError(b"", None)
                    for piece in decoder.feed(data):
                        await buffer.write(piece)
            body = await buffer.finish()
        except BaseException as exc:
            state.body_memory -= room
            buffer.discard()
            if isinstance(exc, TimeoutError):
                raise HTTPError(408, "request body not received in time") from None
            if isinstance(exc, asyncio.LimitOverrunError):
                raise HTTPError(400, "chunk line too long") from None
            raise
        held = 0 if buffer.spooled else buffer.size
        state.body_memory -= room - held
        return body, buffer.size, held

    async def _call_app(self, environ: dict[str, Any], request: Request,
                        keep_alive: bool) -> bool:
        """Run the application and write its response; True to keep the connection."""
        state = self.state
        config = state.config
        if self._lost:  # gone while its body was read: nobody to answer
            environ["wsgi.input"].close()
            return False
        if state.active >= state.admit_limit:
            log.warning("%d requests already wait for a thread (max_queue): answered 503",
                        state.active - state.capacity)
            environ["wsgi.input"].close()
            self.transport.write(http11.error_response(
                503, "too many requests waiting", retry_after=_RETRY_AFTER))
            return False
        handoff = Handoff(self.loop, config.send_buffer_size)
        disconnected = environ["aiowsgi.disconnected"]
        if self._eof:
            disconnected.set()
        call = WSGICall(state.app, environ, request, handoff, state, keep_alive=keep_alive,
                        server_header=config.server_header,
                        expose_tracebacks=config.expose_tracebacks)
        try:
            state.executor.run_soon(call.run)
        except RuntimeError:  # the pool is shutting down
            environ["wsgi.input"].close()
            self.transport.write(http11.error_response(503, "server is shutting down"))
            return False
        state.active += 1
        state.requests += 1
        if state.requests == config.max_requests and state.on_max_requests is not None:
            state.on_max_requests()
        self._handoff, self._disconnected = handoff, disconnected
        if state.access:
            started, self._sent = time.perf_counter(), 0
        try:
            keep_alive = await self._write_response(handoff)
        except _QueueTimeout:
            # no thread took it up: it stays in the pool's queue, to be skipped there
            state.release()
            log.warning("no thread became free within queue_timeout=%ss: answered 503",
                        config.queue_timeout)
            self.transport.write(http11.error_response(
                503, "no worker thread became free in time", retry_after=_RETRY_AFTER))
            return False
        except _RequestTimeout:
            log.error("%s %s: no response after request_timeout=%ss; answered 504, the "
                      "application thread is abandoned", request.method, request.path,
                      config.request_timeout)
            self._give_up(handoff, disconnected, ClientGone("request timeout"), abandon=True)
            self.transport.write(http11.error_response(504, "the application took too long"))
            return False
        except BaseException as exc:
            self._give_up(handoff, disconnected, ClientGone(str(exc) or type(exc).__name__))
            raise
        finally:
            self._handoff = self._disconnected = None
        state.release()
        if state.access:
            duration = time.perf_counter() - started
            accesslog.write(config.access_log_format, environ, call.status, self._sent,
                            time.time() - duration, duration)
        return keep_alive

    def _give_up(self, handoff: Handoff, disconnected: Disconnected, error: ClientGone,
                 *, abandon: bool = False) -> None:
        """Stop following an application call that is still running (or still queued): its
        next write raises, and its slot is released once its thread has finished."""
        state = self.state
        disconnected.set()
        handoff.abort(error)
        if abandon:
            state.abandon()
            if handoff.detach(state.abandoned_done):
                state.abandoned_done()
        elif handoff.detach(state.release):
            state.release()

    def _first_wait(self) -> float:
        """How long to wait for the application's first output before looking again."""
        config = self.state.config
        if config.request_timeout:
            return min(config.queue_timeout, config.request_timeout)
        return config.queue_timeout

    async def _first_items_late(self, handoff: Handoff, waited: float) -> list[Any]:
        """The first wait ran out: either no thread took the request up (503), or the
        application runs and may still have ``request_timeout`` to answer (else 504)."""
        if handoff.cancel_unstarted(ClientGone("no thread in time")):
            raise _QueueTimeout
        timeout = self.state.config.request_timeout
        if not timeout:
            return await handoff.take()
        if waited >= timeout:
            raise _RequestTimeout
        try:
            return await self._within(handoff.take(), timeout - waited)
        except TimeoutError:
            raise _RequestTimeout from None

    async def _write_response(self, handoff: Handoff) -> bool:
        transport = self.transport
        write = transport.write
        first_wait = self._first_wait()
        try:
            items = await self._within(handoff.take(), first_wait)
        except TimeoutError:
            items = await self._first_items_late(handoff, first_wait)
        while True:
            written = 0
            for item in items:
                if type(item) is bytes:
                    if transport.is_closing():
                        raise ClientGone("client closed the connection")
                    write(item)
                    written += len(item)
                elif type(item) is Finish:
                    if item.data:
                        if transport.is_closing():
                            raise ClientGone("client closed the connection")
                        write(item.data)
                    self._sent += written + len(item.data)
                    await self._drain()
                    return item.keep_alive
                elif type(item) is SendFile:
                    return await self._send_file(item)
                else:
                    assert type(item) is Abort
                    if item.data and not transport.is_closing():
                        write(item.data)
                    await self._abort_after_flush()
                    return False
            if written:
                self._sent += written
                await self._drain()
                handoff.release(written)
            items = await handoff.take()

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

    async def _flush(self) -> None:
        """Wait until the transport has sent everything it buffered (not just most)."""
        transport = self.transport
        if transport.get_write_buffer_size():
            low, high = transport.get_write_buffer_limits()
            transport.set_write_buffer_limits(high=0)
            try:
                await self._drain()
            finally:
                if not transport.is_closing():
                    transport.set_write_buffer_limits(high=high, low=low)

    async def _abort_after_flush(self) -> None:
        """Close without completing the response, after what was written has gone out
        (bounded by the send timeout)."""
        transport = self.transport
        try:
            if not transport.is_closing():
                await self._flush()
        except (ClientGone, ConnectionError):
            pass
        finally:
            transport.abort()

    async def _send_file(self, item: SendFile) -> bool:
        try:
            if self.transport.is_closing():
                raise ClientGone("client closed the connection")
            self.transport.write(item.head)
            sent = await self._sendfile(item.file, item.offset, item.count)
            self._sent += len(item.head) + sent
        finally:
            await self.loop.run_in_executor(self.state.executor, item.close)
        if sent < item.count:
            log.error("file ended %d bytes before its Content-Length", item.count - sent)
            await self._abort_after_flush()
            return False
        await self._drain()
        return item.keep_alive

    async def _sendfile(self, file: IO[bytes], offset: int, count: int) -> int:
        """Send ``count`` bytes of ``file`` from ``offset``, without copies through Python
        where the kernel can: the loop's sendfile (asyncio), else our own os.sendfile on
        the loop (uvloop has no loop.sendfile), else reads and writes (TLS, odd files)."""
        timeout = self.state.config.send_timeout
        sent = 0
        try:
            while sent < count:  # in pieces: the send timeout is for progress, not the whole
                n = await self._within(self.loop.sendfile(
                    self.transport, file, offset + sent, min(count - sent, _SENDFILE_PIECE),
                    fallback=False), timeout)
                if not n:
                    return sent
                sent += n
            return sent
        except (NotImplementedError, asyncio.SendfileNotAvailableError):
            if self.transport.is_closing():  # asyncio's word for a reset mid-file
                raise ClientGone("client closed the connection") from None
        except TimeoutError:
            self.transport.abort()
            raise ClientGone("send timeout") from None
        if self.transport.get_extra_info("sslcontext") is None:
            more = await self._sendfile_on_loop(file, offset + sent, count - sent)
            if more >= 0:
                return sent + more
        while sent < count:
            data = await self.loop.run_in_executor(
                self.state.io, _pread, file, min(count - sent, _SENDFILE_PIECE), offset + sent)
            if not data:
                break
            if self.transport.is_closing():
                raise ClientGone("client closed the connection")
            self.transport.write(data)
            await self._drain()
            sent += len(data)
        return sent

    async def _sendfile_on_loop(self, file: IO[bytes], offset: int, count: int) -> int:
        """os.sendfile on a duplicate of the connection's socket, once the transport has
        nothing buffered (nothing else writes meanwhile: this coroutine owns the
        response), waiting for room with add_writer on the duplicate (uvloop refuses it
        on the transport's own descriptor).  Returns the bytes sent, or -1 if sendfile
        cannot be used with this file."""
        sock = self.transport.get_extra_info("socket")
        try:
            fileno, in_fd = sock.fileno(), file.fileno()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return -1
        await self._flush()
        out_fd = os.dup(fileno)
        timeout = self.state.config.send_timeout
        sent = 0
        try:
            while sent < count:
                try:
                    n = os.sendfile(out_fd, in_fd, offset + sent,
                                    min(count - sent, _SENDFILE_PIECE))
                except BlockingIOError:
                    await self._within(self._writable(out_fd), timeout)
                    continue
                if n == 0:
                    break
                sent += n
            return sent
        except TimeoutError:
            self.transport.abort()
            raise ClientGone("send timeout") from None
        except OSError as exc:
            if not sent and exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                return -1
            self.transport.abort()
            raise ClientGone(str(exc)) from None
        finally:
            os.close(out_fd)

    async def _writable(self, fd: int) -> None:
        waiter: asyncio.Future[None] = self.loop.create_future()
        self.loop.add_writer(fd, resolve, waiter)
        try:
            await waiter
        finally:
            self.loop.remove_writer(fd)

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




def _connection_environ(writer: asyncio.StreamWriter, root_path: str) -> dict[str, Any]:
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
                        remote_addr=remote_addr, remote_port=remote_port, url_scheme=scheme,
                        root_path=root_path)
