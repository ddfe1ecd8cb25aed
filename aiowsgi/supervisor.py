"""``--workers N``: N server processes sharing the listening sockets, kept alive.

The supervisor binds every socket itself, then starts each worker as a fresh
``python -m aiowsgi serve`` process that inherits them (``fd://N``) and gets its
options through ``AIOWSGI_*`` variables; no event loop, thread or application exists in
the supervisor, so nothing is forked in an odd state.  Because the sockets stay open in
the supervisor, a connection that arrives while workers come and go waits in the listen
queue instead of being refused.

Signals: SIGTERM/SIGINT drain every worker (a second one closes everything at once);
SIGHUP replaces the workers one by one, each new one serving before its old one stops.
A worker that dies is restarted; one that keeps dying at start stops the supervisor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from . import metrics
from .config import Config, ConfigError
from .sockets import bind_sockets

log = logging.getLogger("aiowsgi.error")

READY_FD_ENV = "AIOWSGI_READY_FD"
SUPERVISED_ENV = "AIOWSGI_SUPERVISED"  # in a worker: signals come from the supervisor
_START_TIMEOUT = 60.0  # seconds a new worker has to start serving
_CRASH_WINDOW = 5.0  # a worker that dies sooner than this after starting "crashed"
_MAX_CRASHES = 5  # crashes in a row before the supervisor gives up
_STATS_TIMEOUT = 1.0  # seconds a worker has to report its counters to a metrics scrape


def _option_env(config: Config, sockets: list[socket.socket]) -> dict[str, str]:
    """``config`` as AIOWSGI_* variables for a worker: its own options, the inherited
    sockets, and one worker."""
    env = {}
    defaults = Config()
    for f in dataclasses.fields(Config):
        value: Any = getattr(config, f.name)
        if value == getattr(defaults, f.name):
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, tuple):
            value = ",".join(value)
        env["AIOWSGI_" + f.name.upper()] = str(value)
    for name in ("AIOWSGI_UDS", "AIOWSGI_FD", "AIOWSGI_HOST", "AIOWSGI_PORT"):
        env.pop(name, None)
    env["AIOWSGI_BIND"] = ",".join(f"fd://{sock.fileno()}" for sock in sockets)
    env["AIOWSGI_WORKERS"] = "1"
    env[SUPERVISED_ENV] = "1"
    env.pop("AIOWSGI_RELOAD", None)
    env.pop("AIOWSGI_RELOAD_DIR", None)
    env.pop("AIOWSGI_METRICS_BIND", None)  # the supervisor serves the workers' metrics
    return env


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
        for sock in self.sockets:
            sock.set_inheritable(True)
        self.env = {**environ, **_option_env(config, self.sockets)}
        self.workers: list[Worker] = []
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
        env = {**self.env, READY_FD_ENV: str(ready_w)}
        fds = [sock.fileno() for sock in self.sockets] + [ready_w]
        ours = theirs = None
        if self.config.metrics_bind:
            ours, theirs = socket.socketpair()
            env[metrics.STATS_FD_ENV] = str(theirs.fileno())
            fds.append(theirs.fileno())
        try:
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
        worker = Worker(proc, time.monotonic(),
                        metrics.WorkerChannel(ours) if ours is not None else None)
        try:
            ready, _, _ = select.select([ready_r], [], [], _START_TIMEOUT)
            ok = bool(ready) and os.read(ready_r, 1) == b"1"
        finally:
            os.close(ready_r)
        if not ok:
            log.error("worker %d did not start serving", proc.pid)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            worker.close()
            return None
        worker.started = time.monotonic()
        return worker

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
            for _ in range(self.config.workers):
                worker = self.spawn()
                if worker is None:
                    self._stop(signal.SIGTERM)
                    return 1
                self.workers.append(worker)
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
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _on_signal(self, signum: int, frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            if self.stopping:  # a second one: the workers close everything at once
                for worker in self.workers:
                    if worker.proc.poll() is None:
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
            if code is None:
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
                return False
            self.workers[index] = new
            self.restarts += 1
        return True

    def _replace_all(self) -> None:
        log.info("replacing %d worker(s) one by one", len(self.workers))
        for index, old in enumerate(list(self.workers)):
            new = self.spawn()
            if new is None:
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
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is not None and fd.isdigit():
        try:
            os.write(int(fd), b"1")
            os.close(int(fd))
        except OSError:
            pass


def worker_command(app: str) -> list[str]:
    return [sys.executable, "-m", "aiowsgi", "serve", app]
