"""Unit tests of the chunked transfer coding of request bodies: bytes in, body data or
HTTPError out, split anywhere, every limit checked as the bytes arrive."""

from __future__ import annotations

import io
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiowsgi.chunked import ChunkedDecoder
from aiowsgi.http11 import LAST_CHUNK, HTTPError, chunk

from .limits import limits

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def chunked_decoder(**changes: int) -> ChunkedDecoder:
    """A ``ChunkedDecoder`` with a server's default limits, except for ``changes``."""
    return ChunkedDecoder(**limits(ChunkedDecoder, **changes))


# -- ChunkedDecoder ------------------------------------------------------------------


def decode(data: bytes, **changes: int) -> tuple[bytes, ChunkedDecoder]:
    decoder = chunked_decoder(**changes)
    body = b"".join(decoder.feed(data))
    return body, decoder


def decode_error(*pieces: bytes, **changes: int) -> int:
    decoder = chunked_decoder(**changes)
    with pytest.raises(HTTPError) as info:
        for piece in pieces:
            decoder.feed(piece)
    return info.value.status


def encode_chunked(chunks: list[bytes], trailer: bytes = b"") -> bytes:
    return b"".join(chunk(c) for c in chunks) + b"0\r\n" + trailer + b"\r\n"


def test_simple_body() -> None:
    body, decoder = decode(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert body == b"hello world"
    assert decoder.done
    assert decoder.size == 11
    assert decoder.unused == b""
    assert decoder.bytes_wanted == 0


def test_empty_body() -> None:
    body, decoder = decode(b"0\r\n\r\n")
    assert (body, decoder.done, decoder.size, decoder.unused) == (b"", True, 0, b"")


@pytest.mark.parametrize(
    ("size_line", "size"),
    [(b"a", 10), (b"A", 10), (b"0a", 10), (b"000A", 10), (b"1F", 31), (b"1f", 31),
     (b"ff", 255)],
)
def test_hex_sizes(size_line: bytes, size: int) -> None:
    data = b"x" * size
    body, decoder = decode(size_line + b"\r\n" + data + b"\r\n0\r\n\r\n")
    assert body == data
    assert decoder.done


def test_sixteen_hex_digits_are_parsed_and_bounded() -> None:
    # 16 digits is the longest size accepted; this one is far over the body limit.
    assert decode_error(b"0000000000000005\r\nhello\r\n", max_body_size=4) == 413
    body, decoder = decode(b"0000000000000005\r\nhello\r\n0\r\n\r\n")
    assert body == b"hello"
    assert decoder.done


@pytest.mark.parametrize(
    "size_line",
    [
        b"5;name=value",
        b"5;name",
        b"5;a=b;c=d;e",
        b'5;a="quoted value"',
        b'5;a="with ; semicolon = and \\" escaped quote"',
        b'5;a=""',
        b"5 ;a=b",
        b"5\t; a = b ;\tc",
        b"5;!#$%&'*+-.^_`|~=x",
    ],
)
def test_chunk_extensions_are_accepted(size_line: bytes) -> None:
    body, decoder = decode(size_line + b"\r\nhello\r\n0;last=1\r\n\r\n")
    assert body == b"hello"
    assert decoder.done


@pytest.mark.parametrize(
    "size_line",
    [b"5;", b"5;=v", b"5;a=", b'5;a="unterminated', b"5;a b", b"5;a=b c", b"5;a=\x00",
     b'5;a="\x00"', b"5;a=\"x\"y", b"5,a", b"5 a"],
)
def test_invalid_chunk_extensions_are_400(size_line: bytes) -> None:
    assert decode_error(size_line + b"\r\nhello\r\n0\r\n\r\n") == 400


@pytest.mark.parametrize(
    "size_line",
    [
        b"0x5",
        b"+5",
        b"-5",
        b"g",
        b"5g",
        b"11111111111111111",  # 17 hex digits
        b"5 ",  # whitespace and no extension
        b"5\t",
        b" 5",
        b"",
        b"\xb2",
        b"5\r",  # CR CR LF
    ],
)
def test_invalid_chunk_sizes_are_400(size_line: bytes) -> None:
    assert decode_error(size_line + b"\r\nhello\r\n0\r\n\r\n") == 400


def test_size_line_ending_in_bare_lf_is_400() -> None:
    assert decode_error(b"5\nhello\r\n0\r\n\r\n") == 400


@pytest.mark.parametrize(
    "pieces",
    [
        [b"5\r\nhelloX\r\n0\r\n\r\n"],
        [b"5\r\nhello\n0\r\n\r\n"],
        [b"5\r\nhello\r0\r\n\r\n"],
        [b"5\r\nhello0\r\n\r\n"],
        [b"5\r\nhello\r", b"X"],
        [b"5\r\nhello", b"\n"],
        [b"5\r\nhello", b"X"],
        [b"5\r\nhello world\r\n"],  # more data than announced
    ],
)
def test_missing_crlf_after_data_is_400(pieces: list[bytes]) -> None:
    assert decode_error(*pieces) == 400


def test_crlf_after_data_may_be_split() -> None:
    decoder = chunked_decoder()
    assert decoder.feed(b"5\r\nhello\r") == [b"hello"]
    assert decoder.bytes_wanted == 1
    assert decoder.feed(b"\n0\r\n\r\n") == []
    assert decoder.done


def test_chunk_line_at_the_limit_is_accepted() -> None:
    line = b"5;abcd\r\n"
    body, decoder = decode(line + b"hello\r\n0\r\n\r\n", max_chunk_line=len(line))
    assert body == b"hello"
    assert decoder.done


@pytest.mark.parametrize(
    "pieces",
    [
        [b"5;abcde\r\nhello\r\n0\r\n\r\n"],  # one byte over, line complete
        [b"5;abcdefghijkl"],  # over before any LF arrives
        [b"5;ab", b"cdefgh", b"ijk"],  # over across feeds
        [b"0000000005\r\n"],
    ],
)
def test_chunk_line_over_the_limit_is_400(pieces: list[bytes]) -> None:
    assert decode_error(*pieces, max_chunk_line=8) == 400


def test_chunk_line_default_limit() -> None:
    assert decode_error(b"5;a=" + b"b" * 5000) == 400


def test_trailers_are_accepted() -> None:
    body, decoder = decode(b"5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\tz \r\n\r\n")
    assert body == b"hello"
    assert decoder.done
    assert decoder.unused == b""


@pytest.mark.parametrize(
    "trailer",
    [b"X : y\r\n", b"bad\r\n", b" folded\r\n", b"X: a\x00b\r\n", b"X: y\n", b"X(: y\r\n",
     b"X: a\rb\r\n"],
)
def test_invalid_trailer_fields_are_400(trailer: bytes) -> None:
    assert decode_error(b"0\r\n" + trailer + b"\r\n") == 400


def test_trailers_are_bounded() -> None:
    big = b"X: " + b"a" * 100 + b"\r\n"
    assert decode_error(b"0\r\n" + big + b"\r\n", max_trailer_size=64) == 431
    # No LF yet: refused before it is buffered past the limit.
    assert decode_error(b"0\r\nX: " + b"a" * 100, max_trailer_size=64) == 431
    # Many small fields add up.
    assert decode_error(b"0\r\n" + b"X: y\r\n" * 20 + b"\r\n", max_trailer_size=64) == 431
    # The default limit (16 KiB).
    assert decode_error(b"0\r\n" + b"Y: b\r\n" * 3000 + b"\r\n") == 431
    body, decoder = decode(b"0\r\n" + b"X: y\r\n" * 5 + b"\r\n", max_trailer_size=64)
    assert (body, decoder.done) == (b"", True)


def test_body_limit_is_enforced_as_soon_as_announced() -> None:
    decoder = chunked_decoder(max_body_size=10)
    with pytest.raises(HTTPError) as info:
        decoder.feed(b"b\r\n")  # no data yet: the size line alone is too much
    assert info.value.status == 413


def test_body_limit_counts_all_chunks() -> None:
    assert decode_error(b"5\r\nhello\r\n6\r\n", max_body_size=10) == 413
    body, decoder = decode(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", max_body_size=10)
    assert body == b"helloworld"
    assert decoder.done


def test_huge_chunk_size_is_413() -> None:
    assert decode_error(b"ffffffffffffffff\r\n") == 413


def test_feed_returns_data_as_it_arrives() -> None:
    decoder = chunked_decoder()
    assert decoder.feed(b"5\r\nhe") == [b"he"]
    assert decoder.feed(b"l") == [b"l"]
    assert decoder.feed(b"lo\r\n3\r\nabc") == [b"lo", b"abc"]
    assert decoder.size == 8
    assert not decoder.done
    assert decoder.feed(b"\r\n0\r\n\r\n") == []
    assert decoder.done


def test_bytes_wanted_values() -> None:
    decoder = chunked_decoder()
    assert decoder.bytes_wanted == 0  # a size line: read through LF
    decoder.feed(b"5\r\n")
    assert decoder.bytes_wanted == 5
    decoder.feed(b"hel")
    assert decoder.bytes_wanted == 2
    decoder.feed(b"lo")
    assert decoder.bytes_wanted == 2  # the CRLF after the data
    decoder.feed(b"\r")
    assert decoder.bytes_wanted == 1
    decoder.feed(b"\n")
    assert decoder.bytes_wanted == 0
    decoder.feed(b"0\r\n")
    assert decoder.bytes_wanted == 0  # trailer section: read through LF
    decoder.feed(b"\r\n")
    assert decoder.done
    assert decoder.unused == b""


def _read_like_a_server(stream: io.BytesIO, decoder: ChunkedDecoder) -> bytes:
    out = []
    while not decoder.done:
        wanted = decoder.bytes_wanted
        data = stream.read(wanted) if wanted else stream.readline()
        assert data, "decoder asked for more than the message holds"
        out += decoder.feed(data)
    return b"".join(out)


@pytest.mark.parametrize(
    "message",
    [
        b"0\r\n\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
        b"5;ext=1\r\nhello\r\n1\r\n\n\r\n0\r\nX: y\r\nZ: w\r\n\r\n",
        b"3\r\n\r\n\r\r\n0\r\n\r\n",
        encode_chunked([b"a" * 1000, b"b" * 7, b"\r\n0\r\n\r\n"]),
    ],
)
def test_bytes_wanted_never_over_reads(message: bytes) -> None:
    following = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    stream = io.BytesIO(message + following)
    decoder = chunked_decoder()
    _read_like_a_server(stream, decoder)
    assert decoder.unused == b""
    assert stream.read() == following


def test_bytes_after_the_end_are_kept_in_unused() -> None:
    body, decoder = decode(b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n")
    assert body == b"hello"
    assert decoder.done
    assert decoder.unused == b"GET / HTTP/1.1\r\n"
    assert decoder.feed(b"Host: a\r\n") == []
    assert decoder.unused == b"GET / HTTP/1.1\r\nHost: a\r\n"


def test_unused_after_trailers() -> None:
    _, decoder = decode(b"0\r\nX: y\r\n\r\nPOST")
    assert decoder.done
    assert decoder.unused == b"POST"


def test_chunk_helper_round_trips() -> None:
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"x" * 255)[:4] == b"ff\r\n"
    assert chunk(b"x" * 4096)[:6] == b"1000\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"
    message = chunk(b"hello") + chunk(b" ") + chunk(b"world") + LAST_CHUNK
    body, decoder = decode(message)
    assert (body, decoder.done, decoder.unused) == (b"hello world", True, b"")


# -- ChunkedDecoder: properties ----------------------------------------------------------


@st.composite
def chunked_messages(draw: st.DrawFn) -> tuple[bytes, bytes, list[int]]:
    """(body, encoded message, split points)."""
    chunks = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=8))
    parts = []
    for data in chunks:
        size = b"%x" % len(data)
        if draw(st.booleans()):
            size = size.upper()
        size = b"0" * draw(st.integers(0, 3)) + size
        ext = draw(st.sampled_from([b"", b";a", b";a=b", b' ; q="x;\\"y"', b";a=1;b"]))
        parts.append(size + ext + b"\r\n" + data + b"\r\n")
    trailer = draw(st.sampled_from([b"", b"X: y\r\n", b"A: 1\r\nB:\r\n"]))
    ext = draw(st.sampled_from([b"", b";end"]))
    message = b"".join(parts) + b"0" + ext + b"\r\n" + trailer + b"\r\n"
    splits = sorted(draw(st.lists(st.integers(0, len(message)), max_size=12)))
    return b"".join(chunks), message, splits


@PROPERTY
@given(chunked_messages(), st.binary(max_size=10))
def test_chunked_body_split_anywhere_decodes_the_same(
    case: tuple[bytes, bytes, list[int]], after: bytes
) -> None:
    body, message, splits = case
    decoder = chunked_decoder()
    out: list[bytes] = []
    for start, end in itertools.pairwise([0, *splits, len(message)]):
        out += decoder.feed(message[start:end])
    assert b"".join(out) == body
    assert all(out)  # never an empty piece of data
    assert decoder.done
    assert decoder.size == len(body)
    assert decoder.unused == b""
    decoder.feed(after)
    assert decoder.unused == after


@PROPERTY
@given(chunked_messages())
def test_reading_by_bytes_wanted_stops_exactly_at_the_end(
    case: tuple[bytes, bytes, list[int]]
) -> None:
    body, message, _ = case
    stream = io.BytesIO(message + b"NEXT")
    decoder = chunked_decoder()
    assert _read_like_a_server(stream, decoder) == body
    assert decoder.unused == b""
    assert stream.read() == b"NEXT"


_CHUNK_PIECES = st.sampled_from([
    b"0", b"5", b"a", b"F", b"ff", b"fffffffffffffffff", b"x", b"\r\n", b"\r", b"\n", b";",
    b"=", b'"', b"\\", b" ", b"\t", b"hello", b"X: y", b":", b"\x00", b"\xff", b"-", b"+",
])
_CHUNKISH = st.lists(_CHUNK_PIECES, max_size=30).map(b"".join)


@PROPERTY
@given(st.lists(st.one_of(st.binary(max_size=100), _CHUNKISH), min_size=1, max_size=5))
def test_chunked_decoder_raises_only_http_error(pieces: list[bytes]) -> None:
    decoder = chunked_decoder(max_chunk_line=32, max_trailer_size=64, max_body_size=256)
    total = 0
    try:
        for piece in pieces:
            total += sum(map(len, decoder.feed(piece)))
    except HTTPError as exc:
        assert exc.status in {400, 413, 431}
        return
    assert total <= 256
    if not decoder.done:
        assert decoder.unused == b""


def test_chunk_extension_budget_exactly_and_one_past() -> None:
    ext = b";" + b"e" * 9  # 10 bytes of extension per chunk
    body = b"".join(b"1" + ext + b"\r\nx\r\n" for _ in range(10)) + b"0\r\n\r\n"
    decoder = chunked_decoder(max_chunk_extensions=100)
    assert b"".join(decoder.feed(body)) == b"x" * 10
    assert decoder.done
    decoder = chunked_decoder(max_chunk_extensions=99)
    with pytest.raises(HTTPError) as info:
        decoder.feed(body)
    assert info.value.status == 400
