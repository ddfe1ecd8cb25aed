"""The access log: one line per request, on the ``aiowsgi.access`` logger.

The format uses gunicorn's atoms, so existing log parsers keep working.  What a server
does per request is decided once, at its start:

- nothing, when the ``access_log`` option is off or the logger is not enabled for info;
- when the only place the logger's records would go is aiowsgi's own stderr handler
  (the one :func:`~aiowsgi.runner.run` installs when the program configured no
  logging), the line is formatted by a function compiled from the format and handed to
  a :class:`~aiowsgi.linewriter.LineWriter`, with the handler's prefix: the same text,
  without a ``LogRecord`` per request and without writing on the loop;
- otherwise (``--log-config``, handlers the program added, caplog) a record per request,
  whose arguments are the atoms, as gunicorn gives them.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from time import perf_counter, time_ns
from typing import Any

from .linewriter import LineWriter

log = logging.getLogger("aiowsgi.access")
errors = logging.getLogger("aiowsgi.error")

#: The format of aiowsgi's own stderr handler (for every aiowsgi logger) in a process
#: that serves alone; see :func:`log_format` for the processes of ``--workers``.
LOG_FORMAT = "%(asctime)s [%(levelname)s] %(message)s"


def log_format(role: str = "") -> str:
    """The format of aiowsgi's own stderr handler in a process of ``role``: "" for one
    that serves alone, else "worker" or "supervisor", written with the process id
    (``[worker 4242]``), so that the lines of several processes, which share stderr and
    say the same things, can be told apart."""
    return f"%(asctime)s [{role} %(process)d] [%(levelname)s] %(message)s" if role \
        else LOG_FORMAT


def counted(count: int, noun: str) -> str:
    """``1 worker``, ``2 workers``: a count and its noun, for a log message."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"

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


# (environ, status, body bytes, response headers, time.time_ns(), duration, ending) -> text
Line = Callable[[Mapping[str, Any], "str | None", int, "list[tuple[str, str]] | None", int,
                 float, str], str]


def atoms(fmt: str, environ: Mapping[str, Any], status: str | None, body_bytes: int,
          headers: list[tuple[str, str]] | None, started: float, duration: float,
          ending: str) -> dict[str, str]:
    """Every atom of a request, the arguments of its log record.

    ``status`` is the status line the client got (None: nothing was sent), ``headers``
    the response's headers, ``started`` a wall-clock time, ``duration`` in seconds, and
    ``ending`` the ``X`` atom ('+', '-' or 'X')."""
    method = environ.get("REQUEST_METHOD", "-")
    target = environ.get("REQUEST_URI", "-")
    protocol = environ.get("SERVER_PROTOCOL", "-")
    path, _, query = target.partition("?")
    found = {
        "h": environ.get("REMOTE_ADDR") or "-",
        "p": environ.get("REMOTE_PORT") or "-",
        "l": "-",
        "u": environ.get("REMOTE_USER") or "-",
        "t": _clf_time(int(started)),
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
        found[key] = (environ.get(lookup) or "-" if kind == "i"
                      else response_header(headers, lookup))
    return found


def response_header(headers: list[tuple[str, str]] | None, name: str) -> str:
    values = [v for n, v in headers or () if n.lower() == name]
    return ", ".join(values) if values else "-"


@functools.lru_cache(maxsize=2)
def _clf_time(second: int) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))


# What each atom is in a compiled line: a replacement field of an f-string, over the
# names the compiled function has (see compile_line).
_COMPILED = {
    "h": "{get('REMOTE_ADDR') or '-'}",
    "p": "{get('REMOTE_PORT') or '-'}",
    "l": "-",
    "u": "{get('REMOTE_USER') or '-'}",
    "t": "{CLF_TIME}",
    "r": "{method} {target} {protocol}",
    "m": "{method}",
    "U": "{target.partition('?')[0]}",
    "q": "{target.partition('?')[2]}",
    "H": "{protocol}",
    "s": "{status[:3] if status else '-'}",
    "b": "{body_bytes or '-'}",
    "B": "{body_bytes}",
    "f": "{get('HTTP_REFERER', '-')}",
    "a": "{get('HTTP_USER_AGENT', '-')}",
    "T": "{int(duration)}",
    "M": "{int(duration * 1_000)}",
    "D": "{int(duration * 1_000_000)}",
    "L": "{duration:.6f}",
    "X": "{ending}",
}
_CONVERSION = re.compile(r"%(?:%|\(([^()]*)\)s)")
_REQUEST_LINE = ("r", "m", "U", "q", "H")


def compile_line(fmt: str, prefixed: bool, role: str = "") -> Line:
    """A function giving the text of a request's line: ``fmt % atoms(fmt, ...)``, after
    :func:`prefix` (of a process of ``role``) if ``prefixed``, and a newline.

    It is one f-string that computes only the atoms ``fmt`` uses: several times faster
    than the atoms and a %-operation.  Formats with other conversions than ``%(name)s``
    and ``%%`` (widths, say) get the general way.  The process id in the prefix is read
    once, here: a line costs the same with it as without."""
    after_time = _after_time(role) if prefixed else None
    header_atoms = {key: (kind, lookup) for key, kind, lookup in _header_atoms(fmt)}
    # the f-string, as adjacent literals: fixed text as repr(), atoms as f"..."
    parts = ['f"{LOG_TIME}"', repr(after_time)] if after_time is not None else []
    headers: list[str] = []  # header names, passed as H0, H1... (never spelled in source)
    names = set()
    end = 0
    for match in _CONVERSION.finditer(fmt):
        literal = fmt[end:match.start()]
        if "%" in literal:
            return functools.partial(_general, fmt, after_time)
        parts.append(repr(literal))
        end = match.end()
        name = match.group(1)
        if name is None:
            parts.append(repr("%"))
        elif name in header_atoms:
            kind, lookup = header_atoms[name]
            headers.append(lookup)
            constant = f"H{len(headers) - 1}"
            parts.append(f'f"{{get({constant}) or \'-\'}}"' if kind == "i"
                         else f'f"{{response_header(headers, {constant})}}"')
        else:
            names.add(name)
            parts.append(f'f"{_COMPILED[name]}"')
    if "%" in fmt[end:]:
        return functools.partial(_general, fmt, after_time)
    parts.append(repr(fmt[end:] + "\n"))
    source = ["def line(environ, status, body_bytes, headers, now, duration, ending):",
              "    global LOG_MS, LOG_TIME, CLF_SECOND, CLF_TIME",
              "    get = environ.get"]
    # The times, formatted again only when their millisecond or second changes: under
    # load many lines share them (a cache of our own: functools' costs more per hit).
    if prefixed:
        source += ["    if now // 1_000_000 != LOG_MS:",
                   "        LOG_MS = now // 1_000_000",
                   "        LOG_TIME = log_time(LOG_MS)"]
    if "t" in names:
        source += ["    if int(now / 1e9 - duration) != CLF_SECOND:",
                   "        CLF_SECOND = int(now / 1e9 - duration)",
                   "        CLF_TIME = clf_time(CLF_SECOND)"]
    if names.intersection(_REQUEST_LINE):
        source += ["    method = get('REQUEST_METHOD', '-')",
                   "    target = get('REQUEST_URI', '-')",
                   "    protocol = get('SERVER_PROTOCOL', '-')"]
    source.append(f"    return ({' '.join(parts)})")
    namespace: dict[str, Any] = {"clf_time": _clf_time, "log_time": _log_time,
                                 "response_header": response_header, "LOG_MS": None,
                                 "CLF_SECOND": None}
    namespace.update((f"H{number}", name) for number, name in enumerate(headers))
    exec("\n".join(source), namespace)
    return namespace["line"]  # type: ignore[no-any-return]


def _general(fmt: str, after_time: str | None, environ: Mapping[str, Any],
             status: str | None, body_bytes: int, headers: list[tuple[str, str]] | None,
             now: int, duration: float, ending: str) -> str:
    text = fmt % atoms(fmt, environ, status, body_bytes, headers, now / 1e9 - duration,
                       duration, ending)
    if after_time is None:
        return text + "\n"
    return f"{_log_time(now // 1_000_000)}{after_time}{text}\n"


class DefaultHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """aiowsgi's stderr handler, installed by ``run()`` when the program configured no
    logging, in a process of ``role`` (see :func:`log_format`).  While it is the only
    place access records would go, the access log writes its lines itself, with the
    same prefix (:func:`prefix`)."""

    def __init__(self, role: str = "") -> None:
        super().__init__()
        self.role = role
        self.setFormatter(logging.Formatter(log_format(role)))


def prefix(now_ns: int, role: str = "") -> str:
    """What :class:`DefaultHandler`'s formatter, in a process of ``role``, puts before an
    info message logged at ``now_ns`` (``time.time_ns()``)."""
    return _log_time(now_ns // 1_000_000) + _after_time(role)


def _after_time(role: str) -> str:
    """The prefix of an info line after logging's asctime, in this process."""
    return f" [{role} {os.getpid()}] [INFO] " if role else " [INFO] "


def _log_time(millisecond: int) -> str:
    """logging's ``asctime`` (the line function keeps the last one: under load, many
    lines share a millisecond)."""
    second, millisecond = divmod(millisecond, 1000)
    return f"{_log_second(second)},{millisecond:03d}"


@functools.lru_cache(maxsize=2)
def _log_second(second: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))


def _sole_handler() -> DefaultHandler | None:
    """aiowsgi's own handler, if access records would go there and nowhere else."""
    access, parent = log, logging.getLogger("aiowsgi")
    if (access.handlers or access.filters or not access.propagate or parent.filters
            or len(parent.handlers) != 1 or parent.disabled):
        return None
    handler = parent.handlers[0]
    if (type(handler) is not DefaultHandler or handler.filters
            or handler.level > logging.INFO or handler.formatter is None
            or handler.formatter._fmt != log_format(handler.role)
            or handler.formatter.datefmt):
        return None
    if parent.propagate and logging.getLogger().handlers:
        return None  # the root logger's handlers would get the records too
    return handler


def _emit(handler: DefaultHandler, text: str) -> None:
    handler.acquire()
    try:
        handler.stream.write(text)
        handler.stream.flush()
    finally:
        handler.release()


def _writing(line: Line, add: Callable[[str], None]) -> Callable[..., None]:
    """AccessLog.write on the hot path: the line, to the writer."""
    def write(environ: Mapping[str, Any], status: str | None, body_bytes: int,
              headers: list[tuple[str, str]] | None, started: float, ending: str) -> None:
        add(line(environ, status, body_bytes, headers, time_ns(), perf_counter() - started,
                 ending))

    return write


class AccessLog:
    """One server's access log, set up at its start (see the module's docstring);
    ``role`` is that of the process whose handler the writer writes for."""

    def __init__(self, fmt: str, writer: LineWriter | None, role: str = "") -> None:
        self.fmt = fmt
        self.writer = writer
        if writer is not None:
            self.write = _writing(  # type: ignore[method-assign]
                compile_line(fmt, prefixed=True, role=role), writer.add)

    @property
    def dropped(self) -> int:
        return self.writer.dropped if self.writer is not None else 0

    def write(self, environ: Mapping[str, Any], status: str | None, body_bytes: int,
              headers: list[tuple[str, str]] | None, started: float, ending: str) -> None:
        """Log one request.

        ``status`` is the status line the client got (None: nothing was sent),
        ``headers`` the response's headers, ``started`` when the request began
        (``time.perf_counter()``), ``ending`` the ``X`` atom ('+', '-' or 'X').
        (Without a writer: a record.  With one, ``__init__`` replaced this method.)"""
        duration = time.perf_counter() - started
        log.info(self.fmt, atoms(self.fmt, environ, status, body_bytes, headers,
                                 time.time() - duration, duration, ending))

    async def close(self, timeout: float) -> None:
        """Write every line still waiting (within ``timeout`` seconds); say what was lost."""
        writer = self.writer
        if writer is None:
            return
        unwritten = await writer.close(timeout)
        if writer.dropped_full:
            errors.warning("%s dropped: more than access_log_buffer=%d characters were "
                           "waiting to be written", counted(writer.dropped_full, _LINE),
                           writer.limit)
        if writer.dropped_failed:
            errors.warning("%s could not be written (%s)",
                           counted(writer.dropped_failed, _LINE), writer.failure)
        if unwritten:
            errors.warning("%s still being written at the end of the shutdown",
                           counted(unwritten, _LINE))


_LINE = "access log line"


def open_access_log(access_log: bool, fmt: str, buffer: int) -> AccessLog | None:
    """The access log of a server starting now, or None when it logs nothing."""
    if not (access_log and log.isEnabledFor(logging.INFO)):
        return None
    handler = _sole_handler()
    if handler is None:
        return AccessLog(fmt, None)
    writer = LineWriter(functools.partial(_emit, handler), buffer, "aiowsgi-access-log")
    return AccessLog(fmt, writer, handler.role)
