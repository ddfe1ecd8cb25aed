"""--reload: a changed Python file restarts the server, on the same socket."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import pytest

from .process import SAFETY, ServeProcess, wait_for

pytest.importorskip("watchfiles")


def app_source(text: str) -> str:
    return ("def app(environ, start_response):\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
            f"    return [{text!r}.encode()]\n")


def test_reload_on_change(tmp_path: Path) -> None:
    module = tmp_path / "devapp.py"
    module.write_text(app_source("before"))
    with ServeProcess("devapp:app", "--app-dir", str(tmp_path), "--port", "0", "--reload",
                      "--reload-dir", str(tmp_path), "--no-access-log",
                      ready="supervisor") as srv:

        def get() -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/", timeout=SAFETY) as r:
                return r.read()  # type: ignore[no-any-return]

        assert get() == b"before"
        module.write_text(app_source("after"))
        wait_for(lambda: get() == b"after", "the reload")  # the same port answers throughout
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0
