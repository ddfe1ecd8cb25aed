"""Prometheus metrics on a separate address: ``--metrics-bind 127.0.0.1:9100``.

The counters are the server's own (:meth:`aiowsgi.Server.stats`), read when Prometheus
scrapes, so the request path does nothing for them.  Under ``--workers`` the supervisor
serves them: it asks each worker for its counters over a socket pair made for the
purpose and labels every sample with the worker's slot (``worker="0"``...), so a
worker replaced in the same slot continues the series (counters restart at zero, which
``rate()`` understands).  The maintained client library, prometheus_client, is an
optional extra: ``pip install 'aiowsgi-server[metrics]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from .config import ConfigError, parse_bind

_HELP = {
    "connections": "Open client connections.",
    "requests_running": "Application calls running on a thread.",
    "requests_queued": "Requests waiting for a free thread.",
    "threads": "Threads in the application pool.",
    "threads_busy": "Threads running an application call.",
    "threads_abandoned": "Threads still running a request whose client got a 504.",
    "body_memory": "Bytes of request bodies held in memory.",
    "connections_refused": "Connections refused at max_connections, all told.",
    "requests_total": "Application calls started, all told.",
    "workers": "Worker processes serving.",
    "worker_restarts_total": "Workers started again after one exited, all told.",
}

# (labels, counters): one entry per process whose counters are shown
Samples = list[tuple[dict[str, str], dict[str, int]]]


def _is_counter(name: str) -> bool:
    return name.endswith(("_total", "_refused"))


class _Collector:
    def __init__(self, samples: Callable[[], Samples]) -> None:
        self._samples = samples

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families: dict[str, Any] = {}
        for labels, counters in self._samples():
            for name, value in counters.items():
                family = families.get(name)
                if family is None:
                    kind = CounterMetricFamily if _is_counter(name) else GaugeMetricFamily
                    family = families[name] = kind(
                        f"aiowsgi_{name.removesuffix('_total')}", _HELP.get(name, name),
                        labels=sorted(labels))
                family.add_metric([labels[key] for key in sorted(labels)], value)
        yield from families.values()


def start(bind: str, samples: Callable[[], Samples]) -> Callable[[], None]:
    """Serve the metrics at ``bind`` (HOST:PORT) from a thread; returns a stop function."""
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        raise ConfigError("metrics_bind", "needs prometheus_client: "
                          "pip install 'aiowsgi-server[metrics]'") from None
    where = parse_bind(bind)
    if where.kind != "tcp":
        raise ConfigError("metrics_bind", f"expected HOST:PORT, got {bind!r}")
    registry = CollectorRegistry()
    registry.register(_Collector(samples))
    try:
        server, thread = start_http_server(where.port, where.host, registry=registry)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {bind} for metrics: "
                                 f"{exc.strerror or exc}") from exc

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop


def answer_queries(loop: asyncio.AbstractEventLoop, fd: int,
                   stats: Callable[[], dict[str, int]]) -> Callable[[], None]:
    """In a worker: answer each query line on ``fd`` with the counters as a JSON line
    that echoes the query.  Returns a function that stops answering."""
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    pending = bytearray()

    def stop() -> None:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(sock)
        sock.close()

    def readable() -> None:
        try:
            data = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            stop()
            return
        pending.extend(data)
        while b"\n" in pending:
            query, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            reply = json.dumps({"query": query.decode("ascii", "replace"), "stats": stats()})
            with contextlib.suppress(OSError):  # the supervisor went away or stopped reading
                sock.send(reply.encode() + b"\n")
        if len(pending) > 4096:
            pending.clear()

    loop.add_reader(sock, readable)
    return stop


class WorkerChannel:
    """The supervisor's end of one worker's stats socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._sent = 0
        self._buffer = b""

    def query(self, timeout: float) -> dict[str, int] | None:
        """The worker's counters, or None if it does not answer within ``timeout``.

        Each query carries a number the answer echoes, so an answer that came too late
        for an earlier query is skipped rather than mistaken for this one.  Callers
        serialise their queries (one lock per channel).
        """
        self._sent += 1
        query = str(self._sent)
        deadline = time.monotonic() + timeout
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(query.encode() + b"\n")
            while True:
                while b"\n" in self._buffer:
                    line, _, self._buffer = self._buffer.partition(b"\n")
                    reply = json.loads(line)
                    if reply.get("query") == query:
                        return {str(k): int(v) for k, v in reply["stats"].items()}
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.sock.settimeout(left)
                data = self.sock.recv(65536)
                if not data:
                    return None
                self._buffer += data
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def close(self) -> None:
        self.sock.close()
