"""Django's CSRF protection through aiowsgi: the cookie, the form token, and, behind a TLS
proxy, the Referer check that depends on the scheme and host the server reports.  Each
step is also taken with Django's test client (CSRF checks enforced) and must end alike."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from aiowsgi.testing import live_server

from . import compat, django_app
from .compat import Call, Reply

FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """The plain and the proxy server, both serving the Django app."""
    path: Path = tmp_path_factory.mktemp("csrf") / "payload.bin"
    path.write_bytes(b"x")
    with contextlib.ExitStack() as stack:
        stack.enter_context(django_app.context())
        app = django_app.make_app(path)
        found = {}
        for server in ("plain", "proxy"):
            url = stack.enter_context(live_server(app, access_log=False,
                                                  **compat.SERVERS[server]))
            found[server] = urlsplit(url).port or 80
        yield found


def both(ports: dict[str, int], call: Call, cookie: str = "",
         token: str = "") -> tuple[Reply, Reply]:
    """``call`` with the CSRF cookie and form token each side got from its own GET."""
    def form(cookie: str, token: str) -> Call:
        headers = call.headers + ((("Cookie", f"csrftoken={cookie}"),) if cookie else ())
        body = urlencode({"name": "café", **({"csrfmiddlewaretoken": token} if token else {})})
        return Call(call.method, call.target, (*headers, ("Content-Type", FORM)),
                    body.encode(), call.server)

    served_cookie, served_token = get_token(ports, call.server, served=True)
    client_cookie, client_token = get_token(ports, call.server, served=False)
    served = compat.send(ports[call.server], form(cookie and served_cookie,
                                                  token and served_token))
    expected = django_app.client_request(
        None,  # type: ignore[arg-type]
        form(cookie and client_cookie, token and client_token),
        compat.expected_environ(call, ports[call.server]))
    return served, expected


def get_token(ports: dict[str, int], server: str, *, served: bool) -> tuple[str, str]:
    """GET /csrf: the csrftoken cookie and the form token."""
    call = Call("GET", "/csrf", server=server)
    reply = (compat.send(ports[server], call) if served else
             django_app.client_request(None, call,  # type: ignore[arg-type]
                                       compat.expected_environ(call, ports[server])))
    assert reply.status == 200
    cookie = SimpleCookie()
    for header in reply.all("set-cookie"):
        cookie.load(header)
    return cookie["csrftoken"].value, reply.body.decode()


def test_token_and_cookie_pass(ports: dict[str, int]) -> None:
    served, expected = both(ports, Call("POST", "/csrf"), cookie="yes", token="yes")
    compat.assert_same(served, expected)
    assert served.body == "hello café".encode()


@pytest.mark.parametrize(("cookie", "token"), [("", "yes"), ("yes", ""), ("", "")],
                         ids=["no-cookie", "no-token", "neither"])
def test_missing_cookie_or_token_is_refused(ports: dict[str, int], cookie: str,
                                            token: str) -> None:
    served, expected = both(ports, Call("POST", "/csrf"), cookie=cookie, token=token)
    compat.assert_same(served, expected)
    assert served.status == 403


def test_behind_a_tls_proxy_the_referer_is_checked(ports: dict[str, int]) -> None:
    """Django trusts a secure request's Referer only for its own https origin: this
    passes only if the server reported https and the forwarded host."""
    forwarded = (("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", compat.PROXY_HOST))
    good = (*forwarded, ("Referer", f"https://{compat.PROXY_HOST}/csrf"))
    served, expected = both(ports, Call("POST", "/csrf", good, server="proxy"),
                            cookie="yes", token="yes")
    compat.assert_same(served, expected)
    assert served.status == 200
    bad = (*forwarded, ("Referer", "https://evil.example/csrf"))
    served, expected = both(ports, Call("POST", "/csrf", bad, server="proxy"),
                            cookie="yes", token="yes")
    compat.assert_same(served, expected)
    assert served.status == 403
