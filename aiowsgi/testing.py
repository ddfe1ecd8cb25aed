"""Live servers for tests: a real aiowsgi server on a free port, cleanly stopped.

``live_server(app)`` is for unittest and scripts; the pytest fixtures in
:mod:`aiowsgi.pytest_plugin` are built on the same pieces.  :class:`LiveServer` runs the
server in a background thread with its own event loop, so tests without a loop (requests,
httpx, a browser) can use it.  :class:`AppErrors` turns an exception raised inside the
application into an exception in the test, not only a 500 on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .config import Config
from .loading import check_application
from .runner import loop_factory
from .server import Server
from .wsgi import WSGIApp

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AppErrors", "ClientFactory", "LiveServer", "LiveServerFactory", "ServerFactory",
           "live_server"]

# The types of the factory fixtures, for annotating tests.
ServerFactory = Callable[..., Awaitable[Server]]
ClientFactory = Callable[..., Awaitable["aiohttp.ClientSession"]]
LiveServerFactory = Callable[..., "LiveServer"]

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 60.0


class AppErrors(logging.Handler):
    """Collects the exceptions raised inside the servers it watches, while it is installed.

    ``served = errors.watch(app)`` is the application to give one server.  aiowsgi logs
    every application error to ``aiowsgi.error`` with the application its server was given
    as ``record.aiowsgi_app``; this handler keeps the errors of the servers given an
    application it handed out, so that a failing view fails the test with its own
    traceback, and an error belongs to the server that saw it, not to the application
    object, which other servers (a session-scoped one, say) may serve too.
    """

    def __init__(self, *, default: bool = True) -> None:
        super().__init__(logging.ERROR)
        self.default = default  # whether watch() watches when not told
        self.errors: list[BaseException] = []
        self._logger = logging.getLogger("aiowsgi.error")

    def watch(self, app: WSGIApp, raise_app_errors: bool | None = None) -> WSGIApp:
        """The application to give one server: ``app`` itself when ``raise_app_errors``
        (or the default) says not to collect, else a new object that calls ``app`` and
        whose errors this handler collects.  What cannot be a WSGI application (an ASGI
        one) is a TypeError here already, which names it rather than the new object."""
        watching = self.default if raise_app_errors is None else raise_app_errors
        if not watching or not callable(app):  # the server rejects what is not callable
            return app
        check_application(app)  # as the server would, naming the application, not ours
        return _WatchedApp(app, self)

    def emit(self, record: logging.LogRecord) -> None:
        app = getattr(record, "aiowsgi_app", None)
        if (type(app) is _WatchedApp and app._aiowsgi_errors is self
                and record.exc_info and record.exc_info[1] is not None):
            self.errors.append(record.exc_info[1])

    def install(self) -> None:
        self._logger.addHandler(self)

    def uninstall(self) -> None:
        self._logger.removeHandler(self)

    def reraise(self) -> None:
        """Raise the first collected error (noting how many more there were)."""
        if not self.errors:
            return
        first = self.errors[0]
        others = len(self.errors) - 1
        self.errors = []
        if others:
            first.add_note(f"(and {others} more application error(s) during the test)")
        first.add_note("raised inside the application served by aiowsgi during the test; "
                       "the client got a 500 or an aborted response")
        raise first


class _WatchedApp:
    """One server's handle on an application whose errors an :class:`AppErrors` collects.

    It calls the application and returns what it returns, untouched; other attributes are
    the application's.
    """

    __slots__ = ("__wrapped__", "_aiowsgi_errors")

    def __init__(self, app: WSGIApp, errors: AppErrors) -> None:
        self.__wrapped__ = app
        self._aiowsgi_errors = errors

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        __tracebackhide__ = True  # pytest shows the application's frames, not this one
        return self.__wrapped__(environ, start_response)

    def __getattr__(self, name: str) -> Any:
        if name in _WatchedApp.__slots__:  # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(self.__wrapped__, name)

    def __repr__(self) -> str:
        return f"<watched {self.__wrapped__!r}>"


class LiveServer:
    """An aiowsgi server running in a background thread on its own event loop.

    ::

        with LiveServer(app) as server:
            requests.get(server.url + "/")
    """

    def __init__(self, app: WSGIApp, **options: Any) -> None:
        options.setdefault("host", "127.0.0.1")
        options.setdefault("port", 0)
        # The event loop is the live server's own, so it takes the loop option: a Server
        # takes none, it runs on whichever loop starts it.
        self._loop_name = Config(loop=options.pop("loop", "auto")).loop
        self.server = Server(app, **options)  # validates the options here, not in the thread
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def app(self) -> WSGIApp:
        """The application served (not the handle :meth:`AppErrors.watch` made of it)."""
        app = self.server.app
        return app.__wrapped__ if type(app) is _WatchedApp else app

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def make_url(self, path: str = "/") -> str:
        return self.server.make_url(path)

    def start(self) -> LiveServer:
        """Start serving; returns when the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("live server already started")
        self._thread = threading.Thread(target=self._run, name="aiowsgi-live-server",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError("the live server did not start in time")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self) -> None:
        """Shut down gracefully and wait for the thread to end."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or not thread.is_alive():
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stop.set)
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError("the live server did not stop in time")

    def _run(self) -> None:
        factory = loop_factory(self._loop_name)
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.shutdown()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@contextlib.contextmanager
def live_server(app: WSGIApp, *, raise_app_errors: bool = True,
                **options: Any) -> Iterator[str]:
    """Serve ``app`` on a free port for the duration of a ``with`` block; yields its URL.

    An exception raised inside the app is re-raised when the block ends, unless
    ``raise_app_errors`` is false.  ``options`` are aiowsgi options (``threads=2``, ...).
    """
    errors = AppErrors(default=raise_app_errors)
    errors.install()
    try:
        with LiveServer(errors.watch(app), **options) as server:
            yield server.url
    finally:
        errors.uninstall()
    errors.reraise()
