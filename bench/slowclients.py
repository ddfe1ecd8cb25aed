#!/usr/bin/env python3
"""Slow clients for the ``slow`` scenario of ``bench/run.py``: they download or upload
1 MiB at 64 KiB/s each, for as long as they are told, then stop by themselves.

Half of the clients (the first half, rounded up) download ``GET /download`` and read
the body at ``--rate`` bytes a second; the others upload ``POST /upload`` with a body of
``--size`` bytes sent at that rate and read the small answer (the count of bytes the app
read).  ``--only download`` or ``--only upload`` makes every client one kind.  Each
transfer uses a new connection (``Connection: close``), and each client starts transfer
after transfer until ``--duration`` seconds have passed; the one in progress then is
finished.  So with a duration shorter than one transfer (16 s at the
defaults), every client makes exactly one.

The kernel's buffers would hide a slow reader from the server: the downloading sockets
get a small receive buffer (``SO_RCVBUF``, ``--rcvbuf`` bytes, set before ``connect``;
Linux doubles it) and read ``--chunk`` bytes at a time, paced so that they never go
faster than the rate, not even to catch up after the server kept them waiting.  The
uploading sockets get a small send buffer (``SO_SNDBUF``) and send ``--chunk`` bytes at
a time, paced the same way.  The server's side matters as much: on
loopback the segment size is 64 KiB, so TCP starts with a congestion window of 640 KiB
and Linux sizes the server socket's send buffer after it; the whole 1 MiB then fits in
the server's kernel, which closes its end and never sees a slow reader.  So every
socket announces the segment size of an Ethernet path (``TCP_MAXSEG``, ``--mss``, 1460
bytes): the server's kernel then holds about 120 KiB of a download, and the rest waits
in the server.

It is bounded in time: a transfer that takes longer than ``--timeout`` seconds (by
default the transfer's nominal time x 1.25 + 5 s, 25 s at the defaults) fails, and the
whole run is cut off ``--duration + --timeout + 5`` seconds after its start, counting
what is still in progress as failed.

What it counts, per kind: transfers started, completed (the whole answer, status 200, the
right length; for an upload the answer must be the size), failed by reason (``connect``,
``reset``, ``eof``: the server closed before the end, ``status NNN``, ``bad answer``,
``timeout``, ``cut``), the body bytes moved and the durations of the completed ones.  It
prints them as one JSON object on stdout (``--json PATH`` writes it there instead) and a
short summary on stderr.  Exit status: 0 when every transfer completed, 1 when one
failed, 2 for usage errors.

Standard library only (asyncio on its default loop).  ``bench/run.py`` starts it under
``taskset`` on the load generator's CPU, next to wrk::

    python bench/slowclients.py --port 8000 --clients 200 --duration 12
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SIZE = 1024 * 1024
RATE = 64 * 1024
CHUNK = 8 * 1024
RCVBUF = 8 * 1024
MSS = 1460  # TCP_MAXSEG: the segment size of an Ethernet path, not loopback's 64 KiB
MAX_HEAD = 64 * 1024
RETRY_PAUSE = 0.2  # seconds a client waits after a failed transfer


class TransferFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Kind:
    """The figures of one kind of client (download or upload)."""

    clients: int = 0
    started: int = 0
    completed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    body_bytes: int = 0
    seconds: list[float] = field(default_factory=list)
    first_error: str | None = None

    def fail(self, reason: str, detail: str | None = None) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1
        if self.first_error is None:
            self.first_error = detail or reason

    def as_json(self) -> dict[str, Any]:
        done = sorted(self.seconds)
        return {
            "clients": self.clients,
            "started": self.started,
            "completed": self.completed,
            "failed": sum(self.failures.values()),
            "failures": self.failures,
            "body_bytes": self.body_bytes,
            "seconds_p50": statistics.median(done) if done else None,
            "seconds_max": done[-1] if done else None,
            "first_error": self.first_error,
        }


class _Counter:
    """Body bytes moved by a transfer; added to its kind even when it fails."""

    def __init__(self) -> None:
        self.n = 0


class _Pacer:
    """Keeps a transfer at ``rate`` bytes a second or below, never above: a client that
    waited for the server does not catch up afterwards (no burst)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.due = time.monotonic()

    async def moved(self, n: int) -> None:
        """``n`` bytes were just moved: wait until the rate allows the next ones."""
        now = time.monotonic()
        self.due = max(self.due, now) + n / self.rate
        if self.due > now:
            await asyncio.sleep(self.due - now)


async def _read_head(loop: asyncio.AbstractEventLoop, sock: socket.socket,
                     chunk: int) -> tuple[int, int, bytes]:
    """Read a response head: (status, Content-Length, body bytes read along with it)."""
    data = b""
    while (end := data.find(b"\r\n\r\n")) < 0:
        piece = await loop.sock_recv(sock, chunk)
        if not piece:
            raise TransferFailed("eof")
        data += piece
        if len(data) > MAX_HEAD:
            raise TransferFailed("bad answer")
    lines = data[:end].decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise TransferFailed("bad answer") from None
    length = -1
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, length, data[end + 4:]


async def _connect(loop: asyncio.AbstractEventLoop, host: str, port: int,
                   option: int, size: int, mss: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, option, size)  # before connect: the window
        if mss:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (host, port))
        except OSError as exc:
            raise TransferFailed("connect") from exc
    except BaseException:
        sock.close()
        raise
    return sock


async def download(host: str, port: int, opts: argparse.Namespace,
                   moved: _Counter) -> None:
    loop = asyncio.get_running_loop()
    sock = await _connect(loop, host, port, socket.SO_RCVBUF, opts.rcvbuf, opts.mss)
    with sock:
        pacer = _Pacer(opts.rate)
        await loop.sock_sendall(sock, (f"GET /download HTTP/1.1\r\nHost: {host}:{port}\r\n"
                                       "Connection: close\r\n\r\n").encode("ascii"))
        status, length, body = await _read_head(loop, sock, opts.chunk)
        if status != 200:
            raise TransferFailed(f"status {status}")
        if length != opts.size:
            raise TransferFailed("bad answer") from ValueError(
                f"Content-Length {length}, expected {opts.size}")
        got = len(body)
        moved.n += got
        await pacer.moved(got)
        while got < length:
            piece = await loop.sock_recv(sock, min(opts.chunk, length - got))
            if not piece:
                raise TransferFailed("eof")
            got += len(piece)
            moved.n += len(piece)
            if got < length:
                await pacer.moved(len(piece))


async def upload(host: str, port: int, opts: argparse.Namespace, moved: _Counter) -> None:
    loop = asyncio.get_running_loop()
    sock = await _connect(loop, host, port, socket.SO_SNDBUF, opts.rcvbuf, opts.mss)
    with sock:
        pacer = _Pacer(opts.rate)
        await loop.sock_sendall(sock, (
            f"POST /upload HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {opts.size}\r\n\r\n"
        ).encode("ascii"))
        piece = b"u" * opts.chunk
        sent = 0
        while sent < opts.size:
            n = min(opts.chunk, opts.size - sent)
            await loop.sock_sendall(sock, piece[:n])
            sent += n
            moved.n += n
            if sent < opts.size:
                await pacer.moved(n)
        status, length, body = await _read_head(loop, sock, opts.chunk)
        if status != 200:
            raise TransferFailed(f"status {status}")
        while len(body) < length:
            more = await loop.sock_recv(sock, length - len(body))
            if not more:
                raise TransferFailed("eof")
            body += more
        if body != str(opts.size).encode("ascii"):
            raise TransferFailed("bad answer") from ValueError(
                f"answer {body[:40]!r}, expected {opts.size}")


async def client(kind: str, stats: Kind, host: str, port: int, opts: argparse.Namespace,
                 stop_at: float) -> None:
    transfer = download if kind == "download" else upload
    while time.monotonic() < stop_at:
        stats.started += 1
        moved = _Counter()
        t0 = time.monotonic()
        failed = True
        try:
            async with asyncio.timeout(opts.timeout):
                await transfer(host, port, opts, moved)
        except TransferFailed as exc:
            stats.fail(exc.reason, f"{exc.reason}: {exc.__cause__ or ''}".rstrip(": "))
        except TimeoutError:
            stats.fail("timeout", f"timeout after {opts.timeout:g} s, "
                                  f"{moved.n} of {opts.size} body bytes moved")
        except (ConnectionResetError, BrokenPipeError) as exc:
            stats.fail("reset", repr(exc))
        except OSError as exc:
            stats.fail("error", repr(exc))
        except asyncio.CancelledError:
            stats.fail("cut", f"cut off at the end, {moved.n} of {opts.size} moved")
            raise
        else:
            failed = False
            stats.completed += 1
            stats.seconds.append(time.monotonic() - t0)
        finally:
            stats.body_bytes += moved.n
        if failed:
            await asyncio.sleep(RETRY_PAUSE)


async def run(opts: argparse.Namespace) -> dict[str, Any]:
    downloads = {"download": opts.clients, "upload": 0}.get(opts.only, (opts.clients + 1) // 2)
    kinds = {"download": Kind(clients=downloads), "upload": Kind(clients=opts.clients - downloads)}
    start = time.monotonic()
    stop_at = start + opts.duration
    tasks = [asyncio.create_task(client(kind, stats, opts.host, opts.port, opts, stop_at))
             for kind, stats in kinds.items() for _ in range(stats.clients)]
    cut_off = opts.duration + opts.timeout + 5
    _, pending = await asyncio.wait(tasks, timeout=cut_off)
    for task in pending:
        task.cancel()
    for task in tasks:  # collect, so that no exception is left unretrieved
        with contextlib.suppress(asyncio.CancelledError):
            await task
    usage = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = time.monotonic() - start
    return {
        "clients": opts.clients,
        "size": opts.size,
        "rate": opts.rate,
        "duration": opts.duration,
        "timeout": opts.timeout,
        "rcvbuf": opts.rcvbuf,
        "mss": opts.mss,
        "elapsed": elapsed,
        "cut_off": bool(pending),
        "cpu_percent": (usage.ru_utime + usage.ru_stime) / elapsed * 100 if elapsed else None,
        **{kind: stats.as_json() for kind, stats in kinds.items()},
    }


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Slow downloading and uploading clients.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_positive, required=True)
    parser.add_argument("--clients", type=_positive, default=200,
                        help="clients; the first half download, the others upload (200)")
    parser.add_argument("--size", type=_positive, default=SIZE,
                        help=f"body bytes of a download or an upload ({SIZE})")
    parser.add_argument("--rate", type=_positive, default=RATE,
                        help=f"bytes a second each client reads or sends ({RATE})")
    parser.add_argument("--chunk", type=_positive, default=CHUNK,
                        help=f"bytes per recv()/send() ({CHUNK})")
    parser.add_argument("--rcvbuf", type=_positive, default=RCVBUF,
                        help=f"SO_RCVBUF of a download, SO_SNDBUF of an upload ({RCVBUF})")
    parser.add_argument("--mss", type=int, default=MSS,
                        help=f"TCP_MAXSEG of every socket, 0 for the kernel's ({MSS})")
    parser.add_argument("--duration", type=_seconds, default=10.0,
                        help="seconds during which new transfers start (10)")
    parser.add_argument("--timeout", type=_seconds,
                        help="seconds one transfer may take (nominal x 1.25 + 5)")
    parser.add_argument("--only", choices=("download", "upload"),
                        help="make every client of this kind (default: half and half)")
    parser.add_argument("--json", metavar="PATH", help="write the figures here, not stdout")
    opts = parser.parse_args(argv)
    if opts.timeout is None:
        opts.timeout = opts.size / opts.rate * 1.25 + 5
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    figures = asyncio.run(run(opts))
    text = json.dumps(figures, indent=2) + "\n"
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    failed = 0
    for kind in ("download", "upload"):
        k = figures[kind]
        failed += k["failed"]
        p50 = "-" if k["seconds_p50"] is None else f"{k['seconds_p50']:.1f}"
        print(f"{kind}: {k['clients']} clients, {k['completed']}/{k['started']} transfers "
              f"completed (median {p50} s), failed: {k['failures'] or 'none'}"
              + (f", first: {k['first_error']}" if k["first_error"] else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
