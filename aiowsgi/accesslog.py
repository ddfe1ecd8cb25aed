"""The access log: one line per request, on the ``aiowsgi.access`` logger.

The format uses gunicorn's atoms, so existing log parsers keep working.  Whether lines
are written is decided once per server (the ``access_log`` option and the logger's
level), so a server without an access log does no log work per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("aiowsgi.access")

DEFAULT_FORMAT = '%(h)s - - [%(t)s] "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)s'

ATOMS: Mapping[str, str] = {
    "h": "client address",
    "p": "client port",
    "t": "time the request was received, [day/month/year:hour:minute:second zone]",
    "r": "request line (method, target, version)",
    "m": "method",
    "U": "path, without the query string",
    "q": "query string",
    "H": "protocol version",
    "s": "status code",
    "b": "response bytes, '-' for none",
    "B": "response bytes",
    "f": "Referer",
    "a": "User-Agent",
    "T": "duration in whole seconds",
    "D": "duration in microseconds",
    "L": "duration in decimal seconds",
}


def check_format(fmt: str) -> None:
    """ValueError naming an unknown atom or a malformed format."""
    try:
        fmt % {name: "" for name in ATOMS}
    except KeyError as exc:
        raise ValueError(f"unknown atom %({exc.args[0]})s; known: "
                         f"{', '.join(ATOMS)}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed format: {exc}") from None


def enabled(access_log: bool) -> bool:
    return access_log and log.isEnabledFor(logging.INFO)


def write(fmt: str, environ: Mapping[str, Any], status: str | None, sent: int,
          started: float, duration: float) -> None:
    """Log one request; ``started`` is a wall-clock time, ``duration`` in seconds."""
    method = environ.get("REQUEST_METHOD", "-")
    target = environ.get("REQUEST_URI", "-")
    protocol = environ.get("SERVER_PROTOCOL", "-")
    path, _, query = target.partition("?")
    atoms = {
        "h": environ.get("REMOTE_ADDR") or "-",
        "p": environ.get("REMOTE_PORT") or "-",
        "t": time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(started)),
        "r": f"{method} {target} {protocol}",
        "m": method,
        "U": path,
        "q": query,
        "H": protocol,
        "s": status[:3] if status else "-",
        "b": str(sent) if sent else "-",
        "B": str(sent),
        "f": environ.get("HTTP_REFERER", "-"),
        "a": environ.get("HTTP_USER_AGENT", "-"),
        "T": str(int(duration)),
        "D": str(int(duration * 1_000_000)),
        "L": f"{duration:.6f}",
    }
    log.info(fmt, atoms)
