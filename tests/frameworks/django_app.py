# Django ships no type information: its decorators make the views they wrap untyped.
# mypy: disable-error-code="untyped-decorator"
"""The compatibility routes (``compat.ROUTES``) as an idiomatic Django URLconf and views,
with CSRF protection on, and Django's test client.

Django's settings belong to the process: they are configured once (by the smoke tests'
``tests.apps.django_app``) and this module's URLconf, hosts and middleware are put in place
with ``override_settings`` for as long as its tests run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from django.conf import settings
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.middleware.csrf import get_token
from django.shortcuts import redirect
from django.test import Client, override_settings
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from aiowsgi.wsgi import WSGIApp

from . import compat


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Hello, world!", content_type="text/plain; charset=utf-8")


def query(request: HttpRequest) -> JsonResponse:
    return JsonResponse({key: request.GET.getlist(key) for key in request.GET})


def named(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse(name, content_type="text/plain; charset=utf-8")


def environ(request: HttpRequest) -> JsonResponse:
    return JsonResponse(compat.environ_summary(request.META, request.build_absolute_uri(),
                                               request.META.get("REMOTE_ADDR"),
                                               request.is_secure()))


def to_hello(request: HttpRequest) -> HttpResponseRedirect:
    return redirect("/hello")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    count, gate = int(request.GET["n"]), request.GET.get("gate")

    def chunks() -> Iterator[str]:
        for i in range(count):
            compat.pause(gate, i)
            yield f"chunk {i}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain; charset=utf-8")


def file(request: HttpRequest) -> FileResponse:
    return FileResponse(open(settings.AIOWSGI_COMPAT_DOWNLOAD, "rb"), as_attachment=True,
                        filename="payload.bin", content_type="application/octet-stream")


@csrf_exempt
@require_POST
def upload(request: HttpRequest) -> JsonResponse:
    uploaded = request.FILES["upload"]
    data = uploaded.read()
    return JsonResponse({"note": request.POST["note"], "filename": uploaded.name,
                         "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})


def headers(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(str(len(request.headers.get("X-Big", ""))),
                            content_type="text/plain; charset=utf-8")
    response["X-Big-Reply"] = "r" * compat.BIG_REPLY_HEADER
    return response


def cookies(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(request.COOKIES)
    response.set_cookie("seen", "yes", path="/", httponly=True)
    return response


@csrf_exempt
@require_POST
def form(request: HttpRequest) -> JsonResponse:
    return JsonResponse({key: request.POST.getlist(key) for key in request.POST})


@require_http_methods(["GET", "POST"])
def protected(request: HttpRequest) -> HttpResponse:
    """A CSRF-protected form: GET gives the token (and sets the cookie); a POST that
    passed the middleware's check answers with the posted name."""
    if request.method == "GET":
        return HttpResponse(get_token(request), content_type="text/plain; charset=utf-8")
    return HttpResponse(f"hello {request.POST['name']}", content_type="text/plain; charset=utf-8")


urlpatterns = [
    path("hello", require_safe(hello)),
    path("query", query),
    path("path/<str:name>", named),
    path("environ", environ),
    path("redirect", to_hello),
    path("stream", stream),
    path("file", file),
    path("upload", upload),
    path("headers", headers),
    path("cookies", cookies),
    path("form", form),
    path("csrf", protected),
]


def context() -> AbstractContextManager[object]:
    from tests.apps import django_app

    django_app.get_application()  # settings.configure(), once per process
    overridden: AbstractContextManager[object] = override_settings(
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=[compat.HOST, compat.PROXY_HOST],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware",
                    "django.middleware.csrf.CsrfViewMiddleware"],
        AIOWSGI_COMPAT_DOWNLOAD=None)
    return overridden


def make_app(download: Path) -> WSGIApp:
    from django.core.wsgi import get_wsgi_application

    settings.AIOWSGI_COMPAT_DOWNLOAD = str(download)  # inside context(): undone with it
    app: WSGIApp = get_wsgi_application()
    return app


def client_request(app: WSGIApp, call: compat.Call, environ: dict[str, str]) -> compat.Reply:
    client = Client(enforce_csrf_checks=True)
    headers = dict(compat.combined_headers(call))
    content_type = headers.pop("Content-Type", "application/octet-stream")
    if "HTTP_HOST" in environ:  # Django's client lets headers win over the environ
        headers.pop("Host")
    response = client.generic(call.method, compat.app_path(call), data=call.body,
                              content_type=content_type, headers=headers, **environ)
    body = (b"".join(response.streaming_content) if response.streaming
            else response.content)
    response.close()
    # the WSGI handler sends the cookies as Set-Cookie headers; the test client keeps them
    # apart, in response.cookies
    reply_headers = [(name.lower(), value) for name, value in response.items()]
    reply_headers += [("set-cookie", morsel.OutputString())
                      for morsel in response.cookies.values()]
    return compat.Reply(response.status_code, reply_headers, body)


FRAMEWORK = compat.Framework("django", make_app, client_request, context)
