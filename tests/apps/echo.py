"""An echo app whose requests wait for one another: importable by a server in a
subprocess."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

TOGETHER = 16
_together = threading.Barrier(TOGETHER, timeout=60)


def together(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Sends the request body back, once ``TOGETHER`` requests hold their bodies at
    once (so that as many request buffers are alive, and freed, together)."""
    body: bytes = environ["wsgi.input"].read()
    _together.wait()
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]
