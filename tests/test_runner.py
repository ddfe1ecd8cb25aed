"""run(): the process's options are its own, the command line's are refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from aiowsgi import Config, allocator, run

from .process import ROOT, SAFETY


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


COMMAND_ONLY: dict[str, Any] = {"workers": 2, "reload": True, "reload_dir": ("src",)}
OF_COMMAND = "it is an option of the command line (aiowsgi serve)"


@pytest.fixture
def untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    """run() must refuse before it acts on the process (the allocator is its first act
    after the logging): a call that gets that far fails the test."""

    def tune(threshold: int) -> bool:
        raise AssertionError("run() acted on the process before refusing")

    monkeypatch.setattr(allocator, "tune", tune)


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize(("name", "value"), COMMAND_ONLY.items(), ids=list(COMMAND_ONLY))
def test_run_refuses_an_option_of_the_command_line(name: str, value: Any) -> None:
    with pytest.raises(TypeError) as info:
        run(hello, port=0, **{name: value})
    assert str(info.value) == f"run() does not take {name}: {OF_COMMAND}"
    with pytest.raises(TypeError) as info:
        run(hello, Config(port=0, **{name: value}))
    assert str(info.value) == f"run() does not take a config that sets {name}: {OF_COMMAND}"


@pytest.mark.usefixtures("untouched")
def test_run_names_every_command_line_option_at_once() -> None:
    with pytest.raises(TypeError) as info:
        run(hello, workers=2, reload=True, loop="asyncio")
    assert str(info.value) == ("run() does not take workers, reload: they are options of "
                               "the command line (aiowsgi serve)")


PROCESS_SCRIPT = textwrap.dedent("""
    from aiowsgi import Config, run

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    run(app, Config(host="127.0.0.1", loop="asyncio"), port=0, log_level="debug",
        malloc_trim_threshold=0, shutdown_delay=0.01)
""")


def test_run_acts_on_the_process_options_and_serves(tmp_path: Path) -> None:
    """loop, log_level, malloc_trim_threshold and shutdown_delay are run()'s: given as
    keywords or in the config, they are acted on, and the server it starts serves."""
    script = tmp_path / "run_process.py"
    script.write_text(PROCESS_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        while not lines or "aiowsgi serving" not in lines[-1]:
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        assert "listening on http://127.0.0.1:" in "".join(lines)  # a debug message
        assert "(asyncio loop, 8 threads)" in lines[-1]
        port = int(lines[-1].split("127.0.0.1:")[1].split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=SAFETY) as response:
            assert response.read() == b"ok"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=SAFETY)
        assert proc.returncode == 0, err
        assert "SIGTERM received: still serving for 0.01s (shutdown_delay)" in err
        assert "shutdown complete" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
