"""The ``AIOWSGI_*`` variables: their format (what the writer writes, the reader reads
back unchanged), and what the command line takes from them.

The property is checked over every field of Config, each set to values other than its
default (a new option without a sample value here fails the test that says so), and
over one Config with every option changed at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from aiowsgi import Config, cli, environment
from aiowsgi.config import option_choices, option_type

from .apps.echo import hello

# Values for options whose text is checked by Config (addresses, paths, formats): a
# number, a flag or a choice gets values made from its type and bounds instead.
SAMPLES: dict[str, list[Any]] = {
    "host": ["0.0.0.0", "::1"],
    "bind": [("127.0.0.1:8001",), ("[::1]:80", "unix:/tmp/a.sock", "fd://3")],
    "uds": ["/tmp/aiowsgi.sock"],
    "uds_mode": ["660", "0600"],
    "ssl_certfile": ["/etc/ssl/cert.pem"],
    "ssl_keyfile": ["/etc/ssl/key.pem"],
    "ssl_keyfile_password": ["secret, with spaces"],
    "ssl_ca_certs": ["/etc/ssl/ca.pem"],
    "root_path": ["/api", "/a/b"],
    "forwarded_allow_ips": ["*", "10.0.0.0/8,unix", ""],
    "access_log_format": ['%(h)s "%(r)s" %(s)s', "%(L)s"],
    "metrics_bind": ["127.0.0.1:9100", "[::1]:9100"],
    "log_config": ["/etc/aiowsgi/logging.json"],
    "reload_dir": [("src",), ("src", "lib")],
}

# Options that only make sense with another one set.
NEEDS = {"ssl_keyfile": {"ssl_certfile": "/etc/ssl/cert.pem"},
         "ssl_ca_certs": {"ssl_certfile": "/etc/ssl/cert.pem"}}

FIELDS = dataclasses.fields(Config)
DEFAULTS = Config()


def _numbers(f: dataclasses.Field[Any]) -> Iterator[Any]:
    kind, default = option_type(f), getattr(DEFAULTS, f.name)
    low, high = f.metadata["min"], f.metadata["max"]
    yield from (low, high)
    yield default + 1
    yield default * 3 // 2 if kind is int else default * 1.5 + 0.25
    if kind is float:
        yield 0.001 if low is None or low <= 0.001 else low + 0.001


def non_defaults(f: dataclasses.Field[Any]) -> list[Any]:
    """Values of ``f`` that Config takes and that are not its default."""
    kind = option_type(f)
    if f.name in SAMPLES:
        candidates: list[Any] = SAMPLES[f.name]
    elif kind is bool:
        candidates = [not f.default]
    elif option_choices(f):
        candidates = list(option_choices(f) or ())
    elif kind in (int, float):
        candidates = [kind(value) for value in _numbers(f) if value is not None]
    else:
        candidates = []
    values = []
    for value in candidates:
        if value == f.default or value in values:
            continue
        try:
            Config(**{**NEEDS.get(f.name, {}), f.name: value})
        except ValueError:
            continue
        values.append(value)
    return values


def round_trip(config: Config) -> Config:
    return Config(**environment.read_options(environment.write_options(config)))


def test_every_option_has_values_to_try() -> None:
    missing = [f.name for f in FIELDS if not non_defaults(f)]
    assert not missing, f"add non-default sample values for {missing} to SAMPLES"


@pytest.mark.parametrize("f", FIELDS, ids=[f.name for f in FIELDS])
def test_each_option_reads_back_as_written(f: dataclasses.Field[Any]) -> None:
    for value in non_defaults(f):
        config = Config(**{**NEEDS.get(f.name, {}), f.name: value})
        written = environment.write_options(config)
        assert environment.variable(f.name) in written
        assert round_trip(config) == config, (f.name, value, written)


def test_every_option_changed_at_once_reads_back_as_written() -> None:
    config = Config(**{f.name: non_defaults(f)[-1] for f in FIELDS})
    assert all(getattr(config, f.name) != f.default for f in FIELDS)
    written = environment.write_options(config)
    assert set(written) == {environment.variable(f.name) for f in FIELDS}
    assert round_trip(config) == config


def test_defaults_are_not_written() -> None:
    assert environment.write_options(Config()) == {}
    assert round_trip(Config()) == Config()


def test_every_variable_has_the_prefix_and_names_are_distinct() -> None:
    names = [environment.APP, environment.FACTORY, environment.APP_DIR, environment.READY_FD,
             environment.SUPERVISED, environment.STATS_FD,
             *(environment.variable(f.name) for f in FIELDS)]
    assert all(name.startswith(environment.PREFIX) for name in names)
    assert len(set(names)) == len(names)


def test_a_value_the_format_cannot_carry_is_refused_when_written() -> None:
    with pytest.raises(ValueError, match="AIOWSGI_RELOAD_DIR: 'my src' cannot be written"):
        environment.write_options(Config(reload_dir=("my src",)))


def test_booleans_in_every_spelling() -> None:
    for text in ("1", "true", "YES", " on "):
        assert environment.read_options({"AIOWSGI_ACCESS_LOG": text}) == {"access_log": True}
    for text in ("0", "False", "no", "OFF"):
        assert environment.read_options({"AIOWSGI_ACCESS_LOG": text}) == {"access_log": False}


def test_the_application_variables() -> None:
    assert environment.read_app({}) == (None, False, None)
    assert environment.read_app({"AIOWSGI_APP": "m:app", "AIOWSGI_FACTORY": "Yes",
                                 "AIOWSGI_APP_DIR": "src"}) == ("m:app", True, "src")


def test_a_worker_serves_the_inherited_sockets_as_one_supervised_worker() -> None:
    config = Config(host="0.0.0.0", port=9000, uds="/tmp/a.sock", threads=3, workers=4,
                    reload=True, reload_dir=("src",), metrics_bind="127.0.0.1:9100",
                    log_level="debug", reuse_port=False)
    worker = environment.worker_environment({"PATH": "/bin"}, config, [5, 6])
    assert worker[environment.SUPERVISED] == "1" and worker["PATH"] == "/bin"
    assert Config(**environment.read_options(worker)) == dataclasses.replace(
        DEFAULTS, bind=("fd://5", "fd://6"), threads=3, log_level="debug")


def test_a_worker_takes_no_option_from_the_inherited_environment() -> None:
    """The supervisor's options are the worker's: a variable the command line overrode,
    or one for the supervisor only (--reload would make each worker a supervisor)."""
    inherited = {"AIOWSGI_THREADS": "4", "AIOWSGI_RELOAD": "true", "AIOWSGI_WORKERS": "3",
                 "AIOWSGI_UDS": "/tmp/b.sock", "AIOWSGI_METRICS_BIND": "127.0.0.1:9100",
                 "AIOWSGI_APP": "m:app", "HOME": "/root"}
    worker = environment.worker_environment(inherited, Config(), [5])
    assert Config(**environment.read_options(worker)) == Config(bind=("fd://5",))
    assert (worker["AIOWSGI_APP"], worker["HOME"]) == ("m:app", "/root")


# -- what the command line reads from them ------------------------------------------------


def test_environment_variables_set_options(served: list[tuple[Any, Config]]) -> None:
    env = {"AIOWSGI_THREADS": "3", "AIOWSGI_SERVER_HEADER": "false",
           "AIOWSGI_SEND_TIMEOUT": "2.5", "AIOWSGI_LOOP": "asyncio"}
    assert cli.main(["serve", "tests.apps.echo:hello"], env) == 0
    config = served[0][1]
    assert (config.threads, config.server_header, config.send_timeout, config.loop) == (
        3, False, 2.5, "asyncio")


def test_app_from_the_environment(served: list[tuple[Any, Config]]) -> None:
    assert cli.main(["serve"], {"AIOWSGI_APP": "tests.apps.echo:hello"}) == 0
    assert served[0][0] is hello


@pytest.mark.parametrize(("env", "message"), [
    ({"AIOWSGI_THREADS": "many"}, "AIOWSGI_THREADS: invalid int value 'many'"),
    ({"AIOWSGI_THREADS": "0"}, "AIOWSGI_THREADS: must be at least 1"),
    ({"AIOWSGI_SERVER_HEADER": "maybe"}, "AIOWSGI_SERVER_HEADER: expected true or false"),
    ({"AIOWSGI_LOOP": "trio"}, "AIOWSGI_LOOP: must be one of"),
    ({"AIOWSGI_ROOT_PATH": "api/"}, "AIOWSGI_ROOT_PATH: must be empty or start with '/'"),
    ({"AIOWSGI_MAX_BODY_SIZE": "10X"},
     "AIOWSGI_MAX_BODY_SIZE: expected a size such as 4096, 64K, 10M or 1G, got '10X'"),
    ({"AIOWSGI_MAX_BODY_SIZE": "-1M"}, "AIOWSGI_MAX_BODY_SIZE: expected a size"),
    ({"AIOWSGI_BODY_BUFFER_SIZE": "1.5.2M"}, "AIOWSGI_BODY_BUFFER_SIZE: expected a size"),
    ({"AIOWSGI_ACCESS_LOG_BUFFER": "0.1K"},
     "AIOWSGI_ACCESS_LOG_BUFFER: '0.1K' is not a whole number of characters"),
    ({"AIOWSGI_MAX_HEADER_SIZE": "1G"}, "AIOWSGI_MAX_HEADER_SIZE: must be at most 16777216"),
    ({"AIOWSGI_KEEPALIVE_TIMEOUT": "5 minutes"},
     "AIOWSGI_KEEPALIVE_TIMEOUT: expected a time such as 30, 500ms, 1.5s, 5m or 1h, "
     "got '5 minutes'"),
    ({"AIOWSGI_GRACEFUL_TIMEOUT": "-1s"}, "AIOWSGI_GRACEFUL_TIMEOUT: expected a time"),
    ({"AIOWSGI_LOG_LEVEL": "loud"}, "AIOWSGI_LOG_LEVEL: must be one of"),
])
def test_bad_environment_values_exit_2_naming_the_variable(
        served: list[tuple[Any, Config]], capsys: pytest.CaptureFixture[str],
        env: dict[str, str], message: str) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "tests.apps.echo:hello"], env)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not served


def test_no_application_anywhere_is_a_usage_error(
        served: list[tuple[Any, Config]], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["serve"], {"AIOWSGI_THREADS": "2"})
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "usage: aiowsgi serve [options] APP",
        "aiowsgi serve: error: the application is missing: give APP or set AIOWSGI_APP",
        "run 'aiowsgi serve --help' for the options"]
    assert not served


def test_sizes_and_times_in_variables(served: list[tuple[Any, Config]]) -> None:
    env = {"AIOWSGI_MAX_BODY_SIZE": "10M", "AIOWSGI_BODY_BUFFER_SIZE": "64KiB",
           "AIOWSGI_SEND_BUFFER_SIZE": "1 MB", "AIOWSGI_ACCESS_LOG_BUFFER": "64k",
           "AIOWSGI_MAX_CHUNK_LINE": "2048", "AIOWSGI_KEEPALIVE_TIMEOUT": "500ms",
           "AIOWSGI_REQUEST_TIMEOUT": "1.5s", "AIOWSGI_GRACEFUL_TIMEOUT": "5m",
           "AIOWSGI_QUEUE_TIMEOUT": "1h", "AIOWSGI_HEADER_TIMEOUT": "7",
           "AIOWSGI_LOG_LEVEL": "WARN"}
    assert cli.main(["serve", "tests.apps.echo:hello"], env) == 0
    config = served[0][1]
    assert (config.max_body_size, config.body_buffer_size, config.send_buffer_size,
            config.access_log_buffer, config.max_chunk_line) == (
        10 * 1024**2, 64 * 1024, 1024**2, 64 * 1024, 2048)
    assert (config.keepalive_timeout, config.request_timeout, config.graceful_timeout,
            config.queue_timeout, config.header_timeout, config.log_level) == (
        0.5, 1.5, 300.0, 3600.0, 7.0, "warning")


def test_sizes_and_times_are_read_with_the_command_lines_reader() -> None:
    assert environment.read_options({"AIOWSGI_MAX_BODY_SIZE": "1G",
                                     "AIOWSGI_SWITCH_INTERVAL": "2ms"}) == {
        "max_body_size": 1024**3, "switch_interval": 0.002}


@pytest.mark.parametrize(("env", "message"), [
    ({"AIOWSGI_APP_DIR": "/nonexistent/aiowsgi"},
     "argument AIOWSGI_APP_DIR: '/nonexistent/aiowsgi' is not a directory"),
    ({"AIOWSGI_RELOAD": "true", "AIOWSGI_RELOAD_DIR": ".,/nonexistent/aiowsgi"},
     "argument AIOWSGI_RELOAD_DIR: '/nonexistent/aiowsgi' is not a directory"),
    ({"AIOWSGI_LOG_CONFIG": "/nonexistent/aiowsgi.json"},
     "argument AIOWSGI_LOG_CONFIG: cannot use '/nonexistent/aiowsgi.json'"),
    ({"AIOWSGI_SSL_CERTFILE": "/nonexistent/aiowsgi.pem"},
     "argument AIOWSGI_SSL_CERTFILE: cannot load '/nonexistent/aiowsgi.pem'"),
])
def test_unusable_files_from_the_environment_exit_2_naming_the_variable(
        served: list[tuple[Any, Config]], capsys: pytest.CaptureFixture[str],
        env: dict[str, str], message: str) -> None:
    # An application that fails to load: the option is still what is reported.
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "tests.apps.factories:broken_factory", "--factory"], env)
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"aiowsgi serve: error: {message}"), err
