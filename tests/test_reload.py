"""--reload: a changed Python file restarts the server, on the same socket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("watchfiles")
ROOT = Path(__file__).resolve().parent.parent
SAFETY = 30.0


def app_source(text: str) -> str:
    return ("def app(environ, start_response):\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
            f"    return [{text!r}.encode()]\n")


def test_reload_on_change(tmp_path: Path) -> None:
    module = tmp_path / "devapp.py"
    module.write_text(app_source("before"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiowsgi", "serve", "devapp:app", "--app-dir", str(tmp_path),
         "--port", "0", "--reload", "--reload-dir", str(tmp_path), "--no-access-log"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        port = 0
        while not port:
            line = proc.stderr.readline()
            assert line, "the server exited"
            if "supervisor" in line:
                port = int(line.split("127.0.0.1:")[1].split()[0])
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]

        def get() -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=SAFETY) as r:
                return r.read()  # type: ignore[no-any-return]

        assert get() == b"before"
        module.write_text(app_source("after"))
        deadline = time.monotonic() + SAFETY
        while get() != b"after":  # the same port answers throughout
            assert time.monotonic() < deadline, "no reload"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(SAFETY) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
