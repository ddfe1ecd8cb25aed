"""HTTPS: a certificate made on the fly (trustme), client certificates, bad files."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import trustme

from aiowsgi import ConfigError, Server

from .http import read_response


def scheme(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["wsgi.url_scheme"].encode()]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    return str(certfile), str(keyfile)


async def fetch(server: Server, context: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection(server.host, server.port, ssl=context,
                                                   server_hostname="127.0.0.1")
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return (await read_response(reader)).body
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def test_https(ca: trustme.CA, server_files: tuple[str, str]) -> None:
    certfile, keyfile = server_files
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with Server(scheme, port=0, ssl_certfile=certfile, ssl_keyfile=keyfile) as server:
        assert server.url.startswith("https://127.0.0.1:")
        assert await fetch(server, client) == b"https"


async def test_client_certificates(ca: trustme.CA, server_files: tuple[str, str],
                                   tmp_path: Path) -> None:
    certfile, keyfile = server_files
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with Server(scheme, port=0, ssl_certfile=certfile, ssl_keyfile=keyfile,
                      ssl_ca_certs=str(ca_file)) as server:
        anonymous = ssl.create_default_context()
        ca.configure_trust(anonymous)
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            await fetch(server, anonymous)
        known = ssl.create_default_context()
        ca.configure_trust(known)
        ca.issue_cert("client@example").configure_cert(known)
        assert await fetch(server, known) == b"https"


async def test_bad_tls_files_are_config_errors(server_files: tuple[str, str],
                                               tmp_path: Path) -> None:
    certfile, _ = server_files
    with pytest.raises(ConfigError, match=r"^ssl_certfile: cannot load"):
        async with Server(scheme, port=0, ssl_certfile=str(tmp_path / "missing.pem")):
            pass
    with pytest.raises(ConfigError, match=r"^ssl_certfile: cannot load"):
        async with Server(scheme, port=0, ssl_certfile=certfile):  # no key anywhere
            pass
    with pytest.raises(ConfigError, match=r"^ssl_keyfile: needs ssl_certfile"):
        Server(scheme, ssl_keyfile="key.pem")


def test_https_through_the_command_line(ca: trustme.CA, server_files: tuple[str, str],
                                        tmp_path: Path) -> None:
    import signal
    import urllib.request

    from .process import SAFETY, ServeProcess

    certfile, keyfile = server_files
    (tmp_path / "tlsapp.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [environ['wsgi.url_scheme'].encode()]\n")
    with ServeProcess("tlsapp:app", "--app-dir", str(tmp_path), "--port", "0",
                      "--ssl-certfile", certfile, "--ssl-keyfile", keyfile) as srv:
        assert srv.address.startswith("https://127.0.0.1:")
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with urllib.request.urlopen(srv.address + "/", timeout=SAFETY, context=context) as r:
            assert r.read() == b"https"
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0
