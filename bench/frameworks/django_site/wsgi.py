"""The WSGI entry point of the benchmark's Django site.

    aiowsgi serve bench.frameworks.django_site.wsgi:application

The database (``BENCH_DJANGO_DB``) must have been prepared first: see ``prepare``.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from bench.frameworks import DJANGO_SETTINGS

os.environ.setdefault("DJANGO_SETTINGS_MODULE", DJANGO_SETTINGS)

application = get_wsgi_application()
