"""The PEP 3333 contract, checked over real sockets: environ, start_response, write(),
response bodies and their framing, application errors, close() and wsgi.input.  File
responses (``wsgi.file_wrapper``) are test_sendfile.py's.

Every test starts a live server (``start_server``) and talks to it with ``aiohttp`` or,
where the exact bytes on the wire matter, with :class:`tests.http.RawClient`.  Apps are
wrapped in ``wsgiref.validate.validator`` unless a test needs the server's own checks
(a validator would reject the misbehaviour first) or a fast path the wrapper hides
(a bare ``list`` result, a bare ``wsgi.file_wrapper``).

Everything an app observes is recorded in the test process itself: the app runs in a
worker thread of the same process, and the server hands the response to the loop only
after the app has run, so a record made before the response is complete is visible
once the client has read it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import random
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from .apps.echo import echo, environ_echo, status_app
from .conftest import StartServer
from .http import (
    RawClient,
    Response,
    connect,
    fetch,
    get_request,
    raw_exchange,
    read_to_eof,
    split_head,
)
from .logs import ERROR_LOGGER, assert_logged, error_records
from .waiting import SAFETY

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

TEXT = [("Content-Type", "text/plain")]


# -- helpers ------------------------------------------------------------------------


def assert_clean_500(response: Response) -> None:
    assert response.status == 500
    assert response.body == b"500 Internal Server Error\n"
    assert b"Traceback" not in response.body


class Tracked:
    """A response iterable that records how far it was iterated and whether it was closed."""

    def __init__(self, chunks: Iterable[bytes], *, error_after: int | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        self._chunks = chunks
        self._error_after = error_after
        self._on_close = on_close
        self.yielded = 0
        self.close_calls = 0
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if self._error_after is not None and self.yielded >= self._error_after:
                raise RuntimeError("tracked iterable failed mid-iteration")
            self.yielded += 1
            yield chunk

    def close(self) -> None:
        self.close_calls += 1
        if self._on_close is not None:
            self._on_close()
        self.closed.set()


# -- 1. environ -----------------------------------------------------------------------


def capturing_app(captured: list[Environ], checks: list[Any] | None = None) -> Any:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        captured.append(dict(environ))
        if checks is not None:
            errors = environ["wsgi.errors"]
            errors.write("aiowsgi test: wsgi.errors is writable\n")
            errors.writelines(["a\n", "b\n"])
            errors.flush()
            checks.append("errors ok")
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [*TEXT, ("Content-Length", str(len(body)))])
        return [body]

    return app


async def test_environ_request_line(start_server: StartServer) -> None:
    captured: list[Environ] = []
    server = await start_server(capturing_app(captured))
    client = await connect(server)
    try:
        response = await client.request("GET", "/caf%C3%A9/%2F?x=%20y")
        assert response.status == 200
        response = await client.request("DELETE", "/plain/path")
        assert response.status == 200
    finally:
        await client.close()
    first, second = captured
    assert first["REQUEST_METHOD"] == "GET"
    assert first["PATH_INFO"] == "/caf\xc3\xa9//"  # latin-1 bytes-as-str, %2F decoded
    assert first["QUERY_STRING"] == "x=%20y"  # raw, not decoded
    assert first["SCRIPT_NAME"] == ""
    assert second["REQUEST_METHOD"] == "DELETE"
    assert second["PATH_INFO"] == "/plain/path"
    assert second["QUERY_STRING"] == ""


async def test_environ_content_type_and_length_only_when_sent(start_server: StartServer) -> None:
    captured: list[Environ] = []
    server = await start_server(capturing_app(captured))
    client = await connect(server)
    try:
        assert (await client.request("GET", "/")).status == 200
        response = await client.request(
            "POST", "/", headers={"Content-Type": "application/x-test; q=1"}, body=b"hello")
        assert response.status == 200
        assert response.body == b"hello"
    finally:
        await client.close()
    get, post = captured
    assert "CONTENT_TYPE" not in get
    assert "CONTENT_LENGTH" not in get
    assert "HTTP_CONTENT_TYPE" not in post
    assert "HTTP_CONTENT_LENGTH" not in post
    assert post["CONTENT_TYPE"] == "application/x-test; q=1"
    assert post["CONTENT_LENGTH"] == "5"


async def test_environ_server_and_remote_addresses(start_server: StartServer) -> None:
    captured: list[Environ] = []
    server = await start_server(capturing_app(captured))
    client = await connect(server)
    try:
        await client.send(b"GET / HTTP/1.1\r\nHost: example.test:8080\r\n\r\n")
        assert (await client.response()).status == 200
        client_port = client.writer.get_extra_info("sockname")[1]
    finally:
        await client.close()
    (environ,) = captured
    assert environ["SERVER_NAME"] == "127.0.0.1"
    assert environ["SERVER_PORT"] == str(server.port)
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["REMOTE_PORT"] == str(client_port)
    assert environ["HTTP_HOST"] == "example.test:8080"


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
async def test_environ_server_protocol(start_server: StartServer, version: str) -> None:
    captured: list[Environ] = []
    server = await start_server(capturing_app(captured))
    raw = await raw_exchange(server, get_request("/", version=version))
    status_line, _, _ = split_head(raw)
    assert status_line == "HTTP/1.1 200 OK"
    (environ,) = captured
    assert environ["SERVER_PROTOCOL"] == version


async def test_environ_repeated_headers_are_joined(start_server: StartServer) -> None:
    captured: list[Environ] = []
    server = await start_server(capturing_app(captured))
    await raw_exchange(server, get_request(
        extra="X-Thing: first\r\nX-Other: 1\r\nX-Thing: second, third\r\n"))
    (environ,) = captured
    assert environ["HTTP_X_THING"] == "first, second, third"
    assert environ["HTTP_X_OTHER"] == "1"


async def test_environ_drops_header_names_with_underscores(start_server: StartServer) -> None:
    captured: list[Environ] = []
    server = await start_server(capturing_app(captured))
    raw = await raw_exchange(server, get_request(extra="X_Evil: 1\r\nX-Good: 2\r\n"))
    assert split_head(raw)[0] == "HTTP/1.1 200 OK"
    (environ,) = captured
    assert "HTTP_X_EVIL" not in environ
    assert not any(value == "1" and key.startswith("HTTP_") for key, value in environ.items())
    assert environ["HTTP_X_GOOD"] == "2"


async def test_environ_wsgi_keys(start_server: StartServer) -> None:
    captured: list[Environ] = []
    checks: list[Any] = []
    server = await start_server(capturing_app(captured, checks))
    status, _, _ = await fetch(server)
    assert status == 200
    (environ,) = captured
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is False
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    assert checks == ["errors ok"]
    assert callable(environ["wsgi.file_wrapper"])


paths = environ_echo("SCRIPT_NAME", "PATH_INFO")


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


where = environ_echo("REMOTE_ADDR", "wsgi.url_scheme", "HTTP_HOST")


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


# -- 2. start_response -----------------------------------------------------------------


async def test_empty_chunk_does_not_send_headers(start_server: StartServer,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger=ERROR_LOGGER)

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b""
        raise RuntimeError("failed after an empty chunk")

    server = await start_server(app)
    client = await connect(server)
    try:
        await client.send(get_request(close=False))
        assert_clean_500(await client.response())
    finally:
        await client.close()
    assert_logged(caplog, RuntimeError, "failed after an empty chunk")


async def test_start_response_twice_without_exc_info_fails(
        start_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger=ERROR_LOGGER)

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", TEXT)
        start_response("201 Created", TEXT)
        return [b"should not be sent"]

    server = await start_server(app)
    client = await connect(server)
    try:
        await client.send(get_request(close=False))
        assert_clean_500(await client.response())
    finally:
        await client.close()
    assert_logged(caplog, AssertionError, "start_response() called again")


async def test_start_response_exc_info_before_headers_replaces_status(
        start_server: StartServer) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [*TEXT, ("X-First", "yes")])
        try:
            raise ValueError("handled by the app")
        except ValueError:
            start_response("503 Service Unavailable", [*TEXT, ("X-Second", "yes")],
                           sys.exc_info())
        yield b"app error page"

    server = await start_server(app)
    status, headers, body = await fetch(server)
    assert status == 503
    assert body == b"app error page"
    assert headers["X-Second"] == "yes"
    assert "X-First" not in headers


async def test_start_response_exc_info_after_headers_aborts(
        start_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger=ERROR_LOGGER)
    tracked: list[Tracked] = []

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", TEXT)

        def body() -> Iterator[bytes]:
            yield b"hello"
            try:
                raise ValueError("failed after headers")
            except ValueError:
                start_response("500 Internal Server Error", TEXT, sys.exc_info())
            yield b"never sent"

        tracked.append(Tracked(body()))
        return tracked[0]

    server = await start_server(app)
    raw = await raw_exchange(server, get_request(close=False))
    status_line, headers, rest = split_head(raw)
    assert status_line == "HTTP/1.1 200 OK"
    assert headers["transfer-encoding"] == "chunked"
    # The chunk that was sent, then the connection closed: no terminating chunk.
    assert rest == b"5\r\nhello\r\n"
    assert b"0\r\n\r\n" not in rest
    assert tracked[0].close_calls == 1
    assert_logged(caplog, ValueError, "failed after headers")


# -- 3. write() -------------------------------------------------------------------------


async def test_write_bytes_come_before_the_iterable(start_server: StartServer) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"written-1 ")
        write(b"")
        write(b"written-2 ")
        return [b"iterable-1 ", b"iterable-2"]

    server = await start_server(app)
    status, headers, body = await fetch(server)
    assert status == 200
    assert body == b"written-1 written-2 iterable-1 iterable-2"
    assert headers["Transfer-Encoding"] == "chunked"


async def test_write_with_content_length(start_server: StartServer) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [*TEXT, ("Content-Length", "9")])
        write(b"abc")
        write(b"def")
        return [b"ghi"]

    server = await start_server(app)
    client = await connect(server)
    try:
        await client.send(get_request(close=False))
        response = await client.response()
        assert response.status == 200
        assert response.body == b"abcdefghi"
        assert response.all("Content-Length") == ["9"]
        assert response.header("Transfer-Encoding") is None
    finally:
        await client.close()


async def test_write_before_start_response_fails(start_server: StartServer,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger=ERROR_LOGGER)

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        # write() is only handed out by start_response; reach it the way a confused
        # framework holding the server's call object could.
        write = start_response.__self__.write  # type: ignore[attr-defined]
        write(b"too early")
        start_response("200 OK", TEXT)
        return [b"body"]

    server = await start_server(app, validate=False)
    client = await connect(server)
    try:
        await client.send(get_request(close=False))
        assert_clean_500(await client.response())
    finally:
        await client.close()
    assert_logged(caplog, AssertionError, "write() called before start_response()")


# -- 4. response bodies ------------------------------------------------------------------


@pytest.mark.parametrize("validate", [False, True], ids=["bare", "validated"])
async def test_list_body(start_server: StartServer, validate: bool) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", TEXT)
        return [b"hello ", b"", b"world"]

    server = await start_server(app, validate=validate)
    client = await connect(server)
    try:
        await client.send(get_request(close=False))
        response = await client.response()
    finally:
        await client.close()
    assert response.status == 200
    assert response.body == b"hello world"
    if validate:
        # The validator hides the list behind an iterator: streamed, chunked.
        assert response.chunked
        assert response.header("Content-Length") is None
    else:
        # A bare list is sent whole, with a Content-Length the server computed.
        assert not response.chunked
        assert response.all("Content-Length") == ["11"]


async def test_generator_body(start_server: StartServer) -> None:
    parts = [os.urandom(n) for n in (1, 100, 70_000, 3, 300_000)]

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        yield from parts

    server = await start_server(app)
    client = await connect(server)
    try:
        await client.send(get_request(close=False))
        response = await client.response()
        assert response.status == 200
        assert response.chunked
        assert response.body == b"".join(parts)
        # Keep-alive after a chunked response.
        await client.send(get_request(close=False))
        assert (await client.response()).body == b"".join(parts)
    finally:
        await client.close()


async def test_generator_body_http10_is_close_delimited(start_server: StartServer) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"one "
        yield b"two"

    server = await start_server(app)
    raw = await raw_exchange(server, get_request(version="HTTP/1.0", close=False))
    status_line, headers, rest = split_head(raw)
    assert status_line == "HTTP/1.1 200 OK"
    assert "content-length" not in headers
    assert "transfer-encoding" not in headers
    assert headers["connection"] == "close"
    assert rest == b"one two"


@pytest.mark.parametrize("validate", [False, True], ids=["bare", "validated"])
@pytest.mark.parametrize("shape", ["list", "generator", "empty-chunk"])
async def test_empty_body_gets_content_length_zero(start_server: StartServer, validate: bool,
                                                   shape: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        if shape == "list":
            return []
        return iter([b""] if shape == "empty-chunk" else [])

    server = await start_server(app, validate=validate)
    client = await connect(server)
    try:
        for _ in range(2):  # and the connection stays usable
            await client.send(get_request(close=False))
            response = await client.response()
            assert response.status == 200
            assert response.all("Content-Length") == ["0"]
            assert response.header("Transfer-Encoding") is None
            assert response.body == b""
    finally:
        await client.close()


@pytest.mark.parametrize("validate", [False, True], ids=["bare", "validated"])
@pytest.mark.parametrize("shape", ["list", "generator"])
async def test_app_content_length_is_respected(start_server: StartServer, validate: bool,
                                               shape: str) -> None:
    body = os.urandom(50_000)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", str(len(body)))])
        parts = [body[:10], body[10:20_000], body[20_000:]]
        return parts if shape == "list" else iter(parts)

    server = await start_server(app, validate=validate)
    client = await connect(server)
    try:
        for _ in range(2):
            await client.send(get_request(close=False))
            response = await client.response()
            assert response.status == 200
            assert response.all("Content-Length") == [str(len(body))]
            assert response.header("Transfer-Encoding") is None
            assert response.header("Connection") is None
            assert response.body == body
    finally:
        await client.close()


@pytest.mark.parametrize("validate", [False, True], ids=["bare", "validated"])
@pytest.mark.parametrize("shape", ["list", "generator"])
async def test_more_than_content_length_is_truncated_and_closed(
        start_server: StartServer, validate: bool, shape: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "10")])
        parts = [b"0123456", b"789abcdef", b"ghijk"]
        return parts if shape == "list" else iter(parts)

    server = await start_server(app, validate=validate)
    client = await connect(server)
    try:
        await client.send(get_request(close=False))
        response = await client.response()
        assert response.status == 200
        assert response.all("Content-Length") == ["10"]
        assert response.body == b"0123456789"
        if shape == "list" and not validate:
            # the server holds the whole body: it says up front that it will close
            assert response.header("Connection") == "close"
        # Nothing of the excess follows, and the connection is not reused.
        assert await read_to_eof(client.reader) == b""
    finally:
        await client.close()


async def test_app_error_on_head_sends_no_body(start_server: StartServer) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "HEAD":
            raise RuntimeError("boom")
        start_response("200 OK", [*TEXT, ("Content-Length", "2")])
        return [b"ok"]

    server = await start_server(app)
    client = await connect(server)
    try:
        await client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        response = await client.response("HEAD")
        assert response.status == 500
        # no body bytes followed the head: the next response parses cleanly
        await client.send(get_request(close=False))
        response = await client.response()
        assert (response.status, response.body) == (200, b"ok")
    finally:
        await client.close()


@pytest.mark.parametrize("validate", [False, True], ids=["bare", "validated"])
@pytest.mark.parametrize("shape", ["list", "generator"])
async def test_less_than_content_length_aborts(start_server: StartServer, validate: bool,
                                               shape: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*TEXT, ("Content-Length", "100")])
        parts = [b"only ", b"forty bytes of the hundred promised...."]
        return parts if shape == "list" else iter(parts)

    server = await start_server(app, validate=validate)
    raw = await raw_exchange(server, get_request(close=False))
    status_line, headers, rest = split_head(raw)
    assert status_line == "HTTP/1.1 200 OK"
    assert headers["content-length"] == "100"
    assert rest == b"only forty bytes of the hundred promised...."
    assert len(rest) < 100


@pytest.mark.parametrize("shape", ["list", "generator", "error"])
async def test_aborted_response_delivers_what_was_produced(
        start_server: StartServer, shape: str) -> None:
    """Aborting a response closes the connection after the bytes already produced, it
    does not throw away what the transport still buffers (more than a socket buffer)."""
    body = random.Random(3).randbytes(8 * 1024 * 1024)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if shape == "error":
            start_response("200 OK", [("Content-Type", "application/octet-stream")])

            def fail() -> Iterator[bytes]:
                yield body
                raise RuntimeError("failed after a large chunk")

            return fail()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body) + 1000))])
        return [body] if shape == "list" else iter([body])

    server = await start_server(app, validate=False)
    raw = await raw_exchange(server, get_request(close=False))
    _, headers, rest = split_head(raw)
    if shape == "error":
        assert headers["transfer-encoding"] == "chunked"
        expected = b"%x\r\n%b\r\n" % (len(body), body)  # and no last chunk
    else:
        assert headers["content-length"] == str(len(body) + 1000)
        expected = body
    assert len(rest) == len(expected)
    assert rest == expected


def streaming(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """A generator without Content-Length: framed by the server."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body() -> Iterable[bytes]:
        yield b"one,"
        yield b""
        yield b"two,"
        yield b"three"

    return body()


async def test_generator_is_chunked_on_http11(start_server: StartServer) -> None:
    server = await start_server(streaming)
    client = await connect(server)
    response = await client.request()
    assert response.chunked
    assert response.header("Content-Length") is None
    assert response.body == b"one,two,three"
    assert (await client.request()).body == b"one,two,three"
    await client.close()


async def test_generator_is_close_delimited_on_http10(start_server: StartServer) -> None:
    server = await start_server(streaming)
    client = await connect(server)
    response = await client.request("GET", "/", version="HTTP/1.0",
                                    headers={"Connection": "keep-alive"})
    assert not response.chunked
    assert response.header("Connection") == "close"
    assert response.body == b"one,two,three"
    assert await client.closed_by_server()


async def test_head_sends_headers_only(start_server: StartServer) -> None:
    server = await start_server(echo)
    client = await connect(server)
    head = await client.request("HEAD", "/h")
    assert head.status == 200
    assert head.header("Content-Length") == str(len(b"HEAD /h "))
    # nothing but headers came: the next response parses cleanly
    assert (await client.request("GET", "/g")).body == b"GET /g "
    await client.close()


async def test_head_of_a_generator(start_server: StartServer) -> None:
    server = await start_server(streaming)
    client = await connect(server)
    head = await client.request("HEAD")
    assert head.status == 200
    assert (await client.request("GET")).body == b"one,two,three"
    await client.close()


async def test_204_and_304_carry_no_body(start_server: StartServer) -> None:
    for status in ("204 No Content", "304 Not Modified"):
        server = await start_server(
            status_app(status, [("Content-Type", "text/plain")], b"ignored"), validate=False)
        client = await connect(server)
        response = await client.request()
        assert response.status == int(status[:3])
        assert response.header("Transfer-Encoding") is None
        if status.startswith("204"):
            assert response.header("Content-Length") is None
        # no body bytes: the next response starts right away
        assert (await client.request()).status == int(status[:3])
        await client.close()


async def test_date_and_server_headers(start_server: StartServer) -> None:
    server = await start_server(echo)
    client = await connect(server)
    response = await client.request()
    assert response.header("Server") == "aiowsgi"
    date = response.header("Date")
    assert date is not None and date.endswith(" GMT")
    await client.close()

    server = await start_server(status_app("200 OK", [("Content-Type", "text/plain"),
                                                      ("Server", "mine"),
                                                      ("Date", "Tue, 01 Jan 2030 00:00:00 GMT")]))
    client = await connect(server)
    response = await client.request()
    assert response.all("Server") == ["mine"]
    assert response.all("Date") == ["Tue, 01 Jan 2030 00:00:00 GMT"]
    await client.close()

    server = await start_server(echo, server_header=False)
    client = await connect(server)
    assert (await client.request()).header("Server") is None
    await client.close()


# -- 5. application errors ---------------------------------------------------------------


async def _expect_500_then_keepalive(server: Any, caplog: pytest.LogCaptureFixture,
                                     ) -> bytes:
    """GET /fail gets a clean 500 on a kept-alive connection, GET /ok then works on it.

    Returns the raw bytes of the 500 response.
    """
    client = await connect(server)
    try:
        await client.send(get_request("/fail", close=False))
        head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), SAFETY)
        _, headers, _ = split_head(head)
        body = await asyncio.wait_for(
            client.reader.readexactly(int(headers["content-length"])), SAFETY)
        raw = head + body
        assert raw.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        assert body == b"500 Internal Server Error\n"
        assert "connection" not in headers
        await client.send(get_request("/ok", close=False))
        response = await client.response()
        assert response.status == 200
        assert response.body == b"ok"
    finally:
        await client.close()
    for record in error_records(caplog):
        assert record.getMessage() not in raw.decode("latin-1")
    assert b"Traceback" not in raw
    return raw


def failing_app(fail: Callable[[Environ, StartResponse], Iterable[bytes]]) -> Any:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/ok":
            start_response("200 OK", [*TEXT, ("Content-Length", "2")])
            return [b"ok"]
        return fail(environ, start_response)

    return app


async def test_exception_before_start_response(start_server: StartServer,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger=ERROR_LOGGER)

    def fail(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise RuntimeError("secret-detail-1234")

    server = await start_server(failing_app(fail))
    raw = await _expect_500_then_keepalive(server, caplog)
    assert b"secret-detail-1234" not in raw
    assert b"RuntimeError" not in raw
    assert_logged(caplog, RuntimeError, "secret-detail-1234")


@pytest.mark.parametrize("shape", ["list", "generator"])
async def test_str_in_iterable(start_server: StartServer, caplog: pytest.LogCaptureFixture,
                               shape: str) -> None:
    caplog.set_level(logging.ERROR, logger=ERROR_LOGGER)

    def fail(environ: Environ, start_response: StartResponse) -> Iterable[Any]:
        start_response("200 OK", TEXT)
        parts = ["a str, not bytes"]
        return parts if shape == "list" else iter(parts)

    server = await start_server(failing_app(fail), validate=False)
    raw = await _expect_500_then_keepalive(server, caplog)
    assert b"a str, not bytes" not in raw
    assert_logged(caplog, TypeError, "str")


@pytest.mark.parametrize("status", ["200", "abc", "2000 OK", "099 Low", "OK 200", b"200 OK",
                                    "200 OK\r\nX-Injected: yes"])
async def test_bad_status_line(start_server: StartServer, caplog: pytest.LogCaptureFixture,
                               status: Any) -> None:
    caplog.set_level(logging.ERROR, logger=ERROR_LOGGER)

    def fail(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response(status, TEXT)
        return [b"body"]

    server = await start_server(failing_app(fail), validate=False)
    raw = await _expect_500_then_keepalive(server, caplog)
    assert b"x-injected" not in raw.lower()
    assert_logged(caplog, ValueError, "invalid status line")


@pytest.mark.parametrize("header", [
    ("X-Header", "value\r\nX-Injected: yes"),
    ("X-Header", "value\nX-Injected: yes"),
    ("X-Header", "value\rX-Injected: yes"),
    ("X-Header\r\nX-Injected", "yes"),
    ("X-Header: yes\r\nX-Injected", "yes"),
])
async def test_header_injection(start_server: StartServer, caplog: pytest.LogCaptureFixture,
                                header: tuple[str, str]) -> None:
    caplog.set_level(logging.ERROR, logger=ERROR_LOGGER)

    def fail(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [*TEXT, header])
        return [b"body"]

    server = await start_server(failing_app(fail), validate=False)
    raw = await _expect_500_then_keepalive(server, caplog)
    assert b"x-injected" not in raw.lower()
    assert b"x-header" not in raw.lower()
    assert_logged(caplog, ValueError, "invalid")


@pytest.mark.parametrize("name", ["Transfer-Encoding", "Upgrade", "Keep-Alive", "TE",
                                  "Trailer"])
async def test_hop_by_hop_header_from_app(start_server: StartServer,
                                          caplog: pytest.LogCaptureFixture,
                                          name: str) -> None:
    caplog.set_level(logging.ERROR, logger=ERROR_LOGGER)

    def fail(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [*TEXT, (name, "chunked")])
        return [b"body"]

    server = await start_server(failing_app(fail), validate=False)
    raw = await _expect_500_then_keepalive(server, caplog)
    assert f"\r\n{name.lower()}:".encode() not in raw.lower()
    assert_logged(caplog, ValueError, "hop-by-hop")


async def test_error_response_to_a_head_the_app_failed_has_no_body(
        start_server: StartServer) -> None:
    def failing(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        raise RuntimeError("boom")

    server = await start_server(failing)
    client = await RawClient.connect(server.host, server.port)
    response = await client.request("HEAD")
    assert response.status == 500
    # nothing follows the head: the next request's answer comes next
    response = await client.request("HEAD")
    assert response.status == 500
    await client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = await read_to_eof(client.reader)
    await client.close()
    assert data.startswith(b"HTTP/1.1 500 ") and data.endswith(b"\r\n\r\n")


async def test_tracebacks_reach_the_client_only_when_enabled(start_server: StartServer) -> None:
    def broken(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        raise LookupError("the secret table is missing")

    for expose in (False, True):
        server = await start_server(broken, expose_tracebacks=expose)
        client = await RawClient.connect(server.host, server.port)
        response = await client.request()
        assert response.status == 500
        assert (b"the secret table is missing" in response.body) is expose
        assert (b"Traceback" in response.body) is expose
        await client.close()


async def test_a_string_subclass_is_refused_even_after_the_same_value_passed(
        start_server: StartServer) -> None:
    """The server remembers headers and statuses it has checked; a value of another type
    that compares equal is still checked, and refused."""

    class Text(str):
        pass

    def app(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        status = Text("200 OK") if path == "/status" else "200 OK"
        value = Text("text/plain") if path == "/header" else "text/plain"
        start_response(status, [("Content-Type", value), ("Content-Length", "2")])
        return [b"ok"]

    server = await start_server(app, validate=False)
    client = await RawClient.connect(server.host, server.port)
    async with asyncio.timeout(SAFETY):
        assert (await client.request(target="/")).status == 200
        assert (await client.request(target="/header")).status == 500
        await client.close()
        for target, status in (("/status", 500), ("/", 200)):
            client = await RawClient.connect(server.host, server.port)
            assert (await client.request(target=target)).status == status
            await client.close()


# -- 6. close() ---------------------------------------------------------------------------


async def test_close_called_after_normal_response(start_server: StartServer) -> None:
    tracked: list[Tracked] = []

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", TEXT)
        tracked.append(Tracked([b"a", b"b", b"c"]))
        return tracked[-1]

    server = await start_server(app)
    for i in range(2):
        status, _, body = await fetch(server, f"/{i}")
        assert (status, body) == (200, b"abc")
    assert [t.close_calls for t in tracked] == [1, 1]


async def test_close_called_after_error_mid_iteration(
        start_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger=ERROR_LOGGER)
    tracked = Tracked([b"first", b"second", b"third"], error_after=2)

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", TEXT)
        return tracked

    server = await start_server(app)
    raw = await raw_exchange(server, get_request(close=False))
    _, headers, rest = split_head(raw)
    assert headers["transfer-encoding"] == "chunked"
    assert rest == b"5\r\nfirst\r\n6\r\nsecond\r\n"  # then aborted: no last chunk
    assert tracked.yielded == 2
    assert tracked.close_calls == 1
    assert_logged(caplog, RuntimeError, "tracked iterable failed mid-iteration")


async def test_close_called_when_client_disconnects_mid_stream(start_server: StartServer) -> None:
    chunk = b"x" * 65536
    tracked = Tracked(chunk for _ in range(10_000))

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return tracked

    server = await start_server(app)
    client = await connect(server)
    try:
        await client.send(get_request(close=False))
        async with asyncio.timeout(SAFETY):
            await client.reader.readuntil(b"\r\n\r\n")
            await client.reader.readexactly(200_000)
    finally:
        await client.close()
    assert await asyncio.to_thread(tracked.closed.wait, SAFETY)
    assert tracked.close_calls == 1
    assert tracked.yielded < 10_000  # the server stopped iterating, it did not drain it


# How long close() waits for the client to report that it already has the whole
# response.  A correct server holds the end of the response back until close() has
# returned, so the report never comes and the wait always runs out; a server that lets
# the end out first is caught as soon as the client has read it.
CLOSE_ORDER_WINDOW = 0.5


@pytest.mark.parametrize("validate", [False, True], ids=["bare", "validated"])
@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_close_runs_before_client_sees_the_end(start_server: StartServer, validate: bool,
                                                     framing: str) -> None:
    client_has_all = threading.Event()
    seen_by_close: list[bool] = []

    def on_close() -> None:
        seen_by_close.append(client_has_all.wait(CLOSE_ORDER_WINDOW))

    parts = [b"part-1 ", b"part-2 ", b"end"]
    tracked = Tracked(parts, on_close=on_close)
    headers = list(TEXT)
    if framing == "content-length":
        headers.append(("Content-Length", str(len(b"".join(parts)))))

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", headers)
        return tracked

    server = await start_server(app, validate=validate)
    client = await connect(server)
    try:
        await client.send(get_request(close=False))
        response = await client.response()
        closed_first = tracked.closed.is_set()
        client_has_all.set()
    finally:
        await client.close()
    assert response.body == b"part-1 part-2 end"
    assert closed_first, "the client saw the whole response before close() ran"
    assert seen_by_close == [False]


# -- 7. wsgi.input -------------------------------------------------------------------------


def consume(f: Any, mode: str) -> list[bytes]:
    """Read a whole body one way; the same function runs on wsgi.input and on BytesIO."""
    if mode == "read":
        return [f.read(), f.read(10)]
    if mode == "read_n":
        parts = []
        while part := f.read(1000):
            parts.append(part)
        return [*parts, f.read(1000)]
    if mode == "readline":
        lines = []
        while line := f.readline():
            lines.append(line)
        return [*lines, f.readline()]
    if mode == "readline_limit":
        lines = []
        while line := f.readline(7):
            lines.append(line)
        return [*lines, f.readline(7)]
    if mode == "readlines":
        return [*f.readlines(), f.read(1)]
    if mode == "iterate":
        return list(f)
    assert mode == "mixed"
    return [f.read(5), f.readline(), f.readline(3), f.read(10), *f.readlines(), f.read(1)]


VALIDATED_MODES = ["read_n", "readline", "readline_limit", "readlines", "iterate", "mixed"]


def make_body(size: int) -> bytes:
    rnd = random.Random(size)
    lines: list[bytes] = []
    total = 0
    while total < size:
        line = b"%d:" % len(lines) + rnd.randbytes(rnd.randrange(0, 300)).replace(
            b"\n", b"N") + b"\n"
        if len(lines) % 7 == 3:
            line = b"\n"  # empty lines too
        lines.append(line)
        total += len(line)
    return b"".join(lines) + b"last line, no newline"


def echo_input_app(results: dict[str, Any]) -> Any:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        mode = environ["QUERY_STRING"]
        stream = environ["wsgi.input"]
        results[mode] = {
            "pieces": consume(stream, mode),
            "CONTENT_LENGTH": environ.get("CONTENT_LENGTH"),
            "spooled": not isinstance(getattr(stream, "input", stream), io.BytesIO),
        }
        body = b"".join(results[mode]["pieces"])
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return app


def chunked(body: bytes) -> bytes:
    """``body`` as a chunked message body with chunk extensions and a trailer."""
    out = []
    sizes = [1, 10, 4096, 65536, 5]
    offset = 0
    for i, size in enumerate(sizes * (len(body) // sum(sizes) + 1)):
        piece = body[offset:offset + size]
        if not piece:
            break
        ext = [";ext=1", ';name="quoted; value"', "", ";flag"][i % 4]
        out.append(b"%x%s\r\n%s\r\n" % (len(piece), ext.encode(), piece))
        offset += len(piece)
    assert offset == len(body)
    out.append(b"0;last=yes\r\nX-Trailer: present\r\nX-Other: 2\r\n\r\n")
    return b"".join(out)


async def _check_input(server: Any, results: dict[str, Any], body: bytes, modes: list[str],
                       *, transfer: str, spooled: bool) -> None:
    client = await connect(server)
    try:
        for mode in modes:
            if transfer == "chunked":
                await client.send(
                    f"POST /?{mode} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
                    f"Content-Type: application/octet-stream\r\n\r\n".encode()
                    + chunked(body))
                response = await client.response()
            else:
                response = await client.request("POST", f"/?{mode}", body=body)
            expected = consume(io.BytesIO(body), mode)
            assert response.status == 200, mode
            result = results.pop(mode)
            assert result["pieces"] == expected, mode
            assert response.body == b"".join(expected) == body, mode
            assert result["CONTENT_LENGTH"] == str(len(body)), mode
            assert result["spooled"] is spooled, mode
    finally:
        await client.close()


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
@pytest.mark.parametrize("size", ["small", "spooled"])
async def test_wsgi_input(start_server: StartServer, transfer: str, size: str) -> None:
    results: dict[str, Any] = {}
    body = make_body(2000 if size == "small" else 100 * 1024)
    # body_buffer_size=1024 puts the 100 KiB body in a temporary file; the small body
    # stays in memory with the default buffer size.
    options: dict[str, Any] = {"body_buffer_size": 1024} if size == "spooled" else {}
    server = await start_server(echo_input_app(results), **options)
    await _check_input(server, results, body, VALIDATED_MODES, transfer=transfer,
                       spooled=size == "spooled")
    # read() without a size, which the validator does not allow.
    bare = await start_server(echo_input_app(results), validate=False, **options)
    await _check_input(bare, results, body, ["read"], transfer=transfer,
                       spooled=size == "spooled")


async def test_wsgi_input_spooled_file_is_closed_after_the_response(
        start_server: StartServer) -> None:
    """The server closes the request body it made, even when middleware (here the
    validator) replaced ``environ['wsgi.input']`` with a wrapper."""
    bodies: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        bodies.append(getattr(stream, "input", stream))
        data = stream.read(int(environ["CONTENT_LENGTH"]))
        start_response("200 OK", [*TEXT, ("Content-Length", str(len(data)))])
        return [data]

    server = await start_server(app, body_buffer_size=1024)
    body = make_body(10_000)
    client = await connect(server)
    try:
        response = await client.request("POST", "/", body=body)
    finally:
        await client.close()
    assert response.body == body
    (spool,) = bodies
    assert not isinstance(spool, io.BytesIO)
    assert spool.closed, "the spooled request body was left open"
