"""Sends the request body back, read whole from ``wsgi.input``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

TOGETHER = 16
_together = threading.Barrier(TOGETHER, timeout=60)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body: bytes = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]


def together(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """``app``, answering only once ``TOGETHER`` requests hold their bodies at once (so
    that as many request buffers are alive, and freed, together)."""
    body: bytes = environ["wsgi.input"].read()
    _together.wait()
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]
