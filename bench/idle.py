#!/usr/bin/env python3
"""Idle-connection scale: N idle keep-alive connections held by one aiowsgi server.

Starts ``python -m aiowsgi serve bench.apps:app`` as a subprocess, opens N
keep-alive connections to it from this process (each sends one ``GET /`` and
reads the whole response, then stays open and idle), and measures:

- the server's RSS (``VmRSS`` in ``/proc/PID/status``) before the connections
  are opened and with all N of them open, and the difference per connection;
- how many connections were established, and how many are still open (and
  answer one more request, on a sample) after the measurement;
- the latency of fresh requests, each on a new connection, with no idle
  connection and then while the N idle ones are held (median and p99);
- how long the server takes to exit on SIGTERM with the N connections open.

The server gets ``--keepalive-timeout 300`` (the default of 5 s would close the
idle connections long before 10,000 are open) and, when the CLI has the
option, ``--max-connections`` above N plus the fresh requests.  This process
raises its RLIMIT_NOFILE soft limit to the hard limit before it starts the
server, which inherits it.

Usage: python bench/idle.py [--connections N] [--loop uvloop|asyncio]
                            [--requests R] [--json PATH]

Exit status: 0 if every connection was established and held and every fresh
request was answered, 1 if not (the figures are still printed), 2 for setup or
usage errors (limits too low, server did not start).

Standard library only (uvloop for the client when installed).  See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
APP = "bench.apps:app"
BODY = b"Hello, world!"  # what bench.apps:app answers

KEEPALIVE_TIMEOUT = 300  # seconds the server keeps an idle connection open
BATCH = 500  # connections opened at once: well within the listen backlog (2048)
SAMPLE = 20  # idle connections that send a second request at the end
FD_MARGIN = 200  # descriptors beyond the connections, for either process

READY_TIMEOUT = 30.0  # seconds the server gets to print its startup line
OPEN_TIMEOUT = 120.0  # seconds all N connections get to be established
CONNECT_TIMEOUT = 30.0  # seconds one connection gets for connect + first response
REQUEST_TIMEOUT = 10.0  # seconds one fresh request (connect + response) gets
STOP_TIMEOUT = 30.0  # seconds between SIGTERM and SIGKILL
IDLE_WINDOW = 3.0  # seconds over which the server's CPU use with N idle is measured
OUTPUT_TAIL_LINES = 20
TAIL_BYTES = 64 * 1024

BUSY_LOAD = 1.0  # 1-min load average above which the report carries a warning

_READY_RE = re.compile(rb"aiowsgi serving http://[^\s:]+:(\d+)")
_REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode("ascii")
_REQUEST_CLOSE = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode("ascii")

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# What a request to a misbehaving (or overloaded) server can raise here.
_CLIENT_ERRORS = (OSError, TimeoutError, asyncio.IncompleteReadError,
                  asyncio.LimitOverrunError, ValueError)


class BenchError(Exception):
    """The run cannot go on; the message says why."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass
class Latency:
    samples_ms: list[float] = field(default_factory=list)
    failures: int = 0

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.samples_ms) if self.samples_ms else None

    @property
    def p99_ms(self) -> float | None:
        if len(self.samples_ms) < 2:
            return self.samples_ms[0] if self.samples_ms else None
        return statistics.quantiles(self.samples_ms, n=100, method="inclusive")[98]

    @property
    def max_ms(self) -> float | None:
        return max(self.samples_ms) if self.samples_ms else None

    def summary(self) -> dict[str, Any]:
        return {"median_ms": self.median_ms, "p99_ms": self.p99_ms, "max_ms": self.max_ms,
                "answered": len(self.samples_ms), "failures": self.failures}


@dataclass
class Report:
    loop: str
    client_loop: str
    connections: int
    requests: int
    server_command: list[str]
    nofile_soft: int = 0
    load_before: float = 0.0
    server_nofile: str | None = None
    rss_before_kib: int | None = None
    rss_after_kib: int | None = None
    hwm_after_kib: int | None = None
    fds_before: int | None = None
    fds_after: int | None = None
    idle_cpu_percent: float | None = None
    established: int = 0
    open_errors: dict[str, int] = field(default_factory=dict)
    open_seconds: float | None = None
    still_open: int | None = None
    sample_sent: int = 0
    sample_answered: int = 0
    fresh_idle0: Latency = field(default_factory=Latency)
    fresh_loaded: Latency = field(default_factory=Latency)
    stop_seconds: float | None = None
    stop_killed: bool = False
    problems: list[str] = field(default_factory=list)
    server_output: str | None = None

    @property
    def per_connection_bytes(self) -> float | None:
        if self.rss_before_kib is None or self.rss_after_kib is None or not self.established:
            return None
        return (self.rss_after_kib - self.rss_before_kib) * 1024 / self.established

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------
# Limits and /proc
# --------------------------------------------------------------------------


def raise_nofile(needed: int) -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchError(
            f"{needed} open files needed (connections + fresh requests + {FD_MARGIN}), but "
            f"the hard RLIMIT_NOFILE is {hard}: raise it (e.g. `ulimit -Hn`, limits.conf, "
            "systemd LimitNOFILE) or use fewer --connections"
        )
    if soft == resource.RLIM_INFINITY or (hard != resource.RLIM_INFINITY and soft >= hard):
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def check_port_range(connections: int) -> None:
    """The client needs one ephemeral port per connection (same server address)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
    except OSError:
        return
    low, high = (int(x) for x in text.split())
    if high - low + 1 < connections + FD_MARGIN:
        raise BenchError(
            f"the ephemeral port range {low}-{high} has {high - low + 1} ports, fewer "
            f"than {connections} connections + {FD_MARGIN}: widen "
            "net.ipv4.ip_local_port_range or use fewer --connections"
        )


def proc_status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of a process, in KiB."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime 14 and stime 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nofile_of(pid: int) -> str | None:
    """The 'Max open files' soft and hard limits of a process, as /proc shows them."""
    try:
        with open(f"/proc/{pid}/limits", encoding="ascii") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft, hard = line.split()[3:5]
                    return f"{soft} / {hard}"
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------


def server_argv(loop: str, max_connections: int | None) -> list[str]:
    argv = [
        sys.executable, "-m", "aiowsgi", "serve", APP,
        "--host", HOST, "--port", "0", "--loop", loop, "--log-level", "info",
        "--keepalive-timeout", str(KEEPALIVE_TIMEOUT),
    ]  # fmt: skip
    if max_connections is not None:
        argv += ["--max-connections", str(max_connections)]
    return argv


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def cli_has_option(flag: str) -> bool:
    """Whether ``aiowsgi serve`` accepts ``flag`` (options are added over time)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "aiowsgi", "serve", "--help"],
            cwd=REPO_ROOT, env=server_env(), capture_output=True, text=True,
            timeout=READY_TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return False
    return flag in done.stdout


def tail(log_file: IO[bytes], lines: int = OUTPUT_TAIL_LINES) -> str:
    log_file.flush()
    size = log_file.seek(0, os.SEEK_END)
    log_file.seek(max(0, size - TAIL_BYTES))
    text = log_file.read().decode("utf-8", "replace")
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(no output)"


def wait_for_port(proc: subprocess.Popen[bytes], log_file: IO[bytes]) -> int:
    """Poll the server's stderr for its startup line; return the port it names."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        log_file.seek(0)
        match = _READY_RE.search(log_file.read(TAIL_BYTES))
        if match:
            return int(match.group(1))
        if proc.poll() is not None:
            raise BenchError(f"the server exited with status {proc.returncode} before "
                             f"serving:\n{tail(log_file)}")
        time.sleep(0.05)
    raise BenchError(f"no 'aiowsgi serving' line from the server within "
                     f"{READY_TIMEOUT:.0f} s:\n{tail(log_file)}")


def stop(proc: subprocess.Popen[bytes]) -> bool:
    """SIGTERM the server we started, SIGKILL it after STOP_TIMEOUT; True if killed."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
        return False
    except subprocess.TimeoutExpired:
        log(f"  pid {proc.pid} still up {STOP_TIMEOUT:.0f} s after SIGTERM; SIGKILL")
        proc.kill()
        proc.wait()
        return True


# --------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------


async def get(conn: Conn, *, close: bool = False) -> bytes:
    """Send ``GET /`` and read the whole response; return its body (status must be 200)."""
    reader, writer = conn
    writer.write(_REQUEST_CLOSE if close else _REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 200 "):
        raise BenchError(f"unexpected status line {lines[0]!r}")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length is None:
        raise BenchError("response without Content-Length")
    return await reader.readexactly(length)


def close_all(conns: Sequence[Conn]) -> None:
    for _, writer in conns:
        writer.close()


def _error_key(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "TimeoutError (no answer in time)"
    return f"{type(exc).__name__}: {exc}"[:120]


async def open_idle(port: int, deadline: float) -> Conn:
    """One keep-alive connection that has had one request answered."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout_at(min(deadline, loop.time() + CONNECT_TIMEOUT)):
        conn = await asyncio.open_connection(HOST, port)
        try:
            body = await get(conn)
        except BaseException:
            conn[1].close()
            raise
    if body != BODY:
        conn[1].close()
        raise BenchError(f"unexpected body {body[:40]!r}")
    return conn


async def open_many(port: int, n: int, report: Report,
                    server_alive: Callable[[], bool]) -> list[Conn]:
    """Open ``n`` idle connections in batches; stop at the first batch with a failure."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + OPEN_TIMEOUT
    conns: list[Conn] = []
    errors: Counter[str] = Counter()
    progress_every = max(BATCH, n // 10)
    while len(conns) < n:
        size = min(BATCH, n - len(conns))
        results = await asyncio.gather(*(open_idle(port, deadline) for _ in range(size)),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                errors[_error_key(result)] += 1
            else:
                conns.append(result)
        if len(conns) % progress_every < size or len(conns) == n or errors:
            log(f"  {len(conns)} / {n} connections open ({loop.time() - start:.1f} s)")
        if errors or not server_alive():
            break
    report.established = len(conns)
    report.open_errors = dict(errors)
    report.open_seconds = loop.time() - start
    if len(conns) < n:
        why = "; ".join(f"{count} x {key}" for key, count in errors.most_common())
        if loop.time() >= deadline:
            why = f"opening them took over {OPEN_TIMEOUT:.0f} s" + (f" ({why})" if why else "")
        elif not server_alive():
            why = "the server exited" + (f" ({why})" if why else "")
        report.problems.append(f"only {len(conns)} of {n} connections established: {why}")
    return conns


async def fresh_requests(port: int, count: int) -> Latency:
    """``count`` sequential requests, each on a new connection: connect to last byte."""
    result = Latency()
    for _ in range(count):
        t0 = time.perf_counter()
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                reader, writer = await asyncio.open_connection(HOST, port)
                body = await get((reader, writer), close=True)
            elapsed = (time.perf_counter() - t0) * 1000
            if body == BODY:
                result.samples_ms.append(elapsed)
            else:
                result.failures += 1
        except (*_CLIENT_ERRORS, BenchError) as exc:
            log(f"  fresh request failed: {_error_key(exc)}")
            result.failures += 1
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    return result


async def check_sample(conns: Sequence[Conn]) -> tuple[int, int]:
    """One more request on a sample of the idle connections: (sent, answered)."""
    if not conns:
        return 0, 0
    step = max(1, len(conns) // SAMPLE)
    sample = list(conns[::step])[:SAMPLE]

    async def one(conn: Conn) -> bool:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await get(conn) == BODY
        except (*_CLIENT_ERRORS, BenchError):
            return False

    answered = await asyncio.gather(*(one(c) for c in sample))
    return len(sample), sum(answered)


def rss(pid: int, report: Report, attr: str) -> None:
    try:
        status = proc_status(pid)
    except OSError:
        return
    setattr(report, attr, status.get("VmRSS"))
    if attr == "rss_after_kib":
        report.hwm_after_kib = status.get("VmHWM")


async def measure(proc: subprocess.Popen[bytes], port: int, report: Report) -> None:
    pid = proc.pid

    def alive() -> bool:
        return proc.poll() is None

    await fresh_requests(port, 1)  # warm-up, not counted
    log(f"  {report.requests} fresh requests, no idle connection")
    report.fresh_idle0 = await fresh_requests(port, report.requests)
    rss(pid, report, "rss_before_kib")
    report.fds_before = fd_count(pid)
    report.server_nofile = nofile_of(pid)

    log(f"  opening {report.connections} idle connections, {BATCH} at a time")
    conns = await open_many(port, report.connections, report, alive)
    try:
        rss(pid, report, "rss_after_kib")
        report.fds_after = fd_count(pid)
        if not alive():
            raise BenchError(f"the server exited with status {proc.returncode}")
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(IDLE_WINDOW)  # a measurement window, not a synchronisation
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        if cpu0 is not None and cpu1 is not None:
            report.idle_cpu_percent = (cpu1 - cpu0) / (t1 - t0) * 100
        log(f"  {report.requests} fresh requests, {len(conns)} idle connections held")
        report.fresh_loaded = await fresh_requests(port, report.requests)
        report.still_open = sum(1 for r, w in conns if not r.at_eof() and not w.is_closing())
        report.sample_sent, report.sample_answered = await check_sample(conns)
        log(f"  SIGTERM with {len(conns)} connections open")
        t0 = time.perf_counter()
        report.stop_killed = await asyncio.to_thread(stop, proc)
        report.stop_seconds = time.perf_counter() - t0
    finally:
        close_all(conns)

    for latency, when in ((report.fresh_idle0, "with no idle connection"),
                          (report.fresh_loaded, f"with {len(conns)} idle connections")):
        if latency.failures:
            report.problems.append(f"{latency.failures} of {report.requests} fresh requests "
                                   f"{when} failed")
    if report.still_open is not None and report.still_open < len(conns):
        report.problems.append(f"{len(conns) - report.still_open} idle connections were "
                               "closed by the server before the end")
    if report.sample_answered < report.sample_sent:
        report.problems.append(f"only {report.sample_answered} of {report.sample_sent} idle "
                               "connections answered a second request")
    if report.stop_killed:
        report.problems.append(f"the server did not exit within {STOP_TIMEOUT:.0f} s of "
                               "SIGTERM (killed)")


def client_runner() -> tuple[asyncio.Runner, str]:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner(), "asyncio"
    return asyncio.Runner(loop_factory=uvloop.new_event_loop), "uvloop"


def run(args: argparse.Namespace, server_prefix: Sequence[str] = ()) -> Report:
    """Run the measurement; ``server_prefix`` goes before the server's command line
    (``bench/run.py`` passes ``taskset -c CPU``)."""
    needed = args.connections + args.requests + FD_MARGIN
    check_port_range(args.connections + args.requests)
    soft = raise_nofile(needed)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise BenchError(f"RLIMIT_NOFILE soft limit {soft} < {needed} needed")
    max_conns = None
    if cli_has_option("--max-connections"):
        # Room for the N idle connections plus every fresh one (the next one may be
        # accepted before the server has seen the previous one close).
        max_conns = args.connections + args.requests + FD_MARGIN
    runner, client_loop = client_runner()
    argv = server_argv(args.loop, max_conns)
    report = Report(loop=args.loop, client_loop=client_loop, connections=args.connections,
                    requests=args.requests, server_command=argv, nofile_soft=soft,
                    load_before=os.getloadavg()[0])
    if report.load_before > BUSY_LOAD:
        log(f"warning: 1-min load average is {report.load_before:.2f}; latencies will be noisy")
    with tempfile.TemporaryFile(prefix="bench-idle-") as log_file:
        proc = subprocess.Popen(
            [*server_prefix, *argv], cwd=REPO_ROOT, env=server_env(), stdin=subprocess.DEVNULL,
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            port = wait_for_port(proc, log_file)  # a BenchError here is a setup error
            log(f"server up on port {port} (pid {proc.pid}, --loop {args.loop}); "
                f"client on {client_loop}")
            try:
                with runner:
                    runner.run(measure(proc, port, report))
            except BenchError as exc:
                report.problems.append(str(exc))
        finally:
            if stop(proc):
                report.stop_killed = True
            if not report.ok:
                report.server_output = tail(log_file)
    return report


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:,.1f} MiB"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cpu_cell(percent: float | None) -> str:
    if percent is None:
        return "-"
    if percent == 0:  # not one clock tick used in the window
        return f"< {100 / os.sysconf('SC_CLK_TCK') / IDLE_WINDOW:.1f} %"
    return f"{percent:.1f} %"


def render(report: Report, argv: Sequence[str]) -> str:
    per_conn = report.per_connection_bytes
    held = report.established
    rows = [
        ("server loop / client loop", f"{report.loop} / {report.client_loop}"),
        ("connections established", f"{held:,} of {report.connections:,}"
         + (f" in {report.open_seconds:.1f} s" if report.open_seconds is not None else "")),
        ("still open at the end", "-" if report.still_open is None
         else f"{report.still_open:,} (second request: {report.sample_answered} of "
              f"{report.sample_sent} sampled answered)"),
        ("server RSS before", mib(report.rss_before_kib)),
        (f"server RSS with {held:,} idle", mib(report.rss_after_kib)),
        ("server RSS per idle connection",
         "-" if per_conn is None else f"{per_conn / 1024:.1f} KiB"),
        ("server open fds before / after", f"{report.fds_before} / {report.fds_after}"),
        (f"server CPU with {held:,} idle ({IDLE_WINDOW:g} s window)",
         cpu_cell(report.idle_cpu_percent)),
        ("fresh request, 0 idle: median / p99 ms",
         f"{ms(report.fresh_idle0.median_ms)} / {ms(report.fresh_idle0.p99_ms)}"),
        (f"fresh request, {held:,} idle: median / p99 ms",
         f"{ms(report.fresh_loaded.median_ms)} / {ms(report.fresh_loaded.p99_ms)}"),
        ("fresh requests failed (0 idle / loaded)",
         f"{report.fresh_idle0.failures} / {report.fresh_loaded.failures}"),
        (f"exit after SIGTERM with {held:,} open", "-" if report.stop_seconds is None
         else f"{report.stop_seconds:.2f} s" + (" (killed)" if report.stop_killed else "")),
    ]
    lines = ["| measure | value |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    load = report.load_before
    lines += [
        "",
        f"CPUs: {os.cpu_count()} | Python {platform.python_version()} "
        f"({platform.python_implementation()}) | {platform.platform()} | "
        f"command: {shlex.join(argv)}",
        f"Server: `{shlex.join(['python', *report.server_command[1:]])}`; RLIMIT_NOFILE "
        f"(soft / hard) of the server: {report.server_nofile or '?'}; "
        f"{report.requests} fresh requests per measurement, each on a new connection "
        f"(connect to last byte); 1-min load average before the run: {load:.2f}.",
    ]
    if load > BUSY_LOAD:
        lines.append(f"**Warning: the machine was busy before the run (load {load:.2f}); "
                     "latencies are unreliable.**")
    if report.problems:
        lines += ["", "**Problems:**"]
        lines += [f"- {p}" for p in report.problems]
        if report.server_output:
            lines += ["", "Server output (tail):", "```", report.server_output, "```"]
    return "\n".join(lines)


def write_json(path: Path, report: Report, argv: Sequence[str]) -> None:
    data = asdict(report)
    data["fresh_idle0"] = report.fresh_idle0.summary() | {"samples_ms":
                                                          report.fresh_idle0.samples_ms}
    data["fresh_loaded"] = report.fresh_loaded.summary() | {"samples_ms":
                                                            report.fresh_loaded.samples_ms}
    data["per_connection_bytes"] = report.per_connection_bytes
    data["ok"] = report.ok
    data["command"] = list(argv)
    data["machine"] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }
    data["time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Hold N idle keep-alive connections to one aiowsgi server; report its "
                    "RSS and the latency of fresh requests meanwhile.",
    )
    parser.add_argument("--connections", type=positive_int, default=10_000,
                        help="idle keep-alive connections to hold (default: 10000)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="the server's event loop (default: uvloop)")
    parser.add_argument("--requests", type=positive_int, default=50,
                        help="fresh requests per latency measurement (default: 50)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw_argv)
    shown_argv = ["python", "bench/idle.py", *raw_argv]
    if not Path("/proc/self/status").exists():
        print("error: this benchmark reads /proc (Linux only)", file=sys.stderr)
        return 2
    try:
        report = run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(report, shown_argv))
    if args.json is not None:
        write_json(args.json, report, shown_argv)
        log(f"results written to {args.json}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
