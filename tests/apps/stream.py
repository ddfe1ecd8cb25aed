"""Apps for the streaming tests; importable by a server in a subprocess."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

CHUNK = 256 * 1024


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    """``GET /?mib=N``: N MiB from a generator, every chunk a new object in new memory."""
    mib = int(environ["QUERY_STRING"].partition("=")[2] or "1")
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(mib * 1024 * 1024))])
    pid = os.getpid()
    for i in range(mib * 1024 * 1024 // CHUNK):
        yield (b"%08x" % (i ^ pid)) * (CHUNK // 8)
