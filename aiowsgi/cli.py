"""``aiowsgi serve APP [options]``: argv in, a running server out.

Every option comes from a field of :class:`~aiowsgi.config.Config`; this module only
turns argv into a ``Config``, imports the application and calls :func:`~aiowsgi.run`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .config import Config, ConfigError, option_choices, option_type
from .server import run
from .wsgi import WSGIApp

_GROUPS = {
    "binding": "where to listen",
    "runtime": "runtime",
    "capacity": "capacity (past a limit the answer is 503 or 504)",
    "limits": "limits (a request past one gets a 4xx answer)",
    "timeouts": "timeouts",
}


class AppLoadError(Exception):
    """The application named on the command line cannot be loaded."""


def load_app(spec: str) -> WSGIApp:
    """Import ``MODULE:ATTRIBUTE`` (the attribute may be dotted) from the current directory."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise AppLoadError(f"APP must look like MODULE:ATTRIBUTE, got {spec!r}")
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
    return app  # type: ignore[no-any-return]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    groups = {key: parser.add_argument_group(title) for key, title in _GROUPS.items()}
    for f in dataclasses.fields(Config):
        meta = f.metadata
        kind = option_type(f)
        unit = f" ({meta['unit']})" if meta.get("unit") else ""
        help_text = f"{meta['help']}{unit} Default: {f.default}."
        group = groups[meta["group"]]
        if kind is bool:
            group.add_argument(_flag(f.name), dest=f.name, default=None, help=help_text,
                               action=argparse.BooleanOptionalAction)
            continue
        choices = option_choices(f)
        group.add_argument(_flag(f.name), dest=f.name, default=None, help=help_text,
                           type=kind, choices=choices,
                           metavar=f"{{{','.join(choices)}}}" if choices else f.name.upper())


def _option_message(exc: ConfigError) -> str:
    return f"{_flag(exc.option)}: {str(exc).split(': ', 1)[1]}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiowsgi", description="An asyncio HTTP/1.1 server for WSGI applications.")
    parser.add_argument("--version", action="version", version=f"aiowsgi {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve", help="serve a WSGI application",
        description="Serve a WSGI application until SIGINT or SIGTERM.")
    serve.add_argument("app", metavar="APP",
                       help="the application as MODULE:ATTRIBUTE, e.g. mysite.wsgi:application")
    serve.add_argument("--version", action="version", version=f"aiowsgi {__version__}")
    _add_config_options(serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
               if getattr(args, f.name) is not None}
    try:
        config = Config(**options)
    except ConfigError as exc:
        parser.exit(2, f"aiowsgi serve: error: argument {_option_message(exc)}\n")
    try:
        app = load_app(args.app)
    except AppLoadError as exc:
        if config.log_level == "debug":
            logging.basicConfig()
            logging.getLogger("aiowsgi").debug("traceback", exc_info=exc.__cause__)
        print(f"aiowsgi: error: {exc}", file=sys.stderr)
        return 1
    try:
        run(app, config)
    except ConfigError as exc:
        print(f"aiowsgi: error: {_option_message(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"aiowsgi: error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
