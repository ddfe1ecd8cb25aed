"""``--workers N``: N server processes sharing the listening sockets, kept alive.

The supervisor binds every socket itself, then starts each worker as a fresh Python
process running ``aiowsgi serve`` (:mod:`aiowsgi.supervised_worker`) that inherits them
(``fd://N``) and gets its options through ``AIOWSGI_*`` variables (written by
:func:`aiowsgi.environment.worker_environment`); no event loop, thread or application
exists in the supervisor, so nothing is forked in an odd state.  Because the
sockets stay open in the supervisor, a connection that arrives while workers come and go
waits in the listen queue instead of being refused.

Signals: SIGTERM/SIGINT drain every worker (a second one closes everything at once);
SIGHUP replaces the workers one by one, each new one serving before its old one stops.
A worker that dies is restarted; one that keeps dying at start stops the supervisor.

A stop signal may reach the whole process group (a terminal's Ctrl-C, an orchestrator) at
any moment, workers still starting included.  A worker ignores SIGINT from its first
instruction on, the supervisor decides; SIGTERM kills a worker that has no handlers yet
(it is starting Python or importing the application) and drains one that has.  The
supervisor stops waiting for a worker to start as soon as it is asked to stop, stops that
worker too, and exits 0: a worker that ends while the supervisor stops is no failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

from . import environment, metrics
from .config import Config, ConfigError
from .sockets import bind_sockets, remove_socket_files, socket_files

log = logging.getLogger("aiowsgi.error")

_START_TIMEOUT = 60.0  # seconds a new worker has to start serving
_CRASH_WINDOW = 5.0  # a worker that dies sooner than this after starting "crashed"
_MAX_CRASHES = 5  # crashes in a row before the supervisor gives up
_STATS_TIMEOUT = 1.0  # seconds a worker has to report its counters to a metrics scrape


class Worker:
    def __init__(self, proc: subprocess.Popen[bytes], started: float,
                 stats: metrics.WorkerChannel | None) -> None:
        self.proc = proc
        self.started = started
        self.stats = stats
        self.lock = threading.Lock()  # one stats query at a time; closing waits for it

    def counters(self) -> dict[str, int] | None:
        with self.lock:
            if self.stats is None or self.proc.poll() is not None:
                return None
            return self.stats.query(_STATS_TIMEOUT)

    def close(self) -> None:
        with self.lock:
            if self.stats is not None:
                self.stats.close()
                self.stats = None


class Supervisor:
    def __init__(self, argv: list[str], config: Config, environ: dict[str, str]) -> None:
        self.argv = argv  # the worker command, without options
        self.config = config
        self.sockets = bind_sockets(config)
        self.socket_files = socket_files(config)  # removed when the supervisor exits
        for sock in self.sockets:
            sock.set_inheritable(True)
        self.env = environment.worker_environment(
            environ, config, [sock.fileno() for sock in self.sockets])
        self.workers: list[Worker] = []
        self.starting: Worker | None = None  # spawned, not serving yet
        self.stopping = 0  # signals received that ask to stop
        self.reload = False
        self.crashes = 0
        self.restarts = 0
        self._watch_stop: threading.Event | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)

    def urls(self) -> list[str]:
        out = []
        for sock in self.sockets:
            name = sock.getsockname()
            out.append(f"unix:{name}" if sock.family == socket.AF_UNIX else
                       f"http://{'[' + name[0] + ']' if ':' in name[0] else name[0]}:{name[1]}")
        return out

    def spawn(self) -> Worker | None:
        """Start a worker and wait until it serves; None if it failed to."""
        ready_r, ready_w = os.pipe()
        env = {**self.env, environment.READY_FD: str(ready_w)}
        fds = [sock.fileno() for sock in self.sockets] + [ready_w]
        ours = theirs = None
        if self.config.metrics_bind:
            ours, theirs = socket.socketpair()
            env[environment.STATS_FD] = str(theirs.fileno())
            fds.append(theirs.fileno())
        try:
            with _sigint_blocked():  # until the worker ignores it: see supervised_worker
                proc = subprocess.Popen(self.argv, env=env, pass_fds=fds)
        except BaseException:
            for sock in (ours, theirs):
                if sock is not None:
                    sock.close()
            raise
        finally:
            os.close(ready_w)
        if theirs is not None:
            theirs.close()
        worker = self.starting = Worker(
            proc, time.monotonic(), metrics.WorkerChannel(ours) if ours is not None else None)
        try:
            if self._serves(ready_r):
                worker.started = time.monotonic()
                return worker
            # It exited, timed out, or the supervisor was asked to stop.  Calling poll()
            # runs the handler of a stop signal that is still pending: one sent to the
            # whole group reached the supervisor before it ended the worker.
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if self.stopping else signal.SIGKILL)
            proc.wait()  # a second stop signal sends SIGQUIT
            worker.close()
            if not self.stopping:
                log.error("worker %d did not start serving", proc.pid)
            return None
        finally:
            os.close(ready_r)
            self.starting = None

    def _serves(self, ready_r: int) -> bool:
        """Wait until a new worker reports that it serves; False if it ends first, or takes
        longer than _START_TIMEOUT, or the supervisor is asked to stop meanwhile."""
        deadline = time.monotonic() + _START_TIMEOUT
        while not self.stopping:
            ready, _, _ = select.select([ready_r, self._wake_r], [], [],
                                        max(0.0, deadline - time.monotonic()))
            if ready_r in ready:
                return os.read(ready_r, 1) == b"1"
            if not ready:
                return False
            self._drain_wakeups()  # a signal: its handler has run once this returns
        return False

    def samples(self) -> metrics.Samples:
        """Every serving worker's counters, labelled with its slot, for --metrics-bind."""
        workers = list(self.workers)
        out: metrics.Samples = [({}, {"workers": len(workers),
                                      "worker_restarts_total": self.restarts})]
        for slot, worker in enumerate(workers):
            counters = worker.counters()
            if counters:
                out.append(({"worker": str(slot)}, counters))
        return out

    def watch(self, dirs: list[str]) -> None:
        """--reload: replace the workers whenever a Python file under ``dirs`` changes."""
        import watchfiles

        self._watch_stop = threading.Event()

        def changes() -> None:
            for changed in watchfiles.watch(*dirs, watch_filter=watchfiles.PythonFilter(),
                                            stop_event=self._watch_stop):
                names = ", ".join(sorted(os.path.relpath(path) for _, path in changed)[:3])
                log.info("%s changed: reloading", names)
                self.reload = True
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"r")

        threading.Thread(target=changes, name="aiowsgi-reload", daemon=True).start()

    def run(self) -> int:
        signal.set_wakeup_fd(self._wake_w)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)}
        stop_metrics = None
        try:
            if self.config.metrics_bind:
                stop_metrics = metrics.start(self.config.metrics_bind, self.samples)
                log.info("metrics of every worker at http://%s/metrics",
                         self.config.metrics_bind)
            while len(self.workers) < self.config.workers and not self.stopping:
                worker = self.spawn()
                if worker is None:
                    if self.stopping:
                        break
                    self._stop(signal.SIGTERM)
                    return 1
                self.workers.append(worker)
            if not self.stopping:
                log.info("aiowsgi supervisor (pid %d) serving %s with %d workers", os.getpid(),
                         ", ".join(self.urls()), len(self.workers))
            while not self.stopping:
                select.select([self._wake_r], [], [], 1.0)
                self._drain_wakeups()
                if self.stopping:
                    break
                if self.reload:
                    self.reload = False
                    self._replace_all()
                if not self._reap_and_restart():
                    self._stop(signal.SIGTERM)
                    return 1
            self._stop(signal.SIGTERM)  # workers drain; a second signal sends SIGQUIT
            log.info("supervisor: every worker has stopped")
            return 0
        finally:
            if stop_metrics is not None:
                stop_metrics()
            for worker in self.workers:
                worker.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(-1)
            if self._watch_stop is not None:
                self._watch_stop.set()
            for sock in self.sockets:
                sock.close()
            remove_socket_files(self.socket_files)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _on_signal(self, signum: int, frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            if self.stopping:  # a second one: the workers close everything at once
                for worker in [*self.workers, self.starting]:
                    if worker is not None and worker.proc.poll() is None:
                        worker.proc.send_signal(signal.SIGQUIT)
            self.stopping = self.stopping or signum
        elif signum == signal.SIGHUP:
            self.reload = True

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _reap_and_restart(self) -> bool:
        for index, worker in enumerate(self.workers):
            code = worker.proc.poll()
            if code is None or self.stopping:  # _stop waits for what is left
                continue
            lived = time.monotonic() - worker.started
            (log.info if code == 0 else log.warning)(
                "worker %d exited with status %s; starting another", worker.proc.pid, code)
            crashed = code != 0 and lived < _CRASH_WINDOW  # max_requests exits with 0
            self.crashes = self.crashes + 1 if crashed else 0
            if self.crashes >= _MAX_CRASHES:
                log.error("workers keep dying at start; giving up")
                return False
            worker.close()
            new = self.spawn()
            if new is None:
                return bool(self.stopping)  # a start cut short by a stop is no failure
            self.workers[index] = new
            self.restarts += 1
        return True

    def _replace_all(self) -> None:
        log.info("replacing %d worker(s) one by one", len(self.workers))
        for index, old in enumerate(list(self.workers)):
            new = self.spawn()
            if new is None:
                if not self.stopping:
                    log.error("a new worker failed to start; keeping the old ones")
                return
            self.workers[index] = new
            old.proc.send_signal(signal.SIGTERM)
            old.proc.wait()
            old.close()

    def _stop(self, signum: int) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signum)
        for worker in self.workers:
            worker.proc.wait()


def supervise(argv: list[str], config: Config) -> int:
    """Run ``config.workers`` workers of ``argv`` until SIGTERM/SIGINT; the exit status."""
    if config.reload:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            raise ConfigError("reload", "needs watchfiles: pip install 'aiowsgi[reload]'") from None
    supervisor = Supervisor(argv, config, dict(os.environ))
    if config.reload:
        supervisor.watch(list(config.reload_dir) or [os.getcwd()])
    return supervisor.run()


def signal_ready() -> None:
    """In a worker: tell the supervisor that this process serves now."""
    fd = os.environ.pop(environment.READY_FD, None)
    if fd is not None and fd.isdigit():
        try:
            os.write(int(fd), b"1")
            os.close(int(fd))
        except OSError:
            pass


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT held back in this thread, and so in a process started meanwhile."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def worker_command(app: str) -> list[str]:
    """The command that starts a worker serving ``app``: see :mod:`aiowsgi.supervised_worker`."""
    return [sys.executable, "-c", "from aiowsgi.supervised_worker import main; main()",
            "serve", app]
