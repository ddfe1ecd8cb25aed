"""Opening the listening sockets: shared by a server and by the ``--workers`` supervisor,
which opens them once and hands them to its workers, each its own where the system spreads
connections over sockets bound with SO_REUSEPORT."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import sys

from .config import Config, Listen, parse_bind

log = logging.getLogger("aiowsgi.error")


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
    return worker_sockets(config, 1)[0]


def worker_sockets(config: Config, count: int) -> list[list[socket.socket]]:
    """The listening sockets of ``count`` workers: item i holds worker i's, one per place.

    A TCP place gets a socket per worker when ``config.reuse_port`` is on, there are
    several workers and the system spreads connections over sockets bound with
    SO_REUSEPORT (Linux): each is bound with that option to the same address, and the
    kernel hashes every new connection to one of them, so each worker takes its share.
    Whoever calls this keeps them all: a worker that stops closes its copy only, so the
    connections queued on its socket wait for its successor, which inherits the same
    socket, instead of being reset with the queue of a socket closed.  Any other place (a
    Unix socket, an inherited ``fd://``, or SO_REUSEPORT not applying) is one socket that
    every worker shares.  OSError names the place that failed.
    """
    spread = count > 1 and config.reuse_port and reuse_port_spreads()
    slots: list[list[socket.socket]] = [[] for _ in range(count)]
    for where in places(config):
        try:
            if where.kind == "tcp" and spread:
                group = _reuse_port_group(where.host, where.port, config.backlog, count)
            else:
                group = [_place_socket(where, config)] * count
        except OSError as exc:
            for slot in slots:
                for opened in slot:
                    opened.close()
            raise OSError(exc.errno, f"cannot listen on {describe(where)}: "
                                     f"{exc.strerror or exc}") from exc
        for slot, sock in zip(slots, group, strict=True):
            slot.append(sock)
    return slots


def reuse_port_spreads() -> bool:
    """Whether sockets bound with SO_REUSEPORT to one address share its new connections
    out (Linux).  Elsewhere the option only lets them bind: the last one takes all."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _place_socket(where: Listen, config: Config) -> socket.socket:
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
        return sock
    if where.kind == "fd":
        return socket.socket(fileno=where.fd)
    return _listening(_tcp_socket(where.host), (where.host, where.port), config.backlog)


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


def _reuse_port_group(host: str, port: int, backlog: int,
                      count: int) -> list[socket.socket]:
    """``count`` sockets listening on ``host:port`` with SO_REUSEPORT (port 0: the one
    the kernel picks for the first); one shared socket if the system refuses the option."""
    try:
        first = _tcp_socket(host, reuse_port=True)
    except OSError as exc:
        log.warning("SO_REUSEPORT refused (%s): the workers share one socket on %s:%d",
                    exc.strerror or exc, host, port)
        return [_listening(_tcp_socket(host), (host, port), backlog)] * count
    group = [first]
    try:
        if port:
            # SO_REUSEPORT would bind next to another server of the same user and share
            # its connections: a bind without it refuses a port that anything holds
            probe = _tcp_socket(host)
            try:
                probe.bind((host, port))
            finally:
                probe.close()
        address = _listening(first, (host, port), backlog).getsockname()
        while len(group) < count:
            group.append(_listening(_tcp_socket(host, reuse_port=True), address, backlog))
    except OSError:
        for sock in group:
            sock.close()
        raise
    return group


def _tcp_socket(host: str, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket for ``host``, not bound yet, whose accepted connections asyncio knows
    to be TCP.

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
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        sock.close()
        raise
    return sock


def _listening(sock: socket.socket, address: tuple[object, ...],
               backlog: int) -> socket.socket:
    """``sock`` bound to ``address`` and listening; closed if it cannot be."""
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock
