"""Server-sent events from a plain WSGI generator: ``aiowsgi serve examples.sse:app``.

Open http://127.0.0.1:8000/ in a browser, or watch the raw stream with
``curl -N http://127.0.0.1:8000/events``: one event a second, ten in all.

The response has no Content-Length, so aiowsgi sends it chunked and flushes each event as
it is yielded.  Between events the generator waits on ``environ["aiowsgi.disconnected"]``
instead of sleeping: when the client goes away the wait returns at once, the generator
stops, and its worker thread goes back to the pool instead of sitting out the remaining
seconds.  Each stream holds one worker thread while it runs, so ``--threads`` bounds how
many clients can listen at the same time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from wsgiref.types import ErrorStream, StartResponse, WSGIEnvironment

EVENTS = 10
INTERVAL = 1.0  # seconds between two events

PAGE = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Server-sent events on aiowsgi</title></head>
<body>
<h1>Server-sent events</h1>
<ol id="events"></ol>
<script>
  const list = document.getElementById("events");
  const source = new EventSource("events");
  source.addEventListener("tick", (event) => {
    const item = document.createElement("li");
    item.textContent = event.data;
    list.append(item);
  });
  // Without this, EventSource reconnects when the stream ends and it starts over.
  source.addEventListener("done", () => source.close());
</script>
</body>
</html>
"""


def event(name: str, data: object, event_id: int | None = None) -> bytes:
    """One event in the text/event-stream format: fields, then a blank line."""
    lines = [] if event_id is None else [f"id: {event_id}"]
    lines += [f"event: {name}", f"data: {json.dumps(data)}", "", ""]
    return "\n".join(lines).encode()


def ticks(environ: WSGIEnvironment) -> Iterator[bytes]:
    # Under a server that has no such key the wait is a plain one-second sleep.
    disconnected: threading.Event = environ.get("aiowsgi.disconnected") or threading.Event()
    errors: ErrorStream = environ["wsgi.errors"]
    sent = 0
    try:
        for n in range(1, EVENTS + 1):
            if n > 1 and disconnected.wait(INTERVAL):
                return  # the client is gone: stop now, not at the next write
            yield event("tick", {"n": n, "time": time.time()}, event_id=n)
            sent = n
        yield event("done", {"events": sent})
    finally:
        # Runs on every way out: the last event, a disconnect, or the server's close().
        state = "client gone" if disconnected.is_set() else "finished"
        errors.write(f"sse: stream stopped after {sent} events ({state})\n")
        errors.flush()


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if environ["REQUEST_METHOD"] not in {"GET", "HEAD"}:
        start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"),
                                                  ("Content-Length", "0")])
        return []
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(PAGE)))])
        return [PAGE]
    if path == "/events":
        start_response("200 OK", [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),  # nginx: pass each event on, do not buffer
        ])
        return ticks(environ)
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                     ("Content-Length", "10")])
    return [b"Not Found\n"]
