"""aiowsgi.testing's live servers take the options of a Server, and the loop they run."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from aiowsgi import ConfigError
from aiowsgi.testing import LiveServer, live_server

from .apps import notwsgi
from .apps.echo import hello
from .waiting import SAFETY


@pytest.mark.parametrize("loop", ["auto", "asyncio", "uvloop"])
def test_a_live_server_runs_the_loop_it_is_given(loop: str) -> None:
    """The live server owns its event loop, so it takes the loop option a Server refuses."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    with LiveServer(hello, loop=loop, threads=2) as server, \
            urllib.request.urlopen(server.make_url("/"), timeout=SAFETY) as response:
        assert response.read() == b"hello"
    with live_server(hello, loop=loop) as url, \
            urllib.request.urlopen(url, timeout=SAFETY) as r:
        assert r.read() == b"hello"


def test_a_live_server_refuses_an_asgi_application_by_its_name() -> None:
    """Refused before a thread starts, and named as given, not as the handle that collects
    its errors."""
    refused = r"^the tests\.apps\.notwsgi\.ASGIApp object looks like an ASGI application"
    asgi: Any = notwsgi.asgi_object  # mypy refuses it too, where the code is typed
    with pytest.raises(TypeError, match=refused):
        LiveServer(asgi)
    with pytest.raises(TypeError, match=refused), live_server(asgi):
        pass
    with pytest.raises(TypeError, match=refused), live_server(asgi, raise_app_errors=False):
        pass


def test_a_live_server_refuses_the_other_process_options() -> None:
    with pytest.raises(TypeError, match=r"^Server\(\) does not take log_level: "):
        LiveServer(hello, log_level="debug")
    with pytest.raises(TypeError, match=r"^Server\(\) does not take workers: "):
        LiveServer(hello, workers=2)
    with pytest.raises(ConfigError, match=r"^loop: must be one of"):
        LiveServer(hello, loop="trio")
