"""The access log and --log-config."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiowsgi import Config, ConfigError, accesslog
from aiowsgi.runner import configure_logging

from .conftest import StartServer
from .http import RawClient


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("201 Created", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


class AccessRecords:
    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog

    def lines(self) -> list[str]:
        return [r.getMessage() for r in self.caplog.records if r.name == "aiowsgi.access"]


@pytest.fixture
def access_records(caplog: pytest.LogCaptureFixture) -> AccessRecords:
    caplog.set_level(logging.INFO, logger="aiowsgi.access")
    return AccessRecords(caplog)


async def test_one_line_per_request(start_server: StartServer,
                                    access_records: AccessRecords) -> None:
    server = await start_server(hello)
    client = await RawClient.connect(server.host, server.port)
    await client.request("GET", "/path?x=1", headers={"User-Agent": "tester/1",
                                                      "Referer": "http://ref/"})
    await client.close()
    lines = access_records.lines()
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith('127.0.0.1 - - [')
    assert '"GET /path?x=1 HTTP/1.1" 201 ' in line
    assert '"http://ref/" "tester/1"' in line
    assert line.endswith(" +")  # complete, and the connection kept open
    duration = float(line.rsplit(" ", 2)[1])
    assert 0 < duration < 30


async def test_custom_format(start_server: StartServer,
                             access_records: AccessRecords) -> None:
    server = await start_server(hello, access_log_format="%(m)s %(U)s %(q)s %(s)s %(H)s")
    client = await RawClient.connect(server.host, server.port)
    await client.request("GET", "/a/b?c=d")
    await client.close()
    assert access_records.lines() == ["GET /a/b c=d 201 HTTP/1.1"]


async def test_no_access_log(start_server: StartServer,
                             access_records: AccessRecords,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(accesslog, "write", lambda *args: calls.append(args))
    for options in ({"access_log": False}, {}):
        if options == {}:  # on, but the logger is above INFO: no work either
            logging.getLogger("aiowsgi.access").setLevel(logging.WARNING)
        server = await start_server(hello, **options)
        client = await RawClient.connect(server.host, server.port)
        assert (await client.request()).status == 201
        await client.close()
    assert calls == []
    assert access_records.lines() == []


def test_unknown_atom_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^access_log_format: unknown atom %\(x\)s"):
        Config(access_log_format="%(h)s %(x)s")
    with pytest.raises(ConfigError, match=r"^access_log_format: malformed"):
        Config(access_log_format="%(h)s %(")


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
