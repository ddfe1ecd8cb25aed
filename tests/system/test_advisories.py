"""Regression corpus from public HTTP/1.1 request-smuggling advisories and research.

Each case replays the *shape* of a published attack against a live server; the advisory,
CVE, fix commit or issue that describes the shape is named in the case id or next to it.
The served application records every request it is given, so a case can assert not only
the status of the refusal but that nothing behind a refused request -- the "smuggled"
``GET /smuggled`` every payload carries -- ever reaches the application.

What aiowsgi must do with a malformed or ambiguous request (RFC 9112 §2.2, §3, §5, §6.3,
§7, §11.2; RFC 9110 §5.5, §5.6, §8.6): answer 400 (501 for a transfer coding it does not
implement, 505 for an HTTP version it does not speak, 413/417/431/414 where a limit or an
expectation is the reason), with ``Connection: close``, then close the connection without
parsing another byte as a request.

Sources, by the id used in the cases:

- waitress (Pylons/waitress security advisories):
  GHSA-pg36-wpm5-g57p / CVE-2019-16785 (bare LF accepted as a line terminator),
  GHSA-g2xc-35jw-c63p / CVE-2019-16786 (a Transfer-Encoding list not ending in chunked fell
  back to Content-Length), CVE-2019-16789 (odd whitespace such as \\x0b in
  Transfer-Encoding; fix commit 2e46f2426e2845e6a088e21451d3d0031b804cea),
  GHSA-4ppp-gpcr-7qf6 / CVE-2019-16792 (two Content-Length fields folded into one and read
  as 0), GHSA-4f7p-27jc-3c36 / CVE-2022-24761 (int() accepted +10 and 0x01 in
  Content-Length and chunk sizes; chunk extensions not validated),
  GHSA-9298-4cf8-g4wj / CVE-2024-49768 (a pipelined request behind a refused one was still
  processed), GHSA-3f84-rpwh-47g6 / CVE-2024-49769 (a client closing right after connecting
  left a socket in a busy loop).
- gunicorn: GHSA-w3h3-4rj7-4ph4 / CVE-2024-1135 (conflicting Transfer-Encoding fields
  treated as chunked), GHSA-hc5x-x2vx-497g / CVE-2024-6827 (an invalid Transfer-Encoding
  value fell back to Content-Length, TE.CL), the 22.0.0 hardening (docs/source/
  2024-news.rst: chunked refused on HTTP/1.0, empty codings and empty field names refused,
  both CL and TE refused), and the chunk-extension LF disclosure of 20.1.0 (grenfeldt.dev,
  2021-10-08; PR #3327).
- h11 (HTTP/1.1 layer of hypercorn and uvicorn): GHSA-vqfr-h8mv-ghfj / CVE-2025-43859 (any
  two bytes accepted after chunk data instead of CRLF). hypercorn issue #277 (CONNECT /
  authority-form not refused).
- aiohttp: GHSA-gfw2-4jvh-wgfg / CVE-2023-47627 (Content-Length read with int(): -0, +0_1;
  NUL/CR/LF in field values), GHSA-45c4-8wx5-qw6w / CVE-2023-37276 (bare CR inside a value
  hides a Transfer-Encoding field, llhttp CVE-2023-30589), GHSA-xx9p-xxvh-7g8j /
  CVE-2023-47641 (``Transfer-Encoding: chunked123`` read as chunked), GHSA-9548-qrrj-x5pj /
  CVE-2025-53643 (trailer section not parsed), CVE-2025-69224 (non-ASCII case folding of
  Transfer-Encoding).
- Node.js / llhttp: CVE-2018-7159 (spaces inside Content-Length), CVE-2021-22959 (space
  between field name and colon), CVE-2022-32214 and CVE-2023-30589 (bare LF / bare CR as
  delimiters), CVE-2022-32215 (multi-line Transfer-Encoding), CVE-2024-27982 (space before
  a field name), CVE-2024-22019 (unbounded chunk-extension bytes).
- Go net/http: GO-2022-0212 / CVE-2019-16276 (space before the colon), CVE-2023-39326 /
  GO-2023-2382 (chunk extensions make the server read far more than the body),
  CVE-2025-22871 (bare LF ending a chunk-size line).
- hyper: RUSTSEC-2021-0079 / GHSA-5h46-h7hh-c6x9 / CVE-2021-32714 (chunk-size integer
  overflow), RUSTSEC-2021-0020 / GHSA-6hfq-h8hq-87mf (several Transfer-Encoding fields).
  Tornado GHSA-753j-mpmx-qq6g (two ``Transfer-Encoding: chunked`` fields ignored).
- Apache Traffic Server: issue #10580 (chunk size followed by non-hex bytes forwarded),
  PR #12149 (require CRLF in chunked bodies). Apache httpd CVE-2015-3183 (large chunk sizes,
  invalid chunk-extension characters), CVE-2016-8743 (whitespace accepted too liberally).
- Research: Kettle, "HTTP Desync Attacks: Request Smuggling Reborn" (PortSwigger, 2019:
  CL.TE, TE.CL, TE.TE obfuscations); Bishop Fox, "h2c Smuggling" (2020); Weikop, "Funky
  chunks" (w4ke.info, 2025: TERM.EXT, line terminators in chunked bodies); Grenfeldt et
  al., bachelor's thesis on HTTP request smuggling (KTH, 2021: Transfer-Encoding on
  HTTP/1.0, chunk extensions); Kettle, "Browser-Powered Desync Attacks" (PortSwigger, 2022:
  CL.0).
Cases named only by an RFC section or by their shape are neighbours of those above.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from aiowsgi.wsgi import WSGIApp

from ..apps.echo import Env, StartResponse, read_body, status_app
from ..apps.gate import Gate
from ..conftest import StartServer
from ..http import RawClient, Response, read_response, read_to_eof
from ..waiting import SAFETY, until

SMUGGLED = "/smuggled"
SMUGGLE = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
NEXT = b"GET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
LAST = b"0\r\n\r\n"
REFUSAL = frozenset({400})
UNKNOWN_CODING = frozenset({400, 501})


# -- the application and the client side ---------------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    body: bytes
    host: str | None
    environ: dict[str, Any]


OK = status_app("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")], b"ok")


class Recorder:
    """Records every request the server hands it (method, path, body, environ), then
    lets ``answer`` answer it (``200 ok`` unless told)."""

    def __init__(self, answer: WSGIApp = OK) -> None:
        self.seen: list[Seen] = []
        self.answer = answer

    def __call__(self, environ: Env, start_response: StartResponse) -> Iterable[bytes]:
        body = read_body(environ)
        self.seen.append(Seen(environ["REQUEST_METHOD"], environ["PATH_INFO"], body,
                              environ.get("HTTP_HOST"),
                              {k: v for k, v in environ.items() if isinstance(v, str)}))
        return self.answer(environ, start_response)

    @property
    def paths(self) -> list[str]:
        return [seen.path for seen in self.seen]


def streaming_recorder(recorder: Recorder) -> Callable[..., Iterable[bytes]]:
    """The recorder, answering with a generator (chunked on the wire)."""

    def app(environ: Env, start_response: StartResponse) -> Iterable[bytes]:
        for _ in recorder(environ, lambda status, headers: None):
            pass
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"str", b"", b"eam"])

    return app


def request(*fields: bytes, line: bytes = b"POST /first HTTP/1.1", host: bool = True) -> bytes:
    """A request head: ``line``, ``Host: t`` and ``fields`` joined by CRLF, then CRLF CRLF.
    A field may itself hold any bytes, bare CR or LF included."""
    lines = [line, *([b"Host: t"] if host else []), *fields]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def length(body: bytes) -> bytes:
    return b"Content-Length: %d" % len(body)


Connect = Callable[[Any], Awaitable[RawClient]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``client = await connect(server)``: a raw client, closed at teardown even when the
    test failed half-way (an unclosed socket would fail the next test)."""
    clients: list[RawClient] = []

    async def open_client(server: Any) -> RawClient:
        client = await RawClient.connect(server.host, server.port)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


async def send_quietly(client: RawClient, data: bytes) -> None:
    """Send what the server may no longer want: a reset or a closed pipe is fine."""
    with contextlib.suppress(ConnectionError, OSError):
        await client.send(data)


async def parse_responses(data: bytes) -> list[Response]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    responses = []
    while not reader.at_eof():
        responses.append(await read_response(reader))
    return responses


async def assert_refused(client: RawClient, app: Recorder, statuses: frozenset[int]) -> None:
    response = await client.response()
    assert response.status in statuses, (response.status, response.body)
    assert response.header("Connection") == "close"
    assert await client.closed_by_server()
    assert SMUGGLED not in app.paths
    assert app.paths == [], "a refused request reached the application"


# -- the corpus: requests that must be refused, with nothing behind them processed --------


def refused(payload: bytes, statuses: frozenset[int] = REFUSAL, *, id: str,
            **options: Any) -> Any:
    return pytest.param(payload, statuses, options, id=id)


# Transfer-Encoding obfuscations (TE.TE): the field line, whether it is an unknown coding
# (so 501 is allowed) rather than a syntax error, and the source.
TE_SHAPES: list[tuple[bytes, frozenset[int], str]] = [
    (b"Transfer-Encoding: xchunked", UNKNOWN_CODING, "Kettle-2019-xchunked"),
    (b"Transfer-Encoding: chunked123", UNKNOWN_CODING, "aiohttp-GHSA-xx9p-xxvh-7g8j"),
    (b"Transfer-Encoding: chunk", UNKNOWN_CODING, "prefix-match-chunk"),
    (b'Transfer-Encoding: "chunked"', UNKNOWN_CODING, "quoted-coding"),
    (b"Transfer-Encoding: chunked;foo=bar", UNKNOWN_CODING, "RFC9112-7.1-parameter"),
    (b"Transfer-Encoding: identity", UNKNOWN_CODING, "gunicorn-CVE-2024-6827-identity"),
    (b"Transfer-Encoding: chunked, identity", UNKNOWN_CODING,
     "gunicorn-CVE-2024-6827-chunked-not-last"),
    (b"Transfer-Encoding: identity, chunked", UNKNOWN_CODING,
     "waitress-GHSA-g2xc-35jw-c63p-identity-chunked"),
    (b"Transfer-Encoding: gzip, chunked", UNKNOWN_CODING, "waitress-GHSA-g2xc-35jw-c63p-gzip"),
    (b"Transfer-Encoding: chunked, chunked", REFUSAL, "RFC9112-7-chunked-twice"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x", UNKNOWN_CODING,
     "gunicorn-CVE-2024-1135-chunked-then-x"),
    (b"Transfer-Encoding: x\r\nTransfer-Encoding: chunked", UNKNOWN_CODING,
     "gunicorn-CVE-2024-1135-x-then-chunked"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", REFUSAL,
     "tornado-GHSA-753j-mpmx-qq6g-duplicated"),
    (b"Transfer-Encoding:", UNKNOWN_CODING, "gunicorn-22.0-empty-coding"),
    (b"Transfer-Encoding: \xa0chunked", UNKNOWN_CODING, "python-strip-nbsp"),
    # KELVIN SIGN (U+212A) folds to "k" under str.lower()
    (b"Transfer-Encoding: chun\xe2\x84\xaaed", UNKNOWN_CODING, "aiohttp-CVE-2025-69224-kelvin"),
    (b"Transfer-Encoding : chunked", REFUSAL, "Go-CVE-2019-16276-space-before-colon"),
    (b"Transfer-Encoding\t: chunked", REFUSAL, "llhttp-CVE-2021-22959-tab-before-colon"),
    (b" Transfer-Encoding: chunked", REFUSAL, "Node-CVE-2024-27982-space-before-name"),
    (b"\tTransfer-Encoding: chunked", REFUSAL, "tab-before-name"),
    (b"X: y\nTransfer-Encoding: chunked", REFUSAL, "waitress-GHSA-pg36-wpm5-g57p-lf-hidden"),
    (b"X: y\rTransfer-Encoding: chunked", REFUSAL, "aiohttp-GHSA-45c4-8wx5-qw6w-cr-hidden"),
    (b"Transfer-Encoding:\x0bchunked", REFUSAL, "waitress-CVE-2019-16789-vtab"),
    (b"Transfer-Encoding:\x0cchunked", REFUSAL, "waitress-CVE-2019-16789-formfeed"),
    (b"Transfer-Encoding: chunked\x0b", REFUSAL, "waitress-CVE-2019-16789-trailing-vtab"),
    (b"Transfer-Encoding: chunked\x00", REFUSAL, "aiohttp-GHSA-gfw2-4jvh-wgfg-nul"),
    (b"Transfer-Encoding:\r\n chunked", REFUSAL, "Node-CVE-2022-32215-folded"),
    (b"Transfer-Encoding: gzip,\r\n chunked", REFUSAL, "Node-CVE-2022-32215-folded-list"),
    (b"Transfer-Encoding\r\n: chunked", REFUSAL, "name-then-crlf"),
    (b"Transfer-Encoding\n: chunked", REFUSAL, "Kettle-2019-name-then-lf"),
]

# OWS around a coding and the case of its name are legal (RFC 9110 §5.6.1, §5.6.3, RFC
# 9112 §7): alone they must give a chunked request framed exactly; beside a
# Content-Length they are CL.TE like any other.
TE_LEGAL: list[tuple[bytes, str]] = [
    (b"Transfer-Encoding:\tchunked", "Kettle-2019-tab-ows"),
    (b"Transfer-Encoding:  chunked", "double-space-ows"),
    (b"Transfer-Encoding: chunked ", "trailing-space-ows"),
    (b"Transfer-Encoding: chunked\t", "trailing-tab-ows"),
    (b"TRANSFER-ENCODING: CHUNKED", "RFC9112-7-case-insensitive"),
]


def _te_cases() -> list[Any]:
    cases = []
    # Content-Length covers "0 CRLF CRLF" and the smuggled request: a server that honours
    # the TE field sees the smuggled request as the next one (CL.TE), one that honours CL
    # hands the whole to the application as a body.
    cl_te_body = LAST + SMUGGLE
    for line, statuses, source in [*TE_SHAPES,
                                   *((line, REFUSAL, source) for line, source in TE_LEGAL),
                                   (b"Transfer-Encoding: chunked", REFUSAL, "Kettle-2019")]:
        cases.append(refused(request(length(cl_te_body), line) + cl_te_body, statuses,
                             id=f"CL.TE-{source}"))
    for line, statuses, source in TE_SHAPES:
        # alone: a valid chunked body, then the smuggled request.  Read as chunked, or read
        # as "no body" (the CVE-2024-6827 fallback), the first request reaches the app.
        cases.append(refused(request(line) + chunk(b"hello") + LAST + SMUGGLE, statuses,
                             id=f"TE-alone-{source}"))
    te_cl_body = chunk(SMUGGLE) + LAST
    cases += [
        # TE.CL: a CL-honouring server takes "24\r\n" as the body and SMUGGLE as a request
        refused(request(b"Content-Length: 4", b"Transfer-Encoding: chunked") + te_cl_body,
                id="TE.CL-Kettle-2019"),
        refused(request(b"Transfer-Encoding: chunked", b"Content-Length: 4") + te_cl_body,
                id="TE.CL-Kettle-2019-te-first"),
        refused(request(b"Content-Length: 0", b"Transfer-Encoding: chunked") + te_cl_body,
                id="TE.CL-gunicorn-22.0-both-refused"),
        # Transfer-Encoding on HTTP/1.0: RFC 9112 §6.1 faulty framing, gunicorn 22.0
        refused(request(b"Transfer-Encoding: chunked", line=b"POST /first HTTP/1.0")
                + chunk(b"hello") + LAST + SMUGGLE, id="TE-http10-gunicorn-22.0"),
        refused(request(length(cl_te_body), b"Transfer-Encoding: chunked",
                        line=b"POST /first HTTP/1.0") + cl_te_body,
                id="CL.TE-http10-Grenfeldt-2021"),
        refused(request(b"Transfer-Encoding: chunked", b"Connection: keep-alive",
                        line=b"POST /first HTTP/1.0") + chunk(b"hello") + LAST + SMUGGLE,
                id="TE-http10-keep-alive-Grenfeldt-2021"),
    ]
    return cases


# Line terminators, NUL, obs-fold and field names in the head.
HEAD_CASES = [
    refused(b"POST /first HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\nX-Header: x\n"
            b"Content-Length: 0\r\n\r\n" + SMUGGLE, id="waitress-GHSA-pg36-wpm5-g57p-example"),
    refused(b"GET /first HTTP/1.1\nHost: t\r\n\r\n" + SMUGGLE,
            id="waitress-CVE-2019-16785-lf-after-request-line"),
    refused(b"GET /first HTTP/1.1\rHost: t\r\n\r\n" + SMUGGLE,
            id="llhttp-CVE-2023-30589-cr-after-request-line"),
    refused(b"GET /first HTTP/1.1\r\r\nHost: t\r\n\r\n" + SMUGGLE, id="RFC9112-2.2-cr-cr-lf"),
    refused(b"GET /first HTTP/1.1\nHost: t\n\n" + SMUGGLE,
            id="llhttp-CVE-2022-32214-lf-only-head"),
    refused(b"GET /first HTTP/1.1\r\nHost: t\n\r\n" + SMUGGLE,
            id="waitress-CVE-2019-16785-lf-crlf-end"),
    refused(b"GET /first HTTP/1.1\r\nHost: t\r\n\n" + SMUGGLE,
            id="waitress-CVE-2019-16785-crlf-lf-end"),
    refused(b"GET /first HTTP/1.1\r\nHost: t\r\r\n\r\n" + SMUGGLE, id="RFC9112-2.2-cr-in-end"),
    refused(request(b"X: a\rb", line=b"GET /first HTTP/1.1") + SMUGGLE,
            id="aiohttp-GHSA-45c4-8wx5-qw6w-bare-cr"),
    refused(request(b"X: a\nb", line=b"GET /first HTTP/1.1") + SMUGGLE,
            id="aiohttp-GHSA-gfw2-4jvh-wgfg-bare-lf"),
    refused(request(b"X: a\x00b", line=b"GET /first HTTP/1.1") + SMUGGLE,
            id="aiohttp-GHSA-gfw2-4jvh-wgfg-nul-in-value"),
    refused(request(b"X\x00: a", line=b"GET /first HTTP/1.1") + SMUGGLE, id="nul-in-name"),
    refused(request(b"X: a\x7f", line=b"GET /first HTTP/1.1") + SMUGGLE,
            id="RFC9110-5.5-del-in-value"),
    refused(request(b"X: a\x0bb", line=b"GET /first HTTP/1.1") + SMUGGLE,
            id="waitress-CVE-2019-16789-vtab-in-value"),
    refused(b"GET /fi\x00rst HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLE, id="nul-in-target"),
    refused(b"G\x00T /first HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLE, id="nul-in-method"),
    refused(b"GET\t/first HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLE,
            id="httpd-CVE-2016-8743-tab-separator"),
    refused(b"GET /first HTTP/1.1 \r\nHost: t\r\n\r\n" + SMUGGLE,
            id="gunicorn-22.0-version-suffix"),
    # obs-fold (RFC 9112 §5.2: a server MUST reject it or replace it by SP; aiowsgi rejects)
    refused(request(b"X: a", b" b", line=b"GET /first HTTP/1.1") + SMUGGLE,
            id="RFC9112-5.2-obs-fold"),
    refused(request(b"Content-Length: 0", b" 5", line=b"GET /first HTTP/1.1") + b"hello"
            + SMUGGLE, id="RFC9112-5.2-folded-content-length"),
    # field names
    refused(request(b"Content-Length : 5") + b"hello" + SMUGGLE,
            id="Go-CVE-2019-16276-cl-space-before-colon"),
    refused(request(b"Content-Length\t: 5") + b"hello" + SMUGGLE,
            id="llhttp-CVE-2021-22959-cl-tab-before-colon"),
    refused(request(b" Content-Length: 5") + b"hello" + SMUGGLE,
            id="Node-CVE-2024-27982-cl-space-before-name"),
    refused(request(b"Content Length: 5") + b"hello" + SMUGGLE, id="space-inside-name"),
    refused(request(b"Content-Length\x7f: 5") + b"hello" + SMUGGLE, id="del-in-name"),
    refused(request(b"Cont\xe9nt-Length: 5") + b"hello" + SMUGGLE, id="obs-text-in-name"),
    refused(request(b"[Content-Length]: 5") + b"hello" + SMUGGLE, id="delimiters-in-name"),
    refused(request(b": 5", line=b"GET /first HTTP/1.1") + SMUGGLE,
            id="gunicorn-22.0-empty-field-name"),
    refused(request(b"Content-Length", line=b"GET /first HTTP/1.1") + SMUGGLE,
            id="field-without-colon"),
    # Host (RFC 9112 §3.2: exactly one, valid, on HTTP/1.1)
    refused(request(line=b"GET /first HTTP/1.1", host=False) + SMUGGLE,
            id="RFC9112-3.2-missing-host"),
    refused(request(b"Host: u", line=b"GET /first HTTP/1.1") + SMUGGLE,
            id="RFC9112-3.2-two-hosts"),
    refused(request(b"Host: t/smuggled", line=b"GET /first HTTP/1.1", host=False) + SMUGGLE,
            id="RFC9112-3.2-invalid-host"),
]

# Content-Length values: waitress GHSA-4f7p-27jc-3c36, aiohttp GHSA-gfw2-4jvh-wgfg (int()
# accepts sign, underscores, non-ASCII digits), Node CVE-2018-7159 (spaces), waitress
# GHSA-4ppp-gpcr-7qf6 and RFC 9110 §8.6 (differing duplicates).
CL_VALUES: list[tuple[bytes, frozenset[int], str]] = [
    (b"+5", REFUSAL, "waitress-GHSA-4f7p-27jc-3c36-plus"),
    (b"-5", REFUSAL, "aiohttp-GHSA-gfw2-4jvh-wgfg-minus"),
    (b"-0", REFUSAL, "aiohttp-GHSA-gfw2-4jvh-wgfg-minus-zero"),
    (b"+0_5", REFUSAL, "aiohttp-GHSA-gfw2-4jvh-wgfg-underscore"),
    (b"0x5", REFUSAL, "waitress-GHSA-4f7p-27jc-3c36-hex"),
    (b"5.0", REFUSAL, "decimal-point"),
    (b"5e0", REFUSAL, "exponent"),
    (b"0 5", REFUSAL, "Node-CVE-2018-7159-space-inside"),
    (b"5\xb2", REFUSAL, "python-isdigit-superscript"),
    (b"\xef\xbc\x95", REFUSAL, "fullwidth-digit"),
    (b"", REFUSAL, "empty"),
    (b"5\x0b", REFUSAL, "waitress-CVE-2019-16789-vtab"),
    (b"1, 2", REFUSAL, "RFC9110-8.6-list-of-differing-values"),
    (b"5, 6", REFUSAL, "RFC9110-8.6-list-5-6"),
    (b"5,", REFUSAL, "RFC9110-8.6-list-with-empty-value"),
    (b"18446744073709551621", frozenset({400, 413}), "overflow-2e64-plus-5"),
    (b"9" * 40, frozenset({400, 413}), "overflow-40-digits"),
]


def _cl_cases() -> list[Any]:
    cases = [refused(request(b"Content-Length: " + value) + b"hello" + SMUGGLE, statuses,
                     id=f"CL-{source}") for value, statuses, source in CL_VALUES]
    cases += [
        refused(request(b"Content-Length: 5", b"Content-Length: 6") + b"hello" + SMUGGLE,
                id="CL-waitress-GHSA-4ppp-gpcr-7qf6-differing-fields"),
        refused(request(b"Content-Length: 0", b"Content-Length: 5") + b"hello" + SMUGGLE,
                id="CL-waitress-GHSA-4ppp-gpcr-7qf6-zero-then-5"),
        refused(request(b"Content-Length: 5", b"Content-Length:") + b"hello" + SMUGGLE,
                id="CL-waitress-GHSA-4ppp-gpcr-7qf6-second-empty"),
    ]
    return cases


# Chunked bodies: each follows a valid chunked head; the smuggled request comes after.
CHUNKED_BODIES: list[tuple[bytes, frozenset[int], str]] = [
    # line terminators (Funky chunks; h11 GHSA-vqfr-h8mv-ghfj; Go CVE-2025-22871; ATS #12149)
    (b"5\nhello\r\n" + LAST, REFUSAL, "Go-CVE-2025-22871-lf-after-size"),
    (b"5\rhello\r\n" + LAST, REFUSAL, "Funky-chunks-cr-after-size"),
    (b"5\r\r\nhello\r\n" + LAST, REFUSAL, "Funky-chunks-cr-cr-lf-after-size"),
    (b"5\r\nhello\n" + LAST, REFUSAL, "ATS-PR-12149-lf-after-data"),
    (b"5\r\nhello\r" + LAST, REFUSAL, "Funky-chunks-cr-after-data"),
    (b"5\r\nhelloXX" + LAST, REFUSAL, "h11-GHSA-vqfr-h8mv-ghfj-two-bytes"),
    (b"5\r\nhello" + LAST, REFUSAL, "h11-GHSA-vqfr-h8mv-ghfj-no-crlf"),
    (b"5\r\nhello\r\n\r\n" + LAST, REFUSAL, "empty-size-line-after-data"),
    (b"5\r\nhello\r\n0\n\r\n", REFUSAL, "Funky-chunks-lf-after-last-chunk"),
    (b"5\r\nhello\r\n0\r\n\n", REFUSAL, "Funky-chunks-lf-ends-trailer"),
    (b"5\r\nhello\r\n0\r\n\r", REFUSAL, "Funky-chunks-cr-ends-trailer"),
    # trailers (aiohttp GHSA-9548-qrrj-x5pj; RFC 9112 §7.1.2 field syntax)
    (b"5\r\nhello\r\n0\r\nX: y\n\r\n", REFUSAL, "aiohttp-GHSA-9548-qrrj-x5pj-lf-trailer"),
    (b"5\r\nhello\r\n0\r\nX: a\rb\r\n\r\n", REFUSAL, "aiohttp-GHSA-9548-qrrj-x5pj-cr-trailer"),
    (b"5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n", REFUSAL,
     "aiohttp-GHSA-9548-qrrj-x5pj-folded-trailer"),
    (b"5\r\nhello\r\n0\r\nX y\r\n\r\n", REFUSAL, "aiohttp-GHSA-9548-qrrj-x5pj-no-colon"),
    (b"5\r\nhello\r\n0\r\nX: \x00\r\n\r\n", REFUSAL, "aiohttp-GHSA-9548-qrrj-x5pj-nul"),
    # chunk extensions (waitress GHSA-4f7p-27jc-3c36; gunicorn PR #3327; Funky chunks)
    (b"5;ext\nhello\r\n" + LAST, REFUSAL, "gunicorn-PR-3327-lf-in-extension"),
    (b"5;a\rb\r\nhello\r\n" + LAST, REFUSAL, "gunicorn-PR-3327-cr-in-extension"),
    (b'5;a="x\ny"\r\nhello\r\n' + LAST, REFUSAL,
     "waitress-GHSA-4f7p-27jc-3c36-lf-in-quoted-extension"),
    (b'5;a="x\ry"\r\nhello\r\n' + LAST, REFUSAL,
     "waitress-GHSA-4f7p-27jc-3c36-cr-in-quoted-extension"),
    (b'5;a="x\r\nhello\r\n' + LAST, REFUSAL, "unterminated-quoted-extension"),
    (b"5;\x00\r\nhello\r\n" + LAST, REFUSAL, "waitress-GHSA-4f7p-27jc-3c36-nul-in-extension"),
    (b"5;a=b c\r\nhello\r\n" + LAST, REFUSAL, "waitress-GHSA-4f7p-27jc-3c36-space-in-value"),
    (b"5;=b\r\nhello\r\n" + LAST, REFUSAL, "extension-without-name"),
    (b"5;\r\nhello\r\n" + LAST, REFUSAL, "empty-extension"),
    (b"5;" + b"a" * 5000 + b"\r\nhello\r\n" + LAST, REFUSAL,
     "httpd-CVE-2015-3183-long-extension"),
    (b"5;" + b"a" * 70000 + b"\r\nhello\r\n" + LAST, REFUSAL,
     "Node-CVE-2024-22019-extension-past-stream-limit"),
    # chunk sizes (waitress GHSA-4f7p-27jc-3c36; ATS #10580; hyper RUSTSEC-2021-0079)
    (b"0x5\r\nhello\r\n" + LAST, REFUSAL, "waitress-GHSA-4f7p-27jc-3c36-0x"),
    (b"+5\r\nhello\r\n" + LAST, REFUSAL, "waitress-GHSA-4f7p-27jc-3c36-plus"),
    (b"-5\r\nhello\r\n" + LAST, REFUSAL, "minus"),
    (b"-0\r\n\r\n", REFUSAL, "minus-zero"),
    (b" 5\r\nhello\r\n" + LAST, REFUSAL, "leading-space"),
    (b"\t5\r\nhello\r\n" + LAST, REFUSAL, "leading-tab"),
    (b"5 \r\nhello\r\n" + LAST, REFUSAL, "trailing-space"),
    (b"5\t\r\nhello\r\n" + LAST, REFUSAL, "trailing-tab"),
    (b"5_0\r\n" + b"x" * 80 + b"\r\n" + LAST, REFUSAL, "underscore"),
    (b"\r\nhello\r\n" + LAST, REFUSAL, "empty-size"),
    (b"g\r\nhello\r\n" + LAST, REFUSAL, "non-hex"),
    (b"1these-bytes-never-get-validated\r\nZ\r\n" + LAST, REFUSAL, "ATS-issue-10580"),
    (b"\xef\xbc\x95\r\nhello\r\n" + LAST, REFUSAL, "fullwidth-digit"),
    (b"1" + b"0" * 15 + b"5\r\nhello\r\n" + LAST, REFUSAL,
     "hyper-RUSTSEC-2021-0079-17-digits-wrap-to-5"),
    (b"1" + b"0" * 16 + b"\r\nhello\r\n" + LAST, frozenset({400, 413}),
     "hyper-RUSTSEC-2021-0079-2e64"),
    (b"f" * 16 + b"\r\nhello\r\n" + LAST, frozenset({400, 413}),
     "hyper-RUSTSEC-2021-0079-2e64-minus-1"),
]


def _chunked_cases() -> list[Any]:
    head = request(b"Transfer-Encoding: chunked")
    return [refused(head + body + SMUGGLE, statuses, id=f"chunked-{source}")
            for body, statuses, source in CHUNKED_BODIES]


# Other reasons to refuse a first request: the bytes behind it must not be parsed either
# (waitress GHSA-9298-4cf8-g4wj / CVE-2024-49768: "invalid first request").
OTHER_CASES = [
    refused(request(b"Content-Length: 36") + SMUGGLE + SMUGGLE, frozenset({413}),
            id="waitress-GHSA-9298-4cf8-g4wj-413-body-not-read", max_body_size=10),
    refused(request(b"Transfer-Encoding: chunked") + chunk(b"x" * 11) + LAST + SMUGGLE,
            frozenset({413}), id="waitress-GHSA-9298-4cf8-g4wj-413-chunked", max_body_size=10),
    refused(request(b"Expect: bogus", b"Content-Length: 36") + SMUGGLE + SMUGGLE,
            frozenset({417}), id="waitress-GHSA-9298-4cf8-g4wj-417-expectation"),
    refused(request(*(b"X-%d: y" % i for i in range(12)), line=b"GET /first HTTP/1.1")
            + SMUGGLE, frozenset({431}), id="waitress-GHSA-9298-4cf8-g4wj-431-count",
            max_header_count=10),
    refused(request(b"X: " + b"y" * 2000, line=b"GET /first HTTP/1.1") + SMUGGLE,
            frozenset({431}), id="waitress-GHSA-9298-4cf8-g4wj-431-size", max_header_size=1024),
    refused(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLE,
            frozenset({414}), id="waitress-GHSA-9298-4cf8-g4wj-414", max_request_line=128),
    # request targets (RFC 9112 §3.2; hypercorn issue #277)
    refused(request(b"Host: t:443", line=b"CONNECT t:443 HTTP/1.1", host=False) + SMUGGLE,
            frozenset({400, 405, 501}), id="hypercorn-issue-277-connect-authority-form"),
    refused(b"GET http:///first HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLE,
            id="RFC9112-3.2.2-absolute-form-empty-host"),
    refused(b"GET http://:80/first HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLE,
            id="RFC9112-3.2.2-absolute-form-port-only"),
    refused(b"GET ftp://t/first HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLE,
            id="RFC9112-3.2.2-absolute-form-other-scheme"),
    refused(b"GET http://t/first#x HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLE,
            id="RFC9110-4.2-fragment"),
    refused(b"GET http://evil@t/first HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLE,
            id="RFC9110-4.2.4-userinfo-in-absolute-form"),
    refused(b"GET * HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLE,
            id="RFC9112-3.2.4-asterisk-not-options"),
    refused(b"GET first HTTP/1.1\r\nHost: t\r\n\r\n" + SMUGGLE,
            id="RFC9112-3.2-relative-target"),
    # versions (gunicorn 22.0.0: < 1.0, >= 2.0, several digits, prefix or suffix)
    refused(request(line=b"GET /first HTTP/2.0") + SMUGGLE, frozenset({505}),
            id="gunicorn-22.0-http-2.0"),
    refused(request(line=b"GET /first HTTP/3.0") + SMUGGLE, frozenset({505}),
            id="gunicorn-22.0-http-3.0"),
    refused(request(line=b"GET /first HTTP/0.9") + SMUGGLE, frozenset({400, 505}),
            id="gunicorn-22.0-http-0.9"),
    refused(request(line=b"GET /first HTTP/1.10") + SMUGGLE, frozenset({400, 505}),
            id="gunicorn-22.0-two-digit-minor"),
    refused(request(line=b"GET /first HTTP/01.1") + SMUGGLE, frozenset({400, 505}),
            id="gunicorn-22.0-two-digit-major"),
    refused(request(line=b"GET /first http/1.1") + SMUGGLE, id="lowercase-protocol"),
    refused(request(line=b"GET /first HTTP/1") + SMUGGLE, id="version-without-minor"),
    refused(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SMUGGLE, frozenset({400, 505}),
            id="h2-prior-knowledge-preface"),
]

REFUSED = [*_te_cases(), *HEAD_CASES, *_cl_cases(), *_chunked_cases(), *OTHER_CASES]


@pytest.mark.parametrize(("payload", "statuses", "options"), REFUSED)
async def test_refused_and_nothing_behind_it_is_processed(
        start_server: StartServer, connect: Connect, payload: bytes, statuses: frozenset[int],
        options: dict[str, Any]) -> None:
    app = Recorder()
    server = await start_server(app, **options)
    client = await connect(server)
    await send_quietly(client, payload)
    await assert_refused(client, app, statuses)


async def test_request_sent_after_a_refusal_is_never_processed(
        start_server: StartServer, connect: Connect) -> None:
    # waitress GHSA-9298-4cf8-g4wj / CVE-2024-49768: the client reads the 400 and only then
    # sends its next request on the same connection (the server is lingering on it).
    app = Recorder()
    server = await start_server(app)
    client = await connect(server)
    await client.send(request(b"Content-Length: +5", line=b"GET /first HTTP/1.1") + b"hello")
    response = await client.response()
    assert response.status == 400
    assert response.header("Connection") == "close"
    await send_quietly(client, SMUGGLE)
    assert await client.closed_by_server()
    assert app.paths == []


# -- shapes that are legal (or may be refused): framing must then be exact ---------------


ACCEPT, MAY_REFUSE = False, True


def framed(payload: bytes, body: bytes, may_refuse: bool, *, id: str,
           method: str = "POST") -> Any:
    """``payload`` is one request for ``/first`` whose body is ``body`` (which holds the
    smuggled request), then ``NEXT``."""
    return pytest.param(payload + NEXT, body, may_refuse, method, id=id)


def _framed_cases() -> list[Any]:
    body = SMUGGLE  # looks like a request: it must stay a body
    n = len(body)
    te_body = chunk(body) + LAST
    cases = [
        framed(request(line) + te_body, body, ACCEPT, id=f"TE-legal-{source}")
        for line, source in TE_LEGAL
    ]
    cases += [
        # waitress GHSA-4ppp-gpcr-7qf6 / CVE-2019-16792: identical duplicates must not
        # become 0 (RFC 9110 §8.6: reject, or use the one value)
        framed(request(length(body), length(body)) + body, body, MAY_REFUSE,
               id="CL-waitress-GHSA-4ppp-gpcr-7qf6-identical-fields"),
        framed(request(b"Content-Length: %d, %d" % (n, n)) + body, body, MAY_REFUSE,
               id="CL-RFC9110-8.6-identical-list"),
        framed(request(b"Content-Length: 0%d, %d" % (n, n)) + body, body, MAY_REFUSE,
               id="CL-RFC9110-8.6-leading-zero-in-list"),
        framed(request(b"Content-Length: %d" % n, b"Content-Length: 0%d" % n) + body, body,
               MAY_REFUSE, id="CL-RFC9110-8.6-leading-zero-in-second-field"),
        framed(request(b"Content-Length: 000%d" % n) + body, body, ACCEPT,
               id="CL-RFC9110-8.6-leading-zeros"),
        framed(request(b"Content-Length:\t%d\t" % n) + body, body, ACCEPT, id="CL-ows-tabs"),
        framed(request(b"Content-Length:%d" % n) + body, body, ACCEPT, id="CL-no-ows"),
        # CL.0: a server that ignores the body of a GET (or HEAD, OPTIONS) reads the smuggled
        # request from it (Kettle, "Browser-Powered Desync Attacks", 2022; RFC 9112 §6.3)
        framed(request(length(body), line=b"GET /first HTTP/1.1") + body, body, ACCEPT,
               id="CL.0-GET-body", method="GET"),
        framed(request(length(body), line=b"HEAD /first HTTP/1.1") + body, body, ACCEPT,
               id="CL.0-HEAD-body", method="HEAD"),
        framed(request(length(body), line=b"OPTIONS /first HTTP/1.1") + body, body, ACCEPT,
               id="CL.0-OPTIONS-body", method="OPTIONS"),
        framed(request(b"Transfer-Encoding: chunked", line=b"GET /first HTTP/1.1") + te_body,
               body, ACCEPT, id="CL.0-GET-chunked-body", method="GET"),
        # hop-by-hop: "Connection: Content-Length" must not remove the framing field
        framed(request(b"Connection: Content-Length", length(body)) + body, body, ACCEPT,
               id="CL-Connection-lists-content-length"),
        framed(request(b"Connection: Transfer-Encoding", b"Transfer-Encoding: chunked")
               + te_body, body, ACCEPT, id="TE-Connection-lists-transfer-encoding"),
        # a field named with "_" is not the framing field (waitress PR #80, gunicorn 22.0)
        framed(request(b"Transfer_Encoding: chunked", length(te_body)) + te_body, te_body,
               ACCEPT, id="CL-transfer_encoding-underscore"),
        framed(request(b"Content_Length: 0", length(body)) + body, body, ACCEPT,
               id="CL-content_length-underscore"),
        # empty list elements are legal (RFC 9110 §5.6.1): chunked, or a clean refusal
        framed(request(b"Transfer-Encoding: chunked,") + te_body, body, MAY_REFUSE,
               id="TE-RFC9110-5.6.1-trailing-comma"),
        framed(request(b"Transfer-Encoding: , chunked") + te_body, body, MAY_REFUSE,
               id="TE-RFC9110-5.6.1-leading-comma"),
        # valid chunk extensions and sizes, the smuggled request split over chunks
        framed(request(b"Transfer-Encoding: chunked") + b"%x;a=b\r\n%s\r\n" % (n, body) + LAST,
               body, ACCEPT, id="chunked-extension-token"),
        framed(request(b"Transfer-Encoding: chunked") + b"%x ;a = b\r\n%s\r\n" % (n, body)
               + LAST, body, ACCEPT, id="chunked-extension-bws"),
        framed(request(b"Transfer-Encoding: chunked") + b'%x;a="x;\\"y\\"";b\r\n%s\r\n'
               % (n, body) + LAST, body, ACCEPT, id="chunked-extension-quoted"),
        framed(request(b"Transfer-Encoding: chunked") + b"%016X\r\n%s\r\n" % (n, body) + LAST,
               body, ACCEPT, id="chunked-size-16-digits-upper"),
        framed(request(b"Transfer-Encoding: chunked")
               + b"".join(chunk(body[i:i + 7]) for i in range(0, n, 7)) + LAST, body, ACCEPT,
               id="chunked-many-small-chunks"),
        # a trailer section is consumed, and its framing fields are not used
        # (aiohttp GHSA-9548-qrrj-x5pj / CVE-2025-53643; RFC 9110 §6.5.1)
        framed(request(b"Transfer-Encoding: chunked") + chunk(body)
               + b"0\r\nX-T: 1\r\nContent-Length: 999\r\n\r\n", body, MAY_REFUSE,
               id="chunked-aiohttp-GHSA-9548-qrrj-x5pj-trailer"),
        framed(request(b"Transfer-Encoding: chunked") + chunk(body)
               + b"0\r\nTransfer-Encoding: chunked\r\n\r\n", body, MAY_REFUSE,
               id="chunked-trailer-transfer-encoding"),
        # absolute-form: the path comes from the target
        framed(request(length(body), line=b"POST http://t/first HTTP/1.1") + body, body,
               ACCEPT, id="RFC9112-3.2.2-absolute-form"),
        framed(request(length(body), line=b"POST HTTP://T:80/first HTTP/1.1") + body, body,
               ACCEPT, id="RFC9112-3.2.2-absolute-form-uppercase-scheme"),
    ]
    return cases


@pytest.mark.parametrize(("payload", "body", "may_refuse", "method"), _framed_cases())
async def test_framing_is_exact(start_server: StartServer, connect: Connect, payload: bytes,
                                body: bytes, may_refuse: bool, method: str) -> None:
    app = Recorder()
    server = await start_server(app)
    client = await connect(server)
    await send_quietly(client, payload)
    first = await client.response(method)
    if first.status != 200:
        assert may_refuse, f"a legal request was refused: {first.status} {first.body!r}"
        assert first.status in UNKNOWN_CODING
        assert first.header("Connection") == "close"
        assert await client.closed_by_server()
        assert app.paths == []
        return
    second = await client.response()
    assert second.status == 200
    assert await client.closed_by_server()
    assert [(seen.path, seen.body) for seen in app.seen] == [("/first", body), ("/next", b"")]


async def test_absolute_form_authority_wins_over_host(
        start_server: StartServer, connect: Connect) -> None:
    # RFC 9112 §3.2.2: with an absolute-form target the origin server MUST ignore Host and
    # use the target's authority (Host-header confusion, cache poisoning).  Refusing the
    # mismatch is fine too.
    app = Recorder()
    server = await start_server(app)
    client = await connect(server)
    await client.send(b"GET http://good.example/first HTTP/1.1\r\nHost: evil.example\r\n"
                      b"Connection: close\r\n\r\n")
    response = await client.response()
    assert await client.closed_by_server()
    if response.status == 400:
        assert app.paths == []
    else:
        assert response.status == 200
        assert [(seen.path, seen.host) for seen in app.seen] == [("/first", "good.example")]


async def test_underscore_fields_do_not_alias_dashed_ones(
        start_server: StartServer, connect: Connect) -> None:
    # waitress 1.0.0 security note (PR #80), gunicorn 22.0.0: X_Forwarded_For would become
    # HTTP_X_FORWARDED_FOR in the environ, the key of the real X-Forwarded-For.
    app = Recorder()
    server = await start_server(app)
    client = await connect(server)
    response = await client.request("GET", "/first", headers={
        "X_Forwarded_For": "evil", "X-Forwarded-For": "good", "Transfer_Encoding": "chunked",
        "Connection": "close"})
    assert response.status == 200
    assert await client.closed_by_server()
    (seen,) = app.seen
    assert seen.environ["HTTP_X_FORWARDED_FOR"] == "good"
    assert "HTTP_TRANSFER_ENCODING" not in seen.environ


# -- connections that end a request, then more bytes follow -------------------------------


@pytest.mark.parametrize(("head", "version"), [
    pytest.param(b"Connection: close", b"HTTP/1.1", id="RFC9112-9.6-connection-close"),
    pytest.param(b"Connection: keep-alive, close", b"HTTP/1.1", id="RFC9112-9.6-close-in-list"),
    pytest.param(b"Connection: CLOSE", b"HTTP/1.1", id="RFC9112-9.6-close-uppercase"),
    pytest.param(b"X: y", b"HTTP/1.0", id="RFC9112-9.3-http10-default-close"),
])
async def test_no_request_is_read_after_a_closing_response(
        start_server: StartServer, connect: Connect, head: bytes, version: bytes) -> None:
    app = Recorder()
    server = await start_server(app)
    client = await connect(server)
    await client.send(request(head, line=b"GET /first " + version) + SMUGGLE)
    response = await client.response()
    assert response.status == 200
    assert response.header("Connection") == "close"
    assert await client.closed_by_server()
    assert app.paths == ["/first"]


async def test_h2c_upgrade_is_not_honoured(
        start_server: StartServer, connect: Connect) -> None:
    # h2c smuggling (Bishop Fox, 2020): a server that switches to HTTP/2 on "Upgrade: h2c"
    # lets the client past the front end's rules.  aiowsgi speaks HTTP/1.1 only: it answers
    # the request as HTTP/1.1 and the HTTP/2 preface after it is refused.
    app = Recorder()
    server = await start_server(app)
    client = await connect(server)
    await client.send(request(b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c",
                              b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
                              line=b"GET /first HTTP/1.1")
                      + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SMUGGLE)
    first = await client.response()
    assert first.status == 200
    assert first.header("Upgrade") is None
    second = await client.response()
    assert second.status in (400, 505)
    assert second.header("Connection") == "close"
    assert await client.closed_by_server()
    assert app.paths == ["/first"]


# -- chunk-extension flooding ---------------------------------------------------------------


async def test_chunk_extension_bytes_are_bounded(
        start_server: StartServer, connect: Connect) -> None:
    # Go CVE-2023-39326 / GO-2023-2382, Node CVE-2024-22019: extension bytes count toward
    # no limit, so a client makes the server read far more than the body (here about
    # 750 KiB of extensions for 192 bytes of body; every line is under max_chunk_line).
    # The server must refuse once the extensions pass a sane bound.
    app = Recorder()
    server = await start_server(app)
    client = await connect(server)
    flood = (b"1;" + b"x" * 4000 + b"\r\na\r\n") * 192 + LAST + SMUGGLE
    sender = asyncio.ensure_future(send_quietly(
        client, request(b"Transfer-Encoding: chunked") + flood))
    try:
        await assert_refused(client, app, frozenset({400, 413, 431}))
    finally:
        async with asyncio.timeout(SAFETY):
            await sender


# -- half-open sockets ----------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "expected", "streaming"), [
    pytest.param(request(line=b"GET /first HTTP/1.1"), [("/first", b"")], False, id="get"),
    pytest.param(request(b"Content-Length: 5") + b"hello", [("/first", b"hello")], False,
                 id="content-length-body"),
    pytest.param(request(b"Transfer-Encoding: chunked") + chunk(b"hello") + LAST,
                 [("/first", b"hello")], False, id="chunked-body"),
    pytest.param(request(line=b"GET /first HTTP/1.0"), [("/first", b"")], False, id="http10"),
    pytest.param(b"".join(request(line=b"GET /%d HTTP/1.1" % i) for i in range(3)),
                 [("/0", b""), ("/1", b""), ("/2", b"")], False, id="three-pipelined"),
    pytest.param(request(line=b"GET /first HTTP/1.1"), [("/first", b"")], True,
                 id="streamed-response"),
])
async def test_half_close_after_a_complete_request_still_gets_the_response(
        start_server: StartServer, connect: Connect, payload: bytes,
        expected: list[tuple[str, bytes]], streaming: bool) -> None:
    # A client may shut down its sending side once its request is out (RFC 9112 §9.6 does
    # not make that an abort); the response must still be sent, then the connection closed.
    app = Recorder()
    server = await start_server(streaming_recorder(app) if streaming else app)
    client = await connect(server)
    await client.send(payload)
    client.writer.write_eof()
    for path, _ in expected:
        response = await client.response()
        assert response.status == 200, path
        assert response.body == (b"stream" if streaming else b"ok")
    assert await client.closed_by_server()
    assert [(seen.path, seen.body) for seen in app.seen] == expected


async def test_half_close_while_the_app_runs_still_gets_the_response(
        start_server: StartServer, connect: Connect) -> None:
    # The end of the client's input is not a disconnection: a large response produced after
    # it must arrive whole.
    gate = Gate(b"x" * (1 << 20))
    app = Recorder(gate)
    server = await start_server(app)
    client = await connect(server)
    try:
        await client.send(request(b"Content-Length: 5") + b"hello")
        await gate.wait_entered()
        client.writer.write_eof()
    finally:
        gate.release.set()
    response = await client.response()
    assert response.status == 200
    assert response.body == b"x" * (1 << 20)
    assert await client.closed_by_server()
    assert app.paths == ["/first"]


CHUNKED_HEAD = request(b"Transfer-Encoding: chunked")


@pytest.mark.parametrize(("payload", "options"), [
    pytest.param(b"GET /first HT", {}, id="mid-request-line"),
    pytest.param(b"GET /first HTTP/1.1\r\nHost: t\r\n", {}, id="mid-head"),
    pytest.param(request(b"Content-Length: 100") + b"x" * 10, {}, id="content-length-in-memory"),
    pytest.param(request(b"Content-Length: 100") + b"x" * 50, {"body_buffer_size": 16},
                 id="content-length-spooled"),
    pytest.param(request(b"Content-Length: 5", b"Expect: 100-continue"), {},
                 id="expect-100-continue"),
    pytest.param(CHUNKED_HEAD + b"5", {}, id="chunked-mid-size-line"),
    pytest.param(CHUNKED_HEAD + b"5;a=b", {}, id="chunked-mid-extension"),
    pytest.param(CHUNKED_HEAD + b"a\r\nhello", {}, id="chunked-mid-data"),
    pytest.param(CHUNKED_HEAD + b"5\r\nhello\r", {}, id="chunked-mid-crlf"),
    pytest.param(CHUNKED_HEAD + chunk(b"hello") + b"0\r\n", {}, id="chunked-before-trailer"),
    pytest.param(CHUNKED_HEAD + chunk(b"hello") + b"0\r\nX: y\r\n", {}, id="chunked-mid-trailer"),
    pytest.param(CHUNKED_HEAD + chunk(b"x" * 100), {"body_buffer_size": 16},
                 id="chunked-spooled"),
])
async def test_half_close_mid_request_ends_the_connection(
        start_server: StartServer, connect: Connect, payload: bytes,
        options: dict[str, Any]) -> None:
    # waitress GHSA-3f84-rpwh-47g6 / CVE-2024-49769 (a connection the client has given up on
    # must be cleaned up).  A request cut short by the client's FIN can never be completed:
    # the server must close without running the application, and never wait past its body
    # or header timeout.  If it answers at all, it is a 400 or 408 that closes.
    app = Recorder()
    server = await start_server(app, body_timeout=1.0, header_timeout=1.0, **options)
    client = await connect(server)
    await client.send(payload)
    client.writer.write_eof()
    data = await read_to_eof(client.reader)
    await client.close()
    responses = [r for r in await parse_responses(data) if r.status != 100]
    assert len(responses) <= 1, responses
    for response in responses:
        assert response.status in (400, 408)
        assert response.header("Connection") == "close"
    assert app.paths == []


async def test_clients_that_vanish_at_once_leave_nothing_behind(
        start_server: StartServer, connect: Connect) -> None:
    # waitress GHSA-3f84-rpwh-47g6 / CVE-2024-49769: clients that close (or reset) right
    # after connecting, or in the middle of a request, must not leave connections behind or
    # stop the server from serving.
    app = Recorder()
    server = await start_server(app)
    loop = asyncio.get_running_loop()

    async def vanish(data: bytes, reset: bool) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (server.host, server.port))
            if data:
                await loop.sock_sendall(sock, data)
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            sock.close()

    shapes = [b"", b"GET /first HTTP/1.1\r\nHo",
              request(b"Content-Length: 10") + b"hello",
              request(line=b"GET /first HTTP/1.1")]
    async with asyncio.timeout(SAFETY):
        await asyncio.gather(*(vanish(data, reset) for data in shapes
                               for reset in (False, True) for _ in range(5)))
    client = await connect(server)
    response = await client.request("GET", "/after", headers={"Connection": "close"})
    assert response.status == 200
    assert await client.closed_by_server()
    assert SMUGGLED not in app.paths
    await until(lambda: server.stats()["connections"] == 0, "every connection gone")
