"""load_app: MODULE:ATTRIBUTE to a WSGI application, or an AppLoadError that says why;
check_application: what cannot be a WSGI application (an ASGI one) is refused, what can
is not, whatever its shape.

The command line's own tests run it in a process (tests/test_cli.py); these call it the
way the pytest plugin does, in the test's own process.
"""

from __future__ import annotations

import functools
import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiowsgi.loading import AppLoadError, check_application, load_app

from .apps import notwsgi

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


# -- what cannot be a WSGI application --------------------------------------------------

ASGI_SERVER = "but aiowsgi serves WSGI applications: serve it with an ASGI server such as uvicorn"


@pytest.mark.parametrize(("app", "message"), [
    (notwsgi.asgi_function, "tests.apps.notwsgi.asgi_function looks like an ASGI application "
                            "(async def asgi_function(scope, receive, send))"),
    (notwsgi.asgi_object, "the tests.apps.notwsgi.ASGIApp object looks like an ASGI "
                          "application (async def __call__(self, scope, receive, send))"),
    (notwsgi.ASGI2, "tests.apps.notwsgi.ASGI2 looks like an ASGI application (async def "
                    "__call__(self, receive, send))"),
    (notwsgi.three_arguments, "the tests.apps.notwsgi.ThreeArguments object looks like an "
                              "ASGI application (it takes three arguments, (scope, receive, "
                              "send), where WSGI passes two)"),
    (notwsgi.async_generator, "tests.apps.notwsgi.async_generator looks like an ASGI "
                              "application (async def async_generator(environ, "
                              "start_response))"),
    (notwsgi.decorated_asgi, "tests.apps.notwsgi.asgi_function looks like an ASGI "
                             "application (async def asgi_function(scope, receive, send))"),
    (functools.partial(notwsgi.asgi_function, {}),
     "functools.partial(tests.apps.notwsgi.asgi_function) looks like an ASGI application "
     "(async def asgi_function(receive, send))"),
    (notwsgi.ASGIApp().__call__, "tests.apps.notwsgi.ASGIApp.__call__ looks like an ASGI "
                                 "application (async def __call__(scope, receive, send))"),
], ids=["function", "object", "asgi2-class", "three-arguments", "async-generator",
        "decorated", "partial", "bound-method"])
def test_an_asgi_application_is_refused(app: object, message: str) -> None:
    with pytest.raises(TypeError) as info:
        check_application(app)
    assert str(info.value) == f"{message}, {ASGI_SERVER}"


@pytest.mark.parametrize(("app", "message"), [
    (notwsgi.no_argument, "tests.apps.notwsgi.no_argument cannot be called as a WSGI "
                          "application, app(environ, start_response): it takes (); if it "
                          "returns the application, call it first (aiowsgi serve --factory)"),
    (notwsgi.one_argument, "tests.apps.notwsgi.one_argument cannot be called as a WSGI "
                           "application, app(environ, start_response): it takes (environ)"),
    (notwsgi.keyword_only, "tests.apps.notwsgi.keyword_only cannot be called as a WSGI "
                           "application, app(environ, start_response): it takes (environ, "
                           "start_response, *, settings)"),
    (len, "builtins.len cannot be called as a WSGI application, app(environ, "
          "start_response): it takes (obj, /)"),
], ids=["no-argument", "one-argument", "keyword-only", "builtin"])
def test_a_callable_that_does_not_take_two_arguments_is_refused(app: object,
                                                                message: str) -> None:
    with pytest.raises(TypeError) as info:
        check_application(app)
    assert str(info.value) == message


@pytest.mark.parametrize("app", notwsgi.ACCEPTED.values(), ids=list(notwsgi.ACCEPTED))
def test_a_wsgi_application_of_any_shape_is_accepted(app: object) -> None:
    check_application(app)


FRAMEWORKS = ["flask", "django", "falcon", "bottle", "pyramid"]


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_the_frameworks_applications_are_accepted(name: str, tmp_path: Path) -> None:
    pytest.importorskip(name)
    framework = importlib.import_module(f"tests.frameworks.{name}_app").FRAMEWORK
    with framework.context():
        check_application(framework.make_app(tmp_path / "payload.bin"))


def test_the_asgi_applications_of_frameworks_are_refused() -> None:
    falcon_asgi = pytest.importorskip("falcon.asgi")
    with pytest.raises(TypeError, match=r"^the falcon\.asgi\.app\.App object looks like an "
                                        r"ASGI application \(async def __call__\(self, "):
        check_application(falcon_asgi.App())


ASGI_MODULE = textwrap.dedent("""
    async def app(scope, receive, send):
        pass

    def make_app():
        return app

    def create_app(config=None):
        return app
""")


@pytest.mark.parametrize(("spec", "factory", "message"), [
    ("asgimod:app", False, "'asgimod:app' looks like an ASGI application (async def "
                           f"app(scope, receive, send)), {ASGI_SERVER} (uvicorn asgimod:app)"),
    ("asgimod:make_app", True, "what the factory 'asgimod:make_app' returned looks like an "
                               "ASGI application (async def app(scope, receive, send)), "
                               f"{ASGI_SERVER} (uvicorn --factory asgimod:make_app)"),
    ("asgimod:create_app", False, "'asgimod:create_app' cannot be called as a WSGI "
                                  "application, app(environ, start_response): it takes "
                                  "(config=None); if it returns the application, call it "
                                  "first (aiowsgi serve --factory)"),
])
def test_loading_refuses_what_cannot_be_a_wsgi_application(
        app_dir: Path, monkeypatch: pytest.MonkeyPatch, spec: str, factory: bool,
        message: str) -> None:
    (app_dir / "asgimod.py").write_text(ASGI_MODULE)
    monkeypatch.delitem(sys.modules, "asgimod", raising=False)
    with pytest.raises(AppLoadError) as info:
        load_app(spec, factory=factory, app_dir=str(app_dir))
    assert str(info.value) == message
    assert info.value.__cause__ is None  # nothing to show at --log-level debug
