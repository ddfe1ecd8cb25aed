"""Testing a Flask app over real HTTP with each of aiowsgi's pytest fixtures.

Installing aiowsgi registers the fixtures; the async ones need ``aiowsgi-server[pytest]``
(pytest-asyncio and aiohttp).  Run with ``python -m pytest examples/test_flask_app.py``.
"""

from __future__ import annotations

import unittest
import urllib.error
import urllib.request

import pytest

from aiowsgi.testing import (
    ClientFactory,
    LiveServer,
    LiveServerFactory,
    ServerFactory,
    live_server,
)
from aiowsgi.wsgi import WSGIApp
from examples.flask_app import app as flask_app


@pytest.fixture(scope="session")
def aiowsgi_app() -> WSGIApp:
    """The app the aiowsgi_live_server fixtures serve.

    Instead of this fixture, a project can name it once in its pytest configuration:
    ``aiowsgi_app = "myproject.wsgi:application"``.
    """
    return flask_app


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


# -- sync tests: no event loop; any HTTP client or a browser ---------------------------


def test_index(aiowsgi_live_server: LiveServer) -> None:
    assert get(aiowsgi_live_server.url + "/") == (200, b"Hello from Flask")


def test_streamed_response(aiowsgi_live_server_session: LiveServer) -> None:
    # one server for the whole session: cheaper when many tests share it
    assert get(aiowsgi_live_server_session.make_url("/count")) == (200, b"1\n2\n3\n")


def test_two_configurations(aiowsgi_live_server_factory: LiveServerFactory) -> None:
    one_thread = aiowsgi_live_server_factory(flask_app, threads=1)
    assert get(one_thread.make_url("/divide/4")) == (200, b"25")


@pytest.mark.aiowsgi(raise_app_errors=False)
def test_a_failing_view_is_a_500(aiowsgi_live_server: LiveServer) -> None:
    # Without the marker the ZeroDivisionError raised in the view would also fail this
    # test at teardown, with the view's own traceback.
    status, _ = get(aiowsgi_live_server.make_url("/divide/0"))
    assert status == 500


# -- async tests: pytest-asyncio and aiohttp -------------------------------------------


@pytest.mark.asyncio
async def test_with_a_client(aiowsgi_client: ClientFactory) -> None:
    client = await aiowsgi_client(flask_app)
    async with client.post("/greet", data={"name": "Ada"}) as response:
        assert response.status == 200
        assert await response.json() == {"greeting": "Hello, Ada!"}


@pytest.mark.asyncio
async def test_with_a_server(aiowsgi_server: ServerFactory) -> None:
    import aiohttp

    server = await aiowsgi_server(flask_app)
    async with aiohttp.ClientSession() as session, session.get(server.make_url("/count")) as r:
        assert r.headers["Transfer-Encoding"] == "chunked"
        assert await r.text() == "1\n2\n3\n"


# -- unittest, or any script: the plain helper -----------------------------------------


class FlaskAppTest(unittest.TestCase):
    def test_index(self) -> None:
        with live_server(flask_app) as url:
            self.assertEqual(get(url + "/"), (200, b"Hello from Flask"))
