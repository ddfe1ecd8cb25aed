#!/usr/bin/env python3
"""The benchmark: aiowsgi against other WSGI servers, scenario by scenario.

Each server is started as a subprocess pinned to one CPU (``taskset``), loaded
from another CPU with ``wrk`` (or, for 16 MiB responses, this script's own bulk
client), then stopped again.  Rounds are
interleaved (round 1 runs every scenario on every server, then round 2, ...)
and the median of the rounds is reported per scenario and server.  The output
is a markdown table per scenario plus a summary of the targets of the
performance issue (pass/fail), on stdout and, with ``--out DIR``, in
``results.md``, ``results.json`` and ``results.png`` there.  Progress and
diagnostics go to stderr.

Usage: python bench/run.py [--scenarios a,b] [--servers a,b] [--duration S]
                           [--rounds N] [--out DIR] ...

Exit status: 0 if every started server completed every round, 1 if any round
failed (the others still ran and are reported), 2 for setup/usage errors.

Standard library only, plus matplotlib for the chart (skipped without it).
Linux only (``/proc``, ``taskset``, ``MSG_TRUNC``).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO_ROOT))

from bench import apps, frameworks, idle, mixapps  # noqa: E402

HOST = "127.0.0.1"
MIB = 1024 * 1024

READY_TIMEOUT = 30.0  # seconds a server gets to answer its first request
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
WRK_GRACE = 30.0  # seconds wrk may run beyond its -d before it is killed
WRK_TIMEOUT = "10s"  # wrk --timeout: a response slower than this counts as an error
PROBE_TIMEOUT = 10.0  # seconds one probe request may take once connected
STARTUP_POLL = 0.002  # seconds between connection attempts when timing a start
SAMPLE_INTERVAL = 0.05  # seconds between RSS samples during a measured run
FAMILY_REFRESH = 1.0  # seconds between scans of /proc for the server's children

BUSY_LOAD = 1.0  # 1-min load average above which the report carries a warning
CLIENT_BOUND = 90.0  # client CPU % from which a figure measures the client, not the server

WAITRESS = "waitress"
GTHREAD = "gunicorn-gthread"
UVICORN_ASGI = "uvicorn-asgi"
CEILING = "ceiling"
# aiowsgi as users run it (its access log on, written to the server's stderr, a file
# here) and with --no-access-log, as the other servers run.
AIOWSGI_UVLOOP = "aiowsgi-uvloop"
AIOWSGI_ASYNCIO = "aiowsgi-asyncio"
AIOWSGI_UVLOOP_NO_LOG = "aiowsgi-uvloop-no-access-log"
AIOWSGI_ASYNCIO_NO_LOG = "aiowsgi-asyncio-no-access-log"


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    # "load": wrk or the bulk client; "idle": bench/idle.py; "startup": time to first answer.
    kind: str
    # The application every server runs for this scenario (MODULE:ATTRIBUTE).
    app: str
    title: str
    connections: int = 0
    method: str = "GET"
    request_body: bytes = b""
    response_size: int = 0  # body bytes of one answer (0: not fixed, not checked)
    # Large responses: loaded by the bulk client (unless --bulk-client wrk).
    bulk: bool = False
    path: str = "/"  # the request target
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request (wrk -H)
    expect: bytes = b""  # the answer must contain these bytes
    requires: tuple[str, ...] = ()  # modules the app needs (else: skipped)


POST_BODY = b"x" * apps.POST_SIZE


# cpu: half on /slow, half on /fast.  2 on /slow keep the server's CPU busy (the GIL lets
# one thread run at a time) and leave threads free: no request waits for a thread, so a
# fast request waits for the GIL and the server's own scheduling, nothing else.
CPU_CONNECTIONS = 4
SLOW_CLIENTS = 200  # slow: half download, half upload (bench/slowclients.py)


def make_scenarios(hello_connections: int, cpu_connections: int = CPU_CONNECTIONS,
                   slow_clients: int = SLOW_CLIENTS) -> tuple[Scenario, ...]:
    return (
        Scenario("hello", "load", "bench.apps:hello",
                 f"Hello world, {hello_connections} connections",
                 connections=hello_connections, response_size=len(apps.HELLO_BODY)),
        Scenario("latency", "load", "bench.apps:hello", "Hello world, 1 connection (latency)",
                 connections=1, response_size=len(apps.HELLO_BODY)),
        Scenario("stream", "load", "bench.apps:stream",
                 "16 MiB generator response in 64 KiB pieces, 4 connections",
                 connections=4, response_size=apps.STREAM_SIZE, bulk=True),
        Scenario("file", "load", "bench.apps:file_wrapper",
                 "16 MiB file through wsgi.file_wrapper, 4 connections",
                 connections=4, response_size=apps.STREAM_SIZE, bulk=True),
        Scenario("post", "load", "bench.apps:echo", "64 KiB POST echoed back, 16 connections",
                 connections=16, method="POST", request_body=POST_BODY,
                 response_size=len(POST_BODY)),
        Scenario("chunks", "load", "bench.apps:chunks",
                 "Generator of 1,000 100-byte pieces (100 KB), 16 connections",
                 connections=16, response_size=apps.CHUNKS_COUNT * apps.CHUNKS_SIZE),
        Scenario("idle", "idle", "bench.apps:hello", "Idle keep-alive connections (aiowsgi)",
                 response_size=len(apps.HELLO_BODY)),
        Scenario("startup", "startup", "bench.apps:hello",
                 "Start-up: spawn to first answered request",
                 response_size=len(apps.HELLO_BODY)),
        *framework_scenarios(),
        *mix_scenarios(hello_connections, cpu_connections, slow_clients),
    )  # fmt: skip


def mix_scenarios(hello_connections: int, cpu_connections: int,
                  slow_clients: int) -> tuple[Scenario, ...]:
    """The mixed loads (``bench/mixapps.py``), run by :func:`bench_cpu` and :func:`bench_slow`."""
    half = cpu_connections // 2
    return (
        Scenario("cpu", "cpu", "bench.mixapps:cpu",
                 f"CPU-heavy views: {half} connections on /slow (~{mixapps.CPU_MS:g} ms of "
                 f"Python), {cpu_connections - half} on /fast (hello), "
                 f"{mixapps.THREADS} app threads", connections=cpu_connections,
                 response_size=len(apps.HELLO_BODY)),
        Scenario("slow", "slow", "bench.mixapps:slow",
                 f"Hello world, {hello_connections} connections, next to {slow_clients} slow "
                 "clients (1 MiB down or up at 64 KiB/s)",
                 connections=hello_connections, response_size=len(apps.HELLO_BODY)),
    )  # fmt: skip


# -- real frameworks: unmodified Flask and Django apps (bench/frameworks/) ----------

FRAMEWORK_CONNECTIONS = 64
FRAMEWORK_SCENARIOS = ("flask", "django")


def framework_scenarios() -> tuple[Scenario, ...]:
    return (
        Scenario("flask", "load", frameworks.FLASK_APP,
                 f"Flask JSON API (jsonify), {FRAMEWORK_CONNECTIONS} connections",
                 connections=FRAMEWORK_CONNECTIONS, path=frameworks.FLASK_PATH,
                 expect=frameworks.FLASK_EXPECT, requires=("flask",)),
        Scenario("django", "load", frameworks.DJANGO_APP,
                 f"Django page: template, ORM query on SQLite, DB session, "
                 f"{FRAMEWORK_CONNECTIONS} connections",
                 connections=FRAMEWORK_CONNECTIONS, path=frameworks.DJANGO_PATH,
                 headers=frameworks.DJANGO_HEADERS, expect=frameworks.DJANGO_EXPECT,
                 requires=("django",)),
    )  # fmt: skip


def prepare_django(args: argparse.Namespace) -> str | None:
    """Create the django scenario's SQLite database in the run's directory; None or why not.

    A subprocess (``bench.frameworks.django_site.prepare``), so that this script never
    imports Django.  The servers find the file through ``BENCH_DJANGO_DB`` (server_env).
    """
    log(f"django: preparing the database {args.django_db}")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.frameworks.django_site.prepare"],
            cwd=REPO_ROOT, env=server_env(args), capture_output=True, text=True,
            timeout=READY_TIMEOUT * 4, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "database not prepared: timed out"
    if done.returncode != 0:
        log((done.stderr or done.stdout).strip()[-2000:])
        return f"database not prepared: exit status {done.returncode}"
    return None


SCENARIO_NAMES = tuple(s.name for s in make_scenarios(64))
WSGI_SCENARIOS = frozenset(SCENARIO_NAMES) - {"idle"}
# where aiowsgi also runs with --no-access-log: what the access log costs
NO_LOG_SCENARIOS = frozenset({"hello", "latency"})


# --------------------------------------------------------------------------
# Server definitions
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    name: str
    # Top-level modules that must be importable for the server to run.
    requires: tuple[str, ...]
    # Distribution whose version is shown in the report.
    dist: str
    # Builds the command line (without taskset) for a port and an app.
    argv: Callable[[str, str], list[str]]
    # The scenarios it takes part in.
    scenarios: frozenset[str] = WSGI_SCENARIOS
    # For the idle scenario: the --loop given to bench/idle.py.
    idle_loop: str | None = None


def _py(*args: str) -> list[str]:
    return [sys.executable, *args]


def _aiowsgi(name: str, loop: str, scenarios: frozenset[str], *options: str) -> Server:
    """aiowsgi on ``loop``, with its defaults but ``options``."""
    return Server(
        name,
        ("aiowsgi", "uvloop") if loop == "uvloop" else ("aiowsgi",),
        "aiowsgi",
        lambda port, app: _py("-m", "aiowsgi", "serve", app, "--host", HOST, "--port", port,
                              "--loop", loop, *options),
        scenarios,
        idle_loop=loop if "idle" in scenarios else None,
    )


SERVERS: tuple[Server, ...] = (
    _aiowsgi(AIOWSGI_UVLOOP, "uvloop", WSGI_SCENARIOS | {"idle"}),
    _aiowsgi(AIOWSGI_ASYNCIO, "asyncio", WSGI_SCENARIOS | {"idle"}),
    _aiowsgi(AIOWSGI_UVLOOP_NO_LOG, "uvloop", NO_LOG_SCENARIOS, "--no-access-log"),
    _aiowsgi(AIOWSGI_ASYNCIO_NO_LOG, "asyncio", NO_LOG_SCENARIOS, "--no-access-log"),
    Server(
        WAITRESS,
        ("waitress",),
        "waitress",
        # Default of 4 worker threads.
        lambda port, app: _py(
            "-m", "waitress", f"--host={HOST}", f"--port={port}", app,
        ),
    ),
    Server(
        GTHREAD,
        ("gunicorn",),
        "gunicorn",
        lambda port, app: _py(
            "-m", "gunicorn", "-k", "gthread", "--threads", "4", "-w", "1",
            "-b", f"{HOST}:{port}", "--log-level", "warning", app,
        ),
    ),
    Server(
        "uvicorn-wsgi",
        # uvicorn wraps WSGI apps with a2wsgi when it is installed (its own
        # WSGI middleware is deprecated), so a2wsgi is part of this entry.
        ("uvicorn", "a2wsgi"),
        "uvicorn",
        lambda port, app: _py(
            "-m", "uvicorn", "--interface", "wsgi",
            "--host", HOST, "--port", port,
            "--log-level", "warning", "--no-access-log", app,
        ),
    ),
    Server(
        "granian",
        ("granian",),
        "granian",
        lambda port, app: _py(
            "-m", "granian", "--interface", "wsgi",
            "--host", HOST, "--port", port, "--workers", "1",
            "--log-level", "warning", "--no-access-log", app,
        ),
    ),
    # Reference points, hello scenario only: a bare ASGI app on uvicorn's fastest
    # stack, and canned bytes from an asyncio Protocol (the ceiling of Python on uvloop).
    Server(
        UVICORN_ASGI,
        ("uvicorn", "uvloop", "httptools"),
        "uvicorn",
        lambda port, app: _py(
            "-m", "uvicorn", "--interface", "asgi3", "--loop", "uvloop", "--http", "httptools",
            "--host", HOST, "--port", port,
            "--log-level", "warning", "--no-access-log", "bench.apps:hello_asgi",
        ),
        frozenset({"hello"}),
    ),
    Server(
        CEILING,
        ("uvloop",),
        "uvloop",
        lambda port, app: _py("-m", "bench.ceiling", "--host", HOST, "--port", port),
        frozenset({"hello"}),
    ),
)  # fmt: skip

SERVERS_BY_NAME = {s.name: s for s in SERVERS}
REFERENCE_SERVERS = frozenset({UVICORN_ASGI, CEILING})


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests_per_sec: float
    p50_ms: float | None
    p99_ms: float | None
    requests: int | None
    non_2xx_3xx: int
    socket_errors: dict[str, int]
    transfer_per_sec: float | None = None  # bytes/s as wrk counts them (heads included)

    @property
    def socket_error_total(self) -> int:
        return sum(self.socket_errors.values())


@dataclass
class RoundResult:
    round: int
    ok: bool
    wrk: WrkResult | None = None
    # Sum over the server process and its children, sampled during the measured run.
    rss_peak_kib: int | None = None
    # Sum of the processes' own peaks (VmHWM) at the end of the run, start-up included.
    rss_hwm_kib: int | None = None
    server_cpu_percent: float | None = None  # of one CPU, server and children
    wrk_cpu_percent: float | None = None  # the load generator (wrk or the bulk client)
    # Whole-CPU busy time (all processes, interrupts) of the two pinned CPUs.
    server_core_busy_percent: float | None = None
    client_core_busy_percent: float | None = None
    client: str | None = None  # "wrk" or "bulk"
    # Lines the server logged at ERROR/CRITICAL (or tracebacks) while it ran.
    log_errors: int = 0
    log_excerpt: str | None = None
    file_wrapper: str | None = None  # file scenario: "server" or "app" (X-File-Wrapper)
    startup_ms: list[float] = field(default_factory=list)
    idle: dict[str, Any] | None = None
    mix: dict[str, Any] | None = None  # the cpu and slow scenarios' own figures
    error: str | None = None
    output_tail: str | None = None

    def metric(self, scenario: Scenario, name: str) -> float | None:
        w = self.wrk
        if name == "rps":
            return w.requests_per_sec if w else None
        if name in ("p50_ms", "p99_ms"):
            return getattr(w, name) if w else None
        if name == "mib_s":
            return w.requests_per_sec * scenario.response_size / MIB if w else None
        if name == "rss_peak_mib":
            return None if self.rss_peak_kib is None else self.rss_peak_kib / 1024
        if name == "server_cpu":
            return self.server_cpu_percent
        if name == "wrk_cpu":
            return self.wrk_cpu_percent
        if name == "server_core":
            return self.server_core_busy_percent
        if name == "client_core":
            return self.client_core_busy_percent
        if name == "startup_ms":
            return statistics.median(self.startup_ms) if self.startup_ms else None
        if name.startswith("idle_"):
            value = (self.idle or {}).get(name[5:])
            return None if value is None else float(value)
        if name.startswith("mix_"):
            value = (self.mix or {}).get(name[4:])
            return None if value is None else float(value)
        raise KeyError(name)


@dataclass
class Entry:
    """One server in one scenario: its rounds."""

    scenario: Scenario
    server: str
    command: list[str]
    version: str | None
    skipped: str | None = None
    rounds: list[RoundResult] = field(default_factory=list)

    def ok_rounds(self) -> list[RoundResult]:
        return [r for r in self.rounds if r.ok]

    def median(self, name: str) -> float | None:
        if name == "startup_ms":  # every start of every round counts once
            pooled = [ms for r in self.ok_rounds() for ms in r.startup_ms]
            return statistics.median(pooled) if pooled else None
        values = [r.metric(self.scenario, name) for r in self.ok_rounds()]
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    def non_2xx_3xx(self) -> int:
        return sum(r.wrk.non_2xx_3xx for r in self.ok_rounds() if r.wrk)

    def socket_errors(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for r in self.ok_rounds():
            for kind, n in (r.wrk.socket_errors if r.wrk else {}).items():
                total[kind] = total.get(kind, 0) + n
        return total

    def has_errors(self) -> bool:
        return bool(
            any(not r.ok for r in self.rounds) or self.non_2xx_3xx() or self.socket_errors()
        )

    def file_wrapper(self) -> str | None:
        seen = {r.file_wrapper for r in self.ok_rounds() if r.file_wrapper}
        return "/".join(sorted(seen)) or None


@dataclass
class Results:
    scenarios: list[Scenario]
    servers: list[Server]
    entries: dict[tuple[str, str], Entry] = field(default_factory=dict)

    def get(self, scenario: str, server: str) -> Entry | None:
        entry = self.entries.get((scenario, server))
        return None if entry is None or entry.skipped else entry

    def median(self, scenario: str, server: str, name: str) -> float | None:
        entry = self.get(scenario, server)
        return entry.median(name) if entry else None

    def in_scenario(self, scenario: str) -> list[Entry]:
        return [e for (sc, _), e in self.entries.items() if sc == scenario]


# --------------------------------------------------------------------------
# wrk output parsing
# --------------------------------------------------------------------------

_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_BYTE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_RPS_RE = re.compile(r"^Requests/sec:\s+([0-9.]+)\s*$", re.MULTILINE)
_TRANSFER_RE = re.compile(r"^Transfer/sec:\s+([0-9.]+)([KMGT]?B)\s*$", re.MULTILINE)
_PCT_RE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_REQS_RE = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_NON2XX_RE = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", re.MULTILINE)
_SOCKERR_RE = re.compile(
    r"^\s*Socket errors:\s+connect (\d+), read (\d+), write (\d+), timeout (\d+)",
    re.MULTILINE,
)


def to_ms(value: str, unit: str) -> float:
    """Convert a wrk time figure (e.g. ``"1.23", "ms"``) to milliseconds."""
    return float(value) * _TIME_UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    """Parse the text printed by ``wrk --latency``."""
    rps = _RPS_RE.search(output)
    if rps is None:
        raise ValueError("no 'Requests/sec:' line in wrk output")
    pct = {m.group(1): to_ms(m.group(2), m.group(3)) for m in _PCT_RE.finditer(output)}
    reqs = _REQS_RE.search(output)
    non2xx = _NON2XX_RE.search(output)
    sockerr = _SOCKERR_RE.search(output)
    transfer = _TRANSFER_RE.search(output)
    socket_errors: dict[str, int] = {}
    if sockerr is not None:
        kinds = ("connect", "read", "write", "timeout")
        socket_errors = {k: int(v) for k, v in zip(kinds, sockerr.groups(), strict=True) if int(v)}
    return WrkResult(
        requests_per_sec=float(rps.group(1)),
        p50_ms=pct.get("50"),
        p99_ms=pct.get("99"),
        requests=int(reqs.group(1)) if reqs else None,
        non_2xx_3xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=socket_errors,
        transfer_per_sec=(
            float(transfer.group(1)) * _BYTE_UNITS[transfer.group(2)] if transfer else None
        ),
    )


# --------------------------------------------------------------------------
# /proc: the server's processes, their RSS and CPU time
# --------------------------------------------------------------------------

_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        return f.read().rsplit(")", 1)[1].split()


def family(pid: int) -> list[int]:
    """``pid`` and all its descendants (from the ppid of every process in /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [pid], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * _PAGE_KIB


def hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime, proc(5)


def _sum_over(pids: Iterable[int], read: Callable[[int], float]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += read(pid)
    return total


class Sampler:
    """Samples the RSS of a server and its children in a thread; measures their CPU use."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pids = family(pid)
        self.peak_kib = 0
        self.hwm_kib: int | None = None
        self.cpu_percent: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._cpu0 = 0.0
        self._t0 = 0.0

    def __enter__(self) -> Sampler:
        self._cpu0 = _sum_over(self.pids, cpu_seconds)
        self._t0 = time.monotonic()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        elapsed = time.monotonic() - self._t0
        cpu = _sum_over(self.pids, cpu_seconds) - self._cpu0
        if elapsed > 0:
            self.cpu_percent = cpu / elapsed * 100
        self.hwm_kib = int(_sum_over(self.pids, hwm_kib))

    def _sample(self) -> None:
        self.peak_kib = max(self.peak_kib, int(_sum_over(self.pids, rss_kib)))

    def _run(self) -> None:
        next_refresh = time.monotonic() + FAMILY_REFRESH
        while not self._stop.wait(SAMPLE_INTERVAL):
            if time.monotonic() >= next_refresh:
                self.pids = sorted(set(self.pids) | set(family(self.pid)))
                next_refresh = time.monotonic() + FAMILY_REFRESH
            self._sample()


# --------------------------------------------------------------------------
# Process handling
# --------------------------------------------------------------------------


class ServerFailed(Exception):
    def __init__(self, message: str, output_tail: str | None = None) -> None:
        super().__init__(message)
        self.output_tail = output_tail


class WrongAnswer(Exception):
    """The server answered, but not what the app sends."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def is_installed(server: Server) -> bool:
    # Servers run with cwd=REPO_ROOT, so an in-tree aiowsgi counts as installed.
    return all(importlib.util.find_spec(mod) is not None for mod in server.requires)


def dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None




def request(port: int, scenario: Scenario, timeout: float = PROBE_TIMEOUT) -> str | None:
    """One request as the scenario makes them; checks the answer, returns X-File-Wrapper.

    Raises OSError / HTTPException when the server is not (yet) reachable and
    WrongAnswer when it answers something else than the app sends.
    """
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Connection": "close", **dict(scenario.headers)}
        if scenario.request_body:
            headers["Content-Type"] = "application/octet-stream"
        conn.request(scenario.method, scenario.path, body=scenario.request_body or None,
                     headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise WrongAnswer(f"status {resp.status} {resp.reason}: {body[:200]!r}")
    if scenario.response_size and len(body) != scenario.response_size:
        raise WrongAnswer(f"{len(body)} body bytes, expected {scenario.response_size}")
    if scenario.expect not in body:
        raise WrongAnswer(f"no {scenario.expect!r} in the body {body[:200]!r}")
    expected = scenario.request_body or None
    if scenario.app == "bench.apps:hello":
        expected = apps.HELLO_BODY
    if expected is not None and body != expected:
        raise WrongAnswer(f"unexpected body {body[:40]!r}")
    return resp.getheader("X-File-Wrapper")


def wait_ready(
    proc: subprocess.Popen[bytes],
    port: int,
    log_file: IO[bytes],
    scenario: Scenario,
    interval: float = 0.1,
    start: float | None = None,
) -> tuple[float, str | None]:
    """Poll until the server answers the scenario's request correctly.

    Returns the seconds since ``start`` (default: now) and its X-File-Wrapper header.
    """
    start = time.perf_counter() if start is None else start
    deadline = start + READY_TIMEOUT
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(
                f"exited with status {proc.returncode} before answering",
                idle.tail(log_file),
            )
        try:
            file_wrapper = request(port, scenario)
        except WrongAnswer as exc:
            raise ServerFailed(f"wrong answer: {exc}", idle.tail(log_file)) from exc
        except (OSError, http.client.HTTPException):
            time.sleep(interval)
            continue
        return time.perf_counter() - start, file_wrapper
    raise ServerFailed(
        f"did not answer on {HOST}:{port} within {READY_TIMEOUT:.0f} s",
        idle.tail(log_file),
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server we started, SIGKILL it after STOP_TIMEOUT, reap it.

    The server was started in its own session, so its process group id is its
    pid; if workers it forked outlive a SIGKILLed parent, that group (only
    processes descended from our child) is killed as a last resort.
    """
    pid = proc.pid
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log(f"  pid {pid} still up {STOP_TIMEOUT:.0f} s after SIGTERM; SIGKILL")
            proc.kill()
            proc.wait()
    # Orphaned workers (e.g. gunicorn/granian children) of our own session.
    deadline = time.monotonic() + STOP_TIMEOUT
    while _group_alive(pid):
        if time.monotonic() >= deadline:
            log(f"  leftover processes in group {pid}; SIGKILL")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            return
        time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def server_env(args: argparse.Namespace) -> dict[str, str]:
    env = idle.server_env()
    env[apps.FILE_ENV] = str(args.file_path)
    env[frameworks.DJANGO_DB_ENV] = str(args.django_db)
    return env


def spawn(
    args: argparse.Namespace, server: Server, port: int, app: str, log_file: IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["taskset", "-c", str(args.server_cpu), *server.argv(str(port), app)],
        cwd=REPO_ROOT,
        env=server_env(args),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def run_wrk(
    args: argparse.Namespace, port: int, scenario: Scenario, duration: int
) -> tuple[WrkResult, float]:
    """Run wrk once; return its figures and the CPU it used (% of one CPU)."""
    cmd = [
        "taskset", "-c", str(args.wrk_cpu),
        "wrk", "-t1", f"-c{scenario.connections}", f"-d{duration}s",
        "--timeout", WRK_TIMEOUT, "--latency",
    ]  # fmt: skip
    if scenario.method != "GET":
        cmd += ["-s", str(wrk_script(args, scenario))]
    for name, value in scenario.headers:
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(f"http://{HOST}:{port}{scenario.path}")
    # wrk is the only child reaped in between, so the difference is its CPU time.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=duration + WRK_GRACE,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerFailed(f"wrk did not finish within {duration + WRK_GRACE:g} s") from exc
    elapsed = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise ServerFailed(
            f"wrk exited with status {done.returncode}",
            (done.stderr or done.stdout).strip()[-2000:],
        )
    try:
        return parse_wrk(done.stdout), cpu / elapsed * 100
    except ValueError as exc:
        raise ServerFailed(f"could not parse wrk output: {exc}", done.stdout) from exc


def wrk_script(args: argparse.Namespace, scenario: Scenario) -> Path:
    """A Lua script that makes wrk send the scenario's method and body (cached per run)."""
    path = Path(args.workdir) / f"{scenario.name}.lua"
    if not path.exists():
        body = scenario.request_body
        if body != body[:1] * len(body):
            raise ValueError("wrk scripts here only repeat one byte")
        path.write_text(
            f'wrk.method = "{scenario.method}"\n'
            f'wrk.body = string.rep("{body[:1].decode("ascii")}", {len(body)})\n'
            'wrk.headers["Content-Type"] = "application/octet-stream"\n',
            encoding="ascii",
        )
    return path


# --------------------------------------------------------------------------
# The bulk client: large responses without wrk's 8 KiB reads
# --------------------------------------------------------------------------

BULK_READ = 1024 * 1024  # bytes discarded per recv() at most
_BULK_TIMEOUT = float(WRK_TIMEOUT.rstrip("s"))


class _BulkError(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class _BulkStats:
    latencies_ms: list[float] = field(default_factory=list)
    non_2xx_3xx: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0


def _read_head(sock: socket.socket) -> tuple[int, int, bool, int]:
    """Read a response head: (status, Content-Length, keep-alive, body bytes already read).

    The body bytes read along with the head are dropped; the count says how many.
    """
    data = b""
    while (end := data.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(4096)
        if not chunk:
            raise _BulkError("read")
        data += chunk
        if len(data) > 65536:
            raise _BulkError("read")
    lines = data[:end].decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise _BulkError("read") from None
    length = None
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            keep_alive = False
    if length is None:  # every app here sends Content-Length
        raise _BulkError("read")
    return status, length, keep_alive, len(data) - end - 4


def _bulk_worker(port: int, request_bytes: bytes, stop_at: float, stats: _BulkStats,
                 lock: threading.Lock) -> None:
    """One keep-alive connection: request, drop the body unread (MSG_TRUNC), repeat.

    Responses that complete after ``stop_at`` are read to the end but not counted,
    so the server never sees a client vanish in the middle of a response.
    """
    buf = bytearray(BULK_READ)
    view = memoryview(buf)
    sock: socket.socket | None = None
    latencies: list[float] = []
    non_2xx = 0
    errors: dict[str, int] = {}
    read = 0
    try:
        while time.perf_counter() < stop_at:
            try:
                if sock is None:
                    try:
                        sock = socket.create_connection((HOST, port), timeout=_BULK_TIMEOUT)
                    except OSError:
                        raise _BulkError("connect") from None
                t0 = time.perf_counter()
                try:
                    sock.sendall(request_bytes)
                except OSError:
                    raise _BulkError("write") from None
                status, length, keep_alive, have = _read_head(sock)
                remaining = length - have
                while remaining > 0:
                    # TCP with MSG_TRUNC: the kernel drops the bytes without copying them.
                    n = sock.recv_into(view, min(BULK_READ, remaining), socket.MSG_TRUNC)
                    if not n:
                        raise _BulkError("read")
                    remaining -= n
                t1 = time.perf_counter()
                if t1 <= stop_at:
                    latencies.append((t1 - t0) * 1000)
                    read += length
                    if not 200 <= status < 400:
                        non_2xx += 1
                if not keep_alive:
                    sock.close()
                    sock = None
            except (_BulkError, OSError) as exc:
                kind = exc.kind if isinstance(exc, _BulkError) else (
                    "timeout" if isinstance(exc, TimeoutError) else "read")
                errors[kind] = errors.get(kind, 0) + 1
                if sock is not None:
                    sock.close()
                    sock = None
                time.sleep(0.01)
    finally:
        if sock is not None:
            sock.close()
        with lock:
            stats.latencies_ms += latencies
            stats.non_2xx_3xx += non_2xx
            stats.bytes_read += read
            for kind, n in errors.items():
                stats.errors[kind] = stats.errors.get(kind, 0) + n


def run_bulk(port: int, scenario: Scenario, duration: int) -> tuple[WrkResult, float]:
    """Load the server like wrk would, with one thread per connection; (figures, CPU %)."""
    body = scenario.request_body
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    extra = "".join(f"{name}: {value}\r\n" for name, value in scenario.headers)
    request_bytes = (f"{scenario.method} {scenario.path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                     f"{length}{extra}\r\n".encode("ascii") + body)
    stats = _BulkStats()
    lock = threading.Lock()
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    stop_at = t0 + duration
    threads = [
        threading.Thread(target=_bulk_worker, args=(port, request_bytes, stop_at, stats, lock),
                         name=f"bulk-{i}", daemon=True)
        for i in range(scenario.connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + WRK_GRACE)
    if any(t.is_alive() for t in threads):
        raise ServerFailed(f"the bulk client did not finish within {duration + WRK_GRACE:g} s")
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    samples = sorted(stats.latencies_ms)

    def pct(q: float) -> float | None:
        return samples[min(len(samples) - 1, int(q * len(samples)))] if samples else None

    result = WrkResult(
        requests_per_sec=len(samples) / duration,
        p50_ms=statistics.median(samples) if samples else None,
        p99_ms=pct(0.99),
        requests=len(samples),
        non_2xx_3xx=stats.non_2xx_3xx,
        socket_errors=stats.errors,
        transfer_per_sec=stats.bytes_read / duration,
    )
    return result, cpu / elapsed * 100


def load(args: argparse.Namespace, port: int, scenario: Scenario,
         duration: int) -> tuple[WrkResult, float, str]:
    """Run the scenario's load generator: (figures, its CPU %, which client)."""
    if scenario.bulk and args.bulk_client == "python":
        return (*run_bulk(port, scenario, duration), "bulk")
    return (*run_wrk(args, port, scenario, duration), "wrk")


# --------------------------------------------------------------------------
# CPU busy time and the server's log
# --------------------------------------------------------------------------


def cpu_times(cpu: int) -> tuple[int, int] | None:
    """(busy, total) clock ticks of one CPU so far, from /proc/stat."""
    prefix = f"cpu{cpu} "
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            if line.startswith(prefix):
                ticks = [int(x) for x in line.split()[1:]]
                idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
                total = sum(ticks[:8])  # guest time is already in user
                return total - idle, total
    return None


def busy_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * 100


_LOG_ERROR_RE = re.compile(r"\b(ERROR|CRITICAL|FATAL)\b")
_TRACEBACK_CONT = ("Traceback", " ", "\t", "During handling", "The above exception")


def scan_log(log_file: IO[bytes]) -> tuple[int, str | None]:
    """Error lines in the server's output (ERROR/CRITICAL, else tracebacks) and the first.

    The excerpt is the first error line and the traceback that follows it, shortened
    to its first and last lines.
    """
    log_file.flush()
    log_file.seek(0)
    # aiowsgi's access log makes the file large: info lines are not kept
    lines = [line.decode("utf-8", "replace").rstrip("\n") for line in log_file
             if b" [INFO] " not in line]
    hits = [i for i, line in enumerate(lines) if _LOG_ERROR_RE.search(line)]
    if not hits:
        hits = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    if not hits:
        return 0, None
    end = hits[0] + 1
    while end < len(lines) and lines[end].startswith(_TRACEBACK_CONT):
        end += 1
    block = lines[hits[0]:min(end + 1, len(lines))]  # + the exception line
    if len(block) > 14:
        block = [*block[:3], "  ...", *block[-8:]]
    return len(hits), "\n".join(block)


# --------------------------------------------------------------------------
# One server, one scenario, one round
# --------------------------------------------------------------------------


def bench_load(args: argparse.Namespace, scenario: Scenario, server: Server,
               round_no: int) -> RoundResult:
    port = free_port()
    with tempfile.TemporaryFile(prefix=f"bench-{server.name}-") as log_file:
        proc = spawn(args, server, port, scenario.app, log_file)
        try:
            result = _measure(args, scenario, proc, port, log_file, round_no)
        except ServerFailed as exc:
            output = exc.output_tail
            if output is None:
                output = idle.tail(log_file)
            result = RoundResult(round=round_no, ok=False, error=str(exc), output_tail=output)
        finally:
            stop(proc)
        result.log_errors, result.log_excerpt = scan_log(log_file)
        return result


def _measure(args: argparse.Namespace, scenario: Scenario, proc: subprocess.Popen[bytes],
             port: int, log_file: IO[bytes], round_no: int) -> RoundResult:
    took, file_wrapper = wait_ready(proc, port, log_file, scenario)
    log(f"  up on port {port} after {took:.2f} s (pid {proc.pid})")
    if args.warmup > 0:
        load(args, port, scenario, args.warmup)
    cores0 = cpu_times(args.server_cpu), cpu_times(args.wrk_cpu)
    with Sampler(proc.pid) as sampler:
        result, client_cpu, client = load(args, port, scenario, args.duration)
    cores1 = cpu_times(args.server_cpu), cpu_times(args.wrk_cpu)
    if proc.poll() is not None:
        raise ServerFailed(f"exited with status {proc.returncode} during the run",
                           idle.tail(log_file))
    return RoundResult(
        round=round_no, ok=True, wrk=result,
        rss_peak_kib=sampler.peak_kib, rss_hwm_kib=sampler.hwm_kib,
        server_cpu_percent=sampler.cpu_percent, wrk_cpu_percent=client_cpu,
        server_core_busy_percent=busy_percent(cores0[0], cores1[0]),
        client_core_busy_percent=busy_percent(cores0[1], cores1[1]),
        client=client, file_wrapper=file_wrapper,
    )  # fmt: skip


def bench_startup(args: argparse.Namespace, scenario: Scenario, server: Server,
                  round_no: int) -> RoundResult:
    """Time from spawning the server to its first correct answer, ``--startup-runs`` times."""
    samples: list[float] = []
    for _ in range(args.startup_runs):
        port = free_port()
        with tempfile.TemporaryFile(prefix=f"bench-{server.name}-") as log_file:
            start = time.perf_counter()
            proc = spawn(args, server, port, scenario.app, log_file)
            try:
                took, _ = wait_ready(proc, port, log_file, scenario, STARTUP_POLL, start)
            except ServerFailed as exc:
                output = exc.output_tail if exc.output_tail is not None else idle.tail(log_file)
                return RoundResult(round=round_no, ok=False, error=str(exc),
                                   output_tail=output, startup_ms=samples)
            finally:
                stop(proc)
            samples.append(took * 1000)
    return RoundResult(round=round_no, ok=True, startup_ms=samples)


def bench_idle(args: argparse.Namespace, scenario: Scenario, server: Server,
               round_no: int) -> RoundResult:
    """bench/idle.py's measurement, with the server pinned like the others."""
    assert server.idle_loop is not None
    options = argparse.Namespace(connections=args.idle_connections, loop=server.idle_loop,
                                 requests=args.idle_requests)
    try:
        report = idle.run(options, server_prefix=["taskset", "-c", str(args.server_cpu)])
    except idle.BenchError as exc:
        return RoundResult(round=round_no, ok=False, error=str(exc))
    figures: dict[str, Any] = {
        "connections": report.connections,
        "established": report.established,
        "still_open": report.still_open,
        "rss_before_mib": None if report.rss_before_kib is None else report.rss_before_kib / 1024,
        "rss_mib": None if report.rss_after_kib is None else report.rss_after_kib / 1024,
        "per_conn_kib": (None if report.per_connection_bytes is None
                         else report.per_connection_bytes / 1024),
        "cpu_percent": report.idle_cpu_percent,
        "median_ms": report.fresh_loaded.median_ms,
        "p99_ms": report.fresh_loaded.p99_ms,
        "median_ms_0idle": report.fresh_idle0.median_ms,
        "p99_ms_0idle": report.fresh_idle0.p99_ms,
        "failures": report.fresh_idle0.failures + report.fresh_loaded.failures,
        "stop_seconds": report.stop_seconds,
        "problems": report.problems,
    }  # fmt: skip
    return RoundResult(
        round=round_no, ok=report.ok, idle=figures,
        error="; ".join(report.problems) or None, output_tail=report.server_output,
    )  # fmt: skip


# --------------------------------------------------------------------------
# Mixed loads: cpu (CPU-heavy views and the GIL) and slow (slow clients)
# --------------------------------------------------------------------------

SLOW_SETTLE = 2.0  # seconds between starting the slow clients and the measured wrk run
SLOW_TRANSFER_S = mixapps.SLOW_SIZE / (64 * 1024)  # one slow transfer's nominal seconds
SLOW_TIMEOUT = SLOW_TRANSFER_S * 1.25 + 5  # slowclients.py's default --timeout
WAITRESS_CONNECTIONS = 1000  # waitress's --connection-limit in slow (its default: 100)
MIX_KINDS = frozenset({"cpu", "slow"})


def server_argv(server: Server, port: str, scenario: Scenario) -> list[str]:
    """The server's command line for a scenario.  In cpu, every server runs the app on
    ``mixapps.THREADS`` threads; in slow, waitress takes more than 100 connections."""
    argv = server.argv(port, scenario.app)
    at = argv.index(scenario.app) if scenario.app in argv else len(argv)
    if scenario.kind == "slow" and server.name == WAITRESS:
        argv[at:at] = [f"--connection-limit={WAITRESS_CONNECTIONS}"]
    if scenario.kind != "cpu":
        return argv
    threads = str(mixapps.THREADS)
    if server.name in (AIOWSGI_UVLOOP, AIOWSGI_ASYNCIO):
        argv[at:at] = ["--threads", threads]
    elif server.name == WAITRESS:
        argv[at:at] = [f"--threads={threads}"]
    elif server.name == GTHREAD:
        argv[argv.index("--threads") + 1] = threads
    elif server.name == "granian":
        argv[at:at] = ["--blocking-threads", threads]
    elif server.name == "uvicorn-wsgi":
        # What --interface wsgi builds, a2wsgi.WSGIMiddleware(app), with THREADS threads.
        argv[argv.index("--interface") + 1] = "asgi3"
        argv[at] = f"{scenario.app}_a2wsgi"
    return argv


# The application threads of each server where the command line does not set them (as
# in every scenario but cpu): the servers' defaults, as the versions benchmarked have them.
DEFAULT_THREADS = {
    AIOWSGI_UVLOOP: "8 (default)", AIOWSGI_ASYNCIO: "8 (default)", WAITRESS: "4 (default)",
    GTHREAD: "4", "uvicorn-wsgi": "10 (a2wsgi's default)",
    "granian": "512 (default: backlog / 2)",
}  # fmt: skip


def mix_threads(server: str, scenario: str) -> str:
    """The application threads of a server in the cpu or slow scenario."""
    if scenario == "cpu" and server in DEFAULT_THREADS:
        return str(mixapps.THREADS)
    return DEFAULT_THREADS.get(server, "default")


def _spawn_mix(args: argparse.Namespace, server: Server, port: int, scenario: Scenario,
               log_file: IO[bytes]) -> subprocess.Popen[bytes]:
    env = server_env(args)
    if args.cpu_loops is not None:
        env[mixapps.CPU_LOOPS_ENV] = str(args.cpu_loops)
    return subprocess.Popen(
        ["taskset", "-c", str(args.server_cpu), *server_argv(server, str(port), scenario)],
        cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
        stderr=subprocess.STDOUT, start_new_session=True,
    )


def run_wrks(args: argparse.Namespace, loads: Sequence[tuple[str, int]],
             duration: int) -> tuple[list[WrkResult], float]:
    """Run one wrk per (URL, connections) at the same time; their figures and the CPU
    they used together (% of one CPU)."""
    cmds = [["taskset", "-c", str(args.wrk_cpu), "wrk", "-t1", f"-c{connections}",
             f"-d{duration}s", "--timeout", WRK_TIMEOUT, "--latency", url]
            for url, connections in loads]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cmd in cmds]
    outputs: list[tuple[str, str]] = []
    try:
        deadline = t0 + duration + WRK_GRACE
        for proc in procs:
            outputs.append(proc.communicate(timeout=max(0.1, deadline - time.monotonic())))
    except subprocess.TimeoutExpired as exc:
        raise ServerFailed(f"wrk did not finish within {duration + WRK_GRACE:g} s") from exc
    finally:
        for proc in procs:  # only after a timeout or an error: they are ours
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    elapsed = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    results: list[WrkResult] = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise ServerFailed(f"wrk exited with status {proc.returncode}",
                               (err or out).strip()[-2000:])
        try:
            results.append(parse_wrk(out))
        except ValueError as exc:
            raise ServerFailed(f"could not parse wrk output: {exc}", out) from exc
    return results, cpu / elapsed * 100


def _pcts(w: WrkResult) -> tuple[float | None, float | None]:
    """wrk's p50 and p99, None when it completed no request (it prints 0.00us then)."""
    return (w.p50_ms, w.p99_ms) if w.requests else (None, None)


def _merged(main: WrkResult, *others: WrkResult, rps: float | None = None) -> WrkResult:
    """``main``'s figures with the errors of ``others`` added (and ``rps`` if given)."""
    errors = dict(main.socket_errors)
    for w in others:
        for kind, n in w.socket_errors.items():
            errors[kind] = errors.get(kind, 0) + n
    return WrkResult(
        requests_per_sec=main.requests_per_sec if rps is None else rps,
        p50_ms=_pcts(main)[0], p99_ms=_pcts(main)[1],
        requests=sum(w.requests or 0 for w in (main, *others)),
        non_2xx_3xx=sum(w.non_2xx_3xx for w in (main, *others)),
        socket_errors=errors,
    )


def app_stats(port: int, reset: bool = False) -> dict[str, Any]:
    """The cpu app's in-process figures (``/__stats``; see bench/mixapps.py)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=PROBE_TIMEOUT)
    try:
        conn.request("GET", "/__stats?reset=1" if reset else "/__stats",
                     headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise ServerFailed(f"/__stats: {exc!r}") from exc
    finally:
        conn.close()
    if resp.status != 200:
        raise ServerFailed(f"/__stats: status {resp.status}")
    figures: dict[str, Any] = json.loads(body)
    return figures


def _mix_round(args: argparse.Namespace, scenario: Scenario, server: Server, round_no: int,
               measure: Callable[[argparse.Namespace, Scenario, subprocess.Popen[bytes], int,
                                  IO[bytes], int], RoundResult]) -> RoundResult:
    port = free_port()
    with tempfile.TemporaryFile(prefix=f"bench-{server.name}-") as log_file:
        proc = _spawn_mix(args, server, port, scenario, log_file)
        try:
            took, _ = wait_ready(proc, port, log_file, scenario)
            log(f"  up on port {port} after {took:.2f} s (pid {proc.pid})")
            result = measure(args, scenario, proc, port, log_file, round_no)
            if proc.poll() is not None:
                raise ServerFailed(f"exited with status {proc.returncode} during the run",
                                   idle.tail(log_file))
        except ServerFailed as exc:
            output = exc.output_tail if exc.output_tail is not None else idle.tail(log_file)
            result = RoundResult(round=round_no, ok=False, error=str(exc), output_tail=output)
        finally:
            stop(proc)
        result.log_errors, result.log_excerpt = scan_log(log_file)
        return result


def bench_cpu(args: argparse.Namespace, scenario: Scenario, server: Server,
              round_no: int) -> RoundResult:
    """Two wrk at once, one on /slow and one on /fast; the app's own figures around them."""
    return _mix_round(args, scenario, server, round_no, _measure_cpu)


def _measure_cpu(args: argparse.Namespace, scenario: Scenario, proc: subprocess.Popen[bytes],
                 port: int, log_file: IO[bytes], round_no: int) -> RoundResult:
    half = max(1, scenario.connections // 2)
    loads = [(f"http://{HOST}:{port}/slow", half),
             (f"http://{HOST}:{port}/fast", max(1, scenario.connections - half))]
    app_stats(port, reset=True)  # finds the server's event loop, starts the lag probe
    if args.warmup > 0:
        run_wrks(args, loads, args.warmup)
    app_stats(port, reset=True)
    cores0 = cpu_times(args.server_cpu), cpu_times(args.wrk_cpu)
    with Sampler(proc.pid) as sampler:
        (slow_w, fast_w), client_cpu = run_wrks(args, loads, args.duration)
    cores1 = cpu_times(args.server_cpu), cpu_times(args.wrk_cpu)
    stats = app_stats(port)
    own, wall, lag = stats["slow_cpu"], stats["slow_wall"], stats.get("loop_lag") or {}
    own_ms = own["p50_ms"]
    mix = {
        "slow_rps": slow_w.requests_per_sec, "fast_rps": fast_w.requests_per_sec,
        "slow_p50_ms": _pcts(slow_w)[0], "slow_p99_ms": _pcts(slow_w)[1],
        "fast_p50_ms": _pcts(fast_w)[0], "fast_p99_ms": _pcts(fast_w)[1],
        "own_cpu_ms": own_ms, "own_cpu_p99_ms": own["p99_ms"], "own_count": own["count"],
        "own_wall_ms": wall["p50_ms"], "own_wall_p99_ms": wall["p99_ms"],
        "fast_p99_vs_own": (fast_w.p99_ms / own_ms
                            if _pcts(fast_w)[1] is not None and own_ms else None),
        "loop": stats.get("loop"), "loop_lag_count": lag.get("count"),
        "loop_lag_p50_ms": lag.get("p50_ms"), "loop_lag_p99_ms": lag.get("p99_ms"),
        "loop_lag_max_ms": lag.get("max_ms"), "loops": stats.get("loops"),
    }  # fmt: skip
    if stats.get("loops") != args.cpu_loops:
        raise ServerFailed(f"the app spun {stats.get('loops')} loops, not {args.cpu_loops}")
    return RoundResult(
        round=round_no, ok=True,
        wrk=_merged(fast_w, slow_w, rps=slow_w.requests_per_sec + fast_w.requests_per_sec),
        rss_peak_kib=sampler.peak_kib, rss_hwm_kib=sampler.hwm_kib,
        server_cpu_percent=sampler.cpu_percent, wrk_cpu_percent=client_cpu,
        server_core_busy_percent=busy_percent(cores0[0], cores1[0]),
        client_core_busy_percent=busy_percent(cores0[1], cores1[1]),
        client="wrk x2", mix=mix,
    )  # fmt: skip


def bench_slow(args: argparse.Namespace, scenario: Scenario, server: Server,
               round_no: int) -> RoundResult:
    """wrk on hello alone, then again next to bench/slowclients.py, in one server process."""
    return _mix_round(args, scenario, server, round_no, _measure_slow)


def slowclients_argv(args: argparse.Namespace, port: int) -> list[str]:
    return ["taskset", "-c", str(args.wrk_cpu), sys.executable,
            str(REPO_ROOT / "bench" / "slowclients.py"), "--host", HOST, "--port", str(port),
            "--clients", str(args.slow_clients), "--size", str(mixapps.SLOW_SIZE),
            "--timeout", f"{SLOW_TIMEOUT:g}",
            # New transfers start until the measured run ends.
            "--duration", f"{SLOW_SETTLE + args.duration:g}"]


def _measure_slow(args: argparse.Namespace, scenario: Scenario, proc: subprocess.Popen[bytes],
                  port: int, log_file: IO[bytes], round_no: int) -> RoundResult:
    loads = [(f"http://{HOST}:{port}/", scenario.connections)]
    if args.warmup > 0:
        run_wrks(args, loads, args.warmup)
    (alone,), _ = run_wrks(args, loads, args.duration)
    clients = subprocess.Popen(slowclients_argv(args, port), cwd=REPO_ROOT,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        with Sampler(proc.pid) as sampler:  # RSS: from the slow clients' start on
            time.sleep(SLOW_SETTLE)
            if clients.poll() is not None:
                raise ServerFailed(f"slowclients.py exited with status {clients.returncode}",
                                   clients.communicate()[1][-2000:])
            cores0 = cpu_times(args.server_cpu), cpu_times(args.wrk_cpu)
            cpu0, t0 = _sum_over(sampler.pids, cpu_seconds), time.monotonic()
            (mixed,), client_cpu = run_wrks(args, loads, args.duration)
            server_cpu = ((_sum_over(sampler.pids, cpu_seconds) - cpu0)
                          / (time.monotonic() - t0) * 100)
            cores1 = cpu_times(args.server_cpu), cpu_times(args.wrk_cpu)
        limit = SLOW_TIMEOUT + 5 + WRK_GRACE  # slowclients.py cuts itself off before
        try:
            out, err = clients.communicate(timeout=limit)
        except subprocess.TimeoutExpired as exc:
            raise ServerFailed(f"slowclients.py did not finish {limit:g} s after the run") \
                from exc
    finally:
        if clients.poll() is None:  # ours: after an error only
            clients.kill()
            clients.wait()
    if clients.returncode not in (0, 1):  # 1: some transfers failed, counted below
        raise ServerFailed(f"slowclients.py exited with status {clients.returncode}",
                           err[-2000:])
    try:
        sc: dict[str, Any] = json.loads(out)
    except ValueError as exc:
        raise ServerFailed(f"slowclients.py: no figures ({exc})", err[-2000:]) from exc
    down, up = sc["download"], sc["upload"]
    failed = down["failed"] + up["failed"]
    reasons: dict[str, int] = {}
    for kind in (down, up):
        for reason, n in kind["failures"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    wrk = _merged(mixed, alone)
    if failed:  # shown with the socket errors: a server that fails slow clients is not fast
        wrk.socket_errors["slow transfers failed"] = failed
    mix = {
        "alone_rps": alone.requests_per_sec, "alone_p50_ms": _pcts(alone)[0],
        "alone_p99_ms": _pcts(alone)[1],
        "with_vs_alone": (mixed.requests_per_sec / alone.requests_per_sec
                          if alone.requests_per_sec else None),
        "downloads_started": down["started"], "downloads_completed": down["completed"],
        "uploads_started": up["started"], "uploads_completed": up["completed"],
        "transfers_failed": failed, "failures": reasons,
        "first_failure": down["first_error"] or up["first_error"],
        "download_s_p50": down["seconds_p50"], "upload_s_p50": up["seconds_p50"],
        "download_s_max": down["seconds_max"], "upload_s_max": up["seconds_max"],
        "slowclients_cpu_percent": sc["cpu_percent"], "slowclients_elapsed_s": sc["elapsed"],
    }  # fmt: skip
    return RoundResult(
        round=round_no, ok=True, wrk=wrk,
        rss_peak_kib=sampler.peak_kib, rss_hwm_kib=sampler.hwm_kib,
        server_cpu_percent=server_cpu, wrk_cpu_percent=client_cpu,
        server_core_busy_percent=busy_percent(cores0[0], cores1[0]),
        client_core_busy_percent=busy_percent(cores0[1], cores1[1]),
        client="wrk + slowclients.py", mix=mix,
    )  # fmt: skip


def describe_mix(scenario: Scenario, r: RoundResult) -> str:
    """describe() for the cpu and slow scenarios."""
    m = r.mix or {}
    w = r.wrk
    assert w is not None
    tail = (f"server CPU % {fmt_num(r.server_cpu_percent, 0)}, client CPU % "
            f"{fmt_num(r.wrk_cpu_percent, 0)}, non-2xx/3xx {w.non_2xx_3xx}, socket errors "
            f"{w.socket_errors or 0}"
            + (f", server logged {r.log_errors} error line(s)" if r.log_errors else ""))
    if scenario.kind == "cpu":
        lag = ("" if m.get("loop_lag_p99_ms") is None else
               f", loop lag p50/p99/max {fmt_num(m.get('loop_lag_p50_ms'))}/"
               f"{fmt_num(m.get('loop_lag_p99_ms'))}/{fmt_num(m.get('loop_lag_max_ms'))} ms")
        return (f"{w.requests_per_sec:,.0f} req/s ({fmt_num(m.get('slow_rps'), 0)} slow + "
                f"{fmt_num(m.get('fast_rps'), 0)} fast), fast p50/p99 "
                f"{fmt_num(m.get('fast_p50_ms'))}/{fmt_num(m.get('fast_p99_ms'))} ms, slow "
                f"view CPU {fmt_num(m.get('own_cpu_ms'))} ms (wall "
                f"{fmt_num(m.get('own_wall_ms'))} ms){lag}, {tail}")
    return (f"hello {w.requests_per_sec:,.0f} req/s with slow clients, "
            f"{fmt_num(m.get('alone_rps'), 0)} alone ({fmt_num(m.get('with_vs_alone'))}x), "
            f"p99 {fmt_num(w.p99_ms)} ms ({fmt_num(m.get('alone_p99_ms'))} alone); slow "
            f"transfers: downloads {m.get('downloads_completed')}/{m.get('downloads_started')}"
            f", uploads {m.get('uploads_completed')}/{m.get('uploads_started')} completed, "
            f"failed {m.get('failures') or 0}; peak RSS "
            f"{fmt_num(r.metric(scenario, 'rss_peak_mib'), 1)} MiB, {tail}")


RUNNERS: dict[str, Callable[[argparse.Namespace, Scenario, Server, int], RoundResult]] = {
    "load": bench_load,
    "startup": bench_startup,
    "idle": bench_idle,
    "cpu": bench_cpu,
    "slow": bench_slow,
}


def describe(scenario: Scenario, r: RoundResult) -> str:
    """One line of progress for a finished round."""
    if not r.ok:
        return f"FAILED: {r.error}"
    if scenario.kind == "startup":
        return "start-up ms: " + ", ".join(f"{ms:.0f}" for ms in r.startup_ms)
    if scenario.kind == "idle":
        i = r.idle or {}
        return (f"{i.get('established')} idle, RSS {fmt_num(i.get('rss_mib'), 1)} MiB, "
                f"new request median {fmt_num(i.get('median_ms'))} ms")
    if scenario.kind in MIX_KINDS:
        return describe_mix(scenario, r)
    w = r.wrk
    assert w is not None
    mib_s = r.metric(scenario, "mib_s")
    return (
        f"{w.requests_per_sec:,.0f} req/s"
        + (f" ({fmt_num(mib_s, 1)} MiB/s)" if scenario.response_size >= 1000 else "")
        + f", p50 {fmt_num(w.p50_ms)} ms, p99 {fmt_num(w.p99_ms)} ms, "
        f"peak RSS {fmt_num(r.metric(scenario, 'rss_peak_mib'), 1)} MiB, "
        f"CPU % server {fmt_num(r.server_cpu_percent, 0)} (its core "
        f"{fmt_num(r.server_core_busy_percent, 0)}), {r.client} {fmt_num(r.wrk_cpu_percent, 0)}"
        f" (its core {fmt_num(r.client_core_busy_percent, 0)}), "
        f"non-2xx/3xx {w.non_2xx_3xx}, socket errors {w.socket_error_total}"
        + (f", file_wrapper: {r.file_wrapper}" if r.file_wrapper else "")
        + (f", server logged {r.log_errors} error line(s)" if r.log_errors else "")
    )


# --------------------------------------------------------------------------
# Report: tables
# --------------------------------------------------------------------------


def fmt_num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "n/a"
    return f"{value / reference:.2f}x"


def errors_cell(entry: Entry) -> str:
    parts: list[str] = []
    failed = [r for r in entry.rounds if not r.ok]
    if failed:
        parts.append(f"{len(failed)}/{len(entry.rounds)} rounds failed")
    if entry.non_2xx_3xx():
        parts.append(f"**non-2xx/3xx: {entry.non_2xx_3xx()}**")
    sockerr = entry.socket_errors()
    if sockerr:
        detail = ", ".join(f"{k} {v}" for k, v in sockerr.items())
        parts.append(f"**socket errors: {detail}**")
    logged = sum(r.log_errors for r in entry.rounds)
    if logged:
        parts.append(f"server logged {logged} error line(s)")
    client = entry.median("wrk_cpu")
    if client is not None and client >= CLIENT_BOUND:
        parts.append(f"client at {client:.0f} % CPU: a lower bound")
    return "; ".join(parts) or "none"


# A column: header, and the cell of an entry given all results.
Column = tuple[str, Callable[[Entry, Results], str]]


def col_value(header: str, name: str, digits: int = 2) -> Column:
    return header, lambda e, _: fmt_num(e.median(name), digits)


def col_ratio(header: str, name: str, server: str | None, scenario: str | None = None) -> Column:
    """Ratio of this entry's median to a reference median.

    ``server=None`` means the same server; ``scenario=None`` the same scenario.
    """

    def cell(e: Entry, res: Results) -> str:
        ref = res.median(scenario or e.scenario.name, server or e.server, name)
        return ratio(e.median(name), ref)

    return header, cell


def col_idle(header: str, name: str, digits: int = 2) -> Column:
    return header, lambda e, _: fmt_num(e.median("idle_" + name), digits)


COL_CPU = col_value("server CPU %", "server_cpu", 0)
COL_CORE = col_value("server core busy %", "server_core", 0)
COL_WRK_CPU = col_value("client CPU %", "wrk_cpu", 0)
COL_RSS = col_value("peak RSS MiB", "rss_peak_mib", 1)

COLUMNS: dict[str, list[Column]] = {
    "hello": [
        col_value("req/s", "rps", 0), col_value("p50 ms", "p50_ms"),
        col_value("p99 ms", "p99_ms"),
        col_ratio("req/s vs waitress", "rps", WAITRESS),
        col_ratio("req/s vs uvicorn-asgi", "rps", UVICORN_ASGI),
        col_ratio("req/s vs ceiling", "rps", CEILING),
        col_ratio("p99 vs waitress", "p99_ms", WAITRESS),
        COL_CPU, COL_CORE, COL_WRK_CPU, COL_RSS,
    ],
    "latency": [
        col_value("p50 ms", "p50_ms", 3), col_value("p99 ms", "p99_ms", 3),
        col_value("req/s", "rps", 0),
        col_ratio("p50 vs waitress", "p50_ms", WAITRESS),
        col_ratio("p99 vs waitress", "p99_ms", WAITRESS),
        COL_CPU, COL_CORE, COL_WRK_CPU,
    ],
    "stream": [
        col_value("MiB/s", "mib_s", 0), col_value("responses/s", "rps", 1),
        col_value("p50 ms per response", "p50_ms", 1),
        col_ratio("MiB/s vs gunicorn-gthread", "mib_s", GTHREAD),
        col_ratio("MiB/s vs waitress", "mib_s", WAITRESS),
        COL_RSS, COL_CPU, COL_CORE, COL_WRK_CPU,
    ],
    "file": [
        col_value("MiB/s", "mib_s", 0),
        ("wsgi.file_wrapper", lambda e, _: e.file_wrapper() or "-"),
        col_ratio("MiB/s vs own generator stream", "mib_s", None, "stream"),
        col_ratio("MiB/s vs aiowsgi-uvloop stream", "mib_s", AIOWSGI_UVLOOP, "stream"),
        col_ratio("MiB/s vs waitress", "mib_s", WAITRESS),
        COL_RSS, COL_CPU, COL_CORE, COL_WRK_CPU,
    ],
    "post": [
        col_value("req/s", "rps", 0), col_value("MiB/s each way", "mib_s", 0),
        col_value("p50 ms", "p50_ms"), col_value("p99 ms", "p99_ms"),
        col_ratio("req/s vs waitress", "rps", WAITRESS),
        COL_RSS, COL_CPU, COL_CORE, COL_WRK_CPU,
    ],
    "chunks": [
        col_value("req/s", "rps", 0), col_value("MiB/s", "mib_s", 1),
        col_value("p50 ms", "p50_ms"), col_value("p99 ms", "p99_ms"),
        col_ratio("req/s vs waitress", "rps", WAITRESS),
        COL_RSS, COL_CPU, COL_CORE, COL_WRK_CPU,
    ],
    "idle": [
        col_idle("connections held", "established", 0),
        col_idle("RSS before MiB", "rss_before_mib", 1),
        col_idle("RSS with idle MiB", "rss_mib", 1),
        col_idle("per connection KiB", "per_conn_kib", 1),
        col_idle("new request median ms", "median_ms"),
        col_idle("new request p99 ms", "p99_ms"),
        col_idle("new request median ms, 0 idle", "median_ms_0idle"),
        col_idle("CPU % while idle", "cpu_percent", 1),
    ],
    "startup": [
        col_value("median ms", "startup_ms", 0),
        ("min-max ms", lambda e, _: _startup_range(e)),
        ("starts", lambda e, _: str(sum(len(r.startup_ms) for r in e.ok_rounds()))),
        col_ratio("vs waitress", "startup_ms", WAITRESS),
    ],
}  # fmt: skip


def cpu_per_request_us(e: Entry) -> float | None:
    """The server's CPU time per request, in µs: its CPU % over its req/s (medians).

    ``bench/where_time_goes.py`` subtracts the app's own time from it.
    """
    cpu, rps = e.median("server_cpu"), e.median("rps")
    return None if cpu is None or not rps else cpu / 100 / rps * 1e6


FRAMEWORK_COLUMNS: list[Column] = [
    col_value("req/s", "rps", 0), col_value("p50 ms", "p50_ms"), col_value("p99 ms", "p99_ms"),
    col_ratio("req/s vs waitress", "rps", WAITRESS),
    col_ratio("req/s vs gunicorn-gthread", "rps", GTHREAD),
    col_ratio("p99 vs waitress", "p99_ms", WAITRESS),
    col_ratio("p99 vs gunicorn-gthread", "p99_ms", GTHREAD),
    ("server CPU µs/req", lambda e, _: fmt_num(cpu_per_request_us(e), 0)),
    COL_CPU, COL_CORE, COL_WRK_CPU, COL_RSS,
]  # fmt: skip
COLUMNS.update(dict.fromkeys(FRAMEWORK_SCENARIOS, FRAMEWORK_COLUMNS))


def _startup_range(e: Entry) -> str:
    samples = [ms for r in e.ok_rounds() for ms in r.startup_ms]
    return f"{min(samples):,.0f}-{max(samples):,.0f}" if samples else "-"


# --------------------------------------------------------------------------
# Report: the cpu and slow scenarios
# --------------------------------------------------------------------------

def _mix_sum(e: Entry, name: str) -> int:
    return sum(int((r.mix or {}).get(name) or 0) for r in e.ok_rounds())


def _transfers(kind: str) -> Column:
    def cell(e: Entry, _: Results) -> str:
        return f"{_mix_sum(e, kind + '_completed')}/{_mix_sum(e, kind + '_started')}"

    return f"{kind} completed/started", cell


def _failed_transfers(e: Entry, _: Results) -> str:
    failed = _mix_sum(e, "transfers_failed")
    if not failed:
        return "0"
    reasons: dict[str, int] = {}
    for r in e.ok_rounds():
        for reason, n in ((r.mix or {}).get("failures") or {}).items():
            reasons[reason] = reasons.get(reason, 0) + n
    return f"**{failed}** (" + ", ".join(f"{k} {v}" for k, v in reasons.items()) + ")"


def _loop_lag(e: Entry, _: Results) -> str:
    if e.median("mix_loop_lag_p99_ms") is None:
        return "-"
    return "/".join(fmt_num(e.median(f"mix_loop_lag_{q}_ms"), 1) for q in ("p50", "p99", "max"))


MIX_COLUMNS: dict[str, list[Column]] = {
    "cpu": [
        col_value("req/s, slow + fast", "rps", 0),
        col_value("slow req/s", "mix_slow_rps", 0), col_value("fast req/s", "mix_fast_rps", 0),
        col_value("fast p50 ms", "mix_fast_p50_ms"), col_value("fast p99 ms", "mix_fast_p99_ms"),
        col_value("slow view CPU ms", "mix_own_cpu_ms"),
        col_value("slow view wall ms", "mix_own_wall_ms"),
        col_value("fast p99 / view CPU", "mix_fast_p99_vs_own"),
        col_ratio("req/s vs gunicorn-gthread", "rps", GTHREAD),
        ("loop lag p50/p99/max ms", _loop_lag),
        ("app threads", lambda e, _: mix_threads(e.server, e.scenario.name)),
        COL_CPU, COL_CORE, COL_WRK_CPU,
    ],
    "slow": [
        col_value("hello req/s with slow clients", "rps", 0),
        col_value("hello req/s alone", "mix_alone_rps", 0),
        col_value("with / alone", "mix_with_vs_alone"),
        col_value("p99 ms with", "p99_ms"), col_value("p99 ms alone", "mix_alone_p99_ms"),
        col_ratio("req/s with vs gunicorn-gthread", "rps", GTHREAD),
        _transfers("downloads"), _transfers("uploads"),
        ("failed transfers", _failed_transfers),
        col_value("download s (median)", "mix_download_s_p50", 1),
        col_value("upload s (median)", "mix_upload_s_p50", 1),
        ("app threads", lambda e, _: mix_threads(e.server, e.scenario.name)),
        COL_RSS, COL_CPU, COL_CORE,
        col_value("slow clients CPU %", "mix_slowclients_cpu_percent", 0), COL_WRK_CPU,
    ],
}  # fmt: skip

# results.json: the figures stored per scenario and server
MIX_METRICS: dict[str, list[str]] = {
    "cpu": ["rps", "mix_slow_rps", "mix_fast_rps", "mix_fast_p50_ms", "mix_fast_p99_ms",
            "mix_slow_p50_ms", "mix_slow_p99_ms", "mix_own_cpu_ms", "mix_own_cpu_p99_ms",
            "mix_own_wall_ms", "mix_own_wall_p99_ms", "mix_fast_p99_vs_own",
            "mix_loop_lag_p50_ms", "mix_loop_lag_p99_ms", "mix_loop_lag_max_ms",
            "rss_peak_mib", "server_cpu", "server_core", "wrk_cpu", "client_core"],
    "slow": ["rps", "p50_ms", "p99_ms", "mix_alone_rps", "mix_alone_p50_ms", "mix_alone_p99_ms",
             "mix_with_vs_alone", "mix_transfers_failed", "mix_download_s_p50",
             "mix_upload_s_p50", "mix_slowclients_cpu_percent", "rss_peak_mib", "server_cpu",
             "server_core", "wrk_cpu", "client_core"],
}

CPU_FAST_P99_VS_OWN = 3.0  # fast p99 <= 3x the slow view's own (CPU) time
CPU_VS_GTHREAD = 1.0  # req/s >= gunicorn-gthread's, the same threads
SLOW_VS_ALONE = 0.8  # hello req/s with slow clients >= 0.8x without
SLOW_VS_GTHREAD = 3.0  # ... and >= 3x gunicorn-gthread's under the same mix


def mix_settings(args: argparse.Namespace) -> str:
    """The report's sentence about the cpu and slow scenarios ("" when neither ran)."""
    kinds = {s.kind for s in args.scenario_list} & MIX_KINDS
    if not kinds:
        return ""
    parts: list[str] = []
    if "cpu" in kinds:
        parts.append(
            f"cpu: every server runs the app on {mixapps.THREADS} threads (aiowsgi "
            "`--threads`, waitress `--threads`, gunicorn `--threads`, granian "
            "`--blocking-threads`, uvicorn: `a2wsgi.WSGIMiddleware(app, workers="
            f"{mixapps.THREADS})` with `--interface asgi3`); two wrk at once, "
            f"{args.cpu_connections // 2} connections on /slow and "
            f"{args.cpu_connections - args.cpu_connections // 2} on /fast; /slow spins "
            f"{args.cpu_loops:,} loops (calibrated by this script on CPU {args.wrk_cpu}: "
            f"{args.cpu_loops_ms:.2f} ms of CPU time); the view's CPU and wall time and the "
            "loop lag (a 10 ms timer on the server's asyncio loop, where there is one) are "
            "measured in the server.")
    if "slow" in kinds:
        parts.append(
            f"slow: wrk on hello alone, then with {args.slow_clients} slow clients "
            f"(bench/slowclients.py, half download and half upload {mixapps.SLOW_SIZE:,} "
            f"bytes at 64 KiB/s) started {SLOW_SETTLE:g} s before it, in the same server "
            f"process; the servers' own thread counts (see the table); waitress gets "
            f"`--connection-limit={WAITRESS_CONNECTIONS}`.")
    return " ".join(parts)


COLUMNS.update(MIX_COLUMNS)


def scenario_table(scenario: Scenario, res: Results) -> list[str]:
    columns = COLUMNS[scenario.name]
    headers = ["server", *(h for h, _ in columns), "errors"]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|---|" + "---:|" * len(columns) + "---|",
    ]
    for e in res.in_scenario(scenario.name):
        if e.skipped:
            cells = [e.skipped] + ["-"] * len(columns)
        elif not e.ok_rounds():
            cells = ["failed"] + ["-"] * (len(columns) - 1) + [errors_cell(e)]
        else:
            cells = [cell(e, res) for _, cell in columns] + [errors_cell(e)]
        lines.append(f"| {e.server} | " + " | ".join(cells) + " |")
    return lines


# --------------------------------------------------------------------------
# Report: the issue's targets
# --------------------------------------------------------------------------

HELLO_VS_WAITRESS_UVLOOP = 3.0
ACCESS_LOG_VS_NO_LOG = 0.85  # hello req/s with the access log on / with it off
HELLO_VS_UVICORN_ASGI = 0.8
HELLO_VS_WAITRESS_ASYNCIO = 2.0
STREAM_RSS_MIB = 64.0
FILE_VS_STREAM = 1.0  # file_wrapper MiB/s / the same server's generator stream
FILE_VS_GTHREAD = 1.0  # file_wrapper MiB/s / gunicorn gthread's file path
POST_VS_WAITRESS = 2.5
CHUNKS_VS_WAITRESS = 1.0
IDLE_CONNECTIONS = 10_000
IDLE_RSS_MIB = 150.0
IDLE_MEDIAN_MS = 50.0
STARTUP_MS = 300.0
FRAMEWORKS_POINT = 2  # "Real frameworks": point 2 of the performance issue (18)
FRAMEWORK_VS_WAITRESS = 1.3
FRAMEWORK_VS_GTHREAD = 1.0


@dataclass
class Check:
    point: str
    server: str
    target: str
    measured: str
    status: str  # "pass", "FAIL", "n/a"


def evaluate(res: Results, png: Path | None, idle_connections: int) -> list[Check]:
    checks: list[Check] = []
    aiowsgi = [s.name for s in res.servers if s.name in (AIOWSGI_UVLOOP, AIOWSGI_ASYNCIO)]

    def status(ok: bool | None, *involved: tuple[str, str]) -> str:
        if ok is None:
            return "n/a"
        tainted = [f"{srv} ({sc})" for sc, srv in involved
                   if (e := res.get(sc, srv)) is not None and e.has_errors()]
        verdict = "pass" if ok else "FAIL"
        return verdict + (f" (errors: {', '.join(tainted)})" if tainted else "")

    def vs(point: str, server: str, target: str, scenario: str, name: str, ref_server: str,
           factor: float, unit: str, digits: int = 0, ref_scenario: str | None = None,
           higher_is_better: bool = True, strict: bool = False) -> None:
        ref_sc = ref_scenario or scenario
        value = res.median(scenario, server, name)
        ref = res.median(ref_sc, ref_server, name)
        if value is None or not ref:
            checks.append(Check(point, server, target, "n/a (missing figure)", "n/a"))
            return
        r = value / ref
        if higher_is_better:
            ok = r > factor if strict else r >= factor
        else:
            ok = r < factor if strict else r <= factor
        measured = (f"{r:.2f}x ({fmt_num(value, digits)} vs {fmt_num(ref, digits)} {unit}"
                    f"{'' if ref_sc == scenario else ' ' + ref_sc})")
        checks.append(Check(point, server, target, measured,
                            status(ok, (scenario, server), (ref_sc, ref_server))))

    def own_ratio(point: str, server: str, target: str, scenario: str, name: str,
                  ref_name: str, factor: float, number: str, unit: str,
                  higher_is_better: bool = True) -> None:
        """Like vs(), for two figures of one server in one scenario."""
        value, ref = res.median(scenario, server, name), res.median(scenario, server, ref_name)
        if value is None or not ref:
            checks.append(Check(point, server, target, "n/a (missing figure)", "n/a"))
            return
        r = value / ref
        ok = r >= factor if higher_is_better else r <= factor
        measured = f"{r:.2f}x ({number.format(value)} vs {number.format(ref)} {unit})"
        checks.append(Check(point, server, target, measured, status(ok, (scenario, server))))

    def below(point: str, server: str, target: str, scenario: str, name: str, limit: float,
              unit: str, digits: int = 1) -> None:
        value = res.median(scenario, server, name)
        if value is None:
            checks.append(Check(point, server, target, "n/a (missing figure)", "n/a"))
            return
        checks.append(Check(point, server, target, f"{fmt_num(value, digits)} {unit}",
                            status(value < limit, (scenario, server))))

    names = {s.name for s in res.scenarios}
    hello_p = "1. hello, 64 connections"
    if "hello" in names:
        if AIOWSGI_UVLOOP in aiowsgi:
            vs(hello_p, AIOWSGI_UVLOOP, f">= {HELLO_VS_WAITRESS_UVLOOP:g}x waitress req/s",
               "hello", "rps", WAITRESS, HELLO_VS_WAITRESS_UVLOOP, "req/s")
            vs(hello_p, AIOWSGI_UVLOOP, f">= {HELLO_VS_UVICORN_ASGI:g}x uvicorn-asgi req/s",
               "hello", "rps", UVICORN_ASGI, HELLO_VS_UVICORN_ASGI, "req/s")
        if AIOWSGI_ASYNCIO in aiowsgi:
            vs(hello_p, AIOWSGI_ASYNCIO, f">= {HELLO_VS_WAITRESS_ASYNCIO:g}x waitress req/s",
               "hello", "rps", WAITRESS, HELLO_VS_WAITRESS_ASYNCIO, "req/s")
        for srv in aiowsgi:
            vs(hello_p, srv, "p99 latency < waitress's", "hello", "p99_ms", WAITRESS, 1.0,
               "ms", 2, higher_is_better=False, strict=True)
        for srv, no_log in ((AIOWSGI_UVLOOP, AIOWSGI_UVLOOP_NO_LOG),
                            (AIOWSGI_ASYNCIO, AIOWSGI_ASYNCIO_NO_LOG)):
            if srv in aiowsgi and res.get("hello", no_log) is not None:
                vs("18.1 access log on (the default), hello", srv,
                   f">= {ACCESS_LOG_VS_NO_LOG:g}x itself with --no-access-log req/s", "hello",
                   "rps", no_log, ACCESS_LOG_VS_NO_LOG, "req/s")
    for srv in aiowsgi:
        if "latency" in names:
            vs("2. hello, 1 connection", srv, "median latency <= waitress's", "latency",
               "p50_ms", WAITRESS, 1.0, "ms", 3, higher_is_better=False)
        if "stream" in names:
            vs("3. 16 MiB generator stream", srv, "MiB/s >= gunicorn-gthread's", "stream",
               "mib_s", GTHREAD, 1.0, "MiB/s")
            below("3. 16 MiB generator stream", srv, f"peak RSS < {STREAM_RSS_MIB:g} MiB",
                  "stream", "rss_peak_mib", STREAM_RSS_MIB, "MiB")
        if "file" in names and "stream" in names:
            vs("18.6 16 MiB file_wrapper", srv, ">= its generator stream",
               "file", "mib_s", srv, FILE_VS_STREAM, "MiB/s", ref_scenario="stream")
        if "file" in names:
            vs("18.6 16 MiB file_wrapper", srv, ">= gunicorn-gthread's file path",
               "file", "mib_s", GTHREAD, FILE_VS_GTHREAD, "MiB/s")
        if "post" in names:
            vs("5. 64 KiB POST echo", srv, f">= {POST_VS_WAITRESS:g}x waitress req/s", "post",
               "rps", WAITRESS, POST_VS_WAITRESS, "req/s")
        if "chunks" in names:
            vs("6. 1,000 x 100-byte chunks", srv, ">= waitress req/s", "chunks", "rps",
               WAITRESS, CHUNKS_VS_WAITRESS, "req/s")
        if "idle" in names:
            point = f"7. {IDLE_CONNECTIONS:,} idle connections"
            asked = idle_connections
            held = res.median("idle", srv, "idle_established")
            if held is not None and held < asked:
                checks.append(Check(point, srv, f"{asked:,} connections held",
                                    f"{held:,.0f}", "FAIL"))
            start = len(checks)
            below(point, srv, f"RSS < {IDLE_RSS_MIB:g} MiB", "idle", "idle_rss_mib",
                  IDLE_RSS_MIB, "MiB")
            below(point, srv, f"new request median < {IDLE_MEDIAN_MS:g} ms", "idle",
                  "idle_median_ms", IDLE_MEDIAN_MS, "ms", 2)
            if asked < IDLE_CONNECTIONS:  # a smaller run does not answer the question
                for c in checks[start:]:
                    c.measured += f" (with {asked:,} connections)"
                    c.status = "n/a"
        if "startup" in names:
            below("8. start-up", srv, f"first answer < {STARTUP_MS:g} ms (median)", "startup",
                  "startup_ms", STARTUP_MS, "ms", 0)
        for sc in FRAMEWORK_SCENARIOS:
            if sc not in names:
                continue
            point = f"18.{FRAMEWORKS_POINT} real frameworks: {sc}"
            vs(point, srv, f">= {FRAMEWORK_VS_WAITRESS:g}x waitress req/s", sc, "rps",
               WAITRESS, FRAMEWORK_VS_WAITRESS, "req/s")
            vs(point, srv, ">= gunicorn-gthread req/s", sc, "rps", GTHREAD,
               FRAMEWORK_VS_GTHREAD, "req/s")
            for ref in (WAITRESS, GTHREAD):
                vs(point, srv, f"p99 latency < {ref}'s", sc, "p99_ms", ref, 1.0, "ms", 2,
                   higher_is_better=False, strict=True)
        if "cpu" in names:
            point = "18.3 CPU-heavy views (GIL)"
            own_ratio(point, srv, f"fast p99 <= {CPU_FAST_P99_VS_OWN:g}x the slow view's own "
                      "CPU time", "cpu", "mix_fast_p99_ms", "mix_own_cpu_ms",
                      CPU_FAST_P99_VS_OWN, "{:.2f}", "ms", higher_is_better=False)
            vs(point, srv, f">= gunicorn-gthread req/s, {mixapps.THREADS} threads each", "cpu",
               "rps", GTHREAD, CPU_VS_GTHREAD, "req/s")
        if "slow" in names:
            point = "18.4 slow clients"
            own_ratio(point, srv, f"hello req/s with slow clients >= {SLOW_VS_ALONE:g}x "
                      "without", "slow", "rps", "mix_alone_rps", SLOW_VS_ALONE, "{:,.0f}",
                      "req/s")
            with_ = res.median("slow", srv, "rps")
            target = f">= {SLOW_VS_GTHREAD:g}x gunicorn-gthread's, the same mix"
            gthread_rps = res.median("slow", GTHREAD, "rps")
            if with_ is not None and gthread_rps == 0:  # gunicorn answered nothing at all
                checks.append(Check(point, srv, target, f"({with_:,.0f} vs 0 req/s)",
                                    status(with_ > 0, ("slow", srv), ("slow", GTHREAD))))
            else:
                vs(point, srv, target, "slow", "rps", GTHREAD, SLOW_VS_GTHREAD, "req/s")
            entry = res.get("slow", srv)
            if entry is not None and entry.ok_rounds():
                done = sum(_mix_sum(entry, k + "_completed") for k in ("downloads", "uploads"))
                began = sum(_mix_sum(entry, k + "_started") for k in ("downloads", "uploads"))
                checks.append(Check(point, srv, "every slow transfer completed",
                                    f"{done}/{began}", status(done == began, ("slow", srv))))
    # by issue point, stable: 1.-9. the first performance issue's, 18.x the second's
    checks.sort(key=lambda c: [int(n) for n in c.point.split(" ")[0].split(".") if n])
    if png is not None:
        checks.append(Check("9. table and chart", "-", "results.md + PNG chart",
                            str(png) if png.exists() else "no PNG",
                            "pass" if png.exists() else "FAIL"))
    return checks


def summary_table(checks: Sequence[Check]) -> list[str]:
    lines = ["| issue point | server | target | measured | result |", "|---|---|---|---|---|"]
    lines += [f"| {c.point} | {c.server} | {c.target} | {c.measured} | "
              f"{c.status if c.status != 'FAIL' else '**FAIL**'} |" for c in checks]
    return lines


def render(res: Results, checks: Sequence[Check], args: argparse.Namespace,
           argv: Sequence[str]) -> str:
    lines: list[str] = ["# aiowsgi benchmark", ""]
    if checks:
        lines += ["## Summary: the issue's targets", "", *summary_table(checks), ""]
    for scenario in res.scenarios:
        lines += [f"## {scenario.name}: {scenario.title}", ""]
        lines += scenario_table(scenario, res)
        lines.append("")

    lines += [
        "## Settings",
        "",
        (
            f"CPUs: {os.cpu_count()} (usable {len(args.usable_cpus)}; server on CPU "
            f"{args.server_cpu}, wrk and this script on CPU {args.wrk_cpu}) | "
            f"Python {platform.python_version()} "
            f"({platform.python_implementation()}) | {platform.platform()} | "
            f"command: `{shlex.join(argv)}`"
        ),
        "",
        (
            f"{args.rounds} interleaved round(s); load runs of {args.duration} s after "
            f"{args.warmup} s of warm-up: wrk with one thread and `--timeout {WRK_TIMEOUT}`"
            + (", except stream and file: the bulk client (one thread per connection, body "
               "dropped by the kernel with MSG_TRUNC)" if args.bulk_client == "python" else "")
            + "; "
            f"{args.startup_runs} start(s) per round for start-up; "
            f"{args.idle_connections:,} idle connections and {args.idle_requests} new "
            "requests per idle round. Medians over successful rounds; peak RSS is the "
            "server process plus its children, sampled every "
            f"{SAMPLE_INTERVAL * 1000:.0f} ms during the measured run. "
            f"1-min load average before the run: {args.load_before:.2f}; "
            f"the run took {args.elapsed / 60:.1f} min."
        ),
    ]
    if mix_settings(args):
        lines += ["", mix_settings(args)]
    if args.load_before > BUSY_LOAD:
        lines += [
            "",
            f"**Warning: the machine was busy before the run (load {args.load_before:.2f}); "
            "other processes compete for the pinned CPUs, so these figures are unreliable.**",
        ]
    versions = {s.dist: dist_version(s.dist) for s in res.servers}
    shown = [f"{dist} {v}" for dist, v in versions.items() if v]
    if shown:
        lines += ["", "Versions: " + ", ".join(shown)]

    for e in res.entries.values():
        logged = [r for r in e.rounds if r.log_errors]
        if logged:
            per_round = ", ".join(f"{r.log_errors} in round {r.round}" for r in logged)
            lines += [
                "",
                f"**{e.server}** ({e.scenario.name}): the server logged error lines "
                f"({per_round}); the first:",
                "```",
                logged[0].log_excerpt or "",
                "```",
            ]
    failures = [(e, r) for e in res.entries.values() for r in e.rounds if not r.ok]
    for e, r in failures:
        lines += [
            "",
            f"**{e.server}** ({e.scenario.name}) round {r.round} failed: {r.error}",
            f"command: `{shlex.join(e.command)}`",
        ]
        if r.output_tail:
            lines += ["```", r.output_tail, "```"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Report: JSON and the chart
# --------------------------------------------------------------------------

# The metric shown per scenario in the chart: (metric, axis label, reference, lower is better)
CHART_METRIC: dict[str, tuple[str, str, str | None, bool]] = {
    "hello": ("rps", "req/s", WAITRESS, False),
    "latency": ("p50_ms", "median latency, ms (lower is better)", WAITRESS, True),
    "stream": ("mib_s", "MiB/s", GTHREAD, False),
    "file": ("mib_s", "MiB/s", None, False),
    "post": ("rps", "req/s", WAITRESS, False),
    "chunks": ("rps", "req/s", WAITRESS, False),
    "idle": ("idle_rss_mib", "RSS MiB with idle connections (lower is better)", None, True),
    "startup": ("startup_ms", "ms to first answer (lower is better)", WAITRESS, True),
    "flask": ("rps", "req/s", WAITRESS, False),
    "django": ("rps", "req/s", WAITRESS, False),
    "cpu": ("rps", "req/s, /slow + /fast", GTHREAD, False),
    "slow": ("rps", "hello req/s next to the slow clients", GTHREAD, False),
}


def chart_targets(res: Results, scenario: str) -> list[dict[str, Any]]:
    """The issue's targets of a scenario, in the chart's unit (dashed lines)."""

    def times(factor: float, ref_scenario: str, server: str, name: str) -> list[dict[str, Any]]:
        ref = res.median(ref_scenario, server, name)
        if ref is None:
            return []
        where = server if ref_scenario == scenario else f"{server} {ref_scenario}"
        label = where if factor == 1 else f"{factor:g}x {where}"
        return [{"value": factor * ref, "label": label}]

    if scenario == "hello":
        return (times(HELLO_VS_WAITRESS_UVLOOP, "hello", WAITRESS, "rps")
                + times(HELLO_VS_UVICORN_ASGI, "hello", UVICORN_ASGI, "rps"))
    if scenario == "latency":
        return times(1.0, "latency", WAITRESS, "p50_ms")
    if scenario == "stream":
        return times(1.0, "stream", GTHREAD, "mib_s")
    if scenario == "file":
        return (times(FILE_VS_GTHREAD, "file", GTHREAD, "mib_s")
                + times(FILE_VS_STREAM, "stream", AIOWSGI_UVLOOP, "mib_s"))
    if scenario == "post":
        return times(POST_VS_WAITRESS, "post", WAITRESS, "rps")
    if scenario == "chunks":
        return times(CHUNKS_VS_WAITRESS, "chunks", WAITRESS, "rps")
    if scenario == "idle":
        return [{"value": IDLE_RSS_MIB, "label": f"{IDLE_RSS_MIB:g} MiB", "relative": False}]
    if scenario == "startup":
        return [{"value": STARTUP_MS, "label": f"{STARTUP_MS:g} ms", "relative": False}]
    if scenario in FRAMEWORK_SCENARIOS:
        return (times(FRAMEWORK_VS_WAITRESS, scenario, WAITRESS, "rps")
                + times(FRAMEWORK_VS_GTHREAD, scenario, GTHREAD, "rps"))
    if scenario == "cpu":
        return times(CPU_VS_GTHREAD, "cpu", GTHREAD, "rps")
    if scenario == "slow":  # no line at 0 when gunicorn answered nothing
        return times(SLOW_VS_GTHREAD, "slow", GTHREAD, "rps") if res.median(
            "slow", GTHREAD, "rps") else []
    return []


def chart_panels(res: Results) -> list[dict[str, Any]]:
    """What the chart shows, as plain data (also stored in results.json)."""
    panels: list[dict[str, Any]] = []
    for scenario in res.scenarios:
        name, label, ref_server, lower = CHART_METRIC[scenario.name]
        bars: list[dict[str, Any]] = []
        for e in res.in_scenario(scenario.name):
            if e.skipped:
                continue
            value = e.median(name)
            notes: list[str] = []
            if scenario.name == "file":
                own = res.median("stream", e.server, "mib_s")
                if value is not None and own:
                    notes.append(f"{value / own:.2f}x own stream")
                notes.append(f"file_wrapper: {e.file_wrapper() or '?'}")
            elif scenario.name == "idle":
                notes.append(f"new request: median {fmt_num(e.median('idle_median_ms'))} ms")
            elif ref_server is not None:
                ref = res.median(scenario.name, ref_server, name)
                if value is not None and ref and e.server != ref_server:
                    notes.append(f"{value / ref:.2f}x {ref_server}")
            if scenario.name == "stream":
                notes.append(f"RSS {fmt_num(e.median('rss_peak_mib'), 0)} MiB")
            if e.has_errors():
                notes.append("ERRORS")
            bars.append({"server": e.server, "value": value, "note": ", ".join(notes),
                         "reference": e.server in REFERENCE_SERVERS,
                         "aiowsgi": e.server.startswith("aiowsgi")})
        panels.append({"scenario": scenario.name, "title": scenario.title, "label": label,
                       "lower_is_better": lower, "bars": bars,
                       "targets": chart_targets(res, scenario.name)})
    return panels


def results_json(res: Results, checks: Sequence[Check], args: argparse.Namespace,
                 argv: Sequence[str]) -> dict[str, Any]:
    def entry_json(e: Entry) -> dict[str, Any]:
        metrics = ["rps", "p50_ms", "p99_ms", "mib_s", "rss_peak_mib", "server_cpu", "server_core",
                   "wrk_cpu", "client_core"]
        if e.scenario.kind == "startup":
            metrics = ["startup_ms"]
        elif e.scenario.kind in MIX_METRICS:
            metrics = MIX_METRICS[e.scenario.kind]
        elif e.scenario.kind == "idle":
            metrics = ["idle_" + k for k in ("established", "rss_before_mib", "rss_mib",
                                             "per_conn_kib", "median_ms", "p99_ms",
                                             "median_ms_0idle", "cpu_percent")]
        return {
            "server": e.server,
            "command": e.command,
            "version": e.version,
            "skipped": e.skipped,
            "median": {m: e.median(m) for m in metrics},
            "non_2xx_3xx": e.non_2xx_3xx(),
            "socket_errors": e.socket_errors(),
            "file_wrapper": e.file_wrapper(),
            "rounds": [asdict(r) for r in e.rounds],
        }

    return {
        "command": list(argv),
        "settings": {
            "duration": args.duration,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "startup_runs": args.startup_runs,
            "bulk_client": args.bulk_client,
            "idle_connections": args.idle_connections,
            "idle_requests": args.idle_requests,
            "server_cpu": args.server_cpu,
            "wrk_cpu": args.wrk_cpu,
            "cpu_connections": args.cpu_connections,
            "cpu_loops": args.cpu_loops,
            "cpu_loops_ms": args.cpu_loops_ms,
            "slow_clients": args.slow_clients,
            "cpu_threads": mixapps.THREADS,
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "load_before": args.load_before,
        },
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_seconds": args.elapsed,
        "summary": [asdict(c) for c in checks],
        "scenarios": [
            {
                "name": s.name,
                "title": s.title,
                "kind": s.kind,
                "app": s.app,
                "connections": s.connections,
                "method": s.method,
                "path": s.path,
                "request_bytes": len(s.request_body),
                "response_bytes": s.response_size,
                "servers": [entry_json(e) for e in res.in_scenario(s.name)],
            }
            for s in res.scenarios
        ],
        "chart": chart_panels(res),
    }


def write_outputs(res: Results, args: argparse.Namespace, argv: Sequence[str]) -> str:
    """Write results.png, results.md and results.json (and --json); return the markdown."""
    png: Path | None = None
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        png = args.out / "results.png"
        png.unlink(missing_ok=True)
        try:
            from bench import chart
        except ImportError as exc:  # matplotlib is missing
            log(f"no chart: {exc} (pip install matplotlib)")
        else:
            chart.draw(chart_panels(res), png, shlex.join(argv))
    checks = evaluate(res, png, args.idle_connections)
    text = render(res, checks, args, argv)
    data = results_json(res, checks, args, argv)
    if args.out is not None:
        (args.out / "results.md").write_text(text, encoding="utf-8")
        (args.out / "results.json").write_text(json.dumps(data, indent=2) + "\n",
                                               encoding="utf-8")
        log(f"results written to {args.out}/results.{{md,json,png}}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        log(f"results written to {args.json}")
    return text


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value




def _names(parser: argparse.ArgumentParser, option: str, text: str,
           known: Sequence[str]) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        parser.error(f"{option}: unknown name(s): {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(known)}")
    return list(dict.fromkeys(names))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark aiowsgi against other WSGI servers, scenario by scenario.",
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIO_NAMES),
                        help="comma-separated subset of: " + ", ".join(SCENARIO_NAMES))
    parser.add_argument("--servers", default=",".join(SERVERS_BY_NAME),
                        help="comma-separated subset of: " + ", ".join(SERVERS_BY_NAME))
    parser.add_argument("--duration", type=idle.positive_int, default=10,
                        help="whole seconds of each measured load run (default: 10)")
    parser.add_argument("--rounds", type=idle.positive_int, default=3,
                        help="interleaved rounds; the median is reported (default: 3)")
    parser.add_argument("--warmup", type=non_negative_int, default=2,
                        help="whole seconds of discarded load before each measurement; "
                             "0 disables (default: 2)")
    parser.add_argument("--connections", type=idle.positive_int, default=64,
                        help="wrk connections of the hello scenario (default: 64)")
    parser.add_argument("--startup-runs", type=idle.positive_int, default=3,
                        help="starts per server and round in the startup scenario (default: 3)")
    parser.add_argument("--idle-connections", type=idle.positive_int, default=IDLE_CONNECTIONS,
                        help=f"idle connections in the idle scenario (default: "
                             f"{IDLE_CONNECTIONS})")
    parser.add_argument("--idle-requests", type=idle.positive_int, default=50,
                        help="new requests timed in the idle scenario (default: 50)")
    parser.add_argument("--cpu-connections", type=idle.positive_int, default=CPU_CONNECTIONS,
                        help="connections of the cpu scenario, half on /slow and half on "
                             f"/fast (default: {CPU_CONNECTIONS})")
    parser.add_argument("--slow-clients", type=idle.positive_int, default=SLOW_CLIENTS,
                        help="slow clients of the slow scenario, half downloading and half "
                             f"uploading (default: {SLOW_CLIENTS})")
    parser.add_argument("--bulk-client", choices=("python", "wrk"), default="python",
                        help="load generator of the stream and file scenarios: this script's "
                             "threads, which drop the body in the kernel (MSG_TRUNC), or wrk, "
                             "whose 8 KiB reads can be slower than the server (default: python)")
    parser.add_argument("--out", type=Path, metavar="DIR", default=REPO_ROOT / "bench" / "results",
                        help="write results.md, results.json and results.png here "
                             "(default: bench/results, git-ignored)")
    parser.add_argument("--no-out", dest="out", action="store_const", const=None,
                        help="write no files, only stdout")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write the JSON (every round's figures) to PATH")
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the server is pinned to")
    parser.add_argument("--wrk-cpu", type=int, default=1,
                        help="CPU wrk (and this script) is pinned to")
    args = parser.parse_args(argv)

    scenarios = {s.name: s for s in make_scenarios(args.connections, args.cpu_connections,
                                                   args.slow_clients)}
    args.scenario_list = [scenarios[n] for n in _names(parser, "--scenarios", args.scenarios,
                                                       SCENARIO_NAMES)]
    args.server_list = [SERVERS_BY_NAME[n] for n in _names(parser, "--servers", args.servers,
                                                           list(SERVERS_BY_NAME))]
    cpus = args.usable_cpus = os.sched_getaffinity(0)
    for opt, cpu in (("--server-cpu", args.server_cpu), ("--wrk-cpu", args.wrk_cpu)):
        if cpu not in cpus:
            parser.error(f"{opt} {cpu} is not usable here (usable: {sorted(cpus)})")
    if args.server_cpu == args.wrk_cpu:
        parser.error("--server-cpu and --wrk-cpu must differ")
    if args.cpu_connections < 2:
        parser.error("--cpu-connections: at least 2 (half on /slow, half on /fast)")
    args.cpu_loops = args.cpu_loops_ms = None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw_argv)
    for tool, pkg in (("wrk", "wrk"), ("taskset", "util-linux")):
        if shutil.which(tool) is None:
            print(
                f"error: `{tool}` not found on PATH; install it, e.g. `apt-get install {pkg}`",
                file=sys.stderr,
            )
            return 2
    if not Path("/proc/self/statm").exists():
        print("error: this benchmark reads /proc (Linux only)", file=sys.stderr)
        return 2
    shown_argv = ["python", "bench/run.py", *raw_argv]
    args.load_before = os.getloadavg()[0]
    if args.load_before > BUSY_LOAD:
        log(f"warning: 1-min load average is {args.load_before:.2f}; results will be noisy")
    # This script (probes, RSS sampling, the idle client) keeps off the server's CPU.
    os.sched_setaffinity(0, {args.wrk_cpu})
    if any(s.kind == "cpu" for s in args.scenario_list):
        # One loop count for every server: the same work, ~CPU_MS on this machine.
        args.cpu_loops = mixapps.calibrate()
        args.cpu_loops_ms = mixapps.cpu_ms(args.cpu_loops)
        log(f"cpu: /slow spins {args.cpu_loops:,} loops ({args.cpu_loops_ms:.2f} ms here)")

    res = Results(scenarios=args.scenario_list, servers=args.server_list)
    plan: list[tuple[Scenario, Server, Entry]] = []
    told: set[str] = set()
    for scenario in args.scenario_list:
        for server in args.server_list:
            if scenario.name not in server.scenarios:
                continue
            entry = Entry(
                scenario=scenario,
                server=server.name,
                command=["taskset", "-c", str(args.server_cpu),
                         *server_argv(server, "PORT", scenario)],
                version=dist_version(server.dist),
            )
            if scenario.kind == "idle":
                entry.command = ["python", "bench/idle.py", "--loop", str(server.idle_loop),
                                 "--connections", str(args.idle_connections)]
            if not is_installed(server):
                missing = [m for m in server.requires if importlib.util.find_spec(m) is None]
                entry.skipped = "skipped (not installed)"
                if server.name not in told:
                    told.add(server.name)
                    log(f"{server.name}: skipped, not installed ({', '.join(missing)})")
            elif app_missing := [m for m in scenario.requires
                                 if importlib.util.find_spec(m) is None]:
                entry.skipped = f"skipped ({', '.join(app_missing)} not installed)"
                if scenario.name not in told:
                    told.add(scenario.name)
                    log(f"{scenario.name}: skipped, not installed ({', '.join(app_missing)})")
            res.entries[(scenario.name, server.name)] = entry
            if not entry.skipped:
                plan.append((scenario, server, entry))
    if not plan:
        print("error: no selected server takes part in the selected scenarios", file=sys.stderr)
        return 2

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aiowsgi-bench-") as workdir:
        args.workdir = workdir
        args.file_path = Path(workdir) / "file-16MiB.bin"
        apps.ensure_file(args.file_path)
        args.django_db = Path(workdir) / "django.sqlite3"
        if any(sc.name == "django" for sc, _, _ in plan) and (why := prepare_django(args)):
            for sc, _, entry in plan:
                if sc.name == "django":
                    entry.skipped = f"skipped ({why})"
            plan = [p for p in plan if not p[2].skipped]
        for round_no in range(1, args.rounds + 1):
            for scenario, server, entry in plan:
                log(f"[round {round_no}/{args.rounds}] {scenario.name}: {server.name}")
                t0 = time.monotonic()
                result = RUNNERS[scenario.kind](args, scenario, server, round_no)
                entry.rounds.append(result)
                log(f"  {describe(scenario, result)} ({time.monotonic() - t0:.1f} s)")
                if not result.ok and result.output_tail:
                    for line in result.output_tail.splitlines():
                        log(f"    | {line}")
    args.elapsed = time.monotonic() - started
    log(f"done in {args.elapsed:.0f} s")

    print(write_outputs(res, args, shown_argv), end="")
    # Failures are reported in the tables and do not stop the run, but the exit
    # status still says something went wrong (skipped servers do not count).
    return 1 if any(not r.ok for e in res.entries.values() for r in e.rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
