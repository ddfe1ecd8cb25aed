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
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from .conftest import StartServer
from .http import RawClient

Env = dict[str, Any]
SAFETY = 30.0


def echo(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The method, path and body; streamed (no Content-Length) under /stream."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    out = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} ".encode() + body
    if environ["PATH_INFO"] == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([out[:3], out[3:]])
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(out)))])
    return [out]


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
