"""The connection's state table, transition by transition, through a fake transport.

Each case puts a connection in a state by what a client and an application do (never
by setting it), gives it one event the way asyncio, the application thread, the deadline
sweep or the server would, and checks where it went and what the client got.  The last
test takes every way through the table on one real connection, and checks that the
answers come in order whichever way each request took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from aiowsgi import states
from aiowsgi.states import TABLE, Event, State

from .apps.echo import echo
from .conftest import StartServer
from .fake_transport import Harness, settle
from .http import RawClient
from .waiting import SAFETY

Env = dict[str, Any]
GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
BODY = b"x" * 1000


def app(environ: Env, start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", str(len(BODY) + len(body)))])
    return [BODY, body]


def state_of(h: Harness) -> State:
    """The connection's state now (read through a call: an event in between may have
    changed it, whatever the last assert said)."""
    return h.conn.state


async def in_state(state: State) -> Harness:
    """A connection brought to ``state`` by a client and an application."""
    h = Harness(app, send_timeout=5.0)
    conn = h.conn
    if state is State.BODY:
        conn.data_received(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n123")
    elif state is State.APP:
        conn.data_received(GET)
    elif state is State.DRAIN:
        h.transport.hold = True
        h.transport.high = 100  # the response is more than it takes before pausing
        conn.data_received(GET)
        h.pool.run_next()
        await settle()
    elif state is State.TASK:  # reading a chunked body, waiting for its next piece
        conn.data_received(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        await settle()
    elif state is State.CLOSED:
        conn.close()
        await settle()
    assert conn.state is state
    return h


async def fire(h: Harness, event: Event) -> None:
    conn = h.conn
    if event is Event.DATA:
        data = {State.BODY: b"4567890", State.TASK: b"3\r\nabc\r\n0\r\n\r\n"}
        conn.data_received(data.get(conn.state, GET))
    elif event is Event.EOF:
        conn.eof_received()
    elif event is Event.LOST:
        h.transport.closing = True
        conn.connection_lost(None)
    elif event is Event.WRITABLE:
        if conn.state is State.DRAIN:
            h.transport.client_reads()
        else:
            conn.pause_writing()
            conn.resume_writing()
    elif event is Event.OUTPUT:
        if conn.state is State.APP:
            h.pool.run_next()  # the application runs, and hands its response over
            await settle()
        else:
            conn.on_output()
    elif event is Event.DEADLINE:
        conn.expire()
    elif event is Event.ABORT:
        conn.abort()


def ok_response(h: Harness) -> bool:
    return h.text.startswith("HTTP/1.1 200 OK") and h.text.endswith(BODY.decode())


# What each transition does, seen from outside: (the state right after the event, a
# check of what the client got and what became of the connection).
Check = Callable[[Harness], bool]
nothing_written: Check = lambda h: not h.transport.written  # noqa: E731
closed: Check = lambda h: h.transport.closing and not h.transport.aborted  # noqa: E731
aborted: Check = lambda h: h.transport.aborted  # noqa: E731
H, B, A, D, T, C = State

EXPECTED: dict[tuple[State, Event], tuple[State, Check]] = {
    (H, Event.DATA): (A, lambda h: len(h.pool.held) == 1 and nothing_written(h)),
    (H, Event.EOF): (C, lambda h: closed(h) and nothing_written(h)),
    (H, Event.LOST): (C, nothing_written),
    (H, Event.WRITABLE): (H, lambda h: nothing_written(h) and not h.transport.closing),
    (H, Event.OUTPUT): (H, lambda h: nothing_written(h) and not h.transport.closing),
    (H, Event.DEADLINE): (C, lambda h: closed(h) and nothing_written(h)),  # idle
    (H, Event.ABORT): (C, aborted),

    (B, Event.DATA): (A, lambda h: len(h.pool.held) == 1),
    (B, Event.EOF): (C, lambda h: closed(h) and nothing_written(h)),
    (B, Event.LOST): (C, nothing_written),
    (B, Event.WRITABLE): (B, lambda h: nothing_written(h) and not h.transport.closing),
    (B, Event.OUTPUT): (B, lambda h: nothing_written(h) and not h.transport.closing),
    (B, Event.DEADLINE): (T, nothing_written),  # the task answers 408: see below
    (B, Event.ABORT): (C, aborted),

    (A, Event.DATA): (A, lambda h: nothing_written(h) and h.transport.reading),
    (A, Event.EOF): (A, lambda h: h.conn.call is not None
                     and h.conn.call.disconnected.is_set()),
    (A, Event.LOST): (C, nothing_written),
    (A, Event.WRITABLE): (A, lambda h: nothing_written(h) and not h.transport.closing),
    (A, Event.OUTPUT): (H, lambda h: ok_response(h) and not h.transport.closing),
    (A, Event.DEADLINE): (T, lambda h: True),  # 503 once the task runs: see below
    (A, Event.ABORT): (C, aborted),

    (D, Event.DATA): (D, lambda h: not h.transport.closing),
    (D, Event.EOF): (D, lambda h: not h.transport.closing),
    (D, Event.LOST): (C, lambda h: True),
    (D, Event.WRITABLE): (H, lambda h: ok_response(h) and not h.transport.closing),
    (D, Event.OUTPUT): (D, lambda h: not h.transport.closing),
    (D, Event.DEADLINE): (C, aborted),  # the client did not read in time
    (D, Event.ABORT): (C, aborted),

    (T, Event.DATA): (T, lambda h: True),  # the task reads it: see below
    (T, Event.EOF): (T, lambda h: True),
    (T, Event.LOST): (T, lambda h: True),
    (T, Event.WRITABLE): (T, lambda h: nothing_written(h)),
    (T, Event.OUTPUT): (T, lambda h: nothing_written(h)),
    (T, Event.DEADLINE): (T, lambda h: True),
    (T, Event.ABORT): (T, lambda h: True),

    **{(C, event): (C, nothing_written) for event in Event},
}

# Where a task leaves the connection once it has run (after the transitions into TASK).
AFTER_TASK: dict[tuple[State, Event], tuple[State, Check]] = {
    (B, Event.DEADLINE): (T, lambda h: h.text.startswith("HTTP/1.1 408 ")
                          and h.transport.eof_written),  # lingering after the 408
    (A, Event.DEADLINE): (C, lambda h: h.text.startswith("HTTP/1.1 503 ")),  # no thread
    (T, Event.DATA): (A, lambda h: len(h.pool.held) == 1),  # the body is complete
    (T, Event.EOF): (C, nothing_written),  # the body was cut short
    (T, Event.LOST): (C, nothing_written),
    (T, Event.DEADLINE): (T, lambda h: h.text.startswith("HTTP/1.1 408 ")),
    (T, Event.ABORT): (C, aborted),
}


def test_every_transition_of_the_table_is_tested_here() -> None:
    assert set(EXPECTED) == set(TABLE)
    for key, (after, _) in EXPECTED.items():
        assert after in TABLE[key].then, key


def test_the_docstring_shows_the_table() -> None:
    doc = states.__doc__ or ""
    rows = [" ".join(line.split()) for line in doc.splitlines()
            if line.split()[:1] and line.split()[0] in State.__members__]
    assert "\n".join(rows) == states.table_text()


@pytest.mark.parametrize(("state", "event"), list(EXPECTED), ids=lambda v: v.name)
async def test_transition(state: State, event: Event) -> None:
    h = await in_state(state)
    try:
        await fire(h, event)
        after, check = EXPECTED[state, event]
        assert h.conn.state is after
        assert check(h), h.text
        if (state, event) in AFTER_TASK:
            await settle()
            after, check = AFTER_TASK[state, event]
            assert h.conn.state is after
            assert check(h), h.text
    finally:
        h.conn.close()
        await settle()
        h.close()


async def test_a_head_begun_after_the_keepalive_wait_gets_the_header_timeout() -> None:
    """HEAD/DEADLINE, kept-alive: the first bytes of a next head came just before the
    keep-alive deadline; the head gets the header timeout, then a 408."""
    h = await in_state(State.APP)
    try:
        await fire(h, Event.OUTPUT)
        assert h.conn.state is State.HEAD and h.conn.keepalive_phase
        h.conn.data_received(b"GET / HT")
        h.conn.expire()
        assert state_of(h) is State.HEAD and h.conn.deadline > 0
        h.conn.expire()
        assert state_of(h) is State.TASK
        await settle()
        assert "HTTP/1.1 408 " in h.text
    finally:
        h.conn.close()
        await settle()
        h.close()


async def test_bytes_piling_up_while_the_application_runs_stay_bounded() -> None:
    """APP/DATA: a client pipelining without end while its request runs: reading
    pauses past the high-water mark instead of buffering it all, and resumes once the
    pipelined requests have been answered."""
    h = await in_state(State.APP)
    try:
        flood = GET * 100
        while h.transport.reading:
            h.conn.data_received(flood)
        assert len(h.conn.buffer) <= h.conn.high_water + len(flood)
        answered = 0
        while not h.transport.reading and h.pool.held:  # each answer frees some room
            h.pool.run_next()
            await settle()
            answered += 1
        assert h.transport.reading
        assert answered > 0
        assert h.text.count("HTTP/1.1 200 OK") == answered
    finally:
        h.conn.close()
        await settle()
        h.close()


async def test_output_after_the_client_left_is_refused_to_the_thread() -> None:
    """LOST in APP: the application's next hand-over raises in its thread, and nothing
    is written."""
    h = await in_state(State.APP)
    try:
        fire_lost = fire(h, Event.LOST)
        await fire_lost
        assert h.conn.state is State.CLOSED
        call = h.pool.held.pop(0)
        with pytest.raises(ConnectionError):
            call.handoff.put(b"late", 4)  # type: ignore[attr-defined]
        assert not h.transport.written
    finally:
        await settle()
        h.close()


# -- over real sockets --------------------------------------------------------------------


async def test_every_path_on_one_connection_answers_in_order(
        start_server: StartServer) -> None:
    server = await start_server(echo, body_buffer_size=1024)
    client = await RawClient.connect(server.host, server.port)
    big = bytes(range(256)) * 16  # 4 KiB: past body_buffer_size, spooled to a file
    requests = [
        (b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n", b"GET /plain "),
        (b"POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
         b"POST /small abc"),
        (b"POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"2\r\nde\r\n1\r\nf\r\n0\r\n\r\n", b"POST /chunked def"),
        (b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n", b"GET /stream "),
        (b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n" + big,
         b"POST /big " + big),
        (b"GET /last HTTP/1.1\r\nHost: t\r\n\r\n", b"GET /last "),
    ]
    async with asyncio.timeout(SAFETY):
        await client.send(b"".join(request for request, _ in requests))
        for _, expected in requests:
            response = await client.response()
            assert response.status == 200
            assert response.body == expected
        # A body that arrives in pieces, after its head: the connection waits for it.
        await client.send(b"PUT /pieces HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\n")
        await client.send(b"12")
        await client.send(b"3")
        await client.send(b"456GET /after HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert (await client.response()).body == b"PUT /pieces 123456"
        assert (await client.response()).body == b"GET /after "
        assert await client.closed_by_server()
    await client.close()
