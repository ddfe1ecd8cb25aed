"""HTTPS: a certificate made on the fly (trustme), client certificates, bad files."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
import subprocess
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import trustme

from aiowsgi import ConfigError, Server

from .http import read_response
from .process import ServeProcess, run_aiowsgi
from .waiting import SAFETY


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


@pytest.fixture(scope="module")
def encrypted_key(ca: trustme.CA, server_files: tuple[str, str],
                  tmp_path_factory: pytest.TempPathFactory) -> str:
    """The server's private key, encrypted with the password 'secret'."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(Path(server_files[1]).read_bytes(), None)
    path = tmp_path_factory.mktemp("encrypted") / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"secret")))
    return str(path)


async def test_encrypted_key(ca: trustme.CA, server_files: tuple[str, str],
                             encrypted_key: str) -> None:
    certfile, _ = server_files
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with Server(scheme, port=0, ssl_certfile=certfile, ssl_keyfile=encrypted_key,
                      ssl_keyfile_password="secret") as server:
        assert await fetch(server, client) == b"https"
    # Without its password: an error naming the option, not OpenSSL asking on the terminal.
    with pytest.raises(ConfigError, match=r"^ssl_keyfile_password: the private key in "
                                          r".* is encrypted: give its password$"):
        async with Server(scheme, port=0, ssl_certfile=certfile, ssl_keyfile=encrypted_key):
            pass


def _run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``aiowsgi serve`` of an app that loads, on a port something else holds: a server
    started by mistake fails to bind (exit status 1) rather than serving forever."""
    (tmp_path / "tlsapp.py").write_text("def app(environ, start_response):\n"
                                        "    return []\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        return run_aiowsgi("serve", "tlsapp:app", "--app-dir", str(tmp_path),
                           "--port", str(taken.getsockname()[1]), *args)


@pytest.mark.parametrize(("option", "args"), [
    ("--ssl-keyfile-password", ["--ssl-keyfile", "{encrypted}"]),
    ("--ssl-certfile", ["--ssl-keyfile", "{encrypted}", "--ssl-keyfile-password", "wrong"]),
    ("--ssl-certfile", []),  # no key anywhere
    ("--ssl-ca-certs", ["--ssl-keyfile", "{key}", "--ssl-ca-certs", "{missing}"]),
    ("--ssl-ca-certs", ["--ssl-keyfile", "{key}", "--ssl-ca-certs", "{key}"]),  # not a CA
])
def test_unusable_tls_files_exit_2_naming_the_option(
        server_files: tuple[str, str], encrypted_key: str, tmp_path: Path, option: str,
        args: list[str]) -> None:
    certfile, keyfile = server_files
    names = {"encrypted": encrypted_key, "key": keyfile,
             "missing": str(tmp_path / "missing.pem")}
    result = _run_cli(tmp_path, "--ssl-certfile", certfile,
                      *(arg.format(**names) for arg in args))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"aiowsgi serve: error: argument {option}: "), (
        result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr


def test_https_through_the_command_line(ca: trustme.CA, server_files: tuple[str, str],
                                        tmp_path: Path) -> None:
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
