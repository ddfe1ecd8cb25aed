"""Stand-ins for the async fixtures when pytest-asyncio is not active: they say what to
install instead of failing with "fixture not found"."""

from __future__ import annotations

from typing import NoReturn

import pytest

from ._pytest_settings import PYTEST_EXTRA


def _missing(name: str) -> NoReturn:
    pytest.fail(f"{name} is an async fixture and needs pytest-asyncio: {PYTEST_EXTRA}",
                pytrace=False)


@pytest.fixture
def aiowsgi_server() -> NoReturn:
    _missing("aiowsgi_server")


@pytest.fixture
def aiowsgi_client() -> NoReturn:
    _missing("aiowsgi_client")
