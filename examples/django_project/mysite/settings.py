"""Settings of the example Django project: no database, no migrations, no static files.

Served with ``aiowsgi serve mysite.wsgi:application --app-dir examples/django_project``
from the repository root.  A real deployment reads its secrets from the environment, as
these settings do (the fallback key is for this demo only).
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-demo-key-do-not-use-in-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "").lower() in {"1", "true", "yes"}
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

# Nothing here needs a table: no auth, admin, sessions or contenttypes, so there is
# nothing to migrate and the demo view works on a fresh checkout.
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

# Behind a proxy, ``aiowsgi serve --proxy-headers`` already sets REMOTE_ADDR,
# wsgi.url_scheme and HTTP_HOST from the trusted proxy's headers, so Django's own
# SECURE_PROXY_SSL_HEADER and USE_X_FORWARDED_HOST are not needed.

USE_TZ = True
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
