"""The chunked transfer coding of request bodies (RFC 9112 section 7.1), without I/O:
bytes in, body data out, every limit enforced as the bytes arrive."""

from __future__ import annotations

import re

from .http11 import FIELD_LINE, TOKEN, HTTPError

_QUOTED = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*"'
_CHUNK_EXT = f"[ \t]*+;[ \t]*+{TOKEN}(?:[ \t]*+=[ \t]*+(?:{TOKEN}|{_QUOTED}))?+"
_CHUNK_LINE = re.compile(f"([0-9A-Fa-f]{{1,16}})((?:{_CHUNK_EXT})*+)\r\n")

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    """Incremental decoder of a chunked body (RFC 9112 §7.1).

    ``feed`` takes bytes split anywhere and returns the body data they complete.  To let
    a stream reader stop exactly at the end of the message, ``bytes_wanted`` says how
    many bytes may be fed next (0: read up to and including the next LF).  Bytes fed
    after the end are kept in ``unused``.  The limits are options of Config, which owns
    their defaults.
    """

    __slots__ = ("_buf", "_ext_bytes", "_max_body", "_max_ext", "_max_line", "_max_trailer",
                 "_remaining", "_state", "_total", "_trailer_bytes", "unused")

    def __init__(self, *, max_chunk_line: int, max_trailer_size: int, max_body_size: int,
                 max_chunk_extensions: int) -> None:
        self._ext_bytes = 0
        self._max_ext = max_chunk_extensions
        self._state = _SIZE
        self._buf = b""
        self._remaining = 0
        self._total = 0
        self._trailer_bytes = 0
        self._max_line = max_chunk_line
        self._max_trailer = max_trailer_size
        self._max_body = max_body_size
        self.unused = b""

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def size(self) -> int:
        """Body bytes announced by the chunk-size lines read so far."""
        return self._total

    @property
    def bytes_wanted(self) -> int:
        if self._state == _DATA:
            return self._remaining
        if self._state == _DATA_END:
            return 2 - len(self._buf)
        return 0

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        buf = self._buf + data if self._buf else data
        self._buf = b""
        while buf:
            state = self._state
            if state == _DATA:
                take = buf[: self._remaining]
                out.append(take)
                self._remaining -= len(take)
                buf = buf[len(take):]
                if not self._remaining:
                    self._state = _DATA_END
            elif state == _DATA_END:
                if len(buf) < 2:
                    if buf != b"\r"[: len(buf)]:
                        raise HTTPError(400, "missing CRLF after chunk data")
                    self._buf = buf
                    break
                if buf[:2] != b"\r\n":
                    raise HTTPError(400, "missing CRLF after chunk data")
                buf = buf[2:]
                self._state = _SIZE
            elif state == _DONE:
                self.unused += buf
                break
            else:
                end = buf.find(b"\n")
                limit = self._max_line if state == _SIZE else self._max_trailer
                if end < 0:
                    if len(buf) > limit or (state == _TRAILER and
                                            self._trailer_bytes + len(buf) > limit):
                        raise HTTPError(431 if state == _TRAILER else 400,
                                        "chunk trailer too large" if state == _TRAILER
                                        else "chunk size line too long")
                    self._buf = buf
                    break
                line, buf = buf[: end + 1], buf[end + 1:]
                if state == _SIZE:
                    self._size_line(line)
                else:
                    self._trailer_line(line)
        return out

    def _size_line(self, line: bytes) -> None:
        if len(line) > self._max_line:
            raise HTTPError(400, "chunk size line too long")
        m = _CHUNK_LINE.fullmatch(line.decode("latin-1"))
        if m is None:
            raise HTTPError(400, "invalid chunk size line")
        size = int(m.group(1), 16)
        if m.group(2):
            self._ext_bytes += len(m.group(2))
            if self._ext_bytes > self._max_ext:
                raise HTTPError(400, "too many chunk extension bytes")
        self._total += size
        if self._total > self._max_body:
            raise HTTPError(413, "request body too large")
        if size:
            self._remaining = size
            self._state = _DATA
        else:
            self._state = _TRAILER

    def _trailer_line(self, line: bytes) -> None:
        self._trailer_bytes += len(line)
        if self._trailer_bytes > self._max_trailer:
            raise HTTPError(431, "chunk trailer too large")
        if line == b"\r\n":
            self._state = _DONE
            return
        if not line.endswith(b"\r\n") or FIELD_LINE.fullmatch(line[:-2].decode("latin-1")) is None:
            raise HTTPError(400, "invalid trailer field")
