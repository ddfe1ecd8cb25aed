"""Admission: whether a request gets a thread, and what the client hears when not.

Every connection of one server shares a :class:`ServerState`.  ``threads`` threads run
application calls and at most ``max_queue`` more wait in the pool's FIFO queue; past that
a request is answered 503 at once (:func:`dispatch`).  A request that no thread takes up
within ``queue_timeout`` is answered 503, and one whose application does not start its
response within ``request_timeout`` is answered 504 and its thread abandoned
(:func:`first_output_late`); abandoned threads are replaced, up to a cap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import IO, TYPE_CHECKING

from . import accesslog, deadlines, http11, wsgi
from .handoff import ClientGone, Handoff, Wakeups
from .http11 import Request
from .pool import WorkerPool
from .proxy import TrustedProxies
from .states import State

if TYPE_CHECKING:
    from .config import Config
    from .connection import HTTPConnection
    from .wsgi import WSGIApp

log = logging.getLogger("aiowsgi.error")

_RETRY_AFTER = 1  # seconds, in the Retry-After of a 503


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
        self.tick = deadlines.tick(config.header_timeout, config.keepalive_timeout,
                                   config.body_timeout, config.send_timeout)
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


class _RequestTimeout(Exception):
    """The application did not start its response within ``request_timeout``."""


def dispatch(conn: HTTPConnection, request: Request, body: IO[bytes], size: int) -> None:
    """Hand the application call to the pool (the connection waits in APP for its
    output), or answer 503 when too many wait already."""
    server = conn.server
    if conn.lost:  # gone while its body was read: nobody to answer
        body.close()
        conn.close()
        return
    if server.active >= server.admit_limit:
        log.warning("%d requests already wait for a thread (max_queue): answered 503",
                    server.active - server.capacity)
        body.close()
        conn.answer_and_close(http11.error_response(
            503, "too many requests waiting", retry_after=_RETRY_AFTER,
            head_only=request.method == "HEAD"))
        return
    handoff = Handoff(server.wakeups, server.config.send_buffer_size, conn.items_ready,
                      conn.handoff_lock)
    call = wsgi.new_call(conn.facts, request, body, size,
                         proxies=server.trusted if conn.proxied else None, app=server.app,
                         handoff=handoff, server=server,
                         keep_alive=request.keep_alive and not server.shutting_down)
    if conn.eof:
        call.disconnected.set()
    try:
        server.executor.run_soon(call)
    except RuntimeError:  # the pool is shutting down
        body.close()
        conn.answer_and_close(http11.error_response(
            503, "server is shutting down", head_only=request.method == "HEAD"))
        return
    server.active += 1
    server.requests += 1
    if server.requests == server.config.max_requests and server.on_max_requests is not None:
        server.on_max_requests()
    conn.handoff, conn.call = handoff, call
    if server.access:
        conn.started = time.perf_counter()
    conn.enter(State.APP)
    conn.deadline = conn.loop.time() + server.first_wait


async def first_output_late(conn: HTTPConnection) -> Callable[[], object] | None:
    """The first wait ran out: either no thread took the request up (503), or the
    application runs and may still have ``request_timeout`` to answer (else 504)."""
    handoff, request = conn.handoff, conn.request
    assert handoff is not None and request is not None
    server = conn.server
    config = server.config
    waited = server.first_wait
    if handoff.cancel_unstarted(ClientGone("no thread in time")):
        # it stays in the pool's queue, to be skipped there
        if server.access and conn.call is not None:
            conn.log_access(conn.call, "-", "503")
        conn.forget_request()
        server.release()
        log.warning("no thread became free within queue_timeout=%ss: answered 503",
                    config.queue_timeout)
        conn.transport.write(http11.error_response(
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
                items = await deadlines.within(conn, handoff.take(), timeout - waited)
            except TimeoutError:
                raise _RequestTimeout from None
    except _RequestTimeout:
        log.error("%s %s: no response after request_timeout=%ss; answered 504, the "
                  "application thread is abandoned", request.method, request.path,
                  config.request_timeout)
        if server.access and conn.call is not None:
            conn.log_access(conn.call, "-", "504")
        give_up(conn, ClientGone("request timeout"), abandon=True)
        conn.transport.write(http11.error_response(
            504, "the application took too long", head_only=request.method == "HEAD"))
        return None
    return partial(conn.write_items, items)


def give_up(conn: HTTPConnection, error: ClientGone, *, abandon: bool = False) -> None:
    """Stop following an application call that is still running (or still queued): its
    next write raises, and its slot is released once its thread has finished; with
    ``abandon``, its thread no longer counts as one of the pool's (it may be replaced)."""
    handoff, call = conn.handoff, conn.call
    if handoff is None:
        return
    assert call is not None
    conn.forget_request()
    server = conn.server
    call.disconnected.set()
    handoff.abort(error)
    if abandon:
        server.abandon()
        if handoff.detach(server.abandoned_done):
            server.abandoned_done()
    elif handoff.detach(server.release):
        server.release()
