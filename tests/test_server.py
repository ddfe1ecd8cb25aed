"""The programmatic API: Server, serve(), and graceful shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import socket
from typing import Any

import aiohttp
import pytest

from aiowsgi import Config, ConfigError, Server, serve
from aiowsgi import server as server_module
from aiowsgi.connection import HTTPConnection
from aiowsgi.serverstate import ServerState

from .apps import notwsgi
from .apps.echo import hello
from .apps.gate import Gate
from .http import RawClient
from .process import free_port
from .waiting import SAFETY, until


async def test_server_addresses_known_after_start_with_port_0() -> None:
    async with Server(hello, host="127.0.0.1", port=0) as server:
        assert server.port > 0
        assert server.host == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.addresses == [("127.0.0.1", server.port)]
        async with aiohttp.ClientSession() as session, session.get(server.url) as resp:
            assert resp.status == 200
            assert await resp.read() == b"hello"
    assert server.sockets == []


async def test_server_takes_a_config_and_options() -> None:
    config = Config(host="127.0.0.1", port=0, threads=3)
    server = Server(hello, config, server_header=False)
    assert server.config.threads == 3
    assert server.config.server_header is False
    with pytest.raises(ConfigError, match=r"^threads: "):
        Server(hello, threads=0)
    with pytest.raises(ConfigError, match=r"^nope: "):
        Server(hello, nope=1)
    with pytest.raises(TypeError):
        Server("not an app")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        _ = server.url


ASGI = "looks like an ASGI application"


async def test_what_cannot_be_a_wsgi_application_is_refused() -> None:
    """The same check and words as the command line's (tests/test_loading.py has the
    shapes): an ASGI application, or a callable WSGI cannot call, is a TypeError."""
    apps: Any = notwsgi  # mypy refuses them too, where the code is typed
    with pytest.raises(TypeError, match=r"^the tests\.apps\.notwsgi\.ASGIApp object " + ASGI):
        Server(apps.asgi_object, port=0)
    with pytest.raises(TypeError, match=r"^tests\.apps\.notwsgi\.asgi_function " + ASGI):
        await serve(apps.asgi_function, port=0)
    with pytest.raises(TypeError, match=r"^tests\.apps\.notwsgi\.one_argument cannot be "
                                        r"called as a WSGI application"):
        Server(apps.one_argument)


async def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with Server(hello, host="127.0.0.1", port=port):
                pass


async def test_serve_runs_until_cancelled_then_finishes_in_flight_requests() -> None:
    gate = Gate()
    config = Config(host="127.0.0.1", port=0)
    # serve() binds inside the task; find the port through a Server built the same way
    started: asyncio.Future[Server] = asyncio.get_running_loop().create_future()

    class Probe(Server):
        async def start(self) -> None:
            await super().start()
            started.set_result(self)

    async def run_serve() -> None:
        async with Probe(gate, config) as server:
            await server.serve_forever()

    task = asyncio.ensure_future(run_serve())
    server = await asyncio.wait_for(started, SAFETY)
    host, port = server.host, server.port
    client = await RawClient.connect(host, port)
    pending = asyncio.ensure_future(client.request())
    await gate.wait_entered()
    task.cancel()
    # shutdown has begun: no new connections are accepted
    await until(lambda: not server.sockets, "the listening sockets to close")
    with pytest.raises(OSError):
        await asyncio.open_connection(host, port)
    gate.release.set()
    response = await asyncio.wait_for(pending, SAFETY)
    assert response.status == 200
    assert response.body == b"done"
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.close()


async def test_serve_function_shuts_down_on_cancel() -> None:
    port = free_port()
    task = asyncio.ensure_future(serve(hello, host="127.0.0.1", port=port))
    async with asyncio.timeout(SAFETY):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.02)
    writer.close()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


def drain_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """What the server said of its drains: (level, message)."""
    return [(r.levelname, r.getMessage()) for r in caplog.records
            if r.name == "aiowsgi.error" and r.getMessage().startswith(
                ("draining", "drained", "stopping at once", "graceful timeout"))]


async def test_shutdown_closes_idle_connections_and_waits_for_busy_ones(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aiowsgi")
    gate = Gate()
    gate.release.set()
    async with Server(gate, host="127.0.0.1", port=0) as server:
        idle = await RawClient.connect(server.host, server.port)
        assert (await idle.request()).status == 200  # kept alive, now idle
        gate.release.clear()
        busy = await RawClient.connect(server.host, server.port)
        pending = asyncio.ensure_future(busy.request())
        await gate.wait_entered(2)  # the idle connection's request, then this one
        shutdown = asyncio.ensure_future(server.shutdown())
        assert await idle.closed_by_server()
        assert not shutdown.done()
        gate.release.set()
        response = await asyncio.wait_for(pending, SAFETY)
        assert response.body == b"done"
        await asyncio.wait_for(shutdown, SAFETY)
        assert await busy.closed_by_server()
    (start, end) = drain_lines(caplog)
    assert start == ("INFO", "draining: 1 request in flight, 2 connections open; waiting up "
                             "to 30s for it to finish")
    assert end[0] == "INFO"
    assert re.fullmatch(r"drained in \d+\.\d\ds: every request in flight finished", end[1])


async def test_a_connection_that_has_not_sent_its_request_yet_is_served() -> None:
    """Accepted just before shutdown began: its request is surely on the way (closing it
    would make a rolling restart drop requests)."""
    async with Server(hello, host="127.0.0.1", port=0) as server:
        fresh = await RawClient.connect(server.host, server.port)
        await until(lambda: server.stats()["connections"] >= 1, "the connection accepted")
        shutdown = asyncio.ensure_future(server.shutdown())
        await until(lambda: not server.is_serving, "the shutdown to begin")
        response = await fresh.request()
        assert (response.status, response.body) == (200, b"hello")
        assert response.header("Connection") == "close"
        assert await fresh.closed_by_server()
        await asyncio.wait_for(shutdown, SAFETY)


async def get_status(host: str, port: int) -> int | BaseException:
    """The status of ``GET /`` on a new connection, or what went wrong."""
    try:
        client = await RawClient.connect(host, port)
        try:
            return (await client.request(headers={"Connection": "close"})).status
        finally:
            await client.close()
    except (OSError, asyncio.IncompleteReadError) as exc:
        return exc


@pytest.mark.parametrize("turns", range(8))
async def test_every_connection_accepted_as_the_shutdown_begins_is_answered(
        monkeypatch: pytest.MonkeyPatch, turns: int) -> None:
    """When a shutdown begins, the loop may have accepted connections whose protocol is
    not made yet: asyncio makes it in a task that starts a loop turn later, and drops the
    socket if the server is closed by then (CPython gh-109564); either loop calls
    connection_made a turn later.  Each one the loop accepted (its protocol was created)
    is answered all the same; one still in the kernel's queue is not the server's."""
    created: list[HTTPConnection] = []

    class Counted(HTTPConnection):
        def __init__(self, state: ServerState) -> None:
            super().__init__(state)
            created.append(self)

    monkeypatch.setattr(server_module, "HTTPConnection", Counted)
    async with Server(hello, host="127.0.0.1", port=0) as server:
        clients = [asyncio.ensure_future(get_status(server.host, server.port))
                   for _ in range(4)]
        for _ in range(turns):  # the shutdown begins at every moment of their accept
            await asyncio.sleep(0)
        await asyncio.wait_for(server.shutdown(), SAFETY)
        results = await asyncio.gather(*clients)
    assert results.count(200) == len(created), results


async def test_graceful_timeout_cuts_requests_that_do_not_finish(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aiowsgi")
    gate = Gate()
    try:
        async with Server(gate, host="127.0.0.1", port=0, graceful_timeout=0.2) as server:
            client = await RawClient.connect(server.host, server.port)
            pending = asyncio.ensure_future(client.request())
            await gate.wait_entered()
            await asyncio.wait_for(server.shutdown(), SAFETY)
            with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                await asyncio.wait_for(pending, SAFETY)
            await client.close()
    finally:
        gate.release.set()
    assert drain_lines(caplog) == [
        ("INFO", "draining: 1 request in flight, 1 connection open; waiting up to 0.2s for "
                 "it to finish"),
        ("WARNING", "graceful timeout (0.2s) reached: cutting off 1 request still in flight")]


async def test_abort_cuts_a_drain_short_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """What a second signal does to run()'s server: the requests in flight are cut off at
    once, whatever the graceful timeout."""
    caplog.set_level(logging.INFO, logger="aiowsgi")
    gate = Gate()
    try:
        async with Server(gate, host="127.0.0.1", port=0, graceful_timeout=4 * SAFETY) as server:
            clients = [await RawClient.connect(server.host, server.port) for _ in range(2)]
            pending = [asyncio.ensure_future(client.request()) for client in clients]
            await gate.wait_entered(2)
            shutdown = asyncio.ensure_future(server.shutdown())
            await until(lambda: drain_lines(caplog), "the drain to begin")
            server.abort()
            await asyncio.wait_for(shutdown, SAFETY)
            for request in pending:
                with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                    await asyncio.wait_for(request, SAFETY)
            for client in clients:
                await client.close()
    finally:
        gate.release.set()
    assert drain_lines(caplog) == [
        ("INFO", f"draining: 2 requests in flight, 2 connections open; waiting up to "
                 f"{4 * SAFETY:g}s for them to finish"),
        ("WARNING", "stopping at once: cutting off 2 requests still in flight")]


# -- options a Server does not act on ---------------------------------------------------

# A value other than the default for every option of the process (run() and the command
# line act on them) and of the command line alone.
PROCESS_OPTIONS: dict[str, Any] = {
    "loop": "asyncio", "log_level": "debug", "log_config": "/etc/aiowsgi/logging.json",
    "malloc_trim_threshold": 0, "shutdown_delay": 1.0, "metrics_bind": "127.0.0.1:9100",
    "switch_interval": 0.002}
COMMAND_OPTIONS: dict[str, Any] = {"workers": 2, "reload": True, "reload_dir": ("src",),
                                   "reuse_port": False}
OF_RUN = "it is an option of run() and the command line"
OF_COMMAND = "it is an option of the command line (aiowsgi serve)"
REFUSED = [(name, value, OF_RUN) for name, value in PROCESS_OPTIONS.items()] + [
    (name, value, OF_COMMAND) for name, value in COMMAND_OPTIONS.items()]


@pytest.mark.parametrize(("name", "value", "taken_by"), REFUSED, ids=[r[0] for r in REFUSED])
def test_server_refuses_a_process_or_command_option(name: str, value: Any,
                                                    taken_by: str) -> None:
    with pytest.raises(TypeError) as info:
        Server(hello, **{name: value})
    assert str(info.value) == f"Server() does not take {name}: {taken_by}"
    with pytest.raises(TypeError, match=f"^Server\\(\\) does not take {name}: "):
        Server(hello, **{name: getattr(Config(), name)})  # given at all, whatever the value


@pytest.mark.parametrize(("name", "value", "taken_by"), REFUSED, ids=[r[0] for r in REFUSED])
def test_server_refuses_a_config_that_sets_one(name: str, value: Any, taken_by: str) -> None:
    with pytest.raises(TypeError) as info:
        Server(hello, Config(**{name: value}))
    assert str(info.value) == f"Server() does not take a config that sets {name}: {taken_by}"


def test_every_refused_option_is_named_at_once() -> None:
    with pytest.raises(TypeError) as info:
        Server(hello, workers=4, loop="uvloop", reload=True, log_level="debug")
    assert str(info.value) == (
        "Server() does not take workers, reload: they are options of the command line "
        "(aiowsgi serve); nor loop, log_level: they are options of run() and the command line")
    with pytest.raises(TypeError) as info:
        Server(hello, Config(**PROCESS_OPTIONS, **COMMAND_OPTIONS))
    message = str(info.value)
    assert message.startswith("Server() does not take a config that sets ")
    assert all(name in message for name in [*PROCESS_OPTIONS, *COMMAND_OPTIONS])


async def test_serve_refuses_them_too() -> None:
    with pytest.raises(TypeError) as info:
        await serve(hello, workers=2)
    assert str(info.value) == f"serve() does not take workers: {OF_COMMAND}"
    with pytest.raises(TypeError, match=r"^serve\(\) does not take a config that sets loop"):
        await serve(hello, Config(loop="asyncio"))


def test_server_takes_every_server_option() -> None:
    defaults = Config()
    server_options = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(Config)
                      if f.name not in PROCESS_OPTIONS and f.name not in COMMAND_OPTIONS}
    assert Server(hello, **server_options).config == defaults
    changed = Server(hello, Config(threads=3), port=0, server_header=False).config
    assert (changed.threads, changed.port, changed.server_header) == (3, 0, False)


async def test_a_server_with_server_options_serves() -> None:
    async with Server(hello, Config(host="127.0.0.1"), port=0, threads=2,
                      server_header=False) as server:
        client = await RawClient.connect(server.host, server.port)
        response = await client.request("GET", "/")
        assert (response.status, response.body) == (200, b"hello")
        assert response.header("Server") is None
        await client.close()
