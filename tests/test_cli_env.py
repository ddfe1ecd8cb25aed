"""Options from AIOWSGI_* environment variables, --factory, --app-dir and --root-path."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiowsgi import Config, cli

from .conftest import StartServer
from .http import RawClient


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[tuple[Any, Config]]]:
    """What main() would serve, instead of serving it; apps are imported from tmp_path.
    The logging main() sets up when an app fails to load is undone afterwards."""
    calls: list[tuple[Any, Config]] = []
    monkeypatch.setattr(cli, "run", lambda app, config: calls.append((app, config)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "envapp.py").write_text(textwrap.dedent("""
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"hi"]

        def make_app():
            return app

        def make_nothing():
            return 42

        def broken_factory():
            raise RuntimeError("no database")
    """))
    logger = logging.getLogger("aiowsgi")
    saved = (logger.level, list(logger.handlers))
    yield calls
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]


def test_environment_variables_set_options(served: list[tuple[Any, Config]]) -> None:
    env = {"AIOWSGI_THREADS": "3", "AIOWSGI_SERVER_HEADER": "false",
           "AIOWSGI_SEND_TIMEOUT": "2.5", "AIOWSGI_LOOP": "asyncio"}
    assert cli.main(["serve", "envapp:app"], env) == 0
    config = served[0][1]
    assert (config.threads, config.server_header, config.send_timeout, config.loop) == (
        3, False, 2.5, "asyncio")


def test_command_line_wins_over_environment(served: list[tuple[Any, Config]]) -> None:
    assert cli.main(["serve", "envapp:app", "--threads", "5"], {"AIOWSGI_THREADS": "3"}) == 0
    assert served[0][1].threads == 5


def test_app_from_the_environment(served: list[tuple[Any, Config]]) -> None:
    assert cli.main(["serve"], {"AIOWSGI_APP": "envapp:app"}) == 0
    assert served[0][0].__name__ == "app"


@pytest.mark.parametrize(("env", "message"), [
    ({"AIOWSGI_THREADS": "many"}, "AIOWSGI_THREADS: invalid int value 'many'"),
    ({"AIOWSGI_THREADS": "0"}, "AIOWSGI_THREADS: must be at least 1"),
    ({"AIOWSGI_SERVER_HEADER": "maybe"}, "AIOWSGI_SERVER_HEADER: expected true or false"),
    ({"AIOWSGI_LOOP": "trio"}, "AIOWSGI_LOOP: must be one of"),
    ({"AIOWSGI_ROOT_PATH": "api/"}, "AIOWSGI_ROOT_PATH: must be empty or start with '/'"),
    ({}, "the application is missing: give APP or set AIOWSGI_APP"),
])
def test_bad_environment_values_exit_2_naming_the_variable(
        served: list[tuple[Any, Config]], capsys: pytest.CaptureFixture[str],
        env: dict[str, str], message: str) -> None:
    argv = ["serve"] if not env else ["serve", "envapp:app"]
    with pytest.raises(SystemExit) as info:
        cli.main(argv, env)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not served


@pytest.mark.parametrize(("text", "level"), [
    ("debug", "debug"), ("DEBUG", "debug"), ("Warning", "warning"), ("warn", "warning"),
    ("WARN", "warning"), ("Critical", "critical"),
])
def test_log_level_in_any_case_and_warn(served: list[tuple[Any, Config]], text: str,
                                        level: str) -> None:
    assert cli.main(["serve", "envapp:app", "--log-level", text], {}) == 0
    assert cli.main(["serve", "envapp:app"], {"AIOWSGI_LOG_LEVEL": text}) == 0
    assert [config.log_level for _, config in served] == [level, level]


def test_choices_in_any_case(served: list[tuple[Any, Config]]) -> None:
    assert cli.main(["serve", "envapp:app", "--loop", "AsyncIO"], {}) == 0
    assert cli.main(["serve", "envapp:app"], {"AIOWSGI_LOOP": "ASYNCIO"}) == 0
    assert [config.loop for _, config in served] == ["asyncio", "asyncio"]


@pytest.mark.parametrize(("env", "message"), [
    ({"AIOWSGI_APP_DIR": "/nonexistent/aiowsgi"},
     "argument AIOWSGI_APP_DIR: '/nonexistent/aiowsgi' is not a directory"),
    ({"AIOWSGI_RELOAD": "true", "AIOWSGI_RELOAD_DIR": ".,/nonexistent/aiowsgi"},
     "argument AIOWSGI_RELOAD_DIR: '/nonexistent/aiowsgi' is not a directory"),
    ({"AIOWSGI_LOG_CONFIG": "/nonexistent/aiowsgi.json"},
     "argument AIOWSGI_LOG_CONFIG: cannot use '/nonexistent/aiowsgi.json'"),
    ({"AIOWSGI_SSL_CERTFILE": "/nonexistent/aiowsgi.pem"},
     "argument AIOWSGI_SSL_CERTFILE: cannot load '/nonexistent/aiowsgi.pem'"),
])
def test_unusable_files_from_the_environment_exit_2_naming_the_variable(
        served: list[tuple[Any, Config]], capsys: pytest.CaptureFixture[str],
        env: dict[str, str], message: str) -> None:
    # An application that fails to load: the option is still what is reported.
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "envapp:broken_factory", "--factory"], env)
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"aiowsgi serve: error: {message}"), err


def test_factory(served: list[tuple[Any, Config]]) -> None:
    assert cli.main(["serve", "envapp:make_app", "--factory"], {}) == 0
    assert served[0][0].__name__ == "app"
    assert cli.main(["serve", "envapp:make_app"], {"AIOWSGI_FACTORY": "1"}) == 0
    assert served[1][0].__name__ == "app"


@pytest.mark.parametrize(("spec", "message"), [
    ("envapp:make_nothing", "the factory 'envapp:make_nothing' returned int, not a WSGI "
                          "application"),
    ("envapp:broken_factory", "calling the factory 'envapp:broken_factory' failed: "
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


def paths(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


@pytest.mark.parametrize(("target", "expected"), [
    ("/api/users", b"/api|/users"),
    ("/api", b"/api|"),
    ("/api/", b"/api|/"),
    ("/apiary", b"/api|/apiary"),  # not under the prefix: left alone
    ("/users", b"/api|/users"),  # a proxy that already stripped the prefix
])
async def test_root_path(start_server: StartServer, target: str, expected: bytes) -> None:
    server = await start_server(paths, root_path="/api")
    client = await RawClient.connect(server.host, server.port)
    assert (await client.request("GET", target)).body == expected
    await client.close()


def where(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = (f"{environ['REMOTE_ADDR']}|{environ['wsgi.url_scheme']}|"
            f"{environ.get('HTTP_HOST')}").encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "shop.example"}


async def test_proxy_headers_from_a_trusted_proxy(start_server: StartServer) -> None:
    server = await start_server(where, proxy_headers=True)  # loopback is trusted by default
    client = await RawClient.connect(server.host, server.port)
    response = await client.request("GET", "/", headers=FORWARDED)
    assert response.body == b"203.0.113.9|https|shop.example"
    await client.close()


async def test_proxy_headers_from_others_are_ignored(start_server: StartServer) -> None:
    for options in ({"proxy_headers": True, "forwarded_allow_ips": "10.0.0.0/8"},
                    {"proxy_headers": False}):
        server = await start_server(where, **options)
        client = await RawClient.connect(server.host, server.port)
        response = await client.request("GET", "/", headers=FORWARDED)
        assert response.body == b"127.0.0.1|http|test"
        await client.close()


def test_bad_trusted_proxy_list_exits_2(served: list[tuple[Any, Config]],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "envapp:app", "--forwarded-allow-ips", "localhost"], {})
    assert info.value.code == 2
    assert "--forwarded-allow-ips: invalid trusted proxy 'localhost'" in capsys.readouterr().err


def test_bind_is_repeatable_and_comes_from_the_environment(
        served: list[tuple[Any, Config]]) -> None:
    argv = ["serve", "envapp:app", "--bind", "127.0.0.1:8001", "--bind", "unix:/tmp/a.sock"]
    assert cli.main(argv, {}) == 0
    assert served[0][1].bind == ("127.0.0.1:8001", "unix:/tmp/a.sock")
    assert cli.main(["serve", "envapp:app"], {"AIOWSGI_BIND": "[::1]:80, 0.0.0.0:81"}) == 0
    assert served[1][1].bind == ("[::1]:80", "0.0.0.0:81")


def test_bad_bind_exits_2(served: list[tuple[Any, Config]],
                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "envapp:app", "--bind", "8000"], {})
    assert info.value.code == 2
    assert "--bind: '8000': expected HOST:PORT" in capsys.readouterr().err
