"""Views of the example Django project.

Serve it from the repository root with
``aiowsgi serve mysite.wsgi:application --app-dir examples/django_project``.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Django on aiowsgi</title></head>
<body>
<h1>Hello from Django, served by aiowsgi</h1>
<p>What the server told Django about this request:</p>
<table>{}</table>
</body>
</html>
"""


def index(request: HttpRequest) -> HttpResponse:
    """An HTML page showing what the server put in the environ: the values that
    ``--proxy-headers`` and ``--root-path`` change."""
    meta = request.META
    rows = [
        ("method", request.method or ""),
        ("URL", request.build_absolute_uri()),
        ("client address (REMOTE_ADDR)", meta.get("REMOTE_ADDR", "")),
        ("scheme (wsgi.url_scheme)", request.scheme or ""),
        ("host (HTTP_HOST)", meta.get("HTTP_HOST", "")),
        ("mounted under (SCRIPT_NAME)", meta.get("SCRIPT_NAME", "") or "/"),
    ]
    table = format_html_join("\n", "<tr><th>{}</th><td>{}</td></tr>", rows)
    return HttpResponse(format_html(PAGE, table))


def healthz(request: HttpRequest) -> HttpResponse:
    """A cheap endpoint for health checks and Kubernetes probes."""
    return HttpResponse("ok\n", content_type="text/plain; charset=utf-8")
