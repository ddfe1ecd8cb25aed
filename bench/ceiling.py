#!/usr/bin/env python3
"""The ceiling: a bare asyncio Protocol on uvloop that answers canned bytes.

It parses nothing.  Each ``\\r\\n\\r\\n`` it sees ends a request (GET requests
without a body, as wrk sends them), and it answers each one with the same bytes
that ``bench.apps:hello`` produces, so pipelined requests are answered too.  No
Python HTTP server on this loop can be faster: it is the reference point of the
hello scenario in ``bench/run.py``.

Usage: python -m bench.ceiling [--host H] [--port P]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import cast

HELLO_BODY = b"Hello, world!"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    + str(len(HELLO_BODY)).encode("ascii")
    + b"\r\n\r\n"
    + HELLO_BODY
)
_END = b"\r\n\r\n"


class Canned(asyncio.Protocol):
    transport: asyncio.Transport

    def __init__(self) -> None:
        self.tail = b""  # the end of the last data that may start a terminator

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.tail:
            data = self.tail + data
        count = data.count(_END)
        if count:
            # Only what follows the last terminator can begin the next one.
            data = data[data.rfind(_END) + len(_END) :]
            self.transport.write(RESPONSE * count)
        self.tail = data[-(len(_END) - 1):]


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    server = await loop.create_server(Canned, host, port, backlog=2048)
    bound = server.sockets[0].getsockname()
    print(f"ceiling serving http://{bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
    async with server:
        await stopped.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Canned-bytes HTTP responder on uvloop.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
