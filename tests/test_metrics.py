"""--metrics-bind: Prometheus metrics on their own address."""

from __future__ import annotations

import signal
import socket
import urllib.request
from pathlib import Path

import pytest

from aiowsgi import Config, ConfigError

from .process import SAFETY, ServeProcess

pytest.importorskip("prometheus_client")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_metrics_endpoint(tmp_path: Path) -> None:
    (tmp_path / "mapp.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'ok']\n")
    metrics_port = free_port()
    with ServeProcess("mapp:app", "--app-dir", str(tmp_path), "--port", "0",
                      "--metrics-bind", f"127.0.0.1:{metrics_port}", "--no-access-log") as srv:
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/", timeout=SAFETY) as r:
                assert r.read() == b"ok"
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=SAFETY) as r:
            text = r.read().decode()
        assert "aiowsgi_requests_total 3.0" in text
        assert "# TYPE aiowsgi_connections gauge" in text
        assert "aiowsgi_threads 8.0" in text
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0


@pytest.mark.parametrize(("options", "message"), [
    ({"metrics_bind": "9100"}, "expected HOST:PORT"),
    ({"metrics_bind": "unix:/tmp/m.sock"}, "expected HOST:PORT"),
    ({"metrics_bind": "127.0.0.1:9100", "workers": 2}, "not with --workers yet"),
])
def test_bad_metrics_bind(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^metrics_bind: .*" + message):
        Config(**options)  # type: ignore[arg-type]
