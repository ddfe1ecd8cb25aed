"""--metrics-bind: Prometheus metrics on their own address."""

from __future__ import annotations

import os
import signal
import urllib.request
from pathlib import Path

import pytest

from aiowsgi import Config, ConfigError

from .process import PID_APP, ServeProcess, app_module, free_port
from .waiting import SAFETY, wait_for

pytest.importorskip("prometheus_client")


def test_metrics_endpoint(tmp_path: Path) -> None:
    (tmp_path / "mapp.py").write_text(app_module("ok"))
    metrics_port = free_port()
    with ServeProcess("mapp:app", "--app-dir", str(tmp_path), "--port", "0",
                      "--metrics-bind", f"127.0.0.1:{metrics_port}", "--no-access-log") as srv:
        for _ in range(3):
            assert srv.get() == b"ok"
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
])
def test_bad_metrics_bind(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^metrics_bind: .*" + message):
        Config(**options)  # type: ignore[arg-type]


def scrape(port: int) -> dict[str, float]:
    """The samples of a scrape: ``name{labels}`` -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SAFETY) as r:
        text = r.read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("aiowsgi_"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_of_every_worker(tmp_path: Path) -> None:
    """Under --workers the supervisor serves the metrics: one series per worker slot,
    a worker count and a restart counter; a stopped worker does not stall a scrape."""
    metrics_port = free_port()
    (tmp_path / "pidapp.py").write_text(PID_APP)
    with ServeProcess("pidapp:app", "--app-dir", str(tmp_path), "--port", "0",
                      "--workers", "2", "--no-access-log",
                      "--metrics-bind", f"127.0.0.1:{metrics_port}", ready="supervisor serving",
                      new_session=True) as server:
        served = [server.get() for _ in range(10)]
        samples = scrape(metrics_port)
        assert samples["aiowsgi_workers"] == 2
        assert samples["aiowsgi_worker_restarts_total"] == 0
        per_worker = {key: value for key, value in samples.items()
                      if key.startswith("aiowsgi_requests_total{")}
        assert set(per_worker) == {'aiowsgi_requests_total{worker="0"}',
                                   'aiowsgi_requests_total{worker="1"}'}
        assert sum(per_worker.values()) == len(served)
        assert samples['aiowsgi_threads{worker="0"}'] == 8

        victim = max(server.workers())
        os.kill(victim, signal.SIGSTOP)  # alive but deaf: the scrape goes on without it
        try:
            samples = scrape(metrics_port)
            assert len([key for key in samples if key.startswith("aiowsgi_threads{")]) == 1
        finally:
            os.kill(victim, signal.SIGCONT)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: scrape(metrics_port)["aiowsgi_worker_restarts_total"] == 1,
                 "the restart to show")
        wait_for(lambda: len([key for key in scrape(metrics_port)
                              if key.startswith("aiowsgi_threads{")]) == 2,
                 "the new worker's series")
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
