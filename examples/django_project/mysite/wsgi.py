"""The WSGI entry point of the example Django project.

From the repository root::

    aiowsgi serve mysite.wsgi:application --app-dir examples/django_project

then open http://127.0.0.1:8000/ (and http://127.0.0.1:8000/healthz, the path a load
balancer or a Kubernetes probe would ask).  Those two pages need no database; the admin
at /admin/ does: see ``mysite.settings`` for ``migrate`` and ``createsuperuser``.
"""

from __future__ import annotations

import os

from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application: WSGIHandler = get_wsgi_application()
