"""Finding the application a command line or a pytest ini names: ``MODULE:ATTRIBUTE``.

Its own module so that what names an application by a string (the command line, the
pytest plugin's ``aiowsgi_app`` ini option) imports it the same way, without importing
the command line itself.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from .wsgi import WSGIApp


class AppLoadError(Exception):
    """The application named on the command line cannot be loaded."""


def load_app(spec: str, *, factory: bool = False, app_dir: str | None = None) -> WSGIApp:
    """Import ``MODULE:ATTRIBUTE`` (the attribute may be dotted) from ``app_dir`` (default:
    the current directory); with ``factory``, call it to get the application."""
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
    return app  # type: ignore[no-any-return]
