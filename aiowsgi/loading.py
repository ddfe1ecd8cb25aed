"""Finding the application a command line or a pytest ini names: ``MODULE:ATTRIBUTE``,
and refusing, before anything serves it, what cannot be a WSGI application.

Its own module so that what names an application by a string (the command line, the
pytest plugin's ``aiowsgi_app`` ini option) imports it the same way, without importing
the command line itself; and so that the command line, :class:`~aiowsgi.server.Server`
and the test fixtures refuse the same things in the same words (:func:`check_application`).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from typing import Any

from .wsgi import WSGIApp


class AppLoadError(Exception):
    """The application named on the command line cannot be loaded."""


def load_app(spec: str, *, factory: bool = False, app_dir: str | None = None) -> WSGIApp:
    """Import ``MODULE:ATTRIBUTE`` (the attribute may be dotted) from ``app_dir`` (default:
    the current directory); with ``factory``, call it to get the application.  What
    cannot be a WSGI application (an ASGI one, say) is an AppLoadError too."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise AppLoadError(f"APP must look like MODULE:ATTRIBUTE, got {spec!r}")
    if app_dir is not None:
        if not os.path.isdir(app_dir):
            raise AppLoadError(f"--app-dir {app_dir!r} is not a directory")
        sys.path.insert(0, os.path.abspath(app_dir))
    else:
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(f"cannot import module {module_name!r}: {exc}") from exc
        raise AppLoadError(f"error while importing {module_name!r}: "
                           f"{type(exc).__name__}: {exc}") from exc
    except (Exception, SystemExit) as exc:
        raise AppLoadError(f"error while importing {module_name!r}: "
                           f"{type(exc).__name__}: {exc}") from exc
    app: Any = module
    for part in attribute.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not callable(app):
        raise AppLoadError(f"{spec!r} is not callable (it is {type(app).__name__})")
    if factory:
        try:
            app = app()
        except Exception as exc:
            raise AppLoadError(f"calling the factory {spec!r} failed: "
                               f"{type(exc).__name__}: {exc}") from exc
        if not callable(app):
            raise AppLoadError(f"the factory {spec!r} returned {type(app).__name__}, "
                               "not a WSGI application")
    name = f"what the factory {spec!r} returned" if factory else repr(spec)
    server = f"uvicorn --factory {spec}" if factory else f"uvicorn {spec}"
    try:
        check_application(app, name, asgi_server=server)
    except TypeError as exc:
        raise AppLoadError(str(exc)) from None
    return app  # type: ignore[no-any-return]


def check_application(app: object, name: str = "", *, asgi_server: str = "") -> None:
    """A TypeError, in one line, if the server could not call ``app`` as a WSGI
    application, ``app(environ, start_response)``: an ASGI application (a coroutine
    function, an object whose ``__call__`` is one, a callable of three arguments), or a
    callable that does not take two positional arguments.

    A new user's first mistake is to hand an ASGI application (FastAPI, Starlette, Django's
    ``asgi.py``) to a WSGI server; served, it would answer every request with a 500 and a
    traceback about a coroutine.  ``name`` says what ``app`` is (default: its module and
    name), ``asgi_server`` the command that would serve it.  Whatever ``inspect`` cannot
    read (builtins, C extensions) is accepted, and so is a wrapper that takes
    ``*args``: its own signature is read, not the one ``functools.wraps`` copied.
    """
    name = name or _describe(app)
    why = _asgi_looks(app)
    if why:
        command = f" ({asgi_server})" if asgi_server else ""
        raise TypeError(f"{name} looks like an ASGI application ({why}), but aiowsgi serves "
                        f"WSGI applications: serve it with an ASGI server such as "
                        f"uvicorn{command}")
    signature = _signature(app)
    if signature is None or _binds(signature, 2):
        return
    hint = ""
    if _binds(signature, 0):
        hint = "; if it returns the application, call it first (aiowsgi serve --factory)"
    raise TypeError(f"{name} cannot be called as a WSGI application, "
                    f"app(environ, start_response): it takes {_shown(signature)}{hint}")


def _asgi_looks(app: object) -> str:
    """Why ``app`` looks like an ASGI application, or "" if it does not."""
    why = _async_looks(app)
    if why:
        return why
    signature = _signature(app)
    if signature is not None and not _binds(signature, 2) and _binds(signature, 3):
        return f"it takes three arguments, {_shown(signature)}, where WSGI passes two"
    # A wrapper that takes anything (a decorator's ``*args``, a proxy) around an async
    # application is one too; around a coroutine function of two arguments (an adapter
    # such as asgiref's async_to_sync) it is not.
    try:
        inner = inspect.unwrap(app)  # type: ignore[arg-type]
    except ValueError:  # a cycle of __wrapped__
        return ""
    inner_signature = _signature(inner)
    if inner is not app and not (inner_signature and _binds(inner_signature, 2)):
        return _async_looks(inner)
    return ""


def _async_looks(app: object) -> str:
    """Why ``app`` is async (a coroutine function, or its instances' ``__call__`` is
    one), or "" if it is not."""
    target = app
    while isinstance(target, functools.partial):
        target = target.func
    if _is_async(app):
        return f"async def {getattr(target, '__name__', 'app')}{_shown(_signature(app))}"
    if not inspect.isroutine(target):  # an object, or a class (ASGI 2: its instances)
        kind = target if inspect.isclass(target) else type(target)
        call = inspect.getattr_static(kind, "__call__", None)
        if _is_async(call):
            return f"async def __call__{_shown(_signature(call))}"
    return ""


def _is_async(function: object) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)


def _signature(app: object) -> inspect.Signature | None:
    """``app``'s own signature (not the one a ``functools.wraps`` decorator copied), or
    None if ``inspect`` cannot tell it.  An object's is its type's ``__call__``, bound:
    ``inspect`` would take a proxy that forwards ``__code__`` and the like (to a bound
    method, say) for a function, and read the wrong one."""
    target: Any = app
    if not (inspect.isroutine(app) or inspect.isclass(app)
            or isinstance(app, functools.partial)):
        call = inspect.getattr_static(type(app), "__call__", None)
        bind = getattr(type(call), "__get__", None)
        target = bind(call, app, type(app)) if bind is not None else call
    try:
        return inspect.signature(target, follow_wrapped=False)
    except Exception:  # noqa: BLE001 - not only TypeError and ValueError: proxies, C types
        return None


def _binds(signature: inspect.Signature, count: int) -> bool:
    """Whether a call with ``count`` positional arguments (and nothing else) binds."""
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


def _shown(signature: inspect.Signature | None) -> str:
    """``(scope, receive, send)``: the parameters, without their annotations (ASGI
    frameworks annotate theirs at length)."""
    if signature is None:
        return "(...)"
    return str(signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty))


def _describe(app: object) -> str:
    """What an error message calls an application given as an object."""
    if isinstance(app, functools.partial):
        return f"functools.partial({_describe(app.func)})"
    if inspect.isroutine(app) or inspect.isclass(app):
        return f"{getattr(app, '__module__', '?')}.{getattr(app, '__qualname__', app)}"
    kind = type(app)
    return f"the {kind.__module__}.{kind.__qualname__} object"
