"""A file download through ``wsgi.file_wrapper``: ``aiowsgi serve examples.download:app``.

``curl -OJ http://127.0.0.1:8000/`` saves the file under the name the server gives it.
The file is the one named by the ``DOWNLOAD_FILE`` environment variable, or this source
file when it is not set::

    DOWNLOAD_FILE=/var/tmp/big.iso aiowsgi serve examples.download:app

Handing an open file to ``environ["wsgi.file_wrapper"]`` lets aiowsgi send it with
``sendfile`` from the event loop (on both loops; over TLS it is read in a thread):
the worker thread returns at once instead of copying the file through Python, and
Content-Length tells the client how much is coming.  HEAD gets the same headers and no
body.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterable, Iterator
from typing import IO
from urllib.parse import quote
from wsgiref.types import StartResponse, WSGIEnvironment

BLOCK_SIZE = 64 * 1024


def file_to_serve() -> str:
    return os.environ.get("DOWNLOAD_FILE") or os.path.abspath(__file__)


def content_disposition(filename: str) -> str:
    """``attachment`` with the file's name: a plain ASCII ``filename`` for every client,
    and the exact name as UTF-8 in ``filename*`` (RFC 6266, RFC 8187)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def read_blocks(file: IO[bytes], size: int) -> Iterator[bytes]:
    """The fallback for a server without ``wsgi.file_wrapper``."""
    with file:
        while block := file.read(size):
            yield block


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] not in {"GET", "HEAD"}:
        start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"),
                                                  ("Content-Length", "0")])
        return []
    path = file_to_serve()
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed by the server through the wrapper
    except OSError:
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", "10")])
        return [b"Not Found\n"]
    try:
        size = os.fstat(file.fileno()).st_size  # of the file opened, not of the path
        content_type, encoding = mimetypes.guess_type(path)
        if encoding or not content_type:  # .tar.gz is gzip bytes, not a tarball to show
            content_type = "application/octet-stream"
        start_response("200 OK", [
            ("Content-Type", content_type),
            ("Content-Length", str(size)),
            ("Content-Disposition", content_disposition(os.path.basename(path))),
        ])
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is None:
            return read_blocks(file, BLOCK_SIZE)
        # The server calls the wrapper's close(), which closes the file, also when the
        # client goes away mid-download.
        wrapped: Iterable[bytes] = wrapper(file, BLOCK_SIZE)
        return wrapped
    except BaseException:
        file.close()
        raise
