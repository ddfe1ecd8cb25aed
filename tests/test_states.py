"""The connection's two ways of working, and the hand-overs between them.

A request is handled in the protocol's callbacks when it can be (a head, perhaps a small
body, one response), and in a task when it cannot (a chunked or spooled body, a streamed
response, a refusal).  These tests send requests that take each way on one connection,
and check what must hold whichever way a request took: order, bounds and checks.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from .apps.echo import echo
from .conftest import StartServer
from .http import RawClient
from .waiting import SAFETY

Env = dict[str, Any]


async def test_every_path_on_one_connection_answers_in_order(
        start_server: StartServer) -> None:
    server = await start_server(echo, body_buffer_size=1024)
    client = await RawClient.connect(server.host, server.port)
    big = bytes(range(256)) * 16  # 4 KiB: past body_buffer_size, spooled to a file
    requests = [
        (b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n", b"GET /plain "),
        (b"POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
         b"POST /small abc"),
        (b"POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"2\r\nde\r\n1\r\nf\r\n0\r\n\r\n", b"POST /chunked def"),
        (b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n", b"GET /stream "),
        (b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n" + big,
         b"POST /big " + big),
        (b"GET /last HTTP/1.1\r\nHost: t\r\n\r\n", b"GET /last "),
    ]
    async with asyncio.timeout(SAFETY):
        await client.send(b"".join(request for request, _ in requests))
        for _, expected in requests:
            response = await client.response()
            assert response.status == 200
            assert response.body == expected
        # A body that arrives in pieces, after its head: the connection waits for it.
        await client.send(b"PUT /pieces HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\n")
        await client.send(b"12")
        await client.send(b"3")
        await client.send(b"456GET /after HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert (await client.response()).body == b"PUT /pieces 123456"
        assert (await client.response()).body == b"GET /after "
        assert await client.closed_by_server()
    await client.close()


async def test_bytes_piling_up_while_the_application_runs_stay_bounded(
        start_server: StartServer) -> None:
    """A client pipelining without end while its request runs: the server stops reading
    instead of buffering it all."""
    release, started = threading.Event(), threading.Event()

    def slow(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
        started.set()
        release.wait(SAFETY)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    max_header_size = 8192
    server = await start_server(slow, validate=False, max_header_size=max_header_size)
    sock = socket.create_connection((server.host, server.port))
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert await asyncio.to_thread(started.wait, SAFETY)
        sock.setblocking(False)
        flood = b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n" * 2000
        [conn] = server._state.connections  # type: ignore[union-attr]
        sent = 0
        async with asyncio.timeout(SAFETY):
            # until the server has stopped reading and the kernel's buffers are full
            while True:
                try:
                    sent += sock.send(flood)
                except BlockingIOError:
                    if conn._reading_paused:
                        break
                    await asyncio.sleep(0.01)  # let the server read; poll again
        bound = 2 * max_header_size + 256 * 1024  # its high-water mark and one read more
        assert sent > bound
        assert len(conn._buffer) <= bound
    finally:
        release.set()
        sock.close()


async def test_a_string_subclass_is_refused_even_after_the_same_value_passed(
        start_server: StartServer) -> None:
    """The server remembers headers and statuses it has checked; a value of another type
    that compares equal is still checked, and refused."""

    class Text(str):
        pass

    def app(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
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


@pytest.mark.parametrize("size", [1_000, 32 * 1024])
async def test_pieces_handed_over_together_go_out_in_order_in_one_write(
        start_server: StartServer, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """Everything a thread handed over while the loop was busy is written at once: in
    one gathering system call on uvloop; where ``writelines`` would copy, small pieces
    are joined first and large ones written one by one."""
    from aiowsgi import connection

    runs: list[int] = []
    leading_bytes = connection._leading_bytes

    def spy(items: list[Any]) -> int:
        runs.append(leading_bytes(items))
        return runs[-1]

    monkeypatch.setattr(connection, "_leading_bytes", spy)
    count = 10 if size > 1_000 else 100  # below send_buffer_size: no wait for credit
    pieces = [(b"%04d" % i) * (size // 4) for i in range(count)]  # all different
    go, started, produced = threading.Event(), threading.Event(), threading.Event()

    def app(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        started.set()
        go.wait(SAFETY)
        yield from pieces
        produced.set()

    server = await start_server(app)
    client = await RawClient.connect(server.host, server.port)
    try:
        async with asyncio.timeout(SAFETY):
            await client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            await asyncio.to_thread(started.wait, SAFETY)
            go.set()
            assert produced.wait(SAFETY)  # the loop is held here while the thread hands over
            response = await client.response()
    finally:
        await client.close()
    assert response.status == 200
    assert response.body == b"".join(pieces)
    assert max(runs) == count  # every piece was in one batch
