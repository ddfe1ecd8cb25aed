"""``aiowsgi`` on the command line: run the way an operator runs it, in its own process;
and what ``main()`` makes of its arguments, in this one (``served``)."""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import http.client
import importlib.metadata
import importlib.util
import platform
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aiowsgi
from aiowsgi import cli
from aiowsgi.config import Config

from .apps.echo import hello
from .process import ROOT, SAFETY, ServeProcess, child_env, run_aiowsgi, uninstalled, wait_for

# A graceful timeout that outlasts any wait of a test (SAFETY): a server that waited for
# it instead of exiting at once would fail the test.
LONGER = str(2 * SAFETY)

APPS = {
    "hello_app.py": """
        from wsgiref.validate import validator


        @validator
        def app(environ, start_response):
            text = "hello from %s %s?%s" % (
                __name__, environ["PATH_INFO"], environ["QUERY_STRING"])
            body = text.encode()
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"),
                                      ("Content-Length", str(len(body)))])
            return [body]
    """,
    "block_app.py": """
        import os
        import time

        from tests.waiting import SAFETY

        HERE = os.path.dirname(os.path.abspath(__file__))


        def app(environ, start_response):
            if environ["PATH_INFO"] == "/block":
                # Tell the test the request is in the application, then block until the
                # test releases it (or for longer than a test waits for anything, so that
                # nothing is left behind forever).
                open(os.path.join(HERE, "started"), "w").close()
                deadline = time.monotonic() + 2 * SAFETY
                while time.monotonic() < deadline:
                    if os.path.exists(os.path.join(HERE, "release")):
                        break
                    time.sleep(0.01)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"done"]
    """,
    "pkg/__init__.py": "",
    "pkg/mod.py": """
        def wsgi_app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"dotted " + environ["PATH_INFO"].encode()]


        class obj:
            app = staticmethod(wsgi_app)
    """,
    "boom.py": "1 / 0\n",
    "needs_missing.py": "import aiowsgi_test_no_such_dependency\n",
    "bad_syntax.py": "def broken(:\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "not_callable.py": "app = 42\n",
}


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    for name, source in APPS.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return tmp_path


@contextlib.contextmanager
def taken_port() -> Iterator[str]:
    """A port something else listens on: a server started by mistake fails to bind (and
    exits 1) instead of serving forever."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield str(taken.getsockname()[1])


USAGE = "usage: aiowsgi serve [options] APP"
HINT = "run 'aiowsgi serve --help' for the options"


def usage_error(result: subprocess.CompletedProcess[str] | str) -> str:
    """The error line of a usage error, which comes between serve's usage and the hint
    (three lines on stderr, nothing on stdout, not the usage of every option)."""
    stderr = result if isinstance(result, str) else result.stderr
    lines = stderr.splitlines()
    assert len(lines) == 3, f"expected usage, error and hint on stderr, got:\n{stderr}"
    if not isinstance(result, str):
        assert result.stdout == ""
    assert (lines[0], lines[2]) == (USAGE, HINT), stderr
    return lines[1]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The only line on stderr (there must be exactly one, and nothing on stdout)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{result.stderr}"
    assert result.stdout == ""
    return lines[0]


# -- version and help -----------------------------------------------------------------


def _loop_line(uvloop_installed: bool) -> str:
    if not uvloop_installed:
        return "asyncio (uvloop not installed)"
    return f"uvloop {importlib.metadata.version('uvloop')}"


def expected_version(uvloop_installed: bool | None = None) -> str:
    """What ``aiowsgi --version`` says in this Python (with uvloop as installed here, or
    as ``uvloop_installed`` says)."""
    if uvloop_installed is None:
        uvloop_installed = importlib.util.find_spec("uvloop") is not None
    return (f"aiowsgi {aiowsgi.__version__} ({platform.python_implementation()} "
            f"{platform.python_version()}; loop: {_loop_line(uvloop_installed)})")


@pytest.mark.parametrize("args", [["--version"], ["-V"], ["serve", "--version"],
                                  ["serve", "-V"], ["serve", "hello_app:app", "-V"]],
                         ids=" ".join)
def test_version(tmp_path: Path, args: list[str]) -> None:
    result = run_aiowsgi(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected_version() + "\n"
    assert result.stderr == ""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert aiowsgi.__version__ == version  # the package says what its distribution says
    assert re.fullmatch(rf"aiowsgi {re.escape(version)} \((CPython|PyPy) 3\.\d+\.\d+\S*; loop: "
                        r"(uvloop \d+\.\d+\.\d+\S*|asyncio \(uvloop not installed\))\)",
                        result.stdout.strip()), result.stdout


def test_version_without_uvloop(tmp_path: Path) -> None:
    result = run_aiowsgi("--version", cwd=tmp_path, entry=uninstalled("uvloop"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("; loop: asyncio (uvloop not installed))")
    assert result.stdout == expected_version(uvloop_installed=False) + "\n"


def test_version_with_uvloop(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    result = run_aiowsgi("-V", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"; loop: uvloop {importlib.metadata.version('uvloop')})" in result.stdout


def test_version_does_not_import_the_application(app_dir: Path) -> None:
    # boom.py raises on import: were it imported, the command would fail.
    for args in (["serve", "boom:app", "--version"], ["serve", "-V", "boom:app"]):
        result = run_aiowsgi(*args, cwd=app_dir)
        assert (result.returncode, result.stdout) == (0, expected_version() + "\n"), result
        assert "ZeroDivisionError" not in result.stderr


def test_console_script_version(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "aiowsgi"
    if not script.exists():
        pytest.skip("the aiowsgi console script is not installed next to this interpreter")
    result = subprocess.run([str(script), "--version"], cwd=tmp_path, env=child_env(),
                            capture_output=True, text=True, timeout=SAFETY, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected_version() + "\n"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def serve_help(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               columns: int = 100) -> str:
    """``aiowsgi serve --help`` on a terminal ``columns`` wide."""
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "--help"], {})
    assert info.value.code == 0
    return capsys.readouterr().out


def help_entries(text: str) -> dict[str, str]:
    """The entries of a --help: what is written in the left column (``-b ADDR, --bind
    ADDR``) -> its help text, its lines joined."""
    entries: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            current, _, rest = line.strip().partition("  ")
            entries[current] = rest.strip()
        elif line.startswith("   ") and current:
            entries[current] = f"{entries[current]} {line.strip()}".strip()
        else:
            current = ""
    return entries


def test_serve_help_lists_every_option(tmp_path: Path) -> None:
    result = run_aiowsgi("serve", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    words = set(result.stdout.replace(",", " ").split())
    missing = [_flag(f.name) for f in dataclasses.fields(Config)
               if _flag(f.name) not in words and "--[no-]" + f.name.replace("_", "-")
               not in words]
    assert not missing, f"options missing from `aiowsgi serve --help`: {missing}"
    for f in dataclasses.fields(Config):
        if f.type in (bool, "bool"):  # the flag and its negation, in one
            assert "--[no-]" + _flag(f.name)[2:] in words
    assert "APP" in words


@pytest.mark.parametrize("negated", [False, True])
def test_every_flag_has_its_negation(served: list[tuple[Any, Config]], negated: bool) -> None:
    """What ``--[no-]NAME`` in the help stands for: both flags work."""
    flags = [f.name for f in dataclasses.fields(Config)  # run() gets the command's at default
             if f.type in (bool, "bool") and f.metadata["scope"] != "command"]
    prefix = "--no-" if negated else "--"
    argv = ["serve", "tests.apps.echo:hello", *(prefix + name.replace("_", "-") for name in flags)]
    assert cli.main(argv, {}) == 0
    config = served[0][1]
    assert [getattr(config, name) for name in flags] == [not negated] * len(flags)


@pytest.mark.parametrize("columns", [100, 80])
def test_serve_help_is_short(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str], columns: int) -> None:
    text = serve_help(monkeypatch, capsys, columns)
    lines = text.splitlines()
    assert len(lines) < 120, f"{len(lines)} lines at {columns} columns:\n{text}"
    assert lines[0] == "usage: aiowsgi serve [options] APP"
    assert all(len(line) <= columns for line in lines), text


def test_serve_help_reads_well(monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    text = serve_help(monkeypatch, capsys)
    entries = help_entries(text)
    assert len(entries) == len(dataclasses.fields(Config)) + 5  # -h, -V, APP, --factory, --app-dir
    for invocation, help_text in entries.items():
        if invocation in ("-h, --help", "-V, --version"):
            continue
        # A sentence, then its default in brackets: not "...only). (bytes) Default:".
        assert re.fullmatch(r".+\.( \[[^ \]][^\]]*\]| \[.*%\(X\)s\])?", help_text), (
            invocation, help_text)
        assert not re.search(r"Default|\((bytes|seconds|characters)\)|\. \(", help_text), (
            invocation, help_text)
    # Sizes and times are named so, their defaults written as an operator would.
    assert entries["--max-body-size SIZE"].endswith(" [1G]")
    assert entries["--keepalive-timeout TIME"].endswith(" [5s]")
    assert entries["--switch-interval TIME"].endswith(" [1ms]")
    assert entries["--access-log-buffer SIZE"].endswith(" [1M]")
    assert entries["--[no-]access-log"].endswith(" [on]")
    epilog = text.rsplit("\n\n", 1)[1]
    assert "K = 1024" in epilog and "nginx" in epilog and "500ms" in epilog
    assert "AIOWSGI_" in epilog


# where each option is shown: a few that were once misplaced, and the short flags
GROUPS = {
    "logging and metrics:": ["--log-level LEVEL", "--metrics-bind ADDR",
                             "--access-log-buffer SIZE"],
    "processes:": ["-w N, --workers N", "--max-requests N", "--[no-]reload"],
    "where to listen:": ["-b ADDR, --bind ADDR"],
    "capacity (past a limit the answer is 503 or 504):": [
        "-t TIME, --timeout TIME, --request-timeout TIME"],
    "memory:": ["--body-buffer-size SIZE", "--send-buffer-size SIZE"],
}


def test_options_are_in_their_groups(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    text = serve_help(monkeypatch, capsys)
    sections = {block.splitlines()[0]: block for block in text.split("\n\n")}
    for title, invocations in GROUPS.items():
        for invocation in invocations:
            if sys.version_info >= (3, 13):  # argparse writes the value once
                invocation = re.sub(r"^(-\w) \w+, ", r"\1, ", invocation)
                invocation = re.sub(r" TIME, ", ", ", invocation)
            assert f"\n  {invocation}" in sections[title], (title, invocation)


def test_gunicorn_short_flags(served: list[tuple[Any, Config]],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    supervised: list[Config] = []

    def supervise(argv: list[str], config: Config) -> int:
        supervised.append(config)
        return 0

    monkeypatch.setattr(cli, "supervise", supervise)
    argv = ["serve", "tests.apps.echo:hello", "-b", "127.0.0.1:8001", "-b", "unix:/tmp/a.sock",
            "-w", "3", "-t", "30"]
    assert cli.main(argv, {}) == 0
    config = supervised[0]
    assert config.bind == ("127.0.0.1:8001", "unix:/tmp/a.sock")
    assert (config.workers, config.request_timeout) == (3, 30.0)
    assert cli.main(["serve", "tests.apps.echo:hello", "--timeout", "1m"], {}) == 0
    assert cli.main(["serve", "tests.apps.echo:hello", "-t1.5s"], {}) == 0
    assert [config.request_timeout for _, config in served] == [60.0, 1.5]


def test_timeout_is_said_to_be_gunicorns(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    entries = help_entries(serve_help(monkeypatch, capsys))
    [(invocation, text)] = [(key, value) for key, value in entries.items()
                            if "--request-timeout" in key]
    assert invocation.startswith("-t") and "--timeout" in invocation
    assert "gunicorn" in text and "504" in text


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run_aiowsgi(cwd=tmp_path)
    assert result.returncode == 2
    assert usage_error(result) == "aiowsgi: error: the command is missing: aiowsgi serve APP"


# -- loading the application ----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected", "unexpected"),
    [
        pytest.param("aiowsgi_test_no_such_module:app", ["aiowsgi_test_no_such_module"],
                     ["error while importing"], id="missing-module"),
        pytest.param("pkg.nomod:app", ["pkg.nomod"], ["error while importing"],
                     id="missing-submodule"),
        pytest.param("boom:app", ["boom", "ZeroDivisionError"], [], id="raises-on-import"),
        pytest.param("needs_missing:app",
                     ["error while importing", "needs_missing",
                      "aiowsgi_test_no_such_dependency"], [], id="imports-missing-module"),
        pytest.param("bad_syntax:app", ["bad_syntax", "SyntaxError"], [], id="syntax-error"),
        pytest.param("exits:app", ["exits", "SystemExit"], [], id="exits-on-import"),
        pytest.param("hello_app:nope", ["hello_app", "nope"], [], id="missing-attribute"),
        pytest.param("pkg.mod:obj.nope", ["pkg.mod", "nope"], [],
                     id="missing-dotted-attribute"),
        pytest.param("not_callable:app", ["not_callable:app", "not callable"], [],
                     id="not-callable"),
        pytest.param("hello_app", ["hello_app", "MODULE:ATTRIBUTE"], [], id="no-colon"),
        pytest.param("hello_app:", ["hello_app:", "MODULE:ATTRIBUTE"], [], id="no-attribute"),
        pytest.param(":app", [":app", "MODULE:ATTRIBUTE"], [], id="no-module"),
    ],
)
def test_app_load_failure(app_dir: Path, spec: str, expected: list[str],
                          unexpected: list[str]) -> None:
    with taken_port() as port:
        result = run_aiowsgi("serve", spec, "--port", port, cwd=app_dir)
    assert result.returncode == 1, (result.stdout, result.stderr)
    line = one_line(result)
    assert line.startswith("aiowsgi: error: "), line
    for text in expected:
        assert text in line, f"{text!r} not in {line!r}"
    for text in unexpected:
        assert text not in line, f"{text!r} in {line!r}"


@pytest.mark.parametrize(
    ("spec", "where"),
    [("boom:app", 'boom.py", line 1'), ("bad_syntax:app", 'bad_syntax.py", line 1'),
     ("exits:app", 'exits.py", line 2')],
)
@pytest.mark.parametrize(
    ("args", "env"),
    [(["--log-level", "debug"], {}), (["--log-level", "DEBUG"], {}),
     ([], {"AIOWSGI_LOG_LEVEL": "Debug"})],
    ids=["debug", "DEBUG", "AIOWSGI_LOG_LEVEL=Debug"],
)
def test_debug_log_level_shows_the_import_traceback(
        app_dir: Path, spec: str, where: str, args: list[str], env: dict[str, str]) -> None:
    with taken_port() as port:
        result = run_aiowsgi("serve", spec, "--port", port, *args, cwd=app_dir, env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback (most recent call last):" in result.stderr
    assert where in result.stderr  # the file and line that failed
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"aiowsgi: error: error while importing {spec.split(':')[0]!r}")
    # At the default level the same failure is that last line alone.
    with taken_port() as port:
        assert one_line(run_aiowsgi("serve", spec, "--port", port, cwd=app_dir)) == last


ASGI_SERVER = "but aiowsgi serves WSGI applications: serve it with an ASGI server such as uvicorn"
NOT_WSGI = "tests.apps.notwsgi"


@pytest.mark.parametrize("args", [
    pytest.param([], id="one-server"),
    pytest.param(["--workers", "2"], id="workers"),  # the supervisor refuses it, no worker
    pytest.param(["--reload"], id="reload"),
])
@pytest.mark.parametrize(("spec", "factory", "line"), [
    pytest.param(f"{NOT_WSGI}:asgi_function", False,
                 f"'{NOT_WSGI}:asgi_function' looks like an ASGI application (async def "
                 f"asgi_function(scope, receive, send)), {ASGI_SERVER} (uvicorn "
                 f"{NOT_WSGI}:asgi_function)", id="asgi-function"),
    pytest.param(f"{NOT_WSGI}:asgi_object", False,
                 f"'{NOT_WSGI}:asgi_object' looks like an ASGI application (async def "
                 f"__call__(self, scope, receive, send)), {ASGI_SERVER} (uvicorn "
                 f"{NOT_WSGI}:asgi_object)", id="asgi-object"),
    pytest.param(f"{NOT_WSGI}:make_asgi", True,
                 f"what the factory '{NOT_WSGI}:make_asgi' returned looks like an ASGI "
                 f"application (async def __call__(self, scope, receive, send)), "
                 f"{ASGI_SERVER} (uvicorn --factory {NOT_WSGI}:make_asgi)",
                 id="factory-of-asgi"),
    pytest.param(f"{NOT_WSGI}:no_argument", False,
                 f"'{NOT_WSGI}:no_argument' cannot be called as a WSGI application, "
                 "app(environ, start_response): it takes (); if it returns the application, "
                 "call it first (aiowsgi serve --factory)", id="no-argument"),
])
def test_what_cannot_be_a_wsgi_application_is_refused_at_start(
        tmp_path: Path, spec: str, factory: bool, line: str, args: list[str]) -> None:
    """An ASGI application (or a callable WSGI cannot call) exits 1 with one line, before
    anything serves it: served, it would answer every request with a 500."""
    if "--reload" in args:
        pytest.importorskip("watchfiles")
    with taken_port() as port:  # were it not refused, it could not serve either
        result = run_aiowsgi("serve", spec, "--port", port, *args,
                             *(["--factory"] if factory else []), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert one_line(result) == f"aiowsgi: error: {line}"


# -- bad option values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--threads", "0"], "--threads"),
        (["--port", "70000"], "--port"),
        (["--port", "-1"], "--port"),
        (["--loop", "nope"], "--loop"),
        (["--send-timeout", "abc"], "--send-timeout"),
        (["--send-timeout", "nan"], "--send-timeout"),
        (["--threads", "1.5"], "--threads"),
        (["--log-level", "loud"], "--log-level"),
        (["--log-level", "warning", "--loop", "UVLOOPS"], "--loop"),
        (["--prot", "8000"], "--prot"),
        (["--bind", "8000"], "--bind"),
        (["-w", "two"], "-w/--workers"),
        (["--max-body-size", "10X"], "--max-body-size"),
        (["--max-body-size", "-1M"], "--max-body-size"),
        (["--max-body-size=-1M"], "--max-body-size"),
        (["--max-header-size", "1.5.2M"], "--max-header-size"),
        (["--max-request-line", "2M"], "--max-request-line"),
        (["-t", "5x"], "-t/--timeout/--request-timeout"),
        (["--keepalive-timeout", "-1s"], "--keepalive-timeout"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_bad_option_value(app_dir: Path, args: list[str], flag: str) -> None:
    with taken_port() as port:
        result = run_aiowsgi("serve", "hello_app:app", "--port", port, *args, cwd=app_dir)
    assert result.returncode == 2, (result.stdout, result.stderr)
    line = usage_error(result)  # not the usage of every option first
    assert line.startswith("aiowsgi serve: error: "), line
    assert flag in line, line


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["serve", "-w", "two", "tests.apps.echo:hello"],
         "aiowsgi serve: error: argument -w/--workers: invalid int value 'two'"),
        (["serve", "tests.apps.echo:hello", "--wrokers", "2"],
         "aiowsgi serve: error: unrecognized arguments: --wrokers 2"),
        (["serve", "tests.apps.echo:hello", "--max-body-size", "10X"],
         "aiowsgi serve: error: argument --max-body-size: expected a size such as 4096, 64K, "
         "10M or 1G, got '10X'"),
        (["serve", "tests.apps.echo:hello", "--keepalive-timeout", "5 minutes"],
         "aiowsgi serve: error: argument --keepalive-timeout: expected a time such as 30, "
         "500ms, 1.5s, 5m or 1h, got '5 minutes'"),
        (["serve", "tests.apps.echo:hello", "--threads", "0"],
         "aiowsgi serve: error: argument --threads: must be at least 1 (got 0)"),
        (["serve", "tests.apps.echo:hello", "--max-request-line", "2M"],
         "aiowsgi serve: error: argument --max-request-line: must be at most 1048576 "
         "(got 2097152)"),
        (["serve", "--loop", "trio", "tests.apps.echo:hello"],
         "aiowsgi serve: error: argument --loop: must be one of auto, asyncio, uvloop "
         "(got 'trio')"),
        (["serve"],
         "aiowsgi serve: error: the application is missing: give APP or set AIOWSGI_APP"),
        (["serve", "--threads", "2"],
         "aiowsgi serve: error: the application is missing: give APP or set AIOWSGI_APP"),
        (["-w", "2", "tests.apps.echo:hello"],
         "aiowsgi: error: the command is missing; did you mean: "
         "aiowsgi serve -w 2 tests.apps.echo:hello"),
        (["tests.apps.echo:hello"],
         "aiowsgi: error: the command is missing; did you mean: "
         "aiowsgi serve tests.apps.echo:hello"),
        (["--bind", "0.0.0.0:80", "my app:app"],
         "aiowsgi: error: the command is missing; did you mean: "
         "aiowsgi serve --bind 0.0.0.0:80 'my app:app'"),
        (["serv", "tests.apps.echo:hello"],
         "aiowsgi: error: unknown command 'serv': the command is serve"),
        ([], "aiowsgi: error: the command is missing: aiowsgi serve APP"),
        (["--bogus", "serve", "tests.apps.echo:hello"],
         "aiowsgi serve: error: unrecognized arguments: --bogus"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_usage_errors(served: list[tuple[Any, Config]], capsys: pytest.CaptureFixture[str],
                      argv: list[str], error: str) -> None:
    """A mistake in the command line: one line under serve's short usage, and a hint."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv, {})
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert usage_error(captured.err) == error
    assert not served


def test_missing_app_in_a_process(app_dir: Path) -> None:
    result = run_aiowsgi("serve", "--port", "0", cwd=app_dir)
    assert result.returncode == 2
    assert usage_error(result) == ("aiowsgi serve: error: the application is missing: give "
                                   "APP or set AIOWSGI_APP")


def test_forgotten_serve_in_a_process(app_dir: Path) -> None:
    result = run_aiowsgi("-w", "2", "hello_app:app", cwd=app_dir)
    assert result.returncode == 2
    assert usage_error(result) == ("aiowsgi: error: the command is missing; did you mean: "
                                   "aiowsgi serve -w 2 hello_app:app")


# -- sizes and times -----------------------------------------------------------------------


def test_sizes_and_times_on_the_command_line(served: list[tuple[Any, Config]]) -> None:
    argv = ["serve", "tests.apps.echo:hello", "--max-body-size", "10M",
            "--body-buffer-size", "64KiB", "--max-body-memory", "1G", "--send-buffer-size",
            "512kb", "--max-request-line", "4096", "--access-log-buffer", "64k",
            "--malloc-trim-threshold", "0", "--keepalive-timeout", "500ms", "-t", "1.5s",
            "--graceful-timeout", "1m", "--shutdown-delay", "2", "--queue-timeout", "1h",
            "--switch-interval", "5ms"]
    assert cli.main(argv, {}) == 0
    config = served[0][1]
    assert (config.max_body_size, config.body_buffer_size, config.max_body_memory,
            config.send_buffer_size, config.max_request_line, config.access_log_buffer,
            config.malloc_trim_threshold) == (
        10 * 1024**2, 64 * 1024, 1024**3, 512 * 1024, 4096, 64 * 1024, 0)
    assert (config.keepalive_timeout, config.request_timeout, config.graceful_timeout,
            config.shutdown_delay, config.queue_timeout, config.switch_interval) == (
        0.5, 1.5, 60.0, 2.0, 3600.0, 0.005)


# -- configuration errors: exit status 2, one line naming the option -------------------


@pytest.mark.parametrize(
    ("args", "env", "without", "name"),
    [
        pytest.param(["--log-config", "missing.json"], {}, (), "--log-config",
                     id="log-config-missing"),
        pytest.param(["--log-config", "bad_syntax.py"], {}, (), "--log-config",
                     id="log-config-unreadable"),
        pytest.param([], {"AIOWSGI_LOG_CONFIG": "missing.json"}, (), "AIOWSGI_LOG_CONFIG",
                     id="AIOWSGI_LOG_CONFIG-missing"),
        pytest.param(["--ssl-certfile", "missing.pem"], {}, (), "--ssl-certfile",
                     id="ssl-certfile-missing"),
        pytest.param(["--ssl-certfile", "hello_app.py"], {}, (), "--ssl-certfile",
                     id="ssl-certfile-not-pem"),
        pytest.param(["--workers", "2", "--ssl-certfile", "missing.pem"], {}, (),
                     "--ssl-certfile", id="workers-ssl-certfile-missing"),
        pytest.param(["--loop", "uvloop"], {}, ("uvloop",), "--loop", id="loop-uvloop-absent"),
        pytest.param([], {"AIOWSGI_LOOP": "uvloop"}, ("uvloop",), "AIOWSGI_LOOP",
                     id="AIOWSGI_LOOP-uvloop-absent"),
        pytest.param(["--workers", "2", "--loop", "uvloop"], {}, ("uvloop",), "--loop",
                     id="workers-loop-uvloop-absent"),
        pytest.param(["--reload"], {}, ("watchfiles",), "--reload",
                     id="reload-watchfiles-absent"),
        pytest.param(["--reload", "--reload-dir", "missing"], {}, (), "--reload-dir",
                     id="reload-dir-missing"),
        pytest.param(["--metrics-bind", "127.0.0.1:0"], {}, ("prometheus_client",),
                     "--metrics-bind", id="metrics-prometheus-client-absent"),
        pytest.param(["--workers", "2", "--metrics-bind", "127.0.0.1:0"], {},
                     ("prometheus_client",), "--metrics-bind",
                     id="workers-metrics-prometheus-client-absent"),
        pytest.param(["--app-dir", "missing"], {}, (), "--app-dir", id="app-dir-missing"),
        pytest.param([], {"AIOWSGI_APP_DIR": "missing"}, (), "AIOWSGI_APP_DIR",
                     id="AIOWSGI_APP_DIR-missing"),
    ],
)
def test_configuration_error_exits_2(app_dir: Path, args: list[str], env: dict[str, str],
                                     without: tuple[str, ...], name: str) -> None:
    with taken_port() as port:
        result = run_aiowsgi("serve", "hello_app:app", "--port", port, *args, cwd=app_dir,
                             env=env, entry=uninstalled(*without))
    assert result.returncode == 2, (result.stdout, result.stderr)
    line = one_line(result)
    assert line.startswith(f"aiowsgi serve: error: argument {name}: "), line


def test_configuration_error_wins_over_an_app_that_cannot_load(app_dir: Path) -> None:
    with taken_port() as port:
        result = run_aiowsgi("serve", "boom:app", "--port", port, "--log-config",
                             "missing.json", cwd=app_dir)
    assert result.returncode == 2, result.stderr
    assert one_line(result).startswith("aiowsgi serve: error: argument --log-config: ")


# -- what main() makes of its arguments -----------------------------------------------


def test_command_line_wins_over_environment(served: list[tuple[Any, Config]]) -> None:
    assert cli.main(["serve", "tests.apps.echo:hello", "--threads", "5"],
                    {"AIOWSGI_THREADS": "3"}) == 0
    assert served[0][1].threads == 5


@pytest.mark.parametrize(("text", "level"), [
    ("debug", "debug"), ("DEBUG", "debug"), ("Warning", "warning"), ("warn", "warning"),
    ("WARN", "warning"), ("Critical", "critical"), ("Info", "info"), ("ERROR", "error"),
])
def test_log_level_in_any_case_and_warn(served: list[tuple[Any, Config]], text: str,
                                        level: str) -> None:
    assert cli.main(["serve", "tests.apps.echo:hello", "--log-level", text], {}) == 0
    assert cli.main(["serve", "tests.apps.echo:hello"], {"AIOWSGI_LOG_LEVEL": text}) == 0
    assert [config.log_level for _, config in served] == [level, level]


def test_choices_in_any_case(served: list[tuple[Any, Config]]) -> None:
    assert cli.main(["serve", "tests.apps.echo:hello", "--loop", "AsyncIO"], {}) == 0
    assert cli.main(["serve", "tests.apps.echo:hello"], {"AIOWSGI_LOOP": "ASYNCIO"}) == 0
    assert [config.loop for _, config in served] == ["asyncio", "asyncio"]


def test_factory(served: list[tuple[Any, Config]]) -> None:
    assert cli.main(["serve", "tests.apps.factories:make_app", "--factory"], {}) == 0
    assert served[0][0] is hello
    assert cli.main(["serve", "tests.apps.factories:make_app"], {"AIOWSGI_FACTORY": "1"}) == 0
    assert served[1][0] is hello


@pytest.mark.parametrize(("spec", "message"), [
    ("tests.apps.factories:make_nothing", "the factory 'tests.apps.factories:make_nothing' "
                                          "returned int, not a WSGI application"),
    ("tests.apps.factories:broken_factory", "calling the factory "
                                            "'tests.apps.factories:broken_factory' failed: "
                                            "RuntimeError: no database"),
])
def test_factory_failures_exit_1(served: list[tuple[Any, Config]],
                                 capsys: pytest.CaptureFixture[str], spec: str,
                                 message: str) -> None:
    assert cli.main(["serve", spec, "--factory"], {}) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"aiowsgi: error: {message}"]


def test_app_dir(served: list[tuple[Any, Config]], tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "subapp.py").write_text("def app(environ, start_response):\n"
                                                "    return []\n")
    monkeypatch.chdir("/")
    assert cli.main(["serve", "subapp:app", "--app-dir", str(tmp_path / "sub")], {}) == 0
    assert served[0][0].__module__ == "subapp"
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "subapp:app", "--app-dir", str(tmp_path / "nope")], {})
    assert info.value.code == 2
    assert capsys.readouterr().err == (f"aiowsgi serve: error: argument --app-dir: "
                                       f"{str(tmp_path / 'nope')!r} is not a directory\n")


def test_bad_trusted_proxy_list_exits_2(served: list[tuple[Any, Config]],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "tests.apps.echo:hello", "--forwarded-allow-ips", "localhost"], {})
    assert info.value.code == 2
    assert "--forwarded-allow-ips: invalid trusted proxy 'localhost'" in capsys.readouterr().err


def test_bind_is_repeatable_and_comes_from_the_environment(
        served: list[tuple[Any, Config]]) -> None:
    argv = ["serve", "tests.apps.echo:hello", "--bind", "127.0.0.1:8001", "--bind",
            "unix:/tmp/a.sock"]
    assert cli.main(argv, {}) == 0
    assert served[0][1].bind == ("127.0.0.1:8001", "unix:/tmp/a.sock")
    assert cli.main(["serve", "tests.apps.echo:hello"],
                    {"AIOWSGI_BIND": "[::1]:80, 0.0.0.0:81"}) == 0
    assert served[1][1].bind == ("[::1]:80", "0.0.0.0:81")


def test_bad_bind_exits_2(served: list[tuple[Any, Config]],
                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "tests.apps.echo:hello", "--bind", "8000"], {})
    assert info.value.code == 2
    assert "--bind: '8000': expected HOST:PORT" in capsys.readouterr().err


# -- failures to start: exit status 1 --------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_address_in_use_exits_1(app_dir: Path, workers: str) -> None:
    with taken_port() as port:
        result = run_aiowsgi("serve", "hello_app:app", "--port", port, "--workers", workers,
                             cwd=app_dir)
    assert result.returncode == 1, result.stderr
    line = one_line(result)
    assert line.startswith(f"aiowsgi: error: cannot listen on 127.0.0.1:{port}: "), line


# -- serving --------------------------------------------------------------------------


def connection(server: ServeProcess, timeout: float = SAFETY) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)


@pytest.fixture
def start_process(app_dir: Path) -> Iterator[Callable[..., ServeProcess]]:
    """``start_process(spec, *args)``: ``aiowsgi serve spec --port 0 *args`` in
    ``app_dir``, serving; killed at the end of the test if it still runs."""
    with contextlib.ExitStack() as processes:

        def start(spec: str, *args: str) -> ServeProcess:
            return processes.enter_context(
                ServeProcess(spec, "--port", "0", *args, cwd=app_dir))

        yield start


def _check_date(value: str | None) -> None:
    assert value is not None
    date = email.utils.parsedate_to_datetime(value)
    assert date.tzinfo is not None
    assert value.endswith(" GMT")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_serve_and_sigterm(start_process: Callable[..., ServeProcess], loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    # A graceful timeout longer than the wait for the exit: the idle keep-alive connection
    # left open below must be closed at once, not waited for.
    server = start_process("hello_app:app", "--loop", loop, "--threads", "2",
                           "--graceful-timeout", LONGER)
    conn = connection(server)
    try:
        conn.request("GET", "/some/path?x=1")
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200
        assert body == b"hello from hello_app /some/path?x=1"
        assert response.getheader("Server") == "aiowsgi"
        assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
        assert response.getheader("Content-Length") == str(len(body))
        _check_date(response.getheader("Date"))
        assert response.version == 11 and not response.will_close

        server.proc.send_signal(signal.SIGTERM)
        returncode = server.wait()
    finally:
        conn.close()
    stderr = "".join(server.output())
    assert returncode == 0, f"exit status {returncode}:\n{stderr}"
    assert f"aiowsgi serving http://127.0.0.1:{server.port} ({loop} loop, 2 threads)" in stderr
    assert ("[INFO] SIGTERM received: shutting down gracefully (a second SIGINT (Ctrl+C) or "
            "SIGTERM stops at once)\n") in stderr
    assert "[INFO] draining: 0 requests in flight, 1 connection open\n" in stderr  # idle
    assert "drained" not in stderr  # nothing to wait for, nothing to say about it
    assert "shutdown complete" in stderr
    assert "Traceback" not in stderr, stderr


def test_dotted_attribute_is_served(start_process: Callable[..., ServeProcess]) -> None:
    server = start_process("pkg.mod:obj.app", "--loop", "asyncio")
    conn = connection(server)
    try:
        conn.request("GET", "/dotted")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"dotted /dotted"
    finally:
        conn.close()
    server.proc.send_signal(signal.SIGINT)
    stderr = "".join(server.output())
    assert server.wait() == 0, stderr
    assert "SIGINT received" in stderr
    assert "shutdown complete" in stderr


class BlockedRequest:
    """A GET /block sent from a thread; what it ends with is kept for the test."""

    def __init__(self, server: ServeProcess) -> None:
        self.outcome: object = None
        self.thread = threading.Thread(target=self._run, args=(server,), daemon=True)
        self.thread.start()

    def _run(self, server: ServeProcess) -> None:
        conn = connection(server, timeout=2 * SAFETY)
        try:
            conn.request("GET", "/block")
            response = conn.getresponse()
            self.outcome = (response.status, response.read())
        except (OSError, http.client.HTTPException) as exc:
            self.outcome = exc
        finally:
            conn.close()


def _interrupt_twice_during_request(app_dir: Path, server: ServeProcess) -> BlockedRequest:
    """Start a blocking request, then SIGINT, and SIGINT again once shutdown has begun."""
    request = BlockedRequest(server)
    wait_for((app_dir / "started").exists, "the request to reach the application")
    server.proc.send_signal(signal.SIGINT)
    server.wait_logged("shutting down gracefully")
    assert server.proc.poll() is None, "exited before the request in flight finished"
    server.proc.send_signal(signal.SIGINT)
    return request


def test_second_sigint_exits_promptly(
        app_dir: Path, start_process: Callable[..., ServeProcess]) -> None:
    server = start_process("block_app:app", "--graceful-timeout", LONGER)
    try:
        request = _interrupt_twice_during_request(app_dir, server)
        try:
            returncode = server.wait()
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {SAFETY} s after the second SIGINT, while the "
                        f"application thread is blocked:\n{''.join(server.lines)}")
        stderr = "".join(server.output())
        assert returncode == 0, stderr
        assert ("SIGINT received: shutting down gracefully (a second SIGINT (Ctrl+C) or "
                "SIGTERM stops at once)") in stderr
        assert ("draining: 1 request in flight, 1 connection open; waiting up to "
                f"{2 * SAFETY:g}s for it to finish") in stderr
        assert "SIGINT received while shutting down: closing every connection now" in stderr
        assert "[WARNING] stopping at once: cutting off 1 request still in flight" in stderr
        assert "shutdown complete" in stderr
        # The request in flight was not answered: its connection was closed.
        request.thread.join(SAFETY)
        assert not request.thread.is_alive()
        assert isinstance(request.outcome, OSError | http.client.HTTPException), request.outcome
    finally:
        (app_dir / "release").touch()


def test_second_sigint_closes_connections_without_traceback(
        app_dir: Path, start_process: Callable[..., ServeProcess]) -> None:
    server = start_process("block_app:app", "--graceful-timeout", LONGER)
    try:
        request = _interrupt_twice_during_request(app_dir, server)
        server.wait_logged("shutdown complete")
        request.thread.join(SAFETY)
        assert not request.thread.is_alive()
    finally:
        # Let the application thread finish, so the process can end even if a blocked
        # worker keeps it alive; what that thread does afterwards must not log errors.
        (app_dir / "release").touch()
    returncode = server.wait()
    stderr = "".join(server.output())
    assert returncode == 0, stderr
    assert "cutting off 1 request still in flight" in stderr
    assert "Traceback" not in stderr, stderr
    assert "Exception" not in stderr, stderr


def test_a_drain_says_what_it_waits_for_and_that_it_all_finished(
        app_dir: Path, start_process: Callable[..., ServeProcess]) -> None:
    server = start_process("block_app:app", "--graceful-timeout", LONGER)
    try:
        request = BlockedRequest(server)
        wait_for((app_dir / "started").exists, "the request to reach the application")
        server.signal(signal.SIGTERM)
        server.wait_logged(f"[INFO] draining: 1 request in flight, 1 connection open; "
                           f"waiting up to {2 * SAFETY:g}s for it to finish")
    finally:
        (app_dir / "release").touch()
    request.thread.join(SAFETY)
    assert request.outcome == (200, b"done")
    assert server.wait() == 0
    stderr = "".join(server.output())
    assert re.search(r"\[INFO\] drained in \d+\.\d\ds: every request in flight finished\n",
                     stderr), stderr
    assert "shutdown complete" in stderr


def test_a_drain_cut_short_by_the_graceful_timeout_says_so(
        app_dir: Path, start_process: Callable[..., ServeProcess]) -> None:
    server = start_process("block_app:app", "--graceful-timeout", "0.2")
    try:
        request = BlockedRequest(server)
        wait_for((app_dir / "started").exists, "the request to reach the application")
        server.signal(signal.SIGTERM)
        assert server.wait() == 0  # the application still holds the request
        request.thread.join(SAFETY)
    finally:
        (app_dir / "release").touch()
    assert isinstance(request.outcome, OSError | http.client.HTTPException), request.outcome
    stderr = "".join(server.output())
    assert ("draining: 1 request in flight, 1 connection open; waiting up to 0.2s for it to "
            "finish") in stderr
    assert ("[WARNING] graceful timeout (0.2s) reached: cutting off 1 request still in "
            "flight\n") in stderr


def test_sighup_is_ignored_and_the_request_in_flight_finishes(
        app_dir: Path, start_process: Callable[..., ServeProcess]) -> None:
    """Without --workers a SIGHUP was a hangup's default, an exit that dropped every
    request in flight: it is ignored, with a warning, and serving goes on."""
    server = start_process("block_app:app")
    try:
        request = BlockedRequest(server)
        wait_for((app_dir / "started").exists, "the request to reach the application")
        server.signal(signal.SIGHUP)
        server.wait_logged("[WARNING] SIGHUP ignored, still serving: reloading needs "
                           "--workers or --reload")
        assert server.proc.poll() is None
    finally:
        (app_dir / "release").touch()
    request.thread.join(SAFETY)
    assert request.outcome == (200, b"done")
    conn = connection(server)
    try:
        conn.request("GET", "/after")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"done")
    finally:
        conn.close()
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    stderr = "".join(server.output())
    assert stderr.count("SIGHUP") == 1, stderr


@pytest.mark.parametrize("args", [
    pytest.param(["--reload-dir", "."], id="one-server"),  # --reload-dir without --reload
    pytest.param(["--workers", "2"], id="workers"),
    pytest.param(["--reload"], id="reload"),
])
def test_process_and_command_line_options_still_serve(
        start_process: Callable[..., ServeProcess], args: list[str]) -> None:
    """The command line acts on the options a Server refuses (--workers, --reload and
    --reload-dir itself; --loop and --log-level through run()), then serves."""
    if "--reload" in args:
        pytest.importorskip("watchfiles")
    server = start_process("hello_app:app", *args, "--loop", "asyncio", "--log-level", "debug")
    conn = connection(server)
    try:
        conn.request("GET", "/x")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"hello from hello_app /x?")
    finally:
        conn.close()
    server.proc.send_signal(signal.SIGTERM)
    stderr = "".join(server.output())
    assert server.wait() == 0, stderr
    assert "(asyncio loop, 8 threads)" in stderr  # in the server, or each worker
    assert "listening on http://127.0.0.1:" in stderr  # a debug message
    assert "Traceback" not in stderr and "does not take" not in stderr, stderr
