"""Faults: clients that reset mid-upload, mid-download and while the app runs.

After a thousand of them the server holds no more file descriptors or threads than
before, every application call was closed, and nothing was logged above INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aiowsgi import Server

from ..conftest import StartServer
from ..http import RawClient
from ..waiting import SAFETY

FAULTS = int(os.environ.get("FAULTS", "1000"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _fd_targets() -> list[str]:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
    return targets


def _thread_names() -> list[str]:
    return [t.name for t in threading.enumerate()]


class App:
    """Three endpoints, one per kind of fault; counts calls and close()s."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.closed = 0

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterator[bytes]:
        with self.lock:
            self.calls += 1
        return self.body(environ, start_response)

    def body(self, environ: dict[str, Any],
             start_response: Callable[..., Any]) -> Iterator[bytes]:
        try:
            path = environ["PATH_INFO"]
            if path == "/upload":
                environ["wsgi.input"].read()
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            if path == "/download":
                for _ in range(1024):  # 64 MiB at most; the client resets long before
                    yield b"d" * 65536
            elif path == "/slow":
                environ["aiowsgi.disconnected"].wait(SAFETY)
                yield b"late"
            else:
                yield b"ok"
        finally:
            with self.lock:
                self.closed += 1


async def fault(server: Server, kind: int) -> None:
    client = await RawClient.connect(server.host, server.port)
    if kind == 0:  # mid-upload, past the in-memory threshold so the body is spooling
        await client.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n"
                          + b"u" * 200_000)
    elif kind == 1:  # mid-download
        await client.send(b"GET /download HTTP/1.1\r\nHost: t\r\n\r\n")
        async with asyncio.timeout(SAFETY):
            await client.reader.readexactly(100_000)
    else:  # while the app runs
        await client.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        async with asyncio.timeout(SAFETY):
            while server.stats()["requests_running"] == 0:
                await asyncio.sleep(0.001)
    await client.reset()


async def settled(server: Server, app: App) -> None:
    async with asyncio.timeout(SAFETY):
        while True:
            stats = server.stats()
            with app.lock:
                done = app.calls == app.closed
            if done and not stats["connections"] and not stats["requests_running"]:
                return
            await asyncio.sleep(0.01)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_a_thousand_resets_leave_nothing_behind(start_server: StartServer,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    app = App()
    server = await start_server(app, validate=False, threads=4, body_buffer_size=64 * 1024)
    # warm up: the loop and the test's own machinery reach their steady state
    for kind in range(3):
        await fault(server, kind)
    await settled(server, app)
    fds, threads = open_fds(), threading.active_count()
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="aiowsgi")

    for i in range(FAULTS):
        await fault(server, i % 3)
    await settled(server, app)

    # every download reaches the app; uploads never do, and a request whose client is gone
    # before a thread takes it up is dropped unseen
    assert app.calls >= FAULTS // 3
    assert app.closed == app.calls
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SAFETY
    while open_fds() > fds or threading.active_count() > threads:
        assert loop.time() < deadline, (fds, threads, _fd_targets(), _thread_names())
        await asyncio.sleep(0.01)
    noisy = [r for r in caplog.records if r.name.startswith("aiowsgi") and r.levelno > logging.INFO]
    assert not noisy, [r.getMessage() for r in noisy[:5]]
    # and the server still serves
    client = await RawClient.connect(server.host, server.port)
    response = await client.request("GET", "/")
    assert response.body == b"ok"
    await client.close()
