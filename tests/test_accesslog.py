"""The access log: one line per request, or none when it is off; its atoms, each one
listed in the README; the status the client got, body bytes as gunicorn counts them,
and responses that did not complete."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiowsgi import Config, ConfigError, accesslog

from .apps.echo import status_app
from .apps.gate import Gate
from .conftest import StartServer
from .http import RawClient
from .process import ROOT, ServeProcess, http_get
from .waiting import SAFETY, until

Env = dict[str, Any]
StartResponse = Callable[..., Any]


PREFIX = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[INFO\] ")


class AccessLines:
    """The access log's lines, from its records (``records``: a handler other than
    aiowsgi's own is configured) or from what aiowsgi's own handler's stream got
    (``lines``: the access log writes around logging)."""

    def __init__(self, caplog: pytest.LogCaptureFixture, stream: io.StringIO | None) -> None:
        self.caplog = caplog
        self.stream = stream

    def lines(self) -> list[str]:
        records = [r.getMessage() for r in self.caplog.records if r.name == "aiowsgi.access"]
        if self.stream is None:
            return records
        assert records == []
        found = []
        for line in self.stream.getvalue().splitlines():
            if "[INFO]" in line:
                assert PREFIX.match(line), line
                found.append(PREFIX.sub("", line, count=1))
        return found

    async def wait(self, count: int) -> list[str]:
        """The first ``count`` lines, once they are written (the safety timeout aside)."""
        await until(lambda: len(self.lines()) >= count, f"{count} access log lines")
        return self.lines()


@pytest.fixture
def own_handler(monkeypatch: pytest.MonkeyPatch,
                caplog: pytest.LogCaptureFixture) -> accesslog.DefaultHandler:
    """Servers started from now on find aiowsgi's own handler to be the only one (as it
    is under ``run()`` when nothing else is configured; under pytest it is not), and it
    writes to a string."""
    caplog.set_level(logging.INFO, logger="aiowsgi")
    handler = accesslog.DefaultHandler()
    stream = io.StringIO()
    handler.setStream(stream)
    monkeypatch.setattr(accesslog, "_sole_handler", lambda: handler)
    return handler


@pytest.fixture(params=["records", "lines"])
def access(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> AccessLines:
    caplog.set_level(logging.INFO, logger="aiowsgi.access")
    stream = (request.getfixturevalue("own_handler").stream if request.param == "lines"
              else None)
    return AccessLines(caplog, stream)


def app(environ: Env, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/fail-before":
        raise RuntimeError("before the headers")
    if path == "/chunked":
        start_response("202 Accepted", [("Content-Type", "text/plain"), ("X-Out", "a"),
                                        ("X-Out", "b")])
        return iter([b"12345", b"678"])
    if path == "/fail-after":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            yield b"abcd"
            raise RuntimeError("after the headers")

        return body()
    if path == "/file":
        file = open(environ["test.file"], "rb")  # noqa: SIM115 - the server closes it
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](file)  # type: ignore[no-any-return]
    environ["REMOTE_USER"] = "alice"
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Out", "out"),
                                   ("Content-Length", "5")])
    return [b"hello"]


created = status_app("201 Created", [("Content-Type", "text/plain"), ("Content-Length", "5")],
                     b"hello")


async def test_one_line_per_request(start_server: StartServer,
                                    access: AccessLines) -> None:
    server = await start_server(created)
    client = await RawClient.connect(server.host, server.port)
    await client.request("GET", "/path?x=1", headers={"User-Agent": "tester/1",
                                                      "Referer": "http://ref/"})
    await client.close()
    line, = await access.wait(1)
    assert line.startswith('127.0.0.1 - - [')
    assert '"GET /path?x=1 HTTP/1.1" 201 ' in line
    assert '"http://ref/" "tester/1"' in line
    assert line.endswith(" +")  # complete, and the connection kept open
    duration = float(line.rsplit(" ", 2)[1])
    assert 0 < duration < SAFETY


async def test_custom_format(start_server: StartServer,
                             access: AccessLines) -> None:
    server = await start_server(created, access_log_format="%(m)s %(U)s %(q)s %(s)s %(H)s")
    client = await RawClient.connect(server.host, server.port)
    await client.request("GET", "/a/b?c=d")
    await client.close()
    assert await access.wait(1) == ["GET /a/b c=d 201 HTTP/1.1"]


async def test_no_access_log(start_server: StartServer,
                             access: AccessLines,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(accesslog.AccessLog, "write", lambda *args: calls.append(args))
    for options in ({"access_log": False}, {}):
        if options == {}:  # on, but the logger is above INFO: no work either
            logging.getLogger("aiowsgi.access").setLevel(logging.WARNING)
        server = await start_server(created, **options)
        client = await RawClient.connect(server.host, server.port)
        assert (await client.request()).status == 201
        await client.close()
    assert calls == []
    assert access.lines() == []


def test_unknown_atom_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^access_log_format: unknown atom %\(x\)s"):
        Config(access_log_format="%(h)s %(x)s")
    with pytest.raises(ConfigError, match=r"^access_log_format: malformed"):
        Config(access_log_format="%(h)s %(")


# every atom, with the value it has for: GET /p/a?q=1 from a client whose request has
# Referer r, User-Agent ua and X-In in; the app answers 201 with 5 body bytes
EXPECTED = {
    "h": "127.0.0.1", "l": "-", "u": "alice", "r": "GET /p/a?q=1 HTTP/1.1", "m": "GET",
    "U": "/p/a", "q": "q=1", "H": "HTTP/1.1", "s": "201", "b": "5", "B": "5", "f": "r",
    "a": "ua", "X": "+", "{x-in}i": "in", "{X-Missing}i": "-", "{x-out}o": "out",
    "{content-length}o": "5", "{x-missing}o": "-", "{Content-Type}i": "-",
}


async def test_every_atom(start_server: StartServer, access: AccessLines) -> None:
    atoms = [name for name in accesslog.ATOMS if "{" not in name]
    atoms += [key for key in EXPECTED if "{" in key]
    fmt = "|".join(f"%({name})s" for name in atoms)
    server = await start_server(app, access_log_format=fmt)
    client = await RawClient.connect(server.host, server.port)
    await client.request("GET", "/p/a?q=1", headers={"Referer": "r", "User-Agent": "ua",
                                                    "X-In": "in"})
    line, = await access.wait(1)
    await client.close()
    values = dict(zip(atoms, line.split("|"), strict=True))
    for name, value in EXPECTED.items():
        assert values[name] == value, name
    _, port = client.writer.get_extra_info("sockname")
    assert values["p"] == str(port)
    assert values["t"].endswith(" +0000") or values["t"][-5] in "+-"
    assert int(values["T"]) == int(float(values["L"]))
    assert abs(int(values["D"]) / 1e6 - float(values["L"])) < 1e-5
    assert int(values["M"]) == int(values["D"]) // 1000
    # and README lists each of them
    readme = (ROOT / "README.md").read_text()
    for name in accesslog.ATOMS:
        assert f"%({name})s" in readme, name


async def test_default_format(start_server: StartServer, access: AccessLines) -> None:
    server = await start_server(app)
    client = await RawClient.connect(server.host, server.port)
    await client.request("GET", "/x", headers={"Referer": "r", "User-Agent": "ua"})
    line, = await access.wait(1)
    await client.close()
    prefix, _, rest = line.partition(" [")
    assert prefix == "127.0.0.1 - alice"
    assert rest.split("] ", 1)[1].rsplit(" ", 2)[0] == '"GET /x HTTP/1.1" 201 5 "r" "ua"'
    assert line.endswith(" +")


async def test_status_and_bytes_the_client_got(start_server: StartServer,
                                               access: AccessLines, tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"f" * 100_000)

    def with_file(environ: Env, start_response: StartResponse) -> Iterable[bytes]:
        environ["test.file"] = str(path)
        return app(environ, start_response)

    server = await start_server(with_file,
                                access_log_format="%(U)s %(m)s %(s)s %(b)s %(B)s %(X)s "
                                                  "%({x-out}o)s")
    client = await RawClient.connect(server.host, server.port)
    assert (await client.request("GET", "/fail-before")).status == 500
    chunked = await client.request("GET", "/chunked")
    assert chunked.chunked and chunked.body == b"12345678"
    assert (await client.request("HEAD", "/chunked")).status == 202
    assert len((await client.request("GET", "/file")).body) == 100_000
    assert (await client.request("HEAD", "/fail-before")).status == 500
    await client.send(b"GET /fail-after HTTP/1.1\r\nHost: t\r\n\r\n")
    async with asyncio.timeout(SAFETY):
        while await client.reader.read(65536):
            pass  # the response is cut short: the connection ends
    await client.close()
    lines = await access.wait(6)
    error_body = len(b"500 Internal Server Error\n")
    assert lines == [
        f"/fail-before GET 500 {error_body} {error_body} + -",  # the app raised early
        "/chunked GET 202 8 8 + a, b",  # body bytes, not the chunk framing
        "/chunked HEAD 202 - 0 + a, b",
        "/file GET 200 100000 100000 + -",
        "/fail-before HEAD 500 - 0 + -",
        "/fail-after GET 200 4 4 X -",  # the client got the 200 head, then an abort
    ]


async def test_client_gone_mid_response_is_logged_as_aborted(
        start_server: StartServer, access: AccessLines) -> None:
    started, release, closed = threading.Event(), threading.Event(), threading.Event()

    def slow(environ: Env, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            try:
                yield b"first"
                started.set()
                release.wait(SAFETY)
                yield b"never"
            finally:
                closed.set()

        return body()

    server = await start_server(slow, access_log_format="%(s)s %(b)s %(X)s")
    client = await RawClient.connect(server.host, server.port)
    await client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert await asyncio.to_thread(started.wait, SAFETY)
    async with asyncio.timeout(SAFETY):
        await client.reader.readuntil(b"first")
    await client.reset()  # while the application still runs
    try:
        line, = await access.wait(1)
    finally:
        release.set()
    assert await asyncio.to_thread(closed.wait, SAFETY)
    assert line == "200 5 X"


async def test_request_timeout_is_logged_as_504(start_server: StartServer,
                                                access: AccessLines) -> None:
    gate = Gate()
    server = await start_server(gate, request_timeout=0.2,
                                access_log_format="%(U)s %(s)s %(X)s")
    client = await RawClient.connect(server.host, server.port)
    try:
        assert (await client.request("GET", "/stuck")).status == 504
        line, = await access.wait(1)
        assert line == "/stuck 504 -"
    finally:
        gate.release.set()
        await client.close()


@pytest.mark.parametrize("fmt", ["%({x}z)s", "%({}q)s", "%(x)s"])
def test_unknown_atoms_are_refused(fmt: str) -> None:
    with pytest.raises(ConfigError, match=r"^access_log_format: unknown atom"):
        Config(access_log_format=fmt)


def test_header_atoms_are_accepted() -> None:
    Config(access_log_format="%({X-Request-Id}i)s %({content-type}o)s %(u)s %(l)s %(M)s")


# -- the line written around logging ---------------------------------------------------

REQUEST = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/p/a?q=1", "SERVER_PROTOCOL": "HTTP/1.1",
           "REMOTE_ADDR": "10.0.0.1", "REMOTE_PORT": "5555", "REMOTE_USER": "bob",
           "HTTP_REFERER": "r", "HTTP_USER_AGENT": 'ua "x"', "HTTP_X_IN": "in"}
NOW = 1_700_000_000_123_456_789  # ns: not on a millisecond, as logging's float time is not


@pytest.mark.parametrize("fmt", [
    accesslog.DEFAULT_FORMAT,
    "|".join(f"%({name})s" for name in accesslog.ATOMS if "{" not in name),
    "%({X-In}i)s %({x-missing}i)s %({x-out}o)s %({Content-Type}o)s %({content-type}i)s",
    '100%% of {braces} "quotes" \\backslash\\ %(s)s%%',
    "%(h)-15s %(s)s",  # a width: the general way
    "no atom at all",
    "%(M)s",
], ids=["default", "every-atom", "headers", "literals", "width", "none", "one"])
@pytest.mark.parametrize(("prefixed", "role"), [(True, ""), (True, "worker"), (False, "")],
                         ids=["prefixed", "worker", "bare"])
@pytest.mark.parametrize(("status", "body_bytes", "headers", "duration"), [
    ("201 Created", 5, [("X-Out", "a"), ("x-out", "b"), ("Content-Type", "t")], 1.2345678),
    (None, 0, None, 0.0000004),
])
def test_a_compiled_line_is_the_format_of_the_atoms(
        fmt: str, prefixed: bool, role: str, status: str | None, body_bytes: int,
        headers: list[tuple[str, str]] | None, duration: float) -> None:
    Config(access_log_format=fmt)  # a format the server takes
    line = accesslog.compile_line(fmt, prefixed, role)(REQUEST, status, body_bytes, headers,
                                                       NOW, duration, "+")
    expected = fmt % accesslog.atoms(fmt, REQUEST, status, body_bytes, headers,
                                     NOW / 1e9 - duration, duration, "+")
    assert line == (accesslog.prefix(NOW, role) if prefixed else "") + expected + "\n"


@pytest.mark.parametrize("role", ["", "worker", "supervisor"])
def test_the_prefix_is_what_the_default_handler_writes(monkeypatch: pytest.MonkeyPatch,
                                                       role: str) -> None:
    for now in (NOW, NOW + 876_000_000, NOW + 1_000_999_999):
        monkeypatch.setattr(time, "time_ns", lambda now=now: now)
        monkeypatch.setattr(time, "time", lambda now=now: now / 1e9)
        record = logging.LogRecord("aiowsgi.access", logging.INFO, __file__, 1, "line", None,
                                   None)
        assert (accesslog.DefaultHandler(role).format(record)
                == accesslog.prefix(now, role) + "line"), now
    # one of several processes: its role and id; alone, neither
    assert re.fullmatch(r"[^\[]+ \[INFO\] ", accesslog.prefix(NOW))
    assert accesslog.prefix(NOW, "worker").endswith(f" [worker {os.getpid()}] [INFO] ")


async def test_a_workers_access_lines_carry_its_role_and_id(
        start_server: StartServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Written around logging, as by aiowsgi's own handler in a ``--workers`` worker."""
    caplog.set_level(logging.INFO, logger="aiowsgi")
    handler = accesslog.DefaultHandler("worker")
    handler.setStream(io.StringIO())
    monkeypatch.setattr(accesslog, "_sole_handler", lambda: handler)
    server = await start_server(created, access_log_format="%(U)s")
    client = await RawClient.connect(server.host, server.port)
    assert (await client.request("GET", "/mine")).status == 201
    await client.close()
    await server.shutdown()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
                        rf"\[worker {os.getpid()}\] \[INFO\] /mine\n",
                        handler.stream.getvalue())


async def test_lines_go_around_logging_only_when_its_own_handler_alone_gets_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    root, parent, access = (logging.getLogger(), logging.getLogger("aiowsgi"),
                            logging.getLogger("aiowsgi.access"))
    own = accesslog.DefaultHandler()
    own.setStream(io.StringIO())
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(parent, "handlers", [own])
    monkeypatch.setattr(access, "handlers", [])
    monkeypatch.setattr(parent, "propagate", True)
    monkeypatch.setattr(access, "propagate", True)
    parent_level, access_level = parent.level, access.level
    parent.setLevel(logging.INFO)
    access.setLevel(logging.NOTSET)

    async def writes_around_logging() -> bool | None:
        log = accesslog.open_access_log(True, accesslog.DEFAULT_FORMAT, 1000)
        if log is None:
            return None
        await log.close(SAFETY)
        return log.writer is not None

    other = logging.StreamHandler(io.StringIO())
    cases: list[tuple[str, Callable[[], object], bool | None]] = [
        ("aiowsgi's handler alone", lambda: None, True),
        ("a root handler", lambda: monkeypatch.setattr(root, "handlers", [other]), False),
        ("but aiowsgi does not propagate",
         lambda: monkeypatch.setattr(parent, "propagate", False), True),
        ("a second handler", lambda: monkeypatch.setattr(parent, "handlers", [own, other]),
         False),
        ("another handler instead", lambda: monkeypatch.setattr(parent, "handlers", [other]),
         False),
        ("its own again", lambda: monkeypatch.setattr(parent, "handlers", [own]), True),
        ("a handler on the access logger",
         lambda: monkeypatch.setattr(access, "handlers", [other]), False),
        ("none again", lambda: monkeypatch.setattr(access, "handlers", []), True),
        ("a filter on the handler", lambda: own.addFilter(lambda record: True), False),
        ("no filter", lambda: own.filters.clear(), True),
        ("another format", lambda: own.setFormatter(logging.Formatter("%(message)s")), False),
        ("the format again",
         lambda: own.setFormatter(logging.Formatter(accesslog.LOG_FORMAT)), True),
        ("a worker's format", lambda: own.setFormatter(
            logging.Formatter(accesslog.log_format("worker"))), False),
        ("its format again",
         lambda: own.setFormatter(logging.Formatter(accesslog.LOG_FORMAT)), True),
        ("a worker's handler", lambda: monkeypatch.setattr(
            parent, "handlers", [accesslog.DefaultHandler("worker")]), True),
        ("its own once more", lambda: monkeypatch.setattr(parent, "handlers", [own]), True),
        ("the handler above info", lambda: own.setLevel(logging.WARNING), False),
        ("the access logger above info", lambda: access.setLevel(logging.WARNING), None),
    ]
    try:
        for name, change, expected in cases:
            change()
            assert await writes_around_logging() is expected, name
    finally:
        parent.setLevel(parent_level)
        access.setLevel(access_level)


class StuckStream(io.StringIO):
    """A stderr nobody reads: a write blocks until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.release.wait(SAFETY)
        return super().write(text)


async def test_a_stuck_stderr_never_holds_up_requests(
        start_server: StartServer, own_handler: accesslog.DefaultHandler,
        caplog: pytest.LogCaptureFixture) -> None:
    stuck = StuckStream()
    own_handler.setStream(stuck)
    server = await start_server(created, access_log_buffer=500)
    client = await RawClient.connect(server.host, server.port)
    try:
        assert (await client.request("GET", "/first")).status == 201
        assert await asyncio.to_thread(stuck.entered.wait, SAFETY)  # writing, and stuck
        for number in range(20):
            assert (await client.request("GET", f"/{number}")).status == 201
        dropped = server.stats()["access_log_dropped"]
        # about 130 characters a line: 3 wait, the rest cannot
        assert 15 <= dropped <= 18
    finally:
        stuck.release.set()
        await client.close()
    await server.shutdown()
    written = stuck.getvalue().splitlines()
    assert len(written) == 21 - dropped
    assert [line.split('"')[1] for line in written[:2]] == ["GET /first HTTP/1.1",
                                                            "GET /0 HTTP/1.1"]
    assert f"{dropped} access log lines dropped: more than access_log_buffer=500" in caplog.text


async def test_lines_still_stuck_at_the_end_of_the_shutdown_are_reported(
        start_server: StartServer, own_handler: accesslog.DefaultHandler,
        caplog: pytest.LogCaptureFixture) -> None:
    stuck = StuckStream()
    own_handler.setStream(stuck)
    server = await start_server(created)
    client = await RawClient.connect(server.host, server.port)
    for _ in range(3):
        assert (await client.request()).status == 201
    await client.close()
    try:
        await until(stuck.entered.is_set, "the first write")
        await server.shutdown(timeout=0)  # waits a second for the writer, not for ever
    finally:
        stuck.release.set()
    assert "3 access log lines still being written at the end of the shutdown" \
        in caplog.text


async def test_lines_that_cannot_be_written_are_counted(
        start_server: StartServer, own_handler: accesslog.DefaultHandler,
        caplog: pytest.LogCaptureFixture) -> None:
    class FullDisk(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    own_handler.setStream(FullDisk())
    server = await start_server(created)
    client = await RawClient.connect(server.host, server.port)
    for _ in range(4):
        assert (await client.request()).status == 201
    await client.close()
    await until(lambda: server.stats()["access_log_dropped"] == 4, "4 failed lines")
    await server.shutdown()
    assert ("4 access log lines could not be written (OSError: [Errno 28] No space left "
            "on device)") in caplog.text


async def test_every_line_is_written_by_the_end_of_the_shutdown(
        start_server: StartServer, own_handler: accesslog.DefaultHandler) -> None:
    server = await start_server(created, access_log_format="%(U)s")
    client = await RawClient.connect(server.host, server.port)
    for number in range(50):
        assert (await client.request("GET", f"/{number}")).status == 201
    await client.close()
    await server.shutdown()  # at once: the lines are still waiting for their hand-over
    assert [line.split(" [INFO] ")[1] for line in own_handler.stream.getvalue().splitlines()] \
        == [f"/{number}" for number in range(50)]
    assert server.stats() == {} or server.stats()["access_log_dropped"] == 0


def test_the_command_line_writes_every_line_to_stderr_by_exit() -> None:
    with ServeProcess("tests.apps.echo:hello", "--port", "0") as srv:
        for number in range(30):
            http_get(srv.port, f"/{number}")
        assert srv.stop() == 0  # at once
        output = srv.output()
    lines = [line for line in output if '"GET /' in line]
    assert [line.split('"')[1] for line in lines] == [f"GET /{n} HTTP/1.1" for n in range(30)]
    assert all(PREFIX.match(line) for line in lines), lines


def test_log_config_handlers_get_a_record_per_request(tmp_path: Path) -> None:
    records = tmp_path / "access.txt"
    config = tmp_path / "logging.json"
    config.write_text(json.dumps({
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"args": {"format": "%(name)s %(levelname)s %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(records),
                              "formatter": "args"},
                     "stderr": {"class": "logging.StreamHandler"}},
        "loggers": {"aiowsgi": {"level": "INFO", "handlers": ["stderr"]},
                    "aiowsgi.access": {"handlers": ["file"]}},
    }))
    with ServeProcess("tests.apps.echo:hello", "--port", "0", "--log-config", str(config)) as srv:
        http_get(srv.port, "/logged")
        assert srv.stop() == 0
    text = records.read_text()
    assert text.startswith('aiowsgi.access INFO 127.0.0.1 - - [')
    assert '"GET /logged HTTP/1.1" 200' in text
