"""``examples/falcon_app.py``, served by aiowsgi over real HTTP: every route answers as its
docstring says, and the streaming one is sent chunked, as it is produced."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from email.message import Message

import falcon
import pytest

from aiowsgi.testing import LiveServer, LiveServerFactory
from examples.falcon_app import app

from ..waiting import SAFETY


@pytest.fixture
def server(aiowsgi_live_server_factory: LiveServerFactory) -> LiveServer:
    return aiowsgi_live_server_factory(app)


def get(url: str) -> tuple[int, Message, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=SAFETY) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def test_hello(server: LiveServer) -> None:
    status, headers, body = get(server.make_url("/"))
    assert (status, body) == (200, b"Hello from Falcon")
    assert headers["Content-Type"] == falcon.MEDIA_TEXT


def test_json(server: LiveServer) -> None:
    status, headers, body = get(server.make_url("/greet/Ada%20Lovelace"))
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"greeting": "Hello, Ada Lovelace!"}


def test_streamed(server: LiveServer) -> None:
    status, headers, body = get(server.make_url("/count?n=5"))
    assert (status, body) == (200, b"1\n2\n3\n4\n5\n")
    assert headers["Transfer-Encoding"] == "chunked"
    assert headers["Content-Length"] is None


def test_streamed_default_and_bad_count(server: LiveServer) -> None:
    assert get(server.make_url("/count"))[::2] == (200, b"1\n2\n3\n")
    assert get(server.make_url("/count?n=lots"))[0] == 400


def test_not_found(server: LiveServer) -> None:
    assert get(server.make_url("/nowhere"))[0] == 404

