"""The connection, the asyncio protocol: persistent connections and pipelining, the last
responses before a shutdown, many connections at once, and a client that leaves while
its application runs.  Reading a request is test_reading.py's; each transition of the
state table, test_states.py's."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .apps.echo import echo, status_app
from .apps.gate import Gate
from .conftest import StartServer
from .http import connect
from .waiting import SAFETY, until

Env = dict[str, Any]
StartResponse = Callable[..., Any]


# -- persistent connections ---------------------------------------------------------------


async def test_http11_connections_persist_by_default(start_server: StartServer) -> None:
    server = await start_server(echo)
    client = await connect(server)
    for i in range(3):
        response = await client.request("GET", f"/n{i}")
        assert response.status == 200
        assert response.body == f"GET /n{i} ".encode()
        assert response.header("Connection") is None
    await client.close()


async def test_http11_connection_close_is_honoured(start_server: StartServer) -> None:
    server = await start_server(echo)
    client = await connect(server)
    response = await client.request("GET", "/", headers={"Connection": "close"})
    assert response.status == 200
    assert response.header("Connection") == "close"
    assert await client.closed_by_server()


async def test_http10_closes_unless_keep_alive_asked(start_server: StartServer) -> None:
    server = await start_server(echo)
    client = await connect(server)
    response = await client.request("GET", "/", version="HTTP/1.0")
    assert response.header("Connection") == "close"
    assert await client.closed_by_server()

    client = await connect(server)
    for _ in range(2):
        response = await client.request("GET", "/", version="HTTP/1.0",
                                        headers={"Connection": "keep-alive"})
        assert response.status == 200
        assert response.header("Connection") == "keep-alive"
    await client.close()


async def test_app_connection_close_header_closes(start_server: StartServer) -> None:
    # wsgiref's validator forbids hop-by-hop headers; PEP 3333 servers honour this one
    server = await start_server(status_app("200 OK", [("Content-Type", "text/plain"),
                                                      ("Connection", "close")], b"bye"),
                                validate=False)
    client = await connect(server)
    response = await client.request()
    assert response.body == b"bye"
    assert response.all("Connection") == ["close"]
    assert await client.closed_by_server()


async def test_pipelined_requests_are_answered_in_order(start_server: StartServer) -> None:
    server = await start_server(echo)
    client = await connect(server)
    requests = b"".join(
        f"POST /p{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{i:02d}".encode()
        for i in range(5)
    ) + b"GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    await client.send(requests)
    for i in range(5):
        response = await client.response()
        assert response.body == f"POST /p{i} {i:02d}".encode()
    last = await client.response()
    assert last.body == b"GET /last "
    assert await client.closed_by_server()


async def test_responses_in_flight_at_shutdown_say_connection_close(
        start_server: StartServer) -> None:
    gate = Gate()
    server = await start_server(gate)
    client = await connect(server)
    pending = asyncio.ensure_future(client.request())
    await gate.wait_entered()
    shutdown = asyncio.ensure_future(server.shutdown())
    await until(lambda: not server.sockets, "the server to stop listening")
    gate.release.set()
    response = await pending
    assert response.status == 200
    assert response.header("Connection") == "close"
    assert await client.closed_by_server()
    await shutdown


async def test_many_connections_at_once(start_server: StartServer) -> None:
    server = await start_server(echo, threads=4)

    async def one(i: int) -> bytes:
        client = await connect(server)
        try:
            return (await client.request("POST", f"/{i}", body=b"x" * i)).body
        finally:
            await client.close()

    bodies = await asyncio.gather(*(one(i) for i in range(50)))
    assert bodies == [f"POST /{i} ".encode() + b"x" * i for i in range(50)]


# -- a client that leaves -----------------------------------------------------------------


async def test_disconnect_is_noticed_while_the_app_runs(start_server: StartServer) -> None:
    started = threading.Event()
    seen = threading.Event()
    closed = threading.Event()
    outcome: list[str] = []

    def app(environ: Env, start_response: Callable[..., Any]) -> Iterator[bytes]:
        disconnected = environ["aiowsgi.disconnected"]
        assert isinstance(disconnected, threading.Event)
        assert not disconnected.is_set()
        start_response("200 OK", [("Content-Type", "text/plain")])
        started.set()
        # a long computation that checks for the client now and then
        if disconnected.wait(SAFETY):
            seen.set()
        try:
            # A half-closed client may still read, so the first bytes go out; once the
            # peer's reset arrives, a write raises.
            for _ in range(10_000):
                yield b"too late\n" * 1000
            outcome.append("every write went through")
        except GeneratorExit:
            outcome.append("stopped")  # a write raised, and close() ran
            raise
        finally:
            closed.set()

    server = await start_server(app, validate=False)
    client = await connect(server)
    await client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert await asyncio.to_thread(started.wait, SAFETY)
    await client.close()
    assert await asyncio.to_thread(seen.wait, SAFETY)
    assert await asyncio.to_thread(closed.wait, SAFETY)
    assert outcome == ["stopped"]
    await until(lambda: not server.stats()["requests_running"]
                and not server.stats()["connections"], "the request and its connection to end")


# -- closing from inside resume_writing ---------------------------------------------------

PIECE = b"d" * 65536


def download(environ: Env, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(PIECE) * 256))])
    return iter([PIECE] * 256)


async def test_a_response_that_ends_when_the_transport_drains_closes_cleanly(
        start_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    """The last bytes of a ``Connection: close`` response leave while the transport is
    paused, so the connection closes from inside ``resume_writing``.  asyncio's selector
    transport then calls ``connection_lost`` twice if ``close()`` runs there (CPython
    gh-156512): one traceback per download in the log, without the server's care."""
    server = await start_server(download)
    loop = asyncio.get_running_loop()
    for _ in range(5):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the server's buffer fills
        sock.setblocking(False)
        await loop.sock_connect(sock, (server.host, server.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        received = 0
        async with asyncio.timeout(SAFETY):
            while piece := await reader.read(4096):  # a slowish reader: pauses the server
                received += len(piece)
        writer.close()
        assert received > len(PIECE) * 256
        # what asyncio queued while closing has run once a callback queued now has
        marker = loop.create_future()
        loop.call_soon(marker.set_result, None)
        await marker
    await until(lambda: server.stats()["connections"] == 0, "every connection closed")
    marker = loop.create_future()
    loop.call_soon(marker.set_result, None)
    await marker
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors[0].getMessage()
