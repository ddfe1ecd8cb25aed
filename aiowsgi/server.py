"""Listening sockets, the thread pool and the lifecycle: start, serve, shut down gracefully.

``Server`` is the embeddable piece (an async context manager); ``serve()`` runs one until
its task is cancelled.  Neither touches what belongs to the process (signal handlers,
logging, the event loop, the allocator): :mod:`aiowsgi.runner` owns those for ``run()``
and the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Any

from . import deadlines
from .accesslog import counted
from .config import SERVER_SCOPES, Config, ConfigError, config_for
from .connection import HTTPConnection
from .handoff import resolve
from .loading import check_application
from .pool import WorkerPool
from .serverstate import ServerState
from .sockets import SocketFile, bind_sockets, remove_socket_files, socket_files
from .tls import tls_context
from .wsgi import WSGIApp

log = logging.getLogger("aiowsgi.error")


class Server:
    """An aiowsgi server for one WSGI application.

    ::

        async with Server(app, port=0) as server:
            print(server.url)
            await server.serve_forever()

    It takes the server's options only: one that belongs to the process (``loop``,
    ``log_level``...) or to the command line (``workers``...) is a TypeError that says
    so, rather than a setting without effect.
    """

    def __init__(self, app: WSGIApp, config: Config | None = None, **options: Any) -> None:
        if not callable(app):
            raise TypeError(f"the WSGI application must be callable, got {app!r}")
        check_application(app)
        self.app = app
        self.config = config_for("Server()", SERVER_SCOPES, config, options)
        self._servers: list[asyncio.Server] = []
        self._socket_files: list[SocketFile] = []  # Unix socket files bound here
        self._started = False
        self._state: ServerState | None = None
        self._executor: WorkerPool | None = None
        self._io: WorkerPool | None = None
        self._timeouts: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._abort_now: asyncio.Event | None = None
        self._shutdown_task: asyncio.Task[None] | None = None
        self._retiring: asyncio.Future[None] | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting; the addresses are known when this returns."""
        if self._started:
            raise RuntimeError("server already started")
        self._started = True
        config = self.config
        self._stopping = asyncio.Event()
        self._abort_now = asyncio.Event()
        self._executor = WorkerPool(config.threads, "aiowsgi", prestart=True,
                                    sched_batch=config.sched_batch)
        self._io = WorkerPool(1, "aiowsgi-io", prestart=True, sched_batch=config.sched_batch)
        state = self._state = ServerState(self.app, config, self._executor, self._io)

        loop = asyncio.get_running_loop()
        try:
            tls = tls_context(config)
        except ConfigError:
            self._executor.shutdown(wait=False)
            self._io.shutdown(wait=False)
            await self._close_access_log(0.0)
            raise

        def new_protocol() -> HTTPConnection:
            return HTTPConnection(state)

        try:
            sockets = bind_sockets(config)
            self._socket_files = socket_files(config)
            for sock in sockets:
                if sock.family == socket.AF_UNIX:
                    server = await _unix_server(loop, new_protocol, sock, tls)
                else:
                    server = await loop.create_server(new_protocol, sock=sock, ssl=tls)
                self._servers.append(server)
        except BaseException:
            for server in self._servers:
                server.close()
            self._servers.clear()
            remove_socket_files(self._socket_files)
            self._executor.shutdown(wait=False)
            self._io.shutdown(wait=False)
            await self._close_access_log(0.0)
            raise
        state.max_connections = _connections_allowed(config.max_connections)
        self._timeouts = asyncio.ensure_future(
            deadlines.sweep(lambda: state.connections, state.tick))

        def retire() -> None:
            log.info("max_requests=%d reached: shutting down gracefully", config.max_requests)
            state.shutting_down = True  # at once: this very response says Connection: close
            self._retiring = asyncio.ensure_future(self.shutdown())

        state.on_max_requests = retire
        log.debug("listening on %s", ", ".join(self.urls))

    def stats(self) -> dict[str, int]:
        """Live counters, for monitoring and tests."""
        state, pool = self._state, self._executor
        if state is None or pool is None:
            return {}
        return {
            "connections": len(state.connections),
            "requests_running": min(state.active, pool.busy),
            "requests_queued": max(0, state.active - pool.busy),
            "threads": pool.threads,
            "threads_busy": pool.busy,
            "threads_abandoned": state.abandoned,
            "body_memory": state.body_memory,
            "connections_refused": state.refused,
            "requests_total": state.requests,
            "access_log_dropped": state.access.dropped if state.access is not None else 0,
        }

    async def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` is called (or the calling task is cancelled)."""
        if self._stopping is None:
            await self.start()
        assert self._stopping is not None
        await self._stopping.wait()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting, close idle connections, let requests in flight finish.

        After ``timeout`` (default: the ``graceful_timeout`` option) the connections
        still open are closed.  Safe to call more than once.
        """
        if not self._servers:
            return
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._shutdown(timeout))
        await asyncio.shield(self._shutdown_task)

    @property
    def is_serving(self) -> bool:
        """Started and not shutting down."""
        return self._stopping is not None and not self._stopping.is_set()

    def abort(self) -> None:
        """Make a shutdown in progress close every connection now."""
        if self._abort_now is not None:
            self._abort_now.set()

    async def _shutdown(self, timeout: float | None) -> None:
        assert self._servers and self._state is not None
        assert self._stopping is not None and self._abort_now is not None
        state = self._state
        state.shutting_down = True
        self._stopping.set()
        loop = asyncio.get_running_loop()
        grace = self.config.graceful_timeout if timeout is None else timeout
        deadline = loop.time() + grace
        aborted: asyncio.Future[Any] = asyncio.ensure_future(self._abort_now.wait())
        # Nothing accepted is lost.  asyncio makes the connection of a socket it accepted in
        # a task that starts a loop turn later, and that fails (the socket is dropped) if
        # the server is closed by then (CPython gh-109564): so it stops accepting first,
        # and the server is closed a turn later.  Then the shutdown waits until every
        # connection accepted is made: a turn or two, on either loop; a TLS one only after
        # its handshake, which may never end, so not those.
        for sock in self.sockets:
            loop.remove_reader(sock.fileno())  # uvloop's servers are no readers: a no-op
        await asyncio.sleep(0)
        for server in self._servers:
            server.close()
        if state.unmade and not self.config.ssl_certfile:
            state.all_made = loop.create_future()
            await asyncio.wait({state.all_made, aborted}, timeout=deadline - loop.time(),
                               return_when=asyncio.FIRST_COMPLETED)
        busy = 0
        for conn in list(state.connections):
            if conn.closable_when_idle:
                conn.transport.close()
            else:
                busy += 1
        _log_drain_start(busy, len(state.connections), grace)
        pending = {conn.closed for conn in state.connections}  # the closing ones too
        started = loop.time()
        while pending and not aborted.done() and loop.time() < deadline:
            await asyncio.wait(pending | {aborted}, timeout=deadline - loop.time(),
                               return_when=asyncio.FIRST_COMPLETED)
            # made since (a TLS handshake that ended) or not: every one open counts
            pending = {conn.closed for conn in state.connections if not conn.closed.done()}
        aborted.cancel()
        forced = self._abort_now.is_set()  # a second signal, say
        if busy:
            cut = sum(not conn.closed.done() and not conn.closable_when_idle
                      for conn in state.connections)
            _log_drain_end(cut, forced, grace, loop.time() - started)
        if pending:
            for conn in list(state.connections):
                conn.abort()
            await asyncio.wait(pending)
        for server in self._servers:
            await server.wait_closed()
        remove_socket_files(self._socket_files)
        assert self._timeouts is not None and self._executor is not None
        self._timeouts.cancel()
        await asyncio.gather(self._timeouts, return_exceptions=True)
        await self._stop_threads(deadline)
        left = 0.0 if self._abort_now.is_set() else max(deadline - loop.time(), 0.0)
        await self._close_access_log(left + _THREAD_EXIT_GRACE)

    async def _close_access_log(self, timeout: float) -> None:
        if self._state is not None and self._state.access is not None:
            await self._state.access.close(timeout)

    async def _stop_threads(self, deadline: float) -> None:
        """Let the pool's threads exit; leave behind (as daemons) only those still
        running an application call when the graceful deadline has passed."""
        assert self._executor is not None and self._abort_now is not None
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()

        def on_stopped() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(resolve, stopped)

        assert self._io is not None
        self._io.shutdown(wait=False)
        pool = self._executor
        pool.shutdown(wait=False, cancel_futures=True, on_stopped=on_stopped)
        if not self._abort_now.is_set():
            try:
                await asyncio.wait_for(asyncio.shield(stopped),
                                       max(deadline - loop.time(), 0.0) + _THREAD_EXIT_GRACE)
            except TimeoutError:
                log.warning("%s still busy after shutdown; left running",
                            counted(pool.busy, "application thread"))
            else:
                # Every thread has run its last line of Python: joining takes no time.
                pool.join(_THREAD_EXIT_GRACE)
        self._io.join(_THREAD_EXIT_GRACE)  # its last write was awaited: it is idle

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.shutdown()

    # -- where it listens -------------------------------------------------------------

    @property
    def sockets(self) -> list[socket.socket]:
        return [sock for server in self._servers for sock in server.sockets]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every listening TCP socket."""
        return [tuple(s.getsockname()[:2]) for s in self.sockets
                if s.family in (socket.AF_INET, socket.AF_INET6)]

    @property
    def urls(self) -> list[str]:
        """Where the server listens: ``http://host:port``, or ``unix:/path``."""
        urls = []
        for sock in self.sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                host, port = sock.getsockname()[:2]
                urls.append(_url(host, port, self._scheme))
            else:
                urls.append(f"unix:{sock.getsockname()}")
        return urls

    @property
    def _scheme(self) -> str:
        return "https" if self.config.ssl_certfile else "http"

    @property
    def host(self) -> str:
        return self._first()[0]

    @property
    def port(self) -> int:
        return self._first()[1]

    @property
    def url(self) -> str:
        """The base URL of the first listening socket, e.g. ``http://127.0.0.1:8000``."""
        return _url(*self._first(), self._scheme)

    def make_url(self, path: str = "/") -> str:
        """An absolute URL on this server: ``make_url("/users?page=2")``."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        return self.url + path

    def _first(self) -> tuple[str, int]:
        addresses = self.addresses
        if not addresses:
            raise RuntimeError("the server is not listening; await start() first")
        return addresses[0]


_DEFAULT_MAX_CONNECTIONS = Config().max_connections
_FD_RESERVE = 64  # descriptors kept for listening sockets, spooled bodies, files sent


def _connections_allowed(wanted: int) -> int:
    """``wanted``, or fewer if the open-files limit cannot be raised far enough.

    Running out of descriptors makes ``accept()`` fail in a loop; a connection limit that
    fits answers 503 instead.  The soft limit is raised towards the hard one if needed.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + _FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
        if soft < needed:
            allowed = max(1, soft - _FD_RESERVE)
            # only worth a warning when the operator asked for more than the default
            level = logging.DEBUG if wanted == _DEFAULT_MAX_CONNECTIONS else logging.WARNING
            log.log(level, "the open-files limit (%d) allows %d connections, fewer than "
                    "max_connections=%d", soft, allowed, wanted)
            return allowed
    return wanted


_THREAD_EXIT_GRACE = 1.0  # seconds idle threads get to notice the stop, past any deadline


def _log_drain_start(busy: int, opened: int, grace: float) -> None:
    """What a shutdown waits for: the connections still busy (each with a request under
    way: read, run or written), of all those open when it began (the idle ones are closed
    at once)."""
    if busy:
        log.info("draining: %s in flight, %s open; waiting up to %gs for %s to finish",
                 counted(busy, "request"), counted(opened, "connection"), grace,
                 "it" if busy == 1 else "them")
    else:
        log.info("draining: 0 requests in flight, %s open", counted(opened, "connection"))


def _log_drain_end(busy: int, forced: bool, grace: float, took: float) -> None:
    """How a drain that had something to wait for ended: every request finished, or
    ``busy`` ones are cut off (at the graceful timeout, or at once when ``forced``)."""
    if not busy:
        log.info("drained in %.2fs: every request in flight finished", took)
    elif forced:
        log.warning("stopping at once: cutting off %s still in flight",
                    counted(busy, "request"))
    else:
        log.warning("graceful timeout (%gs) reached: cutting off %s still in flight",
                    grace, counted(busy, "request"))


def _url(host: str, port: int, scheme: str = "http") -> str:
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


async def serve(app: WSGIApp, config: Config | None = None, **options: Any) -> None:
    """Serve ``app`` until the calling task is cancelled, then shut down gracefully.

    Installs no signal handlers: the program that embeds the server owns them.
    """
    config = config_for("serve()", SERVER_SCOPES, config, options)
    async with Server(app, config) as server:
        await server.serve_forever()


async def _unix_server(loop: asyncio.AbstractEventLoop,
                       new_protocol: Callable[[], HTTPConnection], sock: socket.socket,
                       tls: ssl.SSLContext | None) -> asyncio.Server:
    """A server on a listening Unix socket that leaves its file alone when closed: the
    file is removed by whoever bound it (see ``sockets.socket_files``), and never by a
    worker that inherited it.  Loops before Python 3.13 know no ``cleanup_socket``."""
    try:
        return await loop.create_unix_server(  # type: ignore[call-arg,unused-ignore]
            new_protocol, sock=sock, ssl=tls, cleanup_socket=False)
    except TypeError:
        return await loop.create_unix_server(new_protocol, sock=sock, ssl=tls)
