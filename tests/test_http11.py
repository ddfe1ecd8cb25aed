"""Unit tests of the sans-I/O HTTP/1.1 layer: bytes in, requests / HTTPError / bytes out.

No sockets and no event loop: every rule of RFC 9112 / RFC 9110 that ``aiowsgi.http11``
enforces is checked by feeding bytes and asserting the exact result or status.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiowsgi import http11
from aiowsgi.http11 import (
    CHUNKED,
    CONTINUE,
    LENGTH,
    NO_BODY,
    UNTIL_CLOSE,
    HTTPError,
    Request,
    ResponseHead,
    check_header,
    check_status,
    error_response,
    frame_response,
    leading_empty_lines,
)

from .limits import DEFAULTS, limits

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Every status parse_head may answer with.
PARSER_STATUSES = {400, 413, 414, 417, 431, 501, 505}

IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT"
)


def parse_head(head: bytes, **changes: int) -> Request:
    """``http11.parse_head`` with a server's default limits, except for ``changes``."""
    return http11.parse_head(head, **limits(http11.parse_head, **changes))


def make_head(request_line: bytes = b"GET / HTTP/1.1", *fields: bytes,
              host: bytes | None = b"example.com") -> bytes:
    """A request head; ``Host`` comes first unless ``host`` is None."""
    lines = [request_line]
    if host is not None:
        lines.append(b"Host: " + host)
    lines.extend(fields)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def parse(*fields: bytes, request_line: bytes = b"GET / HTTP/1.1",
          host: bytes | None = b"example.com") -> Request:
    return parse_head(make_head(request_line, *fields, host=host))


def error_status(head: bytes, **changes: int) -> int:
    with pytest.raises(HTTPError) as info:
        parse_head(head, **changes)
    return info.value.status


def field_error(*fields: bytes, request_line: bytes = b"GET / HTTP/1.1",
                host: bytes | None = b"example.com") -> int:
    return error_status(make_head(request_line, *fields, host=host))


def target_of(target: bytes, method: bytes = b"GET") -> Request:
    return parse_head(make_head(method + b" " + target + b" HTTP/1.1"))


# -- parse_head: the happy path --------------------------------------------------------


def test_simple_get() -> None:
    req = parse_head(b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert req == Request(
        method="GET", target="/index.html", path="/index.html", query="", http11=True,
        headers=[("Host", "example.com")], keep_alive=True, content_length=None,
        chunked=False, expect_continue=False,
    )
    assert req.version == "HTTP/1.1"
    assert not req.has_body


def test_http10_request_without_host() -> None:
    req = parse_head(b"GET / HTTP/1.0\r\n\r\n")
    assert req.http11 is False
    assert req.version == "HTTP/1.0"
    assert req.headers == []
    assert req.keep_alive is False


def test_terminator_may_be_omitted() -> None:
    with_crlf = parse_head(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n")
    without = parse_head(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3")
    assert with_crlf == without
    assert without.content_length == 3


@pytest.mark.parametrize("method", [b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"get",
                                    b"M-SEARCH", b"X!#$%&'*+.^_`|~1"])
def test_method_is_any_token_case_preserved(method: bytes) -> None:
    assert parse(request_line=method + b" / HTTP/1.1").method == method.decode()


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/", "/", ""),
        (b"/a/b/c", "/a/b/c", ""),
        (b"/a/b?x=1&y=2", "/a/b", "x=1&y=2"),
        (b"/p?", "/p", ""),
        (b"/p?a?b=/c", "/p", "a?b=/c"),
        (b"//double//slash", "//double//slash", ""),
        # Percent-decoded into latin-1 "bytes-as-str", as PEP 3333 wants for PATH_INFO.
        (b"/caf%C3%A9", "/caf\xc3\xa9", ""),
        (b"/caf%c3%a9", "/caf\xc3\xa9", ""),
        (b"/%E9t%E9", "/\xe9t\xe9", ""),
        (b"/a%20b", "/a b", ""),
        (b"/a%2Fb", "/a/b", ""),
        (b"/a%3Fb?c", "/a?b", "c"),
        (b"/%zz/%/%4", "/%zz/%/%4", ""),
        # Raw obs-text bytes come through unchanged, one code point per byte.
        (b"/caf\xc3\xa9", "/caf\xc3\xa9", ""),
        # The query is never decoded.
        (b"/s?q=caf%C3%A9&x=%20+y", "/s", "q=caf%C3%A9&x=%20+y"),
    ],
)
def test_origin_form_target(target: bytes, path: str, query: str) -> None:
    req = target_of(target)
    assert req.target == target.decode("latin-1")
    assert req.path == path
    assert req.query == query


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"http://h/p?q", "/p", "q"),
        (b"http://example.com/a/b?x=1&y=2", "/a/b", "x=1&y=2"),
        (b"http://h", "/", ""),
        (b"http://h/", "/", ""),
        (b"http://h?q", "/", "q"),
        (b"https://h:8443/a%41", "/aA", ""),
        (b"HTTP://h/p", "/p", ""),
        (b"http://[::1]:8080/v6", "/v6", ""),
        # The authority ends at the first "?" (RFC 3986 §3.2): a "/" inside the query
        # is not the start of the path.
        (b"http://h?q=/x", "/", "q=/x"),
        (b"http://h?next=/login/", "/", "next=/login/"),
    ],
)
def test_absolute_form_target(target: bytes, path: str, query: str) -> None:
    req = target_of(target)
    assert req.target == target.decode()
    assert (req.path, req.query) == (path, query)


def test_asterisk_form_with_options() -> None:
    req = target_of(b"*", method=b"OPTIONS")
    assert (req.method, req.target, req.path, req.query) == ("OPTIONS", "*", "*", "")


@pytest.mark.parametrize("method", [b"GET", b"POST", b"HEAD", b"options"])
def test_asterisk_form_only_with_options(method: bytes) -> None:
    assert error_status(make_head(method + b" * HTTP/1.1")) == 400


@pytest.mark.parametrize(
    "target",
    [
        b"ftp://h/p",
        b"h/p",
        b"p",
        b"example.com:443",  # authority-form is for CONNECT only
        b"http:/p",
        b"*x",
        b"?q",
        # RFC 9110 §4.2.1: an "http" URI with an empty host MUST be rejected as invalid.
        b"http:///p",
        b"http://?q",
        # a fragment is never part of a request target (RFC 9112 §3.2)
        b"/a#f",
        b"http://h/p#f",
    ],
)
def test_unsupported_or_invalid_target(target: bytes) -> None:
    assert error_status(make_head(b"GET " + target + b" HTTP/1.1")) == 400


def test_headers_keep_order_case_and_repeats() -> None:
    req = parse(b"X-Foo: Bar", b"ACCEPT: */*", b"x-foo: baz", b"Set-Cookie: a=1",
                b"Set-Cookie: b=2")
    assert req.headers == [
        ("Host", "example.com"), ("X-Foo", "Bar"), ("ACCEPT", "*/*"), ("x-foo", "baz"),
        ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (b"X: v", "v"),
        (b"X:v", "v"),
        (b"X: \t v a l \t ", "v a l"),
        (b"X:", ""),
        (b"X:   ", ""),
        (b"X: a\tb", "a\tb"),  # HTAB inside a value
        (b"X: caf\xc3\xa9", "caf\xc3\xa9"),  # obs-text, latin-1 decoded
        (b"X: \x80\xa0\xff", "\x80\xa0\xff"),
        (b'X: "quoted, with commas"; p=1', '"quoted, with commas"; p=1'),
    ],
)
def test_field_value_whitespace_htab_and_obs_text(field: bytes, value: str) -> None:
    assert parse(field).headers[1] == ("X", value)


@pytest.mark.parametrize(
    ("version", "fields", "keep_alive"),
    [
        (b"1.1", [], True),
        (b"1.1", [b"Connection: close"], False),
        (b"1.1", [b"Connection: Close"], False),
        (b"1.1", [b"Connection: keep-alive"], True),
        (b"1.1", [b"Connection: Upgrade, close"], False),
        (b"1.1", [b"Connection: foo", b"Connection: close"], False),
        (b"1.1", [b"Connection: closed"], True),
        (b"1.0", [], False),
        (b"1.0", [b"Connection: keep-alive"], True),
        (b"1.0", [b"Connection: Keep-Alive"], True),
        (b"1.0", [b"Connection: foo, keep-alive"], True),
        (b"1.0", [b"Connection: keep-alive, close"], False),
        (b"1.0", [b"Connection: close"], False),
    ],
)
def test_keep_alive(version: bytes, fields: list[bytes], keep_alive: bool) -> None:
    assert parse(*fields, request_line=b"GET / HTTP/" + version).keep_alive is keep_alive


@pytest.mark.parametrize(
    ("fields", "length"),
    [
        ([b"Content-Length: 5"], 5),
        ([b"Content-Length: 0"], 0),
        ([b"Content-Length: 007"], 7),
        ([b"Content-Length:  \t12 \t"], 12),
        ([b"Content-Length: 999999999999999999"], 999_999_999_999_999_999),  # 18 digits
        ([b"Content-Length: 5", b"Content-Length: 5"], 5),
        ([b"Content-Length: 5, 5"], 5),
        ([b"Content-Length: 5,5", b"content-length: 5"], 5),
        ([b"content-LENGTH: 42"], 42),
    ],
)
def test_content_length(fields: list[bytes], length: int) -> None:
    req = parse(*fields, request_line=b"POST / HTTP/1.1")
    assert req.content_length == length
    assert req.chunked is False
    assert req.has_body is (length > 0)


@pytest.mark.parametrize("value", [b"chunked", b"Chunked", b"CHUNKED", b" chunked \t"])
def test_chunked(value: bytes) -> None:
    req = parse(b"Transfer-Encoding: " + value, request_line=b"POST / HTTP/1.1")
    assert req.chunked is True
    assert req.content_length is None
    assert req.has_body is True


@pytest.mark.parametrize(
    ("request_line", "fields", "expect_continue"),
    [
        (b"POST / HTTP/1.1", [b"Content-Length: 5", b"Expect: 100-continue"], True),
        (b"POST / HTTP/1.1", [b"Content-Length: 5", b"Expect: 100-Continue"], True),
        (b"POST / HTTP/1.1", [b"Transfer-Encoding: chunked", b"Expect: 100-continue"], True),
        (b"POST / HTTP/1.1", [b"Expect: 100-continue", b"Content-Length: 5"], True),
        # No body: nothing to wait for.
        (b"GET / HTTP/1.1", [b"Expect: 100-continue"], False),
        (b"POST / HTTP/1.1", [b"Content-Length: 0", b"Expect: 100-continue"], False),
        # RFC 9110 §10.1.1: ignored in an HTTP/1.0 request.
        (b"POST / HTTP/1.0", [b"Content-Length: 5", b"Expect: 100-continue"], False),
        (b"POST / HTTP/1.1", [b"Content-Length: 5"], False),
    ],
)
def test_expect_continue(request_line: bytes, fields: list[bytes],
                         expect_continue: bool) -> None:
    assert parse(*fields, request_line=request_line).expect_continue is expect_continue


@pytest.mark.parametrize(
    "value", [b"foo", b"100-continue, foo", b"200-ok", b"100-continue=1", b"continue"]
)
def test_other_expectations_are_417(value: bytes) -> None:
    head = make_head(b"POST / HTTP/1.1", b"Content-Length: 5", b"Expect: " + value)
    assert error_status(head) == 417


# -- parse_head: Host ------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [b"example.com", b"example.com:8080", b"EXAMPLE.com.", b"127.0.0.1:80", b"[::1]",
     b"[::1]:8080", b"[2001:db8::1]", b"localhost:", b"xn--caf-dma.example", b"a_b-c~d",
     b""],  # RFC 9112 §3.2: an empty Host is what a client sends without an authority
)
def test_valid_host(host: bytes) -> None:
    assert parse(host=host).headers == [("Host", host.decode())]


def test_http11_without_host_is_400() -> None:
    assert error_status(make_head(b"GET / HTTP/1.1", b"X: y", host=None)) == 400


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_several_host_fields_are_400(version: bytes) -> None:
    head = make_head(b"GET / HTTP/" + version, b"Host: example.com")
    assert error_status(head) == 400
    head = make_head(b"GET / HTTP/" + version, b"host: other.example")
    assert error_status(head) == 400


@pytest.mark.parametrize(
    "host",
    [b"a b", b"a/b", b"user@example.com", b"example.com:http", b"example.com:80:80",
     b"[::1", b"::1", b"example.com/", b"exa\"mple", b"h?q", b"h#f", b"caf\xc3\xa9"],
)
@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_invalid_host_is_400(host: bytes, version: bytes) -> None:
    assert error_status(make_head(b"GET / HTTP/" + version, host=host)) == 400


# -- parse_head: versions and request lines --------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"PRI * HTTP/2.0\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        make_head(b"GET / HTTP/2.0"),
        make_head(b"GET / HTTP/3.0"),
        make_head(b"GET / HTTP/0.9"),
        make_head(b"GET / HTTP/9.9"),
    ],
)
def test_unsupported_version_is_505(head: bytes) -> None:
    assert error_status(head) == 505


@pytest.mark.parametrize("minor", [b"2", b"5", b"9"])
def test_later_minor_version_is_served_as_1_1(minor: bytes) -> None:
    # RFC 9110 §2.5: process it as the highest minor version the server speaks
    request = parse_head(make_head(b"GET / HTTP/1." + minor))
    assert request.http11
    assert request.version == "HTTP/1.1"
    assert request.keep_alive
    # 1.1's rules hold, too: Host is required
    assert error_status(make_head(b"GET / HTTP/1." + minor, host=None)) == 400


@pytest.mark.parametrize(
    ("data", "skipped"),
    [(b"GET / HTTP/1.1\r\n", 0), (b"\r\nGET /", 2), (b"\r\n\r\n\r\nGET /", 6),
     (b"\r\n\r", 2), (b"\r", 0), (b"\n\r\nGET", 0), (b"\r\n\nGET", 2), (b"", 0),
     (b"\r\n" * 5000, 10000)],
)
def test_leading_empty_lines(data: bytes, skipped: int) -> None:
    # RFC 9112 §2.2: CRLFs before a request line are ignored; a bare LF is not one
    assert leading_empty_lines(data) == skipped


@pytest.mark.parametrize(
    "request_line",
    [
        b"",
        b"GET  / HTTP/1.1",
        b"GET /  HTTP/1.1",
        b"GET / HTTP/1.1 ",
        b" GET / HTTP/1.1",
        b"GET /",
        b"GET / ",
        b"GET",
        b"/ HTTP/1.1",
        b"GET / http/1.1",
        b"GET / Http/1.1",
        b"GET / HTTP/1",
        b"GET / HTTP/11",
        b"GET / HTTP/1.10",
        b"GET / HTTP/10.1",
        b"GET / HTTP 1.1",
        b"GET / HTTPS/1.1",
        b"GET\t/ HTTP/1.1",
        b"GET /\tHTTP/1.1",
        b"G(T / HTTP/1.1",
        b"G\xc9T / HTTP/1.1",
        b"GET / HTTP/1.1\x00",
        b"GET / HTTP/1.1\r",
    ],
)
def test_malformed_request_line_is_400(request_line: bytes) -> None:
    assert error_status(make_head(request_line)) == 400


def test_bare_lf_line_endings_are_400() -> None:
    assert error_status(b"GET / HTTP/1.1\nHost: a\n\n") == 400


# -- parse_head: limits ----------------------------------------------------------------


def _line_of(length: int) -> bytes:
    line = b"GET /" + b"a" * (length - 14) + b" HTTP/1.1"
    assert len(line) == length
    return line


def test_request_line_at_the_limit_is_accepted() -> None:
    req = parse_head(make_head(_line_of(64)), max_request_line=64)
    assert req.path == "/" + "a" * 50


def test_request_line_over_the_limit_is_414() -> None:
    assert error_status(make_head(_line_of(65)), max_request_line=64) == 414


def test_request_line_over_the_default_limit_is_414() -> None:
    longest = DEFAULTS.max_request_line
    assert error_status(make_head(_line_of(longest + 1))) == 414
    assert parse_head(make_head(_line_of(longest))).method == "GET"


def test_header_count_at_the_limit_is_accepted() -> None:
    head = make_head(b"GET / HTTP/1.1", b"A: 1", b"B: 2")
    assert len(parse_head(head, max_header_count=3).headers) == 3


def test_header_count_over_the_limit_is_431() -> None:
    head = make_head(b"GET / HTTP/1.1", b"A: 1", b"B: 2", b"C: 3")
    assert error_status(head, max_header_count=3) == 431


def test_header_count_default_limit() -> None:
    most = DEFAULTS.max_header_count
    fields = [b"X-%d: v" % i for i in range(most - 1)]  # and Host
    assert len(parse_head(make_head(b"GET / HTTP/1.1", *fields)).headers) == most
    fields.append(b"X-%d: v" % most)
    assert error_status(make_head(b"GET / HTTP/1.1", *fields)) == 431


def test_head_size_at_the_limit_is_accepted() -> None:
    head = make_head(b"GET / HTTP/1.1", b"X: " + b"v" * 200)
    assert parse_head(head, max_header_size=len(head)).headers[1] == ("X", "v" * 200)


def test_head_over_the_size_limit_is_431() -> None:
    head = make_head(b"GET / HTTP/1.1", b"X: " + b"v" * 200)
    assert error_status(head, max_header_size=len(head) - 1) == 431
    big = make_head(b"GET / HTTP/1.1", *[b"X: " + b"v" * 1000] * 66)
    assert error_status(big) == 431


@pytest.mark.parametrize(
    "field",
    [
        b"X: " + b" " * 60000 + b"\x00",
        b"X: a" + b" " * 60000 + b"\x00",
        b"X:" + b"\t " * 30000 + b"\x01",
    ],
)
def test_whitespace_runs_before_a_bad_byte_are_rejected(field: bytes) -> None:
    # Regression guard: a backtracking field regex took minutes on these.
    assert field_error(field) == 400


def test_long_whitespace_run_inside_a_value_is_kept() -> None:
    value = b"a" + b" " * 60000 + b"b"
    assert parse(b"X: " + value + b"   ").headers[1] == ("X", value.decode())


# -- parse_head: strictness ------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        # Content-Length together with Transfer-Encoding (RFC 9112 §6.3: smuggling).
        [b"Content-Length: 5", b"Transfer-Encoding: chunked"],
        [b"Transfer-Encoding: chunked", b"Content-Length: 0"],
        # Differing Content-Length values.
        [b"Content-Length: 5", b"Content-Length: 6"],
        [b"Content-Length: 5, 6"],
        [b"Content-Length: 5, 5", b"Content-Length: 6"],
        [b"Content-Length: 5", b"Content-Length: 5, 6"],
        # Content-Length that is not plain digits.
        [b"Content-Length: +5"],
        [b"Content-Length: -1"],
        [b"Content-Length: 0x10"],
        [b"Content-Length: 1 0"],
        [b"Content-Length: 5.0"],
        [b"Content-Length: 1e3"],
        [b"Content-Length: "],
        [b"Content-Length:"],
        [b"Content-Length: 5,"],
        [b"Content-Length: ,5"],
        [b"Content-Length: 1234567890123456789"],  # 19 digits
        [b"Content-Length: \xb2"],  # superscript two: str.isdigit() but not DIGIT
        [b"Content-Length: 1\xb2"],
        [b"Content-Length: \xbd"],
        # Transfer-Encoding whose final coding is not chunked, or chunked twice.
        [b"Transfer-Encoding: gzip"],
        [b"Transfer-Encoding: chunked, gzip"],
        [b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip"],
        [b"Transfer-Encoding: identity"],
        [b"Transfer-Encoding: chunked, chunked"],
        [b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
        [b"Transfer-Encoding: "],
        [b"Transfer-Encoding: chunkedx"],
        # Obsolete line folding.
        [b"X: a", b" b"],
        [b"X: a", b"\tb"],
        # Whitespace between field name and colon (RFC 9112 §5.1: MUST reject).
        [b"X : y"],
        [b"X\t: y"],
        [b"Content-Length : 5"],
        # Non-token field names.
        [b"X(y): z"],
        [b"X y: z"],
        [b": z"],
        [b"X@: z"],
        [b"[x]: y"],
        [b"X\xe9: z"],
        [b'"X": z'],
        [b"X/Y: z"],
        [b"no colon at all"],
        # Control characters in a field value.
        [b"X: a\x00b"],
        [b"X: a\rb"],
        [b"X: a\r"],
        [b"X: a\nb"],
        [b"X: a\x01b"],
        [b"X: a\x0bb"],
        [b"X: a\x0cb"],
        [b"X: a\x1bb"],
        [b"X: a\x1f"],
        [b"X: a\x7fb"],
        [b"X: \x00"],
        [b"Host2: a\nX: b"],  # bare LF used as a line ending
    ],
)
def test_strictness_400(fields: list[bytes]) -> None:
    assert field_error(*fields, request_line=b"POST / HTTP/1.1") == 400


@pytest.mark.parametrize(
    "fields",
    [
        [b"Transfer-Encoding: chunked"],
        [b"Transfer-Encoding: chunked", b"Content-Length: 5"],
        [b"Transfer-Encoding: gzip, chunked"],
    ],
)
def test_transfer_encoding_on_http10_is_400(fields: list[bytes]) -> None:
    assert field_error(*fields, request_line=b"POST / HTTP/1.0") == 400


@pytest.mark.parametrize(
    "fields",
    [
        [b"Transfer-Encoding: gzip, chunked"],
        [b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"],
        [b"Transfer-Encoding: deflate,chunked"],
    ],
)
def test_unimplemented_transfer_coding_is_501(fields: list[bytes]) -> None:
    assert field_error(*fields, request_line=b"POST / HTTP/1.1") == 501


def test_whitespace_before_the_first_field_is_400() -> None:
    assert error_status(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n") == 400


def test_empty_line_inside_the_head_is_400() -> None:
    assert error_status(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nX: y\r\n\r\n") == 400


@pytest.mark.parametrize(
    "target",
    [b"/a\x00b", b"/a\rb", b"/a\nb", b"/a\x01b", b"/a\x1fb", b"/a\x7fb", b"/a\tb", b"/a b",
     b"/a?q=\x00", b"http://h/\x0b"],
)
def test_control_characters_in_the_target_are_400(target: bytes) -> None:
    assert error_status(make_head(b"GET " + target + b" HTTP/1.1")) == 400


# -- parse_head: properties --------------------------------------------------------------

_HEAD_PIECES = st.sampled_from([
    b"GET", b"POST", b"OPTIONS", b" ", b"  ", b"/", b"*", b"http://h", b"?", b"%", b"%C3",
    b"%zz", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"\r\n", b"\n", b"\r", b"\t", b":",
    b",", b"Host", b"Host: a", b"Content-Length", b"Transfer-Encoding", b"chunked",
    b"gzip", b"Connection", b"close", b"keep-alive", b"Expect", b"100-continue", b"5",
    b"-1", b"\x00", b"\x7f", b"\xb2", b"\xe9", b"[::1]", b"PRI * HTTP/2.0",
])
_HEADISH = st.lists(_HEAD_PIECES, max_size=40).map(b"".join)
_ANY_HEAD = st.one_of(
    st.binary(max_size=300),
    _HEADISH,
    _HEADISH.map(lambda rest: b"GET / HTTP/1.1\r\n" + rest),
    _HEADISH.map(lambda rest: b"POST /p?q HTTP/1.1\r\nHost: h\r\n" + rest),
)


@PROPERTY
@given(_ANY_HEAD)
def test_parse_head_returns_a_request_or_raises_http_error(head: bytes) -> None:
    try:
        req = parse_head(head, max_request_line=200, max_header_size=4096,
                         max_header_count=20)
    except HTTPError as exc:
        assert exc.status in PARSER_STATUSES
        assert isinstance(exc.reason, str)
        assert exc.reason
        return
    assert isinstance(req, Request)
    hosts = [value for name, value in req.headers if name.lower() == "host"]
    assert len(hosts) <= 1
    if req.http11:
        assert len(hosts) == 1
    assert not (req.chunked and req.content_length is not None)
    assert req.path == "*" or req.path.startswith("/")


# -- frame_response ----------------------------------------------------------------------


def split_response(head: ResponseHead) -> tuple[str, list[tuple[str, str]]]:
    text = head.data.decode("latin-1")
    assert text.endswith("\r\n\r\n")
    status_line, *lines = text[:-4].split("\r\n")
    fields = []
    for line in lines:
        name, sep, value = line.partition(": ")
        assert sep, line
        fields.append((name, value))
    return status_line, fields


def values(head: ResponseHead, name: str) -> list[str]:
    return [v for n, v in split_response(head)[1] if n.lower() == name.lower()]


def frame(status: str = "200 OK", headers: list[tuple[str, str]] | None = None, *,
          method: str = "GET", http11: bool = True, keep_alive: bool = True,
          known_length: int | None = None, server_header: bool = True) -> ResponseHead:
    return frame_response(status, [] if headers is None else headers, method=method,
                          http11=http11, keep_alive=keep_alive, known_length=known_length,
                          server_header=server_header)


def test_app_content_length_is_kept() -> None:
    head = frame("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    status_line, fields = split_response(head)
    assert status_line == "HTTP/1.1 200 OK"
    assert fields[:2] == [("Content-Type", "text/plain"), ("Content-Length", "5")]
    assert values(head, "Content-Length") == ["5"]
    assert values(head, "Transfer-Encoding") == []
    assert values(head, "Connection") == []
    assert (head.framing, head.content_length, head.keep_alive, head.send_body) == (
        LENGTH, 5, True, True)


def test_app_content_length_wins_over_known_length() -> None:
    head = frame("200 OK", [("Content-Length", "5")], known_length=5)
    assert values(head, "Content-Length") == ["5"]
    assert (head.framing, head.content_length) == (LENGTH, 5)


def test_identical_app_content_lengths_are_sent_once() -> None:
    head = frame("200 OK", [("Content-Length", "5"), ("content-length", "5")])
    assert values(head, "Content-Length") == ["5"]
    assert head.content_length == 5


@pytest.mark.parametrize("http11", [True, False])
def test_known_length_adds_content_length(http11: bool) -> None:
    head = frame("200 OK", [("Content-Type", "text/plain")], http11=http11, known_length=12)
    assert values(head, "Content-Length") == ["12"]
    assert values(head, "Transfer-Encoding") == []
    assert (head.framing, head.content_length, head.keep_alive, head.send_body) == (
        LENGTH, 12, True, True)
    assert values(head, "Connection") == ([] if http11 else ["keep-alive"])


def test_known_length_zero() -> None:
    head = frame("200 OK", known_length=0)
    assert values(head, "Content-Length") == ["0"]
    assert (head.framing, head.content_length) == (LENGTH, 0)


def test_unknown_length_is_chunked_on_http11() -> None:
    head = frame("200 OK", [("Content-Type", "text/plain")])
    assert values(head, "Transfer-Encoding") == ["chunked"]
    assert values(head, "Content-Length") == []
    assert values(head, "Connection") == []
    assert (head.framing, head.content_length, head.keep_alive, head.send_body) == (
        CHUNKED, None, True, True)


@pytest.mark.parametrize("keep_alive", [True, False])
def test_unknown_length_is_close_delimited_on_http10(keep_alive: bool) -> None:
    head = frame("200 OK", [("Content-Type", "text/plain")], http11=False,
                 keep_alive=keep_alive)
    assert values(head, "Transfer-Encoding") == []
    assert values(head, "Content-Length") == []
    assert values(head, "Connection") == ["close"]
    assert (head.framing, head.keep_alive, head.send_body) == (UNTIL_CLOSE, False, True)


def test_http10_keep_alive_response() -> None:
    head = frame("200 OK", [("Content-Length", "3")], http11=False, keep_alive=True)
    assert values(head, "Connection") == ["keep-alive"]
    assert head.keep_alive is True
    assert head.data.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("http11", [True, False])
def test_no_keep_alive_says_close(http11: bool) -> None:
    head = frame("200 OK", [("Content-Length", "3")], http11=http11, keep_alive=False)
    assert values(head, "Connection") == ["close"]
    assert head.keep_alive is False
    assert head.framing == LENGTH


@pytest.mark.parametrize(
    ("headers", "known_length", "http11"),
    [
        ([("Content-Length", "5")], None, True),
        ([], 5, True),
        ([], None, True),
        ([("Content-Length", "5")], None, False),
        ([], None, False),
    ],
)
def test_head_has_the_same_headers_and_no_body(
    headers: list[tuple[str, str]], known_length: int | None, http11: bool
) -> None:
    fixed = [("Date", "Sun, 06 Nov 1994 08:49:37 GMT"), *headers]
    get = frame("200 OK", fixed, method="GET", known_length=known_length, http11=http11)
    head = frame("200 OK", fixed, method="HEAD", known_length=known_length, http11=http11)
    assert head.data == get.data
    assert head.send_body is False
    assert head.framing == NO_BODY
    assert head.keep_alive == get.keep_alive
    assert head.content_length == get.content_length


@pytest.mark.parametrize("status", ["204 No Content", "103 Early Hints", "100 Continue",
                                    "101 Switching Protocols"])
def test_204_and_1xx_drop_content_length_and_have_no_body(status: str) -> None:
    head = frame(status, [("Content-Length", "0"), ("X", "y")], known_length=0)
    assert split_response(head)[0] == "HTTP/1.1 " + status
    assert values(head, "Content-Length") == []
    assert values(head, "Transfer-Encoding") == []
    assert values(head, "X") == ["y"]
    assert (head.framing, head.send_body) == (NO_BODY, False)


def test_204_without_length_is_not_chunked() -> None:
    head = frame("204 No Content")
    assert values(head, "Transfer-Encoding") == []
    assert values(head, "Content-Length") == []
    assert (head.framing, head.send_body, head.keep_alive) == (NO_BODY, False, True)


def test_304_keeps_content_length_and_has_no_body() -> None:
    head = frame("304 Not Modified", [("ETag", '"x"'), ("Content-Length", "42")])
    assert values(head, "Content-Length") == ["42"]
    assert values(head, "Transfer-Encoding") == []
    assert values(head, "ETag") == ['"x"']
    assert (head.framing, head.send_body, head.keep_alive) == (NO_BODY, False, True)


def test_304_without_length_is_not_chunked() -> None:
    head = frame("304 Not Modified", known_length=0)
    assert values(head, "Transfer-Encoding") == []
    assert values(head, "Content-Length") == []
    assert head.framing == NO_BODY


@pytest.mark.parametrize("value", ["close", "Close", "foo, close", "keep-alive, close"])
@pytest.mark.parametrize("http11", [True, False])
def test_app_connection_close(value: str, http11: bool) -> None:
    head = frame("200 OK", [("Connection", value), ("Content-Length", "2")], http11=http11)
    assert head.keep_alive is False
    assert values(head, "Connection") == ["close"]


@pytest.mark.parametrize(("http11", "expected"), [(True, []), (False, ["keep-alive"])])
def test_app_connection_keep_alive_is_not_duplicated(http11: bool,
                                                     expected: list[str]) -> None:
    head = frame("200 OK", [("Connection", "keep-alive"), ("Content-Length", "2")],
                 http11=http11)
    assert head.keep_alive is True
    assert values(head, "Connection") == expected


def test_app_connection_keep_alive_does_not_override_close() -> None:
    head = frame("200 OK", [("Connection", "keep-alive"), ("Content-Length", "2")],
                 keep_alive=False)
    assert head.keep_alive is False
    assert values(head, "Connection") == ["close"]


def test_date_and_server_are_added() -> None:
    head = frame("200 OK", [("Content-Length", "0")])
    (date,) = values(head, "Date")
    assert IMF_FIXDATE.fullmatch(date)
    assert values(head, "Server") == ["aiowsgi"]


def test_app_date_and_server_are_kept() -> None:
    head = frame("200 OK", [("date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("SERVER", "mine")])
    assert values(head, "Date") == ["Sun, 06 Nov 1994 08:49:37 GMT"]
    assert values(head, "Server") == ["mine"]


def test_server_header_can_be_omitted() -> None:
    assert values(frame("200 OK", server_header=False), "Server") == []
    kept = frame("200 OK", [("Server", "mine")], server_header=False)
    assert values(kept, "Server") == ["mine"]


@pytest.mark.parametrize(
    "headers",
    [
        [("Content-Length", "abc")],
        [("Content-Length", "-1")],
        [("Content-Length", "+5")],
        [("Content-Length", "")],
        [("Content-Length", " 5")],
        [("Content-Length", "5 ")],
        [("Content-Length", "0x10")],
        [("Content-Length", "5, 5")],
        [("Content-Length", "\xb2")],
        [("Content-Length", "1234567890123456789")],
        [("Content-Length", "5"), ("Content-Length", "6")],
        [("Content-Length", "5"), ("Content-Length", "x")],
    ],
)
@pytest.mark.parametrize("status", ["200 OK", "204 No Content", "304 Not Modified"])
def test_invalid_app_content_length_is_value_error(headers: list[tuple[str, str]],
                                                   status: str) -> None:
    with pytest.raises(ValueError):
        frame(status, headers)


def test_response_head_is_latin1() -> None:
    head = frame("200 Caf\xe9", [("X", "caf\xe9"), ("Content-Length", "0")])
    assert head.data.startswith(b"HTTP/1.1 200 Caf\xe9\r\n")
    assert b"X: caf\xe9\r\n" in head.data


def test_continue_constant() -> None:
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"


# -- check_status / check_header ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [("200 OK", 200), ("404 Not Found", 404), ("100 Continue", 100), ("599 Custom", 599),
     ("200 ", 200), ("201 Created\tok", 201), ("200 Caf\xe9", 200), ("418 I'm a teapot", 418)],
)
def test_valid_status(status: str, code: int) -> None:
    assert check_status(status) == code


@pytest.mark.parametrize(
    "status",
    [
        "200",
        "200OK",
        "20 OK",
        "2000 OK",
        "abc OK",
        " 200 OK",
        "099 Low",
        "000 Zero",
        "200 OK\r\n",
        "200 OK\r\nSet-Cookie: evil=1",
        "200 OK\nX: y",
        "200 O\x00K",
        "200 O\x7fK",
        "\uff12\uff10\uff10 OK",  # full-width digits
        # RFC 9110 §15: valid status codes are 100..599.
        "600 Too High",
        "999 Way Too High",
        # PEP 3333: the status is a latin-1 "native string".
        "200 \u2603",
        200,
        b"200 OK",
        None,
    ],
)
def test_invalid_status(status: object) -> None:
    with pytest.raises(ValueError):
        check_status(status)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Content-Type", "text/html; charset=utf-8"),
        ("X-Empty", ""),
        ("Connection", "close"),
        ("connection", "keep-alive"),
        ("Set-Cookie", "a=b; Path=/; HttpOnly"),
        ("X", "a\tb"),
        ("X", "caf\xe9"),
        ("X", "\x80\xff"),
        ("!#$%&'*+-.^_`|~0aZ", "v"),
        ("Content-Length", "5"),
    ],
)
def test_valid_header(name: str, value: str) -> None:
    check_header(name, value)  # does not raise


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Bad Name", "x"),
        ("Bad:Name", "x"),
        ("X:", "x"),
        ("", "x"),
        ("X\r\nSet-Cookie", "x"),
        ("X\xe9", "x"),
        ("X", "a\r\nSet-Cookie: evil=1"),
        ("X", "a\rb"),
        ("X", "a\nb"),
        ("X", "a\r\n"),
        ("X", "a\x00b"),
        ("X", "a\x01b"),
        ("X", "a\x7f"),
        ("Transfer-Encoding", "chunked"),
        ("transfer-encoding", "chunked"),
        ("Keep-Alive", "timeout=5"),
        ("Upgrade", "websocket"),
        ("TE", "trailers"),
        ("Trailer", "X-Sum"),
        ("Proxy-Authenticate", "Basic"),
        ("Proxy-Authorization", "Basic eA=="),
        ("X", "\u2603"),
        ("X", "caf\u0119"),
        (b"X", "y"),
        ("X", b"y"),
        ("X", None),
        (1, "y"),
        ("X", 1),
    ],
)
def test_invalid_header(name: object, value: object) -> None:
    with pytest.raises(ValueError):
        check_header(name, value)


# -- error_response ----------------------------------------------------------------------


def split_error(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(": ")
        assert colon, line
        assert name.lower() not in fields
        fields[name.lower()] = value
    return status_line, fields, body


@pytest.mark.parametrize(
    ("status", "reason"),
    [(400, "Bad Request"), (408, "Request Timeout"), (413, "Content Too Large"),
     (414, "URI Too Long"), (417, "Expectation Failed"),
     (431, "Request Header Fields Too Large"), (500, "Internal Server Error"),
     (501, "Not Implemented"), (503, "Service Unavailable"),
     (505, "HTTP Version Not Supported")],
)
def test_error_response(status: int, reason: str) -> None:
    status_line, fields, body = split_error(error_response(status, "details here"))
    assert status_line == f"HTTP/1.1 {status} {reason}"
    assert fields["content-type"] == "text/plain; charset=utf-8"
    assert int(fields["content-length"]) == len(body)
    assert fields["connection"] == "close"
    assert fields["server"] == "aiowsgi"
    assert IMF_FIXDATE.fullmatch(fields["date"])
    assert body == f"{status} {reason}\ndetails here\n".encode()


def test_error_response_without_message() -> None:
    _, fields, body = split_error(error_response(400))
    assert body == b"400 Bad Request\n"
    assert int(fields["content-length"]) == len(body)


def test_error_response_keep_alive() -> None:
    _, fields, body = split_error(error_response(413, "too big", keep_alive=True))
    assert "connection" not in fields
    assert int(fields["content-length"]) == len(body)


@pytest.mark.parametrize("status", [400, 413, 431, 500, 503, 505])
def test_error_response_to_head_has_no_body(status: int) -> None:
    # RFC 9110 §9.3.2: the head a GET would have had, Content-Length included
    full = error_response(status, "details", retry_after=1)
    head_only = error_response(status, "details", retry_after=1, head_only=True)
    status_line, fields, body = split_error(head_only)
    assert body == b""
    full_line, full_fields, full_body = split_error(full)
    assert (status_line, fields.keys()) == (full_line, full_fields.keys())
    assert full_body
    assert int(fields["content-length"]) == len(full_body)
    assert fields["retry-after"] == "1"


def test_error_response_unknown_status() -> None:
    status_line, fields, body = split_error(error_response(429))
    assert status_line.startswith("HTTP/1.1 429 ")
    assert int(fields["content-length"]) == len(body)


@pytest.mark.parametrize("message", ["transfer coding 'gzip\xe9' not implemented",
                                     "caf\u00e9 \u2603"])
def test_error_response_body_is_utf8_as_declared(message: str) -> None:
    # Reasons can echo request bytes (latin-1 decoded); the body says charset=utf-8.
    _, fields, body = split_error(error_response(501, message))
    assert fields["content-type"] == "text/plain; charset=utf-8"
    assert body.decode("utf-8") == f"501 Not Implemented\n{message}\n"
    assert int(fields["content-length"]) == len(body)


def test_error_response_parses_back_through_the_framing_rules() -> None:
    data = error_response(400, "bad")
    status_line, fields, _ = split_error(data)
    assert status_line.split(" ", 2)[1] == "400"
    assert check_status(status_line.split(" ", 1)[1]) == 400
    for name, value in fields.items():
        if name != "connection":
            check_header(name, value)


def test_frame_known_length_differing_from_app_length_closes_except_for_head() -> None:
    headers = [("Content-Type", "text/plain"), ("Content-Length", "10")]
    get = frame_response("200 OK", headers, method="GET", http11=True, keep_alive=True,
                         known_length=5)
    assert not get.keep_alive
    assert b"\r\nConnection: close\r\n" in get.data
    # a HEAD body is empty by nature while Content-Length describes the GET body
    head = frame_response("200 OK", headers, method="HEAD", http11=True, keep_alive=True,
                          known_length=0)
    assert head.keep_alive
    assert b"Connection" not in head.data
