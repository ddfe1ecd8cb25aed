#!/usr/bin/env python3
"""Where the time goes in the framework scenarios: the app's own cost per request.

Calls a framework app of ``bench/run.py`` (``flask`` or ``django``, see
``bench/frameworks/``) in this process, in a loop, with no server and no socket: the
environ of the scenario's request (what wrk sends, as a server would present it), a
``start_response`` that does nothing, the body iterated to the end and ``close()``
called.  That is the app's (the framework's and the view's) CPU time per request, the
part no server can save.

Given the benchmark's ``results.json`` (``--results``), it splits each server's CPU time
per request (its CPU % over its req/s, measured during the load run) into the app's part
(this measurement) and the rest: the server's own work (HTTP parsing, the environ, the
hand-off to and from its threads, writing) plus what running the app in a threaded server
costs on top (GIL hand-offs, colder caches).

    python bench/where_time_goes.py                        # both apps
    python bench/where_time_goes.py django --profile 25    # + the 25 costliest functions
    python bench/where_time_goes.py --results bench/results/results.json

The django app gets its own SQLite database (``bench.frameworks.django_site.prepare``) in
a temporary directory, prepared as ``bench/run.py`` prepares it.  Run it pinned to one CPU
(``taskset -c 0``) on a quiet machine, like the benchmark: the figures are CPU time
(``time.process_time``) per request, the median of ``--repeat`` batches.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(REPO_ROOT))

from bench import frameworks  # noqa: E402

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
APPS = ("flask", "django")


_WORKDIR: list[tempfile.TemporaryDirectory[str]] = []


def _workdir() -> tempfile.TemporaryDirectory[str]:
    """A temporary directory for this process (removed at exit)."""
    if not _WORKDIR:
        _WORKDIR.append(tempfile.TemporaryDirectory(prefix="aiowsgi-where-"))
    return _WORKDIR[0]


def load_app(name: str) -> tuple[WSGIApp, str, tuple[tuple[str, str], ...], bytes]:
    """The app, its request path and headers, and the bytes its answer must contain."""
    if name == "flask":
        from bench.frameworks.flask_app import app

        return app, frameworks.FLASK_PATH, (), frameworks.FLASK_EXPECT
    # Django reads its settings (and the database path) once, at the first import.
    if not os.environ.get(frameworks.DJANGO_DB_ENV):
        os.environ[frameworks.DJANGO_DB_ENV] = str(Path(_workdir().name) / "django.sqlite3")
    from bench.frameworks.django_site.prepare import prepare

    prepare()
    from bench.frameworks.django_site.wsgi import application

    return (application, frameworks.DJANGO_PATH, frameworks.DJANGO_HEADERS,
            frameworks.DJANGO_EXPECT)


def base_environ(path: str, headers: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """What a server gives the app for wrk's ``GET path`` (Host and the scenario's headers)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }  # fmt: skip
    for name, value in headers:
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def call(app: WSGIApp, environ: dict[str, Any]) -> bytes:
    """One request: a fresh environ (apps write into it), start_response a no-op."""

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return None

    env = dict(environ)
    env["wsgi.input"] = io.BytesIO()
    body = app(env, start_response)
    try:
        return b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def measure(app: WSGIApp, environ: dict[str, Any], requests: int, repeat: int) -> float:
    """CPU µs per request: the median over ``repeat`` batches of ``requests`` calls."""
    per_request: list[float] = []
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(requests):
            call(app, environ)
        per_request.append((time.process_time() - t0) / requests * 1e6)
    return statistics.median(per_request)


def profile(app: WSGIApp, environ: dict[str, Any], requests: int, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        call(app, environ)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def split_table(name: str, app_us: float, results: dict[str, Any]) -> list[str]:
    """Each server's CPU µs/request in the results, split into the app's and the rest."""
    scenario = next((s for s in results["scenarios"] if s["name"] == name), None)
    if scenario is None:
        return [f"({name}: not in the results file)"]
    lines = [
        "| server | req/s | server CPU µs/req | app µs/req (in-process) | rest µs/req "
        "| app share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for entry in scenario["servers"]:
        median = entry.get("median") or {}
        cpu, rps = median.get("server_cpu"), median.get("rps")
        if entry.get("skipped") or cpu is None or not rps:
            lines.append(f"| {entry['server']} | - | - | {app_us:,.0f} | - | - |")
            continue
        total = cpu / 100 / rps * 1e6
        lines.append(f"| {entry['server']} | {rps:,.0f} | {total:,.0f} | {app_us:,.0f} | "
                     f"{total - app_us:,.0f} | {app_us / total * 100:.0f} % |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The framework apps' own CPU time per request.")
    parser.add_argument("apps", nargs="*", metavar="APP",
                        help="flask and/or django (default: both)")
    parser.add_argument("--requests", type=int, default=2000, help="calls per batch (2000)")
    parser.add_argument("--repeat", type=int, default=5, help="batches; the median (5)")
    parser.add_argument("--warmup", type=int, default=500, help="calls first, not timed (500)")
    parser.add_argument("--profile", type=int, metavar="N", default=0,
                        help="also profile one batch (cProfile) and list the N costliest "
                             "functions by own time")
    parser.add_argument("--results", type=Path, metavar="JSON",
                        help="bench/run.py's results.json: split each server's CPU µs/request")
    args = parser.parse_args(argv)
    if unknown := set(args.apps) - set(APPS):
        parser.error(f"unknown app(s): {', '.join(sorted(unknown))}; choose from flask, django")
    results = json.loads(args.results.read_text(encoding="utf-8")) if args.results else None

    print(f"Python {sys.version.split()[0]}, CPUs allowed: {sorted(os.sched_getaffinity(0))}")
    for name in dict.fromkeys(args.apps or APPS):
        app, path, headers, expect = load_app(name)
        environ = base_environ(path, headers)
        body = call(app, environ)
        if expect not in body:
            print(f"{name}: unexpected answer {body[:200]!r}", file=sys.stderr)
            return 1
        for _ in range(args.warmup):
            call(app, environ)
        app_us = measure(app, environ, args.requests, args.repeat)
        print(f"\n## {name}: GET {path}, {len(body):,} body bytes\n")
        print(f"app (in-process, no server): {app_us:,.1f} µs CPU per request "
              f"(median of {args.repeat} x {args.requests}); at most "
              f"{1e6 / app_us:,.0f} req/s on one CPU with a server that costs nothing")
        if results is not None:
            print("\n" + "\n".join(split_table(name, app_us, results)))
        if args.profile:
            print("\n```\n" + profile(app, environ, args.requests, args.profile).strip()
                  + "\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
