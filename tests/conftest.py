"""Shared fixtures: every async test runs once on the asyncio loop and once on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol
from wsgiref.validate import validator

import pytest

from aiowsgi import Server
from aiowsgi.wsgi import WSGIApp

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the test extra
    uvloop = None


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if uvloop is not None:
        factories["uvloop"] = uvloop.new_event_loop
    return factories


class StartServer(Protocol):
    def __call__(self, app: WSGIApp, *, validate: bool = True,
                 **options: Any) -> Awaitable[Server]: ...


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """``server = await start_server(app, **options)``: a live server on 127.0.0.1:0.

    The app is wrapped in ``wsgiref.validate.validator`` unless ``validate=False``, so
    PEP 3333 is checked on every request.  Servers are shut down at teardown.
    """
    servers: list[Server] = []

    async def start(app: WSGIApp, *, validate: bool = True, **options: Any) -> Server:
        server = Server(validator(app) if validate else app, host="127.0.0.1", port=0,
                        **options)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.shutdown(timeout=10)
