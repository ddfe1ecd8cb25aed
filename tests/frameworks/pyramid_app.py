# Pyramid ships no type information: its decorators make the views they wrap untyped.
# mypy: disable-error-code="untyped-decorator"
"""The compatibility routes (``compat.ROUTES``) in idiomatic Pyramid, and WebTest, the test
client Pyramid's documentation uses for functional tests (Pyramid has none of its own)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from pyramid.config import Configurator  # type: ignore[import-untyped]
from pyramid.httpexceptions import HTTPFound  # type: ignore[import-untyped]
from pyramid.request import Request  # type: ignore[import-untyped]
from pyramid.response import FileResponse, Response  # type: ignore[import-untyped]
from pyramid.view import view_config  # type: ignore[import-untyped]

from aiowsgi.wsgi import WSGIApp

from . import compat


@view_config(route_name="hello", request_method="GET", renderer="string")
def hello(request: Request) -> str:
    return "Hello, world!"


@view_config(route_name="query", request_method="GET", renderer="json")
def query(request: Request) -> dict[str, list[str]]:
    return {key: request.GET.getall(key) for key in request.GET}


@view_config(route_name="path", request_method="GET", renderer="string")
def path(request: Request) -> str:
    name: str = request.matchdict["name"]
    return name


@view_config(route_name="environ", request_method="GET", renderer="json")
def environ(request: Request) -> dict[str, object]:
    return compat.environ_summary(request.environ, request.url, request.remote_addr,
                                  request.scheme == "https")


@view_config(route_name="redirect", request_method="GET")
def to_hello(request: Request) -> HTTPFound:
    return HTTPFound(location=request.route_url("hello"))


@view_config(route_name="stream", request_method="GET")
def stream(request: Request) -> Response:
    n, gate = int(request.GET["n"]), request.GET.get("gate")

    def chunks() -> Iterator[bytes]:
        for i in range(n):
            compat.pause(gate, i)
            yield f"chunk {i}\n".encode()

    return Response(app_iter=chunks(), content_type="text/plain")


@view_config(route_name="file", request_method="GET")
def file(request: Request) -> FileResponse:
    response = FileResponse(request.registry.settings["download"], request=request,
                            content_type="application/octet-stream")
    response.content_disposition = 'attachment; filename="payload.bin"'
    return response


@view_config(route_name="upload", request_method="POST", renderer="json")
def upload(request: Request) -> dict[str, object]:
    received = request.body_file_raw
    upload = request.POST["upload"]
    if request.body_file_raw is not received:
        # WebOb copied the large body to a temporary file it leaves to the garbage collector
        request.add_finished_callback(lambda request: request.body_file_raw.close())
    digest, size = hashlib.sha256(), 0
    while chunk := upload.file.read(64 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return {"note": request.POST["note"], "filename": upload.filename, "size": size,
            "sha256": digest.hexdigest()}


@view_config(route_name="headers", request_method="GET", renderer="string")
def headers(request: Request) -> str:
    request.response.headers["X-Big-Reply"] = "r" * compat.BIG_REPLY_HEADER
    return str(len(request.headers.get("X-Big", "")))


@view_config(route_name="cookies", request_method="GET", renderer="json")
def cookies(request: Request) -> dict[str, str]:
    request.response.set_cookie("seen", "yes", path="/", httponly=True)
    return dict(request.cookies)


@view_config(route_name="form", request_method="POST", renderer="json")
def form(request: Request) -> dict[str, list[str]]:
    return {key: request.POST.getall(key) for key in request.POST}


def make_app(download: Path) -> WSGIApp:
    with Configurator(settings={"download": str(download)}) as config:
        config.add_route("hello", "/hello")
        config.add_route("query", "/query")
        config.add_route("path", "/path/{name}")
        config.add_route("environ", "/environ")
        config.add_route("redirect", "/redirect")
        config.add_route("stream", "/stream")
        config.add_route("file", "/file")
        config.add_route("upload", "/upload")
        config.add_route("headers", "/headers")
        config.add_route("cookies", "/cookies")
        config.add_route("form", "/form")
        config.scan(__name__)  # the @view_config views of this module
        app = config.make_wsgi_app()
    return app  # type: ignore[no-any-return]


FRAMEWORK = compat.Framework("pyramid", make_app, compat.webtest_request)
