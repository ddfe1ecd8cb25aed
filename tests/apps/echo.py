"""Echo apps: what the request carried, or what the test asks for, sent back; and
``hello``, for a test that needs an app, any app.  Importable by a server in a
subprocess (``tests.apps.echo:together``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from aiowsgi.wsgi import WSGIApp

Env = dict[str, Any]
StartResponse = Callable[..., Any]


def read_body(environ: Env) -> bytes:
    """The whole request body: ``read(size)``, as wsgiref's validator (and PEP 333) insist."""
    body: bytes = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    return body


def hello(environ: Env, start_response: StartResponse) -> Iterable[bytes]:
    """``hello``, with a Content-Length."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def echo(environ: Env, start_response: StartResponse) -> Iterable[bytes]:
    """``METHOD PATH body``: with a Content-Length, or streamed (no Content-Length, in two
    pieces) under ``/stream``."""
    body = read_body(environ)
    out = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} ".encode() + body
    if environ["PATH_INFO"] == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([out[:3], out[3:]])
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(out)))])
    return [out]


def environ_echo(*keys: str) -> WSGIApp:
    """Answers with the values of ``keys`` in the environ, joined by ``|``."""

    def app(environ: Env, start_response: StartResponse) -> Iterable[bytes]:
        body = "|".join(str(environ.get(key)) for key in keys).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    return app


def status_app(status: str, headers: list[tuple[str, str]] | None = None,
               body: bytes = b"") -> WSGIApp:
    """Answers every request with ``status``, ``headers`` and ``body``, once it has
    read the request body."""

    def app(environ: Env, start_response: StartResponse) -> Iterable[bytes]:
        read_body(environ)
        start_response(status, list(headers or []))
        return [body] if body else []

    return app


TOGETHER = 16
_together = threading.Barrier(TOGETHER, timeout=60)


def together(environ: Env, start_response: StartResponse) -> list[bytes]:
    """Sends the request body back, once ``TOGETHER`` requests hold their bodies at
    once (so that as many request buffers are alive, and freed, together)."""
    body: bytes = environ["wsgi.input"].read()
    _together.wait()
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]
