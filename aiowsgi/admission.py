"""Admission: whether a request gets a thread, and what the client hears when not.

``threads`` threads run application calls and at most ``max_queue`` more wait in the
pool's FIFO queue (the counts are in :class:`~aiowsgi.serverstate.ServerState`); past that
a request is answered 503 at once (:func:`dispatch`).  A request that no thread takes up
within ``queue_timeout`` is answered 503, and one whose application does not start its
response within ``request_timeout`` is answered 504 and its thread abandoned
(:func:`first_output_late`); abandoned threads are replaced, up to a cap.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import IO

from . import deadlines, http11, wsgi
from .connstate import Conn, Continuation
from .handoff import ClientGone, Handoff
from .http11 import Request
from .states import State

log = logging.getLogger("aiowsgi.error")

_RETRY_AFTER = 1  # seconds, in the Retry-After of a 503


class _RequestTimeout(Exception):
    """The application did not start its response within ``request_timeout``."""


def dispatch(conn: Conn, request: Request, body: IO[bytes], size: int) -> None:
    """Hand the application call to the pool (the connection waits in APP for its
    output), or answer 503 when too many wait already."""
    server = conn.server
    if conn.lost:  # gone while its body was read: nobody to answer
        body.close()
        conn.close()
        return
    if server.active >= server.admit_limit:
        log.warning("%d requests already wait for a thread (max_queue): answered 503",
                    server.active - server.capacity)
        body.close()
        conn.answer_and_close(http11.error_response(
            503, "too many requests waiting", retry_after=_RETRY_AFTER,
            head_only=request.method == "HEAD"))
        return
    handoff = Handoff(server.wakeups, server.config.send_buffer_size, conn.items_ready,
                      conn.handoff_lock)
    call = wsgi.new_call(conn.facts, request, body, size,
                         proxies=server.trusted if conn.proxied else None, app=server.app,
                         handoff=handoff, server=server,
                         keep_alive=request.keep_alive and not server.shutting_down)
    if conn.eof:
        call.disconnected.set()
    try:
        server.executor.run_soon(call)
    except RuntimeError:  # the pool is shutting down
        body.close()
        conn.answer_and_close(http11.error_response(
            503, "server is shutting down", head_only=request.method == "HEAD"))
        return
    server.active += 1
    server.requests += 1
    if server.requests == server.config.max_requests and server.on_max_requests is not None:
        server.on_max_requests()
    conn.handoff, conn.call = handoff, call
    if server.access:
        conn.started = time.perf_counter()
    conn.state = State.APP
    conn.deadline = conn.loop.time() + server.first_wait


async def first_output_late(conn: Conn) -> Continuation:
    """The first wait ran out: either no thread took the request up (503), or the
    application runs and may still have ``request_timeout`` to answer (else 504)."""
    handoff, request = conn.handoff, conn.request
    assert handoff is not None and request is not None
    server = conn.server
    config = server.config
    waited = server.first_wait
    if handoff.cancel_unstarted(ClientGone("no thread in time")):
        # it stays in the pool's queue, to be skipped there
        if server.access and conn.call is not None:
            conn.log_access(conn.call, "-", "503")
        conn.forget_request()
        server.release()
        log.warning("no thread became free within queue_timeout=%ss: answered 503",
                    config.queue_timeout)
        conn.transport.write(http11.error_response(
            503, "no worker thread became free in time", retry_after=_RETRY_AFTER,
            head_only=request.method == "HEAD"))
        return None
    timeout = config.request_timeout
    try:
        if not timeout:
            items = await handoff.take()
        elif waited >= timeout:
            raise _RequestTimeout
        else:
            try:
                items = await deadlines.within(conn, handoff.take(), timeout - waited)
            except TimeoutError:
                raise _RequestTimeout from None
    except _RequestTimeout:
        log.error("%s %s: no response after request_timeout=%ss; answered 504, the "
                  "application thread is abandoned", request.method, request.path,
                  config.request_timeout)
        if server.access and conn.call is not None:
            conn.log_access(conn.call, "-", "504")
        give_up(conn, ClientGone("request timeout"), abandon=True)
        conn.transport.write(http11.error_response(
            504, "the application took too long", head_only=request.method == "HEAD"))
        return None
    return partial(conn.write_items, items)


def give_up(conn: Conn, error: ClientGone, *, abandon: bool = False) -> None:
    """Stop following an application call that is still running (or still queued): its
    next write raises, and its slot is released once its thread has finished; with
    ``abandon``, its thread no longer counts as one of the pool's (it may be replaced)."""
    handoff, call = conn.handoff, conn.call
    if handoff is None:
        return
    assert call is not None
    conn.forget_request()
    server = conn.server
    call.disconnected.set()
    handoff.abort(error)
    if abandon:
        server.abandon()
        if handoff.detach(server.abandoned_done):
            server.abandoned_done()
    elif handoff.detach(server.release):
        server.release()
