"""WSGI applications served by every server in the benchmark."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]

_BODY = b"Hello, world!"
_HEADERS = [
    ("Content-Type", "text/plain"),
    ("Content-Length", str(len(_BODY))),
]


def hello(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Smallest useful app: fixed 13-byte body, explicit Content-Length."""
    start_response("200 OK", list(_HEADERS))
    return [_BODY]


app = hello
