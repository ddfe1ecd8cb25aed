"""``aiowsgi serve`` in a subprocess, for tests of signals, workers and the command line."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
SAFETY = 30.0

# An app module that answers with the pid of the process serving it (for tests with
# several processes: workers, gunicorn).
PID_APP = """
import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def wait_for(condition: Callable[[], object], what: str) -> None:
    """Poll ``condition`` until it holds; fail after the safety timeout."""
    deadline = time.monotonic() + SAFETY
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class ServeProcess:
    """``python -m aiowsgi serve *args``; its stderr lines collect in ``lines``.

    ``port`` is read from the first line that contains ``ready`` (the startup line); with
    ``ready=None`` nothing is awaited (a test of the start itself).
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None,
                 ready: str | None = "serving", new_session: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiowsgi", "serve", *args],
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            stderr=subprocess.PIPE, text=True, start_new_session=new_session)
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

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self) -> int:
        return self.proc.wait(SAFETY)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc.poll() is None:
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
