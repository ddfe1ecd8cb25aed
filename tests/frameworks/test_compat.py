"""Flask, Django, Falcon, Bottle and Pyramid, unmodified, through aiowsgi over real HTTP:
each answer must equal the one the framework's own test client gives for the same request.

Every framework app serves the routes of ``compat.ROUTES``.  Servers start once per
framework (plain, with ``root_path`` and with ``proxy_headers``) and live for the module.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from aiowsgi.testing import live_server
from aiowsgi.wsgi import WSGIApp

from ..waiting import SAFETY
from . import compat
from .compat import Call, Framework, Reply

FRAMEWORKS = ["flask", "django", "falcon", "bottle", "pyramid"]


@dataclass
class Site:
    """One framework's app, and the aiowsgi servers that serve it (started on demand)."""

    framework: Framework
    app: WSGIApp
    download: bytes
    stack: contextlib.ExitStack
    results: list[object] = field(default_factory=list)  # what the app returned, by call
    ports: dict[str, int] = field(default_factory=dict)

    def port(self, server: str) -> int:
        if server not in self.ports:
            url = self.stack.enter_context(live_server(
                self.recording, threads=4, access_log=False, **compat.SERVERS[server]))
            self.ports[server] = urlsplit(url).port or 80
        return self.ports[server]

    def recording(self, environ: dict[str, Any], start_response: Callable[..., Any]
                  ) -> Iterable[bytes]:
        """The app, remembering the iterable it returned (to see wsgi.file_wrapper used)."""
        result = self.app(environ, start_response)
        self.results.append(result)
        return result

    def exchange(self, call: Call) -> tuple[Reply, Reply]:
        """``call`` answered by aiowsgi, then by the framework's test client."""
        port = self.port(call.server)
        served = compat.send(port, call)
        expected = self.framework.client_request(self.app, call,
                                                 compat.expected_environ(call, port))
        return served, expected


@pytest.fixture(scope="module", params=FRAMEWORKS)
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Site]:
    framework: Framework = importlib.import_module(
        f"{__package__}.{request.param}_app").FRAMEWORK
    download = os.urandom(compat.FILE_SIZE)
    path = tmp_path_factory.mktemp(request.param) / "payload.bin"
    path.write_bytes(download)
    with contextlib.ExitStack() as stack:
        stack.enter_context(framework.context())
        yield Site(framework, framework.make_app(path), download, stack)


def test_hello(site: Site) -> None:
    served, expected = site.exchange(Call("GET", "/hello"))
    compat.assert_same(served, expected)
    assert served.body == b"Hello, world!"


def test_head(site: Site) -> None:
    served, expected = site.exchange(Call("HEAD", "/hello"))
    compat.assert_same(served, expected)
    assert served.status == 200 and served.body == b""
    get, _ = site.exchange(Call("GET", "/hello"))
    assert served.header("content-type") == get.header("content-type")


def test_query_with_repeated_keys(site: Site) -> None:
    served, expected = site.exchange(Call("GET", "/query?a=1&b=x%20y&a=2&c=caf%C3%A9&a=3"))
    compat.assert_same(served, expected, body=compat.json_body)
    assert json.loads(served.body) == {"a": ["1", "2", "3"], "b": ["x y"], "c": ["café"]}


@pytest.mark.parametrize("target", ["/path/caf%C3%A9%20%E2%9C%93", "/path/café%20✓"],
                         ids=["percent-encoded", "raw-utf8"])
def test_unicode_path(site: Site, target: str) -> None:
    if "é" in target:  # a raw UTF-8 request target, as some clients send
        target = target.encode().decode("latin-1")
    served, expected = site.exchange(Call("GET", target))
    compat.assert_same(served, expected)
    assert served.body.decode() == compat.UNICODE_NAME


def test_environ(site: Site) -> None:
    served, expected = site.exchange(Call("GET", "/environ?x=1"))
    compat.assert_same(served, expected, body=compat.json_body)
    seen = json.loads(served.body)
    assert seen["REMOTE_ADDR"] == seen["remote"] == "127.0.0.1"
    assert seen["SERVER_NAME"] == "127.0.0.1"
    assert seen["SERVER_PORT"] == str(site.ports["plain"])
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"], seen["QUERY_STRING"]) == ("", "/environ", "x=1")
    assert seen["HTTP_HOST"] == compat.HOST
    assert seen["url"] == f"http://{compat.HOST}/environ?x=1"
    assert seen["secure"] is False


def test_root_path(site: Site) -> None:
    served, expected = site.exchange(Call("GET", compat.ROOT_PATH + "/environ",
                                          server="root_path"))
    compat.assert_same(served, expected, body=compat.json_body)
    seen = json.loads(served.body)
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == (compat.ROOT_PATH, "/environ")
    assert seen["url"] == f"http://{compat.HOST}{compat.ROOT_PATH}/environ"
    redirected, expected = site.exchange(Call("GET", compat.ROOT_PATH + "/redirect",
                                              server="root_path"))
    compat.assert_same(redirected, expected)
    assert redirected.status in (302, 303, 307)


def test_proxy_headers(site: Site) -> None:
    forwarded = (("X-Forwarded-For", compat.CLIENT),
                 ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", compat.PROXY_HOST))
    served, expected = site.exchange(Call("GET", "/environ", forwarded, server="proxy"))
    compat.assert_same(served, expected, body=compat.json_body)
    seen = json.loads(served.body)
    assert seen["REMOTE_ADDR"] == seen["remote"] == compat.CLIENT
    assert seen["wsgi.url_scheme"] == "https" and seen["secure"] is True
    assert seen["HTTP_HOST"] == compat.PROXY_HOST
    assert seen["url"] == f"https://{compat.PROXY_HOST}/environ"
    # the same headers, to the server that does not trust them, change nothing
    ignored, _ = site.exchange(Call("GET", "/environ", forwarded))
    seen = json.loads(ignored.body)
    assert (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == ("127.0.0.1", "http")


def test_redirect(site: Site) -> None:
    served, expected = site.exchange(Call("GET", "/redirect"))
    compat.assert_same(served, expected)
    assert served.status in (302, 303, 307)
    assert (served.header("location") or "").endswith("/hello")


def test_streamed_response(site: Site) -> None:
    served, expected = site.exchange(Call("GET", f"/stream?n={compat.STREAM_CHUNKS}"))
    compat.assert_same(served, expected)
    assert served.body == "".join(f"chunk {i}\n"
                                  for i in range(compat.STREAM_CHUNKS)).encode()
    assert served.header("transfer-encoding") == "chunked"  # streamed, not buffered


def test_streamed_response_is_not_buffered(site: Site) -> None:
    """The app's generator holds chunk 1 back until the client has read chunk 0."""
    gate = compat.GATES[site.framework.name] = threading.Event()
    port = site.port("plain")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=SAFETY) as sock:
            sock.sendall(f"GET /stream?n=3&gate={site.framework.name} HTTP/1.1\r\n"
                         f"Host: {compat.HOST}\r\nConnection: close\r\n\r\n".encode())
            received = b""
            while b"chunk 0\n" not in received:
                data = sock.recv(65536)
                assert data, received
                received += data
            gate.set()
            while data:
                data = sock.recv(65536)
                received += data
    finally:
        gate.set()  # never leave an application thread waiting
    body = received.split(b"\r\n\r\n", 1)[1]
    assert b"chunk 1\n" in body and body.endswith(b"0\r\n\r\n")


def test_file_response(site: Site) -> None:
    del site.results[:]
    served, expected = site.exchange(Call("GET", "/file"))
    compat.assert_same(served, expected)
    assert served.body == site.download
    assert "attachment" in (served.header("content-disposition") or "")
    from aiowsgi.wsgi import FileWrapper
    assert isinstance(site.results[0], FileWrapper), type(site.results[0])


def test_multipart_upload(site: Site) -> None:
    data = os.urandom(compat.UPLOAD_SIZE)
    content_type, body = compat.multipart({"note": "héllo"}, {"upload": ("data.bin", data)})
    served, expected = site.exchange(Call("POST", "/upload",
                                          (("Content-Type", content_type),), body))
    compat.assert_same(served, expected, body=compat.json_body)
    assert json.loads(served.body) == compat.upload_summary("héllo", "data.bin", data)


def test_form_post(site: Site) -> None:
    body = b"a=1&a=2&name=caf%C3%A9&empty="
    served, expected = site.exchange(Call(
        "POST", "/form", (("Content-Type", "application/x-www-form-urlencoded"),), body))
    compat.assert_same(served, expected, body=compat.json_body)
    assert json.loads(served.body) == {"a": ["1", "2"], "name": ["café"], "empty": [""]}


def test_large_headers(site: Site) -> None:
    headers = (("X-Big", "b" * compat.BIG_HEADER),
               *((f"X-Extra-{i}", "v" * 100) for i in range(40)))
    served, expected = site.exchange(Call("GET", "/headers", headers))
    compat.assert_same(served, expected)
    assert served.body == str(compat.BIG_HEADER).encode()
    assert served.header("x-big-reply") == "r" * compat.BIG_REPLY_HEADER


def test_cookies(site: Site) -> None:
    served, expected = site.exchange(Call("GET", "/cookies",
                                          (("Cookie", "a=1; theme=dark"),)))
    compat.assert_same(served, expected, body=compat.json_body)
    assert json.loads(served.body) == {"a": "1", "theme": "dark"}
    cookie = served.header("set-cookie") or ""
    assert cookie.startswith("seen=yes") and "HttpOnly" in cookie


def test_repeated_headers(site: Site) -> None:
    """A repeated field reaches the app as one, joined with ", " (Cookie with "; ")."""
    served, expected = site.exchange(Call("GET", "/headers", (("X-Big", "aaa"), ("X-Big", "bb"))))
    compat.assert_same(served, expected)
    assert served.body == str(len("aaa, bb")).encode()
    served, expected = site.exchange(Call("GET", "/cookies", (("Cookie", "a=1"),
                                                              ("Cookie", "theme=dark"))))
    compat.assert_same(served, expected, body=compat.json_body)
    assert json.loads(served.body) == {"a": "1", "theme": "dark"}


def test_not_found(site: Site) -> None:
    served, expected = site.exchange(Call("GET", "/no/such/page"))
    compat.assert_same(served, expected)
    assert served.status == 404
