"""Where a request body waits for the application: memory, or a temporary file past
``body_buffer_size`` or the ``max_body_memory`` budget; a body of hundreds of MiB."""

from __future__ import annotations

import asyncio
import hashlib
import io
import socket
from collections.abc import Callable, Iterable
from typing import Any

from aiowsgi.testing import LiveServer

from .apps.gate import Gate
from .conftest import StartServer
from .http import connect
from .waiting import SAFETY

Env = dict[str, Any]


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


def digest(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
    h = hashlib.sha256()
    size = 0
    while chunk := environ["wsgi.input"].read(1 << 20):
        h.update(chunk)
        size += len(chunk)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{size} {h.hexdigest()}".encode()]


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
