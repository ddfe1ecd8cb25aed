"""malloc_trim_threshold: freed request-sized buffers are reused, not faulted in again.

The server runs in a child process: mallopt is process-wide.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import sys
from typing import Any

import pytest

import aiowsgi.runner
import aiowsgi.server
from aiowsgi import allocator
from aiowsgi.config import Config

from .apps.echo import TOGETHER
from .process import SAFETY, ServeProcess

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt thresholds are glibc's")

CONNECTIONS = TOGETHER
ROUNDS = 50
BODY = b"p" * 64 * 1024
REQUEST = (b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY


def _minor_faults(pid: int) -> int:
    """Minor page faults of the whole process so far (field 10 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as file:
        return int(file.read().rsplit(")", 1)[1].split()[7])


def _post_rounds(port: int, rounds: int) -> None:
    """``rounds`` times: a 64 KiB POST on each of 16 keep-alive connections at once, then
    every echo read back whole."""
    conns = [socket.create_connection(("127.0.0.1", port), timeout=SAFETY)
             for _ in range(CONNECTIONS)]
    try:
        for _ in range(rounds):
            for conn in conns:
                conn.sendall(REQUEST)
            for conn in conns:
                got = b""
                while not (b"\r\n\r\n" in got and
                           len(got.split(b"\r\n\r\n", 1)[1]) >= len(BODY)):
                    data = conn.recv(1 << 20)
                    assert data, "the server closed the connection"
                    got += data
                assert got.startswith(b"HTTP/1.1 200 ")
                assert got.endswith(BODY)
    finally:
        for conn in conns:
            conn.close()


def _faults_per_request(*args: str, env: dict[str, str] | None = None) -> float:
    """Page faults per request of ``aiowsgi serve`` echoing 64 KiB POSTs, once warm."""
    environ = {k: v for k, v in os.environ.items()
               if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    environ.update(env or {})
    with ServeProcess("tests.apps.echo:together", "--port", "0", "--loop", "asyncio",
                      "--threads", str(CONNECTIONS), "--log-level", "info", "--no-access-log",
                      *args, env=environ) as server:
        _post_rounds(server.port, ROUNDS)
        before = _minor_faults(server.proc.pid)
        _post_rounds(server.port, ROUNDS)
        return (_minor_faults(server.proc.pid) - before) / (ROUNDS * CONNECTIONS)


@glibc_only
def test_request_buffers_are_reused_not_faulted_in() -> None:
    assert _faults_per_request() < 1.0


@glibc_only
@pytest.mark.parametrize("env", [
    {"MALLOC_TOP_PAD_": "0"},
    {"GLIBC_TUNABLES": "glibc.malloc.top_pad=0"},
], ids=["MALLOC_TOP_PAD_", "GLIBC_TUNABLES"])
def test_settings_in_the_environment_are_left_alone(env: dict[str, str]) -> None:
    """With glibc's static defaults (any malloc setting in the environment turns off its
    adaptive thresholds) every request faults its buffers in: the contrast that makes
    the test above mean something."""
    assert _faults_per_request(env=env) > 2.0  # 64 KiB in and out is 32 pages


def test_set_in_environment() -> None:
    assert not allocator.set_in_environment({})
    assert not allocator.set_in_environment({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"})
    assert allocator.set_in_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert allocator.set_in_environment({"MALLOC_TOP_PAD_": "0"})


def test_zero_leaves_the_allocator_alone() -> None:
    assert allocator.tune(0) is False


def test_run_tunes_with_the_configured_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    class Stop(Exception):
        pass

    def tune(threshold: int) -> bool:
        seen.append(threshold)
        raise Stop

    monkeypatch.setattr(allocator, "tune", tune)
    with pytest.raises(Stop):
        aiowsgi.runner.run(lambda environ, start_response: [], Config(
            port=0, malloc_trim_threshold=123_456, log_level="warning"))
    assert seen == [123_456]


def test_serve_leaves_the_allocator_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """An embedding program's allocator is its own: only run() tunes it."""

    def tune(threshold: int) -> Any:
        raise AssertionError("serve() must not tune the allocator")

    monkeypatch.setattr(allocator, "tune", tune)

    async def main() -> None:
        async with aiowsgi.server.Server(lambda environ, start_response: [], port=0):
            pass

    asyncio.run(main())
