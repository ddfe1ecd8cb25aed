"""Opening the listening sockets: shared by a server and by the ``--workers`` supervisor,
which opens them once and hands them to every worker."""

from __future__ import annotations

import contextlib
import os
import socket
import stat

from .config import Config, Listen, parse_bind


def places(config: Config) -> list[Listen]:
    """Where ``config`` says to listen: ``bind``, ``uds`` and ``fd``, else host and port."""
    found = [parse_bind(spec) for spec in config.bind]
    if config.uds:
        found.append(Listen("unix", path=config.uds))
    if config.fd >= 0:
        found.append(Listen("fd", fd=config.fd))
    return found or [Listen("tcp", host=config.host, port=config.port)]


def describe(where: Listen) -> str:
    if where.kind == "unix":
        return f"unix:{where.path}"
    if where.kind == "fd":
        return f"fd://{where.fd}"
    return f"{where.host}:{where.port}"


def bind_sockets(config: Config) -> list[socket.socket]:
    """Bound, listening sockets for every place; OSError names the place that failed."""
    sockets: list[socket.socket] = []
    for where in places(config):
        try:
            if where.kind == "unix":
                if os.path.exists(where.path) and stat.S_ISSOCK(os.stat(where.path).st_mode):
                    os.unlink(where.path)  # a stale socket from an earlier run
                sock = socket.socket(socket.AF_UNIX)
                try:
                    sock.bind(where.path)
                    if config.uds_mode:
                        os.chmod(where.path, int(config.uds_mode, 8))
                    sock.listen(config.backlog)
                except OSError:
                    sock.close()
                    raise
            elif where.kind == "fd":
                sock = socket.socket(fileno=where.fd)
            else:
                sock = _tcp_server(where.host, where.port, config.backlog)
        except OSError as exc:
            for opened in sockets:
                opened.close()
            raise OSError(exc.errno, f"cannot listen on {describe(where)}: "
                                     f"{exc.strerror or exc}") from exc
        sockets.append(sock)
    return sockets


SocketFile = tuple[str, int]  # a Unix socket's path and the inode it had when bound here


def socket_files(config: Config) -> list[SocketFile]:
    """The socket files that :func:`bind_sockets` created for ``config`` (inherited
    sockets excluded): whoever bound them removes them with :func:`remove_socket_files`
    when it closes, on every Python (3.13's asyncio would remove even inherited ones)."""
    files = []
    for where in places(config):
        if where.kind == "unix":
            with contextlib.suppress(OSError):
                files.append((where.path, os.stat(where.path).st_ino))
    return files


def remove_socket_files(files: list[SocketFile]) -> None:
    """Remove the socket files bound here, unless another socket has taken the path."""
    for path, inode in files:
        try:
            found = os.stat(path)
            if stat.S_ISSOCK(found.st_mode) and found.st_ino == inode:
                os.unlink(path)
        except OSError:
            pass


def _tcp_server(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket whose accepted connections asyncio knows to be TCP.

    ``socket.create_server`` leaves the protocol number 0, and asyncio's own loop sets
    TCP_NODELAY only on sockets whose ``proto`` says TCP: without it a response written
    in several pieces waits on Nagle's algorithm and the client's delayed ACK (~40 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock
