"""Capacity and faults: what happens at each limit, and when the client goes away."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .apps.echo import echo
from .apps.gate import Gate
from .conftest import StartServer
from .http import connect
from .waiting import SAFETY

Env = dict[str, Any]


async def test_connection_limit_answers_503(start_server: StartServer) -> None:
    server = await start_server(echo, max_connections=2)
    first, second = await connect(server), await connect(server)
    assert (await first.request()).status == 200
    assert (await second.request()).status == 200
    third = await connect(server)
    response = await third.response()  # answered without a request
    assert response.status == 503
    assert response.header("Retry-After") == "1"
    assert response.header("Connection") == "close"
    assert await third.closed_by_server()
    assert server.stats()["connections_refused"] == 1
    await first.close()
    # a place is free again once a connection is gone
    async with asyncio.timeout(SAFETY):
        while server.stats()["connections"] > 1:
            await asyncio.sleep(0.01)
    fourth = await connect(server)
    assert (await fourth.request()).status == 200
    await fourth.close()
    await second.close()


async def test_full_wait_queue_answers_503(start_server: StartServer) -> None:
    gate = Gate()
    server = await start_server(gate, threads=1, max_queue=1)
    busy, queued, refused = [await connect(server) for _ in range(3)]
    try:
        busy_response = asyncio.ensure_future(busy.request())
        await gate.wait_entered()
        queued_response = asyncio.ensure_future(queued.request())
        async with asyncio.timeout(SAFETY):
            while server.stats()["requests_queued"] < 1:
                await asyncio.sleep(0.01)
        response = await refused.request()
        assert response.status == 503
        assert response.header("Retry-After") == "1"
        assert await refused.closed_by_server()
        gate.release.set()
        assert (await busy_response).body == b"done"
        assert (await queued_response).body == b"done"
    finally:
        gate.release.set()
        await busy.close()
        await queued.close()


async def test_queue_timeout_answers_503(start_server: StartServer) -> None:
    gate = Gate()
    server = await start_server(gate, threads=1, queue_timeout=0.2)
    busy, waiting = await connect(server), await connect(server)
    try:
        busy_response = asyncio.ensure_future(busy.request())
        await gate.wait_entered()
        response = await waiting.request()
        assert response.status == 503
        assert response.header("Retry-After") == "1"
        assert await waiting.closed_by_server()
        assert server.stats()["requests_queued"] == 0
        gate.release.set()
        assert (await busy_response).status == 200
        # the thread went back to the pool: the next request gets it at once
        after = await connect(server)
        assert (await after.request()).status == 200
        await after.close()
    finally:
        gate.release.set()
        await busy.close()


async def test_queued_requests_are_served_in_order(start_server: StartServer) -> None:
    order: list[str] = []
    gate = threading.Event()

    def app(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/first":
            gate.wait(SAFETY)
        order.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"x"]

    server = await start_server(app, threads=1)
    clients = [await connect(server) for _ in range(4)]
    first = asyncio.ensure_future(clients[0].request("GET", "/first"))
    async with asyncio.timeout(SAFETY):
        while server.stats()["requests_running"] < 1:
            await asyncio.sleep(0.01)
    rest = []
    for i, client in enumerate(clients[1:], 1):
        rest.append(asyncio.ensure_future(client.request("GET", f"/n{i}")))
        async with asyncio.timeout(SAFETY):
            while server.stats()["requests_queued"] < i:
                await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(first, *rest)
    assert order == ["/first", "/n1", "/n2", "/n3"]
    for client in clients:
        await client.close()


async def test_body_memory_budget_spools_to_disk(start_server: StartServer) -> None:
    kinds: list[str] = []

    def app(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"]
        kinds.append("memory" if isinstance(body, io.BytesIO) else "file")
        data = body.read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(len(data)).encode()]

    server = await start_server(app, validate=False, body_buffer_size=1000,
                                max_body_memory=1500)
    client = await connect(server)
    assert (await client.request("POST", "/", body=b"a" * 1000)).body == b"1000"
    assert (await client.request("POST", "/", body=b"b" * 1001)).body == b"1001"
    assert kinds == ["memory", "file"]
    assert server.stats()["body_memory"] == 0  # everything given back
    # two bodies at once: the second does not fit in what the first leaves of the budget
    gate = Gate()
    server = await start_server(gate, validate=False, body_buffer_size=1000,
                                max_body_memory=1500)
    first, second = await connect(server), await connect(server)
    pending = asyncio.ensure_future(first.request("POST", "/", body=b"c" * 1000))
    await gate.wait_entered()
    assert server.stats()["body_memory"] == 1000
    other = asyncio.ensure_future(second.request("POST", "/", body=b"d" * 800))
    await gate.wait_entered()
    assert server.stats()["body_memory"] == 1000  # the 800 bytes went to a file
    gate.release.set()
    await asyncio.gather(pending, other)
    assert server.stats()["body_memory"] == 0
    for each in (client, first, second):
        await each.close()


async def test_request_timeout_answers_504_and_replaces_the_thread(
        start_server: StartServer) -> None:
    gate = Gate()

    def app(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/stuck":
            return gate(environ, start_response)
        return echo(environ, start_response)

    server = await start_server(app, threads=1, request_timeout=0.2,
                                max_abandoned_threads=1)
    try:
        client = await connect(server)
        response = await client.request("GET", "/stuck")
        assert response.status == 504
        assert await client.closed_by_server()
        assert server.stats()["threads_abandoned"] == 1
        # the stuck thread is replaced: other requests are still served
        other = await connect(server)
        assert (await other.request("GET", "/")).body == b"GET / "
        await other.close()
        assert server.stats()["threads"] == 2
        # a second stuck request is past the cap: no more replacement
        again = await connect(server)
        assert (await again.request("GET", "/stuck")).status == 504
        assert server.stats()["threads_abandoned"] == 2
        await again.close()
    finally:
        gate.release.set()
    await gate.wait_finished(2)
    async with asyncio.timeout(SAFETY):
        while server.stats()["threads_abandoned"]:
            await asyncio.sleep(0.01)
    assert server.stats()["requests_running"] == 0


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
    async with asyncio.timeout(SAFETY):
        while server.stats()["requests_running"] or server.stats()["connections"]:
            await asyncio.sleep(0.01)


async def test_responses_in_flight_at_shutdown_say_connection_close(
        start_server: StartServer) -> None:
    gate = Gate()
    server = await start_server(gate)
    client = await connect(server)
    pending = asyncio.ensure_future(client.request())
    await gate.wait_entered()
    shutdown = asyncio.ensure_future(server.shutdown())
    async with asyncio.timeout(SAFETY):
        while server.sockets:
            await asyncio.sleep(0.01)
    gate.release.set()
    response = await pending
    assert response.status == 200
    assert response.header("Connection") == "close"
    assert await client.closed_by_server()
    await shutdown


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
