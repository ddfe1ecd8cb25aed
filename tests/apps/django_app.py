# Django ships no type information: its decorators make the views they wrap untyped.
# mypy: disable-error-code="untyped-decorator"
"""A small, ordinary Django project in one module: settings, views and URLconf.

Nothing in it knows about aiowsgi.  :func:`get_application` configures Django once per
process (no database, no migrations) and returns ``get_wsgi_application()``.  Per-test
values (the file to serve, the streaming gate) are ordinary settings that the tests set
with ``django.test.override_settings``, which puts the previous values back.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..waiting import SAFETY

STREAM_CHUNKS = [f"chunk {i}\n".encode() for i in range(5)]


def get_application() -> WSGIHandler:
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="aiowsgi-tests-not-secret",
            ALLOWED_HOSTS=["127.0.0.1", "localhost"],
            ROOT_URLCONF=__name__,
            INSTALLED_APPS=[],
            DATABASES={},
            MIDDLEWARE=[
                "django.middleware.common.CommonMiddleware",
                "django.middleware.csrf.CsrfViewMiddleware",
            ],
            TEMPLATES=[],
            USE_TZ=True,
            AIOWSGI_DOWNLOAD_PATH=None,
            AIOWSGI_STREAM_GATE=None,
        )
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello from django", content_type="text/plain; charset=utf-8")


@csrf_exempt
@require_POST
def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"name={request.POST['name']}", content_type="text/plain; charset=utf-8")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    gate = settings.AIOWSGI_STREAM_GATE

    def generate() -> Iterator[bytes]:
        for i, chunk in enumerate(STREAM_CHUNKS):
            if i == 1 and gate is not None and not gate.wait(SAFETY):
                raise TimeoutError("the client never saw the first chunk")
            yield chunk

    return StreamingHttpResponse(generate(), content_type="text/plain; charset=utf-8")


def download(request: HttpRequest) -> FileResponse:
    return FileResponse(open(settings.AIOWSGI_DOWNLOAD_PATH, "rb"),
                        content_type="application/octet-stream")


urlpatterns = [
    path("", index),
    path("echo", echo),
    path("stream", stream),
    path("download", download),
]
