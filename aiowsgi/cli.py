"""``aiowsgi serve [options] APP``: argv and the environment in, a running server out.

Every option comes from a field of :class:`~aiowsgi.config.Config`; this module only
turns argv and ``AIOWSGI_<OPTION>`` environment variables (read by
:mod:`aiowsgi.environment`) into a ``Config`` (the command line wins), imports the
application and calls :func:`~aiowsgi.run`.

It speaks as gunicorn and uvicorn users expect: their short flags (``-b``, ``-w``, ``-t``,
``-V``), sizes and times as an operator writes them (``10M``, ``30s``), a ``--help`` that
fits on a screen or two, and a mistake in the command line answered with one line under a
one-line usage rather than the usage of every option.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import logging
import os
import platform
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

from . import __version__, environment
from .config import (
    RUN_SCOPES,
    Config,
    ConfigError,
    GiB,
    KiB,
    MiB,
    narrowed_to,
    option_flags,
    option_type,
    parse_option,
)
from .loading import AppLoadError, load_app
from .runner import (
    StopSignal,
    auto_loop,
    check_options,
    configure_logging,
    restore_signal_handler,
    run,
    supervised,
    with_systemd_sockets,
)
from .supervisor import supervise, worker_command

_GROUPS = {
    "application": "the application and its responses",
    "binding": "where to listen",
    "tls": "TLS (HTTPS)",
    "proxy": "behind a reverse proxy",
    "processes": "processes",
    "runtime": "the event loop and the threads",
    "memory": "memory",
    "capacity": "capacity (past a limit the answer is 503 or 504)",
    "limits": "limits (a request past one gets a 4xx answer)",
    "timeouts": "timeouts",
    "logging": "logging and metrics",
}
_USAGE = "aiowsgi serve [options] APP"
_HINT = "run 'aiowsgi serve --help' for the options"
_COMMANDS = ("serve",)
_METAVARS = {"bytes": "SIZE", "characters": "SIZE", "seconds": "TIME"}


def version() -> str:
    """``aiowsgi 0.2.0 (CPython 3.11.7; loop: uvloop 0.21.0)``: what a bug report needs,
    the loop being the one ``--loop auto`` would pick."""
    return (f"aiowsgi {__version__} ({platform.python_implementation()} "
            f"{platform.python_version()}; loop: {auto_loop()})")


class _Version(argparse.Action):
    """``-V``/``--version``: the versions are looked up only when asked, and the command
    ends before the application is imported."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        print(version())
        parser.exit()


class _HelpFormatter(argparse.HelpFormatter):
    """``--[no-]access-log`` for a flag and its negation, which argparse would write
    ``--access-log, --no-access-log`` on a line of its own: --help stays short."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=28)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, argparse.BooleanOptionalAction):
            return "--[no-]" + action.option_strings[0].removeprefix("--")
        return super()._format_action_invocation(action)


def _add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-V", "--version", action=_Version,
                        help="show the versions of aiowsgi, Python and the loop")


def _add_config_options(groups: dict[str, argparse._ArgumentGroup]) -> None:
    for f in dataclasses.fields(Config):
        group, flags, kind = groups[f.metadata["group"]], option_flags(f), option_type(f)
        if kind is bool:
            group.add_argument(*flags, dest=f.name, default=None, help=_help(f),
                               action=argparse.BooleanOptionalAction)
        elif kind is tuple:
            group.add_argument(*flags, dest=f.name, default=None, action="append",
                               help=_help(f), metavar=_metavar(f))
        else:
            group.add_argument(*flags, dest=f.name, default=None, help=_help(f),
                               type=_reader(f), metavar=_metavar(f))


def _reader(f: dataclasses.Field[Any]) -> Callable[[str], Any]:
    """``parse_option`` for argparse, which puts the flag before its message."""

    def read(text: str) -> Any:
        try:
            return parse_option(f, text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(exc.reason) from None

    return read


def _metavar(f: dataclasses.Field[Any]) -> str:
    """What the value is: SIZE, TIME (explained once, in the epilog), N, or the field's own."""
    metavar: str = f.metadata["metavar"] or _METAVARS.get(f.metadata["unit"], "")
    if metavar:
        return metavar
    return "N" if option_type(f) is int else f.name.upper()


def _help(f: dataclasses.Field[Any]) -> str:
    """The field's help and, in brackets as gunicorn shows it, its default as written on
    the command line (``[1G]``, ``[30s]``, ``[on]``); none for an empty one."""
    default: Any = f.default
    if isinstance(default, bool):
        shown = "on" if default else "off"
    elif f.metadata["unit"] == "seconds":
        shown = _time_text(default)
    elif f.metadata["unit"]:
        shown = _size_text(default)
    else:
        shown = "" if default in ("", -1, ()) else str(default)
    text: str = f.metadata["help"] + (f" [{shown}]" if shown else "")
    return text.replace("%", "%%")  # argparse formats help with %


def _size_text(size: int) -> str:
    """``1G`` for 1073741824: the largest multiple that divides ``size`` (as parsed back)."""
    for suffix, multiple in (("G", GiB), ("M", MiB), ("K", KiB)):
        if size and size % multiple == 0:
            return f"{size // multiple}{suffix}"
    return str(size)


def _time_text(seconds: float) -> str:
    """``30s``, or ``1ms`` below a second."""
    if seconds == 0:
        return "0"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def _option_message(exc: ConfigError, from_env: set[str] | None = None) -> str:
    from_variable = from_env and exc.option in from_env
    name = environment.variable(exc.option) if from_variable else _flag(exc.option)
    return f"{name}: {exc.reason}"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _usage_error(message: str, prog: str = "aiowsgi serve") -> NoReturn:
    """A mistake in the command line: serve's usage, the mistake in one line and where to
    read more, exit status 2 (rather than the usage of fifty options, which buries it)."""
    print(f"usage: {_USAGE}\n{prog}: error: {_one_line(message)}\n{_HINT}", file=sys.stderr)
    raise SystemExit(2)


def _config_error(message: str) -> NoReturn:
    """An option the command line cannot use (from the environment, or naming a file or an
    extra that is not there): one line naming it, exit status 2."""
    print(f"aiowsgi serve: error: {_one_line(message)}", file=sys.stderr)
    raise SystemExit(2)


def _one_line(message: str) -> str:
    return " ".join(line.strip() for line in message.splitlines())


class _Parser(argparse.ArgumentParser):
    """A parser whose errors are usage errors: see :func:`_usage_error`."""

    def error(self, message: str) -> NoReturn:
        _usage_error(message, self.prog)


def _check_command(argv: Sequence[str]) -> None:
    """A command line without its command (``aiowsgi -w 2 app:app``, a habit gunicorn
    gives) is a usage error that shows how to write it."""
    if any(arg in _COMMANDS for arg in argv) or any(
            arg in ("-h", "--help", "-V", "--version") for arg in argv[:1]):
        return
    if not argv:
        _usage_error("the command is missing: aiowsgi serve APP", "aiowsgi")
    if argv[0].startswith("-") or ":" in argv[0]:
        _usage_error(f"the command is missing; did you mean: aiowsgi serve "
                     f"{shlex.join(argv)}", "aiowsgi")
    _usage_error(f"unknown command {argv[0]!r}: the command is serve", "aiowsgi")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aiowsgi",
                     description="An asyncio HTTP/1.1 server for WSGI applications.")
    _add_version(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_Parser)
    serve = commands.add_parser(
        "serve", help="serve a WSGI application", usage=_USAGE,
        formatter_class=_HelpFormatter,
        description="Serve a WSGI application until SIGINT or SIGTERM.",
        epilog="SIZE: bytes, or with K, M or G, binary multiples as in nginx (K = 1024; "
               "64K, 10MB and 1GiB alike). TIME: seconds, or with ms, s, m or h (500ms, "
               f"1.5s, 5m). Each option is also a variable, {environment.PREFIX} and its "
               f"name in capitals ({environment.variable('max_body_size')}=10M, "
               f"{environment.variable('proxy_headers')}=true); the command line wins.")
    _add_version(serve)
    groups = {key: serve.add_argument_group(title) for key, title in _GROUPS.items()}
    app = groups["application"]
    app.add_argument("app", metavar="APP", nargs="?",
                     help="The application as MODULE:ATTRIBUTE, e.g. mysite.wsgi:application "
                          f"(or {environment.APP}).")
    app.add_argument("--factory", action="store_true", default=None,
                     help="APP is a factory: call it for the application.")
    app.add_argument("--app-dir", metavar="DIR", default=None,
                     help="Where to import APP from. [the current directory]")
    _add_config_options(groups)
    return parser


def main(argv: Sequence[str] | None = None,
         environ: Mapping[str, str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; the exit status.

    A mistake in the command line (no command, an unknown option, a value an option cannot
    take, no APP) exits with status 2 after serve's usage, one line naming the option and
    a hint.  An option that cannot be used (a bad ``AIOWSGI_*`` variable, a file or
    directory that is not there, an extra that is not installed) exits with status 2 and
    one line naming it; a failure to start (the application cannot be imported, an
    address cannot be listened on) exits with status 1.
    """
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    _check_command(argv)
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        _usage_error(f"unrecognized arguments: {' '.join(unknown)}")
    config, from_env = _config(args, environ)
    from_environment = environment.read_app(environ)
    spec = args.app or from_environment.spec
    if not spec:
        _usage_error(f"the application is missing: give APP or set {environment.APP}")
    factory = args.factory if args.factory is not None else from_environment.factory
    app_dir = args.app_dir if args.app_dir is not None else from_environment.app_dir
    if app_dir is not None and not os.path.isdir(app_dir):
        name = "--app-dir" if args.app_dir is not None else environment.APP_DIR
        _config_error(f"argument {name}: {app_dir!r} is not a directory")

    def option_error(exc: ConfigError) -> NoReturn:
        _config_error(f"argument {_option_message(exc, from_env)}")

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


def _config(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Config, set[str]]:
    """The options of the environment and the command line (which wins), and those that
    came from the environment: a bad one is reported as its variable, not as a flag."""
    try:
        options = environment.read_options(environ)
    except ValueError as exc:
        _config_error(str(exc))
    from_env = set(options)
    for f in dataclasses.fields(Config):
        value = getattr(args, f.name)
        if value is not None:
            options[f.name] = tuple(value) if isinstance(value, list) else value
            from_env.discard(f.name)
    try:
        return Config(**options), from_env
    except ConfigError as exc:
        if exc.option in from_env:
            _config_error(f"argument {_option_message(exc, from_env)}")
        _usage_error(f"argument {_option_message(exc)}")


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
            raise ConfigError(option, f"needs {module}: pip install 'aiowsgi-server[{extra}]'")
    if config.reload:
        for folder in config.reload_dir:
            if not os.path.isdir(folder):
                raise ConfigError("reload_dir", f"{folder!r} is not a directory")
