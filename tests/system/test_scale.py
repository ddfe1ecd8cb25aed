"""Idle scale: one server holds many idle keep-alive connections and still answers.

The CI-sized version of ``bench/idle.py`` (10,000 connections, server RSS): here
1,000 connections, each of which has had one request answered, stay open and idle
while a new connection gets its answer, and every one of them is still open and
usable afterwards.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Iterator

import pytest

from ..apps.echo import echo
from ..conftest import StartServer
from ..http import RawClient
from ..waiting import SAFETY

CONNECTIONS = 1000
BATCH = 250  # opened at once: well within the listen backlog
SAMPLE = 20  # idle connections that send a second request
# The client's and the server's end of every connection live in this process.
FILES_NEEDED = 2 * CONNECTIONS + 512
OPEN_TIMEOUT = 3 * SAFETY  # a thousand connections: a wider safety net


@pytest.fixture
def enough_files() -> Iterator[None]:
    """Raise the RLIMIT_NOFILE soft limit for the test if it is too low, then restore it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= FILES_NEEDED:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < FILES_NEEDED:
        pytest.skip(f"needs {FILES_NEEDED} open files (client and server ends of "
                    f"{CONNECTIONS} connections), but the hard RLIMIT_NOFILE is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILES_NEEDED, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_idle_keepalive_connections_do_not_stop_new_requests(
        enough_files: None, start_server: StartServer) -> None:
    server = await start_server(echo, keepalive_timeout=300)
    clients: list[RawClient] = []

    async def open_idle(n: int) -> None:
        client = await RawClient.connect(server.host, server.port)
        clients.append(client)  # closed at the end whatever happens next
        response = await client.request("GET", f"/idle/{n}")
        assert (response.status, response.body) == (200, f"GET /idle/{n} ".encode())
        assert response.header("Connection") is None  # kept alive

    try:
        async with asyncio.timeout(OPEN_TIMEOUT):
            for start in range(0, CONNECTIONS, BATCH):
                # A TaskGroup: on a failure the rest of the batch is cancelled, not left running.
                async with asyncio.TaskGroup() as group:
                    for n in range(start, min(start + BATCH, CONNECTIONS)):
                        group.create_task(open_idle(n))
        assert len(clients) == CONNECTIONS

        fresh = await RawClient.connect(server.host, server.port)
        clients.append(fresh)
        response = await fresh.request("GET", "/fresh")
        assert (response.status, response.body) == (200, b"GET /fresh ")

        stats = server.stats()
        assert (stats["connections"], stats["connections_refused"]) == (CONNECTIONS + 1, 0)
        idle = clients[:CONNECTIONS]
        closed = [n for n, c in enumerate(idle) if c.reader.at_eof() or c.writer.is_closing()]
        assert closed == [], f"{len(closed)} idle connections were closed"
        sample = idle[::CONNECTIONS // SAMPLE]
        async with asyncio.TaskGroup() as group:
            requests = [group.create_task(c.request("GET", f"/again/{n}"))
                        for n, c in enumerate(sample)]
        assert [(r.result().status, r.result().body) for r in requests] == [
            (200, f"GET /again/{n} ".encode()) for n in range(len(sample))]
    finally:
        await asyncio.gather(*(c.close() for c in clients))
