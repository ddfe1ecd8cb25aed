"""One asyncio protocol per client connection, driven by the table of :mod:`aiowsgi.states`.

Each protocol callback is an event; what it does depends on the connection's state, and
the table says which method handles it.  The methods here are small: reading a request is
:mod:`aiowsgi.reading`, handing it to a thread :mod:`aiowsgi.admission`, writing the answer
:mod:`aiowsgi.output`, and the rare paths' coroutines :mod:`aiowsgi.rarepaths`; this
module owns the transitions, the task that runs a rare path, and closing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import IO, Any

from . import admission, flow, http11, output, rarepaths, reading, wsgi
from .connstate import Continuation, Strategy
from .handoff import ClientGone, Handoff, Item, resolve
from .http11 import HTTPError, Request
from .serverstate import ServerState
from .states import TABLE, Event, State
from .wsgi import WSGICall

log = logging.getLogger("aiowsgi.error")


class HTTPConnection(asyncio.Protocol):
    """One client connection.

    Most requests never leave the callbacks (states HEAD, BODY, APP, DRAIN); a rare or
    long wait runs as a coroutine in ``task`` (TASK), which hands the connection back or
    closes it.  The fields are the connection's state, shared by the modules above.
    """

    __slots__ = (
        "after_drain", "body_parts", "body_size", "buffer", "call", "closed", "data_waiter",
        "deadline", "drain_waiter", "eof", "expired", "facts", "handoff", "handoff_lock",
        "head_limit", "high_water", "in_memory", "items_ready", "keepalive_phase", "loop",
        "lost", "output", "over_ssl", "paused", "proxied", "reading_paused", "request",
        "resuming", "scanned", "served", "server", "skipped", "started", "state", "task",
        "transport", "write_limits",
    )

    def __init__(self, server: ServerState) -> None:
        self.server = server
        server.unmade += 1  # until connection_made
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # made below
        self.task: asyncio.Task[None] | None = None
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.state = State.HEAD  # its actions are the table's row (see states)
        self.deadline = 0.0  # when the current wait ends (0: no limit); see deadlines
        self.expired = False  # the task was cancelled because its wait ran out
        self.served = 0  # requests begun on this connection
        # reading
        self.buffer = b""  # bytes received and not yet consumed
        self.scanned = 0  # of them, bytes known to hold no head terminator
        self.skipped = 0  # empty lines' bytes ignored before the next request line
        self.head_limit = server.config.max_header_size
        self.high_water = 2 * self.head_limit  # past it, reading pauses
        self.reading_paused = False
        self.eof = self.lost = self.keepalive_phase = False
        self.data_waiter: asyncio.Future[None] | None = None  # the task's read
        # writing
        self.output: Strategy = output.JOINED
        self.paused = False  # the transport holds too much: write nothing more for now
        self.resuming = False  # inside resume_writing (see close)
        self.write_limits = (0, 0)  # the transport's (low, high) water marks
        self.drain_waiter: asyncio.Future[None] | None = None  # the task's drain
        self.after_drain: Callable[[], object] | None = None  # what DRAIN goes on with
        # the request being read, answered or both
        self.request: Request | None = None
        self.body_parts: list[bytes] = []
        self.body_size = 0
        self.in_memory = 0  # bytes of the server's body memory budget it holds
        self.handoff: Handoff | None = None
        self.call: WSGICall | None = None
        self.started = 0.0  # when the current request was dispatched, for the access log
        self.facts: wsgi.ConnectionFacts = {}
        self.proxied = False  # the peer is a trusted proxy
        self.over_ssl = False
        self.items_ready: Callable[[], None] | None = None  # self.on_output, made once
        self.handoff_lock = threading.Lock()  # shared by this connection's handoffs

    # -- events: the protocol's callbacks, the thread's output, the sweep, the server -----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        server.unmade -= 1
        if not server.unmade and server.all_made is not None:
            resolve(server.all_made)  # a shutdown waits for the connections accepted
        if len(server.connections) >= server.max_connections:
            self._refuse_connection()
            return
        server.connections.add(self)
        # one bound method for all its requests, not one each (a cycle, broken by close)
        self.items_ready = self.on_output
        self.over_ssl = transport.get_extra_info("sslcontext") is not None
        self.output = output.strategy_for(transport)
        self.write_limits = transport.get_write_buffer_limits()  # type: ignore[attr-defined]
        self.facts = wsgi.transport_facts(transport, server.config.root_path, self.over_ssl)
        self.proxied = server.trusted is not None and self.facts["REMOTE_ADDR"] in server.trusted
        self.deadline = self.loop.time() + server.config.header_timeout

    def _refuse_connection(self) -> None:
        """Past ``max_connections``: a 503 and the door, without reading anything."""
        server = self.server
        server.refused += 1
        if server.refused == 1 or server.refused % 1000 == 0:
            log.warning("max_connections=%d reached: new connections get 503 (%d so far)",
                        server.max_connections, server.refused)
        self.state = State.CLOSED
        resolve(self.closed)
        self.transport.write(http11.error_response(503, "too many connections", retry_after=1))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.state.actions[_DATA](self, data)

    def eof_received(self) -> bool:
        """The client closed its sending side.  It may still read (a half-close), so a
        response under way goes on; the application is told, and may stop early."""
        self.eof = True
        if self.call is not None:
            self.call.disconnected.set()
        self.state.actions[_EOF](self)
        return not self.over_ssl

    def connection_lost(self, exc: Exception | None) -> None:
        """The client is gone: a request waiting for a thread is dropped, a running
        application call is told at once and its next write raises."""
        self.lost = True
        if self.call is not None:
            self.call.disconnected.set()
        if self.handoff is not None:
            self.handoff.abort(ClientGone("client disconnected"))
        self.state.actions[_LOST](self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        if self.paused:
            self.paused = False
            self.resuming = True
            try:
                self.state.actions[_WRITABLE](self)
            finally:
                self.resuming = False

    def on_output(self) -> None:
        """The application thread handed output over (scheduled from that thread)."""
        self.state.actions[_OUTPUT](self)

    def expire(self) -> None:
        """The current wait passed its deadline (called by the sweep)."""
        self.deadline = 0.0
        self.state.actions[_DEADLINE](self)

    def abort(self) -> None:
        """Close now, whatever is under way (the end of a graceful shutdown)."""
        self.state.actions[_ABORT](self)

    @property
    def closable_when_idle(self) -> bool:
        """Whether shutting down may close this connection without losing a request: it
        waits for a head of which no byte is here, and it has served one already (a client
        that connected and sent nothing yet is surely about to)."""
        return self.state is State.HEAD and self.served > 0 and not self.buffer

    # -- the table's actions -----------------------------------------------------------

    def ignore(self, *_: object) -> None:
        pass

    def hold_data(self, data: bytes) -> None:
        """Bytes that arrive while a request is answered: a pipelined request, kept for
        later; reading pauses past ``high_water``."""
        self.buffer = self.buffer + data if self.buffer else data
        if len(self.buffer) > self.high_water:
            self.pause_reading()

    def feed_task(self, data: bytes) -> None:
        """Bytes for the task: its read goes on, or they wait as in :meth:`hold_data`."""
        if self.data_waiter is None:
            self.hold_data(data)
        else:
            self.buffer = self.buffer + data if self.buffer else data
            self.wake_task()

    def wake_task(self) -> None:
        """The task's read goes on: there is more, or there will be no more."""
        waiter, self.data_waiter = self.data_waiter, None
        if waiter is not None:
            resolve(waiter)

    def fail_task(self) -> None:
        """The connection is lost: the task's waits end, and it closes the connection."""
        self.wake_task()
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("connection lost"))

    def drained(self) -> None:
        after, self.after_drain = self.after_drain, None
        self.deadline = 0.0
        self.state = State.APP
        assert after is not None
        after()

    def head_late(self) -> None:
        if self.keepalive_phase and self.buffer:
            # idle past the keep-alive timeout, but a request has begun: it gets the
            # header timeout to finish
            self.keepalive_phase = False
            self.deadline = self.loop.time() + self.server.config.header_timeout
        elif self.buffer:
            self.refuse(HTTPError(408, "request head not received in time"))
        else:
            self.close()

    def body_late(self) -> None:
        self.refuse(HTTPError(408, "request body not received in time"))

    def output_late(self) -> None:
        self.start_task(admission.first_output_late(self))

    def send_late(self) -> None:
        log.info("client did not read its response for %ss; aborted",
                 self.server.config.send_timeout)
        self.close(abort=True)

    def time_out_task(self) -> None:
        if self.task is not None:  # its wait raises TimeoutError (see deadlines.within)
            self.expired = True
            self.task.cancel()

    def cancel_task(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def close_now(self) -> None:
        self.close(abort=True)

    # -- what the other modules ask of the connection --------------------------------

    def pause_reading(self) -> None:
        if not self.reading_paused and not self.transport.is_closing():
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and len(self.buffer) <= self.high_water:
            self.reading_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def dispatch(self, request: Request, body: IO[bytes], size: int) -> None:
        admission.dispatch(self, request, body, size)

    def write_items(self, items: list[Item]) -> None:
        output.write_items(self, items)

    def refuse(self, exc: HTTPError, *, head_only: bool = False) -> None:
        """Answer a request the server will not handle, then close the connection."""
        self.start_task(rarepaths.refuse(self, exc, head_only=head_only))

    def response_done(self, keep_alive: bool) -> None:
        """The response is written; on to the next request, or close."""
        server = self.server
        call = self.call
        assert call is not None
        self.forget_request()
        server.release()
        if server.access:
            self.log_access(call, "+" if keep_alive and not server.shutting_down else "-")
        if not keep_alive or server.shutting_down:
            self.close()
            return
        self.state = State.HEAD
        self.keepalive_phase = True
        self.deadline = self.loop.time() + server.config.keepalive_timeout
        if self.buffer or self.eof or self.lost or self.reading_paused:
            reading.read_head(self)  # else it would find nothing to do

    def log_access(self, call: WSGICall, ending: str, status: str | None = None) -> None:
        """The access log line of ``call``: ``ending`` is '+' (kept alive), '-' (closed)
        or 'X' (aborted); ``status`` one the server answered with instead of the app."""
        access = self.server.access
        assert access is not None
        access.write(call.environ, status or call.sent_status, call.body_bytes,
                     call.headers if call.head is not None and not status else None,
                     self.started, ending)

    def forget_request(self) -> None:
        """Let go of the current request: nothing of it stays referenced while the
        connection idles, and its share of the body memory is given back."""
        self.handoff = self.call = None
        self.request = None
        self.server.body_memory -= self.in_memory
        self.in_memory = 0

    def answer_and_close(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)
        self.close()

    def start_task(self, coro: Coroutine[Any, Any, Continuation]) -> None:
        self.state = State.TASK
        self.deadline = 0.0
        self.task = self.loop.create_task(self._run_task(coro))

    async def _run_task(self, coro: Coroutine[Any, Any, Continuation]) -> None:
        """Run one rare path; then carry on with what it returns, or close."""
        try:
            then = await coro
        except (ConnectionError, asyncio.IncompleteReadError):
            then = None
        except asyncio.CancelledError:
            self.close(abort=True)
            raise
        except Exception:
            log.exception("unexpected error on connection")
            self.close(abort=True)
            return
        finally:
            self.task = None
        self.deadline = 0.0
        if then is None or self.lost:
            self.close()
            return
        self.state = State.APP
        then()

    def close(self, *, abort: bool = False) -> None:
        """Close the connection and let go of everything it holds; safe to repeat."""
        if self.call is not None and self.server.access:
            self.log_access(self.call, "X")  # a response cut short
        if self.handoff is not None:
            admission.give_up(self, ClientGone("connection closed"))
        else:
            self.forget_request()
        self.state = State.CLOSED
        self.items_ready = None
        self.deadline = 0.0
        self.buffer = b""
        self.body_parts = []
        if self.resuming:
            # asyncio's selector transport calls connection_lost twice when closed from
            # inside resume_writing (CPython gh-156512): close once that has returned.
            self.loop.call_soon(self._close_transport, abort)
        else:
            self._close_transport(abort)
        self.server.connections.discard(self)
        resolve(self.closed)

    def _close_transport(self, abort: bool) -> None:
        if abort:
            self.transport.abort()
        elif not self.transport.is_closing():
            self.transport.close()


# The table's actions that belong to the modules of a concern (the rest are methods):
# called straight from the row, with the connection first.
_ACTIONS: dict[str, Callable[..., None]] = {
    "head_data": reading.read_head,
    "head_eof": reading.read_head,
    "body_data": reading.body_data,
    "write_output": output.take_and_write,
    "wake_drain": flow.wake_drain,
}
_DATA, _EOF, _LOST, _WRITABLE, _OUTPUT, _DEADLINE, _ABORT = Event

for _state in State:  # each state carries its row of the table, by event
    _state.actions = tuple(_ACTIONS.get(TABLE[_state, event].action)
                           or getattr(HTTPConnection, TABLE[_state, event].action)
                           for event in Event)
