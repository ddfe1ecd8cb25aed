#!/usr/bin/env python3
"""Throughput/latency benchmark: aiowsgi against other WSGI servers.

Each server is started as a subprocess pinned to one CPU (``taskset``), loaded
with ``wrk`` pinned to another CPU, then stopped again.  Rounds are
interleaved (round 1 runs every server, then round 2, ...) and the median of
the rounds is reported per server as a markdown table on stdout.  Progress and
diagnostics go to stderr.

Usage: python bench/run.py [--duration S] [--rounds N] [--servers a,b] ...

Exit status: 0 if every started server completed every round, 1 if any round
failed (the others still ran and are reported), 2 for setup/usage errors.

Standard library only.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
APP = "bench.apps:app"

READY_TIMEOUT = 30.0  # seconds a server gets to answer its first request
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
WRK_GRACE = 30.0  # seconds wrk may run beyond its -d before it is killed
OUTPUT_TAIL_LINES = 20
TAIL_BYTES = 64 * 1024  # only the end of a server's output is read back

BUSY_LOAD = 1.0  # 1-min load average above which the report carries a warning

REFERENCE_WAITRESS = "waitress"
REFERENCE_AIOWSGI = "aiowsgi-uvloop"


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
    # Builds the command line (without taskset) for a given port.
    argv: Callable[[str], list[str]]


def _py(*args: str) -> list[str]:
    return [sys.executable, *args]


SERVERS: tuple[Server, ...] = (
    Server(
        "aiowsgi-uvloop",
        ("aiowsgi", "uvloop"),
        "aiowsgi",
        lambda port: _py(
            "-m", "aiowsgi", "serve", APP,
            "--host", HOST, "--port", port,
            "--loop", "uvloop", "--log-level", "warning",
        ),
    ),
    Server(
        "aiowsgi-asyncio",
        ("aiowsgi",),
        "aiowsgi",
        lambda port: _py(
            "-m", "aiowsgi", "serve", APP,
            "--host", HOST, "--port", port,
            "--loop", "asyncio", "--log-level", "warning",
        ),
    ),
    Server(
        "waitress",
        ("waitress",),
        "waitress",
        # Default of 4 worker threads.
        lambda port: _py(
            "-m", "waitress", f"--host={HOST}", f"--port={port}", APP,
        ),
    ),
    Server(
        "gunicorn-gthread",
        ("gunicorn",),
        "gunicorn",
        lambda port: _py(
            "-m", "gunicorn", "-k", "gthread", "--threads", "4", "-w", "1",
            "-b", f"{HOST}:{port}", "--log-level", "warning", APP,
        ),
    ),
    Server(
        "uvicorn-wsgi",
        # uvicorn wraps WSGI apps with a2wsgi when it is installed (its own
        # WSGI middleware is deprecated), so a2wsgi is part of this entry.
        ("uvicorn", "a2wsgi"),
        "uvicorn",
        lambda port: _py(
            "-m", "uvicorn", "--interface", "wsgi",
            "--host", HOST, "--port", port,
            "--log-level", "warning", "--no-access-log", APP,
        ),
    ),
    Server(
        "granian",
        ("granian",),
        "granian",
        lambda port: _py(
            "-m", "granian", "--interface", "wsgi",
            "--host", HOST, "--port", port, "--workers", "1",
            "--log-level", "warning", "--no-access-log", APP,
        ),
    ),
)  # fmt: skip

SERVERS_BY_NAME = {s.name: s for s in SERVERS}


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

    @property
    def socket_error_total(self) -> int:
        return sum(self.socket_errors.values())


@dataclass
class RoundResult:
    round: int
    ok: bool
    wrk: WrkResult | None = None
    error: str | None = None
    output_tail: str | None = None


@dataclass
class ServerReport:
    name: str
    command: list[str]
    version: str | None
    skipped: str | None = None
    rounds: list[RoundResult] = field(default_factory=list)

    def ok_results(self) -> list[WrkResult]:
        return [r.wrk for r in self.rounds if r.ok and r.wrk is not None]

    def median(self, attr: str) -> float | None:
        values = [getattr(w, attr) for w in self.ok_results()]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def non_2xx_3xx(self) -> int:
        return sum(w.non_2xx_3xx for w in self.ok_results())

    def socket_errors(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for w in self.ok_results():
            for kind, n in w.socket_errors.items():
                total[kind] = total.get(kind, 0) + n
        return total


# --------------------------------------------------------------------------
# wrk output parsing
# --------------------------------------------------------------------------

_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_RPS_RE = re.compile(r"^Requests/sec:\s+([0-9.]+)\s*$", re.MULTILINE)
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
    )


# --------------------------------------------------------------------------
# Process handling
# --------------------------------------------------------------------------


class ServerFailed(Exception):
    def __init__(self, message: str, output_tail: str | None = None) -> None:
        super().__init__(message)
        self.output_tail = output_tail


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def is_installed(server: Server) -> bool:
    # Servers run with cwd=REPO_ROOT, so an in-tree aiowsgi counts as installed.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return all(importlib.util.find_spec(mod) is not None for mod in server.requires)


def dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def tail(log_file: IO[bytes], lines: int = OUTPUT_TAIL_LINES) -> str:
    log_file.flush()
    size = log_file.seek(0, os.SEEK_END)
    log_file.seek(max(0, size - TAIL_BYTES))
    text = log_file.read().decode("utf-8", "replace")
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(no output)"


def probe(port: int, timeout: float = 1.0) -> bool:
    """True if something on ``port`` answers a GET with an HTTP status line."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(
                f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode(
                    "ascii"
                )
            )
            return s.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def wait_ready(proc: subprocess.Popen[bytes], port: int, log_file: IO[bytes]) -> float:
    """Poll until the server answers; return the seconds it took."""
    start = time.monotonic()
    deadline = start + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(
                f"exited with status {proc.returncode} before accepting requests",
                tail(log_file),
            )
        if probe(port):
            return time.monotonic() - start
        time.sleep(0.1)
    raise ServerFailed(
        f"did not answer on {HOST}:{port} within {READY_TIMEOUT:.0f} s",
        tail(log_file),
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


def run_wrk(args: argparse.Namespace, port: int, duration: int) -> WrkResult:
    cmd = [
        "taskset", "-c", str(args.wrk_cpu),
        "wrk", "-t1", f"-c{args.connections}", f"-d{duration}s",
        "--latency", f"http://{HOST}:{port}/",
    ]  # fmt: skip
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
    if done.returncode != 0:
        raise ServerFailed(
            f"wrk exited with status {done.returncode}",
            (done.stderr or done.stdout).strip()[-2000:],
        )
    try:
        return parse_wrk(done.stdout)
    except ValueError as exc:
        raise ServerFailed(f"could not parse wrk output: {exc}", done.stdout) from exc


def bench_once(args: argparse.Namespace, server: Server, round_no: int) -> RoundResult:
    port = free_port()
    cmd = ["taskset", "-c", str(args.server_cpu), *server.argv(str(port))]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryFile(prefix=f"bench-{server.name}-") as log_file:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            took = wait_ready(proc, port, log_file)
            log(f"  up on port {port} after {took:.2f} s (pid {proc.pid})")
            if args.warmup > 0:
                run_wrk(args, port, args.warmup)
            result = run_wrk(args, port, args.duration)
            if proc.poll() is not None:
                raise ServerFailed(
                    f"exited with status {proc.returncode} during the run",
                    tail(log_file),
                )
            return RoundResult(round=round_no, ok=True, wrk=result)
        except ServerFailed as exc:
            output = exc.output_tail
            if output is None:
                output = tail(log_file)
            return RoundResult(round=round_no, ok=False, error=str(exc), output_tail=output)
        finally:
            stop(proc)


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def fmt_num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "n/a"
    return f"{value / reference:.2f}x"


def errors_cell(report: ServerReport) -> str:
    parts: list[str] = []
    failed = [r for r in report.rounds if not r.ok]
    if failed:
        parts.append(f"{len(failed)}/{len(report.rounds)} rounds failed")
    if report.non_2xx_3xx():
        parts.append(f"**non-2xx/3xx: {report.non_2xx_3xx()}**")
    sockerr = report.socket_errors()
    if sockerr:
        detail = ", ".join(f"{k} {v}" for k, v in sockerr.items())
        parts.append(f"**socket errors: {detail}**")
    return "; ".join(parts) or "none"


def render(reports: Sequence[ServerReport], args: argparse.Namespace, argv: Sequence[str]) -> str:
    by_name = {r.name: r for r in reports}
    ref_w = by_name.get(REFERENCE_WAITRESS)
    ref_a = by_name.get(REFERENCE_AIOWSGI)
    waitress_rps = ref_w.median("requests_per_sec") if ref_w else None
    aiowsgi_rps = ref_a.median("requests_per_sec") if ref_a else None

    lines = [
        (
            "| server | req/s (median) | p50 ms | p99 ms "
            "| ratio vs waitress (req/s) | ratio vs aiowsgi-uvloop | errors |"
        ),
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in reports:
        if r.skipped:
            lines.append(f"| {r.name} | {r.skipped} | - | - | - | - | - |")
            continue
        rps = r.median("requests_per_sec")
        if rps is None:
            lines.append(f"| {r.name} | failed | - | - | - | - | {errors_cell(r)} |")
            continue
        lines.append(
            f"| {r.name} | {fmt_num(rps, 0)} | {fmt_num(r.median('p50_ms'))} "
            f"| {fmt_num(r.median('p99_ms'))} | {ratio(rps, waitress_rps)} "
            f"| {ratio(rps, aiowsgi_rps)} | {errors_cell(r)} |"
        )

    affinity = sorted(os.sched_getaffinity(0))
    lines += [
        "",
        (
            f"CPUs: {os.cpu_count()} (usable {len(affinity)}; server on CPU "
            f"{args.server_cpu}, wrk on CPU {args.wrk_cpu}) | "
            f"Python {platform.python_version()} "
            f"({platform.python_implementation()}) | {platform.platform()} | "
            f"command: {shlex.join(argv)}"
        ),
        (
            f"Settings: {args.rounds} round(s) x {args.duration} s, "
            f"{args.connections} connections, warmup {args.warmup} s; "
            "medians over successful rounds; "
            f"1-min load average before the run: {args.load_before:.2f}."
        ),
    ]
    if args.load_before > BUSY_LOAD:
        lines.append(
            f"**Warning: the machine was busy before the run (load {args.load_before:.2f}); "
            "other processes compete for the pinned CPUs, so these figures are unreliable.**"
        )
    versions = [f"{r.name} {r.version}" for r in reports if r.version and not r.skipped]
    if versions:
        lines.append("Versions: " + ", ".join(versions))

    failures = [(r, rr) for r in reports for rr in r.rounds if not rr.ok]
    for r, rr in failures:
        lines += [
            "",
            f"**{r.name}** round {rr.round} failed: {rr.error}",
            f"command: `{shlex.join(r.command)}`",
        ]
        if rr.output_tail:
            lines += ["```", rr.output_tail, "```"]
    return "\n".join(lines)


def write_json(
    path: Path,
    reports: Sequence[ServerReport],
    args: argparse.Namespace,
    argv: Sequence[str],
) -> None:
    def server_json(r: ServerReport) -> dict[str, Any]:
        return {
            "name": r.name,
            "command": r.command,
            "version": r.version,
            "skipped": r.skipped,
            "median": {
                "requests_per_sec": r.median("requests_per_sec"),
                "p50_ms": r.median("p50_ms"),
                "p99_ms": r.median("p99_ms"),
            },
            "non_2xx_3xx": r.non_2xx_3xx(),
            "socket_errors": r.socket_errors(),
            "rounds": [asdict(rr) for rr in r.rounds],
        }

    data = {
        "command": list(argv),
        "settings": {
            "duration": args.duration,
            "connections": args.connections,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "server_cpu": args.server_cpu,
            "wrk_cpu": args.wrk_cpu,
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "load_before": args.load_before,
        },
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "servers": [server_json(r) for r in reports],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark aiowsgi against other WSGI servers with wrk.",
    )
    parser.add_argument(
        "--duration",
        type=positive_int,
        default=10,
        help="whole seconds per measured wrk run (default: 10)",
    )
    parser.add_argument(
        "--connections",
        type=positive_int,
        default=64,
        help="wrk connections (default: 64)",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="interleaved rounds; the median is reported (default: 3)",
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS_BY_NAME),
        help="comma-separated subset of: " + ", ".join(SERVERS_BY_NAME),
    )
    parser.add_argument(
        "--warmup",
        type=non_negative_int,
        default=2,
        help="whole seconds of discarded wrk run before each measurement; 0 disables (default: 2)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="also write results as JSON",
    )
    parser.add_argument(
        "--server-cpu",
        type=int,
        default=0,
        help="CPU the server is pinned to",
    )
    parser.add_argument(
        "--wrk-cpu", type=int, default=1, help="CPU wrk is pinned to",
    )  # fmt: skip
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVERS_BY_NAME]
    if unknown or not names:
        parser.error(
            f"unknown server(s): {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(SERVERS_BY_NAME)}"
        )
    args.server_list = [SERVERS_BY_NAME[n] for n in dict.fromkeys(names)]
    cpus = os.sched_getaffinity(0)
    for opt, cpu in (("--server-cpu", args.server_cpu), ("--wrk-cpu", args.wrk_cpu)):
        if cpu not in cpus:
            parser.error(f"{opt} {cpu} is not usable here (usable: {sorted(cpus)})")
    if args.server_cpu == args.wrk_cpu:
        parser.error("--server-cpu and --wrk-cpu must differ")
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
    shown_argv = ["python", "bench/run.py", *raw_argv]
    args.load_before = os.getloadavg()[0]
    if args.load_before > BUSY_LOAD:
        log(f"warning: 1-min load average is {args.load_before:.2f}; results will be noisy")

    reports: list[ServerReport] = []
    for server in args.server_list:
        report = ServerReport(
            name=server.name,
            command=["taskset", "-c", str(args.server_cpu), *server.argv("PORT")],
            version=dist_version(server.dist),
        )
        if not is_installed(server):
            missing = [m for m in server.requires if importlib.util.find_spec(m) is None]
            report.skipped = "skipped (not installed)"
            log(f"{server.name}: skipped, not installed ({', '.join(missing)})")
        reports.append(report)

    active = [(s, r) for s, r in zip(args.server_list, reports, strict=True) if not r.skipped]
    for round_no in range(1, args.rounds + 1):
        for server, report in active:
            log(f"[round {round_no}/{args.rounds}] {server.name}")
            result = bench_once(args, server, round_no)
            report.rounds.append(result)
            if result.ok and result.wrk is not None:
                w = result.wrk
                log(
                    f"  {w.requests_per_sec:,.0f} req/s, p50 {fmt_num(w.p50_ms)} ms, "
                    f"p99 {fmt_num(w.p99_ms)} ms, non-2xx/3xx {w.non_2xx_3xx}, "
                    f"socket errors {w.socket_error_total}"
                )
            else:
                log(f"  FAILED: {result.error}")
                if result.output_tail:
                    for line in result.output_tail.splitlines():
                        log(f"    | {line}")

    print(render(reports, args, shown_argv))
    if args.json is not None:
        write_json(args.json, reports, args, shown_argv)
        log(f"results written to {args.json}")
    # Failures are reported in the table and do not stop the run, but the exit
    # status still says something went wrong (skipped servers do not count).
    return 1 if any(not rr.ok for r in reports for rr in r.rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
