"""The ``AIOWSGI_*`` environment variables: every name, the one reader and the one writer.

Every option of :class:`~aiowsgi.config.Config` is also a variable, ``AIOWSGI_`` and its
name in capitals (``AIOWSGI_THREADS=16``).  The command line reads them (its own flags
win); the ``--workers`` supervisor writes them for each worker it starts, which reads
them back as a command line does.  So the format is defined here once, next to Config:
a boolean is ``true``/``false`` (also 1/0, yes/no, on/off when read), several values
are separated by commas (or spaces when read), anything else is the value as text, read
as the command line reads it (:func:`~aiowsgi.config.parse_option`: sizes and times with
their units, ``AIOWSGI_MAX_BODY_SIZE=10M``, ``AIOWSGI_KEEPALIVE_TIMEOUT=500ms``).

Here too are the names of the variables that are not options: the application
(``AIOWSGI_APP``, ``AIOWSGI_FACTORY``, ``AIOWSGI_APP_DIR``) and those the supervisor sets
for its workers only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from .config import Config, ConfigError, option_type, parse_option

PREFIX = "AIOWSGI_"

APP = "AIOWSGI_APP"  # the application as MODULE:ATTRIBUTE, when no APP argument is given
FACTORY = "AIOWSGI_FACTORY"  # true: APP is a function that returns the application
APP_DIR = "AIOWSGI_APP_DIR"  # the directory APP is imported from
READY_FD = "AIOWSGI_READY_FD"  # in a worker: the pipe that tells the supervisor it serves
SUPERVISED = "AIOWSGI_SUPERVISED"  # in a worker, "1": signals come from the supervisor
STATS_FD = "AIOWSGI_STATS_FD"  # in a supervised worker: where the supervisor asks for counters

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def variable(option: str) -> str:
    """The variable that sets ``option``: ``AIOWSGI_THREADS`` for ``threads``."""
    return PREFIX + option.upper()


def read_options(environ: Mapping[str, str]) -> dict[str, Any]:
    """The options set by ``AIOWSGI_<OPTION>`` variables; ValueError names a bad one.

    The values are typed but not validated: ``Config(**options)`` does that, and the
    caller names the variable of the option its ConfigError names (see :func:`variable`).
    """
    options: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        text = environ.get(variable(f.name))
        if text is None:
            continue
        kind = option_type(f)
        if kind is tuple:  # several values: separated by commas or spaces
            options[f.name] = tuple(text.replace(",", " ").split())
            continue
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(f"{variable(f.name)}: expected true or false, got {text!r}")
            options[f.name] = lowered in _TRUE
            continue
        try:
            options[f.name] = parse_option(f, text)
        except ConfigError as exc:
            raise ValueError(f"{variable(f.name)}: {exc.reason}") from None
    return options


class AppVariables(NamedTuple):
    """The application as the environment names it (None: not set)."""

    spec: str | None
    factory: bool
    app_dir: str | None


def read_app(environ: Mapping[str, str]) -> AppVariables:
    """``AIOWSGI_APP``, ``AIOWSGI_FACTORY`` (true or not) and ``AIOWSGI_APP_DIR``."""
    return AppVariables(environ.get(APP),
                        environ.get(FACTORY, "").strip().lower() in _TRUE,
                        environ.get(APP_DIR))


def write_options(config: Config) -> dict[str, str]:
    """``config`` as variables: one for every option whose value is not its default, so
    that ``Config(**read_options(write_options(config))) == config``."""
    written = {}
    defaults = Config()
    for f in dataclasses.fields(Config):
        value: Any = getattr(config, f.name)
        if value == getattr(defaults, f.name):
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, tuple):
            unwritable = [item for item in value if "," in item or item.split() != [item]]
            if unwritable:
                raise ValueError(f"{variable(f.name)}: {unwritable[0]!r} cannot be written "
                                 "as one of several values (it has a comma or a space)")
            text = ",".join(value)
        else:
            text = str(value)
        written[variable(f.name)] = text
    return written


def worker_environment(inherited: Mapping[str, str], config: Config,
                       fds: Iterable[int]) -> dict[str, str]:
    """The environment of a ``--workers`` worker that serves as ``config`` says.

    The inherited variables that set an option are dropped: the worker's options are the
    supervisor's, the command line's included, whatever the environment said (an
    ``AIOWSGI_RELOAD=true`` kept would make each worker a supervisor in turn).  Written
    instead: ``config`` on the sockets the worker inherits (``fd://N``) rather than its
    addresses, as one worker, without the supervisor's own options (--reload,
    --reuse-port, --metrics-bind: the supervisor serves the workers' metrics), and told
    that it is supervised.
    """
    options = {variable(f.name) for f in dataclasses.fields(Config)}
    environ = {name: value for name, value in inherited.items() if name not in options}
    defaults = Config()
    worker = config.replace(
        bind=tuple(f"fd://{fd}" for fd in fds), uds="", fd=defaults.fd, host=defaults.host,
        port=defaults.port, workers=1, reload=False, reload_dir=(), metrics_bind="",
        reuse_port=defaults.reuse_port)
    return {**environ, **write_options(worker), SUPERVISED: "1"}
