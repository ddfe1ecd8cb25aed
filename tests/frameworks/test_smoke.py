"""Smoke tests: unmodified Flask and Django applications served by aiowsgi over real HTTP.

Each test runs for both frameworks (and, through conftest, on both event loops).  Apps are
wrapped in ``wsgiref.validate.validator`` by default.  The file tests also run without it:
the validator wraps the response iterable, which hides ``wsgi.file_wrapper`` from the
server, so only an unvalidated app takes the server's sendfile path.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiowsgi.wsgi import WSGIApp

from ..apps import django_app, flask_app
from ..conftest import StartServer
from ..waiting import SAFETY

TIMEOUT = aiohttp.ClientTimeout(total=SAFETY)
FILE_SIZE = 1024 * 1024
TEXT = "text/plain; charset=utf-8"


@dataclass
class Framework:
    name: str
    stream_chunks: list[bytes]
    make_app: Callable[..., WSGIApp]

    def __str__(self) -> str:
        return self.name


@pytest.fixture(params=["flask", "django"])
def framework(request: pytest.FixtureRequest) -> Iterator[Framework]:
    """Builds the framework's WSGI app: ``make_app(download_path=..., stream_gate=...)``."""
    if request.param == "flask":
        yield Framework("flask", flask_app.STREAM_CHUNKS, flask_app.create_app)
        return

    from django.test import override_settings

    with contextlib.ExitStack() as stack:

        def make_django(*, download_path: str | None = None,
                        stream_gate: threading.Event | None = None) -> WSGIApp:
            application: WSGIApp = django_app.get_application()
            # Per-test values, restored when the test ends.
            stack.enter_context(override_settings(AIOWSGI_DOWNLOAD_PATH=download_path,
                                                  AIOWSGI_STREAM_GATE=stream_gate))
            return application

        yield Framework("django", django_app.STREAM_CHUNKS, make_django)


@pytest.fixture
def payload(tmp_path: Path) -> tuple[str, bytes]:
    """A file of 1 MiB of random bytes: its path and its content."""
    data = os.urandom(FILE_SIZE)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    return str(path), data


@pytest.fixture
async def session(start_server: StartServer) -> AsyncIterator[aiohttp.ClientSession]:
    # Depends on start_server so that the client closes before the servers shut down.
    async with aiohttp.ClientSession(timeout=TIMEOUT) as client:
        yield client


async def test_get(framework: Framework, start_server: StartServer,
                   session: aiohttp.ClientSession) -> None:
    server = await start_server(framework.make_app())
    async with session.get(server.url + "/") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == TEXT
        assert await resp.read() == f"hello from {framework}".encode()


async def test_post_form(framework: Framework, start_server: StartServer,
                         session: aiohttp.ClientSession) -> None:
    # The server sets wsgi.input_terminated (a server extension, like gunicorn's), so
    # Werkzeug reads wsgi.input to EOF with a bare read(); wsgiref's validator only allows
    # read(size).  Flask's form parsing cannot run under the validator with such a server.
    validate = framework.name != "flask"
    server = await start_server(framework.make_app(), validate=validate)
    name = "Zoë & co=1"
    async with session.post(server.url + "/echo", data={"name": name}) as resp:
        assert resp.request_info.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert resp.status == 200
        assert resp.headers["Content-Type"] == TEXT
        assert await resp.text() == f"name={name}"


async def test_streamed_response(framework: Framework, start_server: StartServer,
                                 session: aiohttp.ClientSession) -> None:
    # The app yields its first chunk, then blocks until the client has received it: the
    # response is streamed, not collected first.
    gate = threading.Event()
    server = await start_server(framework.make_app(stream_gate=gate))
    first = framework.stream_chunks[0]
    received = b""
    http_chunks = 0
    try:
        async with session.get(server.url + "/stream") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == TEXT
            assert resp.headers["Transfer-Encoding"] == "chunked"
            assert "Content-Length" not in resp.headers
            async for data, end_of_http_chunk in resp.content.iter_chunks():
                received += data
                http_chunks += end_of_http_chunk
                if len(received) >= len(first):
                    gate.set()
    finally:
        gate.set()  # never leave a worker thread waiting
    assert received == b"".join(framework.stream_chunks)
    assert http_chunks >= 2


@pytest.mark.parametrize("validate", [True, False], ids=["validated", "file_wrapper"])
async def test_file_response(framework: Framework, start_server: StartServer,
                             session: aiohttp.ClientSession, payload: tuple[str, bytes],
                             validate: bool) -> None:
    path, data = payload
    server = await start_server(framework.make_app(download_path=path), validate=validate)
    # Twice on one connection: the connection is still usable after a file response.
    for _ in range(2):
        async with session.get(server.url + "/download") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/octet-stream"
            assert resp.headers["Content-Length"] == str(FILE_SIZE)
            assert "Transfer-Encoding" not in resp.headers
            body = await resp.read()
        assert len(body) == FILE_SIZE
        assert body == data


async def test_not_found(framework: Framework, start_server: StartServer,
                         session: aiohttp.ClientSession) -> None:
    server = await start_server(framework.make_app())
    async with session.get(server.url + "/no/such/page") as resp:
        assert resp.status == 404
        assert resp.headers["Content-Type"].startswith("text/html")
        body = await resp.read()
        assert b"Not Found" in body
        assert resp.headers["Content-Length"] == str(len(body))


@pytest.mark.parametrize("validate", [True, False], ids=["validated", "unvalidated"])
@pytest.mark.parametrize("path", ["/", "/download"])
async def test_head(framework: Framework, start_server: StartServer,
                    payload: tuple[str, bytes], path: str, validate: bool) -> None:
    app = framework.make_app(download_path=payload[0])
    server = await start_server(app, validate=validate)
    connections = 0

    async def on_connection_create_end(*_: Any) -> None:
        nonlocal connections
        connections += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_connection_create_end)
    # One connection: the GET after the HEAD reads its response from the same stream, so
    # a body wrongly sent after the HEAD response would corrupt it.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1),
                                     timeout=TIMEOUT, trace_configs=[trace]) as client:
        async with client.head(server.url + path) as head:
            assert head.status == 200
            assert await head.read() == b""
        async with client.get(server.url + path) as get:
            assert get.status == 200
            body = await get.read()
    assert connections == 1
    assert get.headers["Content-Length"] == str(len(body))
    assert head.headers["Content-Length"] == get.headers["Content-Length"]
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    assert "Transfer-Encoding" not in head.headers
