"""How a response is written: what the application thread handed over while the loop was
busy leaves in one system call, whole and in order.  (Backpressure is test_flow.py's.)

Large pieces: uvloop's transport gathers them itself (``writev``).  asyncio's selector
transport sends one buffer per write, and its writelines joins them (before 3.12) or
never pauses the protocol (3.12.0-3.12.8, 3.13.0-3.13.1), so on asyncio the connection
gathers them with ``os.writev`` while the transport holds nothing, and leaves the rest,
and any error, to the transport.  These tests check the bytes on the wire in each case:
complete, in order, and a failed write closing the connection as a failed send does; the
last one counts the calls of a transport that gathers, through tests/fake_transport.py.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from aiowsgi import output
from aiowsgi.states import State

from .conftest import StartServer
from .fake_transport import Harness, settle
from .http import RawClient, Response, get_request
from .waiting import SAFETY

Env = dict[str, Any]
PIECE = 32 * 1024


def transport_gathers() -> bool:
    """Whether this loop's own transport is left to send several buffers in one call."""
    return type(asyncio.get_running_loop()).__module__.startswith("uvloop")


def distinct_pieces(count: int, size: int = PIECE) -> list[bytes]:
    """Pieces that differ from each other, so that any reordering shows."""
    return [(b"%06d" % i) * (size // 6) for i in range(count)]


class HeldApp:
    """An app whose pieces are all handed over while the test holds the loop, so that
    the loop takes them as one batch."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.started = threading.Event()
        self.go = threading.Event()
        self.produced = threading.Event()
        self.closed = threading.Event()

    def __call__(self, environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return self._body()

    def _body(self) -> Iterator[bytes]:
        try:
            self.started.set()
            self.go.wait(SAFETY)
            yield from self.pieces
            self.produced.set()
            yield from self.tail()
        finally:
            self.closed.set()

    def tail(self) -> Iterator[bytes]:
        """What comes after the held pieces, once the loop has gone on."""
        return iter(())

    async def run(self, client: RawClient) -> None:
        """Send the request; hold the loop while the thread hands every piece over."""
        await client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.to_thread(self.started.wait, SAFETY)
        self.go.set()
        assert self.produced.wait(SAFETY)  # blocks the loop: the pieces pile up


async def held_responses(start_server: StartServer, app: HeldApp,
                         *more_targets: str) -> list[Response]:
    """The response of ``app`` (its pieces handed over as one batch), then one for each
    of ``more_targets`` on the same connection."""
    server = await start_server(app)
    client = await RawClient.connect(server.host, server.port)
    try:
        async with asyncio.timeout(SAFETY):
            await app.run(client)
            responses = [await client.response()]
            for target in more_targets:
                responses.append(await client.request(target=target))
    finally:
        await client.close()
    return responses


def spy_writev(monkeypatch: pytest.MonkeyPatch,
               behaviour: Callable[[int, list[bytes]], int] | None = None) -> list[int]:
    """Replace os.writev; returns the number of buffers of each call."""
    real = os.writev
    calls: list[int] = []

    def writev(fd: int, buffers: Iterable[bytes]) -> int:
        buffers = list(buffers)
        calls.append(len(buffers))
        return (behaviour or real)(fd, buffers)

    monkeypatch.setattr(os, "writev", writev)
    return calls


async def test_large_pieces_handed_over_together_take_one_system_call(
        start_server: StartServer, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy_writev(monkeypatch)
    app = HeldApp(distinct_pieces(10))
    response, = await held_responses(start_server, app)
    assert response.status == 200
    assert response.body == b"".join(app.pieces)
    if transport_gathers():
        assert calls == []  # the transport's own gathering write does it
    else:
        # the head and the ten pieces; whatever the kernel did not take went on after
        assert calls and calls[0] >= 10


async def test_what_the_kernel_does_not_take_follows_in_order(
        start_server: StartServer, monkeypatch: pytest.MonkeyPatch) -> None:
    if transport_gathers():
        pytest.skip("this loop's transport gathers writes itself")
    real = os.writev

    def partly(fd: int, buffers: list[bytes]) -> int:
        # the kernel takes the head and part of the second piece only
        return real(fd, [b"".join(buffers)[:PIECE + PIECE // 3]])

    calls = spy_writev(monkeypatch, partly)
    app = HeldApp(distinct_pieces(10))
    response, = await held_responses(start_server, app)
    assert calls
    assert response.status == 200
    assert response.body == b"".join(app.pieces)


@pytest.mark.parametrize("error", [BlockingIOError, InterruptedError, BrokenPipeError])
async def test_a_gathered_write_that_fails_is_left_to_the_transport(
        start_server: StartServer, monkeypatch: pytest.MonkeyPatch,
        error: type[OSError]) -> None:
    """Nothing taken: the transport writes it all, as if it had been the first to try
    (here the socket is healthy, so the response arrives whole)."""
    if transport_gathers():
        pytest.skip("this loop's transport gathers writes itself")

    def fail(fd: int, buffers: list[bytes]) -> int:
        raise error

    calls = spy_writev(monkeypatch, fail)
    app = HeldApp(distinct_pieces(10))
    response, again = await held_responses(start_server, app, "/again")
    assert calls
    assert response.body == b"".join(app.pieces)
    assert again.status == 200  # the connection is still in order


async def test_a_broken_connection_found_by_a_gathered_write_is_closed(
        start_server: StartServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The socket really is broken: the transport meets the same error, closes the
    connection, the application's next piece is refused, and the next client is served."""
    if transport_gathers():
        pytest.skip("this loop's transport gathers writes itself")
    real = os.writev

    def break_then_write(fd: int, buffers: list[bytes]) -> int:
        with socket.socket(fileno=os.dup(fd)) as dup:
            dup.shutdown(socket.SHUT_WR)  # for every descriptor of the socket
        return real(fd, buffers)  # BrokenPipeError

    calls = spy_writev(monkeypatch, break_then_write)
    more, finished = threading.Event(), threading.Event()

    class OneMore(HeldApp):
        def tail(self) -> Iterator[bytes]:
            more.wait(SAFETY)
            yield b"one more"
            finished.set()

    app = OneMore(distinct_pieces(10))
    server = await start_server(app, validate=False)
    client = await RawClient.connect(server.host, server.port)
    try:
        async with asyncio.timeout(SAFETY):
            await app.run(client)
            assert await client.reader.read() == b""  # nothing arrived, then EOF
            monkeypatch.undo()
            while server.stats()["connections"]:  # until the server has let it go
                await asyncio.sleep(0.01)
            more.set()
            await asyncio.to_thread(app.closed.wait, SAFETY)
            assert not finished.is_set()  # "one more" raised: the client is gone
            assert len(calls) == 1  # one try, then the transport's own
            other = await RawClient.connect(server.host, server.port)
            again = await other.request()
            await other.close()
    finally:
        await client.close()
    assert again.status == 200
    assert again.body == b"".join(app.pieces) + b"one more"
    # nothing more was written to the closing transport (asyncio warns past 5 tries)
    assert not [r for r in caplog.records if r.name == "asyncio"]


async def test_pieces_wait_behind_what_the_transport_holds(
        start_server: StartServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the transport holds bytes, later pieces go behind them, even when the
    kernel has room again (the client read some, and the transport has not yet been
    told).  The high water mark is raised so that the response is not paused."""
    if transport_gathers():
        pytest.skip("this loop's transport gathers writes itself")
    pieces = distinct_pieces(128, 64 * 1024)  # 8 MiB
    body = b"".join(pieces)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    received = bytearray()

    def read_available() -> None:
        sock.setblocking(False)
        try:
            while data := sock.recv(1024 * 1024):
                received.extend(data)
        except BlockingIOError:
            pass
        finally:
            sock.settimeout(SAFETY)

    real_socket = output.writev_socket

    def unpaused(transport: Any) -> Any:
        transport.set_write_buffer_limits(high=64 * 1024 * 1024)
        return real_socket(transport)

    held: list[int] = []  # bytes the transport held as each batch came
    real_writev = output.writev

    def writev(conn: Any, pieces: list[bytes], size: int) -> None:
        held.append(conn.transport.get_write_buffer_size())
        if held[-1]:
            read_available()  # the kernel has room now, and the transport doesn't know
        real_writev(conn, pieces, size)

    monkeypatch.setattr(output, "writev_socket", unpaused)
    monkeypatch.setattr(output, "writev", writev)
    produced = threading.Event()

    def app(environ: Env, start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        yield from pieces
        produced.set()

    server = await start_server(app)
    sock.settimeout(SAFETY)
    try:
        await asyncio.to_thread(sock.connect, (server.host, server.port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert await asyncio.to_thread(produced.wait, SAFETY)

        def read_rest() -> None:
            while not received.endswith(pieces[-1]):
                data = sock.recv(1024 * 1024)
                assert data, "the server closed the connection"
                received.extend(data)

        async with asyncio.timeout(SAFETY):
            await asyncio.to_thread(read_rest)
    finally:
        sock.close()
    assert any(held)  # some batches came while the transport held bytes
    head, _, rest = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert rest == body


@pytest.mark.parametrize("size", [1_000, 32 * 1024])
async def test_pieces_handed_over_together_go_out_in_one_write(size: int) -> None:
    """Everything a thread handed over while the loop was busy is written with one call
    of the transport (here one that gathers, as uvloop's does), in order."""
    count = 10 if size > 1_000 else 100  # below send_buffer_size: no wait for credit
    pieces = [(b"%04d" % i) * (size // 4) for i in range(count)]  # all different

    def stream(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        yield from pieces

    h = Harness(stream)
    try:
        h.conn.data_received(get_request(close=False))
        h.pool.run_next()  # every piece is handed over before the loop runs again
        await settle()
        head, _, body = bytes(h.transport.written).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert _dechunk(body) == b"".join(pieces)
        assert h.transport.writes == 2  # the pieces, then the last chunk
        assert h.conn.state is State.HEAD
    finally:
        h.conn.close()
        await settle()
        h.close()


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if not size:
            return bytes(out)
        out += body[:size]
        body = body[size + 2:]
