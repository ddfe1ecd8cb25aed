"""Admission: what is refused, and when, once the server is full: 503 past
max_connections, max_queue and queue_timeout, 504 past request_timeout with the stuck
thread abandoned (max_abandoned_threads), and the order of the queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .apps.echo import echo
from .apps.gate import Gate
from .conftest import StartServer
from .http import connect
from .waiting import SAFETY, until

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
    await until(lambda: server.stats()["connections"] <= 1, "the first connection to go")
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
        await until(lambda: server.stats()["requests_queued"] >= 1, "a queued request")
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
    await until(lambda: server.stats()["requests_running"] >= 1, "the first request")
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
    await until(lambda: not server.stats()["threads_abandoned"], "the stuck threads to end")
    assert server.stats()["requests_running"] == 0
