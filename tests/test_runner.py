"""run() and the process it owns: its options (the command line's are refused), the
signal handlers it puts back, logging's configuration, systemd's sockets and
shutdown_delay."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import signal
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiowsgi import Config, ConfigError, allocator, run
from aiowsgi.runner import auto_loop, configure_logging, loop_factory

from .apps import notwsgi
from .apps.echo import hello
from .http import get_over
from .process import SAFETY, ServeProcess, app_module
from .waiting import wait_for

COMMAND_ONLY: dict[str, Any] = {"workers": 2, "reload": True, "reload_dir": ("src",),
                                "reuse_port": False}
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


@pytest.mark.usefixtures("untouched")
def test_run_refuses_an_asgi_application() -> None:
    with pytest.raises(TypeError, match=r"^tests\.apps\.notwsgi\.asgi_function looks like "
                                        r"an ASGI application \(async def "):
        run(notwsgi.asgi_function, port=0)  # type: ignore[arg-type]  # mypy refuses it too


PROCESS_SCRIPT = textwrap.dedent("""
    from aiowsgi import Config, run

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    run(app, Config(host="127.0.0.1", loop="asyncio"), port=0, log_level="debug",
        malloc_trim_threshold=0, shutdown_delay=0.01)
""")


def test_run_acts_on_the_process_options_and_serves() -> None:
    """loop, log_level, malloc_trim_threshold and shutdown_delay are run()'s: given as
    keywords or in the config, they are acted on, and the server it starts serves."""
    with ServeProcess(entry=("-c", PROCESS_SCRIPT), ready="aiowsgi serving") as srv:
        serving = next(i for i, line in enumerate(srv.lines) if "aiowsgi serving" in line)
        assert "listening on http://127.0.0.1:" in "".join(srv.lines[:serving])  # debug
        assert "(asyncio loop, 8 threads)" in srv.lines[serving]
        assert srv.get() == b"ok"
        srv.signal(signal.SIGTERM)
        err = "".join(srv.output())
        assert srv.wait() == 0, err
        assert "SIGTERM received: still serving for 0.01s (shutdown_delay)" in err
        assert "shutdown complete" in err


RUN_SCRIPT = textwrap.dedent("""
    import signal, sys
    from aiowsgi import run

    def app(environ, start_response):  # what run() made of the switch interval
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%g" % sys.getswitchinterval()]

    def mine(signum, frame):
        pass

    signal.signal(signal.SIGTERM, mine)
    run(app, host="127.0.0.1", port=0, loop=sys.argv[-1])  # argv: serve LOOP
    assert signal.getsignal(signal.SIGTERM) is mine, "SIGTERM handler not restored"
    assert sys.getswitchinterval() == 0.005, "switch interval not restored"
    print("restored", file=sys.stderr, flush=True)
""")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_run_serves_until_sigterm_and_restores_handlers(loop: str) -> None:
    with ServeProcess(loop, entry=("-c", RUN_SCRIPT)) as srv:
        line = srv.lines[0]
        assert "serving http://127.0.0.1:" in line, line
        assert f"({loop} loop" in line
        with socket.create_connection(("127.0.0.1", srv.port), timeout=SAFETY) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\nContent-Length: 5\r\n" in data
        assert data.endswith(b"\r\n\r\n0.001")  # the switch_interval option's default
        srv.signal(signal.SIGTERM)
        err = "".join(srv.output())
        assert srv.wait() == 0, err
        assert err.splitlines()[-1] == "restored"
        assert "shutdown complete" in err


# -- logging's configuration ------------------------------------------------------------


@pytest.fixture
def clean_logging() -> Iterator[None]:
    logger = logging.getLogger("aiowsgi")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]


def test_log_config_json_and_ini(tmp_path: Path, clean_logging: None) -> None:
    json_file = tmp_path / "log.json"
    json_file.write_text(json.dumps({
        "version": 1, "disable_existing_loggers": False,
        "loggers": {"aiowsgi": {"level": "WARNING"}},
    }))
    configure_logging("debug", str(json_file))
    assert logging.getLogger("aiowsgi").level == logging.WARNING  # the file wins
    ini_file = tmp_path / "log.ini"
    ini_file.write_text(
        "[loggers]\nkeys=root,aiowsgi\n[handlers]\nkeys=\n[formatters]\nkeys=\n"
        "[logger_root]\nlevel=WARNING\nhandlers=\n"
        "[logger_aiowsgi]\nlevel=ERROR\nhandlers=\nqualname=aiowsgi\n")
    configure_logging("info", str(ini_file))
    assert logging.getLogger("aiowsgi").level == logging.ERROR


INI_HEAD = "[loggers]\nkeys=root\n[logger_root]\nhandlers=h\n[formatters]\nkeys=\n"


@pytest.mark.parametrize(("name", "content"), [
    ("log.json", None), ("log.json", "{not json"), ("log.json", '{"version": 99}'),
    ("log.json", '{"version": 1, "handlers": {"h": {"class": "nosuchmodule.Handler"}}}'),
    ("log.ini", None), ("log.ini", ""), ("log.ini", "def broken(:\n"),
    ("log.ini", "[loggers]\nkeys=root\n"),
    ("log.ini", INI_HEAD + "[handlers]\nkeys=h\n[handler_h]\nclass=nosuchmodule.Handler\n"
                           "args=()\n"),
    ("log.ini", INI_HEAD + "[handlers]\nkeys=h\n[handler_h]\nclass=StreamHandler\n"
                           "args=(no_such_name,)\n"),
    ("log.ini", INI_HEAD + "[handlers]\nkeys=h\n[handler_h]\nclass=StreamHandler\n"
                           "args=(((\n"),
], ids=["json-missing", "json-syntax", "json-version", "json-no-class", "ini-missing",
        "ini-empty", "ini-syntax", "ini-no-section", "ini-no-class", "ini-args-name",
        "ini-args-syntax"])
def test_bad_log_config_names_the_option(tmp_path: Path, name: str, content: str | None,
                                         clean_logging: None) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=r"^log_config: cannot use ") as info:
        configure_logging("info", str(path))
    assert info.value.option == "log_config"


# -- systemd's sockets and shutdown_delay -------------------------------------------------


def test_systemd_socket_activation(tmp_path: Path) -> None:
    """LISTEN_FDS/LISTEN_PID, as systemd passes sockets: fd 3 onwards."""
    (tmp_path / "sdapp.py").write_text(app_module("activated"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    fd = sock.fileno()
    # the shell moves the socket to fd 3 and sets LISTEN_PID to its own pid, which exec keeps
    launcher = ["bash", "-c", f'exec 3<&{fd}; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"']
    try:
        with ServeProcess("sdapp:app", "--app-dir", str(tmp_path), launcher=launcher,
                          pass_fds=(fd,)) as srv:
            sock.close()
            assert srv.address == f"http://127.0.0.1:{port}"

            async def fetch() -> bytes:
                return await get_over(await asyncio.open_connection("127.0.0.1", port))

            assert asyncio.run(fetch()) == b"activated"
            srv.signal(signal.SIGTERM)
            assert srv.wait() == 0
    finally:
        sock.close()


def test_shutdown_delay_keeps_serving_after_sigterm(tmp_path: Path) -> None:
    (tmp_path / "delayapp.py").write_text(app_module("still here"))
    with ServeProcess("delayapp:app", "--app-dir", str(tmp_path), "--port", "0",
                      "--shutdown-delay", "3", "--no-access-log") as srv:
        srv.signal(signal.SIGTERM)
        wait_for(lambda: srv.logged("still serving for 3s (shutdown_delay)"), "the delay")

        async def fetch() -> bytes:
            return await get_over(await asyncio.open_connection("127.0.0.1", srv.port))

        assert asyncio.run(fetch()) == b"still here"  # accepted during the delay
        assert srv.wait() == 0


def test_auto_loop_is_uvloop_when_installed() -> None:
    uvloop = pytest.importorskip("uvloop")
    assert auto_loop() == f"uvloop {importlib.metadata.version('uvloop')}"
    assert loop_factory("auto") is uvloop.new_event_loop


def test_auto_loop_is_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop: ImportError
    assert auto_loop() == "asyncio (uvloop not installed)"
    assert loop_factory("auto") is asyncio.new_event_loop
