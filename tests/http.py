"""HTTP clients for the tests: a raw-socket one that sends exact bytes and reads exact
responses (:class:`RawClient`), and one request with aiohttp (:func:`fetch`)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from .waiting import SAFETY


class Listening(Protocol):
    """A server the tests talk to: aiowsgi's ``Server``, or ``LiveServer``."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def url(self) -> str: ...


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunked: bool = False

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


async def read_response(reader: asyncio.StreamReader, method: str = "GET") -> Response:
    """Read one response, framed as RFC 9112 says (HEAD, 1xx/204/304, length, chunked)."""
    async with asyncio.timeout(SAFETY):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].decode("latin-1").split("\r\n")
        version, status, reason = ([*lines[0].split(" ", 2), ""])[:3]
        assert version == "HTTP/1.1", lines[0]
        headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
        response = Response(int(status), reason, headers)  # type: ignore[arg-type]
        code = response.status
        if method == "HEAD" or code < 200 or code in (204, 304):
            return response
        length = response.header("Content-Length")
        if response.header("Transfer-Encoding") == "chunked":
            response.chunked = True
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                parts.append(await reader.readexactly(size))
                assert await reader.readexactly(2) == b"\r\n"
            response.body = b"".join(parts)
        elif length is not None:
            response.body = await reader.readexactly(int(length))
        else:
            response.body = await reader.read()
        return response


class RawClient:
    """One TCP connection to a server, for writing bytes and reading responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, **kwargs: object) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port, **kwargs)  # type: ignore[arg-type]
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, method: str = "GET") -> Response:
        return await read_response(self.reader, method)

    async def request(self, method: str = "GET", target: str = "/", *,
                      headers: dict[str, str] | None = None, body: bytes = b"",
                      version: str = "HTTP/1.1") -> Response:
        lines = [f"{method} {target} {version}", "Host: test"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body and not any(k.lower() in ("content-length", "transfer-encoding")
                            for k in headers or {}):
            lines.append(f"Content-Length: {len(body)}")
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return await self.response(method)

    async def closed_by_server(self) -> bool:
        """True when the server closed the connection (EOF, nothing more to read).

        The client's side is closed afterwards either way.
        """
        try:
            async with asyncio.timeout(SAFETY):
                return await self.reader.read(1) == b""
        except ConnectionResetError:
            return True
        finally:
            await self.close()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    async def reset(self) -> None:
        """Close with an RST, as a crashed or killed client does."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()
        await asyncio.sleep(0)  # the transport lets the socket go on the next turn


async def connect(server: Listening) -> RawClient:
    return await RawClient.connect(server.host, server.port)


async def get_over(streams: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> bytes:
    """The body of ``GET /``, with ``Connection: close``, over a connection just opened
    (``asyncio.open_connection``, ``asyncio.open_unix_connection``), then closed."""
    client = RawClient(*streams)
    response = await client.request("GET", "/", headers={"Connection": "close"})
    await client.close()
    return response.body


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    parts = []
    async with asyncio.timeout(SAFETY):
        while True:
            try:
                data = await reader.read(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            parts.append(data)
    return b"".join(parts)


def get_request(target: str = "/", *, extra: str = "", version: str = "HTTP/1.1",
                close: bool = True) -> bytes:
    """A GET request's bytes, with ``Connection: close`` unless ``close=False``;
    ``extra`` is more header lines, each ending in CRLF."""
    connection = "Connection: close\r\n" if close else ""
    return f"GET {target} {version}\r\nHost: test\r\n{connection}{extra}\r\n".encode("latin-1")


async def raw_exchange(server: Listening, request: bytes) -> bytes:
    """Send ``request`` on a new connection; return all bytes until the server closes."""
    client = await connect(server)
    try:
        await client.send(request)
        return await read_to_eof(client.reader)
    finally:
        await client.close()


def split_head(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """(status line, headers with lower-case names, what follows the head)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {raw[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        assert name.lower() not in headers, f"duplicate header {name}"
        headers[name.lower()] = value
    return lines[0], headers, rest


async def fetch(server: Listening, path: str = "/", method: str = "GET",
                **kwargs: Any) -> tuple[int, Any, bytes]:
    """One request with aiohttp: (status, headers, body)."""
    timeout = aiohttp.ClientTimeout(total=SAFETY)
    async with aiohttp.ClientSession(timeout=timeout) as session, \
            session.request(method, server.url + path, **kwargs) as resp:
        return resp.status, resp.headers.copy(), await resp.read()
