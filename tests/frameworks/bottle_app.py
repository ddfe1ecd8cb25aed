# Bottle ships no type information: its decorators make the views they wrap untyped.
# mypy: disable-error-code="untyped-decorator"
"""The compatibility routes (``compat.ROUTES``) in idiomatic Bottle, and WebTest, the test
client Bottle's documentation recommends (Bottle has none of its own)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bottle import Bottle, redirect, request, response, static_file  # type: ignore[import-untyped]

from aiowsgi.wsgi import WSGIApp

from . import compat

TEXT = "text/plain; charset=utf-8"


def make_app(download: Path) -> WSGIApp:
    app = Bottle()

    @app.get("/hello")
    def hello() -> str:
        response.content_type = TEXT
        return "Hello, world!"

    @app.get("/query")
    def query() -> dict[str, list[str]]:
        args = request.query.decode()  # Bottle's FormsDict holds latin-1 until decoded
        return {key: args.getall(key) for key in args}

    @app.get("/path/<name>")
    def path(name: str) -> str:
        response.content_type = TEXT
        return name

    @app.get("/environ")
    def environ() -> dict[str, object]:
        return compat.environ_summary(request.environ, request.url, request.remote_addr,
                                      request.urlparts.scheme == "https")

    @app.get("/redirect")
    def to_hello() -> None:
        redirect("/hello")

    @app.get("/stream")
    def stream() -> Iterator[str]:
        n, gate = int(request.query.n), request.query.gate or None
        response.content_type = TEXT

        def chunks() -> Iterator[str]:
            for i in range(n):
                compat.pause(gate, i)
                yield f"chunk {i}\n"

        return chunks()

    @app.get("/file")
    def file() -> Any:
        return static_file(download.name, root=download.parent,
                           mimetype="application/octet-stream", download="payload.bin")

    @app.post("/upload")
    def upload() -> dict[str, object]:
        upload = request.files.get("upload")
        digest, size = hashlib.sha256(), 0
        while chunk := upload.file.read(64 * 1024):
            digest.update(chunk)
            size += len(chunk)
        return {"note": request.forms.note, "filename": upload.filename, "size": size,
                "sha256": digest.hexdigest()}

    @app.get("/headers")
    def headers() -> str:
        response.content_type = TEXT
        response.set_header("X-Big-Reply", "r" * compat.BIG_REPLY_HEADER)
        return str(len(request.get_header("X-Big", "")))

    @app.get("/cookies")
    def cookies() -> dict[str, str]:
        response.set_cookie("seen", "yes", path="/", httponly=True)
        return dict(request.cookies.decode())

    @app.post("/form")
    def form() -> dict[str, list[str]]:
        fields = request.forms.decode()
        return {key: fields.getall(key) for key in fields}

    return app  # type: ignore[no-any-return]


FRAMEWORK = compat.Framework("bottle", make_app, compat.webtest_request)
