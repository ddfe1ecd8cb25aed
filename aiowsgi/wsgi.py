"""The PEP 3333 contract: environ, start_response, write() and the response iterable.

The environ of a request is built here and only here (:func:`new_call`), from what is
known of its connection, its parsed head and the proxy settings.  A ``WSGICall`` runs in
a worker thread.  It never touches a socket: everything it produces goes to the event
loop through a :class:`~aiowsgi.handoff.Handoff`, already framed for the wire, ending
with a ``Finish``, ``Abort`` or ``SendFile`` that tells the loop what to do once the
bytes are out.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import stat
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any, Protocol

from . import http11
from .handoff import Abort, ClientGone, Finish, Handoff, SendFile
from .http11 import CHUNKED, LAST_CHUNK, LENGTH, Request, ResponseHead, frame_response
from .proxy import TrustedProxies, apply_proxy_headers

log = logging.getLogger("aiowsgi.error")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Disconnected(threading.Event):
    """``environ["aiowsgi.disconnected"]``: set when the response can no longer reach the
    client (it went away, stopped reading, or the request outlived its deadline).

    A ``threading.Event`` (``is_set()``, ``wait(timeout)``) whose lock and condition are
    only made when a thread first waits on it, so that the many requests that never ask
    cost nothing.
    """

    _guard = threading.Lock()

    def __init__(self) -> None:  # no super().__init__: made lazily in _event()
        self._flag = False
        self._real: threading.Event | None = None

    def _event(self) -> threading.Event:
        with self._guard:
            if self._real is None:
                self._real = threading.Event()
                if self._flag:
                    self._real.set()
            return self._real

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set

    def set(self) -> None:
        with self._guard:
            self._flag = True
            real = self._real
        if real is not None:
            real.set()

    def clear(self) -> None:
        raise RuntimeError("a disconnection cannot be undone")

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        return self._event().wait(timeout)


class ServerFlags(Protocol):
    """What a call needs to know of its server while it runs."""

    shutting_down: bool
    server_header: bool  # add "Server: aiowsgi" when the application gives none
    expose_tracebacks: bool  # put an error's traceback in its 500 response


class FileWrapper:
    """``wsgi.file_wrapper``: a real file returned through it is sent with sendfile."""

    def __init__(self, filelike: IO[bytes], blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while data := read(self.blksize):
            yield data

    def sendfile_range(self) -> tuple[int, int] | None:
        """``(offset, size)`` of what is left in a regular binary file, else None."""
        filelike = self.filelike
        if isinstance(filelike, io.TextIOBase):
            return None
        try:
            fd = filelike.fileno()
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            offset = filelike.tell() if hasattr(filelike, "tell") else 0
        except (AttributeError, OSError, ValueError):
            return None
        return offset, max(0, st.st_size - offset)


# -- environ ----------------------------------------------------------------------

_header_keys: dict[str, str] = {"Content-Type": "CONTENT_TYPE",
                                 "Content-Length": "CONTENT_LENGTH"}
_MAX_CACHED_KEYS = 1024


def _header_key(name: str) -> str:
    """The environ key of a header field name; "" for a name with an underscore, which
    would alias its hyphenated twin (X_Forwarded_For and X-Forwarded-For) and is dropped."""
    key = _header_keys.get(name)
    if key is None:
        if "_" in name:
            key = ""
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                key = key[5:]
        if len(_header_keys) < _MAX_CACHED_KEYS:
            _header_keys[name] = key
    return key


# What every request's environ on one connection shares, found once when it opens; a
# request's environ starts as a copy of it (cheaper than building it key by key).
ConnectionFacts = dict[str, Any]


def connection_facts(*, server_name: str, server_port: str, remote_addr: str,
                     remote_port: str, url_scheme: str = "http",
                     root_path: str = "") -> ConnectionFacts:
    """The part of the environ that is the same for every request on a connection."""
    return {
        "SCRIPT_NAME": root_path,
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": remote_port,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }


def transport_facts(transport: asyncio.BaseTransport, root_path: str,
                    over_ssl: bool) -> ConnectionFacts:
    """:func:`connection_facts` of an asyncio transport's connection."""
    sockname = transport.get_extra_info("sockname")
    peername = transport.get_extra_info("peername")
    if isinstance(sockname, tuple):
        server_name, server_port = str(sockname[0]), str(sockname[1])
    else:
        server_name, server_port = str(sockname or "localhost"), ""
    if isinstance(peername, tuple):
        remote_addr, remote_port = str(peername[0]), str(peername[1])
    else:
        remote_addr, remote_port = "", ""
    return connection_facts(server_name=server_name, server_port=server_port,
                            remote_addr=remote_addr, remote_port=remote_port,
                            url_scheme="https" if over_ssl else "http",
                            root_path=root_path)


def new_call(facts: ConnectionFacts, request: Request, body: IO[bytes], body_size: int, *,
             proxies: TrustedProxies | None, app: WSGIApp, handoff: Handoff,
             server: ServerFlags, keep_alive: bool) -> WSGICall:
    """The application call for ``request``: its environ, from the connection's ``facts``,
    the parsed head, the body read so far (``body_size`` bytes) and, when the peer is a
    trusted proxy (``proxies``, else None), the forwarding headers it sent.

    The one place an environ is built (one function: it runs for every request)."""
    environ = facts.copy()
    environ["REQUEST_METHOD"] = request.method
    path = request.path
    root = environ["SCRIPT_NAME"]
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        path = path[len(root):]  # mounted under --root-path: the rest is the app's
    environ["PATH_INFO"] = path
    environ["QUERY_STRING"] = request.query
    environ["SERVER_PROTOCOL"] = "HTTP/1.1" if request.http11 else "HTTP/1.0"
    environ["REQUEST_URI"] = environ["RAW_URI"] = request.target
    environ["wsgi.input"] = body
    environ["aiowsgi.disconnected"] = Disconnected()
    known = _header_keys.get
    for name, value in request.headers:
        key = known(name)
        if key is None:
            key = _header_key(name)
        if not key:
            continue
        if key in environ:
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ", ") + value
        environ[key] = value
    if request.chunked:
        # The body was decoded before the app runs, so its length is known; frameworks
        # that trust only CONTENT_LENGTH (Django) can then read it.
        environ["CONTENT_LENGTH"] = str(body_size)
    elif request.content_length is not None and "," in environ["CONTENT_LENGTH"]:
        environ["CONTENT_LENGTH"] = str(request.content_length)  # "5, 5" -> "5"
    if request.authority is not None:
        environ["HTTP_HOST"] = request.authority
    if proxies is not None:
        apply_proxy_headers(environ, proxies)
    return WSGICall(app, environ, request, handoff, server, keep_alive)


# -- running the application ------------------------------------------------------

# Statuses and headers already found valid: most responses repeat the same few, and a
# set lookup costs less than checking them again.  Bounded; only valid ones get in.
_valid_statuses: set[str] = set()
_valid_headers: set[tuple[str, str]] = set()
_MAX_REMEMBERED = 4096


class WSGICall:
    """One application call, from ``app(environ, start_response)`` to ``close()``."""

    __slots__ = (
        "_body",
        "_error_status",
        "_file_handed",
        "_held",
        "app",
        "body_bytes",
        "disconnected",
        "environ",
        "handoff",
        "head",
        "headers",
        "http11",
        "keep_alive",
        "method",
        "remaining",
        "server",
        "status",
    )

    headers: list[tuple[str, str]]

    def __init__(self, app: WSGIApp, environ: dict[str, Any], request: Request,
                 handoff: Handoff, server: ServerFlags, keep_alive: bool) -> None:
        self.app = app
        self.server = server
        self.environ = environ
        self.disconnected: Disconnected = environ["aiowsgi.disconnected"]
        self.handoff = handoff
        self.method = request.method
        self.http11 = request.http11
        self.keep_alive = keep_alive
        self.status: str | None = None
        # self.headers is set by start_response, and read only once status is set
        self.head: ResponseHead | None = None
        self.remaining = 0
        self._error_status: str | None = None  # the server's 500, for sent_status
        # for the access log: the body bytes framed so far (a file's as they are sent)
        self.body_bytes = 0
        self._file_handed = False
        self._body = environ.get("wsgi.input")
        self._held = b""

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: ExcInfo | None = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head is not None:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called again without exc_info")
        if type(status) is not str or status not in _valid_statuses:
            http11.check_status(status)
            if len(_valid_statuses) < _MAX_REMEMBERED:
                _valid_statuses.add(status)
        if type(headers) is not list:
            raise TypeError(f"response headers must be a list, not {type(headers).__name__}")
        for header in headers:
            if type(header) is not tuple or len(header) != 2:
                raise TypeError(f"response header must be a (name, value) tuple: {header!r}")
            name, value = header
            if type(name) is str and type(value) is str and header in _valid_headers:
                continue
            http11.check_header(name, value)
            if len(_valid_headers) < _MAX_REMEMBERED:
                _valid_headers.add(header)
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy write() callable: the bytes go out before the iterable's."""
        if self.status is None:
            raise AssertionError("write() called before start_response()")
        if type(data) is not bytes:
            raise TypeError(f"write() takes bytes, not {type(data).__name__}")
        if data:
            self._send(data)

    def __call__(self) -> None:
        """Run the application; hand the response to the loop.  Never raises.

        The call is its own pool task: a bound ``run`` would be one more object per
        request for the garbage collector to count."""
        if not self.handoff.start():  # given up on while it waited for a thread
            self._close_body()
            self.handoff.thread_done()
            return
        try:
            final = self._respond()
        except ClientGone:
            final = None
        except BaseException as exc:  # noqa: BLE001 - a worker thread must not die
            final = self._failure(exc)
        finally:
            self._close_body()
        if final is None:
            self.handoff.thread_done()
            return
        try:
            self.handoff.put(final, last=True)
        except ClientGone:
            if type(final) is SendFile:
                final.close()

    def _close_body(self) -> None:
        body = self._body
        if body is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs three calls, once per request
                body.close()
            except Exception:  # noqa: BLE001 - the response matters more than its input
                pass

    def _respond(self) -> Finish | Abort | SendFile:
        result = self.app(self.environ, self.start_response)
        try:
            if self.head is None and self.status is not None:
                if type(result) is list or type(result) is tuple:
                    return self._whole(result)
                if type(result) is FileWrapper:
                    span = result.sendfile_range()
                    if span is not None:
                        return self._file(result, *span)
            for data in result:
                if type(data) is not bytes:
                    raise TypeError(f"application yielded {type(data).__name__}, not bytes")
                if data:
                    self._send(data)
            return self._finish()
        finally:
            close = getattr(result, "close", None)
            if close is not None and not self._file_handed:
                close()

    def _begin(self, known_length: int | None = None) -> ResponseHead:
        if self.status is None:
            raise AssertionError("application returned without calling start_response()")
        head = self.head = frame_response(
            self.status, self.headers, method=self.method, http11=self.http11,
            keep_alive=self.keep_alive and not self.server.shutting_down,
            known_length=known_length,
            server_header=self.server.server_header,
        )
        self.remaining = head.content_length or 0
        return head

    @property
    def sent_status(self) -> str | None:
        """The status line the client gets: the application's once its head is framed,
        the server's 500 if the application failed before; None before either."""
        if self._error_status is not None:
            return self._error_status
        return self.status if self.head is not None else None

    def _frame(self, data: bytes) -> bytes:
        head = self.head
        assert head is not None
        if not head.send_body:
            return b""
        if head.framing == CHUNKED:
            self.body_bytes += len(data)
            return http11.chunk(data)
        if head.framing == LENGTH:
            if len(data) > self.remaining:
                if self.remaining >= 0:
                    log.error("application sent more than its Content-Length; truncated "
                              "(%s %s)", self.method, self.environ.get("PATH_INFO"))
                data = data[: max(self.remaining, 0)]
                self.remaining = -1
                head.keep_alive = False
            else:
                self.remaining -= len(data)
        self.body_bytes += len(data)
        return data

    def _send(self, data: bytes) -> None:
        out = self._frame(data) if self.head is not None else self._begin().data + self._frame(data)
        head = self.head
        assert head is not None
        if out and head.framing == LENGTH and self.remaining <= 0:
            # The body is complete: hold its end back until close() has run.
            self._held += out
            return
        if out:
            self.handoff.put(out, len(out))

    def _finish(self) -> Finish | Abort:
        tail = self._begin(known_length=0).data if self.head is None else self._held
        head = self.head
        assert head is not None
        if head.send_body:
            if head.framing == CHUNKED:
                tail += LAST_CHUNK
            elif head.framing == LENGTH and self.remaining > 0:
                return self._short(tail)
        return Finish(tail, head.keep_alive)

    def _short(self, data: bytes) -> Abort:
        log.error("application sent %d bytes less than its Content-Length (%s %s)",
                  self.remaining, self.method, self.environ.get("PATH_INFO"))
        return Abort(data)

    def _whole(self, parts: list[bytes] | tuple[bytes, ...]) -> Finish | Abort:
        for part in parts:
            if type(part) is not bytes:
                raise TypeError(f"application returned {type(part).__name__}, not bytes")
        body = b"".join(parts)
        head = self._begin(known_length=len(body))
        if not head.send_body:
            return Finish(head.data, head.keep_alive)
        if head.content_length == len(body):  # what _frame would do, without the call
            self.remaining = 0
            self.body_bytes = len(body)
            return Finish(head.data + body, head.keep_alive)
        data = head.data + self._frame(body)
        if self.remaining > 0:
            return self._short(data)
        return Finish(data, head.keep_alive)

    def _file(self, wrapper: FileWrapper, offset: int, size: int) -> Finish | SendFile:
        head = self._begin(known_length=size)
        if not head.send_body:
            return Finish(head.data, head.keep_alive)
        count = head.content_length if head.content_length is not None else size
        self._file_handed = True
        close = getattr(wrapper, "close", None) or (lambda: None)
        return SendFile(head.data, wrapper.filelike, offset, count, close, head.keep_alive)

    def _failure(self, exc: BaseException) -> Finish | Abort:
        log.error("error in application (%s %s)", self.method,
                  self.environ.get("PATH_INFO"), exc_info=exc, extra={"aiowsgi_app": self.app})
        if self.head is None:
            expose = self.server.expose_tracebacks
            detail = "".join(traceback.format_exception(exc)) if expose else ""
            data = http11.error_response(500, detail, keep_alive=self.keep_alive,
                                         head_only=self.method == "HEAD")
            self._error_status = "500 Internal Server Error"
            self.body_bytes = len(data) - data.index(b"\r\n\r\n") - 4
            return Finish(data, self.keep_alive)
        return Abort()
