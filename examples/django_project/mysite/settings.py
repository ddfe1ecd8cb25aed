"""Settings of the example Django project: the admin, and one small app (``notes``) in SQLite.

Served with ``aiowsgi serve mysite.wsgi:application --app-dir examples/django_project``
from the repository root.  A real deployment reads its secrets from the environment, as
these settings do (the fallback key is for this demo only).

``/`` and ``/healthz`` never touch the database, so they answer on a fresh checkout.  The
admin at ``/admin/`` needs the tables and a user; create them once with::

    python examples/django_project/manage.py migrate
    python examples/django_project/manage.py createsuperuser

The database is the SQLite file named by ``DJANGO_DB_PATH`` (default: ``db.sqlite3``
next to ``manage.py``).  Django serves the admin's CSS only with ``DJANGO_DEBUG=1``; in
production static files come from a web server or a CDN, not from the WSGI app.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-demo-key-do-not-use-in-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "").lower() in {"1", "true", "yes"}
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "notes",
]

# SQLite opens the file on the first query, not at startup: the views that do not query
# (``/``, ``/healthz``) work without it.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
STATIC_URL = "static/"

# Behind a proxy, ``aiowsgi serve --proxy-headers`` already sets REMOTE_ADDR,
# wsgi.url_scheme and HTTP_HOST from the trusted proxy's headers, so Django's own
# SECURE_PROXY_SSL_HEADER and USE_X_FORWARDED_HOST are not needed.

USE_TZ = True
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
