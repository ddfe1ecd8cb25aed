"""The compatibility routes (``compat.ROUTES``) in idiomatic Falcon, and Falcon's test
client (``falcon.testing.TestClient``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import falcon
import falcon.testing

from aiowsgi.wsgi import WSGIApp

from . import compat


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Hello, world!"

    on_head = on_get  # Falcon answers HEAD only where a responder says so


class Query:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {key: req.get_param_as_list(key) for key in req.params}


class PathName:
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = name


class Environ:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = compat.environ_summary(req.env, req.url, req.remote_addr,
                                            req.scheme == "https")


class Redirect:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPFound("/hello")


class Stream:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        n, gate = req.get_param_as_int("n", required=True), req.get_param("gate")

        def chunks() -> Iterator[bytes]:
            for i in range(n):
                compat.pause(gate, i)
                yield f"chunk {i}\n".encode()

        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = chunks()


class File:
    def __init__(self, path: Path) -> None:
        self.path = path

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/octet-stream"
        resp.downloadable_as = "payload.bin"
        resp.set_stream(self.path.open("rb"), self.path.stat().st_size)


class Upload:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form: falcon.media.multipart.MultipartForm = req.get_media()
        summary: dict[str, object] = {}
        for part in form:
            if part.name == "note":
                summary["note"] = part.text
            elif part.name == "upload":
                digest, size = hashlib.sha256(), 0
                while chunk := part.stream.read(64 * 1024):
                    digest.update(chunk)
                    size += len(chunk)
                summary.update(filename=part.filename, size=size, sha256=digest.hexdigest())
        resp.media = summary


class Headers:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = str(len(req.get_header("X-Big", default="")))
        resp.set_header("X-Big-Reply", "r" * compat.BIG_REPLY_HEADER)


class Cookies:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = req.cookies
        # secure=False: Falcon marks cookies Secure by default, and this is plain HTTP
        resp.set_cookie("seen", "yes", path="/", http_only=True, secure=False)


class Form:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form: dict[str, str | list[str]] = req.get_media()  # a repeated key gives a list
        resp.media = {key: value if isinstance(value, list) else [value]
                      for key, value in form.items()}


def make_app(download: Path) -> WSGIApp:
    app = falcon.App()
    app.add_route("/hello", Hello())
    app.add_route("/query", Query())
    app.add_route("/path/{name}", PathName())
    app.add_route("/environ", Environ())
    app.add_route("/redirect", Redirect())
    app.add_route("/stream", Stream())
    app.add_route("/file", File(download))
    app.add_route("/upload", Upload())
    app.add_route("/headers", Headers())
    app.add_route("/cookies", Cookies())
    app.add_route("/form", Form())
    return app


def client_request(app: WSGIApp, call: compat.Call, environ: dict[str, str]) -> compat.Reply:
    # ``extras`` is applied last, over simulate_request's own defaults (SERVER_NAME
    # falconframework.org, port 80); the Host header replaces its HTTP_HOST, as on the wire.
    # Repeated headers are combined beforehand: Falcon's client joins them with "," and
    # keeps only the last Cookie.  It also adds a User-Agent header, which no route reads.
    client = falcon.testing.TestClient(app)
    result = client.simulate_request(call.method, compat.app_path(call),
                                     headers=compat.combined_headers(call), body=call.body,
                                     extras=environ)
    # Result.headers keeps one value per name: every route sends each header once.
    return compat.Reply(result.status_code,
                        [(name.lower(), value) for name, value in result.headers.items()],
                        result.content)


FRAMEWORK = compat.Framework("falcon", make_app, client_request)
