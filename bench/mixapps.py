"""Applications of the two mixed-load scenarios of ``bench/run.py``: ``cpu`` and ``slow``.

``cpu``: CPU-heavy views next to cheap ones, all in one process with the GIL.

- ``/slow`` runs about 5 ms of pure-Python work (:func:`spin`, a loop adding ints, which
  holds the GIL the whole time), then answers like hello.  The loop count comes from the
  ``BENCH_CPU_LOOPS`` environment variable: ``bench/run.py`` calibrates it once per run
  (:func:`calibrate`, on its own CPU before any server starts) and gives every server
  the same count, so every server does the same work.  Without the variable the app
  calibrates itself on its first request.
- ``/`` and ``/fast``: the hello answer.
- ``/__stats``: what the app measured in-process since the last reset, as JSON: the slow
  view's own CPU time (``time.thread_time``, which does not count the time its thread
  waits for the GIL) and wall time, and the lag of the server's event loop, if it has
  one.  ``/__stats?reset=1`` answers the figures and then starts again.

  The loop-lag probe needs no help from the server: on the first ``/__stats`` request
  the app looks for a running asyncio event loop among the process's objects
  (``gc.get_objects()``, once) and, if there is one, schedules a callback on it every
  10 ms that records how late it ran.  On aiowsgi and uvicorn that loop owns the
  sockets; waitress and gunicorn have none; what granian has is named in the answer.

``slow``: a server with slow clients.

- ``/download``: 1 MiB in one bytes object (a rendered page, a JSON document).
- ``/upload``: reads the whole request body from ``wsgi.input`` in 64 KiB reads and
  answers how many bytes it read.
- ``/``: the hello answer, for wrk.

Every answer has ``Content-Length``.  In the cpu scenario every server runs the app on
:data:`THREADS` threads.  uvicorn's ``--interface wsgi`` wraps the app in
``a2wsgi.WSGIMiddleware(app)``, whose pool has 10 threads and no option to change it;
``cpu_a2wsgi`` (and ``slow_a2wsgi``) is the same wrapper with :data:`THREADS` threads,
which ``bench/run.py`` serves with ``--interface asgi3`` instead.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from bench.apps import HELLO_BODY

THREADS = 4  # application threads of every server in the cpu scenario

CPU_MS = 5.0  # the slow view's work, in ms of CPU time
CPU_LOOPS_ENV = "BENCH_CPU_LOOPS"  # its loop count, from bench/run.py
LAG_INTERVAL = 0.01  # seconds between two runs of the loop-lag probe
MAX_SAMPLES = 1_000_000  # per list, so that a forgotten reset cannot eat the memory

SLOW_SIZE = 1024 * 1024  # bytes of a download and of an upload
SLOW_READ = 64 * 1024  # the upload view's read size

_HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO_BODY)))]
_DOWNLOAD_BODY = b"d" * SLOW_SIZE


def _hello(start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", list(_HELLO_HEADERS))
    return [HELLO_BODY]


# -- cpu ---------------------------------------------------------------------------------


def spin(loops: int) -> int:
    """Pure-Python work that holds the GIL: add the ints below ``loops``."""
    total = 0
    for i in range(loops):
        total += i
    return total


def cpu_ms(loops: int, samples: int = 15) -> float:
    """The median CPU time of :func:`spin` over ``samples`` runs, in ms."""
    runs = []
    for _ in range(samples):
        t0 = time.thread_time()
        spin(loops)
        runs.append(time.thread_time() - t0)
    return statistics.median(runs) * 1000


def calibrate(target_ms: float = CPU_MS) -> int:
    """The loop count of :func:`spin` that takes ``target_ms`` of this thread's CPU time
    (on medians of several runs; call it on an idle CPU)."""
    loops = 1000
    while True:  # rough: grow until one run takes a measurable time
        t0 = time.thread_time()
        spin(loops)
        took_ms = (time.thread_time() - t0) * 1000
        if took_ms >= 1:
            break
        loops *= 4
    for _ in range(2):  # refine
        loops = max(1, round(loops * target_ms / took_ms))
        took_ms = cpu_ms(loops)
    return loops


_cpu_loops: int | None = None
_slow_cpu_ms: list[float] = []
_slow_wall_ms: list[float] = []
_lags_ms: list[float] = []
_probe_lock = threading.Lock()
_probe_loop: str | None = None  # the class of the loop the probe runs on
_probe_looked = False


def cpu_loops() -> int:
    global _cpu_loops
    if _cpu_loops is None:
        _cpu_loops = int(os.environ.get(CPU_LOOPS_ENV) or 0) or calibrate()
    return _cpu_loops


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """A running asyncio event loop of this process (another thread's), if there is one."""
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.AbstractEventLoop) and obj.is_running():
            return obj
    return None


def _probe(loop: asyncio.AbstractEventLoop, due: float) -> None:
    """Runs on the loop: record how late, and come back in LAG_INTERVAL."""
    now = time.perf_counter()
    if len(_lags_ms) < MAX_SAMPLES:
        _lags_ms.append((now - due) * 1000)
    loop.call_later(LAG_INTERVAL, _probe, loop, now + LAG_INTERVAL)


def _start_probe() -> None:
    global _probe_looked, _probe_loop
    with _probe_lock:
        if _probe_looked:
            return
        _probe_looked = True
        loop = _running_loop()
        if loop is None:
            return
        _probe_loop = f"{type(loop).__module__}.{type(loop).__qualname__}"
        loop.call_soon_threadsafe(
            lambda: loop.call_later(LAG_INTERVAL, _probe, loop,
                                    time.perf_counter() + LAG_INTERVAL))


def _summary(samples: list[float]) -> dict[str, float | int | None]:
    values = sorted(samples)
    if not values:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "count": len(values),
        "p50_ms": statistics.median(values),
        "p99_ms": values[min(len(values) - 1, int(0.99 * len(values)))],
        "max_ms": values[-1],
    }


def _stats(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    _start_probe()
    # Copies first: the other threads append while this one reads.
    cpu, wall, lags = list(_slow_cpu_ms), list(_slow_wall_ms), list(_lags_ms)
    figures: dict[str, Any] = {
        "loops": cpu_loops(),
        "slow_cpu": _summary(cpu),
        "slow_wall": _summary(wall),
        "loop": _probe_loop,
        "loop_lag": _summary(lags) if _probe_loop else None,
    }
    if "reset" in parse_qs(environ.get("QUERY_STRING", "")):
        for samples in (_slow_cpu_ms, _slow_wall_ms, _lags_ms):
            samples.clear()
    body = json.dumps(figures).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def cpu(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """``/slow``: about 5 ms of CPU work; ``/__stats``: the figures; else hello."""
    path = environ.get("PATH_INFO", "")
    if path == "/slow":
        loops = cpu_loops()
        t0, c0 = time.perf_counter(), time.thread_time()
        spin(loops)
        c1, t1 = time.thread_time(), time.perf_counter()
        if len(_slow_cpu_ms) < MAX_SAMPLES:
            _slow_cpu_ms.append((c1 - c0) * 1000)
            _slow_wall_ms.append((t1 - t0) * 1000)
        return _hello(start_response)
    if path == "/__stats":
        return _stats(environ, start_response)
    cpu_loops()  # the readiness probe's request calibrates, when no count was given
    return _hello(start_response)


# -- slow --------------------------------------------------------------------------------


def slow(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """``/download``: 1 MiB; ``/upload``: reads the body, answers its length; else hello."""
    path = environ.get("PATH_INFO", "")
    if path == "/download":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(SLOW_SIZE))])
        return [_DOWNLOAD_BODY]
    if path == "/upload":
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
        stream = environ["wsgi.input"]
        read = 0
        while remaining > 0:
            data = stream.read(min(SLOW_READ, remaining))
            if not data:
                break
            read += len(data)
            remaining -= len(data)
        body = str(read).encode("ascii")
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    return _hello(start_response)


# -- the same apps on a2wsgi with THREADS threads (uvicorn-wsgi) ------------------------

_APPS: dict[str, WSGIApplication] = {"cpu": cpu, "slow": slow}


def __getattr__(name: str) -> Callable[..., Any]:
    """``cpu_a2wsgi``, ``slow_a2wsgi``: ``a2wsgi.WSGIMiddleware(app, workers=THREADS)``,
    what ``uvicorn --interface wsgi`` makes of the app, with THREADS threads."""
    base = name.removesuffix("_a2wsgi")
    if base == name or base not in _APPS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from a2wsgi import WSGIMiddleware

    # (typed whether a2wsgi is installed or not: the bench extra has it, the test one not)
    app: Callable[..., Any] = WSGIMiddleware(
        _APPS[base], workers=THREADS)  # type: ignore[arg-type, unused-ignore]
    return app
