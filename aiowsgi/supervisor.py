"""``--workers N``: N server processes on the listening sockets, kept alive.

The supervisor binds every socket itself, then starts each worker as a fresh Python
process running ``aiowsgi serve`` (:mod:`aiowsgi.supervised_worker`) that inherits them
(``fd://N``) and gets its options through ``AIOWSGI_*`` variables (written by
:func:`aiowsgi.environment.worker_environment`); no event loop, thread or application
exists in the supervisor, so nothing is forked in an odd state.  Each worker has a slot:
on Linux, a socket of its own per TCP address (SO_REUSEPORT, so that the kernel spreads
connections evenly: :func:`aiowsgi.sockets.worker_sockets`), which every later worker of
the slot inherits in turn; else sockets shared by all.  Because the sockets stay open in
the supervisor, a connection that arrives while workers come and go waits in the listen
queue instead of being refused, and none queued on a slot's socket is lost when its worker
stops: the slot's next worker takes it.

A worker tells the supervisor on a pipe when it serves, and when it stops accepting
(max_requests, a SIGTERM of its own): its successor starts at once, while it finishes what
it has.  Signals: SIGTERM/SIGINT drain every worker (a second one closes everything at
once); SIGHUP replaces the workers one by one, each new one serving before its old one
stops.  A worker that dies is restarted; one that keeps dying at start stops the supervisor.
Every process says what it does in lines that name it (``[supervisor 4242]``,
``[worker 4243]``: :func:`aiowsgi.accesslog.log_format`): the workers say the same things.

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
from .accesslog import counted
from .config import Config, ConfigError
from .sockets import places, remove_socket_files, socket_files, worker_sockets

log = logging.getLogger("aiowsgi.error")

_START_TIMEOUT = 60.0  # seconds a new worker has to start serving
_CRASH_WINDOW = 5.0  # a worker that dies sooner than this after starting "crashed"
_MAX_CRASHES = 5  # crashes in a row before the supervisor gives up
_STATS_TIMEOUT = 1.0  # seconds a worker has to report its counters to a metrics scrape


class Worker:
    def __init__(self, proc: subprocess.Popen[bytes], started: float,
                 stats: metrics.WorkerChannel | None, pipe: int) -> None:
        self.proc = proc
        self.started = started
        self.stats = stats
        self.pipe = pipe  # what it says: "1" it serves, "0" it stopped accepting (-1: closed)
        self.lock = threading.Lock()  # one stats query at a time; closing waits for it

    def stopped_accepting(self) -> bool:
        """Whether the worker said, since last asked, that it stopped accepting."""
        try:
            said = os.read(self.pipe, 64) if self.pipe >= 0 else b""
        except BlockingIOError:
            return False
        if not said:  # it is gone: its exit status tells the rest
            self._close_pipe()
        return b"0" in said

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
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.pipe >= 0:
            os.close(self.pipe)
            self.pipe = -1


class Supervisor:
    def __init__(self, argv: list[str], config: Config, environ: dict[str, str]) -> None:
        self.argv = argv  # the worker command, without options
        self.config = config
        # a socket per worker and place at most, a pipe and a stats socket per worker
        _room_for((len(places(config)) + 2) * config.workers + 64)
        self.slots = worker_sockets(config, config.workers)  # worker i's sockets: slots[i]
        self.sockets = list(dict.fromkeys(sock for slot in self.slots for sock in slot))
        self.socket_files = socket_files(config)  # removed when the supervisor exits
        for sock in self.sockets:
            sock.set_inheritable(True)
        self.envs = [environment.worker_environment(
            environ, config, [sock.fileno() for sock in slot]) for slot in self.slots]
        self.workers: list[Worker] = []  # the worker of each slot
        self.leaving: list[Worker] = []  # replaced, finishing what they have
        self.starting: Worker | None = None  # spawned, not serving yet
        self.stopping = 0  # the first signal received that asks to stop
        self.forced = False  # a second one came: the workers close everything at once
        self.news: list[str] = []  # what the signal handler has to say (see _report)
        self.reload = False
        self.crashes = 0
        self.restarts = 0
        self._watch_stop: threading.Event | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)

    def urls(self) -> list[str]:
        out = []
        for sock in self.slots[0]:
            name = sock.getsockname()
            out.append(f"unix:{name}" if sock.family == socket.AF_UNIX else
                       f"http://{'[' + name[0] + ']' if ':' in name[0] else name[0]}:{name[1]}")
        return out

    def spawn(self, slot: int) -> Worker | None:
        """Start a worker in ``slot`` and wait until it serves; None if it failed to."""
        ready_r, ready_w = os.pipe()
        env = {**self.envs[slot], environment.READY_FD: str(ready_w)}
        fds = [sock.fileno() for sock in self.slots[slot]] + [ready_w]
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
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        if theirs is not None:
            theirs.close()
        worker = self.starting = Worker(
            proc, time.monotonic(), metrics.WorkerChannel(ours) if ours is not None else None,
            ready_r)
        try:
            if self._serves(ready_r):
                worker.started = time.monotonic()
                os.set_blocking(ready_r, False)  # read again whenever the loop wakes up
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
        except BaseException:
            worker.close()
            raise
        finally:
            self.starting = None

    def _serves(self, ready_r: int) -> bool:
        """Wait until a new worker reports that it serves; False if it ends first, or takes
        longer than _START_TIMEOUT, or the supervisor is asked to stop meanwhile."""
        deadline = time.monotonic() + _START_TIMEOUT
        while not self.stopping:
            ready = _readable([ready_r, self._wake_r], deadline - time.monotonic())
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
                worker = self.spawn(len(self.workers))
                if worker is None:
                    if self.stopping:
                        break
                    self._stop(signal.SIGTERM)
                    return 1
                self.workers.append(worker)
            if not self.stopping:
                log.info("aiowsgi supervisor serving %s with %s", ", ".join(self.urls()),
                         counted(len(self.workers), "worker"))
            while not self.stopping:
                pipes = [worker.pipe for worker in self.workers if worker.pipe >= 0]
                _readable([self._wake_r, *pipes], 1.0)
                self._drain_wakeups()
                if self.stopping:
                    break
                if self.reload:
                    self.reload = False
                    self._replace_all()
                if not (self._succeed_the_stopped() and self._reap_and_restart()):
                    self._stop(signal.SIGTERM)
                    return 1
            self._stop(signal.SIGTERM)  # workers drain; a second signal sends SIGQUIT
            log.info("every worker has stopped")
            return 0
        finally:
            if stop_metrics is not None:
                stop_metrics()
            for worker in [*self.workers, *self.leaving]:
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
        """Act at once (the main thread may be waiting for a worker to end), and leave
        what to say to :meth:`_report`: a handler that writes to stderr may interrupt a
        write to it, which raises."""
        name = signal.Signals(signum).name
        if signum in (signal.SIGTERM, signal.SIGINT):
            if self.stopping:  # a second one: the workers close everything at once
                for worker in [*self.workers, *self.leaving, self.starting]:
                    if worker is not None and worker.proc.poll() is None:
                        worker.proc.send_signal(signal.SIGQUIT)
                if not self.forced:
                    self.forced = True
                    self.news.append(f"{name} received while stopping: the workers close "
                                     "every connection now")
            else:
                self.news.append(f"{name} received: stopping {{workers}} gracefully "
                                 "(a second SIGINT (Ctrl+C) or SIGTERM stops {them} at once)")
            self.stopping = self.stopping or signum
        elif signum == signal.SIGHUP and not self.stopping:
            self.reload = True
            self.news.append("SIGHUP received: reloading")

    def _report(self) -> None:
        """Log what the signal handler had to say."""
        while self.news:  # the workers it stops: those that are leaving stop already
            live = [worker for worker in [*self.workers, self.starting]
                    if worker is not None and worker.proc.poll() is None]
            log.info(self.news.pop(0).replace("{workers}", counted(len(live), "worker"))
                     .replace("{them}", "it" if len(live) == 1 else "them"))

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass
        self._report()

    def _succeed_the_stopped(self) -> bool:
        """Start the successor of every worker that said it stopped accepting, without
        waiting for it to finish what it has: the connections its slot's sockets receive
        meanwhile wait for the successor.  False if one cannot start."""
        for index, worker in enumerate(self.workers):
            if self.stopping or not worker.stopped_accepting():
                continue
            log.info("worker %d stopped accepting; starting its successor", worker.proc.pid)
            new = self.spawn(index)
            if new is None:
                return bool(self.stopping)  # _stop waits for the worker still in the slot
            self.workers[index] = new
            self._leave(worker)
            self.crashes = 0
            self.restarts += 1
        return True

    def _leave(self, worker: Worker) -> None:
        worker.close()
        self.leaving.append(worker)

    def _reap_and_restart(self) -> bool:
        for worker in list(self.leaving):
            code = worker.proc.poll()
            if code is not None:
                self.leaving.remove(worker)
                (log.info if code == 0 else log.warning)(
                    "worker %d has finished (status %s)", worker.proc.pid, code)
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
            new = self.spawn(index)
            if new is None:
                return bool(self.stopping)  # a start cut short by a stop is no failure
            self.workers[index] = new
            self.restarts += 1
        return True

    def _replace_all(self) -> None:
        count = len(self.workers)
        log.info("replacing the worker" if count == 1 else f"replacing {count} workers one "
                 "by one")
        for index, old in enumerate(list(self.workers)):
            new = self.spawn(index)
            if new is None:
                if not self.stopping:
                    log.error("a new worker failed to start; keeping the old ones")
                return
            self.workers[index] = new
            old.proc.send_signal(signal.SIGTERM)  # it drains while the next one starts
            self._leave(old)

    def _stop(self, signum: int) -> None:
        """Send ``signum`` to the workers and wait until they and the leaving ones (which
        drain already) have ended, saying meanwhile what signals come (each worker's end
        wakes the loop: SIGCHLD)."""
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signum)
        self._report()
        while any(worker.proc.poll() is None for worker in [*self.workers, *self.leaving]):
            _readable([self._wake_r], 1.0)
            self._drain_wakeups()


def supervise(argv: list[str], config: Config) -> int:
    """Run ``config.workers`` workers of ``argv`` until SIGTERM/SIGINT; the exit status."""
    if config.reload:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            raise ConfigError(
                "reload", "needs watchfiles: pip install 'aiowsgi-server[reload]'") from None
    supervisor = Supervisor(argv, config, dict(os.environ))
    if config.reload:
        supervisor.watch(list(config.reload_dir) or [os.getcwd()])
    return supervisor.run()


class SupervisorPipe:
    """In a worker, what it tells its supervisor (nothing, when it has none)."""

    def __init__(self) -> None:
        text = os.environ.pop(environment.READY_FD, "")
        self.fd = int(text) if text.isdigit() else -1
        if self.fd >= 0:
            with contextlib.suppress(OSError):  # not for the processes the app starts
                os.set_inheritable(self.fd, False)

    def serving(self) -> None:
        """This process serves now."""
        self._say(b"1")

    def stopped_accepting(self) -> None:
        """This process stopped accepting, and finishes what it has: the supervisor starts
        its successor at once (on the same sockets).  Said once; the pipe is closed."""
        if self.fd >= 0:
            self._say(b"0")
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def _say(self, message: bytes) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):  # the supervisor is gone
                os.write(self.fd, message)


def _readable(fds: list[int], timeout: float) -> list[int]:
    """Those of ``fds`` that can be read (or are closed) within ``timeout`` seconds; poll()
    rather than select(), which takes no descriptor past 1023 (many workers have more)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return [fd for fd, _ in poller.poll(max(0.0, timeout) * 1000)]


def _room_for(count: int) -> None:
    """Raise the open-files limit towards the hard one if ``count`` descriptors would not
    fit (the workers inherit it, and raise it further for their connections anyway)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (
                count if hard == resource.RLIM_INFINITY else min(count, hard), hard))


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
