"""What the server logged, as pytest's ``caplog`` captured it."""

from __future__ import annotations

import logging

import pytest

ERROR_LOGGER = "aiowsgi.error"


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ERROR_LOGGER and r.levelno >= logging.ERROR]


def assert_logged(caplog: pytest.LogCaptureFixture, exc_type: type[BaseException],
                  text: str) -> None:
    """The app's exception is in the error log, traceback included."""
    for record in error_records(caplog):
        if record.exc_info and isinstance(record.exc_info[1], exc_type) and \
                text in str(record.exc_info[1]):
            assert record.exc_info[2] is not None
            assert "Traceback (most recent call last)" in caplog.text
            return
    raise AssertionError(f"no {exc_type.__name__}({text!r}) logged; got {caplog.text!r}")
