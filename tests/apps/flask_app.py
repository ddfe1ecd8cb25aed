"""A small, ordinary Flask application: nothing in it knows about aiowsgi."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from flask import Flask, Response, request, send_file, stream_with_context

from ..waiting import SAFETY

STREAM_CHUNKS = [f"chunk {i}\n".encode() for i in range(5)]


def create_app(*, download_path: str | None = None,
               stream_gate: threading.Event | None = None) -> Flask:
    """``download_path`` is served at ``/download``.  When ``stream_gate`` is given,
    ``/stream`` yields its first chunk, then waits for the gate before the rest."""
    app = Flask(__name__)
    app.config["DOWNLOAD_PATH"] = download_path
    app.config["STREAM_GATE"] = stream_gate

    @app.get("/")
    def index() -> Response:
        return Response("hello from flask", mimetype="text/plain")

    @app.post("/echo")
    def echo() -> Response:
        return Response(f"name={request.form['name']}", mimetype="text/plain")

    @app.get("/stream")
    def stream() -> Response:
        gate = app.config["STREAM_GATE"]

        def generate() -> Iterator[bytes]:
            # The request context is still there while the server iterates.
            assert request.path == "/stream"
            for i, chunk in enumerate(STREAM_CHUNKS):
                if i == 1 and gate is not None and not gate.wait(SAFETY):
                    raise TimeoutError("the client never saw the first chunk")
                yield chunk

        return Response(stream_with_context(generate()), mimetype="text/plain")

    @app.get("/download")
    def download() -> Response:
        return send_file(app.config["DOWNLOAD_PATH"], mimetype="application/octet-stream")

    return app
