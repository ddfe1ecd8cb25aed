"""One asyncio protocol per client connection.

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
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

from . import accesslog, http11
from .body import BodyBuffer
from .handoff import ClientGone, Handoff, Wakeups, resolve
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
_BUFFER_POLL = 0.005  # seconds between looks at a buffer whose transport did not pause us


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
        "expose_tracebacks",
        "first_wait",
        "io",
        "max_connections",
        "on_max_requests",
        "refused",
        "requests",
        "server_header",
        "shutting_down",
        "tick",
        "trusted",
        "wakeups",
    )

    def __init__(self, app: WSGIApp, config: Config, executor: WorkerPool,
                 io: WorkerPool) -> None:
        self.app = app
        self.wakeups = Wakeups(asyncio.get_running_loop())
        self.config = config
        self.executor = executor  # runs the application
        self.io = io  # file I/O for request bodies and the sendfile fallback
        self.connections: set[HTTPConnection] = set()
        self.shutting_down = False
        self.server_header = config.server_header
        self.expose_tracebacks = config.expose_tracebacks
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
        # how long to wait for an application's first output before looking again
        self.first_wait = (min(config.queue_timeout, config.request_timeout)
                           if config.request_timeout else config.queue_timeout)

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
            # expiring may close a connection, which leaves the set
            for conn in [c for c in self.connections if c.deadline and now >= c.deadline]:
                conn.expire()


class _RequestTimeout(Exception):
    """The application did not start its response within ``request_timeout``."""


# What a connection is doing; each decides what new bytes, a deadline, EOF and a lost
# peer mean.  The common path (a head, maybe a small body, the application's answer)
# runs in callbacks; the rest runs in a task (``_TASK``).
_HEAD = 0  # waiting for a request head
_BODY = 1  # waiting for the rest of a body that will be held in memory
_APP = 2  # waiting for the application's output
_DRAIN = 3  # waiting for the transport to take what was written
_TASK = 4  # a coroutine has the connection: ``task``
_CLOSED = 5

Continuation = Callable[[], object] | None


class HTTPConnection(asyncio.Protocol):
    """One client connection: an asyncio protocol.

    Most requests never leave the protocol's callbacks: the head is parsed where its
    bytes arrive, the call is handed to the pool, and its response is written from the
    callback that the application thread schedules.  Rare or long waits (a body read in
    pieces or spooled to disk, a file, a refusal, a late application) run as a
    coroutine in a task instead, which hands the connection back when it is done.
    """

    __slots__ = ("_after_drain", "_base", "_body_parts", "_body_size", "_buffer", "_call",
                 "_data_waiter", "_disconnected", "_drain_waiter", "_eof", "_expired", "_gather",
                 "_handoff", "_handoff_lock", "_head_limit", "_high_water", "_in_memory",
                 "_items_ready", "_keepalive_phase",
                 "_lost", "_mode", "_over_ssl", "_paused", "_proxied", "_reading_paused",
                 "_request", "_scanned", "_skipped", "_socket", "_started",
                 "_write_limits",
                 "closed", "deadline", "loop", "served", "state", "task", "transport")

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # made below
        self.task: asyncio.Task[None] | None = None
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.deadline = 0.0
        self.served = 0  # requests begun on this connection
        self._mode = _HEAD
        self._buffer = b""  # bytes received and not yet consumed
        self._scanned = 0  # of them, bytes known to hold no head terminator
        self._skipped = 0  # empty lines' bytes ignored before the next request line
        self._head_limit = state.config.max_header_size
        self._high_water = 2 * self._head_limit  # past it, reading pauses
        self._reading_paused = False
        self._paused = False  # the transport holds too much: write nothing more for now
        self._write_limits = (0, 0)  # the transport's (low, high) water marks
        self._eof = self._lost = self._expired = False
        self._keepalive_phase = False
        self._data_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._after_drain: Callable[[], object] | None = None
        # the request being read, answered or both
        self._request: Request | None = None
        self._body_parts: list[bytes] = []
        self._body_size = 0
        self._in_memory = 0  # bytes of the server's body memory budget it holds
        self._handoff: Handoff | None = None
        self._disconnected: Disconnected | None = None
        self._call: WSGICall | None = None
        self._started = 0.0  # when the current request was dispatched, for the access log
        self._base: dict[str, Any] = {}
        self._proxied = False
        self._over_ssl = False
        self._gather = False
        self._socket: _Socket | None = None  # for os.writev, where the transport can't gather
        self._items_ready: Callable[[], None] | None = None  # self._on_items, made once
        self._handoff_lock = threading.Lock()  # shared by this connection's handoffs

    # -- protocol callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        state = self.state
        if len(state.connections) >= state.max_connections:
            self._refuse_connection()
            return
        state.connections.add(self)
        # one bound method for all its requests, not one each (a cycle, broken by _close)
        self._items_ready = self._on_items
        self._over_ssl = transport.get_extra_info("sslcontext") is not None
        # asyncio's own transport: our os.writev, whose leftovers go through its write
        # (its writelines never pauses the protocol in some releases, gh-127655)
        self._socket = writev_socket(transport)
        self._gather = self._socket is None and gathers_writes(transport)
        self._write_limits = transport.get_write_buffer_limits()  # type: ignore[attr-defined]
        self._base = _connection_environ(transport, state.config.root_path, self._over_ssl)
        # the peer is a trusted proxy: its forwarding headers describe the client
        self._proxied = state.trusted is not None and self._base["REMOTE_ADDR"] in state.trusted
        self.deadline = self.loop.time() + state.config.header_timeout

    def _refuse_connection(self) -> None:
        """Past ``max_connections``: a 503 and the door, without reading anything."""
        state = self.state
        state.refused += 1
        if state.refused == 1 or state.refused % 1000 == 0:
            log.warning("max_connections=%d reached: new connections get 503 (%d so far)",
                        state.max_connections, state.refused)
        self._mode = _CLOSED
        resolve(self.closed)
        self.transport.write(http11.error_response(503, "too many connections", retry_after=1))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        mode = self._mode
        if mode == _BODY:
            self._body_parts.append(data)
            self._body_size += len(data)
            if self._body_size >= self._request.content_length:  # type: ignore[union-attr,operator]
                self._body_complete()
            return
        buffer = self._buffer = self._buffer + data if self._buffer else data
        if mode == _HEAD:
            self._read_head()
        elif mode != _CLOSED:
            waiter = self._data_waiter
            if waiter is not None:
                self._data_waiter = None
                resolve(waiter)
            elif len(buffer) > self._high_water:
                self._pause_reading()

    def eof_received(self) -> bool:
        """The client closed its sending side.  It may still read (a half-close), so a
        response under way goes on; the application is told, and may stop early."""
        self._eof = True
        if self._disconnected is not None:
            self._disconnected.set()
        mode = self._mode
        if mode == _HEAD:
            self._read_head()
        elif mode == _BODY:
            self._close()  # a body cut short: nobody to answer
        elif self._data_waiter is not None:
            waiter, self._data_waiter = self._data_waiter, None
            resolve(waiter)
        return not self._over_ssl

    def connection_lost(self, exc: Exception | None) -> None:
        """The client is gone: a request waiting for a thread is dropped, a running
        application call is told at once and its next write raises."""
        self._lost = True
        if self._disconnected is not None:
            self._disconnected.set()
        if self._handoff is not None:
            self._handoff.abort(ClientGone("client disconnected"))
        if self._data_waiter is not None:
            waiter, self._data_waiter = self._data_waiter, None
            resolve(waiter)
        if self._drain_waiter is not None:
            waiter, self._drain_waiter = self._drain_waiter, None
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("connection lost"))
        if self._mode != _TASK:  # else the task finds out, and closes
            self._close()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if self._drain_waiter is not None:
            waiter, self._drain_waiter = self._drain_waiter, None
            resolve(waiter)
        if self._mode == _DRAIN:
            after, self._after_drain = self._after_drain, None
            self.deadline = 0.0
            self._mode = _APP
            assert after is not None
            after()

    # -- the server's view ------------------------------------------------------------

    @property
    def closable_when_idle(self) -> bool:
        """Whether shutting down may close this connection without losing a request: it
        waits for a head of which no byte is here, and it has served one already (a client
        that connected and sent nothing yet is surely about to)."""
        return self._mode == _HEAD and self.served > 0 and not self._buffer

    def abort(self) -> None:
        """Close now, whatever is under way (the end of a graceful shutdown)."""
        if self.task is not None:
            self.task.cancel()
        else:
            self._close(abort=True)

    def expire(self) -> None:
        """The current wait took too long."""
        self.deadline = 0.0
        mode = self._mode
        if mode == _TASK:  # the coroutine's wait raises TimeoutError
            if self.task is not None:
                self._expired = True
                self.task.cancel()
        elif mode == _HEAD:
            if self._keepalive_phase and self._buffer:
                # idle past the keep-alive timeout, but a request has begun: it gets the
                # header timeout to finish
                self._keepalive_phase = False
                self.deadline = self.loop.time() + self.state.config.header_timeout
            elif self._buffer:
                self._refuse(HTTPError(408, "request head not received in time"))
            else:
                self._close()
        elif mode == _BODY:
            self._refuse(HTTPError(408, "request body not received in time"))
        elif mode == _APP:
            self._start_task(self._first_items_late())
        elif mode == _DRAIN:
            log.info("client did not read its response for %ss; aborted",
                     self.state.config.send_timeout)
            self._close(abort=True)

    # -- reading a request ------------------------------------------------------------

    def _read_head(self) -> None:
        """Take the next request head from the buffer, or wait for more of it."""
        buffer = self._buffer
        if buffer[:1] == b"\r" and not self._lost:
            rest = self._skip_empty_lines(buffer)
            if rest is None:
                return
            buffer = rest
        if not buffer or self._lost:
            if self._eof or self._lost:
                self._close()
            elif self._reading_paused:
                self._resume_reading()
            return
        end = buffer.find(b"\r\n\r\n", self._scanned)
        limit = self._head_limit
        if end < 0:
            if len(buffer) >= limit:
                self._refuse(HTTPError(431, "request head too large"),
                             head_only=buffer.startswith(b"HEAD "))
            elif self._eof:
                if buffer.strip():
                    log.debug("client closed the connection inside a request head")
                self._close()
            else:
                self._scanned = max(0, len(buffer) - 3)
                if self._reading_paused:
                    self._resume_reading()
            return
        end += 4
        if end > limit:
            self._refuse(HTTPError(431, "request head too large"),
                         head_only=buffer.startswith(b"HEAD "))
            return
        self._buffer = buffer[end:]
        self._scanned = self._skipped = 0
        self.served += 1
        config = self.state.config
        try:
            request = http11.parse_head(
                buffer[:end], max_request_line=config.max_request_line,
                max_header_size=limit, max_header_count=config.max_header_count)
        except HTTPError as exc:
            self._refuse(exc, head_only=buffer.startswith(b"HEAD "))
            return
        self._request = request
        if not request.chunked and not request.content_length:
            self._dispatch(request, io.BytesIO(), 0)
            return
        self._begin_body(request)

    def _skip_empty_lines(self, buffer: bytes) -> bytes | None:
        """``buffer`` without the empty lines before a request line; None if there were
        more of them than a request line may be long (the connection is refused)."""
        skip = http11.leading_empty_lines(buffer)
        if not skip:
            return buffer
        self._skipped += skip
        if self._skipped > self.state.config.max_request_line:
            self._buffer = b""
            self._refuse(HTTPError(400, "too many empty lines before the request line"))
            return None
        self._scanned = max(0, self._scanned - skip)
        buffer = self._buffer = buffer[skip:]
        return buffer

    def _begin_body(self, request: Request) -> None:
        state = self.state
        config = state.config
        length = request.content_length
        if length is not None and length > config.max_body_size:
            self._refuse(HTTPError(413, "request body too large"))
            return
        if request.expect_continue:
            self.transport.write(http11.CONTINUE)
        room = max(0, min(config.body_buffer_size, config.max_body_memory - state.body_memory))
        if length is None or length > room:
            self._start_task(self._read_body(request, room))
            return
        state.body_memory += length
        self._in_memory = length
        buffer = self._buffer
        if len(buffer) >= length:
            self._buffer = buffer[length:]
            self._dispatch(request, io.BytesIO(buffer[:length]), length)
            return
        self._mode = _BODY
        self._body_parts = [buffer] if buffer else []
        self._body_size = len(buffer)
        self._buffer = b""
        self.deadline = self.loop.time() + config.body_timeout
        if self._eof:
            self._close()
        elif self._reading_paused:
            self._resume_reading()

    def _body_complete(self) -> None:
        request = self._request
        assert request is not None and request.content_length is not None
        length = request.content_length
        data = b"".join(self._body_parts)
        self._body_parts = []
        self._body_size = 0
        self._buffer = data[length:]
        self.deadline = 0.0
        self._mode = _APP
        self._dispatch(request, io.BytesIO(data[:length]), length)

    async def _read_body(self, request: Request, room: int) -> Continuation:
        """A chunked body, or one larger than what may stay in memory: collected into a
        buffer that spools to disk past ``room`` bytes, reserved from the budget
        meanwhile."""
        state = self.state
        config = state.config
        timeout = config.body_timeout
        state.body_memory += room
        self._in_memory = room
        buffer = BodyBuffer(self.loop, state.io, room)
        try:
            if request.content_length is not None:
                remaining = request.content_length
                while remaining:
                    data = await self._within(self._read(min(remaining, 256 * 1024)), timeout)
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
                        self._read(min(wanted, 256 * 1024)) if wanted else self._read_line(),
                        timeout)
                    if not data:
                        raise asyncio.IncompleteReadError(b"", None)
                    for piece in decoder.feed(data):
                        await buffer.write(piece)
            body = await buffer.finish()
        except BaseException as exc:
            buffer.discard()
            state.body_memory -= room
            self._in_memory = 0
            if isinstance(exc, TimeoutError):
                exc = HTTPError(408, "request body not received in time")
            if isinstance(exc, HTTPError):
                await self._refuse_now(exc)
                return None
            raise
        held = 0 if buffer.spooled else buffer.size
        state.body_memory -= room - held
        self._in_memory = held
        return partial(self._dispatch, request, body, buffer.size)

    async def _wait_for_data(self) -> None:
        if self._lost:
            raise ConnectionResetError("connection lost")
        if self._reading_paused:
            self._resume_reading()
        waiter = self._data_waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self._data_waiter = None

    async def _read(self, size: int) -> bytes:
        """Up to ``size`` bytes; empty at the end of the stream."""
        while not self._buffer:
            if self._eof:
                return b""
            await self._wait_for_data()
        buffer = self._buffer
        if len(buffer) <= size:
            self._buffer = b""
            return buffer
        self._buffer = buffer[size:]
        return buffer[:size]

    async def _read_line(self) -> bytes:
        """Bytes up to and including the next LF (a chunk-size or trailer line)."""
        limit = self._head_limit
        start = 0
        while True:
            buffer = self._buffer
            end = buffer.find(b"\n", start)
            if end >= 0:
                if end > limit:
                    break
                self._buffer = buffer[end + 1:]
                return buffer[:end + 1]
            if len(buffer) > limit:
                break
            if self._eof:
                raise asyncio.IncompleteReadError(buffer, None)
            start = len(buffer)
            await self._wait_for_data()
        raise HTTPError(400, "chunk line too long")

    def _pause_reading(self) -> None:
        if not self._reading_paused and not self.transport.is_closing():
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and len(self._buffer) <= self._high_water:
            self._reading_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    # -- calling the application ------------------------------------------------------

    def _dispatch(self, request: Request, body: IO[bytes], size: int) -> None:
        """Hand the application call to the pool; its output arrives in ``_on_items``."""
        state = self.state
        config = state.config
        environ = build_environ(self._base, request, body, size)
        if self._proxied:
            apply_proxy_headers(environ, self.state.trusted)  # type: ignore[arg-type]
        if self._lost:  # gone while its body was read: nobody to answer
            body.close()
            self._close()
            return
        if state.active >= state.admit_limit:
            log.warning("%d requests already wait for a thread (max_queue): answered 503",
                        state.active - state.capacity)
            body.close()
            self._answer_and_close(http11.error_response(
                503, "too many requests waiting", retry_after=_RETRY_AFTER,
                head_only=request.method == "HEAD"))
            return
        handoff = Handoff(state.wakeups, config.send_buffer_size, self._items_ready,
                          self._handoff_lock)
        disconnected = environ["aiowsgi.disconnected"]
        if self._eof:
            disconnected.set()
        call = WSGICall(state.app, environ, request, handoff, state,
                        request.keep_alive and not state.shutting_down)
        try:
            state.executor.run_soon(call)
        except RuntimeError:  # the pool is shutting down
            body.close()
            self._answer_and_close(http11.error_response(
                503, "server is shutting down", head_only=request.method == "HEAD"))
            return
        state.active += 1
        state.requests += 1
        if state.requests == config.max_requests and state.on_max_requests is not None:
            state.on_max_requests()
        self._handoff, self._disconnected, self._call = handoff, disconnected, call
        if state.access:
            self._started = time.perf_counter()
        self._mode = _APP
        self.deadline = self.loop.time() + state.first_wait

    async def _first_items_late(self) -> Continuation:
        """The first wait ran out: either no thread took the request up (503), or the
        application runs and may still have ``request_timeout`` to answer (else 504)."""
        handoff, request = self._handoff, self._request
        assert handoff is not None and request is not None
        state = self.state
        config = state.config
        waited = state.first_wait
        if handoff.cancel_unstarted(ClientGone("no thread in time")):
            # it stays in the pool's queue, to be skipped there
            if state.access and self._call is not None:
                self._log_access(self._call, "-", "503")
            self._forget_request()
            state.release()
            log.warning("no thread became free within queue_timeout=%ss: answered 503",
                        config.queue_timeout)
            self.transport.write(http11.error_response(
                503, "no worker thread became free in time", retry_after=_RETRY_AFTER,
                head_only=request.method == "HEAD"))
            return None
        timeout = config.request_timeout
        try:
            if not timeout:
                items = await handoff.take()
            elif waited >= timeout:
                raise _RequestTimeout
            else:
                try:
                    items = await self._within(handoff.take(), timeout - waited)
                except TimeoutError:
                    raise _RequestTimeout from None
        except _RequestTimeout:
            log.error("%s %s: no response after request_timeout=%ss; answered 504, the "
                      "application thread is abandoned", request.method, request.path,
                      config.request_timeout)
            if state.access and self._call is not None:
                self._log_access(self._call, "-", "504")
            self._give_up(ClientGone("request timeout"), abandon=True)
            self.transport.write(http11.error_response(
                504, "the application took too long", head_only=request.method == "HEAD"))
            return None
        return partial(self._write_items, items)

    def _on_items(self) -> None:
        """The application thread handed output over (scheduled from that thread)."""
        handoff = self._handoff
        if handoff is None or self._mode != _APP:
            return  # stale: the connection has moved on
        try:
            items = handoff.take_or_notify(self._items_ready)
        except ClientGone:
            return
        if items is not None:
            self._write_items(items)

    def _write_items(self, items: list[Any]) -> None:
        """Write what the application thread handed over, until it has to wait for more
        output or for the client; a file or an abort continues in a task."""
        handoff = self._handoff
        assert handoff is not None
        self.deadline = 0.0
        transport = self.transport
        write = transport.write
        while True:
            written = 0
            if len(items) > 1 and (run := _leading_bytes(items)) > 1:
                # one system call for all of them: gathered, or joined when they are small
                pieces = items[:run]
                size = sum(map(len, pieces))
                small = size <= run * _JOIN_BELOW
                if self._gather or small or self._socket is not None:
                    if transport.is_closing():
                        self._close()
                        return
                    if self._gather:
                        transport.writelines(pieces)
                    elif small:
                        write(b"".join(pieces))
                    else:
                        self._writev(pieces, size)
                    written = size
                    items = items[run:]
            for item in items:
                kind = type(item)
                if kind is bytes:
                    if transport.is_closing():
                        self._close()
                        return
                    write(item)
                    written += len(item)
                elif kind is Finish:
                    if item.data:
                        if transport.is_closing():
                            self._close()
                            return
                        write(item.data)
                    if self._write_blocked() or transport.is_closing():
                        self._after_write(partial(self._response_done, item.keep_alive))
                    else:
                        self._response_done(item.keep_alive)
                    return
                elif kind is SendFile:
                    self._start_task(self._send_file(item))
                    return
                else:
                    assert kind is Abort
                    if item.data and not transport.is_closing():
                        write(item.data)
                    self._start_task(self._abort_after_flush())
                    return
            if written:
                if self._write_blocked() or transport.is_closing():
                    self._after_write(partial(self._release, written))
                    return
                handoff.release(written)
            try:
                more = handoff.take_or_notify(self._items_ready)
            except ClientGone:
                self._close()
                return
            if more is None:
                self._mode = _APP
                return
            items = more

    def _writev(self, pieces: list[bytes], size: int) -> None:
        """Send ``pieces`` with one system call on asyncio's transport, whose write makes
        one per piece and whose writelines either joins them into a copy first (before
        3.12) or, in some releases, never pauses the protocol (3.12.0-3.12.8,
        3.13.0-3.13.1).

        Only while the transport holds nothing, so nothing overtakes its buffer; what the
        kernel does not take, and any error, is left to the transport's write (which
        pauses the protocol past its high-water mark), as if it had been the first to
        try.  The socket is the transport's own, open while the transport is not closing
        (checked just before, on this same loop turn)."""
        assert self._socket is not None
        transport = self.transport
        sent = 0
        if not transport.get_write_buffer_size():
            try:
                sent = os.writev(self._socket.fileno(), pieces[:_IOV_MAX])
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

    def _write_blocked(self) -> bool:
        """Whether the transport holds more than its high-water mark, so that no more
        output may be taken for now.

        Checked here after every write rather than trusted to ``pause_writing`` alone:
        a transport that fails to pause the protocol (asyncio's ``writelines`` in
        3.12.0-3.12.8 and 3.13.0-3.13.1, CPython gh-127655) would otherwise buffer a
        whole response.  Then this connection pauses itself, and looks again until the
        buffer is down to the low-water mark.
        """
        if self._paused:
            return True
        if self.transport.get_write_buffer_size() <= self._write_limits[1]:
            return False
        self._paused = True
        self.loop.call_later(_BUFFER_POLL, self._poll_write_buffer)
        return True

    def _poll_write_buffer(self) -> None:
        """The transport did not pause this protocol: resume once its buffer has drained
        to the low-water mark, as it would have."""
        if not self._paused or self._mode == _CLOSED:
            return  # resumed by the transport after all, or gone
        if self.transport.get_write_buffer_size() <= self._write_limits[0]:
            self.resume_writing()
        else:
            self.loop.call_later(_BUFFER_POLL, self._poll_write_buffer)

    def _release(self, nbytes: int) -> None:
        """Written bytes have left: the thread may hand over as much again."""
        if self._handoff is not None:
            self._handoff.release(nbytes)
            self._on_items()

    def _after_write(self, then: Callable[[], object]) -> None:
        """Run ``then`` once the transport has taken what it buffered (below its high
        water mark), within the send timeout."""
        if self._lost or self.transport.is_closing():
            self._close()
        elif self._paused:
            self._mode = _DRAIN
            self._after_drain = then
            self.deadline = self.loop.time() + self.state.config.send_timeout
        else:
            then()

    def _response_done(self, keep_alive: bool) -> None:
        """The response is written; on to the next request, or close."""
        state = self.state
        call = self._call
        assert call is not None
        self._forget_request()
        state.release()
        if state.access:
            self._log_access(call, "+" if keep_alive and not state.shutting_down else "-")
        self._next_request(keep_alive)

    def _log_access(self, call: WSGICall, ending: str, status: str | None = None) -> None:
        """The access log line of ``call``: ``ending`` is '+' (kept alive), '-' (closed)
        or 'X' (aborted); ``status`` one the server answered with instead of the app."""
        duration = time.perf_counter() - self._started
        accesslog.write(self.state.config.access_log_format, call.environ,
                        status or call.sent_status, call.body_bytes,
                        call.headers if call.head is not None and not status else None,
                        time.time() - duration, duration, ending)

    def _next_request(self, keep_alive: bool) -> None:
        if not keep_alive or self.state.shutting_down:
            self._close()
            return
        self._mode = _HEAD
        self._keepalive_phase = True
        self.deadline = self.loop.time() + self.state.config.keepalive_timeout
        if self._buffer or self._eof or self._lost or self._reading_paused:
            self._read_head()  # else it would find nothing to do

    def _forget_request(self) -> None:
        """Let go of the current request: nothing of it stays referenced while the
        connection idles, and its share of the body memory is given back."""
        self._handoff = self._disconnected = self._call = None
        self._request = None
        self.state.body_memory -= self._in_memory
        self._in_memory = 0

    def _give_up(self, error: ClientGone, *, abandon: bool = False) -> None:
        """Stop following an application call that is still running (or still queued): its
        next write raises, and its slot is released once its thread has finished."""
        handoff, disconnected = self._handoff, self._disconnected
        if handoff is None:
            return
        assert disconnected is not None
        self._forget_request()
        state = self.state
        disconnected.set()
        handoff.abort(error)
        if abandon:
            state.abandon()
            if handoff.detach(state.abandoned_done):
                state.abandoned_done()
        elif handoff.detach(state.release):
            state.release()

    # -- coroutines for the rare paths ------------------------------------------------

    def _start_task(self, coro: Coroutine[Any, Any, Continuation]) -> None:
        self._mode = _TASK
        self.deadline = 0.0
        self.task = self.loop.create_task(self._run_task(coro))

    async def _run_task(self, coro: Coroutine[Any, Any, Continuation]) -> None:
        """Run one rare path; then carry on with what it returns, or close."""
        try:
            then = await coro
        except (ConnectionError, asyncio.IncompleteReadError):
            then = None
        except asyncio.CancelledError:
            self._close(abort=True)
            raise
        except Exception:
            log.exception("unexpected error on connection")
            self._close(abort=True)
            return
        finally:
            self.task = None
        self.deadline = 0.0
        if then is None or self._lost:
            self._close()
            return
        self._mode = _APP
        then()

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

    async def _drain(self) -> None:
        """Wait until the transport has taken what it buffered, up to the send timeout."""
        if self._lost:
            raise ClientGone("client closed the connection")
        if self._write_blocked():
            waiter = self._drain_waiter = self.loop.create_future()
            try:
                await self._within(waiter, self.state.config.send_timeout)
            except TimeoutError:
                log.info("client did not read its response for %ss; aborted",
                         self.state.config.send_timeout)
                self.transport.abort()
                raise ClientGone("send timeout") from None
            finally:
                self._drain_waiter = None
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

    async def _abort_after_flush(self) -> Continuation:
        """Close without completing the response, after what was written has gone out
        (bounded by the send timeout)."""
        if self.state.access and self._call is not None:
            self._log_access(self._call, "X")
        self._forget_request()
        self.state.release()
        transport = self.transport
        try:
            if not transport.is_closing():
                await self._flush()
        except (ClientGone, ConnectionError):
            pass
        finally:
            transport.abort()
        return None

    async def _send_file(self, item: SendFile) -> Continuation:
        try:
            if self.transport.is_closing():
                raise ClientGone("client closed the connection")
            self.transport.write(item.head)
            sent = await self._sendfile(item.file, item.offset, item.count)
            if self._call is not None:
                self._call.body_bytes += sent
        finally:
            await self.loop.run_in_executor(self.state.executor, item.close)
        if sent < item.count:
            log.error("file ended %d bytes before its Content-Length", item.count - sent)
            return await self._abort_after_flush()
        await self._drain()
        return partial(self._response_done, item.keep_alive)

    async def _sendfile(self, file: IO[bytes], offset: int, count: int) -> int:
        """Send ``count`` bytes of ``file`` from ``offset``, without copies through Python
        where the kernel can: the loop's sendfile (asyncio), else our own os.sendfile on
        the loop (uvloop has no loop.sendfile), else reads and writes (TLS, odd files)."""
        timeout = self.state.config.send_timeout
        sent = 0
        try:
            while sent < count:  # in pieces: the send timeout is for progress, not the whole
                if self.transport.is_closing():  # else loop.sendfile raises RuntimeError
                    raise ClientGone("client closed the connection")
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

    # -- refusing and closing ---------------------------------------------------------

    def _refuse(self, exc: HTTPError, *, head_only: bool = False) -> None:
        """Answer a request the server will not handle, then close the connection."""
        self._start_task(self._refuse_now(exc, head_only=head_only))

    async def _refuse_now(self, exc: HTTPError, *, head_only: bool = False) -> Continuation:
        """``head_only``: the refused request is a HEAD whose head could not be parsed
        (one that was parsed is known from ``_request``)."""
        log.info("%s %s from %s", exc.status, exc.reason, self._base["REMOTE_ADDR"])
        transport = self.transport
        if transport.is_closing():
            return None
        transport.write(http11.error_response(
            exc.status, exc.reason, head_only=head_only or self._is_head()))
        await self._linger()
        return None

    def _is_head(self) -> bool:
        """Whether the request being answered is a HEAD: its error has no body."""
        return self._request is not None and self._request.method == "HEAD"

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
                data = await self._within(self._read(65536), deadline - self.loop.time())
                if not data:
                    break
                dropped += len(data)
        except (TimeoutError, ConnectionError, ClientGone, OSError):
            pass

    def _answer_and_close(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)
        self._close()

    def _close(self, *, abort: bool = False) -> None:
        """Close the connection and let go of everything it holds; safe to repeat."""
        if self._call is not None and self.state.access:
            self._log_access(self._call, "X")  # a response cut short
        if self._handoff is not None:
            self._give_up(ClientGone("connection closed"))
        else:
            self._forget_request()
        self._mode = _CLOSED
        self._items_ready = None
        self.deadline = 0.0
        self._buffer = b""
        self._body_parts = []
        if abort:
            self.transport.abort()
        elif not self.transport.is_closing():
            self.transport.close()
        self.state.connections.discard(self)
        resolve(self.closed)


def _pread(file: IO[bytes], size: int, offset: int) -> bytes:
    return os.pread(file.fileno(), size, offset)


def _connection_environ(transport: asyncio.BaseTransport, root_path: str,
                        over_ssl: bool) -> dict[str, Any]:
    sockname = transport.get_extra_info("sockname")
    peername = transport.get_extra_info("peername")
    if isinstance(sockname, tuple):
        server_name, server_port = str(sockname[0]), str(sockname[1])
    else:
        server_name, server_port = str(sockname or "localhost"), ""
    if isinstance(peername, tuple):
        remote_addr, remote_port = str(peername[0]), str(peername[1])
    else:
        remote_addr, remote_port = "", ""
    return base_environ(server_name=server_name, server_port=server_port,
                        remote_addr=remote_addr, remote_port=remote_port,
                        url_scheme="https" if over_ssl else "http",
                        root_path=root_path)


_gathering: dict[type, bool] = {}
# Pieces this small on average are joined before a write where the transport cannot
# gather them: copying them costs less than a system call each.
_JOIN_BELOW = 16 * 1024


def gathers_writes(transport: asyncio.BaseTransport) -> bool:
    """Whether ``transport.writelines`` sends several buffers in one system call (uvloop's
    does); the generic one joins them into a copy first, which costs more than it saves."""
    kind = type(transport)
    gathers = _gathering.get(kind)
    if gathers is None:
        gathers = _gathering[kind] = (
            getattr(kind, "writelines", None) not in (None, asyncio.WriteTransport.writelines))
    return gathers


class _Socket(Protocol):
    def fileno(self) -> int: ...


_IOV_MAX = 1024  # buffers per writev, at least this many on Linux


def writev_socket(transport: asyncio.BaseTransport) -> _Socket | None:
    """The socket under asyncio's selector transport for plain TCP and Unix sockets, on
    which the connection gathers its own writes (see ``HTTPConnection._writev``); None
    for any other transport."""
    kind = getattr(asyncio.selector_events, "_SelectorSocketTransport", None)
    if type(transport) is not kind or kind is None:
        return None
    sock = transport.get_extra_info("socket")
    return sock if sock is not None and sock.type == socket.SOCK_STREAM else None


def _leading_bytes(items: list[Any]) -> int:
    """How many of ``items`` are response bytes before anything else."""
    count = 0
    for item in items:
        if type(item) is not bytes:
            break
        count += 1
    return count
