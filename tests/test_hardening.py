"""Slow clients, defaults that real applications need, and requests split anywhere."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiowsgi.testing import LiveServer

from .apps.echo import echo
from .conftest import StartServer
from .http import RawClient, read_response
from .waiting import SAFETY

Env = dict[str, Any]


def digest(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
    h = hashlib.sha256()
    size = 0
    while chunk := environ["wsgi.input"].read(1 << 20):
        h.update(chunk)
        size += len(chunk)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{size} {h.hexdigest()}".encode()]


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


async def test_a_stalled_body_gets_408(start_server: StartServer) -> None:
    server = await start_server(echo, body_timeout=0.3)
    client = await RawClient.connect(server.host, server.port)
    await client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    response = await client.response()
    assert response.status == 408
    assert await client.closed_by_server()


async def test_tracebacks_reach_the_client_only_when_enabled(start_server: StartServer) -> None:
    def broken(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
        raise LookupError("the secret table is missing")

    for expose in (False, True):
        server = await start_server(broken, expose_tracebacks=expose)
        client = await RawClient.connect(server.host, server.port)
        response = await client.request()
        assert response.status == 500
        assert (b"the secret table is missing" in response.body) is expose
        assert (b"Traceback" in response.body) is expose
        await client.close()


async def test_an_8_kib_cookie_passes_the_default_limits(start_server: StartServer) -> None:
    def cookie(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["HTTP_COOKIE"].encode()]

    server = await start_server(cookie)
    client = await RawClient.connect(server.host, server.port)
    cookie_value = "session=" + "c" * 8192
    response = await client.request("GET", "/", headers={"Cookie": cookie_value,
                                                         "X-Other": "o" * 4096})
    assert response.status == 200
    assert response.body == cookie_value.encode()
    await client.close()


def test_an_upload_of_hundreds_of_mib_passes_the_default_limits() -> None:
    size = 300 * 1024 * 1024
    block = bytes(range(256)) * 4096  # 1 MiB
    expected = hashlib.sha256()
    with LiveServer(digest) as server, socket.create_connection(
            (server.host, server.port), timeout=SAFETY) as sock:
        sock.sendall(f"PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n"
                     "Connection: close\r\n\r\n".encode())
        for _ in range(size // len(block)):
            sock.sendall(block)
            expected.update(block)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(f"\r\n\r\n{size} {expected.hexdigest()}".encode())


_requests = st.sampled_from([
    b"GET /a?b=c HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world",
    b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n",
])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=_requests, cuts=st.lists(st.integers(min_value=1, max_value=200),
                                        max_size=12))
def test_a_request_survives_any_split_into_packets(request: bytes, cuts: list[int]) -> None:
    pieces, rest = [], request + b"GET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    for cut in cuts:
        if not rest:
            break
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    with LiveServer(echo) as server, socket.create_connection(
            (server.host, server.port), timeout=SAFETY) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            if piece:
                sock.sendall(piece)
                time.sleep(0.001)  # let each piece travel as its own segment
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    first, second = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    method, path = request.split(b" ")[:2]
    body = b"hello world" if method == b"POST" else b""
    assert first.endswith(b"\r\n\r\n" + method + b" " + path.split(b"?")[0] + b" " + body)
    assert second.endswith(b"GET /next ")
