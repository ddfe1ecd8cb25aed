"""aiowsgi as a gunicorn worker, and max_requests."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from aiowsgi import Config, Server
from aiowsgi.gunicorn import config_from

from .apps.echo import hello
from .http import RawClient
from .process import PID_APP, SAFETY, ServeProcess, child_env, free_port, pid_at, wait_for

pytest.importorskip("gunicorn")


@contextlib.contextmanager
def gunicorn(tmp_path: Path, app: str, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """gunicorn serving ``app`` (from ``tmp_path``) with one aiowsgi worker: the process
    and its port.  Killed at the end if it still runs."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "aiowsgi.gunicorn.Worker", "-w", "1",
         "-b", f"127.0.0.1:{port}", *args, "--chdir", str(tmp_path), app],
        env=child_env({"HOME": str(tmp_path)}),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def get(port: int) -> int:
    """The pid of the worker that answers ``GET /`` (:data:`PID_APP`), asked again while
    the connection fails: gunicorn's arbiter binds only once it has started, and a worker
    that retires at max_requests may drop a connection it accepted (the tests count
    pids, not failures)."""
    answers: list[int] = []

    def answered() -> bool:
        try:
            answers.append(pid_at(port))
        except OSError:
            return False
        return True

    wait_for(answered, f"an answer on port {port}")
    return answers[0]


@pytest.fixture
def arbiter(tmp_path: Path) -> Iterable[tuple[subprocess.Popen[bytes], int]]:
    (tmp_path / "gapp.py").write_text(PID_APP)
    with gunicorn(tmp_path, "gapp:app", "--max-requests", "3", "--graceful-timeout",
                  "10") as running:
        yield running


def test_gunicorn_worker_serves_restarts_and_drains(
        arbiter: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = arbiter
    first = [get(port) for _ in range(3)]
    assert len(set(first)) == 1  # one worker served three requests...
    assert get(port) != first[0]  # ...and max_requests=3 made the arbiter start another
    before = get(port)
    proc.send_signal(signal.SIGHUP)  # graceful reload: a new worker
    wait_for(lambda: get(port) != before, "a new worker")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(SAFETY) == 0


def test_gunicorn_settings_map_to_options() -> None:
    class Cfg:
        threads, keepalive, graceful_timeout = 4, 2, 15
        worker_connections, limit_request_line, limit_request_fields = 500, 0, 50

    config = config_from(Cfg())
    assert (config.threads, config.keepalive_timeout, config.graceful_timeout) == (4, 2.0, 15.0)
    assert (config.max_connections, config.max_header_count) == (500, 50)
    # gunicorn's 0 means no limit: ours stays
    assert config.max_request_line == Config().max_request_line


async def test_max_requests_shuts_the_server_down_gracefully() -> None:
    async with Server(hello, port=0, max_requests=2) as server:
        client = await RawClient.connect(server.host, server.port)
        try:
            assert (await client.request()).status == 200
            second = await client.request()
            assert second.status == 200
            assert second.header("Connection") == "close"
            assert await client.closed_by_server()
        finally:
            await client.close()
        await server.serve_forever()  # returns: the server is shutting down by itself
        assert not server.is_serving


def test_max_requests_with_workers_hands_over_to_a_fresh_worker(tmp_path: Path) -> None:
    (tmp_path / "pidapp.py").write_text(PID_APP)
    with ServeProcess("pidapp:app", "--app-dir", str(tmp_path), "--port", "0", "--workers",
                      "2", "--max-requests", "5", "--no-access-log",
                      ready="supervisor serving") as srv:
        pids = [get(srv.port) for _ in range(30)]
        assert len(set(pids)) >= 4  # 30 requests, at most 5 per worker
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0


SLOW_APP = """
import os, time

def app(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"] or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def test_heartbeat_keeps_a_worker_with_a_slow_request_alive(tmp_path: Path) -> None:
    """gunicorn's --timeout kills a worker that stops reporting.  aiowsgi reports from its
    event loop, so a request that runs longer than the timeout on a thread does not get
    its worker killed (a sync gunicorn worker would be)."""
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    with gunicorn(tmp_path, "slowapp:app", "--timeout", "1") as (proc, port):
        worker = get(port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?2.5", timeout=SAFETY) as r:
            assert int(r.read()) == worker
        assert get(port) == worker  # the same worker: never killed for a missed heartbeat
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(SAFETY) == 0
