"""Unit tests of ``aiowsgi.proxy``: which peers are trusted, and what their forwarding
headers do to the environ.  No sockets: environs in, environs out."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiowsgi import proxy
from aiowsgi.proxy import (
    DEFAULT_TRUSTED,
    MAX_ELEMENT,
    MAX_HOPS,
    TrustedProxies,
    apply_proxy_headers,
    parse_forwarded,
    parse_forwarded_element,
)

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# The trust set most tests use: the loopback proxy, plus an internal network of proxies.
CHAIN = "127.0.0.1,::1,10.0.0.0/8,fd00::/8"

PEER_PORT = "50000"
BACKEND_HOST = "backend:8000"

_HEADER_KEYS = {
    "forwarded": "HTTP_FORWARDED",
    "xff": "HTTP_X_FORWARDED_FOR",
    "xfp": "HTTP_X_FORWARDED_PROTO",
    "xfh": "HTTP_X_FORWARDED_HOST",
}


def make_environ(peer: str = "127.0.0.1", *, scheme: str = "http",
                 **headers: str | None) -> dict[str, Any]:
    """An environ as ``wsgi.new_call`` builds it, with the given forwarding headers
    (keyword names: forwarded, xff, xfp, xfh)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "backend",
        "SERVER_PORT": "8000",
        "REMOTE_ADDR": peer,
        "REMOTE_PORT": PEER_PORT,
        "wsgi.url_scheme": scheme,
        "HTTP_HOST": BACKEND_HOST,
    }
    for name, value in headers.items():
        if value is not None:
            environ[_HEADER_KEYS[name]] = value
    return environ


def apply(trusted: str = CHAIN, peer: str = "127.0.0.1", *, scheme: str = "http",
          **headers: str | None) -> dict[str, Any]:
    environ = make_environ(peer, scheme=scheme, **headers)
    apply_proxy_headers(environ, TrustedProxies.parse(trusted))
    return environ


def seen(environ: dict[str, Any]) -> tuple[str, str, str, str]:
    """What the application sees: (REMOTE_ADDR, REMOTE_PORT, wsgi.url_scheme, HTTP_HOST)."""
    return (environ["REMOTE_ADDR"], environ["REMOTE_PORT"], environ["wsgi.url_scheme"],
            environ["HTTP_HOST"])


UNCHANGED = ("127.0.0.1", PEER_PORT, "http", BACKEND_HOST)


# -- TrustedProxies: parsing ----------------------------------------------------------


def test_default_is_loopback_only() -> None:
    assert DEFAULT_TRUSTED == "127.0.0.1,::1"
    assert TrustedProxies() == TrustedProxies.parse(DEFAULT_TRUSTED)
    assert str(TrustedProxies()) == "127.0.0.1,::1"


@pytest.mark.parametrize(("host", "trusted"), [
    ("127.0.0.1", True),
    ("::1", True),
    ("0:0:0:0:0:0:0:1", True),       # another spelling of ::1
    ("::ffff:127.0.0.1", True),      # IPv4-mapped, as a dual-stack socket reports it
    ("::ffff:7f00:1", True),
    ("::1%lo", True),                # a zone ID from getpeername()
    ("127.0.0.2", False),            # the default is the two addresses, not 127/8
    ("10.0.0.1", False),
    ("192.168.1.7", False),
    ("2001:db8::1", False),
    ("::ffff:10.0.0.1", False),
    ("", False),                     # a Unix socket peer needs "unix"
    ("localhost", False),            # names are never resolved
])
def test_default_trusts_only_loopback(host: str, trusted: bool) -> None:
    assert (host in TrustedProxies()) is trusted


@pytest.mark.parametrize(("spec", "host", "trusted"), [
    # networks
    ("10.0.0.0/8", "10.0.0.1", True),
    ("10.0.0.0/8", "10.255.255.255", True),
    ("10.0.0.0/8", "11.0.0.0", False),
    ("10.0.0.0/8", "9.255.255.255", False),
    ("10.0.0.0/8", "::ffff:10.1.2.3", True),
    ("10.0.0.0/8", "::ffff:11.1.2.3", False),
    ("10.0.0.0/8,192.168.1.7", "192.168.1.7", True),
    ("10.0.0.0/8,192.168.1.7", "192.168.1.8", False),
    ("172.16.0.0/12", "172.31.255.1", True),
    ("172.16.0.0/12", "172.32.0.1", False),
    ("192.168.1.7/32", "192.168.1.7", True),
    ("0.0.0.0/0", "203.0.113.9", True),
    ("0.0.0.0/0", "2001:db8::1", False),
    # IPv6
    ("2001:db8::/32", "2001:db8:1::5", True),
    ("2001:db8::/32", "2001:DB8:1::5", True),
    ("2001:db8::/32", "2001:db9::1", False),
    ("fd00::/8", "fdab:cdef::1", True),
    ("fe80::/10", "fe80::1%eth0", True),
    ("fe80::1", "fe80::1%eth0", True),
    ("2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001", True),
    ("[2001:db8::1]", "2001:db8::1", True),
    ("::/0", "2001:db8::1", True),
    ("::/0", "::ffff:1.2.3.4", True),
    ("::/0", "1.2.3.4", False),      # an IPv6 network does not cover plain IPv4
    # IPv4-mapped entries mean their IPv4 form, and the other way round
    ("::ffff:127.0.0.1", "127.0.0.1", True),
    ("::ffff:10.0.0.0/104", "10.200.0.1", True),
    ("::ffff:10.0.0.0/104", "::ffff:10.200.0.1", True),
    ("::ffff:10.0.0.0/104", "11.0.0.1", False),
    # "*" and "unix"
    ("*", "203.0.113.9", True),
    ("*", "2001:db8::1", True),
    ("*", "", True),
    ("*", "not an address", True),
    ("unix", "", True),
    ("UNIX", "", True),
    ("unix", "127.0.0.1", False),
    ("unix", "unix", False),
    ("127.0.0.1,unix", "", True),
    ("127.0.0.1,unix", "127.0.0.1", True),
    # spacing and empty entries
    ("  10.0.0.1 , 10.0.0.2  ", "10.0.0.2", True),
    ("10.0.0.1,,", "10.0.0.1", True),
    ("", "127.0.0.1", False),
    ("", "", False),
    (" , ", "127.0.0.1", False),
])
def test_membership(spec: str, host: str, trusted: bool) -> None:
    assert (host in TrustedProxies.parse(spec)) is trusted


@pytest.mark.parametrize("host", [
    "localhost", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "256.0.0.1", "1.2.3.-4",
    "127.0.0.1 ", " 127.0.0.1", "127.0.0.1:80", "[::1]", "[127.0.0.1]", "::1%",
    "127.0.0.1\x00", "\uff11\uff12\uff17.0.0.1", "10.0.0.1/8", "::ffff:127.0.0.1:80",
    "1::2::3", ":::", "0x7f000001", "2130706433", "unix", "*", "10.0.0.1\n",
])
def test_invalid_addresses_are_never_trusted(host: str) -> None:
    trusted = TrustedProxies.parse("127.0.0.1,::1,10.0.0.0/8,fd00::/8,0.0.0.0/1,unix")
    assert host not in trusted
    assert host in TrustedProxies.parse("*")


@pytest.mark.parametrize(("spec", "bad"), [
    ("localhost", "localhost"),
    ("127.0.0.1,bogus,::1", "bogus"),
    ("10.0.0.0/33", "10.0.0.0/33"),
    ("300.1.1.1", "300.1.1.1"),
    ("1.2.3.4 5.6.7.8", "1.2.3.4 5.6.7.8"),
    ("fe80::1%eth0", "fe80::1%eth0"),
    ("unix:/run/app.sock", "unix:/run/app.sock"),
    ("*.example.com", "*.example.com"),
    ("0x7f000001", "0x7f000001"),
    ("127.0.0.1:8000", "127.0.0.1:8000"),
    ("10.0.0.0/8/8", "10.0.0.0/8/8"),
    ("::1;127.0.0.1", "::1;127.0.0.1"),
])
def test_parse_errors_name_the_entry(spec: str, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid trusted proxy") as info:
        TrustedProxies.parse(spec)
    assert repr(bad) in str(info.value)
    assert "'*' or 'unix'" in str(info.value)


def test_parse_error_suggests_the_network_for_host_bits() -> None:
    with pytest.raises(ValueError, match=re.escape("did you mean 10.0.0.0/8?")):
        TrustedProxies.parse("10.0.0.1/8")


@pytest.mark.parametrize(("spec", "normal"), [
    ("127.0.0.1,::1", "127.0.0.1,::1"),
    ("::1 , 127.0.0.1", "127.0.0.1,::1"),
    ("10.0.0.0/8,192.168.1.7,unix", "192.168.1.7,10.0.0.0/8,unix"),
    ("10.0.0.0/8,10.0.0.0/8", "10.0.0.0/8"),
    ("2001:0DB8::1/128", "2001:db8::1"),
    ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
    ("*", "*"),
    ("*,10.0.0.1", "*,10.0.0.1"),
    ("", ""),
])
def test_normal_form_round_trips(spec: str, normal: str) -> None:
    trusted = TrustedProxies.parse(spec)
    assert str(trusted) == normal
    assert repr(trusted) == f"TrustedProxies({normal!r})"
    again = TrustedProxies.parse(str(trusted))
    assert again == trusted
    assert hash(again) == hash(trusted)


def test_equality() -> None:
    assert TrustedProxies("::1,127.0.0.1") == TrustedProxies()
    assert TrustedProxies("127.0.0.1") != TrustedProxies()
    assert TrustedProxies("unix") != TrustedProxies("")
    assert TrustedProxies() != "127.0.0.1,::1"
    assert len({TrustedProxies(), TrustedProxies("::1, 127.0.0.1")}) == 1


# -- who may send forwarding headers ----------------------------------------------------


@pytest.mark.parametrize("peer", ["127.0.0.1", "203.0.113.7", ""])
def test_no_forwarding_headers_change_nothing(peer: str) -> None:
    environ = make_environ(peer)
    before = dict(environ)
    apply_proxy_headers(environ, TrustedProxies.parse("*"))
    assert environ == before


class _CountingEnviron(dict[str, Any]):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.looked_up: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.looked_up.append(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.looked_up.append(key)
        return super().__getitem__(key)


def test_without_forwarding_headers_only_those_are_looked_up() -> None:
    environ = _CountingEnviron(make_environ())
    apply_proxy_headers(environ, TrustedProxies())
    assert sorted(environ.looked_up) == sorted(_HEADER_KEYS.values())


SPOOFS = [
    {"xff": "1.2.3.4"},
    {"xff": "1.2.3.4, 127.0.0.1"},
    {"xff": "127.0.0.1"},
    {"xfp": "https"},
    {"xfh": "evil.example"},
    {"xff": "1.2.3.4", "xfp": "https", "xfh": "evil.example"},
    {"forwarded": "for=1.2.3.4;proto=https;host=evil.example"},
    {"forwarded": "for=1.2.3.4, for=127.0.0.1"},
    {"forwarded": 'for="[::1]:80"', "xff": "::1"},
]


@pytest.mark.parametrize("peer", ["203.0.113.7", "::ffff:203.0.113.7", "2001:db8::7", "",
                                  "127.0.0.2", "garbage"])
@pytest.mark.parametrize("headers", SPOOFS)
def test_untrusted_peer_headers_are_ignored(peer: str, headers: dict[str, str]) -> None:
    environ = make_environ(peer, **headers)
    before = dict(environ)
    apply_proxy_headers(environ, TrustedProxies.parse(CHAIN))
    assert environ == before


@pytest.mark.parametrize("headers", SPOOFS)
def test_missing_remote_addr_is_not_trusted(headers: dict[str, str]) -> None:
    environ = make_environ(**headers)
    del environ["REMOTE_ADDR"]
    before = dict(environ)
    apply_proxy_headers(environ, TrustedProxies.parse("unix,127.0.0.1"))
    assert environ == before


@pytest.mark.parametrize(("trusted", "peer", "applied"), [
    (DEFAULT_TRUSTED, "127.0.0.1", True),
    (DEFAULT_TRUSTED, "::1", True),
    (DEFAULT_TRUSTED, "::ffff:127.0.0.1", True),
    (DEFAULT_TRUSTED, "", False),
    ("unix", "", True),
    ("unix", "127.0.0.1", False),
    ("*", "", True),
    ("*", "198.51.100.1", True),
    ("10.0.0.0/8", "10.9.8.7", True),
    ("10.0.0.0/8", "11.9.8.7", False),
    ("", "127.0.0.1", False),
])
def test_which_peers_are_believed(trusted: str, peer: str, applied: bool) -> None:
    environ = apply(trusted, peer, xff="203.0.113.9", xfp="https")
    assert (environ["REMOTE_ADDR"] == "203.0.113.9") is applied
    assert (environ["wsgi.url_scheme"] == "https") is applied


# -- X-Forwarded-For ------------------------------------------------------------------


@pytest.mark.parametrize(("trusted", "xff", "addr", "port"), [
    # one proxy, one value: the common case
    ("127.0.0.1", "203.0.113.9", "203.0.113.9", PEER_PORT),
    ("127.0.0.1", "  203.0.113.9\t", "203.0.113.9", PEER_PORT),
    # what the client wrote to the left of its real address is ignored
    ("127.0.0.1", "6.6.6.6, 203.0.113.9", "203.0.113.9", PEER_PORT),
    ("127.0.0.1", "127.0.0.1, 203.0.113.9", "203.0.113.9", PEER_PORT),
    ("127.0.0.1", "garbage, 203.0.113.9", "203.0.113.9", PEER_PORT),
    # trusted hops are skipped, right to left
    (CHAIN, "203.0.113.9, 10.0.0.2", "203.0.113.9", PEER_PORT),
    (CHAIN, "6.6.6.6, 203.0.113.9, 10.0.0.2, 10.1.0.3", "203.0.113.9", PEER_PORT),
    (CHAIN, "203.0.113.9, ::ffff:10.0.0.2", "203.0.113.9", PEER_PORT),
    (CHAIN, "2001:db8::9, fd00::2", "2001:db8::9", PEER_PORT),
    (CHAIN, "203.0.113.9, 10.0.0.2:1234", "203.0.113.9", PEER_PORT),
    (CHAIN, "203.0.113.9, [fd00::2]:1234", "203.0.113.9", PEER_PORT),
    # several headers, joined by new_call; empty members are skipped
    (CHAIN, "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9", PEER_PORT),
    ("127.0.0.1", "6.6.6.6,, ,203.0.113.9,", "203.0.113.9", PEER_PORT),
    # every hop trusted: the leftmost (a client running on the proxy host)
    ("127.0.0.1", "127.0.0.1", "127.0.0.1", PEER_PORT),
    (CHAIN, "10.0.0.5, 10.0.0.2", "10.0.0.5", PEER_PORT),
    # "*": everything is trusted, so the leftmost entry wins, forged or not
    ("*", "6.6.6.6, 203.0.113.9, 10.0.0.2", "6.6.6.6", PEER_PORT),
    # ports travel with their address
    ("127.0.0.1", "203.0.113.9:5678", "203.0.113.9", "5678"),
    ("127.0.0.1", "203.0.113.9:05678", "203.0.113.9", "5678"),
    ("127.0.0.1", "203.0.113.9:65535", "203.0.113.9", "65535"),
    ("127.0.0.1", "203.0.113.9:_obf", "203.0.113.9", PEER_PORT),
    ("127.0.0.1", "[2001:db8::9]:4711", "2001:db8::9", "4711"),
    ("127.0.0.1", "[2001:db8::9]", "2001:db8::9", PEER_PORT),
    (CHAIN, "203.0.113.9:80, 127.0.0.1:9999", "203.0.113.9", "80"),
    # IPv6 in canonical form; IPv4-mapped as IPv4
    ("127.0.0.1", "2001:db8::9", "2001:db8::9", PEER_PORT),
    ("127.0.0.1", "2001:DB8:0:0:0:0:0:9", "2001:db8::9", PEER_PORT),
    ("127.0.0.1", "::ffff:203.0.113.9", "203.0.113.9", PEER_PORT),
    ("127.0.0.1", "[::ffff:203.0.113.9]:80", "203.0.113.9", "80"),
    # the walk stops at anything that is not an address: the last address walked past
    # is kept, or nothing changes
    (CHAIN, "203.0.113.9, garbage, 10.0.0.2", "10.0.0.2", PEER_PORT),
    (CHAIN, "203.0.113.9, unknown, 10.0.0.2:7", "10.0.0.2", "7"),
    ("127.0.0.1", "203.0.113.9, garbage", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "unknown", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "_hidden", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", " , ,", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "203.0.113.9:99999", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "203.0.113.9:", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "203.0.113.9:8x", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "203.0.113.9 6.6.6.6", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "[203.0.113.9]:80", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "[2001:db8::9", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "[2001:db8::9]x", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "fe80::1%eth0", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "[fe80::1%eth0]:80", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "01.2.3.4", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "\uff11.2.3.4", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "example.com", "127.0.0.1", PEER_PORT),
    ("127.0.0.1", "203.0.113.9\r\nX-Injected: 1", "127.0.0.1", PEER_PORT),
])
def test_x_forwarded_for(trusted: str, xff: str, addr: str, port: str) -> None:
    environ = apply(trusted, xff=xff)
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == (addr, port)
    assert environ["HTTP_X_FORWARDED_FOR"] == xff  # the header itself stays for the app


def test_only_the_client_fields_change() -> None:
    environ = apply(xff="203.0.113.9:4711", xfp="https", xfh="example.com")
    before = make_environ(xff="203.0.113.9:4711", xfp="https", xfh="example.com")
    changed = {key for key in environ if environ[key] != before[key]}
    assert changed == {"REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTP_HOST"}
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("backend", "8000")


@pytest.mark.parametrize("header", ["xff", "forwarded"])
def test_chains_are_walked_at_most_max_hops_deep(header: str) -> None:
    def proxy_ip(i: int) -> str:
        return f"10.0.{i // 256}.{i % 256}"

    def chain(hops: int) -> str:
        entries = ["203.0.113.9"] + [proxy_ip(i) for i in range(hops)]
        if header == "forwarded":
            entries = [f"for={entry}" for entry in entries]
        return ", ".join(entries)

    # the client is the MAX_HOPS-th entry from the right: found
    assert apply(**{header: chain(MAX_HOPS - 1)})["REMOTE_ADDR"] == "203.0.113.9"
    # one proxy more, or thousands: the walk ends on the last entry it looked at
    for hops in (MAX_HOPS, 5000):
        assert apply(**{header: chain(hops)})["REMOTE_ADDR"] == proxy_ip(hops - MAX_HOPS)


@pytest.mark.parametrize(("empties", "addr"), [
    (MAX_HOPS - 2, "203.0.113.9"),   # client, empties, proxy: MAX_HOPS members in all
    (MAX_HOPS - 1, "10.0.0.2"),      # one member too many: the client is out of sight
    (60_000, "10.0.0.2"),
])
def test_empty_members_count_towards_the_window(empties: int, addr: str) -> None:
    xff = "203.0.113.9" + "," * empties + ", 10.0.0.2"
    assert apply(xff=xff)["REMOTE_ADDR"] == addr
    forwarded = "for=203.0.113.9" + "," * empties + ", for=10.0.0.2"
    assert apply(forwarded=forwarded)["REMOTE_ADDR"] == addr


def test_forwarded_element_length_is_capped() -> None:
    padding = "x" * (MAX_ELEMENT - len("for=203.0.113.9;ext="))
    assert parse_forwarded_element(f"for=203.0.113.9;ext={padding}") is not None
    assert parse_forwarded_element(f"for=203.0.113.9;ext={padding}x") is None
    assert parse_forwarded_element('for="' + "a" * 100_000) is None


# -- X-Forwarded-Proto ----------------------------------------------------------------


@pytest.mark.parametrize(("xff", "xfp", "scheme"), [
    (None, "https", "https"),
    (None, "HTTPS", "https"),
    (None, " https ", "https"),
    (None, "http", "http"),
    (None, "wss", "https"),
    (None, "WS", "http"),
    (None, "http, https", "https"),            # no address chosen: the last value
    (None, "ftp", "start"),
    (None, "javascript", "start"),
    (None, "https, ftp", "start"),             # a bad last value is not replaced
    (None, "", "start"),
    (None, " , ", "start"),
    (None, "https\r\n", "start"),
    (None, "https;x", "start"),
    (None, "h t t p s", "start"),
    # paired with the chosen X-Forwarded-For entry, counted from the right
    ("203.0.113.9, 10.0.0.2", "https, http", "https"),
    ("6.6.6.6, 203.0.113.9, 10.0.0.2", "https, http", "https"),
    ("203.0.113.9, 10.0.0.2", "ftp, https, http", "https"),
    ("203.0.113.9, 10.0.0.2", "ftp, https", "start"),  # a bad paired value is not replaced
    ("203.0.113.9", "ftp, https", "https"),
    ("10.0.0.5, 10.0.0.2", "https, http", "https"),   # all trusted: the leftmost's
    # not enough values to pair: the last one
    ("203.0.113.9, 10.0.0.2", "https", "https"),
    ("6.6.6.6, 203.0.113.9, 10.0.0.2, 10.0.0.3", "https, http", "http"),
    # no usable X-Forwarded-For: the last value
    ("garbage", "https", "https"),
    ("", "http, https", "https"),
])
@pytest.mark.parametrize("start", ["http", "https"])
def test_x_forwarded_proto(xff: str | None, xfp: str, scheme: str, start: str) -> None:
    environ = apply(xff=xff, xfp=xfp, scheme=start)
    assert environ["wsgi.url_scheme"] == (start if scheme == "start" else scheme)


# -- X-Forwarded-Host -----------------------------------------------------------------


@pytest.mark.parametrize(("xfh", "host"), [
    ("example.com", "example.com"),
    ("Example.COM", "Example.COM"),
    ("example.com:8443", "example.com:8443"),
    ("example.com.", "example.com."),
    ("app_1.internal", "app_1.internal"),
    ("203.0.113.9:80", "203.0.113.9:80"),
    ("[2001:db8::1]", "[2001:db8::1]"),
    ("[2001:db8::1]:8443", "[2001:db8::1]:8443"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    (" example.com ", "example.com"),
    ("evil.example, example.com", "example.com"),   # the last value
])
def test_x_forwarded_host(xfh: str, host: str) -> None:
    assert apply(xfh=xfh)["HTTP_HOST"] == host


@pytest.mark.parametrize("xfh", [
    "example.com\r\nSet-Cookie: session=evil",
    "example.com\nX-Injected: 1",
    "example.com\r",
    "example.com\x00",
    "exa mple.com",
    "ex\tample.com",
    "example.com/evil",
    "example.com\\evil",
    "user@example.com",
    "evil.example@example.com",
    "http://example.com",
    "example.com?x=1",
    "example.com#frag",
    "example.com%2f",
    "<script>alert(1)</script>",
    "example.com'",
    'example.com"',
    "ex\u00e4mple.com",
    "example.com:99999",
    "example.com:",
    "example.com:80:80",
    "example.com:8o",
    ":80",
    "[::1",
    "[::1]:",
    "[not-an-ip]",
    "[::1]x",
    "a" * 256,
    "",
    " , ",
    "example.com, evil example",     # a bad last value is not replaced by an earlier one
])
def test_x_forwarded_host_rejects_bad_values(xfh: str) -> None:
    assert apply(xfh=xfh)["HTTP_HOST"] == BACKEND_HOST


# -- Forwarded (RFC 7239) ---------------------------------------------------------------


@pytest.mark.parametrize(("value", "elements"), [
    ("for=192.0.2.43", [{"for": "192.0.2.43"}]),
    ("For=192.0.2.43;PROTO=https", [{"for": "192.0.2.43", "proto": "https"}]),
    ('for="[2001:db8:cafe::17]:4711"', [{"for": "[2001:db8:cafe::17]:4711"}]),
    ("for=192.0.2.60;proto=http;by=203.0.113.43",
     [{"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}]),
    ("for=192.0.2.43, for=198.51.100.17", [{"for": "192.0.2.43"}, {"for": "198.51.100.17"}]),
    ('for="_gazonk"', [{"for": "_gazonk"}]),
    ("for=unknown", [{"for": "unknown"}]),
    ("for=_hidden, for=unknown", [{"for": "_hidden"}, {"for": "unknown"}]),
    (' for=1.2.3.4 ;\tproto=https , for=5.6.7.8 ',
     [{"for": "1.2.3.4", "proto": "https"}, {"for": "5.6.7.8"}]),
    ("for=1.2.3.4;;proto=https;", [{"for": "1.2.3.4", "proto": "https"}]),
    ("for=1.2.3.4,,for=5.6.7.8,", [{"for": "1.2.3.4"}, {"for": "5.6.7.8"}]),
    ('for="a\\"b\\\\c"', [{"for": 'a"b\\c'}]),
    ('ext="y;z=w"', [{"ext": "y;z=w"}]),
    ('host="example.com:8443"', [{"host": "example.com:8443"}]),
    ('for=""', [{"for": ""}]),
    # unquoted ':' and brackets, as hand-written proxy configs produce
    ("for=1.2.3.4:80", [{"for": "1.2.3.4:80"}]),
    ("for=[::1]:80", [{"for": "[::1]:80"}]),
    ("for=2001:db8::1", [{"for": "2001:db8::1"}]),
    ("", []),
    (" , \t", []),
    (" , ;", [{}]),
    # each element on its own: a malformed one does not spoil its neighbours
    ('for="6.6.6.6, for=1.2.3.4', [None, {"for": "1.2.3.4"}]),
    ("for=1.2.3.4 x, for=5.6.7.8", [None, {"for": "5.6.7.8"}]),
    # the price: a quoted comma splits its element
    ('for=1.2.3.4;ext="a,b"', [None, None]),
])
def test_parse_forwarded(value: str, elements: list[dict[str, str] | None]) -> None:
    assert parse_forwarded(value) == elements


@pytest.mark.parametrize("value", [
    "for",
    "for=",
    "=1.2.3.4",
    "for==1.2.3.4",
    'for="1.2.3.4',
    'for=1.2.3.4"',
    'for="1.2.3.4"x',
    'for="1.2.3.4", for="5.6.7.8',
    "for=1.2.3.4 proto=https",
    "for=a b",
    "fo r=1.2.3.4",
    "for = 1.2.3.4",
    "for=1.2.3.4;for=5.6.7.8",          # a parameter twice in one element
    "for=1.2.3.4;proto=https;PROTO=http",
    'for="\x00"',
    "for=1.2.3.4\r\n",
    "for=1.2.3.4/32",
    "for=<1.2.3.4>",
    "for=1.2.3.4,",
])
def test_parse_forwarded_element_malformed(value: str) -> None:
    assert parse_forwarded_element(value) is None


@pytest.mark.parametrize(("forwarded", "expected"), [
    ("for=203.0.113.9", ("203.0.113.9", PEER_PORT, "http", BACKEND_HOST)),
    ("for=203.0.113.9;proto=https;host=example.com",
     ("203.0.113.9", PEER_PORT, "https", "example.com")),
    ('for="203.0.113.9:4711"', ("203.0.113.9", "4711", "http", BACKEND_HOST)),
    ('for="[2001:db8:cafe::17]:4711"', ("2001:db8:cafe::17", "4711", "http", BACKEND_HOST)),
    ('for="[2001:db8:cafe::17]"', ("2001:db8:cafe::17", PEER_PORT, "http", BACKEND_HOST)),
    ('for="[2001:DB8:CAFE:0::17]"', ("2001:db8:cafe::17", PEER_PORT, "http", BACKEND_HOST)),
    ('for="2001:db8:cafe::17"', ("2001:db8:cafe::17", PEER_PORT, "http", BACKEND_HOST)),
    ('for="[::ffff:203.0.113.9]"', ("203.0.113.9", PEER_PORT, "http", BACKEND_HOST)),
    ('for="203.0.113.9:_abc"', ("203.0.113.9", PEER_PORT, "http", BACKEND_HOST)),
    ("for=203.0.113.9:80", ("203.0.113.9", "80", "http", BACKEND_HOST)),
    ('FOR=203.0.113.9;Proto=HTTPS;Host="example.com:8443"',
     ("203.0.113.9", PEER_PORT, "https", "example.com:8443")),
    ("for=203.0.113.9;proto=wss", ("203.0.113.9", PEER_PORT, "https", BACKEND_HOST)),
    ("for=203.0.113.9;by=10.0.0.2;secret=x", ("203.0.113.9", PEER_PORT, "http", BACKEND_HOST)),
    # obfuscated or unknown client: the address stays, proto / host of the last element
    ("for=_hidden;proto=https", ("127.0.0.1", PEER_PORT, "https", BACKEND_HOST)),
    ("for=unknown;proto=https;host=example.com",
     ("127.0.0.1", PEER_PORT, "https", "example.com")),
    ("for=garbage;proto=https", ("127.0.0.1", PEER_PORT, "https", BACKEND_HOST)),
    ('for="fe80::1%eth0";proto=https', ("127.0.0.1", PEER_PORT, "https", BACKEND_HOST)),
    ("proto=https;host=example.com", ("127.0.0.1", PEER_PORT, "https", "example.com")),
    # chains: the rightmost untrusted hop, and proto / host from its element
    ("for=6.6.6.6;proto=http;host=evil.example, for=203.0.113.9;proto=https;host=example.com",
     ("203.0.113.9", PEER_PORT, "https", "example.com")),
    ("for=203.0.113.9;proto=https;host=example.com, for=10.0.0.2;proto=http;host=inner",
     ("203.0.113.9", PEER_PORT, "https", "example.com")),
    ('for=203.0.113.9;proto=https, for="[fd00::2]:8080";proto=http, for=10.1.1.1',
     ("203.0.113.9", PEER_PORT, "https", BACKEND_HOST)),
    ("for=10.0.0.5;proto=https, for=10.0.0.2;proto=http",
     ("10.0.0.5", PEER_PORT, "https", BACKEND_HOST)),
    # the walk stops at a hop that is not an address: the last address walked past
    ("for=_hidden;proto=https, for=10.0.0.2;proto=http",
     ("10.0.0.2", PEER_PORT, "http", BACKEND_HOST)),
    ("for=203.0.113.9, proto=https", ("127.0.0.1", PEER_PORT, "https", BACKEND_HOST)),
    # bad values are ignored one by one
    ("for=203.0.113.9;proto=ftp", ("203.0.113.9", PEER_PORT, "http", BACKEND_HOST)),
    ('for=203.0.113.9;host="evil.example/x"', ("203.0.113.9", PEER_PORT, "http", BACKEND_HOST)),
    ('for=203.0.113.9;host="a@evil.example"', ("203.0.113.9", PEER_PORT, "http", BACKEND_HOST)),
    ('for="203.0.113.9:99999";proto=https', ("127.0.0.1", PEER_PORT, "https", BACKEND_HOST)),
    # a malformed nearest element: nothing at all changes
    ('for="203.0.113.9;proto=https', UNCHANGED),
    ("for=203.0.113.9;for=6.6.6.6", UNCHANGED),
    ("for=203.0.113.9 proto=https", UNCHANGED),
    ("for=203.0.113.9, for=10.0.0.2;proto=https;proto=http", UNCHANGED),
    (",", UNCHANGED),
    # a malformed element further left stops the walk like a non-address
    ("for=203.0.113.9, for=10.0.0.2;for=x, for=10.0.0.3;proto=https",
     ("10.0.0.3", PEER_PORT, "https", BACKEND_HOST)),
    # what a client sent cannot swallow what the proxies appended after it
    ('for="6.6.6.6, for=203.0.113.9;proto=https',
     ("203.0.113.9", PEER_PORT, "https", BACKEND_HOST)),
    ('x="\\, for="[2001:db8::9]:4711";proto=https;host=example.com',
     ("2001:db8::9", "4711", "https", "example.com")),
    ('for=6.6.6.6;host="evil, for=203.0.113.9;proto=https',
     ("203.0.113.9", PEER_PORT, "https", BACKEND_HOST)),
])
def test_forwarded(forwarded: str, expected: tuple[str, str, str, str]) -> None:
    assert seen(apply(forwarded=forwarded)) == expected


@pytest.mark.parametrize("client_sent", ['for="', "for=_x;host=\"a", 'x="\\', "garbage ;",
                                         "for=1.2.3.4;for=1.2.3.4", "for=127.0.0.1",
                                         'for="[::1]";proto=https', "\x00"])
def test_client_forwarded_cannot_hide_the_proxy_element(client_sent: str) -> None:
    """nginx-style appending: the client's own Forwarded, then ', ' and the proxy's."""
    forwarded = client_sent + ", " + 'for="203.0.113.9:4711";proto=http;host=example.com'
    environ = apply(forwarded=forwarded, scheme="https")
    assert seen(environ) == ("203.0.113.9", "4711", "http", "example.com")


def test_x_forwarded_takes_precedence_over_forwarded() -> None:
    # A proxy that sets X-Forwarded-* and passes a client's Forwarded through (nginx's
    # default) must not let the client choose its address.
    environ = apply(forwarded="for=203.0.113.9;proto=http;host=evil.example",
                    xff="198.51.100.1", xfp="https", xfh="example.com")
    assert seen(environ) == ("198.51.100.1", PEER_PORT, "https", "example.com")


@pytest.mark.parametrize("forwarded", ['for="', "for=1.2.3.4;for=1.2.3.4", "garbage here",
                                       "for=_hidden", "proto=ftp", "for=203.0.113.9"])
def test_any_x_forwarded_header_makes_forwarded_ignored(forwarded: str) -> None:
    environ = apply(forwarded=forwarded, xfp="https")
    assert seen(environ) == ("127.0.0.1", PEER_PORT, "https", BACKEND_HOST)


@pytest.mark.parametrize("forwarded", ["", " ", "\t"])
def test_blank_forwarded_counts_as_absent(forwarded: str) -> None:
    environ = apply(forwarded=forwarded, xff="203.0.113.9", xfp="https", xfh="example.com")
    assert seen(environ) == ("203.0.113.9", PEER_PORT, "https", "example.com")


def test_forwarded_spoofed_by_untrusted_peer_is_ignored() -> None:
    environ = apply(peer="203.0.113.7", forwarded="for=127.0.0.1;proto=https;host=admin")
    assert seen(environ) == ("203.0.113.7", PEER_PORT, "http", BACKEND_HOST)


def test_unix_socket_peer() -> None:
    headers = {"xff": "203.0.113.9", "xfp": "https", "xfh": "example.com"}
    assert seen(apply("unix", "", **headers)) == ("203.0.113.9", PEER_PORT, "https",
                                                  "example.com")
    assert seen(apply(DEFAULT_TRUSTED, "", **headers)) == ("", PEER_PORT, "http", BACKEND_HOST)
    assert seen(apply("unix", "", forwarded='for="[2001:db8::1]:80";proto=https')) == (
        "2001:db8::1", "80", "https", BACKEND_HOST)


# -- cost -------------------------------------------------------------------------------


def test_ipv4_lookups_do_not_parse_with_ipaddress(monkeypatch: pytest.MonkeyPatch) -> None:
    """IPv4 peers and hops, exact or in networks, are matched without ipaddress objects."""
    trusted = TrustedProxies.parse("127.0.0.1,::1,10.0.0.0/8")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("ipaddress was used")

    monkeypatch.setattr(proxy, "IPv6Address", refuse)
    monkeypatch.setattr(ipaddress, "ip_address", refuse)
    monkeypatch.setattr(ipaddress, "IPv4Address", refuse)
    for peer in ("127.0.0.1", "10.1.2.3"):
        environ = make_environ(peer, xff="6.6.6.6, 203.0.113.9:80, 10.0.0.2", xfp="https")
        apply_proxy_headers(environ, trusted)
        assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("203.0.113.9", "80")
    assert "192.168.0.1" not in trusted


# -- properties ---------------------------------------------------------------------------

_TRUST_SPECS = [DEFAULT_TRUSTED, CHAIN, "*", "unix", "unix,10.0.0.0/8", ""]
_PEERS = ["127.0.0.1", "::1", "10.0.0.2", "", "203.0.113.7", "::ffff:127.0.0.1"]
_FRAGMENTS = st.sampled_from([
    "for=", "proto=", "host=", "by=", ";", ",", ", ", " ", '"', "\\", "[", "]", ":", "_x",
    "unknown", "1.2.3.4", "10.0.0.2", "127.0.0.1", "2001:db8::1", "::ffff:1.2.3.4", "fd00::2",
    "80", "99999", "https", "http", "wss", "ftp", "example.com", "%eth0", "/", "@", "\r\n",
    "\x00", "\xff", "\u0663", "=",
])
_HEADER_VALUES = st.one_of(
    st.none(),
    st.text(max_size=80),
    st.lists(_FRAGMENTS, max_size=20).map("".join),
)
_no_comma = st.text(alphabet=st.characters(blacklist_characters=","), max_size=20)
_HOST_OK = re.compile(r"[A-Za-z0-9._\-\[\]:]+")


@PROPERTY
@given(trusted=st.sampled_from(_TRUST_SPECS), peer=st.sampled_from(_PEERS),
       forwarded=_HEADER_VALUES, xff=_HEADER_VALUES, xfp=_HEADER_VALUES, xfh=_HEADER_VALUES)
def test_never_raises_and_only_sets_sane_values(trusted: str, peer: str,
                                                forwarded: str | None, xff: str | None,
                                                xfp: str | None, xfh: str | None) -> None:
    environ = make_environ(peer, forwarded=forwarded, xff=xff, xfp=xfp, xfh=xfh)
    before = dict(environ)
    trust = TrustedProxies.parse(trusted)
    apply_proxy_headers(environ, trust)
    if peer not in trust:
        assert environ == before
        return
    assert set(environ) == set(before)
    addr = environ["REMOTE_ADDR"]
    if addr != peer:
        assert "%" not in addr
        assert str(ipaddress.ip_address(addr)) == addr
    port = environ["REMOTE_PORT"]
    assert port == PEER_PORT or (port.isdigit() and str(int(port)) == port
                                 and int(port) <= 65535)
    assert environ["wsgi.url_scheme"] in ("http", "https")
    host = environ["HTTP_HOST"]
    assert host == BACKEND_HOST or _HOST_OK.fullmatch(host)


def _untrusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Not in CHAIN (IPv4-mapped IPv6 excluded: it comes back as IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        return ip.ipv4_mapped is None and ip not in ipaddress.ip_network("fd00::/8") \
            and str(ip) != "::1"
    return ip not in ipaddress.ip_network("10.0.0.0/8") and str(ip) != "127.0.0.1"


_client_ips = st.ip_addresses(v=4).filter(_untrusted)
_proxy_ips = st.ip_addresses(network="10.0.0.0/8")


@PROPERTY
@given(forged=st.lists(_no_comma, max_size=4),
       client=_client_ips, hops=st.lists(_proxy_ips, max_size=4),
       port=st.one_of(st.none(), st.integers(0, 65535)))
def test_forged_entries_left_of_the_client_never_matter(
        forged: list[str], client: ipaddress.IPv4Address,
        hops: list[ipaddress.IPv4Address], port: int | None) -> None:
    """Whatever a client writes into X-Forwarded-For, the trusted proxies append its real
    address (and their own) to the right of it, and that is what the app sees."""
    client_text = str(client) if port is None else f"{client}:{port}"
    chain = ", ".join([*forged, client_text, *map(str, hops)])
    environ = apply(CHAIN, "127.0.0.1", xff=chain, xfp="ftp, https" + ", http" * len(hops))
    assert environ["REMOTE_ADDR"] == str(client)
    assert environ["REMOTE_PORT"] == (PEER_PORT if port is None else str(port))
    assert environ["wsgi.url_scheme"] == "https"


@PROPERTY
@given(forged=st.lists(st.one_of(_no_comma, st.lists(_FRAGMENTS, max_size=8).map("".join)
                                 .map(lambda text: text.replace(",", ""))), max_size=3),
       client=st.one_of(_client_ips, st.ip_addresses(v=6).filter(_untrusted)),
       hops=st.lists(_proxy_ips, max_size=3))
def test_forwarded_chain_picks_the_rightmost_untrusted(
        forged: list[str], client: ipaddress.IPv4Address | ipaddress.IPv6Address,
        hops: list[ipaddress.IPv4Address]) -> None:
    """Whatever a client puts in its own Forwarded header (no comma: each proxy appends
    ', ' and its element), the element the first proxy added decides."""
    node = f'"[{client}]:443"' if client.version == 6 else f'"{client}:443"'
    elements = list(forged)
    elements.append(f"for={node};proto=https;host=example.com")
    elements += [f"for={hop};proto=http;host=inner" for hop in hops]
    environ = apply(CHAIN, "127.0.0.1", forwarded=", ".join(elements))
    assert seen(environ) == (str(client), "443", "https", "example.com")
