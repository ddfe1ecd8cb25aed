"""Where the server listens: several addresses, IPv6, Unix sockets, inherited sockets;
the sockets of --workers, one per worker with SO_REUSEPORT or shared."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import select
import signal
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiowsgi import Config, ConfigError, Server
from aiowsgi.config import Listen, parse_bind
from aiowsgi.connection import HTTPConnection
from aiowsgi.sockets import reuse_port_spreads, worker_sockets

from .apps.echo import environ_echo
from .http import get_over, read_response
from .process import PID_APP, ServeProcess, app_module
from .waiting import SAFETY, wait_for

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
                      "--workers", "2", "--no-access-log", ready="supervisor serving") as srv:
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


# -- the sockets of --workers: one each with SO_REUSEPORT, or shared ----------------------


def reuse_port(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT))


def listening(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


@contextlib.contextmanager
def opened(config: Config, count: int) -> Iterator[list[list[socket.socket]]]:
    """:func:`worker_sockets` for ``count`` workers, every socket closed at the end."""
    slots = worker_sockets(config, count)
    try:
        yield slots
    finally:
        for slot in slots:
            for sock in slot:
                sock.close()


needs_reuse_port = pytest.mark.skipif(not reuse_port_spreads(),
                                      reason="SO_REUSEPORT spreads connections on Linux only")


@needs_reuse_port
def test_each_worker_gets_its_own_socket_on_a_tcp_address() -> None:
    with opened(Config(port=0), 3) as slots:
        socks = [sock for (sock,) in slots]
        assert len({id(sock) for sock in socks}) == 3
        assert len({sock.getsockname() for sock in socks}) == 1  # port 0: one port for all
        assert all(reuse_port(sock) and listening(sock) for sock in socks)
        # the kernel gives each new connection to exactly one of them
        host, port = socks[0].getsockname()
        for _ in range(30):
            with socket.create_connection((host, port)):
                (ready,) = with_a_connection(socks)
                ready.accept()[0].close()


def with_a_connection(socks: list[socket.socket]) -> list[socket.socket]:
    """Those of ``socks`` with a connection in their queue, once one has."""
    readable, _, _ = select.select(socks, [], [], SAFETY)
    assert readable, "no connection came"
    return readable


@needs_reuse_port
def test_several_addresses_get_a_group_each(tmp_path: Path) -> None:
    """Per place: each TCP address its own group of sockets (port 0 twice: two ports);
    a Unix socket one socket shared by every worker."""
    binds = ("127.0.0.1:0", "127.0.0.1:0", f"unix:{tmp_path / 'app.sock'}")
    with opened(Config(bind=binds), 2) as slots:
        (a1, b1, u1), (a2, b2, u2) = slots
        assert a1 is not a2 and b1 is not b2 and u1 is u2
        assert a1.getsockname() == a2.getsockname() != b1.getsockname() == b2.getsockname()
        assert reuse_port(a1) and reuse_port(b2) and listening(u1)


@pytest.mark.parametrize("case", ["one worker", "reuse_port off", "inherited", "unix"])
def test_where_the_workers_share_one_socket(tmp_path: Path, case: str) -> None:
    config = Config(port=0, reuse_port=case != "reuse_port off")
    if case == "inherited":
        config = Config(fd=socket.create_server(("127.0.0.1", 0)).detach())
    elif case == "unix":
        config = Config(uds=str(tmp_path / "app.sock"))
    count = 1 if case == "one worker" else 3
    with opened(config, count) as slots:
        (sock,) = slots[0]
        assert all(slot == [sock] for slot in slots)
        assert listening(sock)
        if sock.family != socket.AF_UNIX:
            assert not reuse_port(sock)  # nobody else may bind next to it


@pytest.mark.parametrize("how", ["not linux", "no SO_REUSEPORT"])
def test_systems_where_so_reuseport_does_not_spread_share_one_socket(
        monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """macOS and the BSDs have SO_REUSEPORT, but give the last socket bound every
    connection; some systems have no such option."""
    if how == "not linux":
        monkeypatch.setattr(sys, "platform", "darwin")
    else:
        monkeypatch.delattr(socket, "SO_REUSEPORT", raising=False)
    assert not reuse_port_spreads()
    with opened(Config(port=0), 2) as slots:
        assert slots[0] == slots[1]


@needs_reuse_port
def test_a_system_that_refuses_so_reuseport_shares_one_socket(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(socket, "SO_REUSEPORT", 0x7FFF)  # an option no kernel knows
    with opened(Config(port=0), 2) as slots:
        assert slots[0] == slots[1]
    assert "SO_REUSEPORT refused (Protocol not available): the workers share one socket " \
           "on 127.0.0.1:0" in caplog.text


@needs_reuse_port
@pytest.mark.parametrize("holder", ["plain", "SO_REUSEPORT"])
def test_a_port_held_by_another_socket_is_refused(holder: str) -> None:
    """SO_REUSEPORT would let the workers' sockets bind next to another server of the
    same user (one started twice by mistake) and share its connections: refused, as
    without it."""
    with socket.socket() as other:
        if holder == "SO_REUSEPORT":
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(OSError, match=re.escape(
                f"cannot listen on 127.0.0.1:{port}: Address already in use")):
            worker_sockets(Config(port=port), 2)


def time_wait_on(port: int) -> bool:
    """Whether a connection from 127.0.0.1:``port`` is in TIME_WAIT (/proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "06" and local == f"0100007F:{port:04X}":
            return True
    return False


@needs_reuse_port
def test_a_port_just_released_is_taken_again() -> None:
    """The check for another holder does not refuse the port an earlier run left (its
    connections in TIME_WAIT): a restart binds at once, as with SO_REUSEADDR alone."""
    with opened(Config(port=0), 2) as slots:
        host, port = slots[0][0].getsockname()
        client = socket.create_connection((host, port))
        (ready,) = with_a_connection([sock for (sock,) in slots])
        server_side, _ = ready.accept()
        server_side.close()  # the server closes first: its end goes to TIME_WAIT
        client.close()
        wait_for(lambda: time_wait_on(port), "the connection in TIME_WAIT")
    with opened(Config(port=port), 2) as again:
        assert again[0][0].getsockname() == (host, port)
