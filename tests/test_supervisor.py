"""The supervisor: --reload restarts the server when a Python file changes, on the same
socket.  (Its --workers tests are in test_workers.py.)"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .process import ServeProcess, app_module
from .waiting import wait_for

pytest.importorskip("watchfiles")


def test_reload_on_change(tmp_path: Path) -> None:
    module = tmp_path / "devapp.py"
    module.write_text(app_module("before"))
    with ServeProcess("devapp:app", "--app-dir", str(tmp_path), "--port", "0", "--reload",
                      "--reload-dir", str(tmp_path), "--no-access-log",
                      ready="supervisor") as srv:
        assert srv.get() == b"before"
        module.write_text(app_module("after"))
        # the same port answers throughout
        wait_for(lambda: srv.get() == b"after", "the reload")
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0
