"""Behind a reverse proxy: the client's address, scheme and host from forwarding headers.

Sans-I/O: :func:`apply_proxy_headers` rewrites a WSGI environ in place, given the
proxies the operator trusts (:class:`TrustedProxies`).  Nothing here touches a socket,
resolves a name or raises on request input.

Rules, in the order they are applied:

1. **Only a trusted peer is believed.**  If ``REMOTE_ADDR`` (the socket peer, ``""`` for a
   Unix socket) is not in the trusted set, nothing changes: forwarding headers sent by
   anyone else are ignored, whatever they claim.
2. **The ``X-Forwarded-*`` family wins over ``Forwarded`` (RFC 7239).**  Most proxies set
   ``X-Forwarded-For`` and pass other headers through, so when any ``X-Forwarded-*``
   header is present, ``Forwarded`` is ignored entirely; otherwise a client could choose
   its own address by sending ``Forwarded`` through such a proxy.  ``Forwarded`` is read
   only when none of them is there.  Its elements are split at every comma and parsed
   one by one, from the right, only as far as the walk below goes: a client's unbalanced
   quote or stray garbage on the left cannot swallow or spoil the elements proxies
   appended after it.
3. **The client is found walking the chain from the right.**  Each proxy appends the
   address it received the request from, so the rightmost entries are the most
   trustworthy.  Entries that are themselves trusted proxies are skipped; the first
   untrusted address is the client.  If every entry is trusted, the leftmost one is.
   An entry that is not an IP address (``unknown``, an obfuscated ``_name``, garbage, a
   malformed ``Forwarded`` element or one without ``for=``) stops the walk: the last
   address walked past is used, or, if there is none, ``REMOTE_ADDR`` is left alone.
   Empty list members (``a,,b``) are skipped.  Only the last :data:`MAX_HOPS` members
   are looked at; a walk that gets that far ends there, as if the chain began there.
   ``REMOTE_ADDR`` never receives anything but a valid IPv4 / IPv6 address (IPv6 in
   canonical form, no brackets, no zone; an IPv4-mapped address as plain IPv4).  Under
   ``"*"`` every address is trusted, so the *leftmost* entry wins: it is whatever the
   first proxy received, which the client may have forged.
4. **A port travels with its address.**  ``1.2.3.4:5678``, ``[2001:db8::1]:4711``: the
   port goes to ``REMOTE_PORT``; an entry without a port (or with an obfuscated one)
   leaves ``REMOTE_PORT`` as it was.
5. **Scheme and host describe the same hop as the address.**  With ``Forwarded``,
   ``proto=`` and ``host=`` come from the element that gave the address, or from the
   last element (if well-formed) when no address was taken.  With
   ``X-Forwarded-Proto``, the value at the same position *from the right* as the chosen
   ``X-Forwarded-For`` entry is used (both lists grow by one per proxy), else the last
   value.  ``X-Forwarded-Host``: the last value.
6. **Only sane values are applied.**  The scheme must be ``http`` or ``https``
   (``ws``/``wss`` count as ``http``/``https``, any case); the host must be
   ``name[:port]`` or ``[ipv6][:port]`` with nothing else in it (no space, ``/``, ``@``,
   control character...).  A value that fails is ignored on its own; the other fields
   still apply.

``SERVER_NAME`` and ``SERVER_PORT`` are left alone (PEP 3333 URL reconstruction prefers
``HTTP_HOST``), and so are the forwarding headers themselves.

A trusted proxy must *set or strip* every header it wants believed: a header it passes
through unchanged is the client's.  In particular, a proxy that only sets ``Forwarded``
must drop a client's ``X-Forwarded-*`` headers (rule 2), and one that does not set
``X-Forwarded-Host`` / ``X-Forwarded-Proto`` must drop those.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

__all__ = [
    "DEFAULT_TRUSTED",
    "MAX_ELEMENT",
    "MAX_HOPS",
    "TrustedProxies",
    "apply_proxy_headers",
    "parse_forwarded",
    "parse_forwarded_element",
]

DEFAULT_TRUSTED = "127.0.0.1,::1"
# The most members of a forwarding list looked at, nearest first: real chains are a
# handful of proxies long, and a client can make its own part as long as a header allows.
MAX_HOPS = 32
# The longest Forwarded element parsed (for=, by=, proto=, a 255-byte host= and room for
# extensions); a longer one is malformed.
MAX_ELEMENT = 1024

_MAPPED = IPv6Network("::ffff:0:0/96")
# Exactly the dotted quads ipaddress accepts (no leading zeros, ASCII digits only).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


class TrustedProxies:
    """The peers whose forwarding headers are believed.

    Built from a comma-separated list: IP addresses (``127.0.0.1``, ``::1``), networks
    (``10.0.0.0/8``, ``fd00::/8``), ``*`` (everyone) and ``unix`` (peers on a Unix domain
    socket, whose ``REMOTE_ADDR`` is ``""``).  Blank entries are skipped, so ``""``
    trusts nobody.  IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) match their IPv4
    form, in either direction.  Everything is parsed once, here: a lookup is one set
    probe for an address spelled as configured, and otherwise integer and mask
    arithmetic; :mod:`ipaddress` only parses IPv6 text.
    """

    __slots__ = ("_exact", "_exact4", "_exact6", "_networks", "_v4", "_v6", "everyone",
                 "unix")

    def __init__(self, text: str = DEFAULT_TRUSTED) -> None:
        everyone = unix = False
        singles: dict[str, IPv4Address | IPv6Address] = {}
        networks: list[IPv4Network | IPv6Network] = []
        for raw in text.split(","):
            entry = raw.strip()
            if not entry:
                continue
            if entry == "*":
                everyone = True
            elif entry.lower() == "unix":
                unix = True
            else:
                net = _parse_entry(entry)
                if net.num_addresses == 1:
                    singles[str(net.network_address)] = net.network_address
                elif net not in networks:
                    networks.append(net)
        self.everyone = everyone
        self.unix = unix
        self._exact = frozenset(singles)  # canonical text: the fast path
        self._exact4 = frozenset(int(ip) for ip in singles.values() if ip.version == 4)
        self._exact6 = frozenset(int(ip) for ip in singles.values() if ip.version == 6)
        self._networks = tuple(networks)
        self._v4 = tuple((int(n.network_address), int(n.netmask))
                         for n in networks if n.version == 4)
        self._v6 = tuple((int(n.network_address), int(n.netmask))
                         for n in networks if n.version == 6)

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        """Parse ``text``; :class:`ValueError` names the first entry that is not valid."""
        return cls(text)

    def __contains__(self, host: str) -> bool:
        """Whether the peer address ``host`` (no port, no brackets) is trusted."""
        if self.everyone or host in self._exact:
            return True
        if not host:
            return self.unix
        if ":" not in host:
            # Canonical IPv4 text is unique, so an exact miss is final without networks.
            return bool(self._v4) and _IPV4.fullmatch(host) is not None and self._in4(host)
        try:
            ip = IPv6Address(host)
        except ValueError:
            return False
        return self._trusts6(int(ip))  # int() drops a zone ID (fe80::1%eth0)

    def _in4(self, address: str) -> bool:
        """``address``, a valid dotted quad, is in a trusted IPv4 network."""
        a, b, c, d = address.split(".")
        value = int(a) << 24 | int(b) << 16 | int(c) << 8 | int(d)
        return any(value & mask == net for net, mask in self._v4)

    def _trusts6(self, value: int) -> bool:
        """The IPv6 address ``value`` is trusted (itself, or as IPv4 when mapped)."""
        if value >> 32 == 0xFFFF:  # ::ffff:a.b.c.d
            low = value & 0xFFFFFFFF
            if low in self._exact4 or any(low & mask == net for net, mask in self._v4):
                return True
        return value in self._exact6 or any(value & mask == net for net, mask in self._v6)

    def _hop(self, address: str) -> tuple[bool, IPv6Address | None] | None:
        """Whether an address read from a header is trusted, with its parsed form when
        it is IPv6 (to canonicalize later); None if it is not a plain IP address (zone
        IDs are refused too)."""
        if address in self._exact:
            return True, None  # canonical text of a valid address: nothing to rewrite
        if ":" not in address:
            if _IPV4.fullmatch(address) is None:
                return None
            return self.everyone or (bool(self._v4) and self._in4(address)), None
        if "%" in address:
            return None
        try:
            ip = IPv6Address(address)
        except ValueError:
            return None
        return self.everyone or self._trusts6(int(ip)), ip

    def __str__(self) -> str:
        parts = ["*"] if self.everyone else []
        parts += sorted(self._exact, key=_sort_key)
        parts += [str(net) for net in self._networks]
        if self.unix:
            parts.append("unix")
        return ",".join(parts)

    def __repr__(self) -> str:
        return f"TrustedProxies({str(self)!r})"

    def _key(self) -> tuple[object, ...]:
        return self.everyone, self.unix, self._exact, frozenset(self._networks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrustedProxies):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _sort_key(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)


def _parse_entry(entry: str) -> IPv4Network | IPv6Network:
    def bad(reason: str) -> ValueError:
        return ValueError(
            f"invalid trusted proxy {entry!r}: {reason}; expected an IP address, a network "
            "such as 10.0.0.0/8, '*' or 'unix'")

    text = entry
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "%" in text:
        raise bad("IPv6 zone IDs are not supported")
    try:
        net = ipaddress.ip_network(text)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise bad("not an IP address or network") from None
        raise bad(f"{exc} (did you mean {loose}?)") from None
    if isinstance(net, IPv6Network) and net.prefixlen >= 96 and net.subnet_of(_MAPPED):
        # ::ffff:10.0.0.0/104 is 10.0.0.0/8: keep one form, the one lookups use.
        return IPv4Network((int(net.network_address) & 0xFFFFFFFF, net.prefixlen - 96))
    return net


# -- one hop of a chain -------------------------------------------------------------

_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")


def _split_node(text: str) -> tuple[str, str | None] | None:
    """``(address, port)`` of ``1.2.3.4``, ``1.2.3.4:80``, ``[v6]``, ``[v6]:80`` or a bare
    IPv6 address; the address is not validated yet.  None if the shape is wrong."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        address, rest = text[1:end], text[end + 1:]
        if ":" not in address:
            return None
        if not rest:
            return address, None
        if rest[0] != ":":
            return None
        port = rest[1:]
    else:
        colons = text.count(":")
        if colons != 1:
            return text, None  # IPv4 without a port, or a bare IPv6 address
        address, _, port = text.partition(":")
    if port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535:
        return address, str(int(port))
    if _OBFUSCATED.fullmatch(port):
        return address, None
    return None


def _client(nodes: Iterable[str | None],
            trusted: TrustedProxies) -> tuple[int, str, str | None] | None:
    """Walk ``nodes``, nearest hop first, skipping trusted proxies: ``(distance, address,
    port)`` of the client, ``distance`` counting from 1 at the nearest hop; None if the
    nearest entry is not an address."""
    found: tuple[int, str, str | None, IPv6Address | None] | None = None
    for distance, node in enumerate(nodes, 1):
        if node is None:
            break
        split = _split_node(node)
        if split is None:
            break
        hop = trusted._hop(split[0])
        if hop is None:
            break
        found = (distance, split[0], split[1], hop[1])
        if not hop[0]:
            break
    if found is None:
        return None
    distance, address, port, ip6 = found
    if ip6 is not None:  # canonical IPv6, or IPv4 when IPv4-mapped
        address = str(ip6.ipv4_mapped or ip6)
    return distance, address, port


# -- field values -------------------------------------------------------------------

_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_HOST = re.compile(r"(?:[A-Za-z0-9._-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\])(?::([0-9]{1,5}))?")


def _scheme(value: str | None) -> str | None:
    return None if value is None else _SCHEMES.get(value.lower())


def _host(value: str | None) -> str | None:
    if value is None:
        return None
    m = _HOST.fullmatch(value)
    if m is None or (m.group(1) is not None and int(m.group(1)) > 65535):
        return None
    return value


def _right_to_left(value: str) -> Iterator[str]:
    """The non-empty members of a comma-separated header value, whitespace trimmed,
    last first, among its last :data:`MAX_HOPS` members (empty members are skipped, as
    RFC 9110 §5.6.1 asks, but count towards that limit)."""
    parts = value.rsplit(",", MAX_HOPS)
    first = 0 if len(parts) <= MAX_HOPS else 1  # parts[0] may be everything left over
    for index in range(len(parts) - 1, first - 1, -1):
        item = parts[index].strip(" \t")
        if item:
            yield item


def _from_right(value: str, distance: int) -> str | None:
    """The ``distance``-th member of a list header, counting from 1 at the right."""
    for seen, item in enumerate(_right_to_left(value), 1):
        if seen == distance:
            return item
    return None


# -- Forwarded (RFC 7239) -----------------------------------------------------------

_TCHAR = r"!#$%&'*+.^_`|~0-9A-Za-z\-"
# One optional ``name=value`` pair, then ';' or the end.  Unquoted values may also hold
# ':', '[' and ']', so that hand-written proxy configs that forget to quote
# ``for=1.2.3.4:80`` or ``for=[::1]`` still parse; nothing becomes ambiguous.
_PAIR = re.compile(
    rf"[ \t]*(?:([{_TCHAR}]+)=([{_TCHAR}:\[\]]+|"
    r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*"'
    r")[ \t]*)?(;|\Z)"
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)


def parse_forwarded_element(text: str) -> dict[str, str] | None:
    """The ``name=value`` pairs of one ``Forwarded`` element (the text between two
    commas), names lower-cased, values unquoted; None if it is malformed, including a
    parameter given twice, or longer than any proxy writes (:data:`MAX_ELEMENT`)."""
    if len(text) > MAX_ELEMENT:
        return None
    pairs: dict[str, str] = {}
    pos = 0
    match = _PAIR.match
    while True:
        m = match(text, pos)
        if m is None:
            return None
        name, raw, sep = m.group(1, 2, 3)
        if name is not None:
            key = name.lower()
            if key in pairs:
                return None
            if raw[0] == '"':
                raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1])
            pairs[key] = raw
        if not sep:
            return pairs
        pos = m.end()


def parse_forwarded(value: str) -> list[dict[str, str] | None]:
    """The elements of a ``Forwarded`` value, in order, each parsed on its own (None
    where malformed); blank elements are dropped.

    Elements are split at every comma, quoted or not: a proxy only ever appends to the
    right, so a client's unbalanced quote must not swallow the elements added after it.
    The price is that a quoted comma (``ext="a,b"``) makes its element malformed."""
    return [parse_forwarded_element(chunk) for chunk in value.split(",")
            if chunk.strip(" \t")]


def _apply_forwarded(environ: dict[str, Any], value: str, trusted: TrustedProxies) -> None:
    walked: list[dict[str, str] | None] = []  # parsed lazily, nearest element first

    def nodes() -> Iterator[str | None]:
        for chunk in _right_to_left(value):
            element = parse_forwarded_element(chunk)
            walked.append(element)
            yield None if element is None else element.get("for")

    hop = _client(nodes(), trusted)
    if hop is None:
        element = walked[0] if walked else None
    else:
        distance, address, port = hop
        element = walked[distance - 1]
        environ["REMOTE_ADDR"] = address
        if port is not None:
            environ["REMOTE_PORT"] = port
    if element is None:
        return
    scheme = _scheme(element.get("proto"))
    if scheme is not None:
        environ["wsgi.url_scheme"] = scheme
    host = _host(element.get("host"))
    if host is not None:
        environ["HTTP_HOST"] = host


# -- the entry point ----------------------------------------------------------------


def apply_proxy_headers(environ: dict[str, Any], trusted: TrustedProxies) -> None:
    """Rewrite ``REMOTE_ADDR`` (and ``REMOTE_PORT``), ``wsgi.url_scheme`` and
    ``HTTP_HOST`` from ``Forwarded`` / ``X-Forwarded-For`` / ``-Proto`` / ``-Host`` when
    the peer is trusted; the rules are in this module's docstring.  Never raises on
    header content; changes nothing when none of the headers is present."""
    forwarded = environ.get("HTTP_FORWARDED")
    forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
    forwarded_proto = environ.get("HTTP_X_FORWARDED_PROTO")
    forwarded_host = environ.get("HTTP_X_FORWARDED_HOST")
    if (forwarded is None and forwarded_for is None and forwarded_proto is None
            and forwarded_host is None):
        return
    peer = environ.get("REMOTE_ADDR")
    if peer is None or peer not in trusted:
        return
    if forwarded_for is None and forwarded_proto is None and forwarded_host is None:
        # Only RFC 7239: the X-Forwarded-* family, which most proxies set, wins when both
        # are present, so that a proxy that sets one and passes the other through does
        # not let the client choose.
        if forwarded.strip(" \t"):  # type: ignore[union-attr]
            _apply_forwarded(environ, forwarded, trusted)  # type: ignore[arg-type]
        return

    distance = 0  # of the chosen X-Forwarded-For entry, from the right; 0: none chosen
    if forwarded_for is not None:
        hop = _client(_right_to_left(forwarded_for), trusted)
        if hop is not None:
            distance, address, port = hop
            environ["REMOTE_ADDR"] = address
            if port is not None:
                environ["REMOTE_PORT"] = port
    if forwarded_proto is not None:
        proto = _from_right(forwarded_proto, distance) if distance > 1 else None
        scheme = _scheme(proto or _from_right(forwarded_proto, 1))
        if scheme is not None:
            environ["wsgi.url_scheme"] = scheme
    if forwarded_host is not None:
        host = _host(_from_right(forwarded_host, 1))
        if host is not None:
            environ["HTTP_HOST"] = host
