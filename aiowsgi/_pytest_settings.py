"""What every module of the pytest plugin shares: a test's setting for re-raising
application errors, and the hint to install the plugin's extra.

The plugin (:mod:`aiowsgi.pytest_plugin`) registers the async fixtures, or stand-ins for
them, from modules of their own; they read these from here, so that none of them imports
the plugin that imports it.
"""

from __future__ import annotations

import pytest

PYTEST_EXTRA = "pip install 'aiowsgi-server[pytest]'"


def raise_app_errors(request: pytest.FixtureRequest) -> bool:
    """This test's default for re-raising application errors (marker, then ini)."""
    marker = request.node.get_closest_marker("aiowsgi")
    if marker is not None and "raise_app_errors" in marker.kwargs:
        return bool(marker.kwargs["raise_app_errors"])
    return bool(request.config.getini("aiowsgi_raise_app_errors"))
