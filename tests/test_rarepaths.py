"""The rare paths of a connection: request bodies read in a task (chunked, or too large to
stay in memory), and the server's own refusals (4xx), each limit exactly and one past."""

from __future__ import annotations

from .apps.echo import echo
from .conftest import StartServer
from .http import connect, raw_exchange

# -- request bodies -----------------------------------------------------------------------


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


# -- refusals -----------------------------------------------------------------------------


async def test_malformed_request_gets_400_and_close(start_server: StartServer) -> None:
    server = await start_server(echo)
    client = await connect(server)
    await client.send(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n")
    response = await client.response()
    assert response.status == 400
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


async def test_head_size_limit_exactly_and_one_past(start_server: StartServer) -> None:
    server = await start_server(echo, max_header_size=1024)
    base = b"GET / HTTP/1.1\r\nHost: t\r\nX-Pad: \r\n\r\n"
    pad = 1024 - len(base)
    client = await connect(server)
    at_limit = base.replace(b"X-Pad: ", b"X-Pad: " + b"p" * pad)
    assert len(at_limit) == 1024
    await client.send(at_limit)
    assert (await client.response()).status == 200
    await client.send(base.replace(b"X-Pad: ", b"X-Pad: " + b"p" * (pad + 1)))
    response = await client.response()
    assert response.status == 431
    assert await client.closed_by_server()


async def test_header_count_limit_exactly_and_one_past(start_server: StartServer) -> None:
    server = await start_server(echo, max_header_count=5)
    client = await connect(server)
    fields = "".join(f"X-{i}: v\r\n" for i in range(4))  # plus Host: 5 fields
    await client.send(f"GET / HTTP/1.1\r\nHost: t\r\n{fields}\r\n".encode())
    assert (await client.response()).status == 200
    await client.send(f"GET / HTTP/1.1\r\nHost: t\r\n{fields}X-4: v\r\n\r\n".encode())
    assert (await client.response()).status == 431
    assert await client.closed_by_server()


async def test_request_line_limit_exactly_and_one_past(start_server: StartServer) -> None:
    server = await start_server(echo, max_request_line=64)
    client = await connect(server)
    line = "GET /" + "a" * (64 - len("GET / HTTP/1.1") ) + " HTTP/1.1"
    assert len(line) == 64
    await client.send(f"{line}\r\nHost: t\r\n\r\n".encode())
    assert (await client.response()).status == 200
    line = line.replace("/a", "/aa")
    await client.send(f"{line}\r\nHost: t\r\n\r\n".encode())
    assert (await client.response()).status == 414
    assert await client.closed_by_server()


async def test_chunk_line_and_trailer_limits(start_server: StartServer) -> None:
    server = await start_server(echo, max_chunk_line=32, max_trailer_size=32)
    head = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    ext = b"1;e=" + b"x" * (32 - len(b"1;e=\r\n")) + b"\r\n"  # exactly 32 bytes
    assert len(ext) == 32
    trailer = b"T: " + b"y" * (32 - len(b"T: \r\n\r\n")) + b"\r\n\r\n"
    assert len(trailer) == 32
    client = await connect(server)
    await client.send(head + ext + b"a\r\n0\r\n" + trailer)
    assert (await client.response()).body == b"POST / a"
    await client.send(head + ext.replace(b"e=", b"e=x") + b"a\r\n0\r\n\r\n")
    assert (await client.response()).status == 400
    assert await client.closed_by_server()
    client = await connect(server)
    await client.send(head + b"1\r\na\r\n0\r\n" + trailer.replace(b"T: ", b"T: y"))
    assert (await client.response()).status == 431
    assert await client.closed_by_server()


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
