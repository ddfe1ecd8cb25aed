"""A connection as the modules that act on it see it: its fields, and what they may ask
of it.

``HTTPConnection`` (:mod:`aiowsgi.connection`) is the one implementation; the modules of
its concerns (reading, admission, output, flow, sendfile, rarepaths) depend on this
interface rather than on it, so that none of them imports the connection back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import IO, Any, Protocol

from .deadlines import Expiring
from .handoff import Handoff, Item
from .http11 import HTTPError, Request
from .serverstate import ServerState
from .states import State
from .wsgi import ConnectionFacts, WSGICall

Continuation = Callable[[], object] | None


class Strategy(Protocol):
    """How a connection's response bytes reach its transport (:mod:`aiowsgi.output`)."""

    def write_many(self, conn: Conn, pieces: list[bytes], size: int) -> None:
        """Write several pieces (``size`` bytes in all) at once; the transport is open."""


class Conn(Expiring, Protocol):
    """The fields of one connection and the transitions its modules may ask for."""

    server: ServerState
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    state: State
    served: int  # requests begun on this connection
    # reading
    buffer: bytes  # received and not yet consumed
    scanned: int  # bytes of ``buffer`` known to hold no head terminator
    skipped: int  # bytes of empty lines ignored before the next request line
    head_limit: int
    reading_paused: bool
    eof: bool  # the client closed its sending side
    lost: bool  # the connection is gone
    data_waiter: asyncio.Future[None] | None  # the task's read
    body_parts: list[bytes]  # of a body held in memory (state BODY)
    body_size: int
    # writing
    output: Strategy
    paused: bool  # the transport holds too much
    write_limits: tuple[int, int]  # the transport's (low, high) water marks
    drain_waiter: asyncio.Future[None] | None  # the task's drain
    after_drain: Callable[[], object] | None  # what DRAIN goes on with
    # the request being read, answered or both
    request: Request | None
    in_memory: int  # bytes of the server's body memory budget it holds
    handoff: Handoff | None
    call: WSGICall | None
    started: float  # when it was dispatched (for the access log)
    facts: ConnectionFacts
    proxied: bool  # the peer is a trusted proxy
    items_ready: Callable[[], None] | None  # the OUTPUT event's callback
    handoff_lock: threading.Lock

    def close(self, *, abort: bool = False) -> None: ...

    def answer_and_close(self, data: bytes) -> None: ...

    def start_task(self, coro: Coroutine[Any, Any, Continuation]) -> None: ...

    def refuse(self, exc: HTTPError, *, head_only: bool = False) -> None: ...

    def dispatch(self, request: Request, body: IO[bytes], size: int) -> None: ...

    def write_items(self, items: list[Item]) -> None: ...

    def response_done(self, keep_alive: bool) -> None: ...

    def log_access(self, call: WSGICall, ending: str, status: str | None = None) -> None: ...

    def forget_request(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def resume_writing(self) -> None: ...
