"""File responses (``wsgi.file_wrapper``): sent by the kernel where it can, whole, from an
offset, to HEAD, over a file-like without a descriptor, and to clients that leave or
stall."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .apps.files import TrackedBytesIO, TrackedFile, file_app
from .conftest import StartServer
from .http import connect, fetch, get_request, raw_exchange, read_to_eof, split_head
from .logs import ERROR_LOGGER, error_records
from .waiting import SAFETY

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


FILE_SIZE = 3 * 1024 * 1024 + 12345


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    data = random.Random(8).randbytes(FILE_SIZE)
    path = tmp_path_factory.mktemp("files") / "data.bin"
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("validate", [False, True], ids=["bare", "validated"])
async def test_file_wrapper_sends_the_file(start_server: StartServer, validate: bool,
                                           data_file: tuple[Path, bytes]) -> None:
    path, data = data_file
    opened: list[TrackedFile] = []
    server = await start_server(file_app(opened, lambda: TrackedFile(path)),
                                validate=validate)
    status, headers, body = await fetch(server)
    assert status == 200
    assert len(body) == len(data)
    assert body == data
    if validate:
        # Behind the validator the wrapper is just an iterable: streamed.
        assert headers["Transfer-Encoding"] == "chunked"
    else:
        assert headers["Content-Length"] == str(len(data))
        assert "Transfer-Encoding" not in headers
    (f,) = opened
    assert await asyncio.to_thread(f.close_event.wait, SAFETY)
    assert f.closed


async def test_file_wrapper_from_offset(start_server: StartServer,
                                        data_file: tuple[Path, bytes]) -> None:
    path, data = data_file
    opened: list[TrackedFile] = []
    server = await start_server(file_app(opened, lambda: TrackedFile(path), offset=1000),
                                validate=False)
    status, headers, body = await fetch(server)
    assert status == 200
    assert headers["Content-Length"] == str(len(data) - 1000)
    assert body == data[1000:]
    assert await asyncio.to_thread(opened[0].close_event.wait, SAFETY)


async def test_file_wrapper_keeps_the_connection_alive(start_server: StartServer,
                                                       data_file: tuple[Path, bytes]) -> None:
    path, data = data_file
    opened: list[TrackedFile] = []
    server = await start_server(file_app(opened, lambda: TrackedFile(path)), validate=False)
    client = await connect(server)
    try:
        for _ in range(2):
            await client.send(get_request(close=False))
            response = await client.response()
            assert response.status == 200
            assert response.body == data
    finally:
        await client.close()
    for f in opened:
        assert await asyncio.to_thread(f.close_event.wait, SAFETY)


async def test_file_wrapper_head_sends_no_body(start_server: StartServer,
                                               data_file: tuple[Path, bytes]) -> None:
    path, data = data_file
    opened: list[TrackedFile] = []
    server = await start_server(file_app(opened, lambda: TrackedFile(path)), validate=False)
    client = await connect(server)
    try:
        await client.send(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n")
        head = await client.response("HEAD")
        assert head.status == 200
        assert head.all("Content-Length") == [str(len(data))]
        # Had any body bytes followed the HEAD response, this response would not parse.
        await client.send(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        response = await client.response()
        assert response.status == 200
        assert response.body == data
        assert await read_to_eof(client.reader) == b""
    finally:
        await client.close()
    for f in opened:
        assert await asyncio.to_thread(f.close_event.wait, SAFETY)


@pytest.mark.parametrize("validate", [False, True], ids=["bare", "validated"])
async def test_file_wrapper_over_bytesio(start_server: StartServer, validate: bool) -> None:
    data = random.Random(5).randbytes(200_000)
    opened: list[TrackedBytesIO] = []
    server = await start_server(file_app(opened, lambda: TrackedBytesIO(data)),
                                validate=validate)
    status, _, body = await fetch(server)
    assert status == 200
    assert body == data
    assert await asyncio.to_thread(opened[0].close_event.wait, SAFETY)


async def test_file_wrapper_shorter_than_content_length_aborts(
        start_server: StartServer, caplog: pytest.LogCaptureFixture,
        data_file: tuple[Path, bytes]) -> None:
    caplog.set_level(logging.ERROR, logger=ERROR_LOGGER)
    path, data = data_file
    opened: list[TrackedFile] = []
    promised = len(data) + 1000
    server = await start_server(
        file_app(opened, lambda: TrackedFile(path),
                 headers=[("Content-Length", str(promised))]),
        validate=False)
    raw = await raw_exchange(server, get_request(close=False))
    status_line, headers, rest = split_head(raw)
    assert status_line == "HTTP/1.1 200 OK"
    assert headers["content-length"] == str(promised)
    assert len(rest) == len(data)
    assert rest == data
    assert await asyncio.to_thread(opened[0].close_event.wait, SAFETY)
    assert any("before its Content-Length" in r.getMessage() for r in error_records(caplog))


async def test_file_wrapper_is_zero_copy_on_both_loops(
        start_server: StartServer, data_file: tuple[Path, bytes],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel sends the file: every byte of it goes through ``os.sendfile``, which
    the connection calls itself on both loops.  The server runs in this process, so a
    wrapper of ``os.sendfile`` sees its calls."""
    path, data = data_file
    the_file = os.stat(path)
    real = os.sendfile
    calls: list[tuple[int, int]] = []  # (offset, bytes sent) of each call from the file

    def sendfile(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        sent = real(out_fd, in_fd, offset, count)
        if os.path.samestat(os.fstat(in_fd), the_file):
            calls.append((offset, sent))
        return sent

    monkeypatch.setattr(os, "sendfile", sendfile)
    opened: list[TrackedFile] = []
    server = await start_server(file_app(opened, lambda: TrackedFile(path)), validate=False)
    status, _, body = await fetch(server)
    assert status == 200 and body == data
    covered = 0  # the calls, in order, cover the file from its first byte to its last
    for offset, sent in calls:
        assert offset == covered, calls
        covered += sent
    assert covered == len(data), calls


async def test_client_leaving_in_the_middle_of_a_file_is_no_error(
        start_server: StartServer, caplog: pytest.LogCaptureFixture,
        data_file: tuple[Path, bytes]) -> None:
    caplog.set_level(logging.INFO, logger=ERROR_LOGGER)
    path, _ = data_file
    opened: list[TrackedFile] = []
    server = await start_server(file_app(opened, lambda: TrackedFile(path)), validate=False)
    for _ in range(5):
        client = await connect(server)
        await client.send(get_request(close=False))
        await client.reader.readexactly(100_000)  # a part of it, then gone
        client.writer.transport.abort()
    for f in opened:
        assert await asyncio.to_thread(f.close_event.wait, SAFETY)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_stalled_file_download_does_not_hold_up_another(
        start_server: StartServer, tmp_path: Path, data_file: tuple[Path, bytes]) -> None:
    big = tmp_path / "sparse.bin"
    with open(big, "wb") as f:
        f.truncate(256 * 1024 * 1024)
    small, data = data_file
    opened: list[TrackedFile] = []

    def make_for(environ: Environ) -> TrackedFile:
        return TrackedFile(big if environ["PATH_INFO"] == "/big" else small)

    def app(environ: Environ, start_response: StartResponse) -> Any:
        f = make_for(environ)
        opened.append(f)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f)

    server = await start_server(app, validate=False)
    stalled = await connect(server)
    try:
        await stalled.send(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n")
        await stalled.reader.readexactly(65536)  # it has begun, and is not read further
        status, _, body = await fetch(server)
        assert status == 200 and body == data
    finally:
        await stalled.close()


@pytest.mark.parametrize("refusal", ["EINVAL", "ENOSYS"])
async def test_a_file_sendfile_refuses_is_read_and_written(
        start_server: StartServer, data_file: tuple[Path, bytes],
        monkeypatch: pytest.MonkeyPatch, refusal: str) -> None:
    """Some files (and some kernels) refuse ``sendfile`` before sending anything: the
    response is then read and written, whole, on both loops."""
    path, data = data_file
    refused: list[int] = []

    def sendfile(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        refused.append(offset)
        raise OSError(getattr(errno, refusal), os.strerror(getattr(errno, refusal)))

    monkeypatch.setattr(os, "sendfile", sendfile)
    opened: list[TrackedFile] = []
    server = await start_server(file_app(opened, lambda: TrackedFile(path)), validate=False)
    client = await connect(server)
    try:
        for _ in range(2):  # and the connection stays usable
            await client.send(get_request(close=False))
            response = await client.response()
            assert response.status == 200 and response.body == data
    finally:
        await client.close()
    assert refused == [0, 0]
    for f in opened:
        assert await asyncio.to_thread(f.close_event.wait, SAFETY)
