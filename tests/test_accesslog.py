"""The access log: one line per request, or none when it is off; its atoms, each one
listed in the README; the status the client got, body bytes as gunicorn counts them,
and responses that did not complete."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiowsgi import Config, ConfigError, accesslog

from .apps.echo import status_app
from .apps.gate import Gate
from .conftest import StartServer
from .http import RawClient
from .process import ROOT
from .waiting import SAFETY, until

Env = dict[str, Any]
StartResponse = Callable[..., Any]


class AccessLines:
    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog

    def lines(self) -> list[str]:
        return [r.getMessage() for r in self.caplog.records if r.name == "aiowsgi.access"]

    async def wait(self, count: int) -> list[str]:
        """The first ``count`` lines, once they are written (the safety timeout aside)."""
        await until(lambda: len(self.lines()) >= count, f"{count} access log lines")
        return self.lines()


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> AccessLines:
    caplog.set_level(logging.INFO, logger="aiowsgi.access")
    return AccessLines(caplog)


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
    lines = access.lines()
    assert len(lines) == 1
    line = lines[0]
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
    assert access.lines() == ["GET /a/b c=d 201 HTTP/1.1"]


async def test_no_access_log(start_server: StartServer,
                             access: AccessLines,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(accesslog, "write", lambda *args: calls.append(args))
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
