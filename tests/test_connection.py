"""HTTP/1.1 behaviour over real sockets: persistence, pipelining, bodies, framing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from aiowsgi.wsgi import WSGIApp

from .apps.echo import echo, read_body
from .conftest import StartServer
from .http import RawClient, connect, raw_exchange, read_to_eof

Env = dict[str, Any]
StartResponse = Callable[..., Any]


def streaming(environ: Env, start_response: StartResponse) -> Iterable[bytes]:
    """A generator without Content-Length: framed by the server."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body() -> Iterable[bytes]:
        yield b"one,"
        yield b""
        yield b"two,"
        yield b"three"

    return body()


def status_app(status: str, headers: list[tuple[str, str]] | None = None,
               body: bytes = b"") -> WSGIApp:
    def app(environ: Env, start_response: StartResponse) -> Iterable[bytes]:
        read_body(environ)
        start_response(status, list(headers or []))
        return [body] if body else []

    return app


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


async def test_idle_keepalive_connection_is_closed(start_server: StartServer) -> None:
    server = await start_server(echo, keepalive_timeout=0.2)
    client = await connect(server)
    assert (await client.request()).status == 200
    assert await client.closed_by_server()


# -- request bodies -------------------------------------------------------------------


async def test_chunked_request_body(start_server: StartServer) -> None:
    server = await start_server(echo)
    client = await connect(server)
    await client.send(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: y\r\n\r\n")
    response = await client.response()
    assert response.body == b"POST /c hello world"
    # the connection stays usable after the trailer
    assert (await client.request("GET", "/after")).body == b"GET /after "
    await client.close()


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


async def test_body_at_the_limit_and_one_past(start_server: StartServer) -> None:
    server = await start_server(echo, max_body_size=10)
    client = await connect(server)
    assert (await client.request("POST", "/", body=b"x" * 10)).body == b"POST / " + b"x" * 10
    assert (await client.request("POST", "/", body=b"x" * 11)).status == 413
    assert await client.closed_by_server()


async def test_chunked_body_past_the_limit(start_server: StartServer) -> None:
    server = await start_server(echo, max_body_size=10)
    client = await connect(server)
    await client.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n")
    response = await client.response()
    assert response.status == 413
    assert await client.closed_by_server()


async def test_malformed_request_gets_400_and_close(start_server: StartServer) -> None:
    server = await start_server(echo)
    client = await connect(server)
    await client.send(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n")
    response = await client.response()
    assert response.status == 400
    assert response.header("Connection") == "close"
    assert await client.closed_by_server()


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


# -- response framing ---------------------------------------------------------------


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


async def test_error_responses_to_head_have_no_body(start_server: StartServer) -> None:
    """RFC 9110 §9.3.2, for refusals of the server's own: a malformed head, one too
    large, and a body too large."""
    server = await start_server(echo, max_body_size=10, max_header_size=4096)
    cases = [
        (b"HEAD / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"HEAD / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 5000 + b"\r\n\r\n", 431),
        (b"HEAD / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n", 413),
        (b"\r\nHEAD / HTTP/7.0\r\nHost: t\r\n\r\n", 505),
    ]
    for request, status in cases:
        data = await raw_exchange(server, request)
        head, sep, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % status), head
        assert sep and body == b"", data
        assert b"\r\nContent-Length: " in head
    # the same refusal to a GET has its body
    data = await raw_exchange(server, b"GET / HTTP/1.1\r\n\r\n")
    assert data.endswith(b"missing Host header\n")


async def test_error_response_to_a_head_the_app_failed_has_no_body(
        start_server: StartServer) -> None:
    def failing(environ: Env, start_response: StartResponse) -> Iterable[bytes]:
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
