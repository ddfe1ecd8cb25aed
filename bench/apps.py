"""Applications served by every server in the benchmark, one per scenario.

Every WSGI app sends ``Content-Length``, so every server puts the same bytes on
the wire (no chunked framing on some servers and not on others).  The sizes are
constants here; ``bench/run.py`` checks each server's first answer against them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any
from wsgiref.types import FileWrapper, StartResponse, WSGIEnvironment

HELLO_BODY = b"Hello, world!"
STREAM_SIZE = 16 * 1024 * 1024  # the generator stream and the file: 16 MiB
STREAM_CHUNK = 64 * 1024  # ... in 64 KiB pieces
CHUNKS_COUNT = 1_000  # the many-small-chunks response: 1,000 pieces ...
CHUNKS_SIZE = 100  # ... of 100 bytes each
POST_SIZE = 64 * 1024  # the request body the echo scenario sends

# Where the file scenario's 16 MiB file lives.  ``bench/run.py`` creates it and
# passes its path in this variable (not AIOWSGI_*: aiowsgi reads those as options).
FILE_ENV = "BENCH_FILE"
FILE_DEFAULT = Path(tempfile.gettempdir()) / "aiowsgi-bench-16MiB.bin"

_HELLO_HEADERS = [
    ("Content-Type", "text/plain"),
    ("Content-Length", str(len(HELLO_BODY))),
]
_STREAM_PIECE = b"s" * STREAM_CHUNK
_SMALL_PIECE = b"c" * CHUNKS_SIZE


def hello(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """Smallest useful app: fixed 13-byte body, explicit Content-Length."""
    start_response("200 OK", list(_HELLO_HEADERS))
    return [HELLO_BODY]


app = hello


def _stream_pieces() -> Iterator[bytes]:
    piece = _STREAM_PIECE
    for _ in range(STREAM_SIZE // STREAM_CHUNK):
        yield piece


def stream(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
    """16 MiB from a generator, in 64 KiB pieces (the same bytes object each time)."""
    start_response("200 OK", [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(STREAM_SIZE)),
    ])  # fmt: skip
    return _stream_pieces()


def _small_pieces() -> Iterator[bytes]:
    piece = _SMALL_PIECE
    for _ in range(CHUNKS_COUNT):
        yield piece


def chunks(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
    """A generator of 1,000 pieces of 100 bytes: the cost of handing off each piece."""
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(CHUNKS_COUNT * CHUNKS_SIZE)),
    ])  # fmt: skip
    return _small_pieces()


def echo(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """The request body, read whole from ``wsgi.input``, sent back."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
    start_response("200 OK", [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(len(body))),
    ])  # fmt: skip
    return [body]


# -- the file scenario ------------------------------------------------------------


def file_path() -> Path:
    return Path(os.environ.get(FILE_ENV) or FILE_DEFAULT)


def ensure_file(path: Path, size: int = STREAM_SIZE) -> Path:
    """Create ``path`` with ``size`` bytes unless it already has that size."""
    try:
        if path.stat().st_size == size:
            return path
    except FileNotFoundError:
        pass
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    block = bytes(range(256)) * (STREAM_CHUNK // 256)
    with open(tmp, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.write(block[: size % len(block)])
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new one
    return path


class _FileIter:
    """What the app returns when the server has no ``wsgi.file_wrapper``."""

    def __init__(self, f: IO[bytes], blksize: int) -> None:
        self.f = f
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read, size = self.f.read, self.blksize
        while data := read(size):
            yield data

    def close(self) -> None:
        self.f.close()


_file_checked = False


def file_wrapper(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The 16 MiB file through ``environ['wsgi.file_wrapper']`` (64 KiB blocks).

    ``X-File-Wrapper: server`` says the server provided ``wsgi.file_wrapper``;
    ``app`` says it did not and the app iterates over the file itself.
    """
    global _file_checked
    path = file_path()
    if not _file_checked:
        ensure_file(path)
        _file_checked = True
    f = open(path, "rb")  # noqa: SIM115 - the response closes it
    try:
        size = os.fstat(f.fileno()).st_size
        wrapper: FileWrapper | None = environ.get("wsgi.file_wrapper")
        start_response("200 OK", [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(size)),
            ("X-File-Wrapper", "app" if wrapper is None else "server"),
        ])  # fmt: skip
        if wrapper is None:
            return _FileIter(f, STREAM_CHUNK)
        return wrapper(f, STREAM_CHUNK)
    except BaseException:
        f.close()
        raise


# -- ASGI: the bare reference point of the hello scenario --------------------------

_ASGI_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(HELLO_BODY)).encode("ascii")),
    ],
}
_ASGI_BODY = {"type": "http.response.body", "body": HELLO_BODY}


async def hello_asgi(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """The hello app as bare ASGI (no framework): the same 13-byte answer."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(_ASGI_START)
    await send(_ASGI_BODY)
