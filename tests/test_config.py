"""The ``Config`` dataclass: defaults, metadata the CLI relies on, and validation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import pytest

from aiowsgi.cli import _GROUPS
from aiowsgi.config import (
    Config,
    ConfigError,
    choice_value,
    option_choices,
    option_flags,
    option_names,
    option_scope,
    option_type,
    options_markdown,
    parse_option,
)

FIELDS = dataclasses.fields(Config)
FIELDS_BY_NAME = {f.name: f for f in FIELDS}


def _ids(fields: Iterable[dataclasses.Field[Any]]) -> list[str]:
    return [f.name for f in fields]


def _of_type(kind: type) -> list[dataclasses.Field[Any]]:
    return [f for f in FIELDS if option_type(f) is kind and option_choices(f) is None]


CHOICE_FIELDS = [f for f in FIELDS if option_choices(f) is not None]
NUMERIC_FIELDS = _of_type(int) + _of_type(float)
WITH_MIN = [f for f in NUMERIC_FIELDS if f.metadata.get("min") is not None]
WITH_MAX = [f for f in NUMERIC_FIELDS if f.metadata.get("max") is not None]
BOUNDED = [f for f in NUMERIC_FIELDS if f in WITH_MIN or f in WITH_MAX]


def _valid_with(name: str, value: Any) -> dict[str, Any]:
    return {name: value}


def _assert_rejected(name: str, value: Any, *, via_replace: bool = False) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        if via_replace:
            Config().replace(**{name: value})
        else:
            Config(**{name: value})
    error = info.value
    assert str(error).startswith(f"{name}: "), str(error)
    assert error.option == name
    assert isinstance(error, ValueError)
    return error


# -- defaults and metadata ------------------------------------------------------------


def test_defaults_are_valid() -> None:
    config = Config()
    for f in FIELDS:
        assert getattr(config, f.name) == f.default
    # Re-validating every default explicitly goes through the same path.
    defaults: dict[str, Any] = {f.name: f.default for f in FIELDS}
    assert Config(**defaults) == config


def test_there_are_options_of_every_kind() -> None:
    # The parametrized tests below would silently test nothing otherwise.
    assert CHOICE_FIELDS
    assert _of_type(int) and _of_type(float) and _of_type(bool) and _of_type(str)
    assert WITH_MIN and WITH_MAX


@pytest.mark.parametrize("f", FIELDS, ids=_ids(FIELDS))
def test_every_field_has_help_group_and_known_type(f: dataclasses.Field[Any]) -> None:
    help_text = f.metadata.get("help")
    assert isinstance(help_text, str) and help_text.strip()
    assert help_text.rstrip().endswith((".", ")"))
    assert "%" not in help_text  # argparse would try to format it
    assert f.metadata.get("group") in _GROUPS
    kind = option_type(f)
    assert kind in (str, int, float, bool, tuple)
    choices = option_choices(f)
    if choices is not None:
        assert kind is str
        assert all(isinstance(choice, str) for choice in choices)
        assert f.default in choices
    assert isinstance(f.default, kind)
    if kind in (int, float):
        assert isinstance(f.metadata.get("unit", ""), str)
    assert f.metadata["unit"] in ("", "bytes", "characters", "seconds")
    details = f.metadata["details"]
    assert isinstance(details, str) and (not details or details.endswith((".", ")")))
    assert "%" not in details


def test_option_names_match_fields() -> None:
    assert option_names() == frozenset(FIELDS_BY_NAME)


@pytest.mark.parametrize("f", BOUNDED, ids=_ids(BOUNDED))
def test_bounds_themselves_are_accepted(f: dataclasses.Field[Any]) -> None:
    kind = option_type(f)
    for bound in (f.metadata.get("min"), f.metadata.get("max")):
        if bound is None:
            continue
        value = kind(bound)
        config = Config(**_valid_with(f.name, value))
        assert getattr(config, f.name) == value


@pytest.mark.parametrize("f", _of_type(float), ids=_ids(_of_type(float)))
def test_float_option_accepts_int(f: dataclasses.Field[Any]) -> None:
    assert getattr(Config(**_valid_with(f.name, 5)), f.name) == 5


# -- rejected values ------------------------------------------------------------------


WRONG_TYPE: dict[type, list[Any]] = {
    str: [1, b"127.0.0.1", None],
    int: ["8", 8.0, None],
    float: ["1.5", None, 1j],
    bool: [1, 0, "yes", None],
    tuple: ["127.0.0.1:80", ["127.0.0.1:80"], (80,), None],
}


@pytest.mark.parametrize("f", FIELDS, ids=_ids(FIELDS))
def test_wrong_type_is_rejected(f: dataclasses.Field[Any]) -> None:
    for value in WRONG_TYPE[option_type(f)]:
        _assert_rejected(f.name, value)


@pytest.mark.parametrize("f", _of_type(int), ids=_ids(_of_type(int)))
@pytest.mark.parametrize("value", [True, False])
def test_bool_given_for_int_is_rejected(f: dataclasses.Field[Any], value: bool) -> None:
    _assert_rejected(f.name, value)


@pytest.mark.parametrize("f", _of_type(float), ids=_ids(_of_type(float)))
@pytest.mark.parametrize("value", [True, False])
def test_bool_given_for_float_is_rejected(f: dataclasses.Field[Any], value: bool) -> None:
    _assert_rejected(f.name, value)


@pytest.mark.parametrize("f", WITH_MIN, ids=_ids(WITH_MIN))
def test_below_min_is_rejected(f: dataclasses.Field[Any]) -> None:
    low = f.metadata["min"]
    value = low - 1 if option_type(f) is int else low - 0.0005
    error = _assert_rejected(f.name, value)
    assert "at least" in str(error)


@pytest.mark.parametrize("f", WITH_MAX, ids=_ids(WITH_MAX))
def test_above_max_is_rejected(f: dataclasses.Field[Any]) -> None:
    high = f.metadata["max"]
    value = high + 1 if option_type(f) is int else high + 0.5
    error = _assert_rejected(f.name, value)
    assert "at most" in str(error)


@pytest.mark.parametrize("f", _of_type(float), ids=_ids(_of_type(float)))
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
def test_non_finite_float_is_rejected(f: dataclasses.Field[Any], value: float) -> None:
    error = _assert_rejected(f.name, value)
    assert "finite" in str(error)


@pytest.mark.parametrize("f", CHOICE_FIELDS, ids=_ids(CHOICE_FIELDS))
def test_choice_not_in_list_is_rejected(f: dataclasses.Field[Any]) -> None:
    choices = option_choices(f)
    assert choices is not None
    for value in ("nope", "", choices[0].upper(), f" {choices[0]}"):
        error = _assert_rejected(f.name, value)
        assert "must be one of" in str(error)


@pytest.mark.parametrize("f", CHOICE_FIELDS, ids=_ids(CHOICE_FIELDS))
def test_every_choice_is_accepted(f: dataclasses.Field[Any]) -> None:
    for choice in option_choices(f) or ():
        assert getattr(Config(**_valid_with(f.name, choice)), f.name) == choice


@pytest.mark.parametrize("f", CHOICE_FIELDS, ids=_ids(CHOICE_FIELDS))
def test_choices_are_read_in_any_case(f: dataclasses.Field[Any]) -> None:
    # The command line and the environment read them so; Config itself takes them exact.
    for choice in option_choices(f) or ():
        for text in (choice, choice.upper(), choice.title(), f" {choice} "):
            assert choice_value(f, text) == choice
    assert choice_value(f, "nope") == "nope"  # left for Config to refuse


@pytest.mark.parametrize("f", CHOICE_FIELDS, ids=_ids(CHOICE_FIELDS))
def test_aliases_name_choices(f: dataclasses.Field[Any]) -> None:
    for alias, choice in f.metadata["aliases"].items():
        assert alias not in (option_choices(f) or ())
        assert choice in (option_choices(f) or ())
        assert choice_value(f, alias.upper()) == choice


def test_warn_is_the_log_level_warning() -> None:
    f = FIELDS_BY_NAME["log_level"]
    assert choice_value(f, "warn") == choice_value(f, "Warn") == "warning"
    assert choice_value(FIELDS_BY_NAME["loop"], "warn") == "warn"  # only log_level's


# -- values written as text (argv, AIOWSGI_*) ---------------------------------------------

SIZES = [f for f in FIELDS if f.metadata["unit"] in ("bytes", "characters")]
TIMES = [f for f in FIELDS if f.metadata["unit"] == "seconds"]

SIZE_TEXTS = [("4096", 4096), ("0", 0), ("10M", 10 * 1024**2), ("10MB", 10 * 1024**2),
              ("10MiB", 10 * 1024**2), ("10m", 10 * 1024**2), ("64k", 64 * 1024),
              ("64K", 64 * 1024), ("64KiB", 64 * 1024), ("64kb", 64 * 1024), ("1G", 1024**3),
              ("1GiB", 1024**3), ("1.5K", 1536), ("0.5M", 512 * 1024), (" 2M ", 2 * 1024**2),
              ("2 MB", 2 * 1024**2), ("100B", 100), ("100b", 100)]
BAD_SIZES = ["10X", "-1M", "-1", "+1M", "1.5.2M", "", " ", "M", "K10", "1.5", "0.1K", "1e3",
             "10KK", "10iB", "10 K B", "nan", "inf", "1_000", "\u0661\u0660", "10T", "0x10",
             "1,5M"]
TIME_TEXTS = [("30", 30.0), ("0", 0.0), ("30s", 30.0), ("5m", 300.0), ("500ms", 0.5),
              ("1h", 3600.0), ("1.5s", 1.5), ("0.25", 0.25), (".5", 0.5), ("2.", 2.0),
              ("1e-3", 0.001), ("5MS", 0.005), ("1ms", 0.001), (" 10 s ", 10.0), ("1.5h", 5400.0)]
BAD_TIMES = ["5x", "-1s", "-1", "+1", "1.5.2s", "", "s", "ms", "nan", "inf", "1d", "5 minutes",
             "1m30s", "\u0665s", "1e", "5sec", "1_0"]


@pytest.mark.parametrize("f", SIZES, ids=_ids(SIZES))
def test_every_size_option_takes_binary_multiples(f: dataclasses.Field[Any]) -> None:
    for text, value in SIZE_TEXTS:
        assert parse_option(f, text) == value, text
        assert type(parse_option(f, text)) is int


@pytest.mark.parametrize("f", SIZES, ids=_ids(SIZES))
@pytest.mark.parametrize("text", BAD_SIZES)
def test_a_size_that_is_not_one_is_refused_naming_the_option(f: dataclasses.Field[Any],
                                                             text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_option(f, text)
    assert info.value.option == f.name
    assert str(info.value).startswith(f"{f.name}: ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("f", TIMES, ids=_ids(TIMES))
def test_every_time_option_takes_units(f: dataclasses.Field[Any]) -> None:
    for text, value in TIME_TEXTS:
        assert parse_option(f, text) == value, text
        assert type(parse_option(f, text)) is float


@pytest.mark.parametrize("f", TIMES, ids=_ids(TIMES))
@pytest.mark.parametrize("text", BAD_TIMES)
def test_a_time_that_is_not_one_is_refused_naming_the_option(f: dataclasses.Field[Any],
                                                             text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_option(f, text)
    assert info.value.option == f.name
    assert info.value.reason == f"expected a time such as 30, 500ms, 1.5s, 5m or 1h, got {text!r}"


def test_the_sizes_and_times_are_those_of_bytes_characters_and_seconds() -> None:
    assert {f.name for f in SIZES} == {
        "access_log_buffer", "body_buffer_size", "max_body_memory", "send_buffer_size",
        "malloc_trim_threshold", "max_request_line", "max_header_size", "max_body_size",
        "max_chunk_line", "max_chunk_extensions", "max_trailer_size"}
    assert {f.name for f in TIMES} == {
        "switch_interval", "queue_timeout", "request_timeout", "header_timeout",
        "keepalive_timeout", "body_timeout", "send_timeout", "shutdown_delay",
        "graceful_timeout"}
    # every other number is a count, a port or a descriptor: plain integers only
    for f in NUMERIC_FIELDS:
        if f not in SIZES and f not in TIMES:
            assert option_type(f) is int
            assert parse_option(f, "12") == 12
            with pytest.raises(ConfigError, match=rf"^{f.name}: invalid int value '12K'$"):
                parse_option(f, "12K")


def test_a_size_names_its_unit_when_it_is_not_whole() -> None:
    with pytest.raises(ConfigError) as info:
        parse_option(FIELDS_BY_NAME["max_body_size"], "0.1K")
    assert info.value.reason == "'0.1K' is not a whole number of bytes"
    with pytest.raises(ConfigError) as info:
        parse_option(FIELDS_BY_NAME["max_body_size"], "10X")
    assert info.value.reason == "expected a size such as 4096, 64K, 10M or 1G, got '10X'"


def test_other_values_from_text() -> None:
    assert parse_option(FIELDS_BY_NAME["log_level"], "Info") == "info"
    assert parse_option(FIELDS_BY_NAME["log_level"], "WARN") == "warning"
    assert parse_option(FIELDS_BY_NAME["loop"], "UVLOOP") == "uvloop"
    assert parse_option(FIELDS_BY_NAME["host"], "::1") == "::1"
    assert parse_option(FIELDS_BY_NAME["fd"], "-1") == -1
    with pytest.raises(ConfigError, match=r"^threads: invalid int value 'many'$"):
        parse_option(FIELDS_BY_NAME["threads"], "many")


def test_bounds_are_written_as_numbers() -> None:
    with pytest.raises(ConfigError) as info:
        Config(max_request_line=2 * 1024**2)
    assert str(info.value) == "max_request_line: must be at most 1048576 (got 2097152)"
    with pytest.raises(ConfigError) as info:
        Config(queue_timeout=0.0)
    assert str(info.value) == "queue_timeout: must be at least 0.001 (got 0.0)"


# -- flags and the README's table ---------------------------------------------------------


def test_gunicorns_short_flags() -> None:
    flags = {f.name: option_flags(f) for f in FIELDS if f.metadata["flags"]}
    assert flags == {"bind": ("-b", "--bind"), "workers": ("-w", "--workers"),
                     "request_timeout": ("-t", "--timeout", "--request-timeout")}
    every = [flag for f in FIELDS for flag in option_flags(f)]
    assert len(every) == len(set(every))
    assert not {"-h", "--help", "-V", "--version"} & set(every)
    assert "gunicorn" in FIELDS_BY_NAME["request_timeout"].metadata["help"]


def test_the_readme_table_says_the_flags_the_units_and_everything() -> None:
    rows = {line.split(" | ")[0].strip("| `"): line
            for line in options_markdown().splitlines()[2:]}
    assert set(rows) == option_names()
    assert "| `-b`, `--bind` |" in rows["bind"]
    assert "| `-t`, `--timeout`, `--request-timeout` |" in rows["request_timeout"]
    for f in FIELDS:
        for text in (f.metadata["help"], f.metadata["details"]):
            assert text in rows[f.name]
    for f in SIZES:
        assert "K = 1024" in rows[f.name]
    for f in TIMES:
        assert "500ms" in rows[f.name]


# where --help shows each option (cli._GROUPS gives the titles)
GROUPS = {
    "application": {"root_path", "server_header", "expose_tracebacks"},
    "binding": {"host", "port", "bind", "uds", "uds_mode", "fd", "backlog"},
    "tls": {"ssl_certfile", "ssl_keyfile", "ssl_keyfile_password", "ssl_ca_certs"},
    "proxy": {"proxy_headers", "forwarded_allow_ips"},
    "processes": {"workers", "reuse_port", "max_requests", "reload", "reload_dir"},
    "runtime": {"loop", "threads", "switch_interval", "sched_batch"},
    "memory": {"body_buffer_size", "max_body_memory", "send_buffer_size",
               "malloc_trim_threshold"},
    "capacity": {"max_connections", "max_queue", "queue_timeout", "request_timeout",
                 "max_abandoned_threads"},
    "limits": {"max_request_line", "max_header_size", "max_header_count", "max_body_size",
               "max_chunk_line", "max_chunk_extensions", "max_trailer_size"},
    "timeouts": {"header_timeout", "keepalive_timeout", "body_timeout", "send_timeout",
                 "shutdown_delay", "graceful_timeout"},
    "logging": {"log_level", "log_config", "access_log", "access_log_format",
                "access_log_buffer", "metrics_bind"},
}


def test_every_option_is_in_its_group() -> None:
    assert list(GROUPS) == list(_GROUPS)
    found: dict[str, set[str]] = {}
    for f in FIELDS:
        found.setdefault(f.metadata["group"], set()).add(f.name)
    assert found == GROUPS


def test_empty_host_is_rejected() -> None:
    _assert_rejected("host", "")


def test_limits_are_independent() -> None:
    # The smallest head size is usable without lowering the request-line limit: a
    # request line longer than the head limit is refused by the head limit (431).
    config = Config(max_header_size=256)
    assert config.max_header_size == 256
    assert config.max_request_line > config.max_header_size


# -- replace and immutability ---------------------------------------------------------


def test_replace_returns_a_changed_copy() -> None:
    config = Config()
    other = config.replace(port=0, threads=2, loop="asyncio")
    assert (other.port, other.threads, other.loop) == (0, 2, "asyncio")
    assert config == Config()
    assert other.host == config.host
    assert config.replace() == config


@pytest.mark.parametrize(
    ("name", "value"),
    [("port", 70000), ("threads", 0), ("threads", True), ("loop", "nope"),
     ("send_timeout", math.nan), ("server_header", 1), ("host", "")],
)
def test_replace_validates(name: str, value: Any) -> None:
    _assert_rejected(name, value, via_replace=True)


def test_replace_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError) as info:
        Config().replace(prot=8080)
    assert str(info.value).startswith("prot: ")
    assert info.value.option == "prot"
    with pytest.raises(ConfigError, match=r"^bogus: "):
        Config().replace(port=0, bogus=1)


def test_constructor_rejects_unknown_names_and_positionals() -> None:
    with pytest.raises(TypeError):
        Config(prot=8080)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Config("0.0.0.0")  # type: ignore[call-arg]


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del config.port
    with pytest.raises((AttributeError, TypeError)):
        config.not_an_option = 1  # type: ignore[attr-defined]
    assert config.port == 8000
    assert hash(config) == hash(Config())


# -- scopes: who acts on an option ------------------------------------------------------


def test_every_option_has_a_scope() -> None:
    assert {option_scope(f.name) for f in FIELDS} == {"server", "process", "command"}


def test_the_options_no_server_acts_on() -> None:
    """Read from the code: Server and the connections read none of these; run() and the
    command line act on the process ones, only the command line on the command ones."""
    outside = {f.name: option_scope(f.name) for f in FIELDS if option_scope(f.name) != "server"}
    assert outside == {
        "loop": "process", "log_level": "process", "log_config": "process",
        "malloc_trim_threshold": "process", "shutdown_delay": "process",
        "metrics_bind": "process", "switch_interval": "process",
        "workers": "command", "reload": "command", "reload_dir": "command",
        "reuse_port": "command",
    }
