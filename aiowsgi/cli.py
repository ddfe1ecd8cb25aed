"""``aiowsgi serve APP [options]``: argv and the environment in, a running server out.

Every option comes from a field of :class:`~aiowsgi.config.Config`; this module only
turns argv and ``AIOWSGI_<OPTION>`` environment variables (read by
:mod:`aiowsgi.environment`) into a ``Config`` (the command line wins), imports the
application and calls :func:`~aiowsgi.run`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib.util
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NoReturn

from . import __version__, environment
from .config import (
    RUN_SCOPES,
    Config,
    ConfigError,
    choice_value,
    narrowed_to,
    option_choices,
    option_type,
)
from .loading import AppLoadError, load_app
from .runner import (
    StopSignal,
    check_options,
    configure_logging,
    restore_signal_handler,
    run,
    supervised,
    with_systemd_sockets,
)
from .supervisor import supervise, worker_command

_GROUPS = {
    "binding": "where to listen",
    "application": "the application",
    "proxy": "behind a reverse proxy",
    "tls": "TLS (HTTPS)",
    "logging": "logging",
    "runtime": "runtime",
    "capacity": "capacity (past a limit the answer is 503 or 504)",
    "limits": "limits (a request past one gets a 4xx answer)",
    "timeouts": "timeouts",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_config_options(parser: argparse.ArgumentParser,
                        groups: dict[str, argparse._ArgumentGroup]) -> None:
    for f in dataclasses.fields(Config):
        meta = f.metadata
        kind = option_type(f)
        unit = f" ({meta['unit']})" if meta.get("unit") else ""
        default = "" if f.default in ("", -1, ()) else f" Default: {f.default}."
        help_text = f"{meta['help']}{unit}{default}".replace("%", "%%")
        group = groups[meta["group"]]
        if kind is bool:
            group.add_argument(_flag(f.name), dest=f.name, default=None, help=help_text,
                               action=argparse.BooleanOptionalAction)
            continue
        if kind is tuple:
            group.add_argument(_flag(f.name), dest=f.name, default=None, action="append",
                               help=help_text,
                               metavar=f.name.upper())
            continue
        choices = option_choices(f)
        group.add_argument(_flag(f.name), dest=f.name, default=None, help=help_text,
                           type=functools.partial(choice_value, f) if choices else kind,
                           choices=choices,
                           metavar=f"{{{','.join(choices)}}}" if choices else f.name.upper())


def _option_message(exc: ConfigError, from_env: set[str] | None = None) -> str:
    from_variable = from_env and exc.option in from_env
    name = environment.variable(exc.option) if from_variable else _flag(exc.option)
    return f"{name}: {str(exc).split(': ', 1)[1]}"


def _usage_error(message: str) -> NoReturn:
    """A usage or configuration error: one line on stderr, exit status 2."""
    print(f"aiowsgi serve: error: {_one_line(message)}", file=sys.stderr)
    raise SystemExit(2)


def _one_line(message: str) -> str:
    return " ".join(line.strip() for line in message.splitlines())


class _ServeParser(argparse.ArgumentParser):
    """``serve``'s parser: a bad value is one line naming the option, not the usage of
    fifty options followed by it."""

    def error(self, message: str) -> NoReturn:
        _usage_error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiowsgi", description="An asyncio HTTP/1.1 server for WSGI applications.")
    parser.add_argument("--version", action="version", version=f"aiowsgi {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_ServeParser)
    serve = commands.add_parser(
        "serve", help="serve a WSGI application",
        description="Serve a WSGI application until SIGINT or SIGTERM.")
    serve.add_argument("app", metavar="APP", nargs="?",
                       help="the application as MODULE:ATTRIBUTE, e.g. mysite.wsgi:application "
                            f"(or the {environment.APP} environment variable)")
    serve.add_argument("--version", action="version", version=f"aiowsgi {__version__}")
    groups = {key: serve.add_argument_group(title) for key, title in _GROUPS.items()}
    app = groups["application"]
    app.add_argument("--factory", action="store_true", default=None,
                     help="APP is a function that returns the application; call it.")
    app.add_argument("--app-dir", metavar="DIR", default=None,
                     help="Import APP from this directory. Default: the current directory.")
    _add_config_options(serve, groups)
    serve.epilog = (f"Every option can also be set by an environment variable: "
                    f"{environment.PREFIX} and its name in capitals, e.g. "
                    f"{environment.variable('threads')}=16, "
                    f"{environment.variable('proxy_headers')}=true. The command line wins.")
    return parser


def main(argv: Sequence[str] | None = None,
         environ: Mapping[str, str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; the exit status.

    A usage or configuration error (a bad option value, a file or directory an option
    names that cannot be used, an option whose extra is not installed) exits with status
    2 and one line naming the option; a failure to start (the application cannot be
    imported, an address cannot be listened on) exits with status 1.
    """
    environ = os.environ if environ is None else environ
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        _usage_error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        options = environment.read_options(environ)
    except ValueError as exc:
        _usage_error(str(exc))
    from_env = set(options)
    for f in dataclasses.fields(Config):
        value = getattr(args, f.name)
        if value is not None:
            options[f.name] = tuple(value) if isinstance(value, list) else value
            from_env.discard(f.name)

    def option_error(exc: ConfigError) -> NoReturn:
        _usage_error(f"argument {_option_message(exc, from_env)}")

    try:
        config = Config(**options)
    except ConfigError as exc:
        option_error(exc)
    from_environment = environment.read_app(environ)
    spec = args.app or from_environment.spec
    if not spec:
        _usage_error(f"the application is missing: give APP or set {environment.APP}")
    factory = args.factory if args.factory is not None else from_environment.factory
    app_dir = args.app_dir if args.app_dir is not None else from_environment.app_dir
    if app_dir is not None and not os.path.isdir(app_dir):
        name = "--app-dir" if args.app_dir is not None else environment.APP_DIR
        _usage_error(f"argument {name}: {app_dir!r} is not a directory")
    try:
        _check_usable(config)
    except ConfigError as exc:
        option_error(exc)
    with _stoppable_start():
        try:
            return _load_and_serve(spec, factory, app_dir, config, option_error)
        except StopSignal as stopped:  # while starting, or at the very end of a stop
            logging.getLogger("aiowsgi.error").debug(
                "%s outside the server's own handlers: stopped",
                signal.Signals(stopped.args[0]).name)
            return 0




@contextlib.contextmanager
def _stoppable_start() -> Iterator[None]:
    """A stop signal during start-up (a slow import, an orchestrator that stops a pod right
    after starting it) ends the command quietly with status 0, as one during serving does;
    a SIGHUP then is ignored, as while serving (without a word: logging is not set up yet,
    and a handler must not write to a stream the start may be writing to).

    The handlers stay in place until ``run()`` or the supervisor install their own (and
    put these back when they are done), so no moment of the start is left without one;
    SIGINT stays ignored where it is (a ``--workers`` worker, whose supervisor decides)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def raise_stopped(signum: int, frame: object) -> None:
        nonlocal stopping
        if not stopping:  # one is enough: a second (a supervisor's, after the group's)
            stopping = True  # must not interrupt the stop itself
            raise StopSignal(signum)

    def hung_up(signum: int, frame: object) -> None:
        """Not SIG_IGN: the processes the application starts meanwhile do not inherit it."""

    previous = {}
    for signum, ours in ((signal.SIGTERM, raise_stopped), (signal.SIGINT, raise_stopped),
                         (signal.SIGHUP, hung_up)):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, ours)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            restore_signal_handler(signum, handler)


def _load_and_serve(spec: str, factory: bool, app_dir: str | None, config: Config,
                    option_error: Callable[[ConfigError], NoReturn]) -> int:
    """Import the application and serve it (or supervise its workers); the exit status."""
    role = "worker" if supervised() else ""
    try:
        app = load_app(spec, factory=factory, app_dir=app_dir)
    except AppLoadError as exc:
        try:  # the logging run() would have set up: --log-level debug shows the traceback
            configure_logging(config.log_level, config.log_config, role)
        except ConfigError as config_exc:
            option_error(config_exc)
        if exc.__cause__ is not None:
            logging.getLogger("aiowsgi.error").debug(
                "the application failed to load:", exc_info=exc.__cause__)
        return _failed_to_start(str(exc))
    try:
        if config.workers > 1 or config.reload:
            config = with_systemd_sockets(config)
            configure_logging(config.log_level, config.log_config, "supervisor")
            argv = worker_command(spec) + (["--factory"] if factory else []) + (
                ["--app-dir", app_dir] if app_dir is not None else [])
            return supervise(argv, config)
        run(app, narrowed_to(config, RUN_SCOPES))  # --workers and --reload are ours
    except ConfigError as exc:
        option_error(exc)
    except OSError as exc:
        return _failed_to_start(exc.strerror or str(exc))
    return 0


def _failed_to_start(message: str) -> int:
    """Say why the server did not start, in one line; exit status 1.  A worker logs it,
    so that the line carries its id, as its others do; else it is the command's error."""
    if supervised():
        logging.getLogger("aiowsgi.error").error("cannot start: %s", _one_line(message))
    else:
        print(f"aiowsgi: error: {_one_line(message)}", file=sys.stderr)
    return 1


# options that need an extra: (the module it installs, the extra's name)
_EXTRAS = {"reload": ("watchfiles", "reload"), "metrics_bind": ("prometheus_client", "metrics")}


def _check_usable(config: Config) -> None:
    """A ConfigError for an option that names something this process cannot use, found
    before the application is imported, a socket bound or a worker started."""
    check_options(config)  # the event loop, the TLS files
    for option, (module, extra) in _EXTRAS.items():
        if getattr(config, option) and importlib.util.find_spec(module) is None:
            raise ConfigError(option, f"needs {module}: pip install 'aiowsgi[{extra}]'")
    if config.reload:
        for folder in config.reload_dir:
            if not os.path.isdir(folder):
                raise ConfigError("reload_dir", f"{folder!r} is not a directory")
