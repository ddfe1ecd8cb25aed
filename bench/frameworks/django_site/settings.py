"""Settings of the benchmark's Django site (``bench.frameworks.django_site``).

What ``django-admin startproject`` gives, minus what the page does not use (the admin,
auth and messages), with DEBUG off as in production, and SQLite set up the way Django's
documentation suggests for a served site: WAL journal, ``synchronous=NORMAL`` (no fsync on
every commit), ``BEGIN IMMEDIATE`` for write transactions, and persistent connections.
"""

from __future__ import annotations

import django

from bench.frameworks import django_db_path

SECRET_KEY = "aiowsgi-benchmark-only-this-is-not-a-secret-key-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.sessions",
    "bench.frameworks.django_site",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bench.frameworks.django_site.urls"
WSGI_APPLICATION = "bench.frameworks.django_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": ["django.template.context_processors.request"],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(django_db_path()),
        "CONN_MAX_AGE": 600,
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            # Django 5.1+: writers take the lock at BEGIN, instead of failing with
            # "database is locked" when a read turns into a write.
            **({"transaction_mode": "IMMEDIATE"} if django.VERSION >= (5, 1) else {}),
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_ENGINE = "django.contrib.sessions.backends.db"  # the default, said out loud

# Errors (a 500, a refused Host) go to the server's stderr, where bench/run.py counts them.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "level": "ERROR"},
    },
    "loggers": {"django": {"handlers": ["stderr"], "level": "ERROR"}},
}

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
