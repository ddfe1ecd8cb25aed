"""Prometheus metrics on a separate address: ``--metrics-bind 127.0.0.1:9100``.

The counters are the server's own (:meth:`aiowsgi.Server.stats`), read when Prometheus
scrapes, so the request path does nothing for them.  The maintained client library,
prometheus_client, is an optional extra: ``pip install 'aiowsgi[metrics]'``.
"""

from __future__ import annotations

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
}


class _Collector:
    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for name, value in self._stats().items():
            if name.endswith(("_total", "_refused")):
                yield CounterMetricFamily(f"aiowsgi_{name.removesuffix('_total')}",
                                          _HELP.get(name, name), value=value)
            else:
                yield GaugeMetricFamily(f"aiowsgi_{name}", _HELP.get(name, name), value=value)


def start(bind: str, stats: Callable[[], dict[str, int]]) -> Callable[[], None]:
    """Serve the metrics at ``bind`` (HOST:PORT) from a thread; returns a stop function."""
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        raise ConfigError("metrics_bind", "needs prometheus_client: "
                          "pip install 'aiowsgi[metrics]'") from None
    where = parse_bind(bind)
    if where.kind != "tcp":
        raise ConfigError("metrics_bind", f"expected HOST:PORT, got {bind!r}")
    registry = CollectorRegistry()
    registry.register(_Collector(stats))
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
