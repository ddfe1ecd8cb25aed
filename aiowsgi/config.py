"""Every option aiowsgi has, defined once.

The command line, the keyword arguments of ``serve()``/``run()``/``Server`` and the
README's options table all come from the fields of :class:`Config`; a field's metadata
carries its help text, unit, command-line group and the bounds it is validated against,
so a bad value is reported at start with the option's name, never mid-request.

A field's metadata also says who acts on it (its scope): the server ("server": ``Server``,
``serve()``, ``run()`` and the command line), the process that owns the event loop,
signals and logging ("process": ``run()`` and the command line), or the command line
alone ("command": it starts the supervisor).  An option given to something that would
ignore it is a TypeError naming it, not a setting silently without effect.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal, TypeVar, get_args

from .accesslog import DEFAULT_FORMAT as DEFAULT_ACCESS_FORMAT
from .accesslog import check_format as check_access_format
from .proxy import TrustedProxies

LoopName = Literal["auto", "asyncio", "uvloop"]
Binds = tuple[str, ...]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
Scope = Literal["server", "process", "command"]
T = TypeVar("T")

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class ConfigError(ValueError):
    """An option has a value it cannot take; the message starts with the option's name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.option = name
        self.reason = message  # the message without the name, for the caller to name it


def _opt(default: Any, help: str, *, group: str, unit: str = "",
         minimum: float | None = None, maximum: float | None = None,
         aliases: dict[str, str] | None = None, scope: Scope = "server",
         flags: tuple[str, ...] = (), metavar: str = "", details: str = "") -> Any:
    """A field: ``help`` is the line of ``--help``, ``details`` what the README adds to it;
    ``flags`` are the command line's other names for it (``-b``), ``metavar`` its value's."""
    return field(
        default=default,
        metadata={"help": help, "group": group, "unit": unit, "min": minimum, "max": maximum,
                  "aliases": aliases or {}, "scope": scope, "flags": flags,
                  "metavar": metavar, "details": details},
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Config:
    """The server's configuration: built once at start, validated, then only read."""

    # -- the application and its responses --------------------------------------
    root_path: str = _opt("", "URL prefix the application is mounted under.",
                          group="application", metavar="PATH", details="It becomes "
                          "SCRIPT_NAME and is stripped from PATH_INFO.")
    server_header: bool = _opt(True, "Send 'Server: aiowsgi' if the app sets none.",
                               group="application")
    expose_tracebacks: bool = _opt(False, "Put the traceback in a 500 response (development).",
                                   group="application", details="That of the application "
                                   "error that caused it; for development only.")
    # -- binding ---------------------------------------------------------------
    host: str = _opt("127.0.0.1", "Address to listen on.", group="binding")
    port: int = _opt(8000, "TCP port; 0 picks a free one.", group="binding", minimum=0,
                     maximum=65535, metavar="PORT")
    bind: Binds = _opt((), "Listen on HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N instead "
                       "of host and port; repeatable.", group="binding", flags=("-b",),
                       metavar="ADDR")
    uds: str = _opt("", "Listen on this Unix socket (as --bind unix:PATH).", group="binding",
                    metavar="PATH")
    uds_mode: str = _opt("", "The Unix socket's permissions in octal, e.g. 660.",
                         group="binding", metavar="MODE", details="Default: from the umask.")
    fd: int = _opt(-1, "Listen on this inherited, already bound socket.", group="binding",
                   minimum=-1, metavar="FD", details="-1: none.")
    backlog: int = _opt(2048, "Length of the listen queue.", group="binding", minimum=1,
                        maximum=65535)
    # -- TLS -------------------------------------------------------------------
    ssl_certfile: str = _opt("", "Serve HTTPS with this certificate (PEM).", group="tls",
                             metavar="FILE", details="The file may hold the key and the "
                             "chain too.")
    ssl_keyfile: str = _opt("", "The certificate's key (PEM), if not in its file.",
                            group="tls", metavar="FILE")
    ssl_keyfile_password: str = _opt("", "Password of an encrypted private key.", group="tls",
                                     metavar="PASSWORD")
    ssl_ca_certs: str = _opt("", "Require client certificates from these CAs (PEM).",
                             group="tls", metavar="FILE")
    # -- behind a proxy ----------------------------------------------------------
    proxy_headers: bool = _opt(False, "Believe X-Forwarded-* and Forwarded from trusted "
                               "proxies.", group="proxy", details="X-Forwarded-For, -Proto "
                               "and -Host, or Forwarded, set REMOTE_ADDR, wsgi.url_scheme "
                               "and HTTP_HOST.")
    forwarded_allow_ips: str = _opt("127.0.0.1,::1", "The trusted proxies: addresses and "
                                    "networks, separated by commas; '*' for all, 'unix' for "
                                    "Unix socket peers.", group="proxy", metavar="IPS")
    # -- processes ---------------------------------------------------------------
    workers: int = _opt(1, "Server processes, kept alive by a supervisor.",
                        group="processes", flags=("-w",), minimum=1, maximum=1024,
                        scope="command", details="It binds the listening sockets for them.")
    reuse_port: bool = _opt(True, "With --workers, a socket per worker (Linux).",
                            group="processes", scope="command", details="Each worker gets a "
                            "listening socket of its own on every TCP address, bound with "
                            "SO_REUSEPORT, so that the kernel spreads new connections evenly "
                            "over the workers. While a worker restarts, the connections the "
                            "kernel gives its socket wait for its successor. Off, on other "
                            "systems, and for Unix sockets and inherited ones (fd://, "
                            "systemd), the workers share one socket: whichever wakes first "
                            "takes each connection, often the same one.")
    max_requests: int = _opt(0, "Stop after this many requests (0: never).",
                             group="processes", minimum=0, details="The shutdown is graceful; "
                             "with --workers, or under gunicorn, a fresh worker takes over.")
    reload: bool = _opt(False, "Restart when a Python file changes.",
                        group="processes", scope="command", details="For development; the "
                        "socket is kept. Needs the 'reload' extra.")
    reload_dir: Binds = _opt((), "A directory for --reload to watch; repeatable.",
                             group="processes", scope="command", metavar="DIR",
                             details="Default: the current directory.")
    # -- the event loop and the threads --------------------------------------------
    loop: LoopName = _opt("auto", "Event loop: auto, asyncio or uvloop.", group="runtime",
                          scope="process", metavar="LOOP", details="auto is uvloop when it "
                          "is installed, else asyncio.")
    threads: int = _opt(8, "Worker threads that run the application.", group="runtime",
                        minimum=1, maximum=1024)
    switch_interval: float = _opt(0.001, "How long a thread may keep the GIL from another.",
                                  group="runtime", unit="seconds", minimum=0.0,
                                  scope="process", details="sys.setswitchinterval; Python's "
                                  "default is 5ms, and 0 leaves it. Shorter, the event loop "
                                  "and quick requests wait less behind CPU-heavy views.")
    sched_batch: bool = _opt(True, "Run worker threads under SCHED_BATCH (Linux).",
                             group="runtime", details="Handing one a request then does not "
                             "preempt the event loop. Threads and processes the application "
                             "starts from them inherit it.")
    # -- memory ----------------------------------------------------------------
    body_buffer_size: int = _opt(1 * MiB, "Bodies larger than this are spooled to disk.",
                                 group="memory", unit="bytes", minimum=0,
                                 details="Smaller ones are kept in memory.")
    max_body_memory: int = _opt(64 * MiB, "Request bodies in memory, all together.",
                                group="memory", unit="bytes", minimum=0,
                                details="Past it, bodies are spooled to disk.")
    send_buffer_size: int = _opt(512 * KiB, "Response bytes a thread may have unsent.",
                                 group="memory", unit="bytes", minimum=1 * KiB,
                                 maximum=1 * GiB, details="Past it the application's "
                                 "thread waits for the client to take them.")
    malloc_trim_threshold: int = _opt(4 * MiB, "Free memory glibc's malloc keeps per heap.",
                                      group="memory", unit="bytes", minimum=0,
                                      maximum=1 * GiB, scope="process", details="Up to it, "
                                      "memory a large request freed is kept for reuse rather "
                                      "than returned to the kernel; 0 leaves the C library's "
                                      "default.")
    # -- capacity --------------------------------------------------------------
    max_connections: int = _opt(25_000, "Most open connections; past it, 503.",
                                group="capacity", minimum=1, details="It is lowered to "
                                "what the open-files limit allows.")
    max_queue: int = _opt(1000, "Most requests waiting for a thread; past it, 503.",
                          group="capacity", minimum=0)
    queue_timeout: float = _opt(30.0, "Longest wait for a thread; past it, 503.",
                                group="capacity", unit="seconds", minimum=0.001)
    request_timeout: float = _opt(0.0, "Time the application has to start its response; "
                                  "past it, 504 and its thread is abandoned (0: no limit). -t "
                                  "and --timeout as in gunicorn, whose worker timeout is a "
                                  "request's time limit in its sync workers.",
                                  group="capacity", unit="seconds", minimum=0.0,
                                  flags=("-t", "--timeout"))
    max_abandoned_threads: int = _opt(8, "Threads stuck after a 504 that are replaced.",
                                      group="capacity", minimum=0, details="Past it, "
                                      "capacity shrinks until they finish.")
    # -- limits ----------------------------------------------------------------
    max_request_line: int = _opt(8 * KiB, "Longest request line; longer gets 414.",
                                 group="limits", unit="bytes", minimum=64, maximum=1 * MiB)
    max_header_size: int = _opt(64 * KiB, "Largest request head; larger gets 431.",
                                group="limits", unit="bytes", minimum=256, maximum=16 * MiB)
    max_header_count: int = _opt(100, "Most header fields; more get 431.", group="limits",
                                 minimum=1, maximum=10_000)
    max_body_size: int = _opt(1 * GiB, "Largest request body; larger gets 413.", group="limits",
                              unit="bytes", minimum=0)
    max_chunk_line: int = _opt(4 * KiB, "Longest chunk-size line, extensions included.",
                               group="limits", unit="bytes", minimum=32, maximum=1 * MiB)
    max_chunk_extensions: int = _opt(16 * KiB, "Chunk extensions of one body, all together.",
                                     group="limits", unit="bytes", minimum=0,
                                     maximum=16 * MiB)
    max_trailer_size: int = _opt(16 * KiB, "Largest trailer section of a chunked body.",
                                 group="limits", unit="bytes", minimum=0, maximum=16 * MiB)
    # -- timeouts --------------------------------------------------------------
    header_timeout: float = _opt(10.0, "Time a client has to send a request head; past "
                                 "it, 408.", group="timeouts", unit="seconds", minimum=0.001)
    keepalive_timeout: float = _opt(5.0, "Close kept-alive connections idle this long.",
                                    group="timeouts", unit="seconds", minimum=0.001)
    body_timeout: float = _opt(30.0, "Longest wait for more of a request body.",
                               group="timeouts", unit="seconds", minimum=0.001)
    send_timeout: float = _opt(30.0, "Longest wait for a client to read; past it, the "
                               "response is aborted.", group="timeouts", unit="seconds",
                               minimum=0.001)
    shutdown_delay: float = _opt(0.0, "On SIGTERM or SIGINT, go on serving this long.",
                                 group="timeouts", unit="seconds", minimum=0.0,
                                 scope="process", details="Then the graceful shutdown "
                                 "starts: time for a load balancer to stop sending traffic.")
    graceful_timeout: float = _opt(30.0, "On shutdown, time for requests in flight.",
                                   group="timeouts", unit="seconds", minimum=0.0)
    # -- logging and metrics -----------------------------------------------------
    log_level: LogLevel = _opt("info", "Level of the 'aiowsgi' loggers: critical, error, "
                               "warning, info or debug.", group="logging",
                               aliases={"warn": "warning"}, scope="process", metavar="LEVEL",
                               details="In any case; warn is warning.")
    log_config: str = _opt("", "A logging configuration file, JSON or INI.", group="logging",
                           scope="process", metavar="FILE", details="JSON for dictConfig, "
                           "INI for fileConfig; it replaces the default stderr handler.")
    access_log: bool = _opt(True, "Log each request to 'aiowsgi.access'.",
                            group="logging", details="At level info.")
    access_log_format: str = _opt(DEFAULT_ACCESS_FORMAT, "Format of an access log line, "
                                  "in gunicorn's atoms.", group="logging", metavar="FORMAT",
                                  details="h client, r request line, s status, b body bytes, "
                                  "L seconds, X how it ended and more (see the README).")
    access_log_buffer: int = _opt(1 * MiB, "Log lines not yet written; past it, dropped.",
                                  group="logging", unit="characters", minimum=1,
                                  details="Dropped lines are counted (stats(), and a "
                                  "warning at shutdown): a slow stderr never holds up the "
                                  "server.")
    metrics_bind: str = _opt("", "Serve Prometheus /metrics on this HOST:PORT.",
                             group="logging", scope="process", metavar="ADDR",
                             details="Needs the 'metrics' extra.")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _validate(f, getattr(self, f.name))
        if not self.host:
            raise ConfigError("host", "must not be empty")
        for spec in self.bind:
            _check("bind", parse_bind, spec)
        if (self.ssl_keyfile or self.ssl_ca_certs) and not self.ssl_certfile:
            name = "ssl_keyfile" if self.ssl_keyfile else "ssl_ca_certs"
            raise ConfigError(name, "needs ssl_certfile too")
        if self.metrics_bind and _check("metrics_bind", parse_bind,
                                        self.metrics_bind).kind != "tcp":
            raise ConfigError("metrics_bind", "expected HOST:PORT")
        if self.uds_mode and not (set(self.uds_mode) <= set("01234567")
                                  and len(self.uds_mode) <= 4):
            raise ConfigError("uds_mode", f"expected octal permissions such as 660 "
                              f"(got {self.uds_mode!r})")
        _check("forwarded_allow_ips", TrustedProxies.parse, self.forwarded_allow_ips)
        _check("access_log_format", check_access_format, self.access_log_format)
        if self.root_path and (not self.root_path.startswith("/")
                               or self.root_path.endswith("/")):
            raise ConfigError("root_path", "must be empty or start with '/' and not end "
                              f"with '/' (got {self.root_path!r})")

    def replace(self, **changes: Any) -> Config:
        """A copy with some options changed, validated like the original."""
        unknown = sorted(set(changes) - option_names())
        if unknown:
            raise ConfigError(unknown[0], "no such option")
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _check(name: str, check: Callable[[str], T], text: str) -> T:
    """``check(text)``, its ValueError a ConfigError naming option ``name``."""
    try:
        return check(text)
    except ValueError as exc:
        raise ConfigError(name, str(exc)) from None


def option_names() -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(Config))


SERVER_SCOPES: frozenset[Scope] = frozenset({"server"})  # Server, serve()
RUN_SCOPES: frozenset[Scope] = frozenset({"server", "process"})  # run()

# who acts on the options of a scope, for the error that names one given elsewhere
_TAKEN_BY: dict[Scope, str] = {"command": "the command line (aiowsgi serve)",
                               "process": "run() and the command line"}


def option_scope(name: str) -> Scope:
    """Who acts on option ``name``: "server", "process" or "command" (see the module)."""
    return _FIELDS[name].metadata["scope"]  # type: ignore[no-any-return]


def config_for(caller: str, takes: Collection[Scope], config: Config | None,
               options: Mapping[str, Any]) -> Config:
    """``config`` (default: ``Config()``) with ``options`` replaced, for ``caller``, which
    acts on the options of the scopes ``takes`` only.

    Any other option is a TypeError that names it and who acts on it instead: one given
    as a keyword (whatever its value), or one that ``config`` sets to other than its
    default.  Unknown options stay a ConfigError, as for :meth:`Config.replace`.
    """
    _refuse(caller, "", [name for name in options
                         if name in _FIELDS and option_scope(name) not in takes])
    base = config if config is not None else Config()
    _refuse(caller, "a config that sets ", [
        f.name for f in dataclasses.fields(Config) if f.metadata["scope"] not in takes
        and getattr(base, f.name) != f.default])
    return base.replace(**options) if options else base


def narrowed_to(config: Config, takes: Collection[Scope]) -> Config:
    """``config`` with every option outside the scopes ``takes`` at its default: what
    ``run()`` hands its Server, once it has acted on the process's options itself."""
    outside = {f.name: f.default for f in dataclasses.fields(Config)
               if f.metadata["scope"] not in takes and getattr(config, f.name) != f.default}
    return config.replace(**outside) if outside else config


def _refuse(caller: str, what: str, names: list[str]) -> None:
    if not names:
        return
    parts = []
    for scope, taken_by in _TAKEN_BY.items():
        these = [name for name in names if option_scope(name) == scope]
        if these:
            kind = "they are options" if len(these) > 1 else "it is an option"
            parts.append(f"{', '.join(these)}: {kind} of {taken_by}")
    raise TypeError(f"{caller} does not take {what}{'; nor '.join(parts)}")


def option_type(f: dataclasses.Field[Any]) -> type:
    """The Python type of a field's values (``str`` for Literal choices)."""
    annotation = _annotation(f)
    if annotation is Binds:
        return tuple
    choices = get_args(annotation)
    if choices:
        return type(choices[0])
    return {"str": str, "int": int, "float": float, "bool": bool}[annotation]


def option_choices(f: dataclasses.Field[Any]) -> tuple[str, ...] | None:
    annotation = _annotation(f)
    return None if annotation is Binds else (get_args(annotation) or None)


def choice_value(f: dataclasses.Field[Any], text: str) -> str:
    """A choice option's value as written on the command line or in the environment: in any
    case, or one of its aliases (``warn`` for the log level ``warning``)."""
    value = text.strip().lower()
    return f.metadata["aliases"].get(value, value)  # type: ignore[no-any-return]


# Sizes in binary multiples, as nginx reads them: K = 1024, M = 1024**2, G = 1024**3
# (KB and KiB mean K too); times in seconds, or with ms, s, m or h.
SIZE_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB}
TIME_UNITS: dict[str, Fraction | int] = {"": 1, "ms": Fraction(1, 1000), "s": 1, "m": 60, "h": 3600}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?(?:([kmg])(?:i?b)?|b)?", re.IGNORECASE)
_TIME = re.compile(r"((?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[-+]?[0-9]+)?) ?(ms|s|m|h)?",
                   re.IGNORECASE)


def parse_option(f: dataclasses.Field[Any], text: str) -> Any:
    """An option's value as written in argv or an ``AIOWSGI_*`` variable (lists and flags
    aside): a size (``64K``, ``10MiB``) in bytes or characters, a time (``500ms``, ``5m``)
    in seconds, a choice in any case; a ConfigError names the option."""
    unit = f.metadata["unit"]
    if unit in ("bytes", "characters"):
        return _size(f.name, unit, text)
    if unit == "seconds":
        return _seconds(f.name, text)
    if option_choices(f):
        return choice_value(f, text)
    kind = option_type(f)
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f.name, f"invalid {kind.__name__} value {text!r}") from None


def _size(name: str, unit: str, text: str) -> int:
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ConfigError(name, f"expected a size such as 4096, 64K, 10M or 1G, got {text!r}")
    number = Fraction(match[1]) * SIZE_UNITS[(match[2] or "").lower()]
    if number.denominator != 1:
        raise ConfigError(name, f"{text!r} is not a whole number of {unit}")
    return int(number)


def _seconds(name: str, text: str) -> float:
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ConfigError(name, f"expected a time such as 30, 500ms, 1.5s, 5m or 1h, got {text!r}")
    return float(Fraction(match[1]) * TIME_UNITS[(match[2] or "").lower()])


def _annotation(f: dataclasses.Field[Any]) -> Any:
    annotation = f.type
    if isinstance(annotation, str):  # postponed annotations
        annotation = {"LoopName": LoopName, "LogLevel": LogLevel,
                      "Binds": Binds}.get(annotation, annotation)
    return annotation


@dataclass(frozen=True, slots=True)
class Listen:
    """One place to listen: ``kind`` is "tcp" (host, port), "unix" (path) or "fd" (fd)."""

    kind: str
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1


def parse_bind(spec: str) -> Listen:
    """``HOST:PORT``, ``[IPV6]:PORT``, ``unix:/PATH`` or ``fd://N``; ValueError otherwise."""
    if spec.startswith("unix:"):
        path = spec[5:]
        if not path:
            raise ValueError(f"{spec!r}: a Unix socket needs a path")
        return Listen("unix", path=path)
    if spec.startswith("fd://"):
        text = spec[5:]
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"{spec!r}: expected fd://N with N a file descriptor number")
        return Listen("fd", fd=int(text))
    host, sep, port = spec.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"{spec!r}: expected HOST:PORT, [IPV6]:PORT, unix:/PATH or fd://N")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise ValueError(f"{spec!r}: an IPv6 address goes in brackets, [::1]:8000")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{spec!r}: put an IPv6 address in brackets, [{host}]:{port}")
    if not host:
        raise ValueError(f"{spec!r}: the host is missing (0.0.0.0:{port} for every address)")
    return Listen("tcp", host=host, port=int(port))


def _validate(f: dataclasses.Field[Any], value: Any) -> None:
    expected = option_type(f)
    choices = option_choices(f)
    if expected is tuple:
        ok = isinstance(value, tuple) and all(isinstance(item, str) for item in value)
    elif expected in (int, float):  # an int is a float's value too, a bool neither's
        ok = isinstance(value, int | expected) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(f.name, f"expected {expected.__name__}, got {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(f.name, f"must be one of {', '.join(choices)} (got {value!r})")
    if expected is float and not math.isfinite(value):
        raise ConfigError(f.name, f"must be a finite number (got {value!r})")
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if low is not None and value < low:
        raise ConfigError(f.name, f"must be at least {low} (got {value!r})")
    if high is not None and value > high:
        raise ConfigError(f.name, f"must be at most {high} (got {value!r})")


# what the README's table says of a unit: the text a value takes
UNIT_TEXT = {"bytes": "Bytes, or 64K, 10M, 1G (K = 1024).",
             "characters": "Characters, or 64K, 1M (K = 1024).",
             "seconds": "Seconds, or 500ms, 1.5s, 5m, 1h."}


def options_markdown() -> str:
    """The README's options table, generated from the fields."""
    rows = ["| option | flag | default | meaning |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(Config):
        default = f.default
        if isinstance(default, bool):
            shown = "true" if default else "false"
        elif isinstance(default, tuple):
            shown = ", ".join(default) or "(none)"
        else:
            shown = str(default)
        meta = f.metadata
        text = " ".join(filter(None, (meta["help"], meta["details"], UNIT_TEXT.get(meta["unit"]))))
        flags = ", ".join(f"`{flag}`" for flag in option_flags(f))
        rows.append(f"| `{f.name}` | {flags} | `{shown}` | {text} |")
    return "\n".join(rows)


def option_flags(f: dataclasses.Field[Any]) -> tuple[str, ...]:
    """The command line's names of option ``f``: its own short ones first (``-b``), then
    ``--`` and its name."""
    return (*f.metadata["flags"], "--" + f.name.replace("_", "-"))
