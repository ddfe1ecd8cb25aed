"""The states of a connection, the events that reach it, and what each event does in each
state: the one table :class:`~aiowsgi.connection.HTTPConnection` dispatches on.

A request that needs no waiting beyond the network and the application (a head, maybe a
small body, the application's answer) moves HEAD -> (BODY ->) APP (-> DRAIN) -> HEAD in
the protocol's callbacks.  Anything rarer or longer (a body spooled to disk or chunked, a
file, a refusal, an application late to answer) runs as a coroutine in TASK, which hands
the connection back (APP) or closes it.

Every wait has one deadline, ``HTTPConnection.deadline``, checked by one sweep
(:mod:`aiowsgi.deadlines`); the DEADLINE row says what passing it means in each state.

The table: one row per state, one column per event, the action (a method of
``HTTPConnection``, or a function of the module of its concern: ``head_data`` and
``head_eof`` are ``reading.read_head``; ``-``: nothing happens and the state stays)::

    state   DATA       EOF        LOST       WRITABLE    OUTPUT        DEADLINE       ABORT
    HEAD    head_data  head_eof   close      -           -             head_late      close_now
    BODY    body_data  close      close      -           -             body_late      close_now
    APP     hold_data  -          close      -           write_output  output_late    close_now
    DRAIN   hold_data  -          close      drained     -             send_late      close_now
    TASK    feed_task  wake_task  fail_task  wake_drain  -             time_out_task  cancel_task
    CLOSED  -          -          -          -           -             -              -

Where each action may leave the connection (``TABLE[...].then``):

- head_data, head_eof: HEAD (more of the head to come, or the client went quiet), BODY
  (a body to hold in memory), APP (the call is handed to the pool), TASK (a body read by a
  task; a refusal), CLOSED.
- body_data: BODY, or APP once the body is complete.
- write_output, drained: APP (waiting for more output), DRAIN (the transport holds too
  much), HEAD (the response is done and the connection kept alive), TASK (a file, an
  abort), CLOSED.
- head_late: HEAD (a kept-alive connection whose next head has begun gets the header
  timeout), TASK (408), CLOSED (idle).  body_late, output_late: TASK (408; 503/504).
- hold_data, feed_task, wake_task, fail_task, wake_drain, time_out_task, cancel_task:
  the state stays (a task ends by handing the connection back or closing it).
- close, close_now, send_late: CLOSED.

Whatever the state, on EOF and LOST the running application call is told first
(``aiowsgi.disconnected``), and on LOST its next write raises.  Only a task waits on
futures (its reads and drains): the TASK row wakes them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple


class State(enum.IntEnum):
    """A connection's state: ``conn.state``, the only field that says where it is.  Each
    carries its row of the table as ``actions`` (by :class:`Event`), bound once by
    :mod:`aiowsgi.connection`, which owns the actions; a transition is an assignment."""

    actions: tuple[Callable[..., None], ...]

    HEAD = 0  # waiting for a request head (between requests too)
    BODY = 1  # receiving a body that will be held in memory
    APP = 2  # waiting for the application's output
    DRAIN = 3  # waiting for the transport to take what was written
    TASK = 4  # a coroutine has the connection
    CLOSED = 5


class Event(enum.IntEnum):
    DATA = 0  # bytes arrived (data_received)
    EOF = 1  # the client closed its sending side (eof_received)
    LOST = 2  # the connection is gone (connection_lost)
    WRITABLE = 3  # the transport took what it held (resume_writing)
    OUTPUT = 4  # the application thread handed output over
    DEADLINE = 5  # the current wait passed its deadline (the sweep)
    ABORT = 6  # the server closes every connection (the end of a graceful shutdown)


class Transition(NamedTuple):
    action: str  # what handles the event (see HTTPConnection); "ignore" does nothing
    then: tuple[State, ...]  # the states the action may leave the connection in


H, B, A, D, T, C = State
_ALL_AFTER_HEAD = (H, B, A, T, C)
_AFTER_OUTPUT = (A, H, D, T, C)

TABLE: dict[tuple[State, Event], Transition] = {
    (H, Event.DATA): Transition("head_data", _ALL_AFTER_HEAD),
    (H, Event.EOF): Transition("head_eof", _ALL_AFTER_HEAD),
    (H, Event.LOST): Transition("close", (C,)),
    (H, Event.WRITABLE): Transition("ignore", (H,)),
    (H, Event.OUTPUT): Transition("ignore", (H,)),
    (H, Event.DEADLINE): Transition("head_late", (H, T, C)),
    (H, Event.ABORT): Transition("close_now", (C,)),

    (B, Event.DATA): Transition("body_data", (B, A)),
    (B, Event.EOF): Transition("close", (C,)),
    (B, Event.LOST): Transition("close", (C,)),
    (B, Event.WRITABLE): Transition("ignore", (B,)),
    (B, Event.OUTPUT): Transition("ignore", (B,)),
    (B, Event.DEADLINE): Transition("body_late", (T,)),
    (B, Event.ABORT): Transition("close_now", (C,)),

    (A, Event.DATA): Transition("hold_data", (A,)),
    (A, Event.EOF): Transition("ignore", (A,)),
    (A, Event.LOST): Transition("close", (C,)),
    (A, Event.WRITABLE): Transition("ignore", (A,)),
    (A, Event.OUTPUT): Transition("write_output", _AFTER_OUTPUT),
    (A, Event.DEADLINE): Transition("output_late", (T,)),
    (A, Event.ABORT): Transition("close_now", (C,)),

    (D, Event.DATA): Transition("hold_data", (D,)),
    (D, Event.EOF): Transition("ignore", (D,)),
    (D, Event.LOST): Transition("close", (C,)),
    (D, Event.WRITABLE): Transition("drained", _AFTER_OUTPUT),
    (D, Event.OUTPUT): Transition("ignore", (D,)),
    (D, Event.DEADLINE): Transition("send_late", (C,)),
    (D, Event.ABORT): Transition("close_now", (C,)),

    (T, Event.DATA): Transition("feed_task", (T,)),
    (T, Event.EOF): Transition("wake_task", (T,)),
    (T, Event.LOST): Transition("fail_task", (T,)),
    (T, Event.WRITABLE): Transition("wake_drain", (T,)),
    (T, Event.OUTPUT): Transition("ignore", (T,)),
    (T, Event.DEADLINE): Transition("time_out_task", (T,)),
    (T, Event.ABORT): Transition("cancel_task", (T,)),

    **{(C, event): Transition("ignore", (C,)) for event in Event},
}


def table_text() -> str:
    """The table in the form of the module docstring's view (rows and actions), for the
    test that keeps the two the same."""
    lines = []
    for state in State:
        actions = [TABLE[state, event].action for event in Event]
        lines.append(" ".join([state.name, *("-" if a == "ignore" else a for a in actions)]))
    return "\n".join(lines)
