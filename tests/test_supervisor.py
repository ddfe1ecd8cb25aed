"""The supervisor: --reload restarts the server when a Python file changes, on the same
socket; --workers: several processes on the same sockets, restarted, replaced, drained;
each worker on its own socket (SO_REUSEPORT) where the system spreads connections so."""

from __future__ import annotations

import asyncio
import http.client
import importlib.util
import os
import re
import signal
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

from aiowsgi.sockets import reuse_port_spreads

from .http import RawClient, get_request
from .process import (
    PID_APP,
    SAFETY,
    ServeProcess,
    app_module,
    children,
    listening_sockets,
    pid_at,
    run_aiowsgi,
    wait_for,
)


def test_reload_on_change(tmp_path: Path) -> None:
    pytest.importorskip("watchfiles")
    module = tmp_path / "devapp.py"
    module.write_text(app_module("before"))
    with ServeProcess("devapp:app", "--app-dir", str(tmp_path), "--port", "0", "--reload",
                      "--reload-dir", str(tmp_path), "--no-access-log",
                      ready="supervisor serving") as srv:
        assert srv.get() == b"before"
        module.write_text(app_module("after"))
        # the same port answers throughout
        wait_for(lambda: srv.get() == b"after", "the reload")
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0
        said = said_by(srv.output())
    assert said[srv.proc.pid][0] == ("supervisor", "aiowsgi supervisor serving "
                                     f"http://127.0.0.1:{srv.port} with 1 worker")
    assert ("supervisor", "replacing the worker") in said[srv.proc.pid]
    assert received(said[srv.proc.pid]) == [
        "SIGTERM received: stopping 1 worker gracefully (a second SIGINT (Ctrl+C) or SIGTERM "
        "stops it at once)"]
    assert len([pid for pid, lines in said.items() if lines[0][0] == "worker"]) >= 2


# What each process said: its lines, by pid, as (role, message); any other line fails.
LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[(worker|supervisor) (\d+)\] "
                  r"\[(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\] (.*)\n")


def said_by(lines: list[str]) -> dict[int, list[tuple[str, str]]]:
    said: dict[int, list[tuple[str, str]]] = {}
    for line in lines:
        match = LINE.fullmatch(line)
        assert match, f"a line without its process: {line!r} in\n{''.join(lines)}"
        role, pid, message = match.groups()
        said.setdefault(int(pid), []).append((role, message))
    return said


def received(said: list[tuple[str, str]]) -> list[str]:
    """What a process said it received."""
    return [message for _, message in said if " received" in message]


# -- --workers ------------------------------------------------------------------------


def pid_workers(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                app: str = PID_APP) -> ServeProcess:
    """A supervisor of two workers of ``app`` (:data:`PID_APP`: each answer is the pid of
    the worker), on a port of its choosing, with ``args``; serving when this returns."""
    (tmp_path / "pidapp.py").write_text(app)
    return ServeProcess("pidapp:app", "--app-dir", str(tmp_path), "--port", "0", "--workers",
                        "2", "--no-access-log", *args, env=env, ready="supervisor serving")


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[ServeProcess]:
    """A supervisor of two workers of :data:`PID_APP`, killed at the end if still running."""
    with pid_workers(tmp_path) as server:
        yield server


class Clients:
    """``threads`` clients that each open a new connection for every ``GET /`` (of
    :data:`PID_APP`), one after the other, until the block ends: every attempt is either
    an answer (the pid that gave it) or a failure."""

    def __init__(self, port: int, threads: int = 3) -> None:
        self.port = port
        self.answers: list[int] = []
        self.failures: list[BaseException] = []
        self._done = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                self.answers.append(pid_at(self.port))
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                self.failures.append(exc)

    def wait_answers(self, count: int, what: str) -> None:
        """Wait for ``count`` more answers than there are now."""
        target = len(self.answers) + count
        wait_for(lambda: len(self.answers) >= target or self.failures, what)

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        for thread in self._threads:
            thread.join(SAFETY)


REUSE_PORT = [pytest.param("--reuse-port", id="reuse-port"),
              pytest.param("--no-reuse-port", id="shared-socket")]
LOOPS = [pytest.param("asyncio"),
         pytest.param("uvloop", marks=pytest.mark.skipif(
             importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"))]
needs_reuse_port = pytest.mark.skipif(not reuse_port_spreads(),
                                      reason="SO_REUSEPORT spreads connections on Linux only")


def test_workers_serve_and_drain_on_sigterm(supervised: ServeProcess) -> None:
    workers = supervised.workers()
    assert len(workers) == 2
    assert supervised.pid() in workers
    assert supervised.stop() == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def test_every_line_names_its_process_and_each_says_once_what_ctrl_c_did(
        tmp_path: Path) -> None:
    """Two workers say the same things: each line carries its process's role and id, the
    access log's too (written around logging); the supervisor's lines say so.  A Ctrl+C
    reaches every process: the supervisor says it got SIGINT and stops the workers, each
    worker says once that it got the SIGTERM the supervisor sent."""
    (tmp_path / "pidapp.py").write_text(PID_APP)
    with ServeProcess("pidapp:app", "--app-dir", str(tmp_path), "--port", "0", "--workers",
                      "2", ready="supervisor serving", new_session=True) as srv:
        workers = srv.workers()
        answered: dict[str, int] = {}

        def both_answered() -> bool:
            path = f"/{len(answered)}"
            answered[path] = int(srv.get(path))
            return set(answered.values()) == workers

        wait_for(both_answered, "an answer from each worker")
        os.killpg(srv.proc.pid, signal.SIGINT)  # Ctrl+C: the supervisor and every worker
        assert srv.wait() == 0
        said = said_by(srv.output())
    supervisor = srv.proc.pid
    assert set(said) == workers | {supervisor}
    assert {role for role, _ in said[supervisor]} == {"supervisor"}
    assert said[supervisor][0][1] == (f"aiowsgi supervisor serving http://127.0.0.1:{srv.port} "
                                      "with 2 workers")
    assert received(said[supervisor]) == [
        "SIGINT received: stopping 2 workers gracefully (a second SIGINT (Ctrl+C) or SIGTERM "
        "stops them at once)"]
    assert said[supervisor][-1][1] == "every worker has stopped"
    serving = set()
    for pid in workers:
        assert {role for role, _ in said[pid]} == {"worker"}
        messages = [message for _, message in said[pid]]
        serving.add(messages[0])  # the same words in both workers
        assert messages[0].startswith(f"aiowsgi serving http://127.0.0.1:{srv.port} (")
        assert received(said[pid]) == ["SIGTERM received: shutting down gracefully"]
        assert messages[-1] == "shutdown complete"
    assert len(serving) == 1
    for path, pid in answered.items():  # each request in the access log of its worker
        assert [message for _, message in said[pid] if f'"GET {path} HTTP/1.1" 200' in message]


def test_a_second_ctrl_c_stops_the_workers_at_once(tmp_path: Path) -> None:
    """The first Ctrl+C drains (the worker with a request in flight says so); a second
    one makes every worker close its connections at once, however long the graceful
    timeout: the request held by the application is cut off, and everything exits."""
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    marker, release = tmp_path / "entered", tmp_path / "release"
    outcome: list[object] = []

    def request(port: int) -> None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=SAFETY) as r:
                outcome.append(r.read())
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)

    with ServeProcess("slowapp:app", "--app-dir", str(tmp_path), "--port", "0", "--workers",
                      "2", "--no-access-log", "--graceful-timeout", str(4 * SAFETY),
                      ready="supervisor serving", new_session=True,
                      env={"MARKER": str(marker), "RELEASE": str(release)}) as srv:
        client = threading.Thread(target=request, args=(srv.port,))
        try:
            client.start()
            wait_for(marker.exists, "the request to reach the app")
            os.killpg(srv.proc.pid, signal.SIGINT)
            srv.wait_logged("draining: 1 request in flight, 1 connection open; waiting up to "
                            f"{4 * SAFETY:g}s for it to finish")
            os.killpg(srv.proc.pid, signal.SIGINT)
            assert srv.wait() == 0  # long before the graceful timeout, the request held
            client.join(SAFETY)
            said = said_by(srv.output())
        finally:
            release.touch()
    assert len(outcome) == 1 and isinstance(outcome[0], OSError | http.client.HTTPException)
    assert received(said[srv.proc.pid]) == [
        "SIGINT received: stopping 2 workers gracefully (a second SIGINT (Ctrl+C) or SIGTERM "
        "stops them at once)",
        "SIGINT received while stopping: the workers close every connection now"]
    (busy,) = [pid for pid, lines in said.items()
               if any(message.startswith("draining: 1 request") for _, message in lines)]
    assert received(said[busy]) == [
        "SIGTERM received: shutting down gracefully",
        "SIGQUIT received while shutting down: closing every connection now"]
    assert ("worker", "stopping at once: cutting off 1 request still in flight") in said[busy]


def test_a_worker_ignores_a_sighup_of_its_own(supervised: ServeProcess) -> None:
    """SIGHUP replaces the workers when the supervisor gets it; a worker that gets one
    (a hangup of the whole group, a kill aimed at it) says so and serves on."""
    workers = supervised.workers()
    worker = min(workers)
    os.kill(worker, signal.SIGHUP)
    supervised.wait_logged(f"[worker {worker}] [INFO] SIGHUP ignored: the supervisor (pid "
                           f"{supervised.proc.pid}) replaces the workers when it gets one")
    assert supervised.workers() == workers
    assert supervised.pid() in workers
    assert supervised.stop() == 0


def test_a_worker_stops_at_once_on_a_sigquit_of_its_own(supervised: ServeProcess) -> None:
    """SIGQUIT is the supervisor's "close everything now"; one that comes first (no
    SIGTERM before it) stops the worker too, and its successor takes over."""
    workers = supervised.workers()
    worker = min(workers)
    os.kill(worker, signal.SIGQUIT)
    supervised.wait_logged(f"[worker {worker}] [INFO] SIGQUIT received: closing every "
                           "connection now")
    wait_for(lambda: worker not in supervised.workers() and len(supervised.workers()) == 2,
             "its successor")
    assert supervised.pid() in supervised.workers()
    assert supervised.stop() == 0


def test_a_dead_worker_is_replaced(supervised: ServeProcess) -> None:
    first = supervised.workers()
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in supervised.workers() and len(supervised.workers()) == 2,
             "a replacement worker")
    assert supervised.pid() in supervised.workers()
    assert supervised.stop() == 0


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("sockets", REUSE_PORT)
def test_sighup_replaces_every_worker_losing_no_connection(
        tmp_path: Path, sockets: str, loop: str) -> None:
    """New connections keep coming, from three clients, while every worker is replaced:
    each one is answered (on its own socket, a worker's successor takes over the
    connections queued there; on a shared one, whichever worker accepts first)."""
    with pid_workers(tmp_path, sockets, "--loop", loop) as srv:
        before = srv.workers()
        with Clients(srv.port) as clients:
            clients.wait_answers(30, "answers before the reload")
            srv.signal(signal.SIGHUP)
            wait_for(lambda: (len(srv.workers()) == 2 and not srv.workers() & before)
                     or clients.failures, "every worker replaced, the old ones gone")
            after = srv.workers()
            clients.wait_answers(30, "answers after the reload")
        assert clients.failures == []
        assert set(clients.answers) <= before | after and set(clients.answers) & after
        assert srv.stop() == 0
        said = said_by(srv.output())[srv.proc.pid]
    assert ("supervisor", "SIGHUP received: reloading") in said
    assert ("supervisor", "replacing 2 workers one by one") in said


@needs_reuse_port
@pytest.mark.parametrize("loop", LOOPS)
def test_workers_spread_new_connections_evenly(tmp_path: Path, loop: str) -> None:
    """Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel hashes
    each new connection to one of them: of new connections made one after the other,
    each of two workers answers between 35% and 65%, not whichever worker wakes first."""
    with pid_workers(tmp_path, "--loop", loop) as srv:
        workers = srv.workers()
        held = [listening_sockets(pid, srv.port) for pid in workers]
        assert [len(socks) for socks in held] == [1, 1] and held[0] != held[1]
        total = 400
        answers = Counter(srv.pid() for _ in range(total))
        assert set(answers) == workers
        assert all(0.35 * total <= count <= 0.65 * total for count in answers.values()), \
            answers
        assert srv.stop() == 0


def test_without_reuse_port_the_workers_share_one_socket(tmp_path: Path) -> None:
    with pid_workers(tmp_path, "--no-reuse-port") as srv:
        first, second = (listening_sockets(pid, srv.port) for pid in srv.workers())
        assert len(first) == 1 and first == second
        assert srv.pid() in srv.workers()
        assert srv.stop() == 0


# An app whose import, in a worker started while gate/hold exists, waits for gate/release
# (and announces itself with gate/held-PID).
HELD_APP = PID_APP + """
import time

from tests.waiting import SAFETY

if os.environ.get("AIOWSGI_SUPERVISED") == "1":
    gate = os.environ["GATE"]
    if os.path.exists(os.path.join(gate, "hold")):
        open(os.path.join(gate, f"held-{os.getpid()}"), "w").close()
        deadline = time.monotonic() + 2 * SAFETY  # a safety net: the test releases it
        while not os.path.exists(os.path.join(gate, "release")):
            assert time.monotonic() < deadline, "never released"
            time.sleep(0.01)
"""


async def requests_then(port: int, count: int, release: Path) -> list[int]:
    """Open ``count`` connections and send a request on each, then create ``release``:
    the pids that answered them."""
    clients = [await RawClient.connect("127.0.0.1", port) for _ in range(count)]
    for client in clients:
        await client.send(get_request())
    release.touch()
    try:
        return [int((await client.response()).body) for client in clients]
    finally:
        for client in clients:
            await client.close()


@needs_reuse_port
@pytest.mark.parametrize("loop", LOOPS)
def test_connections_queued_for_a_stopped_worker_wait_for_its_successor(
        tmp_path: Path, loop: str) -> None:
    """A worker that stops accepting (a SIGTERM of its own here; max_requests alike)
    closes only its copy of its socket: the supervisor keeps it, so the connections the
    kernel queues there are not reset, and its successor answers them once it serves.
    Its successor starts at once, not when the old worker has finished."""
    gate = tmp_path / "gate"
    gate.mkdir()
    with pid_workers(tmp_path, "--loop", loop, env={"GATE": str(gate)}, app=HELD_APP) as srv:
        old, other = sorted(srv.workers())
        (gate / "hold").touch()
        os.kill(old, signal.SIGTERM)
        wait_for(lambda: list(gate.glob("held-*")), "its successor, held at its start")
        (held,) = gate.glob("held-*")
        successor = int(held.name.split("-")[1])
        # Nothing accepts on the stopped worker's socket: about half of these wait there,
        # established, until the successor is released and serves.
        answers = Counter(asyncio.run(requests_then(srv.port, 40, gate / "release")))
        assert set(answers) == {successor, other}, answers
        assert srv.stop() == 0


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("sockets", REUSE_PORT)
def test_workers_retiring_at_max_requests_lose_no_connection(
        tmp_path: Path, sockets: str, loop: str) -> None:
    """A worker that reaches max_requests stops accepting, and its successor starts at
    once; every connection made meanwhile is answered (none the retiring worker had
    accepted is dropped, nor any queued on its socket), and no worker answers much more
    than max_requests (the connections it had accepted already)."""
    with pid_workers(tmp_path, sockets, "--loop", loop, "--max-requests", "15") as srv:
        with Clients(srv.port) as clients:
            wait_for(lambda: len(set(clients.answers)) >= 6 or clients.failures,
                     "three generations of workers")
        assert clients.failures == []
        assert max(Counter(clients.answers).values()) <= 15 + 3, Counter(clients.answers)
        assert srv.stop() == 0


@needs_reuse_port
def test_a_second_server_on_the_same_port_is_refused(supervised: ServeProcess,
                                                     tmp_path: Path) -> None:
    """SO_REUSEPORT would let a second server of the same user (one started twice by
    mistake) bind next to the first and take a share of its connections: it exits 1 at
    start, before any worker, as without the option."""
    result = run_aiowsgi("serve", "pidapp:app", "--app-dir", str(tmp_path), "--port",
                         str(supervised.port), "--workers", "2")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"aiowsgi: error: cannot listen on 127.0.0.1:{supervised.port}: "
        "Address already in use"]
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
                      "2", "--no-access-log", ready="supervisor serving", new_session=True,
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
            wait_for(lambda: any("supervisor serving" in line for line in srv.lines),
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


def test_a_sighup_while_a_lone_server_imports_is_ignored(tmp_path: Path) -> None:
    """Before the server's handlers exist (a slow import), a SIGHUP is no exit either."""
    srv, gate = gated_server(tmp_path, released=False, gate_main=True, workers=1)
    with srv:
        wait_for(lambda: list(gate.glob("main-importing-*")), "the server's import")
        srv.signal(signal.SIGHUP)
        (gate / "all").touch()
        srv.wait_logged("aiowsgi serving")
        assert srv.proc.poll() is None
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0


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
                      "2", "--threads", "8", "--no-access-log", ready="supervisor serving",
                      new_session=True, env=env) as srv:
        started = [line for line in srv.lines if "aiowsgi serving" in line]
        assert len(started) == 2 and all("8 threads" in line for line in started), srv.lines
        assert not any("supervisor" in line for line in started)
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0
        assert sum("aiowsgi supervisor" in line for line in srv.output()) == 1
