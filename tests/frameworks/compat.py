"""The compatibility harness: one request, answered twice, by aiowsgi over real HTTP and by
the framework's own test client in process; a difference is the server's.

Every framework app under ``tests/frameworks/`` serves the same routes (see ``ROUTES``)
and provides a ``Framework``: how to build the app and how to send a ``Call`` through the
framework's test client.  The test client is given the environ the server should have
built for the same request (``expected_environ``), so that REMOTE_ADDR, SERVER_NAME,
SCRIPT_NAME and the scheme agree; whether the server really built it is checked on the
``/environ`` route, whose answer both sides must share.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiowsgi.wsgi import WSGIApp

from ..waiting import SAFETY

HOST = "compat.test"  # the Host header of every call; apps must allow it
ROOT_PATH = "/prefix"  # the --root-path of the "root_path" server
CLIENT = "203.0.113.7"  # the client a trusted proxy forwards for
PROXY_HOST = "example.org"
STREAM_CHUNKS = 5
FILE_SIZE = 1024 * 1024
UPLOAD_SIZE = 3 * 1024 * 1024
BIG_HEADER = 6000  # bytes of one request header
BIG_REPLY_HEADER = 4000  # bytes of one response header
UNICODE_NAME = "café ✓"

ROUTES = """
Every app answers these (bodies are text/plain UTF-8 unless said otherwise):

GET  /hello              "Hello, world!"
GET  /query?...          JSON {key: [values...]} of the query string, repeated keys kept in
                         order, read through the framework's multi-dict API
GET  /path/<name>        the decoded <name> as text (unicode and %-encoded paths)
GET  /environ            JSON: the environ fields REMOTE_ADDR, SERVER_NAME, SERVER_PORT,
                         SCRIPT_NAME, PATH_INFO, QUERY_STRING, HTTP_HOST, wsgi.url_scheme,
                         and the framework's view: "url" (the full URL it reconstructs),
                         "remote" (its client address), "secure" (bool)
GET  /redirect           the framework's redirect to /hello (302, relative Location unless
                         the framework makes it absolute)
GET  /stream?n=N[&gate=G] the framework's streaming response: N chunks "chunk i\\n"; the
                         generator calls ``compat.pause(G, i)`` before each chunk, which
                         (with a gate) holds chunk 1 back until the client has read chunk 0
GET  /file               the framework's file response of the file at the path given to
                         ``make_app`` (application/octet-stream, as an attachment named
                         payload.bin), which must go through wsgi.file_wrapper
POST /upload             multipart/form-data: field "note" and file "upload";
                         JSON {"note", "filename", "size", "sha256"}
GET  /headers            text: the length of the X-Big request header; the response has
                         an X-Big-Reply header of BIG_REPLY_HEADER "r" characters
GET  /cookies            JSON {name: value} of the request's cookies, and sets the cookie
                         seen=yes with Path=/ and HttpOnly
POST /form               urlencoded form (not for Django's CSRF-protected views): JSON
                         {key: [values...]}
"""


GATES: dict[str, threading.Event] = {}  # by name: set when the client has read chunk 0


def pause(gate: str | None, index: int) -> None:
    """In a /stream generator: before chunk 1, wait for the client to have read chunk 0,
    which it can only do if the server sent chunk 0 on its own (streamed, not buffered)."""
    if gate and index == 1 and not GATES[gate].wait(SAFETY):
        raise TimeoutError("the client never saw the first chunk: the response was buffered")


@dataclass(frozen=True)
class Call:
    """One request, as sent on the wire."""

    method: str
    target: str  # path and query, percent-encoded; under --root-path, with the prefix
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    server: str = "plain"  # which server: plain, root_path or proxy


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]  # names in lower case
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]


ClientRequest = Callable[[WSGIApp, Call, dict[str, str]], Reply]


@dataclass
class Framework:
    name: str
    make_app: Callable[[Path], WSGIApp]  # the path of the file that /file serves
    client_request: ClientRequest  # through the framework's own test client
    # entered around the framework's tests (e.g. Django's settings for this app)
    context: Callable[[], AbstractContextManager[object]] = nullcontext

    def __str__(self) -> str:
        return self.name


SERVERS: dict[str, dict[str, Any]] = {
    "plain": {},
    "root_path": {"root_path": ROOT_PATH},
    "proxy": {"proxy_headers": True},
}


def expected_environ(call: Call, port: int) -> dict[str, str]:
    """The environ fields aiowsgi should build for ``call``, which the test client is
    given so that both sides answer the same request."""
    environ = {"REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "127.0.0.1",
               "SERVER_PORT": str(port), "wsgi.url_scheme": "http", "SCRIPT_NAME": ""}
    if call.server == "root_path":
        environ["SCRIPT_NAME"] = ROOT_PATH
    if call.server == "proxy":
        sent = {name.lower(): value for name, value in call.headers}
        if "x-forwarded-for" in sent:  # the nearest hop: only the proxy itself is trusted
            environ["REMOTE_ADDR"] = sent["x-forwarded-for"].split(",")[-1].strip()
        if sent.get("x-forwarded-proto") == "https":
            environ["wsgi.url_scheme"] = "https"
        if "x-forwarded-host" in sent:
            environ["HTTP_HOST"] = sent["x-forwarded-host"]
    return environ


def app_path(call: Call) -> str:
    """``call.target`` as a test client takes it: without the root path, and with any raw
    UTF-8 in it percent-encoded (a test client takes text, not the bytes of the wire)."""
    target = quote(call.target.encode("latin-1"), safe="/?&=%;:@+$,!~*'()")
    if call.server == "root_path":
        assert target.startswith(ROOT_PATH + "/")
        return target[len(ROOT_PATH):]
    return target


def with_host(call: Call) -> list[tuple[str, str]]:
    """The headers sent: Host first (unless the call sets it), then the call's own."""
    names = {name.lower() for name, _ in call.headers}
    return ([] if "host" in names else [("Host", HOST)]) + list(call.headers)


def combined_headers(call: Call) -> list[tuple[str, str]]:
    """``with_host(call)`` with one field per name, as a WSGI environ holds them: the
    values of a repeated field joined with ", " (RFC 9110 section 5.3), Cookie's with "; "
    (RFC 9113 section 8.2.3).  For test clients that would otherwise keep only one of the
    values (WebTest keeps the last) or join them their own way (Falcon's, with ",")."""
    fields: dict[str, tuple[str, list[str]]] = {}
    for name, value in with_host(call):
        fields.setdefault(name.lower(), (name, []))[1].append(value)
    return [(name, ("; " if name.lower() == "cookie" else ", ").join(values))
            for name, values in fields.values()]


def send(port: int, call: Call) -> Reply:
    """``call`` to the aiowsgi server on ``port``, over a fresh connection.

    Written by hand rather than with http.client, which refuses a raw UTF-8 target.
    """
    headers = with_host(call)
    if call.body or call.method in ("POST", "PUT"):
        headers.append(("Content-Length", str(len(call.body))))
    head = f"{call.method} {call.target} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers) + "Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
        sock.sendall(head.encode("latin-1") + call.body)
        response = http.client.HTTPResponse(sock, method=call.method)
        response.begin()
        body = response.read()
        return Reply(response.status,
                     [(name.lower(), value) for name, value in response.getheaders()], body)


# Headers that belong to the connection or the server, not to the application.
SERVER_HEADERS = frozenset({"date", "server", "connection", "transfer-encoding", "keep-alive"})


def comparable_headers(reply: Reply, ignore: Iterable[str] = ()) -> dict[str, list[str]]:
    skip = SERVER_HEADERS | {name.lower() for name in ignore}
    out: dict[str, list[str]] = {}
    for name, value in reply.headers:
        if name not in skip:
            out.setdefault(name, []).append(value)
    return out


def assert_same(served: Reply, expected: Reply, *, ignore: Iterable[str] = (),
                body: Callable[[bytes], object] = lambda data: data) -> None:
    """The server's reply equals the test client's: status, application headers, body.

    A Content-Length the test client left out may be added by the server (it knows the
    length of a one-chunk body); every other header must match exactly.
    """
    assert served.status == expected.status, (served.status, served.body[:300])
    ours = comparable_headers(served, ignore)
    theirs = comparable_headers(expected, ignore)
    if "content-length" not in theirs:
        ours.pop("content-length", None)
    assert ours == theirs
    assert body(served.body) == body(expected.body)


def json_body(data: bytes) -> object:
    return json.loads(data)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    """A multipart/form-data body: its Content-Type and its bytes."""
    boundary = "compat-" + os.urandom(8).hex()
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     .encode() + value.encode() + b"\r\n")
    for name, (filename, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def upload_summary(note: str, filename: str, data: bytes) -> dict[str, object]:
    """What /upload answers (apps build the same dict from the parsed request)."""
    return {"note": note, "filename": filename, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


def environ_summary(environ: dict[str, Any], url: str, remote: str | None,
                    secure: bool) -> dict[str, object]:
    """What /environ answers."""
    keys = ("REMOTE_ADDR", "SERVER_NAME", "SERVER_PORT", "SCRIPT_NAME", "PATH_INFO",
            "QUERY_STRING", "HTTP_HOST", "wsgi.url_scheme")
    return {**{key: environ.get(key, "") for key in keys},
            "url": url, "remote": remote, "secure": secure}


def webtest_request(app: WSGIApp, call: Call, environ: dict[str, str]) -> Reply:
    """``call`` through WebTest (``webtest.TestApp``), the functional test client that
    Bottle's and Pyramid's documentation point to (neither has one of its own).

    Where WebTest is not a faithful stand-in for the wire, the request or the reply is
    corrected here, never in ``assert_same``:

    - a new ``TestApp`` for each call: its cookie jar is empty, so the Cookie header sent
      is exactly the call's;
    - a repeated header is combined beforehand (``combined_headers``): WebTest would keep
      only its last value;
    - ``do_request``, not ``request``: ``request`` copies the request into a temporary
      file it never closes (a ResourceWarning with a large body);
    - the environ is applied after the headers, which set HTTP_HOST (under
      ``proxy_headers`` the server's HTTP_HOST is the forwarded host);
    - SERVER_PROTOCOL is HTTP/1.1, as on the wire (WebTest says HTTP/1.0, and Bottle's
      redirect() answers 302 rather than 303 to HTTP/1.0);
    - WebOb's response adds a Content-Length when it joins a streamed body: it is dropped
      unless the application sent one.
    """
    import webtest  # type: ignore[import-untyped]

    sent: list[tuple[str, str]] = []

    def recording(environ: dict[str, Any], start_response: Callable[..., Any]
                  ) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            sent[:] = headers
            return start_response(status, headers, exc_info)
        return app(environ, start)

    client = webtest.TestApp(recording)
    request = webtest.TestRequest.blank(app_path(call), method=call.method,
                                        headers=combined_headers(call))
    if call.body:
        request.body = call.body
    request.environ.update(environ, SERVER_PROTOCOL="HTTP/1.1")
    response = client.do_request(request, expect_errors=True)
    headers = [(name.lower(), value) for name, value in response.headerlist]
    if not any(name.lower() == "content-length" for name, _ in sent):
        headers = [(name, value) for name, value in headers if name != "content-length"]
    return Reply(response.status_int, headers, response.body)
