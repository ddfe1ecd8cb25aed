"""Application factories, for ``--factory`` and ``AIOWSGI_FACTORY``: one that returns an
app, one that returns something else, one that fails."""

from __future__ import annotations

from aiowsgi.wsgi import WSGIApp

from .echo import hello


def make_app() -> WSGIApp:
    return hello


def make_nothing() -> int:
    return 42


def broken_factory() -> WSGIApp:
    raise RuntimeError("no database")
