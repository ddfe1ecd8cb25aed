"""pytest fixtures for testing a WSGI application over real HTTP with aiowsgi.

Registered through the ``pytest11`` entry point, so installing aiowsgi is enough.

Sync (no event loop needed; requests, httpx, urllib, a browser):

- ``aiowsgi_live_server``: a live server for the ``aiowsgi_app`` fixture's application.
- ``aiowsgi_live_server_session``: the same, one server for the whole session.
- ``aiowsgi_live_server_factory``: ``server = aiowsgi_live_server_factory(app, **options)``.

Async (pytest-asyncio; aiohttp for the client):

- ``aiowsgi_server``: ``server = await aiowsgi_server(app, **options)``.
- ``aiowsgi_client``: ``client = await aiowsgi_client(app, **options)``, an
  ``aiohttp.ClientSession`` whose base URL is a new server's.

``aiowsgi_app`` reads ``aiowsgi_app = "module:attribute"`` from the pytest ini; override
the fixture to build the app in code.  An exception raised inside a served application is
re-raised in the test at teardown unless ``aiowsgi_raise_app_errors = false`` (ini),
``@pytest.mark.aiowsgi(raise_app_errors=False)`` or ``raise_app_errors=False`` (factory).
An error belongs to the server that saw it, not to the application object: it is reported
once, in the test during which that server saw it, as that server's own setting says.

Loading this module imports neither aiohttp nor pytest-asyncio.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._pytest_settings import raise_app_errors
from .loading import AppLoadError, load_app
from .testing import AppErrors, LiveServer, LiveServerFactory
from .wsgi import WSGIApp


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("aiowsgi_app", "The WSGI application the aiowsgi fixtures serve, as "
                  "MODULE:ATTRIBUTE.", default="")
    parser.addini("aiowsgi_raise_app_errors", "Re-raise exceptions raised inside the "
                  "application at the end of the test (default true).", type="bool",
                  default=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "aiowsgi(raise_app_errors=True): options of the aiowsgi fixtures for "
        "this test.")
    if config.pluginmanager.hasplugin("asyncio"):
        from . import _pytest_async as fixtures
    else:
        from . import _pytest_no_async as fixtures  # type: ignore[no-redef]
    config.pluginmanager.register(fixtures, "aiowsgi-async-fixtures")


@pytest.fixture(scope="session")
def aiowsgi_app(pytestconfig: pytest.Config) -> WSGIApp:
    """The application named by the ``aiowsgi_app`` ini option; override to build one."""
    spec = pytestconfig.getini("aiowsgi_app")
    if not spec:
        pytest.fail("no application for the aiowsgi fixtures: set aiowsgi_app = "
                    "\"module:attribute\" in the pytest ini, or override the aiowsgi_app "
                    "fixture", pytrace=False)
    try:
        return load_app(spec)
    except AppLoadError as exc:
        pytest.fail(f"aiowsgi_app: {exc}", pytrace=False)


def _live_servers(default_raise: bool) -> Iterator[LiveServerFactory]:
    servers: list[LiveServer] = []
    errors = AppErrors(default=default_raise)
    errors.install()

    def factory(app: WSGIApp, *, raise_app_errors: bool | None = None,
                **options: Any) -> LiveServer:
        server = LiveServer(errors.watch(app, raise_app_errors), **options).start()
        servers.append(server)
        return server

    try:
        yield factory
    finally:
        try:
            for server in reversed(servers):
                server.stop()
        finally:
            errors.uninstall()
    errors.reraise()


@pytest.fixture
def aiowsgi_live_server_factory(request: pytest.FixtureRequest) -> Iterator[LiveServerFactory]:
    """``server = aiowsgi_live_server_factory(app, **options)``: servers in background
    threads, stopped gracefully at teardown."""
    yield from _live_servers(raise_app_errors(request))


@pytest.fixture
def aiowsgi_live_server(aiowsgi_live_server_factory: LiveServerFactory,
                        aiowsgi_app: WSGIApp) -> LiveServer:
    """A live server for ``aiowsgi_app``, for this test; ``.url``, ``.make_url(path)``."""
    return aiowsgi_live_server_factory(aiowsgi_app)


_session_errors: list[AppErrors] = []


@pytest.fixture(scope="session")
def aiowsgi_live_server_session(aiowsgi_app: WSGIApp) -> Iterator[LiveServer]:
    """One live server for ``aiowsgi_app`` shared by the whole session.

    The errors this server sees are re-raised at the end of the test during which it saw
    them, unless that test opts out (marker or ini).
    """
    errors = AppErrors()
    errors.install()
    _session_errors.append(errors)
    try:
        with LiveServer(errors.watch(aiowsgi_app)) as server:
            yield server
    finally:
        errors.uninstall()
        _session_errors.remove(errors)


@pytest.fixture(autouse=True)
def _aiowsgi_session_app_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if _session_errors and raise_app_errors(request):
        for errors in _session_errors:
            errors.reraise()
    else:
        for errors in _session_errors:
            errors.errors.clear()
