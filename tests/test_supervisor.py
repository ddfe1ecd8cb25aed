"""The supervisor: --reload restarts the server when a Python file changes, on the same
socket; --workers: several processes on the same sockets, restarted, replaced, drained."""

from __future__ import annotations

import os
import re
import signal
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .process import PID_APP, SAFETY, ServeProcess, app_module, children, run_aiowsgi, wait_for


def test_reload_on_change(tmp_path: Path) -> None:
    pytest.importorskip("watchfiles")
    module = tmp_path / "devapp.py"
    module.write_text(app_module("before"))
    with ServeProcess("devapp:app", "--app-dir", str(tmp_path), "--port", "0", "--reload",
                      "--reload-dir", str(tmp_path), "--no-access-log",
                      ready="supervisor") as srv:
        assert srv.get() == b"before"
        module.write_text(app_module("after"))
        # the same port answers throughout
        wait_for(lambda: srv.get() == b"after", "the reload")
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0


# -- --workers ------------------------------------------------------------------------


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[ServeProcess]:
    """A supervisor of two workers of :data:`PID_APP`, killed at the end if still running."""
    (tmp_path / "pidapp.py").write_text(PID_APP)
    with ServeProcess("pidapp:app", "--app-dir", str(tmp_path), "--port", "0", "--workers",
                      "2", "--no-access-log", ready="supervisor") as server:
        yield server


def test_workers_serve_and_drain_on_sigterm(supervised: ServeProcess) -> None:
    workers = supervised.workers()
    assert len(workers) == 2
    assert supervised.pid() in workers
    assert supervised.stop() == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_a_dead_worker_is_replaced(supervised: ServeProcess) -> None:
    first = supervised.workers()
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in supervised.workers() and len(supervised.workers()) == 2,
             "a replacement worker")
    assert supervised.pid() in supervised.workers()
    assert supervised.stop() == 0


def test_sighup_replaces_every_worker_without_refusing_a_connection(
        supervised: ServeProcess) -> None:
    before = supervised.workers()
    failures: list[BaseException] = []
    served = 0
    done = threading.Event()

    def hammer() -> None:
        nonlocal served
        while not done.is_set():
            try:
                supervised.pid()
                served += 1
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                failures.append(exc)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        wait_for(lambda: served > 10, "requests before the reload")
        supervised.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(supervised.workers()) == 2 and not (supervised.workers() & before),
                 "every worker replaced")
        count = served
        wait_for(lambda: served > count + 10, "requests after the reload")
    finally:
        done.set()
        thread.join(SAFETY)
    assert failures == []
    assert supervised.stop() == 0


def test_an_app_that_cannot_load_exits_1_before_any_worker(tmp_path: Path) -> None:
    result = run_aiowsgi("serve", "nosuchmodule:app", "--workers", "2", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "aiowsgi: error: cannot import module 'nosuchmodule': No module named 'nosuchmodule'"]


SLOW_APP = """
import os, time

from tests.waiting import SAFETY

def app(environ, start_response):
    open(os.environ["MARKER"], "w").close()
    deadline = time.monotonic() + SAFETY
    while not os.path.exists(os.environ["RELEASE"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"finished"]
"""


def test_sigterm_to_the_whole_group_still_drains(tmp_path: Path) -> None:
    """systemd's default KillMode signals every process: a worker then gets SIGTERM from
    systemd and from the supervisor, and must still finish its request."""
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    marker, release = tmp_path / "entered", tmp_path / "release"
    with ServeProcess("slowapp:app", "--app-dir", str(tmp_path), "--port", "0", "--workers",
                      "2", "--no-access-log", ready="supervisor", new_session=True,
                      env={"MARKER": str(marker), "RELEASE": str(release)}) as srv:
        result: list[bytes] = []

        def request() -> None:
            with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/", timeout=SAFETY) as r:
                result.append(r.read())

        client = threading.Thread(target=request)
        client.start()
        wait_for(marker.exists, "the request to reach the app")
        os.killpg(srv.proc.pid, signal.SIGTERM)  # the supervisor and every worker
        wait_for(lambda: sum("shutting down gracefully" in line for line in srv.lines) >= 2,
                 "both workers to begin draining")
        release.touch()
        client.join(SAFETY)
        assert result == [b"finished"]
        assert srv.wait() == 0


# An app whose import, in a worker only (the supervisor's own check imports it at once),
# announces itself with gate/importing-PID and waits for gate/release-PID or gate/all.
GATED_APP = """
import os, time

from tests.waiting import SAFETY

worker = os.environ.get("AIOWSGI_SUPERVISED") == "1"
if worker or os.environ.get("GATE_MAIN"):  # the supervisor's (or lone server's) import too
    gate, pid = os.environ["GATE"], os.getpid()
    open(os.path.join(gate, f"{'' if worker else 'main-'}importing-{pid}"), "w").close()
    deadline = time.monotonic() + 2 * SAFETY  # a safety net: the test releases or kills it
    while not any(os.path.exists(os.path.join(gate, name)) for name in (f"release-{pid}", "all")):
        assert time.monotonic() < deadline, "never released"
        time.sleep(0.01)

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""

ERROR_LINE = re.compile(r"\[(WARNING|ERROR|CRITICAL)\]|Traceback|KeyboardInterrupt|error|"
                        r"did not start serving", re.IGNORECASE)


def importing(gate: Path) -> list[int]:
    """The workers whose import of the app has begun."""
    return [int(entry.name.split("-")[1]) for entry in gate.glob("importing-*")]


def gated_server(tmp_path: Path, *, released: bool, gate_main: bool = False,
                 workers: int = 2) -> tuple[ServeProcess, Path]:
    (tmp_path / "gatedapp.py").write_text(GATED_APP)
    gate = tmp_path / "gate"
    gate.mkdir()
    if released:
        (gate / "all").touch()
    env = {"GATE": str(gate), **({"GATE_MAIN": "1"} if gate_main else {})}
    srv = ServeProcess("gatedapp:app", "--app-dir", str(tmp_path), "--port", "0", "--workers",
                       str(workers), "--no-access-log", ready=None, new_session=True, env=env)
    return srv, gate


# When the signal comes, and whether the workers may import the app at once.
MOMENTS = {
    # the supervisor itself imports the app (before it binds and starts any worker)
    "supervisor-importing": False,
    # the first worker exists: the signal finds it starting Python, before its handlers
    "first-worker-spawned": False,
    # the same, but nothing holds the worker back: the signal lands somewhere in its start
    "first-worker-starting": True,
    "first-worker-importing": False,
    "second-worker-importing": False,  # the first one serves
    "both-serving": True,
}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
@pytest.mark.parametrize("moment", MOMENTS)
def test_a_stop_signal_to_the_group_at_any_moment_of_the_start_is_no_failure(
        tmp_path: Path, moment: str, signum: signal.Signals) -> None:
    """An orchestrator may stop the pod at once: supervisor and workers all get the signal,
    whatever each of them is doing, and the stop is clean."""
    srv, gate = gated_server(tmp_path, released=MOMENTS[moment],
                             gate_main=moment == "supervisor-importing")
    with srv:
        if moment == "supervisor-importing":
            wait_for(lambda: list(gate.glob("main-importing-*")), "the supervisor's import")
        elif moment in ("first-worker-spawned", "first-worker-starting"):
            wait_for(lambda: children(srv.proc.pid), "the first worker")
        elif moment == "first-worker-importing":
            wait_for(lambda: importing(gate), "the first worker to import the app")
        elif moment == "second-worker-importing":
            wait_for(lambda: importing(gate), "the first worker to import the app")
            (gate / f"release-{importing(gate)[0]}").touch()
            wait_for(lambda: len(importing(gate)) == 2, "the second worker to import the app")
        else:
            wait_for(lambda: any("supervisor" in line for line in srv.lines),
                     "both workers to serve")
        os.killpg(srv.proc.pid, signum)  # the supervisor and every worker
        code = srv.wait()
        lines = srv.output()  # once every worker has gone too
        assert (code, [line for line in lines if ERROR_LINE.search(line)]) == (0, []), \
            "".join(lines)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_stop_signal_while_a_lone_server_imports_is_no_failure(
        tmp_path: Path, signum: signal.Signals) -> None:
    """Without --workers too: a slow import stopped by the terminal or the orchestrator
    exits 0 without a traceback."""
    srv, gate = gated_server(tmp_path, released=False, gate_main=True, workers=1)
    with srv:
        wait_for(lambda: list(gate.glob("main-importing-*")), "the server's import")
        os.killpg(srv.proc.pid, signum)
        code = srv.wait()
        lines = srv.output()
        assert (code, [line for line in lines if ERROR_LINE.search(line)]) == (0, []), \
            "".join(lines)


FAILING_APP = """
import os

if os.environ.get("AIOWSGI_SUPERVISED") == "1":
    raise RuntimeError("only in a worker")

def app(environ, start_response):
    start_response("200 OK", [])
    return [b""]
"""


def test_a_worker_that_cannot_load_the_app_stops_the_supervisor_with_1(tmp_path: Path) -> None:
    (tmp_path / "failingapp.py").write_text(FAILING_APP)
    with ServeProcess("failingapp:app", "--app-dir", str(tmp_path), "--port", "0",
                      "--workers", "2", ready=None, new_session=True) as srv:
        assert srv.wait() == 1
        text = "".join(srv.output())
    assert "error while importing 'failingapp': RuntimeError: only in a worker" in text
    assert "did not start serving" in text


def test_workers_take_their_options_from_the_command_line_not_the_environment(
        tmp_path: Path) -> None:
    """The command line wins in the workers too: a variable it overrode, or one that only
    the supervisor acts on (AIOWSGI_RELOAD), does not reach them."""
    (tmp_path / "pidapp.py").write_text(PID_APP)
    env = {"AIOWSGI_THREADS": "4", "AIOWSGI_RELOAD": "true",
           "AIOWSGI_RELOAD_DIR": str(tmp_path)}
    with ServeProcess("pidapp:app", "--app-dir", str(tmp_path), "--port", "0", "--workers",
                      "2", "--threads", "8", "--no-access-log", ready="supervisor",
                      new_session=True, env=env) as srv:
        started = [line for line in srv.lines if "aiowsgi serving" in line]
        assert len(started) == 2 and all("8 threads" in line for line in started), srv.lines
        assert not any("supervisor" in line for line in started)
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0
        assert sum("aiowsgi supervisor" in line for line in srv.output()) == 1
