"""``aiowsgi serve`` in a subprocess, for tests of signals, workers and the command line.

:class:`ServeProcess` is a server that runs until the test stops it; :func:`run_aiowsgi`
is a command expected to end by itself (``--version``, a refused configuration).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from .waiting import SAFETY, wait_for

__all__ = ["AIOWSGI", "PID_APP", "ROOT", "SAFETY", "ServeProcess", "app_module", "child_env",
           "children", "free_port", "http_get", "listening_sockets", "pid_at", "run_aiowsgi",
           "uninstalled", "wait_for"]

ROOT = Path(__file__).resolve().parent.parent  # the repository

# An app module that answers with the pid of the process serving it (for tests with
# several processes: workers, gunicorn).
PID_APP = """
import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def app_module(text: str) -> str:
    """The source of an app module whose ``app`` answers every request with ``text``."""
    return ("def app(environ, start_response):\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
            f"    return [{text!r}.encode()]\n")


AIOWSGI = ("-m", "aiowsgi")


def uninstalled(*modules: str) -> Sequence[str]:
    """An ``entry`` (see :class:`ServeProcess`): aiowsgi's command line in a Python where
    ``modules`` cannot be imported, as if they were not installed (a None entry in
    sys.modules makes ``import`` raise ImportError); with no modules, ``-m aiowsgi``."""
    if not modules:
        return AIOWSGI
    return ("-c", f"import sys; sys.modules.update(dict.fromkeys({modules!r})); "
                  "from aiowsgi.cli import main; sys.exit(main())")


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This environment, where ``import aiowsgi`` and ``import tests`` find this checkout,
    with ``env`` on top: the environment of every process a test starts."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for an option that takes a port:
    a server started on port 0 tells its own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (a supervisor's workers), as /proc lists them."""
    found: set[int] = set()
    if not os.path.isdir("/proc"):
        return found
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry))
    return found


def listening_sockets(pid: int, port: int) -> set[int]:
    """The sockets listening on TCP ``port`` that process ``pid`` holds, by inode (as
    /proc shows them): two processes that share a socket hold the same inode."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    listening.add(int(fields[9]))
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                held.add(int(target[len("socket:["):-1]))
    return listening & held


def http_get(port: int, path: str = "/") -> bytes:
    """The body of ``GET path`` from 127.0.0.1:``port`` over plain HTTP (fails on an error
    status)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=SAFETY) as response:
        body: bytes = response.read()
    return body


def pid_at(port: int) -> int:
    """The pid of the process that answered ``GET /`` on ``port`` (an app of
    :data:`PID_APP`)."""
    return int(http_get(port))


class ServeProcess:
    """``python -m aiowsgi serve *args``; its stderr lines collect in ``lines``.

    ``port`` is read from the first line that contains ``ready`` (the startup line); with
    ``ready=None`` nothing is awaited (a test of the start itself).

    ``entry`` replaces ``-m aiowsgi`` (``("-c", source)``: a script that starts a server
    itself, through the command line or ``run()``; :func:`uninstalled`); ``launcher``
    comes before the interpreter (``["bash", "-c", script]``, whose script ends with
    ``exec "$0" "$@"``); ``pass_fds`` are inherited as they are; ``cwd`` is its working
    directory.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None,
                 ready: str | None = "serving", new_session: bool = False,
                 entry: Sequence[str] = AIOWSGI, launcher: Sequence[str] = (),
                 pass_fds: Sequence[int] = (), cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [*launcher, sys.executable, *entry, "serve", *args], env=child_env(env),
            stderr=subprocess.PIPE, text=True, start_new_session=new_session,
            pass_fds=pass_fds, cwd=cwd)
        self._new_session = new_session
        self.lines: list[str] = []
        self.address = ""  # the first place it listens: http(s)://127.0.0.1:PORT or unix:PATH
        self.port = 0
        self._ended = threading.Event()
        threading.Thread(target=self._collect, daemon=True).start()
        if ready is None:
            return
        try:
            wait_for(lambda: self._started(ready) or self._ended.is_set(), "the server to start")
            assert self.port, "the server did not start: " + "".join(self.lines)
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _started(self, ready: str) -> bool:
        for line in list(self.lines):
            if ready in line:
                address = line.split("serving ", 1)[1].split()[0].rstrip(",")
                self.address = address
                self.port = int(address.rsplit(":", 1)[1]) if "127.0.0.1:" in address else -1
                return True
        return False

    def _collect(self) -> None:
        assert self.proc.stderr is not None
        try:
            for line in self.proc.stderr:
                self.lines.append(line)
        except (ValueError, OSError):  # closed at the end of the test
            pass
        self._ended.set()

    def output(self) -> list[str]:
        """Every line it wrote, once no process holds its stderr any more."""
        wait_for(self._ended.is_set, "the end of its output")
        return list(self.lines)

    def logged(self, text: str) -> bool:
        """Whether a line it wrote so far contains ``text``."""
        return any(text in line for line in list(self.lines))

    def wait_logged(self, text: str) -> None:
        """Wait until a line it writes contains ``text``; fail, with its output, if its
        output ends without one."""
        wait_for(lambda: self.logged(text) or self._ended.is_set(), repr(text))
        assert self.logged(text), f"no {text!r} in:\n" + "".join(self.lines)

    def get(self, path: str = "/") -> bytes:
        """The body of ``GET path`` over plain HTTP (fails on an error status)."""
        return http_get(self.port, path)

    def pid(self) -> int:
        """The pid of the process that answered ``GET /`` (an app of :data:`PID_APP`)."""
        return pid_at(self.port)

    def workers(self) -> set[int]:
        """Its child processes: a supervisor's workers."""
        return children(self.proc.pid)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self) -> int:
        return self.proc.wait(SAFETY)

    def stop(self) -> int:
        """SIGTERM, unless it has ended already; then its exit status."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc.poll() is None:
            if not self._new_session:  # workers would live on: they go first
                for pid in self.workers():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (PermissionError, ProcessLookupError):
                self.proc.kill()
            self.proc.wait()
        elif self._new_session:  # workers left behind would hold stderr open
            with contextlib.suppress(PermissionError, ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def run_aiowsgi(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                entry: Sequence[str] = AIOWSGI) -> subprocess.CompletedProcess[str]:
    """``python -m aiowsgi *args`` (``entry`` as for :class:`ServeProcess`) to its end
    (within ``SAFETY``): its exit status and output."""
    return subprocess.run(
        [sys.executable, *entry, *args], cwd=cwd, env=child_env(env),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=SAFETY,
        check=False)
