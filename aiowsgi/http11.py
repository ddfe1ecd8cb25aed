"""HTTP/1.1 message syntax (RFC 9112) without I/O: bytes in, requests and bytes out.

Nothing here touches a socket or an event loop, so every rule can be tested by feeding
bytes.  Anything malformed or ambiguous raises :class:`HTTPError` with the status the
client should get; no other exception escapes the parser.

The head is decoded once as latin-1: every byte maps to one code point, which is also
the "bytes-as-str" form PEP 3333 wants for the environ.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Final

__all__ = [
    "HTTPError",
    "Request",
    "parse_head",
    "leading_empty_lines",
    "ResponseHead",
    "frame_response",
    "check_status",
    "check_header",
    "chunk",
    "LAST_CHUNK",
    "CONTINUE",
    "error_response",
]


class HTTPError(Exception):
    """A request the server refuses: ``status`` goes on the wire, ``reason`` in the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


_TCHAR = r"!#$%&'*+\-.^_`|~0-9A-Za-z"
TOKEN = f"[{_TCHAR}]+"
_REQUEST_LINE = re.compile(f"({TOKEN}) ([^\x00-\x20\x7f]+) HTTP/([0-9])\\.([0-9])")
# A field value may hold HTAB, visible ASCII and obs-text; no other control character.
# Possessive quantifiers: no backtracking, so matching stays linear on hostile input;
# the value's trailing whitespace is stripped afterwards.
FIELD_LINE = re.compile(f"({TOKEN}):[ \t]*+([^\x00-\x08\x0a-\x1f\x7f]*+)")
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]*)?")
_STATUS = re.compile("[1-5][0-9]{2} [\t\x20-\x7e\x80-\xff]*")
_FIELD_VALUE = re.compile("[^\x00-\x08\x0a-\x1f\x7f]*")
_TOKEN_RE = re.compile(TOKEN)
_HTTP2_PREFACE = "PRI * HTTP/2.0"
_MAX_LENGTH_DIGITS = 18


@dataclass(slots=True)
class Request:
    """A parsed request head.  Strings are latin-1 decoded bytes, as PEP 3333 wants."""

    method: str
    target: str
    path: str
    query: str
    http11: bool
    headers: list[tuple[str, str]]
    keep_alive: bool
    content_length: int | None
    chunked: bool
    expect_continue: bool
    # the host[:port] of an absolute-form target, which replaces Host (RFC 9112 §3.2.2)
    authority: str | None = None

    @property
    def version(self) -> str:
        return "HTTP/1.1" if self.http11 else "HTTP/1.0"

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


def parse_head(
    head: bytes,
    *,
    max_request_line: int,
    max_header_size: int,
    max_header_count: int,
) -> Request:
    """Parse a request head ending in CRLF CRLF (the terminator may be omitted).

    The limits have no defaults here: they are options, whose defaults live in Config.
    """
    if len(head) > max_header_size:
        raise HTTPError(431, "request head too large")
    text = head.decode("latin-1")
    if text.endswith("\r\n\r\n"):
        text = text[:-4]
    lines = text.split("\r\n")
    request_line = lines[0]
    if len(request_line) > max_request_line:
        raise HTTPError(414, "request line too long")
    if len(lines) - 1 > max_header_count:
        raise HTTPError(431, "too many header fields")
    m = _REQUEST_LINE.fullmatch(request_line)
    if m is None:
        if request_line.startswith(_HTTP2_PREFACE):
            raise HTTPError(505, "HTTP/2 is not supported; speak HTTP/1.1")
        raise HTTPError(400, "malformed request line")
    method, target, major, minor = m.groups()
    if major != "1":
        raise HTTPError(505, f"HTTP/{major}.{minor} is not supported")
    # a later 1.x minor version is served as 1.1, the highest this server speaks
    # (RFC 9110 §2.5)
    http11 = minor != "0"

    headers: list[tuple[str, str]] = []
    append = headers.append
    content_length: int | None = None
    transfer_encoding: list[str] | None = None
    connection: list[str] = []
    hosts = 0
    expect_continue = False
    fullmatch = FIELD_LINE.fullmatch
    for line in lines[1:]:
        fm = fullmatch(line)
        if fm is None:
            raise HTTPError(400, _describe_bad_field(line))
        name, value = fm.groups()
        if value and value[-1] in " \t":
            value = value.rstrip(" \t")
        append((name, value))
        lname = name.lower()
        if lname in _SPECIAL:
            if lname == "host":
                hosts += 1
                if value not in _valid_hosts:
                    if _HOST.fullmatch(value) is None:
                        raise HTTPError(400, "invalid Host header")
                    if len(_valid_hosts) < 1024:
                        _valid_hosts.add(value)
            elif lname == "content-length":
                content_length = _content_length(value, content_length)
            elif lname == "transfer-encoding":
                if transfer_encoding is None:
                    transfer_encoding = []
                transfer_encoding.extend(_split_list(value))
            elif lname == "connection":
                connection.extend(_split_list(value))
            elif lname == "expect":
                if value.lower() != "100-continue":
                    raise HTTPError(417, "unsupported expectation")
                expect_continue = http11

    if http11 and hosts != 1:
        raise HTTPError(400, "missing Host header" if hosts == 0 else "several Host headers")
    if hosts > 1:
        raise HTTPError(400, "several Host headers")

    chunked = False
    if transfer_encoding is not None:
        if not http11:
            raise HTTPError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if content_length is not None:
            raise HTTPError(400, "both Content-Length and Transfer-Encoding")
        if not transfer_encoding or transfer_encoding[-1] != "chunked":
            raise HTTPError(400, "final transfer coding is not chunked")
        if transfer_encoding.count("chunked") > 1:
            raise HTTPError(400, "chunked given more than once")
        if len(transfer_encoding) > 1:
            raise HTTPError(501, f"transfer coding {transfer_encoding[0]!r} not implemented")
        chunked = True

    if http11:
        keep_alive = "close" not in connection
    else:
        keep_alive = "keep-alive" in connection and "close" not in connection

    if target[0] == "/" and "#" not in target and "%" not in target:
        path, _, query = target.partition("?")  # the common origin form, inline
        authority = None
    else:
        path, query, authority = _split_target(method, target)
    return Request(method, target, path, query, http11, headers, keep_alive, content_length,
                   chunked, expect_continue and (chunked or bool(content_length)), authority)


_EMPTY_LINES = re.compile(rb"(?:\r\n)*+")


def leading_empty_lines(data: bytes) -> int:
    """How many bytes at the start of ``data`` are empty lines (CRLF), which a server
    ignores before a request line (RFC 9112 §2.2): a client may send one after a body.
    The caller bounds how many it accepts."""
    return _EMPTY_LINES.match(data).end()  # type: ignore[union-attr]  # matches always


# Host values found valid already: a server hears the same few again and again.
_valid_hosts: set[str] = set()
_SPECIAL: Final = frozenset({"host", "content-length", "transfer-encoding", "connection", "expect"})


def _describe_bad_field(line: str) -> str:
    if not line:
        return "empty header line"
    if line[0] in " \t":
        return "obsolete line folding"
    name, colon, _ = line.partition(":")
    if not colon:
        return "header line without a colon"
    if name != name.rstrip(" \t"):
        return "whitespace between header name and colon"
    if _TOKEN_RE.fullmatch(name) is None:
        return "invalid header name"
    return "invalid character in header value"


def _split_list(value: str) -> list[str]:
    return [item.strip(" \t").lower() for item in value.split(",") if item.strip(" \t")]


def _content_length(value: str, previous: int | None) -> int:
    length: int | None = None
    for item in value.split(","):
        item = item.strip(" \t")
        if not (item.isascii() and item.isdigit()) or len(item) > _MAX_LENGTH_DIGITS:
            raise HTTPError(400, "invalid Content-Length")
        n = int(item)
        if length is not None and n != length:
            raise HTTPError(400, "conflicting Content-Length values")
        length = n
    assert length is not None
    if previous is not None and previous != length:
        raise HTTPError(400, "conflicting Content-Length values")
    return length


def _split_target(method: str, target: str) -> tuple[str, str, str | None]:
    """Path, query, and the authority of an absolute-form target (None otherwise)."""
    if "#" in target:
        raise HTTPError(400, "fragment in request target")
    authority: str | None = None
    if target[0] == "/":
        path, _, query = target.partition("?")
    elif target == "*":
        if method != "OPTIONS":
            raise HTTPError(400, "asterisk-form target outside OPTIONS")
        return "*", "", None
    else:
        scheme, sep, rest = target.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise HTTPError(400, "unsupported request target")
        end = len(rest)
        for sep_char in "/?#":
            i = rest.find(sep_char)
            if 0 <= i < end:
                end = i
        authority, remainder = rest[:end], rest[end:]
        if authority[:1] in ("", ":"):
            raise HTTPError(400, "empty host in absolute-form target")
        if "@" in authority:
            raise HTTPError(400, "userinfo in absolute-form target")
        if _HOST.fullmatch(authority) is None:
            raise HTTPError(400, "invalid host in absolute-form target")
        if remainder.startswith("/"):
            path, _, query = remainder.partition("?")
        else:
            path, query = "/", remainder[1:] if remainder.startswith("?") else ""
    if "%" in path:
        path = _unquote(path)
    return path, query, authority


def _unquote(path: str) -> str:
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(path.encode("latin-1")).decode("latin-1")


# -- responses ---------------------------------------------------------------------

NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = range(4)

CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK: Final = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked response body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


@dataclass(slots=True)
class ResponseHead:
    """A serialized response head and how the body that follows it is framed."""

    data: bytes
    framing: int  # NO_BODY, LENGTH, CHUNKED or UNTIL_CLOSE
    content_length: int | None
    keep_alive: bool
    send_body: bool  # false for HEAD and the no-body statuses


_date_cache: list[object] = [0, ""]


def http_date() -> str:
    """The current IMF-fixdate, recomputed at most once a second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[1] = formatdate(now, usegmt=True)
        _date_cache[0] = now
    return _date_cache[1]  # type: ignore[return-value]


def check_status(status: object) -> int:
    """Validate a WSGI status string; return its code."""
    if type(status) is not str or _STATUS.fullmatch(status) is None:
        raise ValueError(f"invalid status line {status!r}")
    return int(status[:3])


# The response fields frame_response reads; all others are copied as they are.
_FRAMING_FIELDS: Final = frozenset({"content-length", "connection", "date", "server"})
_HOP_BY_HOP: Final = frozenset({"keep-alive", "proxy-authenticate", "proxy-authorization",
                                "te", "trailer", "trailers", "transfer-encoding", "upgrade"})


def check_header(name: object, value: object) -> None:
    """Validate one response header from an application (no injection, no hop-by-hop)."""
    if type(name) is not str or _TOKEN_RE.fullmatch(name) is None:
        raise ValueError(f"invalid header name {name!r}")
    if type(value) is not str or _FIELD_VALUE.fullmatch(value) is None:
        raise ValueError(f"invalid value for header {name}: {value!r}")
    if name.lower() in _HOP_BY_HOP:
        raise ValueError(f"hop-by-hop header {name!r} is the server's to set")
    if not value.isascii():
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header {name} is not latin-1: {value!r}") from None


def frame_response(
    status: str,
    headers: list[tuple[str, str]],
    *,
    method: str,
    http11: bool,
    keep_alive: bool,
    known_length: int | None = None,
    server_header: bool = True,
) -> ResponseHead:
    """Serialize a validated status and headers and decide how the body is framed.

    ``known_length`` is the body's total size when the server already holds all of it.
    """
    code = int(status[:3])
    out = ["HTTP/1.1 ", status, "\r\n"]
    app_length: str | None = None
    has_date = has_server = False
    for name, value in headers:
        lname = name.lower()
        if lname not in _FRAMING_FIELDS:
            out += (name, ": ", value, "\r\n")
            continue
        if lname == "content-length":
            if app_length is not None and app_length != value:
                raise ValueError("conflicting Content-Length headers")
            if not (value.isascii() and value.isdigit()) or len(value) > _MAX_LENGTH_DIGITS:
                raise ValueError(f"invalid Content-Length {value!r}")
            if app_length is not None:
                continue
            app_length = value
            if code < 200 or code == 204:
                continue
        elif lname == "connection":
            if "close" in _split_list(value):
                keep_alive = False
            continue
        elif lname == "date":
            has_date = True
        elif lname == "server":
            has_server = True
        out += (name, ": ", value, "\r\n")
    if not has_date:
        out += ("Date: ", http_date(), "\r\n")
    if server_header and not has_server:
        out.append("Server: aiowsgi\r\n")

    send_body = method != "HEAD"
    content_length: int | None = None
    if code < 200 or code in (204, 304):
        framing = NO_BODY
        send_body = False
        if code < 200:
            keep_alive = False
    elif app_length is not None:
        framing = LENGTH
        content_length = int(app_length)
        if known_length is not None and known_length != content_length and send_body:
            keep_alive = False  # the body will be cut short or truncated: say so now
    elif known_length is not None:
        framing = LENGTH
        content_length = known_length
        out += ("Content-Length: ", str(known_length), "\r\n")
    elif http11:
        framing = CHUNKED
        out.append("Transfer-Encoding: chunked\r\n")
    else:
        framing = UNTIL_CLOSE
        keep_alive = False
    if not send_body:
        framing = NO_BODY
    if not keep_alive:
        out.append("Connection: close\r\n\r\n")
    elif not http11:
        out.append("Connection: keep-alive\r\n\r\n")
    else:
        out.append("\r\n")
    return ResponseHead("".join(out).encode("latin-1"), framing, content_length,
                        keep_alive, send_body)


_REASONS: Final = {
    400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large",
    414: "URI Too Long", 417: "Expectation Failed", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


def error_response(status: int, message: str = "", *, keep_alive: bool = False,
                   retry_after: int | None = None, head_only: bool = False) -> bytes:
    """A complete plain-text error response; closes the connection unless told otherwise.

    ``head_only`` (the answer to a HEAD request) leaves the body out and keeps its
    Content-Length, as a GET would have had it (RFC 9110 §9.3.2)."""
    reason = _REASONS.get(status, "Error")
    text = f"{status} {reason}\n{message}\n" if message else f"{status} {reason}\n"
    body = text.encode("utf-8", "replace")
    extra = "" if keep_alive else "Connection: close\r\n"
    if retry_after is not None:
        extra += f"Retry-After: {retry_after}\r\n"
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nDate: {http_date()}\r\nServer: aiowsgi\r\n"
        f"{extra}\r\n"
    ).encode("latin-1")
    return head if head_only else head + body
