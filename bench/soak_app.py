"""The application ``bench/soak.py`` drives: every answer can be checked exactly.

Every request names itself with ``?id=N``; every answer carries ``X-Soak-Id: N``, so an
answer that belongs to another request is caught.  Routes:

- ``GET|HEAD /bytes?id=N&n=SIZE&mode=M&piece=P``: SIZE bytes of ``body_for(N, SIZE)``
  (deterministic, different for every id), sent in pieces of P bytes in one of the
  output shapes in ``MODES``.
- ``POST /echo?id=N&read=R[&back=1]``: reads the request body in style R (``READS``) and
  answers ``"N LENGTH SHA256\\n"``, or with ``back=1`` the body itself.
- ``GET /sleep?id=N&ms=T``: holds its thread for T milliseconds, then answers ``"slept N\\n"``.
- ``GET /__soak_stats``: runs the garbage collector, hands the C allocator's free memory
  back to the kernel (glibc's ``malloc_trim``), and answers JSON: the live Python memory
  blocks, the objects the collector tracks, the threads.  The driver calls it at each
  measurement, so that the RSS it then reads is memory in use rather than memory the
  allocator keeps for reuse.  When the server runs under tracemalloc
  (``PYTHONTRACEMALLOC``), it adds the 10 source lines whose memory grew most since its
  first call.

Standard library only.  The expected answers are computed by the same functions here, so
the driver and the server agree by construction (both run the same Python).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import hashlib
import json
import random
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs
from wsgiref.types import FileWrapper, InputStream, StartResponse, WSGIEnvironment

# Output shapes of /bytes:
#   list       one bytes object in a list, Content-Length set by the app
#   pieces     a list of pieces without Content-Length (the server computes it)
#   gen        a generator of pieces, Content-Length set by the app
#   chunked    a generator of pieces without Content-Length (chunked on HTTP/1.1)
#   write      the write() callable for every piece, then an empty list
#   file       a temporary file through wsgi.file_wrapper (sendfile where possible)
MODES = ("list", "pieces", "gen", "chunked", "write", "file")
# How /echo reads wsgi.input: read(), read(n) in a loop, readline() until empty, iteration.
READS = ("all", "sized", "lines", "iter")
MAX_SLEEP_MS = 2_000


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None  # not glibc
    return trim


_MALLOC_TRIM = _malloc_trim()


_first_snapshot: list[tracemalloc.Snapshot] = []


def _growth() -> list[str]:
    """The source lines whose traced memory grew most since the first call."""
    snapshot = tracemalloc.take_snapshot().filter_traces([
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
    ])  # fmt: skip
    if not _first_snapshot:
        _first_snapshot.append(snapshot)
        return []
    diffs = snapshot.compare_to(_first_snapshot[0], "lineno")
    return [str(d) for d in diffs[:10] if d.size_diff > 0]


def stats() -> dict[str, Any]:
    """What ``/__soak_stats`` answers (after a collection and a trim)."""
    gc.collect()
    growth = _growth() if tracemalloc.is_tracing() else None
    trimmed = _MALLOC_TRIM is not None and bool(_MALLOC_TRIM(0))
    return {
        "allocated_blocks": sys.getallocatedblocks(),
        "gc_objects": len(gc.get_objects()),
        "threads": threading.active_count(),
        "malloc_trim": _MALLOC_TRIM is not None,
        "trimmed": trimmed,
        "tracemalloc_growth": growth,
    }


def body_for(ident: int, size: int) -> bytes:
    """The body of ``/bytes?id=ident&n=size``: pseudo-random, a function of both."""
    return random.Random(ident * 1_000_003 + size).randbytes(size)


def echo_line(ident: int, body: bytes) -> bytes:
    """The answer of ``/echo?id=ident`` without ``back=1``."""
    return f"{ident} {len(body)} {hashlib.sha256(body).hexdigest()}\n".encode("ascii")


def _split(data: bytes, piece: int) -> list[bytes]:
    return [data[i:i + piece] for i in range(0, len(data), piece)] or [b""]


def _generate(pieces: list[bytes]) -> Iterator[bytes]:
    yield from pieces


def _read_body(stream: InputStream, style: str, length: int) -> bytes:
    if style == "all":
        return stream.read()
    parts: list[bytes] = []
    if style == "sized":
        while part := stream.read(7_919):
            parts.append(part)
    elif style == "lines":
        while line := stream.readline():
            parts.append(line)
    else:
        parts.extend(stream)
    return b"".join(parts)


def _answer(start_response: StartResponse, ident: int, status: str, body: bytes,
            content_type: str = "text/plain") -> list[bytes]:
    start_response(status, [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("X-Soak-Id", str(ident)),
    ])  # fmt: skip
    return [body]


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    ident = int(query.get("id", "0"))
    path = environ.get("PATH_INFO", "")
    method = environ["REQUEST_METHOD"]
    if path == "/bytes" and method in ("GET", "HEAD"):
        return _bytes(environ, start_response, ident, query)
    if path == "/echo" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = _read_body(environ["wsgi.input"], query.get("read", "all"), length)
        if len(body) != length:
            return _answer(start_response, ident, "500 Internal Server Error",
                           f"CONTENT_LENGTH {length} but read {len(body)}\n".encode())
        if query.get("back") == "1":
            return _answer(start_response, ident, "200 OK", body, "application/octet-stream")
        return _answer(start_response, ident, "200 OK", echo_line(ident, body))
    if path == "/__soak_stats":
        return _answer(start_response, ident, "200 OK", json.dumps(stats()).encode(),
                       "application/json")
    if path == "/sleep":
        time.sleep(min(int(query.get("ms", "0")), MAX_SLEEP_MS) / 1000)
        return _answer(start_response, ident, "200 OK", f"slept {ident}\n".encode())
    return _answer(start_response, ident, "404 Not Found", b"no such route\n")


def _bytes(environ: WSGIEnvironment, start_response: StartResponse, ident: int,
           query: dict[str, str]) -> Iterable[bytes]:
    size = int(query.get("n", "0"))
    mode = query.get("mode", "list")
    piece = max(1, int(query.get("piece", "65536")))
    body = body_for(ident, size)
    headers = [("Content-Type", "application/octet-stream"), ("X-Soak-Id", str(ident))]
    length = [("Content-Length", str(size))]
    if mode == "list":
        start_response("200 OK", headers + length)
        return [body]
    if mode == "pieces":
        start_response("200 OK", headers)
        return _split(body, piece)
    if mode == "gen":
        start_response("200 OK", headers + length)
        return _generate(_split(body, piece))
    if mode == "chunked":
        start_response("200 OK", headers)
        return _generate(_split(body, piece))
    if mode == "write":
        write = start_response("200 OK", headers + length)
        for part in _split(body, piece):
            write(part)
        return []
    if mode == "file":
        f = tempfile.TemporaryFile(prefix="aiowsgi-soak-")  # noqa: SIM115 - the response closes it
        try:
            f.write(body)
            f.seek(0)
            start_response("200 OK", headers + length)
            wrapper: FileWrapper = environ["wsgi.file_wrapper"]
            return wrapper(f, piece)
        except BaseException:
            f.close()
            raise
    return _answer(start_response, ident, "400 Bad Request", f"no mode {mode!r}\n".encode())
