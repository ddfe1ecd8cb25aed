"""What is refused before serving (see ``aiowsgi.loading.check_application``): ASGI
applications in the shapes frameworks give them, and callables WSGI cannot call; and
WSGI applications in shapes a careless check would refuse.  Importable by a server in a
subprocess (``tests.apps.notwsgi:asgi_object``)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from aiowsgi.wsgi import WSGIApp

from .echo import hello

Env = dict[str, Any]
StartResponse = Callable[..., Any]

# -- ASGI applications ------------------------------------------------------------------


async def asgi_function(scope: dict[str, Any], receive: Callable[..., Any],
                        send: Callable[..., Any]) -> None:
    """An ASGI application written as a function."""


class ASGIApp:
    """Starlette, FastAPI, Quart, Django's ASGIHandler, Falcon's asgi.App: an object."""

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                       send: Callable[..., Any]) -> None:
        pass


asgi_object = ASGIApp()


class ASGI2:
    """ASGI 2: the class is called with the scope, its instance with the rest."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        pass


class ThreeArguments:
    """Synchronous, but called as ASGI calls an application."""

    def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                 send: Callable[..., Any]) -> None:
        pass


three_arguments = ThreeArguments()


async def async_generator(environ: Env, start_response: StartResponse) -> AsyncIterator[bytes]:
    """A WSGI application written as an async generator: not one."""
    yield b""


def decorated(app: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator of the usual shape: ``*args``, and ``functools.wraps``."""

    @functools.wraps(app)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return app(*args, **kwargs)

    return wrapper


decorated_asgi = decorated(asgi_function)  # still async underneath


def make_asgi() -> ASGIApp:
    """A factory (``--factory``) that returns an ASGI application."""
    return asgi_object


# -- callables WSGI cannot call ---------------------------------------------------------


def no_argument() -> WSGIApp:
    """A factory named without ``--factory``."""
    return hello


def one_argument(environ: Env) -> Iterable[bytes]:
    return []


def keyword_only(environ: Env, start_response: StartResponse, *,
                 settings: dict[str, str]) -> Iterable[bytes]:
    return []


# -- WSGI applications that must be accepted --------------------------------------------


def with_settings(settings: dict[str, str], environ: Env,
                  start_response: StartResponse) -> Iterable[bytes]:
    return hello(environ, start_response)


def with_default(environ: Env, start_response: StartResponse,
                 extra: object = None) -> Iterable[bytes]:
    return hello(environ, start_response)


class Callable2:
    """Flask, Django's WSGIHandler, Falcon, Bottle, Pyramid: an object."""

    def __call__(self, environ: Env, start_response: StartResponse) -> Iterable[bytes]:
        return hello(environ, start_response)

    def wsgi_app(self, environ: Env, start_response: StartResponse) -> Iterable[bytes]:
        return hello(environ, start_response)


class Iterated:
    """PEP 3333's application as a class: calling it makes the response iterable."""

    def __init__(self, environ: Env, start_response: StartResponse) -> None:
        start_response("200 OK", [("Content-Type", "text/plain")])

    def __iter__(self) -> Iterator[bytes]:
        yield b"iterated"


class Middleware:
    """A middleware that passes on whatever it is called with."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, *args: Any, **kwargs: Any) -> Iterable[bytes]:
        return self.app(*args, **kwargs)


def request_application(view: Callable[[Env], bytes]) -> WSGIApp:
    """werkzeug's ``Request.application``: ``functools.wraps`` copies the signature of a
    view that takes one argument onto the WSGI application that calls it."""

    @functools.wraps(view)
    def application(*args: Any) -> Iterable[bytes]:
        environ, start_response = args[-2:]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [view(environ)]

    return application


@request_application
def view(request: Env) -> bytes:
    return b"viewed"


class Unreadable:
    """A callable whose signature ``inspect`` cannot read, as many of C are."""

    __signature__ = "not a signature"

    def __call__(self, environ: Env, start_response: StartResponse) -> Iterable[bytes]:
        return hello(environ, start_response)


class Proxy:
    """A handle that passes every attribute on to what it wraps (as aiowsgi.testing's
    does): ``inspect`` would read the signature of a bound method it wraps, ``self``
    included, if it asked the handle for ``__code__``."""

    def __init__(self, app: WSGIApp) -> None:
        self.__wrapped__ = app

    def __call__(self, environ: Env, start_response: StartResponse) -> Iterable[bytes]:
        return self.__wrapped__(environ, start_response)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__wrapped__, name)


ACCEPTED: dict[str, object] = {
    "function": hello,
    "object": Callable2(),
    "bound method": Callable2().wsgi_app,
    "class": Iterated,
    "partial": functools.partial(with_settings, {"debug": "no"}),
    "optional third argument": with_default,
    "decorated": decorated(hello),
    "middleware": Middleware(hello),
    "wraps a one-argument view": view,
    "unreadable signature": Unreadable(),
    "proxy of a bound method": Proxy(Callable2().wsgi_app),
}
