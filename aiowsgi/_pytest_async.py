"""The async fixtures, registered by the pytest plugin when pytest-asyncio is active."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from ._pytest_settings import PYTEST_EXTRA, raise_app_errors
from .server import Server
from .testing import AppErrors, ClientFactory, ServerFactory
from .wsgi import WSGIApp

if TYPE_CHECKING:
    import aiohttp

@pytest_asyncio.fixture
async def aiowsgi_server(request: pytest.FixtureRequest) -> AsyncIterator[ServerFactory]:
    """``server = await aiowsgi_server(app, **options)``: a server on the test's event loop,
    on 127.0.0.1 and a free port unless told otherwise; shut down gracefully at teardown."""
    servers: list[Server] = []
    errors = AppErrors(default=raise_app_errors(request))
    errors.install()

    async def factory(app: WSGIApp, *, raise_app_errors: bool | None = None,
                      **options: Any) -> Server:
        options.setdefault("host", "127.0.0.1")
        options.setdefault("port", 0)
        server = Server(errors.watch(app, raise_app_errors), **options)
        await server.start()
        servers.append(server)
        return server

    try:
        yield factory
    finally:
        try:
            for server in reversed(servers):
                await server.shutdown()
        finally:
            errors.uninstall()
    errors.reraise()


@pytest_asyncio.fixture
async def aiowsgi_client(aiowsgi_server: ServerFactory) -> AsyncIterator[ClientFactory]:
    """``client = await aiowsgi_client(app, **options)``: an ``aiohttp.ClientSession``
    whose base URL is a new server's (``await client.get("/")``); closed at teardown."""
    try:
        import aiohttp
    except ImportError:
        pytest.fail(f"aiowsgi_client needs aiohttp: {PYTEST_EXTRA}", pytrace=False)
    sessions: list[aiohttp.ClientSession] = []

    async def factory(app: WSGIApp, **options: Any) -> aiohttp.ClientSession:
        server = await aiowsgi_server(app, **options)
        session = aiohttp.ClientSession(base_url=server.url)
        sessions.append(session)
        return session

    try:
        yield factory
    finally:
        for session in sessions:
            await session.close()
