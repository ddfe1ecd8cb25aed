"""The compatibility routes (``compat.ROUTES``) in idiomatic Flask, and Flask's test client."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, redirect, request, send_file, stream_with_context

from aiowsgi.wsgi import WSGIApp

from . import compat


def make_app(download: Path) -> WSGIApp:
    app = Flask(__name__)

    @app.get("/hello")
    def hello() -> Response:
        return Response("Hello, world!", mimetype="text/plain")

    @app.get("/query")
    def query() -> Any:
        return jsonify({key: request.args.getlist(key) for key in request.args})

    @app.get("/path/<name>")
    def path(name: str) -> Response:
        return Response(name, mimetype="text/plain")

    @app.get("/environ")
    def environ() -> Any:
        return jsonify(compat.environ_summary(request.environ, request.url,
                                              request.remote_addr, request.is_secure))

    @app.get("/redirect")
    def to_hello() -> Any:
        return redirect("/hello")

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Any:
            for i in range(int(request.args["n"])):  # the request context is still there
                compat.pause(request.args.get("gate"), i)
                yield f"chunk {i}\n"
        return Response(stream_with_context(chunks()), mimetype="text/plain")

    @app.get("/file")
    def file() -> Any:
        return send_file(download, mimetype="application/octet-stream", as_attachment=True,
                         download_name="payload.bin", etag=False, last_modified=None)

    @app.post("/upload")
    def upload() -> Any:
        upload = request.files["upload"]
        data = upload.read()
        return jsonify({"note": request.form["note"], "filename": upload.filename,
                        "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})

    @app.get("/headers")
    def headers() -> Response:
        response = Response(str(len(request.headers.get("X-Big", ""))), mimetype="text/plain")
        response.headers["X-Big-Reply"] = "r" * compat.BIG_REPLY_HEADER
        return response

    @app.get("/cookies")
    def cookies() -> Any:
        response = jsonify(dict(request.cookies))
        response.set_cookie("seen", "yes", path="/", httponly=True)
        return response

    @app.post("/form")
    def form() -> Any:
        return jsonify({key: request.form.getlist(key) for key in request.form})

    return app


def client_request(app: WSGIApp, call: compat.Call, environ: dict[str, str]) -> compat.Reply:
    flask_app: Flask = app  # type: ignore[assignment]
    client = flask_app.test_client(use_cookies=False)  # send the Cookie header as is
    response = client.open(compat.app_path(call), method=call.method,
                           headers=compat.combined_headers(call), data=call.body,
                           environ_overrides=environ)
    body = response.get_data()
    response.close()
    return compat.Reply(response.status_code,
                        [(name.lower(), value) for name, value in response.headers.items()],
                        body)


FRAMEWORK = compat.Framework("flask", make_app, client_request)
