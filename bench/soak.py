#!/usr/bin/env python3
"""Soak: one aiowsgi server under a long mix of well-behaved and misbehaving clients.

Starts ``python -m aiowsgi serve bench.soak_app:app`` on 127.0.0.1 (port 0) as a
subprocess and drives it, all kinds at once, with:

- ``keepalive``: GET and HEAD of bodies of 0 B to 1 MiB in six output shapes, POST of
  bodies of 0 B to the size limit (Content-Length or chunked, sometimes with
  ``Expect: 100-continue``), short sleeps in the app; the last request of a connection
  sometimes says ``Connection: close``, is HTTP/1.0, or half-closes the connection;
- ``pipelined``: 2-16 requests written at once (in random pieces) on one connection,
  the answers read and checked in order;
- ``slow_upload``: bodies (and sometimes heads) dribbled in small pieces;
- ``slow_reader``: responses of 0.5-4 MiB read a few KiB at a time through a small
  receive buffer;
- ``paused_reader``: responses of 0.25-4 MiB not read for 0.5-3 s, then read whole;
- ``reset``: a connection closed with RST (``SO_LINGER`` 0) inside a request head, inside
  a body, while the app runs, inside a response, or inside a pipelined batch;
- ``malformed``: a head the server must refuse (exact 4xx, or 501/505), after which it
  must close the connection without answering what follows;
- ``oversize``: bodies over ``--max-body-size`` (announced, with ``Expect``, with part of
  the body, or chunked), which must get 413 and a close.

Every answer to a well-formed request is checked exactly (status, ``X-Soak-Id``, body
byte for byte); a request without a complete answer is lost.  After a warm-up, and again
after each part of the load (``--checkpoints``) once the connections have drained, it
reads the server's open fds, threads and RSS from ``/proc`` (the RSS after the app has run
``gc.collect()`` and ``malloc_trim(0)`` in the server, so that memory glibc keeps for reuse
is not taken for a leak) and its count of Python memory blocks; they must be back within
a small margin.  Warnings, errors and tracebacks in the server's log fail the run too.
The run stops by itself (time limit and request budget) and prints a summary.

Usage: python bench/soak.py [--minutes M] [--loop uvloop|asyncio] [--json PATH] ...
       (--help lists the rest: --warmup, --checkpoints, --kinds, --scale, margins...)

Exit status: 0 when every check held, 1 when one did not, 2 for setup or usage errors.
Standard library only; Linux (it reads /proc).  See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import random
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import idle  # noqa: E402
from bench.soak_app import MODES, READS, body_for, echo_line  # noqa: E402

HOST = "127.0.0.1"
APP = "bench.soak_app:app"

# The server's limits, chosen so that the limits are reached often and cheaply.
MAX_BODY = 1024 * 1024  # --max-body-size: POST bodies up to it, oversize just above it
BODY_BUFFER = 64 * 1024  # --body-buffer-size: larger bodies are spooled to a file
SEND_TIMEOUT = 10.0  # --send-timeout: paused readers pause well below it
BODY_TIMEOUT = 10.0  # --body-timeout: slow uploads pause well below it
THREADS = 8

# Connections per client kind, before --scale.
CONCURRENCY = {
    "keepalive": 6,
    "pipelined": 2,
    "slow_upload": 2,
    "slow_reader": 2,
    "paused_reader": 2,
    "reset": 2,
    "malformed": 1,
    "oversize": 1,
}
KINDS = tuple(CONCURRENCY)

REQUEST_TIMEOUT = 30.0  # seconds one request gets from its last byte sent to its answer
SESSION_TIMEOUT = 120.0  # seconds one connection gets, all its requests included
STOP_GRACE = 60.0  # seconds the sessions get to finish after the end of a phase
HARD_MARGIN = 300.0  # the whole run is cancelled this long after its planned end
SETTLE_TIMEOUT = 30.0  # seconds the server gets to drain after a phase
STOP_TIMEOUT = 30.0  # seconds between SIGTERM and SIGKILL
SAMPLE_EVERY = 5.0  # seconds between resource samples during the load
MAX_HEAD = 64 * 1024
MAX_FAILURES = 25  # failures described in the summary (all are counted)

_LOG_LINE_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \[(\w+)\] ")
_LINGER_0 = struct.pack("ii", 1, 0)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class SetupError(Exception):
    """The soak cannot run; the message says why."""


# --------------------------------------------------------------------------
# Tally: what was sent, answered, injected
# --------------------------------------------------------------------------


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)  # "kind:fault" -> injected
    fault_wrong: Counter[str] = field(default_factory=Counter)  # unexpected answer to one
    client_errors: int = 0
    stuck_sessions: int = 0
    failures: list[str] = field(default_factory=list)
    failure_count: int = 0
    next_id: int = 1
    budget: int = 0
    started: float = field(default_factory=time.monotonic)

    def ident(self) -> int:
        self.next_id += 1
        return self.next_id

    def claim(self, n: int = 1) -> bool:
        """Take n requests from the budget; False when it is spent."""
        if self.budget < n:
            return False
        self.budget -= n
        return True

    def fail(self, kind: str, what: str, why: str, sent: bytes = b"") -> None:
        self.failure_count += 1
        if len(self.failures) < MAX_FAILURES:
            at = time.monotonic() - self.started
            text = f"[{at:7.1f} s] {kind}: {what}: {why}"
            if sent:
                text += f"\n      sent: {sent[:300]!r}" + (" ..." if len(sent) > 300 else "")
            self.failures.append(text)

    @property
    def lost(self) -> Counter[str]:
        return Counter({k: self.sent[k] - self.answered[k] - self.wrong[k] for k in KINDS})


# --------------------------------------------------------------------------
# The client side of one connection: a raw non-blocking socket
# --------------------------------------------------------------------------


class Closed(Exception):
    """The server closed (or reset) the connection before the bytes that were needed."""


class BadResponse(Exception):
    """The server sent something that is not a valid HTTP/1.1 response."""


class Conn:
    """A TCP connection read and written through the loop's ``sock_*`` calls.

    Bytes the kernel already holds are read before a reset is reported, so an answer
    that arrived before an RST is never lost on this side.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.buf = bytearray()
        self.eof = False
        self.recv_size = 256 * 1024
        self.recv_delay = 0.0  # seconds slept before each recv (slow readers)

    @classmethod
    async def open(cls, port: int, rcvbuf: int | None = None) -> Conn:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    async def send(self, data: bytes) -> None:
        try:
            await self.loop.sock_sendall(self.sock, data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise Closed(f"send failed: {exc!r}") from None

    async def send_pieces(self, data: bytes, rng: random.Random, *, pieces: int,
                          delay: tuple[float, float] = (0.0, 0.0)) -> None:
        """Send ``data`` in about ``pieces`` random pieces, sleeping between them."""
        if pieces <= 1:
            await self.send(data)
            return
        cuts = sorted(rng.sample(range(1, len(data)), min(pieces - 1, len(data) - 1))
                      ) if len(data) > 1 else []
        start = 0
        for cut in [*cuts, len(data)]:
            await self.send(data[start:cut])
            start = cut
            if cut < len(data) and delay[1] > 0:
                await asyncio.sleep(rng.uniform(*delay))

    async def fill(self) -> None:
        if self.eof:
            raise Closed("connection closed by the server")
        if self.recv_delay:
            await asyncio.sleep(self.recv_delay)
        try:
            data = await self.loop.sock_recv(self.sock, self.recv_size)
        except ConnectionResetError:
            self.eof = True
            raise Closed("connection reset by the server") from None
        if not data:
            self.eof = True
            raise Closed("connection closed by the server")
        self.buf += data

    async def read_until(self, sep: bytes, limit: int) -> bytes:
        start = 0
        while (at := self.buf.find(sep, start)) < 0:
            if len(self.buf) > limit:
                raise BadResponse(f"no {sep!r} within {limit} bytes")
            start = max(0, len(self.buf) - len(sep) + 1)
            try:
                await self.fill()
            except Closed as exc:
                raise Closed(f"{exc} after {len(self.buf)} bytes of a response head") from None
        data = bytes(self.buf[:at + len(sep)])
        del self.buf[:at + len(sep)]
        return data

    async def read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            try:
                await self.fill()
            except Closed as exc:
                raise Closed(f"{exc} after {len(self.buf)} of {n} body bytes") from None
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def read_to_eof(self, limit: int) -> bytes:
        while not self.eof:
            if len(self.buf) > limit:
                raise BadResponse(f"more than {limit} bytes before the connection closed")
            with contextlib.suppress(Closed):
                await self.fill()
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def shutdown_write(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def reset(self) -> None:
        """Close with RST: SO_LINGER on with a zero timeout, then close."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------
# Requests and their expected answers
# --------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    interim: list[int]  # 1xx statuses read before this one

    @property
    def says_close(self) -> bool:
        return "close" in self.headers.get("connection", "").lower()


@dataclass
class Req:
    """One request: its bytes and what its answer must be."""

    label: str  # for failure reports, e.g. "GET /bytes?id=7&n=10&mode=gen"
    head: bytes
    body: bytes = b""  # as framed on the wire (raw or chunked)
    status: int = 200
    ident: int | None = None
    expect_body: bytes | None = b""
    head_only: bool = False  # HEAD: no body; Content-Length, if sent, is head_length
    head_length: int | None = None
    closes: bool = False  # Connection: close or HTTP/1.0: the server must close after it

    @property
    def wire(self) -> bytes:
        return self.head + self.body


def make_head(method: str, target: str, headers: Sequence[tuple[str, str]] = (), *,
              version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {target} {version}", f"Host: {HOST}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk_encode(body: bytes, rng: random.Random, *, trailer: bool = False) -> bytes:
    parts: list[bytes] = []
    pos = 0
    smallest = len(body) // 400 + 1  # at most about 400 chunks
    while pos < len(body):
        n = max(smallest, rng.choice((1, 17, 100, 1000, 8192, 65536)))
        data = body[pos:pos + n]
        size = f"{len(data):x}" if rng.random() < 0.5 else f"{len(data):X}"
        ext = ";soak=1" if rng.random() < 0.05 else ""
        parts.append(f"{size}{ext}\r\n".encode("ascii") + data + b"\r\n")
        pos += len(data)
    parts.append(b"0\r\nX-Soak-Trailer: t\r\n\r\n" if trailer else b"0\r\n\r\n")
    return b"".join(parts)


def pick_size(rng: random.Random, top: int) -> int:
    r = rng.random()
    if r < 0.02:
        return top
    if r < 0.12:
        return 0
    if r < 0.50:
        return rng.randint(1, 4096)
    if r < 0.85:
        return rng.randint(4097, min(top, 128 * 1024))
    return rng.randint(min(top, 128 * 1024), top)


def get_bytes(rng: random.Random, ident: int, size: int, *, method: str = "GET",
              modes: Sequence[str] = MODES, last: str = "") -> Req:
    mode = rng.choice(modes)
    piece = max(rng.choice((1, 7, 100, 1000, 4096, 16384, 65536, 262144)), size // 500 + 1)
    target = f"/bytes?id={ident}&n={size}&mode={mode}&piece={piece}"
    headers, version, closes = _last(last)
    head_only = method == "HEAD"
    return Req(
        label=f"{method} {target}" + (f" ({last})" if last else ""),
        head=make_head(method, target, headers, version=version),
        ident=ident, expect_body=b"" if head_only else body_for(ident, size),
        head_only=head_only, head_length=size, closes=closes,
    )  # fmt: skip


def post_echo(rng: random.Random, ident: int, size: int, *, chunked: bool | None = None,
              expect_continue: bool = False, last: str = "") -> Req:
    body = rng.randbytes(size)
    back = rng.random() < 0.3
    read = rng.choice(READS)
    target = f"/echo?id={ident}&read={read}" + ("&back=1" if back else "")
    if chunked is None:
        chunked = rng.random() < 0.25
    headers, version, closes = _last(last)
    if version == "HTTP/1.0":
        chunked = False
    headers = [("Content-Type", "application/octet-stream"), *headers]
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
        wire = chunk_encode(body, rng, trailer=rng.random() < 0.1)
    else:
        headers.append(("Content-Length", str(size)))
        wire = body
    if expect_continue:
        headers.append(("Expect", "100-continue"))
    return Req(
        label=f"POST {target} ({'chunked' if chunked else 'length'} {size} B"
              + (", 100-continue" if expect_continue else "") + (f", {last}" if last else "")
              + ")",
        head=make_head("POST", target, headers, version=version), body=wire, ident=ident,
        expect_body=body if back else echo_line(ident, body), closes=closes,
    )  # fmt: skip


def get_sleep(ident: int, ms: int, *, last: str = "") -> Req:
    target = f"/sleep?id={ident}&ms={ms}"
    headers, version, closes = _last(last)
    return Req(label=f"GET {target}", head=make_head("GET", target, headers, version=version),
               ident=ident, expect_body=f"slept {ident}\n".encode(), closes=closes)


def _last(last: str) -> tuple[list[tuple[str, str]], str, bool]:
    """Headers, version and whether the server must close, for the last request."""
    if last == "close":
        return [("Connection", "close")], "HTTP/1.1", True
    if last == "http10":
        return [], "HTTP/1.0", True
    if last == "http10-keepalive":
        return [("Connection", "keep-alive")], "HTTP/1.0", False
    return [], "HTTP/1.1", False


def normal_request(rng: random.Random, ident: int, *, small: bool = False,
                   last: str = "") -> Req:
    """A random well-formed request; ``small`` keeps bodies and answers under 64 KiB."""
    top = 64 * 1024 if small else MAX_BODY
    r = rng.random()
    if r < 0.40:
        return get_bytes(rng, ident, pick_size(rng, top), last=last)
    if r < 0.45:
        return get_bytes(rng, ident, pick_size(rng, top), method="HEAD", last=last)
    if r < 0.92:
        return post_echo(rng, ident, pick_size(rng, top), last=last,
                         expect_continue=not small and rng.random() < 0.1)
    return get_sleep(ident, rng.choice((0, 1, 5, 20, 50)), last=last)


def check(resp: Response, req: Req) -> str | None:
    """None when ``resp`` is exactly the answer ``req`` must get, else why not."""
    if resp.status != req.status:
        return f"status {resp.status}, expected {req.status} (body {resp.body[:120]!r})"
    if req.ident is not None and resp.headers.get("x-soak-id") != str(req.ident):
        return f"X-Soak-Id {resp.headers.get('x-soak-id')!r}, expected {req.ident}"
    if req.head_only:
        length = resp.headers.get("content-length")
        if length is not None and length != str(req.head_length):
            return f"HEAD: Content-Length {length}, expected {req.head_length}"
    if req.expect_body is not None and resp.body != req.expect_body:
        got, want = resp.body, req.expect_body
        at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                  min(len(got), len(want)))
        return f"body of {len(got)} bytes, expected {len(want)}; first difference at {at}"
    return None


async def read_response(conn: Conn, *, head_only: bool = False,
                        skip_interim: bool = True) -> Response:
    interim: list[int] = []
    while True:
        head = await conn.read_until(b"\r\n\r\n", MAX_HEAD)
        lines = head.decode("latin-1").split("\r\n")
        match = re.fullmatch(r"HTTP/1\.[01] (\d{3}) .*", lines[0])
        if match is None:
            raise BadResponse(f"bad status line {lines[0]!r}")
        status = int(match.group(1))
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise BadResponse(f"bad header line {line!r}")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if 100 <= status < 200 and skip_interim:
            interim.append(status)
            continue
        break
    if head_only or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = await read_chunked(conn)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise BadResponse(f"Content-Length {headers['content-length']!r}") from None
        body = await conn.read_exactly(length)
    else:
        body = await conn.read_to_eof(64 * 1024 * 1024)
    return Response(status, headers, body, interim)


async def read_chunked(conn: Conn) -> bytes:
    parts: list[bytes] = []
    while True:
        line = await conn.read_until(b"\r\n", 4096)
        try:
            size = int(line[:-2].split(b";")[0], 16)
        except ValueError:
            raise BadResponse(f"bad chunk size line {line!r}") from None
        if size == 0:
            while await conn.read_until(b"\r\n", 16384) != b"\r\n":
                pass  # trailer fields
            return b"".join(parts)
        parts.append(await conn.read_exactly(size))
        if await conn.read_exactly(2) != b"\r\n":
            raise BadResponse("chunk data not followed by CRLF")


# --------------------------------------------------------------------------
# Sessions: one connection each, one function per client kind
# --------------------------------------------------------------------------


class SessionOver(Exception):
    """The session cannot go on (its failure, if any, is already recorded)."""


@dataclass
class Control:
    port: int
    tally: Tally
    think: float  # upper bound of the pause between two requests, in seconds
    kinds: Sequence[str]
    scale: float
    seed: str
    deadline: float = 0.0  # loop time at which sessions stop starting requests

    def running(self) -> bool:
        return asyncio.get_running_loop().time() < self.deadline and self.tally.budget > 0


class Session:
    def __init__(self, ctl: Control, kind: str, rng: random.Random) -> None:
        self.ctl = ctl
        self.tally = ctl.tally
        self.kind = kind
        self.rng = rng
        self.conn: Conn | None = None

    async def connect(self, rcvbuf: int | None = None) -> Conn:
        try:
            self.conn = await Conn.open(self.ctl.port, rcvbuf)
        except OSError as exc:
            self.tally.fail(self.kind, "connect", repr(exc))
            self.tally.client_errors += 1
            raise SessionOver from None
        return self.conn

    def finish(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def reset(self) -> None:
        if self.conn is not None:
            self.conn.reset()
            self.conn = None

    def ident(self) -> int:
        return self.tally.ident()

    def more(self, n: int = 1) -> bool:
        """Whether to start n more requests (time and budget left)."""
        return self.ctl.running() and self.tally.claim(n)

    async def think(self) -> None:
        if self.ctl.think > 0:
            await asyncio.sleep(self.rng.uniform(0, self.ctl.think))

    async def answer(self, req: Req, *, timeout: float = REQUEST_TIMEOUT) -> Response:
        """Read and check the answer to ``req`` (already counted as sent)."""
        assert self.conn is not None
        try:
            async with asyncio.timeout(timeout):
                resp = await read_response(self.conn, head_only=req.head_only)
        except Closed as exc:
            self.tally.fail(self.kind, req.label, f"lost: {exc}", req.head)
            raise SessionOver from None
        except TimeoutError:
            self.tally.fail(self.kind, req.label, f"lost: no answer within {timeout:g} s",
                            req.head)
            raise SessionOver from None
        except BadResponse as exc:
            self.tally.wrong[self.kind] += 1
            self.tally.fail(self.kind, req.label, f"wrong: {exc}", req.head)
            raise SessionOver from None
        why = check(resp, req)
        if why is None and req.closes:
            why = await self.expect_close()
        if why is not None:
            self.tally.wrong[self.kind] += 1
            self.tally.fail(self.kind, req.label, f"wrong: {why}", req.head)
            raise SessionOver
        self.tally.answered[self.kind] += 1
        return resp

    async def expect_close(self) -> str | None:
        """None when the server closes the connection with nothing more sent."""
        assert self.conn is not None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                extra = await self.conn.read_to_eof(MAX_HEAD)
        except TimeoutError:
            return "the server did not close the connection after the answer"
        except BadResponse:
            extra = b"(more than 64 KiB)"
        if extra:
            return f"{len(extra)} bytes after the answer: {extra[:80]!r}"
        return None

    async def send(self, data: bytes, what: Req | str, *, pieces: int = 1,
                   delay: tuple[float, float] = (0.0, 0.0)) -> None:
        """Send ``data`` for a request (``Req``, already counted as sent) or a fault (its
        name); the server closing the connection meanwhile ends the session."""
        assert self.conn is not None
        try:
            await self.conn.send_pieces(data, self.rng, pieces=pieces, delay=delay)
        except Closed as exc:
            if isinstance(what, Req):
                self.tally.fail(self.kind, what.label, f"lost: {exc}", what.head)
            else:
                self.tally.fault_wrong[what] += 1
                self.tally.fail(self.kind, what, f"closed before the fault: {exc}")
            raise SessionOver from None

    async def exchange(self, req: Req, *, split: bool = False) -> Response:
        """Send ``req`` (in one write, or in a few pieces) and check its answer."""
        self.tally.sent[self.kind] += 1
        await self.send(req.wire, req, pieces=self.rng.randint(2, 4) if split else 1)
        return await self.answer(req)

    async def good_requests(self, n: int, *, small: bool = True) -> None:
        """n ordinary requests before a fault, so that it lands on a used connection."""
        for _ in range(n):
            if not self.more():
                raise SessionOver
            await self.exchange(normal_request(self.rng, self.ident(), small=small))


async def keepalive(s: Session) -> None:
    await s.connect()
    count = s.rng.randint(1, 40)
    for i in range(count):
        if not s.more():
            return
        last = ""
        if i == count - 1:
            last = s.rng.choice(("", "", "close", "http10", "half-close"))
        elif s.rng.random() < 0.02:
            last = "http10-keepalive"
        req = normal_request(s.rng, s.ident(), last="" if last == "half-close" else last)
        if last == "half-close":
            # The client shuts down its sending side after the request: it still gets
            # its answer.
            s.tally.sent[s.kind] += 1
            await s.send(req.wire, req)
            assert s.conn is not None
            s.conn.shutdown_write()
            await s.answer(req)
            return
        resp = await s.exchange(req, split=s.rng.random() < 0.1)
        if req.closes or resp.says_close or (s.conn is not None and s.conn.eof):
            return
        await s.think()


async def pipelined(s: Session) -> None:
    await s.connect()
    for _ in range(s.rng.randint(1, 5)):
        n = s.rng.randint(2, 16)
        if not s.more(n):
            return
        last_closes = s.rng.random() < 0.1
        reqs = [normal_request(s.rng, s.ident(), small=True,
                               last="close" if last_closes and i == n - 1 else "")
                for i in range(n)]
        wire = b"".join(r.wire for r in reqs)
        s.tally.sent[s.kind] += n
        # Written while the answers are read, so that neither side waits on the other.
        sender = asyncio.create_task(s.send(wire, reqs[0], pieces=s.rng.randint(1, 4)))
        try:
            for req in reqs:
                await s.answer(req)
        finally:
            if not sender.done():
                sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, SessionOver):
                await sender
        if last_closes:
            return
        await s.think()


async def slow_upload(s: Session) -> None:
    await s.connect()
    for _ in range(s.rng.randint(1, 3)):
        if not s.more():
            return
        req = post_echo(s.rng, s.ident(), s.rng.randint(1, 256 * 1024))
        s.tally.sent[s.kind] += 1
        head_pieces = s.rng.randint(2, 20) if s.rng.random() < 0.3 else 1  # head dribbled too
        await s.send(req.head, req, pieces=head_pieces, delay=(0.001, 0.02))
        await s.send(req.body, req, pieces=s.rng.randint(2, 200), delay=(0.001, 0.02))
        await s.answer(req)


async def slow_reader(s: Session) -> None:
    conn = await s.connect(rcvbuf=16 * 1024)
    conn.recv_size = 8 * 1024
    conn.recv_delay = 0.001
    for _ in range(s.rng.randint(1, 3)):
        if not s.more():
            return
        await s.exchange(get_bytes(s.rng, s.ident(), s.rng.randint(512 * 1024, 4 * 1024 * 1024)))


async def read_some(conn: Conn, want: int) -> None:
    """Read until ``want`` bytes are buffered (or the connection ends)."""
    with contextlib.suppress(Closed, TimeoutError):
        async with asyncio.timeout(REQUEST_TIMEOUT):
            while len(conn.buf) < want:
                await conn.fill()


async def paused_reader(s: Session) -> None:
    conn = await s.connect(rcvbuf=s.rng.choice((None, 32 * 1024)))
    for _ in range(s.rng.randint(1, 3)):
        if not s.more():
            return
        req = get_bytes(s.rng, s.ident(), s.rng.randint(256 * 1024, 4 * 1024 * 1024))
        s.tally.sent[s.kind] += 1
        await s.send(req.wire, req)
        if s.rng.random() < 0.5:  # a part read before the pause, else nothing
            await read_some(conn, 64 * 1024)
        await asyncio.sleep(s.rng.uniform(0.5, 3.0))
        await s.answer(req)


async def reset(s: Session) -> None:
    conn = await s.connect()
    await s.good_requests(s.rng.randint(0, 2))
    if not s.more():  # the fault comes out of the request budget too
        return
    how = s.rng.choice(("head", "body", "app", "response", "pipelined"))
    fault = f"reset:{how}"
    s.tally.faults[fault] += 1
    if how == "head":
        head = normal_request(s.rng, s.ident()).head
        await s.send(head[:s.rng.randint(1, len(head) - 1)], fault)
    elif how == "body":
        req = post_echo(s.rng, s.ident(), s.rng.randint(16 * 1024, MAX_BODY))
        await s.send(req.head + req.body[:s.rng.randint(0, len(req.body) - 1)], fault)
    elif how == "app":
        await s.send(get_sleep(s.ident(), s.rng.randint(50, 300)).wire, fault)
    elif how == "response":
        size = s.rng.randint(256 * 1024, 4 * 1024 * 1024)
        await s.send(get_bytes(s.rng, s.ident(), size).wire, fault)
        await read_some(conn, s.rng.randint(0, size // 2))
    else:
        reqs = [normal_request(s.rng, s.ident(), small=True) for _ in range(s.rng.randint(2, 8))]
        await s.send(b"".join(r.wire for r in reqs), fault)
        for req in reqs[:s.rng.randint(0, len(reqs) - 1)]:
            if not s.more():
                break
            s.tally.sent[s.kind] += 1
            await s.answer(req)
    await asyncio.sleep(s.rng.choice((0.0, 0.0, 0.001, 0.01, 0.05)))
    s.reset()


@dataclass(frozen=True)
class Malformed:
    name: str
    data: bytes
    status: int


def _malformed_cases() -> tuple[Malformed, ...]:
    h = f"Host: {HOST}\r\n".encode("ascii")
    post = b"POST /echo?id=1 HTTP/1.1\r\n" + h
    get = b"GET /bytes?id=1&n=5 HTTP/1.1\r\n" + h
    return (
        Malformed("space-before-colon", get + b"Bad : v\r\n\r\n", 400),
        Malformed("double-space", b"GET  /bytes?id=1 HTTP/1.1\r\n" + h + b"\r\n", 400),
        Malformed("no-host", b"GET /bytes?id=1 HTTP/1.1\r\n\r\n", 400),
        Malformed("two-hosts", get + b"Host: other\r\n\r\n", 400),
        Malformed("cl-and-te", post + b"Content-Length: 5\r\nTransfer-Encoding: chunked"
                                      b"\r\n\r\n0\r\n\r\n", 400),
        Malformed("cl-plus", post + b"Content-Length: +5\r\n\r\nhello", 400),
        Malformed("cl-differ", post + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                  400),
        Malformed("cl-19-digits", post + b"Content-Length: 1234567890123456789\r\n\r\n", 400),
        Malformed("chunk-size", post + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n"
                                       b"0\r\n\r\n", 400),
        Malformed("chunk-0x", post + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n"
                                     b"0\r\n\r\n", 400),
        Malformed("chunk-no-crlf", post + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX"
                                          b"0\r\n\r\n", 400),
        Malformed("te-gzip-chunked", post + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
                                            b"0\r\n\r\n", 501),
        Malformed("te-chunked-twice", post + b"Transfer-Encoding: chunked, chunked\r\n\r\n"
                                             b"0\r\n\r\n", 400),
        Malformed("te-http10", b"POST /echo?id=1 HTTP/1.0\r\nTransfer-Encoding: chunked"
                               b"\r\n\r\n0\r\n\r\n", 400),
        Malformed("obs-fold", get + b"X: a\r\n b\r\n\r\n", 400),
        Malformed("nul-in-value", get + b"X: a\x00b\r\n\r\n", 400),
        Malformed("bare-lf", get + b"X: y\nZ: w\r\n\r\n", 400),
        Malformed("bad-field-name", get + b"X(y): z\r\n\r\n", 400),
        Malformed("userinfo", b"GET http://u@" + HOST.encode() + b"/bytes?id=1 HTTP/1.1\r\n"
                              + h + b"\r\n", 400),
        Malformed("fragment", b"GET /bytes?id=1#f HTTP/1.1\r\n" + h + b"\r\n", 400),
        Malformed("bad-host", b"GET /bytes?id=1 HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        Malformed("tls-hello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400),
        Malformed("http-3.0", b"GET /bytes?id=1 HTTP/3.0\r\n" + h + b"\r\n", 505),
        Malformed("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        Malformed("long-request-line", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + h
                                       + b"\r\n", 414),
        Malformed("big-head", get + b"X-Big: " + b"b" * 70_000 + b"\r\n\r\n", 431),
        Malformed("many-fields", get + b"".join(b"X-%d: v\r\n" % i for i in range(101))
                                 + b"\r\n", 431),
    )  # fmt: skip


MALFORMED = _malformed_cases()


async def expect_refusal(s: Session, fault: str, status: int, *,
                         no_interim: bool = False) -> None:
    """The answer to a refused request: ``status``, ``Connection: close``, then EOF."""
    assert s.conn is not None
    why: str | None = None
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            resp = await read_response(s.conn, skip_interim=not no_interim)
    except (Closed, BadResponse, TimeoutError) as exc:
        why = f"no {status} answer: {exc!r}"
    else:
        if resp.status != status:
            why = f"status {resp.status}, expected {status} (body {resp.body[:120]!r})"
        elif not resp.says_close:
            why = "no Connection: close"
        else:
            why = await s.expect_close()
    if why is not None:
        s.tally.fault_wrong[fault] += 1
        s.tally.fail(s.kind, fault, why)


async def malformed(s: Session) -> None:
    conn = await s.connect()
    await s.good_requests(s.rng.randint(0, 2))
    if not s.more():  # the fault comes out of the request budget too
        return
    case = s.rng.choice(MALFORMED)
    fault = f"malformed:{case.name}"
    s.tally.faults[fault] += 1
    # Sometimes a valid request follows in the same write: it must not be answered.
    follow = normal_request(s.rng, s.ident(), small=True).wire if s.rng.random() < 0.5 else b""
    with contextlib.suppress(Closed):  # the server may refuse before it has read it all
        await conn.send(case.data + follow)
    await expect_refusal(s, fault, case.status)


async def oversize(s: Session) -> None:
    conn = await s.connect()
    await s.good_requests(s.rng.randint(0, 1))
    if not s.more():  # the fault comes out of the request budget too
        return
    how = s.rng.choice(("announced", "expect-continue", "with-body", "chunked"))
    fault = f"oversize:{how}"
    s.tally.faults[fault] += 1
    size = s.rng.choice((MAX_BODY + 1, s.rng.randint(MAX_BODY + 2, 64 * MAX_BODY)))
    target = f"/echo?id={s.ident()}"
    if how == "chunked":
        size = min(size, MAX_BODY + 64 * 1024)
        head = make_head("POST", target, [("Transfer-Encoding", "chunked")])
        body = chunk_encode(s.rng.randbytes(size), s.rng)[:-5]  # no last chunk
        sender = asyncio.create_task(conn.send_pieces(head + body, s.rng, pieces=8))
        try:
            await expect_refusal(s, fault, 413)
        finally:
            if not sender.done():
                sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Closed):
                await sender
        return
    headers = [("Content-Length", str(size))]
    if how == "expect-continue":
        headers.append(("Expect", "100-continue"))
    head = make_head("POST", target, headers)
    data = head + (s.rng.randbytes(16 * 1024) if how == "with-body" else b"")
    with contextlib.suppress(Closed):
        await conn.send(data)
    await expect_refusal(s, fault, 413, no_interim=how == "expect-continue")


SESSIONS: dict[str, Callable[[Session], Awaitable[None]]] = {
    "keepalive": keepalive,
    "pipelined": pipelined,
    "slow_upload": slow_upload,
    "slow_reader": slow_reader,
    "paused_reader": paused_reader,
    "reset": reset,
    "malformed": malformed,
    "oversize": oversize,
}


async def client(ctl: Control, kind: str, rng: random.Random) -> None:
    """One client of ``kind``: sessions one after the other until the phase ends."""
    while ctl.running():
        s = Session(ctl, kind, rng)
        try:
            async with asyncio.timeout(SESSION_TIMEOUT):
                await SESSIONS[kind](s)
        except SessionOver:
            pass
        except TimeoutError:
            ctl.tally.fail(kind, "session", f"still running after {SESSION_TIMEOUT:g} s")
        except Exception as exc:  # noqa: BLE001 - a client bug must not stop the others
            ctl.tally.client_errors += 1
            ctl.tally.fail(kind, "client error", repr(exc))
        finally:
            s.finish()


def connections(kind: str, scale: float) -> int:
    return max(1, round(CONCURRENCY[kind] * scale))


async def phase(ctl: Control, seconds: float, name: str) -> None:
    """All the client kinds at once for ``seconds``; then wait for their sessions."""
    loop = asyncio.get_running_loop()
    ctl.deadline = loop.time() + seconds
    tasks = [
        asyncio.create_task(client(ctl, kind, random.Random(f"{ctl.seed}:{name}:{kind}:{i}")))
        for kind in ctl.kinds
        for i in range(connections(kind, ctl.scale))
    ]  # fmt: skip
    _, pending = await asyncio.wait(tasks, timeout=seconds + STOP_GRACE)
    for task in pending:
        task.cancel()
    if pending:
        ctl.tally.stuck_sessions += len(pending)
        ctl.tally.fail(name, "end of phase",
                       f"{len(pending)} sessions still busy {STOP_GRACE:g} s after the end")
        await asyncio.wait(pending)


# --------------------------------------------------------------------------
# The server process and /proc
# --------------------------------------------------------------------------


@dataclass
class Resources:
    fds: int
    threads: int
    rss_kib: int
    hwm_kib: int

    def describe(self) -> str:
        return f"{self.fds} fds, {self.threads} threads, {self.rss_kib / 1024:.1f} MiB RSS"


def resources(pid: int) -> Resources:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Threads", "VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return Resources(fds, values["Threads"], values["VmRSS"], values["VmHWM"])


async def settle(pid: int, target: tuple[int, int] | None) -> tuple[Resources, float]:
    """Wait until the server has drained: its fds and threads are back at ``target``
    (or, without one, unchanged for 2 s).  Returns them and the seconds waited."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    stable, last = 0, resources(pid)
    while loop.time() - start < SETTLE_TIMEOUT:
        await asyncio.sleep(0.25)
        now = resources(pid)
        if target is not None and now.fds <= target[0] and now.threads <= target[1]:
            break
        stable = stable + 1 if (now.fds, now.threads) == (last.fds, last.threads) else 0
        last = now
        if target is None and stable >= 8:
            break
    return resources(pid), loop.time() - start


@dataclass
class Measure:
    """The drained server: what /proc says, and what it says of itself."""

    fds: int
    threads: int
    held_rss_kib: int  # VmRSS, free memory the C allocator keeps for reuse included
    rss_kib: int  # VmRSS after the server ran gc.collect() and malloc_trim(0)
    hwm_kib: int
    blocks: int | None  # sys.getallocatedblocks() in the server
    gc_objects: int | None  # len(gc.get_objects()) in the server
    settle_seconds: float
    growth: list[str] | None = None  # with --tracemalloc: top growth since the first

    def describe(self) -> str:
        return (f"{self.fds} fds, {self.threads} threads, RSS {self.held_rss_kib / 1024:.1f} "
                f"MiB ({self.rss_kib / 1024:.1f} MiB after gc and malloc_trim), "
                f"{self.blocks} Python memory blocks, {self.gc_objects} gc objects")


async def server_stats(port: int) -> dict[str, Any]:
    """``GET /__soak_stats`` on a connection of its own."""
    conn = await Conn.open(port)
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            await conn.send(make_head("GET", "/__soak_stats", [("Connection", "close")]))
            resp = await read_response(conn)
    finally:
        conn.close()
    if resp.status != 200:
        raise BadResponse(f"/__soak_stats answered {resp.status}")
    data: dict[str, Any] = json.loads(resp.body)
    return data


async def measure(pid: int, port: int, target: Measure | None) -> Measure:
    """Wait for the server to drain (back to ``target``'s fds and threads, or steady);
    read /proc; have it collect garbage and trim malloc; read its RSS again."""
    settled, waited = await settle(pid, None if target is None else
                                   (target.fds, target.threads))
    try:
        stats: dict[str, Any] = await server_stats(port)
    except (OSError, Closed, BadResponse, TimeoutError, ValueError) as exc:
        log(f"  /__soak_stats failed: {exc!r}")
        stats = {}
    await settle(pid, (settled.fds, settled.threads))  # its connection closed
    await asyncio.sleep(0.2)
    now = resources(pid)
    return Measure(fds=settled.fds, threads=settled.threads, held_rss_kib=settled.rss_kib,
                   rss_kib=now.rss_kib, hwm_kib=now.hwm_kib,
                   blocks=stats.get("allocated_blocks"), gc_objects=stats.get("gc_objects"),
                   settle_seconds=waited, growth=stats.get("tracemalloc_growth"))


def server_argv(loop: str, extra: Sequence[str]) -> list[str]:
    return [
        sys.executable, "-m", "aiowsgi", "serve", APP, "--host", HOST, "--port", "0",
        "--loop", loop, "--log-level", "info", "--no-access-log", "--threads", str(THREADS),
        "--max-body-size", str(MAX_BODY), "--body-buffer-size", str(BODY_BUFFER),
        "--send-timeout", str(SEND_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT),
        *extra,
    ]  # fmt: skip


def server_env(tracemalloc_frames: int = 0) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIOWSGI_") and k != "PYTHONTRACEMALLOC"}
    if tracemalloc_frames:
        env["PYTHONTRACEMALLOC"] = str(tracemalloc_frames)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def stop(proc: subprocess.Popen[bytes]) -> tuple[int, float, bool]:
    """SIGTERM the server started here (SIGKILL after STOP_TIMEOUT): status, seconds,
    whether it had to be killed."""
    start = time.monotonic()
    if proc.poll() is not None:
        return proc.returncode, 0.0, False
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=STOP_TIMEOUT)
        return code, time.monotonic() - start, False
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(), time.monotonic() - start, True


def read_log(log_file: IO[bytes]) -> str:
    log_file.flush()
    log_file.seek(0)
    return log_file.read().decode("utf-8", "replace")


@dataclass
class LogSummary:
    lines: int = 0
    levels: dict[str, int] = field(default_factory=dict)
    unexpected: int = 0  # warnings, errors, tracebacks, lines not from the logger
    first_unexpected: list[str] = field(default_factory=list)
    messages: dict[str, int] = field(default_factory=dict)  # by text, numbers as N


def summarize_log(text: str) -> LogSummary:
    summary = LogSummary()
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    for line in text.splitlines():
        summary.lines += 1
        match = _LOG_LINE_RE.match(line)
        level = match.group(1) if match else "other"
        levels[level] += 1
        messages[re.sub(r"\d+", "N", line[match.end():] if match else line)[:120]] += 1
        if level in ("INFO", "DEBUG"):
            continue
        summary.unexpected += 1
        if len(summary.first_unexpected) < 20:
            summary.first_unexpected.append(line[:300])
    summary.levels = dict(levels)
    summary.messages = dict(messages.most_common(30))
    return summary


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


@dataclass
class Report:
    loop: str
    python: str
    minutes: float
    warmup: float
    seed: str
    scale: float
    kinds: list[str]
    server_command: list[str]
    load_seconds: float = 0.0
    total_seconds: float = 0.0
    budget: int = 0
    budget_spent: bool = False
    before: Measure | None = None
    checkpoints: list[Measure] = field(default_factory=list)  # the last one is "after"
    after: Measure | None = None
    drain_seconds: float = 0.0
    samples: list[dict[str, float]] = field(default_factory=list)
    fd_margin: int = 0
    thread_margin: int = 0
    rss_margin_kib: int = 0
    blocks_margin: int = 0
    tracemalloc: int = 0  # frames (0: off)
    exit_status: int | None = None
    exit_seconds: float = 0.0
    killed: bool = False
    log: LogSummary = field(default_factory=LogSummary)
    problems: list[str] = field(default_factory=list)


async def soak(args: argparse.Namespace, proc: subprocess.Popen[bytes], port: int,
               report: Report, tally: Tally) -> None:
    pid = proc.pid
    ctl = Control(port=port, tally=tally, think=args.think_ms / 1000, kinds=args.kinds,
                  scale=args.scale, seed=args.seed)
    if args.warmup > 0:
        log(f"warm-up: {args.warmup:g} s")
        await phase(ctl, args.warmup, "warm-up")
    report.before = await measure(pid, port, None)
    log(f"after warm-up ({report.before.settle_seconds:.1f} s to settle): "
        f"{report.before.describe()}")

    seconds = args.minutes * 60
    log(f"load: {seconds:g} s, {sum(connections(k, args.scale) for k in args.kinds)} "
        "connections at a time")
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def sample() -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            with contextlib.suppress(OSError):
                r = resources(pid)
                report.samples.append({"t": round(loop.time() - start, 1), "fds": r.fds,
                                       "threads": r.threads, "rss_kib": r.rss_kib})
                if len(report.samples) % 12 == 0:
                    log(f"  {loop.time() - start:6.0f} s: {sum(tally.answered.values()):,} "
                        f"answered, {tally.failure_count} failures; server {r.describe()}")

    sampler = asyncio.create_task(sample())
    try:
        # The load in --checkpoints parts, each followed by a drain and a measurement:
        # a leak keeps growing from one to the next, a cache or an allocator settles.
        parts = args.checkpoints
        for i in range(parts):
            await phase(ctl, seconds / parts, f"load-{i + 1}")
            if proc.poll() is not None:
                report.problems.append(f"the server exited with status {proc.returncode} "
                                       "under load")
                return
            if tally.budget <= 0 and i < parts - 1:
                continue  # the budget is spent: straight to the end
            load_end = loop.time()
            checkpoint = await measure(pid, port, report.before)
            report.checkpoints.append(checkpoint)
            report.drain_seconds = checkpoint.settle_seconds
            where = "after the load" if i == parts - 1 else f"checkpoint {i + 1}/{parts}"
            log(f"{where} ({load_end - start:.0f} s; {checkpoint.settle_seconds:.1f} s to "
                f"settle): {checkpoint.describe()}")
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    report.load_seconds = loop.time() - start
    report.budget_spent = tally.budget <= 0
    report.after = report.checkpoints[-1] if report.checkpoints else None


def judge(report: Report, tally: Tally) -> None:
    p = report.problems
    wrong, lost = sum(tally.wrong.values()), sum(tally.lost.values())
    if wrong:
        p.append(f"{wrong} wrong answers")
    if lost:
        p.append(f"{lost} lost answers")
    if tally.fault_wrong:
        p.append(f"{sum(tally.fault_wrong.values())} faults got an unexpected answer")
    if tally.client_errors:
        p.append(f"{tally.client_errors} client errors (connect failures or client bugs)")
    if tally.stuck_sessions:
        p.append(f"{tally.stuck_sessions} sessions did not finish")
    if not sum(tally.answered.values()):
        p.append("no request was answered")
    b, a = report.before, report.after
    if b is not None and a is not None:
        for n, c in enumerate(report.checkpoints, 1):
            at = "" if n == len(report.checkpoints) else f" at checkpoint {n}"
            if c.fds > b.fds + report.fd_margin:
                p.append(f"open fds {b.fds} -> {c.fds}{at} (margin {report.fd_margin})")
            if c.threads > b.threads + report.thread_margin:
                p.append(f"threads {b.threads} -> {c.threads}{at} "
                         f"(margin {report.thread_margin})")
            if report.tracemalloc:
                continue  # tracemalloc's own memory grows: RSS and blocks are not judged
            if c.rss_kib > b.rss_kib + report.rss_margin_kib:
                p.append(f"RSS {b.rss_kib / 1024:.1f} -> {c.rss_kib / 1024:.1f} MiB{at} "
                         f"(margin {report.rss_margin_kib / 1024:g} MiB)")
            if b.blocks is None or c.blocks is None:
                p.append(f"the server's /__soak_stats did not answer{at}")
            elif c.blocks > b.blocks + report.blocks_margin:
                p.append(f"Python memory blocks {b.blocks} -> {c.blocks}{at} "
                         f"(margin {report.blocks_margin})")
    elif not any("exited" in x for x in p):
        p.append("the server's resources were not measured")
    if report.killed:
        p.append(f"the server did not exit within {STOP_TIMEOUT:g} s of SIGTERM (killed)")
    elif report.exit_status not in (0, None):
        p.append(f"the server exited with status {report.exit_status} on SIGTERM")
    if report.log.unexpected:
        p.append(f"{report.log.unexpected} warning/error/traceback lines in the server log")


def series(values: Iterable[object]) -> str:
    return " -> ".join(str(v) for v in values)


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def render(report: Report, tally: Tally) -> str:
    lost = tally.lost
    out = [
        f"aiowsgi soak: {report.load_seconds:.0f} s of load after {report.warmup:g} s of "
        f"warm-up ({report.total_seconds:.0f} s in all); server loop {report.loop}; "
        f"Python {report.python}; seed {report.seed}; scale {report.scale:g}",
        f"server: {shlex.join(['python', *report.server_command[1:]])}",
        "requests and faults below include the warm-up's",
        "",
        f"{'kind':<14} {'conns':>5} {'sent':>9} {'answered':>9} {'wrong':>6} {'lost':>5}  "
        "faults injected",
    ]
    for kind in KINDS:
        faults = {k.split(":", 1)[1]: v for k, v in sorted(tally.faults.items())
                  if k.startswith(kind + ":")}
        fault_text = (f"{sum(faults.values()):,}" + (
            f" ({sum(tally.fault_wrong[f'{kind}:{k}'] for k in faults)} unexpected)"
            if kind in ("malformed", "oversize") else "")) if faults else "-"
        conns = connections(kind, report.scale) if kind in report.kinds else 0
        out.append(f"{kind:<14} {conns:>5} {tally.sent[kind]:>9,} {tally.answered[kind]:>9,} "
                   f"{tally.wrong[kind]:>6} {lost[kind]:>5}  {fault_text}")
    out.append(f"{'total':<14} {'':>5} {sum(tally.sent.values()):>9,} "
               f"{sum(tally.answered.values()):>9,} {sum(tally.wrong.values()):>6} "
               f"{sum(lost.values()):>5}  {sum(tally.faults.values()):,}")
    for kind in ("reset", "malformed", "oversize"):
        parts = [f"{k.split(':', 1)[1]} {v}" for k, v in sorted(tally.faults.items())
                 if k.startswith(kind + ":")]
        if parts:
            out.append(f"  {kind} faults: " + ", ".join(parts))
    b, a = report.before, report.after
    out += [
        "",
        f"wrong answers: {sum(tally.wrong.values())}",
        f"lost answers: {sum(lost.values())}",
        f"unexpected answers to faults: {sum(tally.fault_wrong.values())}",
        f"client errors: {tally.client_errors}; sessions stuck: {tally.stuck_sessions}"
        + ("; request budget spent" if report.budget_spent else ""),
    ]
    if b is not None:
        if a is not None:
            ms = [b, *report.checkpoints]
            out += [
                f"server fds: {series(m.fds for m in ms)} (margin {report.fd_margin})",
                f"server threads: {series(m.threads for m in ms)} "
                f"(margin {report.thread_margin})",
                f"server RSS: {series(mib(m.rss_kib) for m in ms)} MiB after gc and "
                f"malloc_trim (margin {report.rss_margin_kib / 1024:g} MiB); held before "
                f"the trim {series(mib(m.held_rss_kib) for m in ms)} MiB; peak "
                f"{mib(a.hwm_kib)} MiB",
                f"server Python memory blocks: {series(m.blocks for m in ms)} (margin "
                f"{report.blocks_margin}); gc objects: {series(m.gc_objects for m in ms)}",
                f"drained in {series(f'{m.settle_seconds:.1f}' for m in ms)} s",
            ]
        if report.samples:
            peak_fds = max(int(s["fds"]) for s in report.samples)
            peak_threads = max(int(s["threads"]) for s in report.samples)
            out.append(f"under load (every {SAMPLE_EVERY:g} s): up to {peak_fds} fds, "
                       f"{peak_threads} threads")
    levels = ", ".join(f"{k} {v}" for k, v in sorted(report.log.levels.items())) or "empty"
    out.append(f"server log: {report.log.lines} lines ({levels}); exit status "
               f"{report.exit_status} after {report.exit_seconds:.2f} s"
               + (" (killed)" if report.killed else ""))
    if a is not None and a.growth is not None:
        out += ["", "tracemalloc (RSS and memory blocks not judged): lines whose memory grew "
                "most since the warm-up:"]
        out += [f"  {line}" for line in a.growth] or ["  (none)"]
    if report.log.first_unexpected:
        out += ["", "unexpected server log lines (first ones):"]
        out += [f"  {line}" for line in report.log.first_unexpected]
    if tally.failures:
        out += ["", f"failures ({tally.failure_count}; the first {len(tally.failures)}):"]
        out += [f"  {f}" for f in tally.failures]
    out += ["", "result: " + ("PASS" if not report.problems else
                              "FAIL: " + "; ".join(report.problems))]
    return "\n".join(out)


def write_json(path: Path, report: Report, tally: Tally, argv: Sequence[str]) -> None:
    data: dict[str, Any] = asdict(report)
    data["ok"] = not report.problems
    data["command"] = list(argv)
    data["cpu_count"] = os.cpu_count()
    data["platform"] = platform.platform()
    data["time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    data["kinds"] = {
        kind: {"connections": connections(kind, report.scale) if kind in report.kinds else 0,
               "sent": tally.sent[kind], "answered": tally.answered[kind],
               "wrong": tally.wrong[kind], "lost": tally.lost[kind]}
        for kind in KINDS
    }  # fmt: skip
    data["faults"] = dict(sorted(tally.faults.items()))
    data["unexpected_fault_answers"] = dict(sorted(tally.fault_wrong.items()))
    data["wrong_answers"] = sum(tally.wrong.values())
    data["lost_answers"] = sum(tally.lost.values())
    data["client_errors"] = tally.client_errors
    data["failures"] = tally.failures
    data["failure_count"] = tally.failure_count
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def run(args: argparse.Namespace) -> tuple[Report, Tally]:
    argv = server_argv(args.loop, args.server_arg)
    report = Report(
        loop=args.loop, python=platform.python_version(), minutes=args.minutes,
        warmup=args.warmup, seed=args.seed, scale=args.scale, kinds=list(args.kinds),
        server_command=argv, budget=args.max_requests, fd_margin=args.fd_margin,
        thread_margin=args.thread_margin, rss_margin_kib=args.rss_margin_mib * 1024,
        blocks_margin=args.blocks_margin, tracemalloc=args.tracemalloc,
    )  # fmt: skip
    tally = Tally(budget=args.max_requests)
    start = time.monotonic()
    with tempfile.TemporaryFile(prefix="aiowsgi-soak-log-") as log_file:
        proc = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=server_env(args.tracemalloc), stdin=subprocess.DEVNULL,
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            try:
                port = idle.wait_for_port(proc, log_file)
            except idle.BenchError as exc:
                raise SetupError(str(exc)) from None
            log(f"server up on {HOST}:{port} (pid {proc.pid}, --loop {args.loop})")
            limit = args.warmup + args.minutes * 60 + 2 * STOP_GRACE + HARD_MARGIN

            async def bounded() -> None:
                async with asyncio.timeout(limit):
                    await soak(args, proc, port, report, tally)

            try:
                asyncio.run(bounded())
            except TimeoutError:
                report.problems.append(f"the run was cut off after {limit:g} s")
        finally:
            report.exit_status, report.exit_seconds, report.killed = stop(proc)
            report.log = summarize_log(read_log(log_file))
    report.total_seconds = time.monotonic() - start
    judge(report, tally)
    return report, tally


def kinds_list(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in CONCURRENCY]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown kinds {unknown}; choose from {KINDS}")
    return kinds


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    def positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
        def parse(text: str) -> int | float:
            value = kind(text)
            if value <= 0:
                raise argparse.ArgumentTypeError("must be > 0")
            return value
        return parse

    default_loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    parser = argparse.ArgumentParser(
        description="Soak one aiowsgi server with a mix of normal and misbehaving clients; "
                    "check every answer and that its fds, threads and RSS come back.")
    parser.add_argument("--minutes", type=positive(float), default=10.0,
                        help="minutes of load after the warm-up (default: 10; 0.5 works)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default=default_loop,
                        help=f"the server's event loop (default: {default_loop})")
    parser.add_argument("--warmup", type=float, default=10.0,
                        help="seconds of the same load before the first measurement "
                             "(default: 10)")
    parser.add_argument("--scale", type=positive(float), default=1.0,
                        help="multiply the connections of every kind (default: 1: "
                             f"{sum(CONCURRENCY.values())} connections at a time)")
    parser.add_argument("--kinds", type=kinds_list, default=KINDS, metavar="A,B",
                        help="only these client kinds (default: all: " + ",".join(KINDS) + ")")
    parser.add_argument("--think-ms", type=float, default=5.0,
                        help="upper bound of the random pause between two requests of a "
                             "keep-alive or pipelined client, in ms (default: 5)")
    parser.add_argument("--max-requests", type=positive(int), default=2_000_000,
                        help="request budget of the whole run (default: 2000000)")
    parser.add_argument("--seed", default="soak", help="seed of the clients' choices")
    parser.add_argument("--checkpoints", type=positive(int), default=2,
                        help="drain and measure the server this many times during the load, "
                             "the last one at its end (default: 2)")
    parser.add_argument("--fd-margin", type=int, default=0,
                        help="open fds the server may hold above its warm-up count (default: 0)")
    parser.add_argument("--thread-margin", type=int, default=0,
                        help="threads the server may have above its warm-up count (default: 0)")
    parser.add_argument("--rss-margin-mib", type=int, default=16,
                        help="growth allowed of the server's RSS (read after it collected "
                             "garbage and trimmed malloc), in MiB (default: 16)")
    parser.add_argument("--blocks-margin", type=int, default=20_000,
                        help="growth allowed of the server's Python memory blocks "
                             "(sys.getallocatedblocks()) (default: 20000)")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="run the server under tracemalloc (PYTHONTRACEMALLOC=FRAMES; slow) "
                             "and show the lines whose memory grew most (default: off)")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="an extra argument for `aiowsgi serve` (repeatable), e.g. "
                             "--server-arg=--threads=4")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the summary as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    if not Path("/proc/self/status").exists():
        print("error: the soak reads /proc (Linux only)", file=sys.stderr)
        return 2
    try:
        report, tally = run(args)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(report, tally))
    if args.json is not None:
        write_json(args.json, report, tally, ["python", "bench/soak.py", *raw])
        log(f"summary written to {args.json}")
    return 0 if not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())
