"""The demo application shipped in the package (``aiowsgi serve aiowsgi.demo:app``)."""

from __future__ import annotations

import hashlib

from aiowsgi import __version__
from aiowsgi.demo import app

from .conftest import StartServer
from .http import fetch


async def test_the_page_shows_the_request(start_server: StartServer) -> None:
    server = await start_server(app)
    status, headers, body = await fetch(server, "/?x=1", headers={"User-Agent": "demo-test"})
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert f"aiowsgi {__version__} is serving this page" in page
    assert "<td>x=1</td>" in page and "<td>demo-test</td>" in page


async def test_the_page_escapes_what_the_client_sent(start_server: StartServer) -> None:
    server = await start_server(app)
    status, _, body = await fetch(server, "/", headers={"User-Agent": "<script>x</script>"})
    assert status == 200
    assert b"<script>" not in body and b"&lt;script&gt;x&lt;/script&gt;" in body


async def test_stream_sends_ten_pieces(start_server: StartServer) -> None:
    server = await start_server(app)
    status, headers, body = await fetch(server, "/stream")
    assert status == 200 and headers["Transfer-Encoding"] == "chunked"
    assert body.decode().splitlines() == [f"piece {n} of 10" for n in range(1, 11)]


async def test_echo_counts_and_hashes_the_upload(start_server: StartServer) -> None:
    server = await start_server(app)
    data = bytes(range(256)) * 1000
    status, _, body = await fetch(server, "/echo", method="POST", data=data)
    assert status == 200
    assert body.decode() == f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}\n"


async def test_other_paths_and_methods_are_refused(start_server: StartServer) -> None:
    server = await start_server(app)
    assert (await fetch(server, "/nowhere"))[0] == 404
    status, headers, _ = await fetch(server, "/echo")
    assert status == 405 and headers["Allow"] == "POST"
    status, headers, _ = await fetch(server, "/", method="POST", data=b"x")
    assert status == 405 and headers["Allow"] == "GET"
    status, headers, body = await fetch(server, "/", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
