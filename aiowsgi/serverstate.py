"""What every connection of one server shares: the application, the options, the pools,
and the counts that admission decides by (:mod:`aiowsgi.admission`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from . import accesslog, deadlines
from .handoff import Wakeups
from .pool import WorkerPool
from .proxy import TrustedProxies

if TYPE_CHECKING:
    from .config import Config
    from .wsgi import WSGIApp

log = logging.getLogger("aiowsgi.error")


class OpenConnection(deadlines.Expiring, Protocol):
    """A connection, as its server sees it: the sweep expires it, a shutdown closes it."""

    transport: asyncio.Transport
    closed: asyncio.Future[None]  # done once it is closed

    @property
    def closable_when_idle(self) -> bool: ...

    def abort(self) -> None: ...


class ServerState:
    """What every connection of one server shares, including the admission of requests
    to the thread pool: ``capacity`` threads run application calls, and at most
    ``max_queue`` more wait in the pool's FIFO queue."""

    __slots__ = (
        "abandoned",
        "access",
        "active",
        "admit_limit",
        "all_made",
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
        "unmade",
        "wakeups",
    )

    def __init__(self, app: WSGIApp, config: Config, executor: WorkerPool,
                 io: WorkerPool) -> None:
        self.app = app
        self.wakeups = Wakeups(asyncio.get_running_loop())
        self.config = config
        self.executor = executor  # runs the application
        self.io = io  # file I/O for request bodies and the sendfile fallback
        self.connections: set[OpenConnection] = set()
        # connections accepted whose protocol is not made yet (asyncio makes it a loop turn
        # later; TLS, after the handshake), and what a shutdown waits on for them
        self.unmade = 0
        self.all_made: asyncio.Future[None] | None = None
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
        self.access = accesslog.open_access_log(config.access_log, config.access_log_format,
                                                config.access_log_buffer)
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
