"""Reading requests in the protocol's callbacks: heads split anywhere, the edges of a
request head (empty lines before it, a later HTTP/1 minor version, large cookies), and
100-continue.  Bodies read in a task are test_rarepaths.py's."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiowsgi.testing import LiveServer

from .apps.echo import echo
from .conftest import StartServer
from .http import RawClient, connect
from .waiting import SAFETY

Env = dict[str, Any]
StartResponse = Callable[..., Any]


# -- a request in pieces ------------------------------------------------------------------


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


# -- what real clients send at the edges --------------------------------------------------


async def test_empty_lines_before_a_request_are_ignored(start_server: StartServer) -> None:
    """RFC 9112 §2.2: a server ignores empty lines before a request line, on a fresh
    connection and after a body (clients that end a POST body with an extra CRLF)."""
    server = await start_server(echo)
    client = await RawClient.connect(server.host, server.port)
    await client.send(b"\r\n\r\nGET /first HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await client.response()).body == b"GET /first "
    await client.send(b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nab\r\n")
    assert (await client.response()).body == b"POST /post ab"
    # the stray CRLF arrived alone; the next request comes in a later packet
    assert (await client.request(target="/after")).body == b"GET /after "
    # pipelined, with the empty line between the two requests
    await client.send(b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx\r\n"
                      b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await client.response()).body == b"POST /a x"
    assert (await client.response()).body == b"GET /b "
    # and split inside the CRLF
    await client.send(b"\r")
    await client.send(b"\nGET /split HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await client.response()).body == b"GET /split "
    await client.close()


async def test_a_flood_of_empty_lines_is_refused(start_server: StartServer) -> None:
    """Empty lines count against the request line's limit: past it, 400 and close."""
    server = await start_server(echo, max_request_line=1024)
    client = await RawClient.connect(server.host, server.port)
    await client.send(b"\r\n" * 512 + b"GET /at-the-limit HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await client.response()).body == b"GET /at-the-limit "
    for _ in range(8):  # in several packets, none of them past the limit alone
        await client.send(b"\r\n" * 64)
    await client.send(b"\r\n")
    response = await client.response()
    assert response.status == 400
    assert b"empty lines" in response.body
    assert response.header("Connection") == "close"
    assert await client.closed_by_server()


async def test_a_later_http1_minor_version_is_served_as_1_1(
        start_server: StartServer) -> None:
    def protocol(environ: Env, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["SERVER_PROTOCOL"].encode()]

    server = await start_server(protocol)
    client = await RawClient.connect(server.host, server.port)
    for version in ("HTTP/1.2", "HTTP/1.9"):
        response = await client.request(version=version)  # the reader checks HTTP/1.1
        assert response.status == 200
        assert response.chunked  # 1.1 framing, and the connection stays open
        assert response.body == b"HTTP/1.1"
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


# -- 100-continue -------------------------------------------------------------------------


async def test_expect_100_continue(start_server: StartServer) -> None:
    server = await start_server(echo)
    client = await connect(server)
    await client.send(b"PUT /e HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                      b"Expect: 100-continue\r\n\r\n")
    interim = await client.response()
    assert interim.status == 100
    await client.send(b"data")
    response = await client.response()
    assert response.status == 200
    assert response.body == b"PUT /e data"
    await client.close()


async def test_expect_100_continue_not_sent_for_refused_body(start_server: StartServer) -> None:
    server = await start_server(echo, max_body_size=10)
    client = await connect(server)
    await client.send(b"PUT /e HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n"
                      b"Expect: 100-continue\r\n\r\n")
    response = await client.response()
    assert response.status == 413
    assert response.header("Connection") == "close"
    assert await client.closed_by_server()
