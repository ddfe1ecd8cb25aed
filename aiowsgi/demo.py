"""A demo application that ships with the package, so that the first try works anywhere:
``aiowsgi serve aiowsgi.demo:app``, then open http://127.0.0.1:8000/.

It shows the request as the application saw it, streams a response in pieces
(``/stream``), and echoes an upload's size (``POST /echo``): the three things a WSGI
server does for an application.  It is a plain WSGI callable with no dependencies.
"""

from __future__ import annotations

import hashlib
import html
import threading
from collections.abc import Iterable, Iterator
from wsgiref.types import StartResponse, WSGIEnvironment

from . import __version__

_SHOWN = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL", "REMOTE_ADDR",
          "HTTP_HOST", "HTTP_USER_AGENT", "wsgi.url_scheme")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aiowsgi {version}</title></head>
<body>
<h1>aiowsgi {version} is serving this page</h1>
<p>This is <code>aiowsgi.demo:app</code>, a WSGI application; it ran on the worker thread
<code>{thread}</code>. Serve your own with <code>aiowsgi serve MODULE:APP</code>.</p>
<table>{rows}</table>
<p><a href="/stream">/stream</a>: a response sent in pieces as they are made.</p>
<form method="post" action="/echo" enctype="multipart/form-data">
<input type="file" name="file"> <button>upload to /echo</button></form>
</body></html>
"""


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The demo: ``/``, ``/stream`` and ``POST /echo``; anything else is 404 or 405."""
    path, method = environ.get("PATH_INFO", "/"), environ["REQUEST_METHOD"]
    routes = {"/": ("GET", _page), "/stream": ("GET", _stream), "/echo": ("POST", _echo)}
    if path not in routes:
        return _text(start_response, "404 Not Found", "not found\n")
    allowed, view = routes[path]
    if method not in (allowed, "HEAD" if allowed == "GET" else allowed):
        return _text(start_response, "405 Method Not Allowed", f"use {allowed}\n",
                     [("Allow", allowed)])
    return view(environ, start_response)


def _page(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    rows = "".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(environ.get(key, '')))}</td></tr>"
        for key in _SHOWN)
    body = _PAGE.format(version=__version__, thread=html.escape(threading.current_thread().name),
                        rows=rows).encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _stream(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    for n in range(1, 11):
        yield f"piece {n} of 10\n".encode()


def _echo(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    digest, size = hashlib.sha256(), 0
    stream = environ["wsgi.input"]
    while block := stream.read(65536):
        digest.update(block)
        size += len(block)
    return _text(start_response, "200 OK", f"{size} bytes, sha256 {digest.hexdigest()}\n")


def _text(start_response: StartResponse, status: str, text: str,
          headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body))), *(headers or [])])
    return [body]
