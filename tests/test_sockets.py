"""Where the server listens: several addresses, IPv6, Unix sockets, inherited sockets."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import signal
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from aiowsgi import Config, ConfigError, Server
from aiowsgi.config import Listen, parse_bind
from aiowsgi.connection import HTTPConnection

from .apps.echo import environ_echo
from .http import get_over, read_response
from .process import PID_APP, ServeProcess, app_module
from .waiting import wait_for

where = environ_echo("REMOTE_ADDR", "SERVER_NAME")


@pytest.mark.parametrize(("spec", "listen"), [
    ("127.0.0.1:8000", Listen("tcp", host="127.0.0.1", port=8000)),
    ("0.0.0.0:0", Listen("tcp", host="0.0.0.0", port=0)),
    ("localhost:80", Listen("tcp", host="localhost", port=80)),
    ("[::1]:8000", Listen("tcp", host="::1", port=8000)),
    ("unix:/run/app.sock", Listen("unix", path="/run/app.sock")),
    ("fd://3", Listen("fd", fd=3)),
])
def test_parse_bind(spec: str, listen: Listen) -> None:
    assert parse_bind(spec) == listen


@pytest.mark.parametrize("spec", ["8000", "host", ":8000", "::1:8000", "[::1:8000",
                                  "h:70000", "h:-1", "unix:", "fd://x", "fd://"])
def test_bad_bind_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"^bind: "):
        Config(bind=(spec,))


def test_bad_uds_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^uds_mode: "):
        Config(uds_mode="rw-rw----")


async def test_several_addresses() -> None:
    async with Server(where, bind=("127.0.0.1:0", "127.0.0.1:0")) as server:
        assert len(server.addresses) == 2
        for host, port in server.addresses:
            assert await get_over(await asyncio.open_connection(host, port)) == (
                b"127.0.0.1|127.0.0.1")


@pytest.mark.parametrize("how", ["port", "fd"])
async def test_tcp_nodelay_on_accepted_connections(how: str) -> None:
    """A response written in pieces must not wait on Nagle's algorithm: both loops set
    TCP_NODELAY on accepted TCP connections, asyncio's only if the socket says TCP."""
    options: dict[str, Any] = {"port": 0}
    if how == "fd":  # the server owns an inherited socket, and closes it
        options = {"fd": socket.create_server(("127.0.0.1", 0)).detach()}
    async with Server(where, **options) as server:
        reader, writer = await asyncio.open_connection(*server.addresses[0])
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader)).status == 200
            (conn,) = [o for o in gc.get_objects() if type(o) is HTTPConnection
                       and not o.transport.is_closing()
                       and o.transport.get_extra_info("sockname")[1] == server.port]
            sock = conn.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            writer.close()


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback on this machine")
async def test_ipv6() -> None:
    async with Server(where, bind=("[::1]:0",)) as server:
        host, port = server.addresses[0]
        assert host == "::1"
        assert server.url == f"http://[::1]:{port}"
        assert await get_over(await asyncio.open_connection("::1", port)) == b"::1|::1"


async def test_unix_socket_with_permissions(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    path.touch()  # a stale file is not a socket: refuse to remove it
    with pytest.raises(OSError, match=re.escape(f"cannot listen on unix:{path}")):
        async with Server(where, uds=str(path)):
            pass
    path.unlink()
    async with Server(where, uds=str(path), uds_mode="600") as server:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert server.urls == [f"unix:{path}"]
        assert await get_over(await asyncio.open_unix_connection(str(path))) == (
            f"|{path}".encode())
    # the server removes the file it bound, on every Python
    assert not path.exists()
    # a socket file left behind (by a process that died) is replaced on the next start
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    async with Server(where, bind=(f"unix:{path}",)):
        assert await get_over(await asyncio.open_unix_connection(str(path))) == (
            f"|{path}".encode())
    assert not path.exists()


async def test_an_inherited_unix_socket_keeps_its_file(tmp_path: Path) -> None:
    """A server on a socket it did not bind (a worker's, systemd's) leaves the file to
    its owner: the next server on the same socket must still be reachable."""
    path = tmp_path / "shared.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen()
    try:
        for _ in range(2):
            async with Server(where, fd=os.dup(sock.fileno())):
                assert await get_over(await asyncio.open_unix_connection(str(path))) == (
                    f"|{path}".encode())
            assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        sock.close()


async def test_inherited_socket() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    async with Server(where, fd=sock.detach()) as server:
        assert server.addresses == [("127.0.0.1", port)]
        assert await get_over(await asyncio.open_connection("127.0.0.1", port)) == (
            b"127.0.0.1|127.0.0.1")


def test_unix_socket_through_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "uapp.py").write_text(app_module("over a unix socket"))
    path = tmp_path / "app.sock"
    with ServeProcess("uapp:app", "--app-dir", str(tmp_path), "--uds", str(path),
                      "--uds-mode", "660") as srv:
        assert srv.address == f"unix:{path}"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660

        async def fetch() -> bytes:
            return await get_over(await asyncio.open_unix_connection(str(path)))

        assert asyncio.run(fetch()) == b"over a unix socket"
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0
    assert not path.exists()  # the server bound it, and removed it


def test_unix_socket_outlives_replaced_workers(tmp_path: Path) -> None:
    """The supervisor binds the socket; workers inherit it.  A worker that stops (here:
    every one, replaced on SIGHUP) leaves the file alone, on every Python; the supervisor
    removes it when it exits."""
    (tmp_path / "pidapp.py").write_text(PID_APP)
    path = tmp_path / "app.sock"

    def pid() -> int:
        async def fetch() -> bytes:
            return await get_over(await asyncio.open_unix_connection(str(path)))

        return int(asyncio.run(fetch()))

    with ServeProcess("pidapp:app", "--app-dir", str(tmp_path), "--uds", str(path),
                      "--workers", "2", "--no-access-log", ready="supervisor") as srv:
        before = srv.workers()
        assert pid() in before
        srv.signal(signal.SIGHUP)
        wait_for(lambda: len(srv.workers()) == 2 and not srv.workers() & before,
                 "every worker replaced, the old ones gone")
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert pid() not in before
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0
    assert not path.exists()
