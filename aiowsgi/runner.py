"""The process that serves: ``run()`` and what the command line shares with it.

:class:`~aiowsgi.server.Server` is embeddable and leaves the process alone; this module
owns what only one piece of code per process may own: the event loop (uvloop or
asyncio), the SIGINT/SIGTERM/SIGQUIT/SIGHUP handlers (put back afterwards), logging's
configuration, the allocator's thresholds, the metrics endpoint, systemd's socket
activation, and the end of the protocol with a ``--workers`` supervisor (telling it the
worker serves, then that it stopped accepting, answering its metrics queries, stopping when
it is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import logging.config
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from . import accesslog, allocator, environment, metrics
from .config import RUN_SCOPES, SERVER_SCOPES, Config, ConfigError, config_for, narrowed_to
from .loading import check_application
from .server import Server
from .supervisor import SupervisorPipe
from .tls import tls_context
from .wsgi import WSGIApp

log = logging.getLogger("aiowsgi.error")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop constructor for the ``loop`` option."""
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise ConfigError("loop", "uvloop is not installed "
                                  "(pip install 'aiowsgi-server[uvloop]')") from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def auto_loop() -> str:
    """The event loop ``--loop auto`` picks, as ``loop_factory`` does, and its version: what
    ``aiowsgi --version`` reports, so that a bug report says which loop served."""
    try:
        import uvloop
    except ImportError:
        return "asyncio (uvloop not installed)"
    return f"uvloop {getattr(uvloop, '__version__', '(version unknown)')}"


def check_options(config: Config) -> None:
    """Raise the ConfigError that run() would, for an option naming something this process
    cannot use (an event loop that is not installed, a TLS file that cannot be loaded),
    without starting anything: the command line checks before it imports the application
    or starts workers."""
    loop_factory(config.loop)
    tls_context(config)


def with_systemd_sockets(config: Config) -> Config:
    """``config`` listening on the sockets systemd passed, when no address was given."""
    if config.bind or config.uds or config.fd >= 0:
        return config
    activated = _systemd_sockets()
    return config.replace(bind=activated) if activated else config


def _systemd_sockets() -> tuple[str, ...]:
    """The sockets systemd passed (socket activation: LISTEN_FDS from fd 3 on), if any are
    meant for this process; the variables are removed so that children do not take them."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return ()
    count = os.environ.get("LISTEN_FDS", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if not count.isdigit():
        return ()
    return tuple(f"fd://{fd}" for fd in range(3, 3 + int(count)))


def configure_logging(level: str, log_config: str = "", role: str = "") -> None:
    """Apply ``log_config`` (JSON for dictConfig, else INI for fileConfig); without one,
    log aiowsgi's messages to stderr unless the program configured logging itself, with
    the process's ``role`` ("worker", "supervisor") and id in each line when it is one of
    several (:func:`aiowsgi.accesslog.log_format`)."""
    if log_config:
        try:
            if log_config.endswith(".json"):
                with open(log_config, encoding="utf-8") as file:
                    logging.config.dictConfig(json.load(file))
            else:
                logging.config.fileConfig(log_config, disable_existing_loggers=False)
        except Exception as exc:  # noqa: BLE001 - whatever the file gets wrong, it names it
            raise ConfigError("log_config", f"cannot use {log_config!r}: "
                              f"{type(exc).__name__}: {exc}") from None
        return
    logger = logging.getLogger("aiowsgi")
    logger.setLevel(level.upper())
    if not logger.handlers and not logging.getLogger().handlers:
        logger.addHandler(accesslog.DefaultHandler(role))


def supervised() -> bool:
    """Whether this process is a ``--workers`` (or ``--reload``) worker."""
    return os.environ.get(environment.SUPERVISED) == "1"


def run(app: WSGIApp, config: Config | None = None, **options: Any) -> None:
    """Serve ``app`` on a new event loop until SIGINT or SIGTERM, then shut down gracefully.

    A second signal during the graceful shutdown closes every connection at once; SIGHUP
    is ignored, with a warning (only a supervisor reloads).  It takes the server's
    options and the process's (``loop``, ``log_level``...), not the command line's
    (``workers``, ``reload``, ``reload_dir``): those are a TypeError, and so is an
    application that cannot be a WSGI one (an ASGI application).
    """
    config = with_systemd_sockets(config_for("run()", RUN_SCOPES, config, options))
    check_application(app)
    factory = loop_factory(config.loop)
    configure_logging(config.log_level, config.log_config, "worker" if supervised() else "")
    allocator.tune(config.malloc_trim_threshold)
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    switch_interval = sys.getswitchinterval()
    if config.switch_interval:
        sys.setswitchinterval(config.switch_interval)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_serve_until_signalled(app, config))
    finally:
        sys.setswitchinterval(switch_interval)
        # only once the loop is closed: until then a late stop signal (the supervisor's
        # SIGTERM after the group's) must not run a handler that raises inside the loop
        for signum, handler in previous.items():
            restore_signal_handler(signum, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
_SIGNALS = (*_STOP_SIGNALS, signal.SIGHUP)  # what run() handles while it serves
_AGAIN = "a second SIGINT (Ctrl+C) or SIGTERM stops at once"


def _stop_under_way(signum: int, frame: object) -> None:
    """A signal while the loop winds down after a stop: dropped (see run())."""


class _Signals:
    """What each signal does to the serving process, said once in the log.

    Alone, SIGINT, SIGTERM and SIGQUIT start a graceful shutdown and a second one closes
    every connection at once.  A worker leaves SIGINT to its supervisor (a terminal's
    Ctrl+C reaches the whole group), drains on the first SIGTERM only (systemd and the
    supervisor may both send one), and takes SIGQUIT for the supervisor's "close
    everything now".  SIGHUP is ignored with a log line: a hangup's default action, an
    exit, would drop every request in flight, and only a supervisor can reload.
    """

    def __init__(self, server: Server, config: Config, supervised: bool) -> None:
        self.server = server
        self.config = config
        self.supervised = supervised
        self.stopping = False
        self.forced = False
        self.hurry = asyncio.Event()  # ends a shutdown_delay early
        self.tasks: set[asyncio.Future[None]] = set()

    def received(self, signum: signal.Signals) -> None:
        if signum == signal.SIGHUP:
            self._hangup()
        elif not self.supervised:
            (self._force if self.stopping else self._begin)(signum)
        elif signum == signal.SIGQUIT:
            self._force(signum)
        elif signum == signal.SIGTERM and not self.stopping:
            self._begin(signum)
        # else, supervised: a SIGINT, or a SIGTERM after the first: the supervisor decides

    def _begin(self, signum: signal.Signals) -> None:
        self.stopping = True
        self.tasks.add(asyncio.ensure_future(self._stop(signum)))

    async def _stop(self, signum: signal.Signals) -> None:
        again = "" if self.supervised else f" ({_AGAIN})"  # a worker's: its supervisor's
        delay = self.config.shutdown_delay
        if delay:
            log.info("%s received: still serving for %gs (shutdown_delay), then shutting "
                     "down gracefully%s", signum.name, delay, again)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.hurry.wait(), delay)
        else:
            log.info("%s received: shutting down gracefully%s", signum.name, again)
        await self.server.shutdown()

    def _force(self, signum: signal.Signals) -> None:
        if self.forced:
            return
        self.forced = True
        if self.stopping:
            log.info("%s received while shutting down: closing every connection now",
                     signum.name)
        else:
            log.info("%s received: closing every connection now", signum.name)
            self.stopping = True
            self.tasks.add(asyncio.ensure_future(self.server.shutdown()))
        self.hurry.set()
        self.server.abort()

    def _hangup(self) -> None:
        if self.supervised:
            log.info("SIGHUP ignored: the supervisor (pid %d) replaces the workers when it "
                     "gets one", os.getppid())
        else:
            log.warning("SIGHUP ignored, still serving: reloading needs --workers or "
                        "--reload")


async def _serve_until_signalled(app: WSGIApp, config: Config) -> None:
    loop = asyncio.get_running_loop()
    server = Server(app, narrowed_to(config, SERVER_SCOPES))  # the rest is ours
    is_worker = supervised()
    signals = _Signals(server, config, is_worker)
    handled: list[signal.Signals] = []

    async def watch_supervisor(parent: int) -> None:
        # a worker whose supervisor died (SIGKILL, a crash) must not live on as an orphan
        while os.getppid() == parent:
            await asyncio.sleep(1.0)
        log.warning("the supervisor is gone: shutting down")
        await server.shutdown()

    if threading.current_thread() is threading.main_thread():
        for signum in _SIGNALS:
            loop.add_signal_handler(signum, signals.received, signum)
            handled.append(signum)
    stop_metrics = stop_answering = None
    to_supervisor = SupervisorPipe()
    try:
        async with server:
            if config.metrics_bind:
                stop_metrics = metrics.start(config.metrics_bind,
                                             lambda: [({}, server.stats())])
                log.info("metrics at http://%s/metrics", config.metrics_bind)
            stats_fd = os.environ.pop(environment.STATS_FD, "")
            if is_worker and stats_fd.isdigit():
                stop_answering = metrics.answer_queries(loop, int(stats_fd), server.stats)
            log.info("aiowsgi serving %s (%s loop, %s)", ", ".join(server.urls),
                     _loop_name(loop), accesslog.counted(config.threads, "thread"))
            to_supervisor.serving()
            if is_worker:
                signals.tasks.add(asyncio.ensure_future(watch_supervisor(os.getppid())))
            await server.serve_forever()  # returns once the server stops accepting
            to_supervisor.stopped_accepting()
        log.info("shutdown complete")
    finally:
        to_supervisor.stopped_accepting()
        if stop_metrics is not None:
            await asyncio.to_thread(stop_metrics)
        if stop_answering is not None:
            stop_answering()
        for signum in handled:
            loop.remove_signal_handler(signum)
            restore_signal_handler(signum, _stop_under_way)


def restore_signal_handler(signum: int, handler: Any) -> None:
    """Put ``handler`` back for ``signum`` at the end of a stop.

    A stop signal that arrives while a handler is being swapped (a second SIGTERM, sent by
    the supervisor to a worker that got the group's own) is reported by ``signal.signal``
    itself: OSError "ignored due to race condition" when no Python handler was in place,
    or whatever the pending handler raises.  The stop is under way already, so it is
    dropped, and the handler is put back all the same."""
    for _ in range(3):
        try:
            signal.signal(signum, handler)
            return
        except (OSError, KeyboardInterrupt, StopSignal):
            pass
    signal.signal(signum, handler)


class StopSignal(BaseException):
    """SIGTERM or SIGINT raised as an exception, where a stop must interrupt whatever runs
    (the command line's start-up, before the server's own handlers are installed)."""


def _loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
