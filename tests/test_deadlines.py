"""Every timeout of a connection: the header timeout (a head that does not arrive), the
keep-alive timeout (an idle connection), the body timeout (a body that stalls), and the
send timeout (a client that stops reading: a whole response, a streamed one, a file).

The limits on the application's time (queue_timeout, request_timeout) are admission's:
test_admission.py.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .apps.echo import echo
from .apps.files import TrackedFile, file_app
from .conftest import StartServer
from .http import RawClient, connect, get_request, read_response, read_to_eof
from .waiting import SAFETY

Env = dict[str, Any]


# -- header timeout -----------------------------------------------------------------------


async def test_slow_head_gets_408(start_server: StartServer) -> None:
    server = await start_server(echo, header_timeout=0.2)
    client = await connect(server)
    await client.send(b"GET / HTTP/1.1\r\nHost: t\r\n")
    response = await client.response()
    assert response.status == 408
    assert await client.closed_by_server()


async def test_kept_alive_client_that_begins_a_head_gets_408_not_silence(
        start_server: StartServer) -> None:
    server = await start_server(echo, keepalive_timeout=0.2, header_timeout=0.3)
    client = await connect(server)
    assert (await client.request()).status == 200
    await client.send(b"GET /slow HTTP/1.1\r\n")
    response = await client.response()
    assert response.status == 408
    assert await client.closed_by_server()


async def test_a_trickling_head_is_cut_off_while_others_are_served(
        start_server: StartServer) -> None:
    server = await start_server(echo, header_timeout=0.5)
    slow = await RawClient.connect(server.host, server.port)
    head = b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Filler: " + b"a" * 10_000

    async def trickle() -> None:
        for byte in head:  # one byte every 20 ms: a slowloris
            if slow.writer.transport.is_closing():
                return
            slow.writer.write(bytes([byte]))
            await asyncio.sleep(0.02)

    trickler = asyncio.ensure_future(trickle())
    try:
        # meanwhile, other clients are served
        for _ in range(3):
            other = await RawClient.connect(server.host, server.port)
            assert (await other.request("GET", "/fast")).status == 200
            await other.close()
        response = await read_response(slow.reader)
        assert response.status == 408
        assert await slow.closed_by_server()
    finally:
        trickler.cancel()
        await slow.close()


# -- keep-alive timeout -------------------------------------------------------------------


async def test_idle_keepalive_connection_is_closed(start_server: StartServer) -> None:
    server = await start_server(echo, keepalive_timeout=0.2)
    client = await connect(server)
    assert (await client.request()).status == 200
    assert await client.closed_by_server()


# -- body timeout -------------------------------------------------------------------------


async def test_a_stalled_body_gets_408(start_server: StartServer) -> None:
    server = await start_server(echo, body_timeout=0.3)
    client = await RawClient.connect(server.host, server.port)
    await client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    response = await client.response()
    assert response.status == 408
    assert await client.closed_by_server()


# -- send timeout -------------------------------------------------------------------------
# A client that stops reading, in each of the three ways a response can wait for it: a
# whole response the transport holds (the connection waits for it to drain), a stream
# whose thread waits for credit (woken when the connection gives up), and a file sent
# with sendfile (the deadline of each piece).


async def test_a_response_the_client_does_not_read_is_cut_off_after_send_timeout(
        start_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    """A whole response (not a stream) bigger than the socket buffers, never read: the
    connection is aborted after the send timeout, and the next client is served."""
    caplog.set_level(logging.INFO, logger="aiowsgi.error")
    body = b"x" * (32 * 1024 * 1024)

    def big(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/small":
            start_response("200 OK", [("Content-Length", "2")])
            return [b"ok"]
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    server = await start_server(big, validate=False, send_timeout=0.5)
    stalled = socket.create_connection((server.host, server.port))
    try:
        stalled.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        async with asyncio.timeout(SAFETY):
            while not any("did not read its response" in r.getMessage()
                          for r in caplog.records):
                await asyncio.sleep(0.05)
            while server.stats()["connections"]:
                await asyncio.sleep(0.05)
            client = await RawClient.connect(server.host, server.port)
            assert (await client.request(target="/small")).body == b"ok"
            await client.close()
    finally:
        stalled.close()


def stalled_stream_app(closed: threading.Event, started: threading.Event
                       ) -> Callable[..., Iterable[bytes]]:
    class Body:
        def __init__(self) -> None:
            self.sent = 0

        def __iter__(self) -> Iterator[bytes]:
            started.set()
            for _ in range(16 * 1024):  # at most 1 GiB; the client never reads it all
                self.sent += 1
                yield b"z" * 65536

        def close(self) -> None:
            closed.set()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Body:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Body()

    return app


async def test_client_that_stops_reading_is_cut_off(start_server: StartServer) -> None:
    closed, started = threading.Event(), threading.Event()
    server = await start_server(stalled_stream_app(closed, started), send_timeout=0.5)
    client = await RawClient.connect(server.host, server.port)
    await client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert await asyncio.to_thread(started.wait, SAFETY)
    # The client reads nothing more. The server must give up after the send timeout:
    # the thread waiting for credit wakes, the iteration stops, close() runs.
    assert await asyncio.to_thread(closed.wait, SAFETY)
    # and the connection is gone: reading drains what the kernel buffered, then EOF
    await read_to_eof(client.reader)
    await client.close()


async def test_file_to_a_client_that_stops_reading_hits_the_send_timeout(
        start_server: StartServer, tmp_path: Path) -> None:
    path = tmp_path / "sparse.bin"
    with open(path, "wb") as f:
        f.truncate(256 * 1024 * 1024)  # more than every kernel buffer on the way can hold
    opened: list[TrackedFile] = []
    made = threading.Event()

    def make() -> TrackedFile:
        f = TrackedFile(path)
        made.set()
        return f

    server = await start_server(file_app(opened, make), validate=False, send_timeout=0.5)
    client = await connect(server)
    try:
        await client.send(get_request(close=False))
        assert await asyncio.to_thread(made.wait, SAFETY)
        assert await asyncio.to_thread(opened[0].close_event.wait, SAFETY)  # given up on
        received = await read_to_eof(client.reader)  # a part, then the server closed
        assert 0 < len(received) < 256 * 1024 * 1024
    finally:
        await client.close()
