"""The access log: one line per request, on the ``aiowsgi.access`` logger.

The format uses gunicorn's atoms, so existing log parsers keep working.  Whether lines
are written is decided once per server (the ``access_log`` option and the logger's
level), so a server without an access log does no log work per request.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("aiowsgi.access")

DEFAULT_FORMAT = '%(h)s %(l)s %(u)s [%(t)s] "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)s %(X)s'

ATOMS: Mapping[str, str] = {
    "h": "client address",
    "p": "client port",
    "l": "'-' (the remote log name, never known)",
    "u": "REMOTE_USER, '-' when not set",
    "t": "time the request was received, day/month/year:hour:minute:second zone",
    "r": "request line (method, target, version)",
    "m": "method",
    "U": "path, without the query string",
    "q": "query string",
    "H": "protocol version",
    "s": "status code the client got (500 when the application failed before its "
         "headers were sent; '-' when no response was begun)",
    "b": "response body bytes (no head, no chunk framing), '-' for none",
    "B": "response body bytes",
    "f": "Referer",
    "a": "User-Agent",
    "T": "duration in whole seconds",
    "M": "duration in milliseconds",
    "D": "duration in microseconds",
    "L": "duration in decimal seconds",
    "X": "how the response ended: '+' complete, the connection kept open; '-' complete, "
         "the connection closed; 'X' aborted before it was complete",
    "{name}i": "a request header, '-' when absent",
    "{name}o": "a response header, '-' when absent (several values joined by ', ')",
}

_HEADER_ATOM = re.compile(r"%\(\{([^}]*)\}([io])\)")


@functools.lru_cache(maxsize=16)
def _header_atoms(fmt: str) -> tuple[tuple[str, str, str], ...]:
    """The header atoms of ``fmt``: (key in the atoms mapping, kind, what to look up),
    the environ key of a request header or the lower-case name of a response header."""
    found = []
    for name, kind in _HEADER_ATOM.findall(fmt):
        key = f"{{{name}}}{kind}"
        if kind == "i":
            env = name.upper().replace("-", "_")
            lookup = env if env in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + env
        else:
            lookup = name.lower()
        found.append((key, kind, lookup))
    return tuple(found)


def check_format(fmt: str) -> None:
    """ValueError naming an unknown atom or a malformed format."""
    known: dict[str, str] = {name: "" for name in ATOMS}
    for key, _, _ in _header_atoms(fmt):
        known[key] = ""
    try:
        fmt % known
    except KeyError as exc:
        raise ValueError(f"unknown atom %({exc.args[0]})s; known: "
                         f"{', '.join(ATOMS)}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed format: {exc}") from None


def enabled(access_log: bool) -> bool:
    return access_log and log.isEnabledFor(logging.INFO)


def write(fmt: str, environ: Mapping[str, Any], status: str | None, body_bytes: int,
          headers: list[tuple[str, str]] | None, started: float, duration: float,
          ending: str) -> None:
    """Log one request.

    ``status`` is the status line the client got (None: nothing was sent), ``headers``
    the response's headers, ``started`` a wall-clock time, ``duration`` in seconds, and
    ``ending`` the ``X`` atom ('+', '-' or 'X')."""
    method = environ.get("REQUEST_METHOD", "-")
    target = environ.get("REQUEST_URI", "-")
    protocol = environ.get("SERVER_PROTOCOL", "-")
    path, _, query = target.partition("?")
    atoms = {
        "h": environ.get("REMOTE_ADDR") or "-",
        "p": environ.get("REMOTE_PORT") or "-",
        "l": "-",
        "u": environ.get("REMOTE_USER") or "-",
        "t": time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(started)),
        "r": f"{method} {target} {protocol}",
        "m": method,
        "U": path,
        "q": query,
        "H": protocol,
        "s": status[:3] if status else "-",
        "b": str(body_bytes) if body_bytes else "-",
        "B": str(body_bytes),
        "f": environ.get("HTTP_REFERER", "-"),
        "a": environ.get("HTTP_USER_AGENT", "-"),
        "T": str(int(duration)),
        "M": str(int(duration * 1_000)),
        "D": str(int(duration * 1_000_000)),
        "L": f"{duration:.6f}",
        "X": ending,
    }
    for key, kind, lookup in _header_atoms(fmt):
        if kind == "i":
            atoms[key] = environ.get(lookup) or "-"
        else:
            values = [v for n, v in headers or () if n.lower() == lookup]
            atoms[key] = ", ".join(values) if values else "-"
    log.info(fmt, atoms)
