import urllib.request

import pytest

from hello import application


def test_home(aiowsgi_live_server):  # sync: a server in a background thread
    with urllib.request.urlopen(aiowsgi_live_server.url + "/") as response:
        assert response.status == 200
        assert response.read() == b"Hello, world!\n"


@pytest.mark.asyncio  # pytest-asyncio's default (strict) mode asks for the mark
async def test_home_async(aiowsgi_client):  # async: pytest-asyncio and aiohttp
    client = await aiowsgi_client(application)  # an aiohttp.ClientSession on a new server
    async with client.get("/") as response:
        assert response.status == 200
        assert await response.text() == "Hello, world!\n"
