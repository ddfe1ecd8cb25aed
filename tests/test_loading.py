"""load_app: MODULE:ATTRIBUTE to a WSGI application, or an AppLoadError that says why.

The command line's own tests run it in a process (tests/test_cli.py); these call it the
way the pytest plugin does, in the test's own process.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiowsgi.loading import AppLoadError, load_app

MODULE = textwrap.dedent("""
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"loaded"]

    class holder:
        app = staticmethod(app)

    def make_app():
        return app

    number = 42
""")


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory with ``loadme.py``; the import is forgotten afterwards."""
    (tmp_path / "loadme.py").write_text(MODULE)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "loadme", raising=False)
    yield tmp_path
    sys.modules.pop("loadme", None)


@pytest.mark.parametrize(("spec", "factory"), [
    ("loadme:app", False), ("loadme:holder.app", False), ("loadme:make_app", True)])
def test_an_application_is_loaded(app_dir: Path, spec: str, factory: bool) -> None:
    app = load_app(spec, factory=factory, app_dir=str(app_dir))
    assert app({}, lambda status, headers: None) == [b"loaded"]


@pytest.mark.parametrize(("spec", "factory", "message"), [
    ("loadme", False, "APP must look like MODULE:ATTRIBUTE, got 'loadme'"),
    ("loadme:nope", False, "module 'loadme' has no attribute 'nope'"),
    ("loadme:number", False, "'loadme:number' is not callable (it is int)"),
    ("loadme:app", True, "the factory 'loadme:app' failed: TypeError:"),
    ("loadme_absent:app", False, "cannot import module 'loadme_absent'"),
])
def test_what_cannot_be_loaded_says_why(app_dir: Path, spec: str, factory: bool,
                                        message: str) -> None:
    with pytest.raises(AppLoadError) as info:
        load_app(spec, factory=factory, app_dir=str(app_dir))
    assert message in str(info.value)


def test_app_dir_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match=r"--app-dir '.*nowhere' is not a directory"):
        load_app("loadme:app", app_dir=str(tmp_path / "nowhere"))
