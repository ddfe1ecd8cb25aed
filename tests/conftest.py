"""Shared fixtures: every async test runs once on the asyncio loop and once on uvloop;
``start_server``, a live server; ``served``, what the command line would serve."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol
from wsgiref.validate import validator

import pytest

from aiowsgi import Config, Server, cli
from aiowsgi.wsgi import WSGIApp

pytest_plugins = ["pytester"]

new_uvloop: Callable[[], asyncio.AbstractEventLoop] | None
try:
    from uvloop import new_event_loop as new_uvloop
except ImportError:  # pragma: no cover - uvloop is in the dev extra
    new_uvloop = None


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if new_uvloop is not None:
        factories["uvloop"] = new_uvloop
    return factories


class StartServer(Protocol):
    def __call__(self, app: WSGIApp, *, validate: bool = True,
                 **options: Any) -> Awaitable[Server]: ...


@pytest.fixture
def start_server(aiowsgi_server: Callable[..., Awaitable[Server]]) -> StartServer:
    """``server = await start_server(app, **options)``: the plugin's ``aiowsgi_server``,
    with the app wrapped in ``wsgiref.validate.validator`` unless ``validate=False``, so
    PEP 3333 is checked on every request.

    Application errors are not re-raised: these tests provoke them on purpose and check
    what the client gets.
    """

    async def start(app: WSGIApp, *, validate: bool = True, **options: Any) -> Server:
        return await aiowsgi_server(validator(app) if validate else app,
                                    raise_app_errors=False, **options)

    return start


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[tuple[Any, Config]]]:
    """What ``cli.main()`` would serve (the app and the Config), instead of serving it.
    It runs in ``tmp_path``; what it does to sys.path, and the logging it sets up when an
    app fails to load, are undone afterwards."""
    calls: list[tuple[Any, Config]] = []
    monkeypatch.setattr(cli, "run", lambda app, config: calls.append((app, config)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    logger = logging.getLogger("aiowsgi")
    saved = (logger.level, list(logger.handlers))
    yield calls
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
