"""A small HTTP/1.1 client for raw-socket tests: send exact bytes, read exact responses."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

TIMEOUT = 30.0  # a safety net only; no test relies on it firing


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
    async with asyncio.timeout(TIMEOUT):
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
            async with asyncio.timeout(TIMEOUT):
                return await self.reader.read(1) == b""
        except ConnectionResetError:
            return True
        finally:
            await self.close()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
