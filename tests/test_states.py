"""The connection's two ways of working, and the hand-overs between them.

A request is handled in the protocol's callbacks when it can be (a head, perhaps a small
body, one response), and in a task when it cannot (a chunked or spooled body, a streamed
response, a refusal).  These tests send requests that take each way on one connection,
and check that the answers come in order whichever way each request took.
"""

from __future__ import annotations

import asyncio
from typing import Any

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
