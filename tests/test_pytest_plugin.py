"""The pytest plugin, tested the way a project uses it: pytest runs in a subprocess
(pytester), with ``-W error`` so that a leaked socket, thread or task fails the run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from aiowsgi.testing import live_server

from .apps.echo import echo
from .waiting import SAFETY

APP_MODULE = '''
def app(environ, start_response):
    body = ("%s %s" % (environ["REQUEST_METHOD"], environ["PATH_INFO"])).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def boom(environ, start_response):
    raise ZeroDivisionError("boom in the view")
'''

LOOPS_CONFTEST = '''
import asyncio
import uvloop


def pytest_asyncio_loop_factories(config, item):
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
'''

# After every fixture has been torn down, no thread of aiowsgi's may be left.
THREADS_CONFTEST = '''
import pathlib
import threading


def pytest_sessionfinish(session):
    names = [t.name for t in threading.enumerate() if t.name.startswith("aiowsgi")]
    pathlib.Path("threads_left.txt").write_text(",".join(names))
'''


def assert_no_threads_left(pytester: pytest.Pytester) -> None:
    assert (pytester.path / "threads_left.txt").read_text() == ""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    if "no:asyncio" not in args:
        args = ("-o", "asyncio_default_fixture_loop_scope=function", *args)
    return pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider", *args,
                                         timeout=120)


def test_loading_the_plugin_imports_neither_aiohttp_nor_pytest_asyncio() -> None:
    code = ("import sys, aiowsgi.pytest_plugin; "
            "print(sorted(m for m in ('aiohttp', 'pytest_asyncio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_plugin_is_registered_by_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    for name in ("aiowsgi_server", "aiowsgi_client", "aiowsgi_live_server",
                 "aiowsgi_live_server_session", "aiowsgi_live_server_factory", "aiowsgi_app"):
        result.stdout.fnmatch_lines([f"{name}*"])


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_async_fixtures_on_both_loops(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(myapp=APP_MODULE)
    pytester.makeconftest(LOOPS_CONFTEST + THREADS_CONFTEST)
    pytester.makepyfile(test_async=textwrap.dedent('''
        import aiohttp
        import pytest

        import asyncio

        import pytest_asyncio

        from myapp import app


        @pytest_asyncio.fixture
        async def no_task_left():
            # set up before the aiowsgi fixtures, so torn down after them
            yield
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert not others, others


        @pytest.mark.asyncio
        async def test_server(no_task_left, aiowsgi_server):
            server = await aiowsgi_server(app)
            assert server.url == f"http://127.0.0.1:{server.port}"
            assert server.host == "127.0.0.1"
            assert server.make_url("/a?b=1") == server.url + "/a?b=1"
            async with aiohttp.ClientSession() as session:
                async with session.get(server.make_url("/hello")) as response:
                    assert response.status == 200
                    assert await response.read() == b"GET /hello"


        @pytest.mark.asyncio
        async def test_two_servers_with_options(no_task_left, aiowsgi_server):
            one = await aiowsgi_server(app, threads=1)
            two = await aiowsgi_server(app, server_header=False)
            assert one.port != two.port
            assert one.config.threads == 1


        @pytest.mark.asyncio
        async def test_client(no_task_left, aiowsgi_client):
            client = await aiowsgi_client(app)
            async with client.post("/form", data={"a": "1"}) as response:
                assert response.status == 200
                assert await response.read() == b"POST /form"
            async with client.get("/again") as response:
                assert await response.read() == b"GET /again"
    '''))
    result = run(pytester, "-o", f"asyncio_mode={mode}", "-v")
    result.assert_outcomes(passed=6)
    assert_no_threads_left(pytester)
    result.stdout.fnmatch_lines(["*test_server?asyncio? PASSED*", "*test_server?uvloop? PASSED*"])


def test_sync_fixtures_with_the_app_named_in_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(myapp=APP_MODULE)
    pytester.makeini("[pytest]\naiowsgi_app = myapp:app\n")
    pytester.makeconftest(THREADS_CONFTEST)
    pytester.makepyfile(test_sync=textwrap.dedent('''
        import urllib.request

        from myapp import app

        seen = []


        def get(url):
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.read()


        def test_live_server(aiowsgi_live_server):
            assert get(aiowsgi_live_server.url + "/one") == b"GET /one"
            assert get(aiowsgi_live_server.make_url("/two")) == b"GET /two"


        def test_factory(aiowsgi_live_server_factory):
            server = aiowsgi_live_server_factory(app, threads=1)
            assert server.server.config.threads == 1
            assert get(server.make_url("/f")) == b"GET /f"


        def test_session_first(aiowsgi_live_server_session):
            seen.append(aiowsgi_live_server_session.port)
            assert get(aiowsgi_live_server_session.make_url("/s")) == b"GET /s"


        def test_session_second(aiowsgi_live_server_session):
            assert seen == [aiowsgi_live_server_session.port]
    '''))
    # the sync fixtures need no event loop plugin at all
    result = run(pytester, "-p", "no:asyncio")
    result.assert_outcomes(passed=4)
    assert_no_threads_left(pytester)


def test_override_the_app_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(myapp=APP_MODULE)
    pytester.makepyfile(test_override=textwrap.dedent('''
        import urllib.request

        import pytest

        import myapp


        @pytest.fixture(scope="session")
        def aiowsgi_app():
            return myapp.app


        def test_it(aiowsgi_live_server):
            with urllib.request.urlopen(aiowsgi_live_server.url + "/x", timeout=30) as r:
                assert r.read() == b"GET /x"
    '''))
    run(pytester).assert_outcomes(passed=1)


def test_missing_app_is_a_clear_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_noapp="def test_it(aiowsgi_live_server):\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no application for the aiowsgi fixtures*aiowsgi_app*"])

    pytester.makeini("[pytest]\naiowsgi_app = nosuchmodule:app\n")
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cannot import module 'nosuchmodule'*"])


ASGI_MODULE = '''
async def asgi(scope, receive, send):
    pass
'''


def test_an_asgi_application_fails_the_test_that_serves_it(pytester: pytest.Pytester) -> None:
    """The fixtures refuse an ASGI application with the server's own TypeError (naming the
    application, not the handle that collects its errors); one named in the ini fails
    the tests that use it, as one that cannot be imported does."""
    pytester.makepyfile(asgimod=ASGI_MODULE)
    pytester.makeini("[pytest]\naiowsgi_app = asgimod:asgi\n")
    pytester.makeconftest(THREADS_CONFTEST)
    pytester.makepyfile(test_asgi=textwrap.dedent('''
        import pytest

        from asgimod import asgi

        REFUSED = r"^asgimod\\.asgi looks like an ASGI application \\(async def asgi\\("


        @pytest.mark.asyncio
        async def test_server(aiowsgi_server):
            with pytest.raises(TypeError, match=REFUSED):
                await aiowsgi_server(asgi)
            with pytest.raises(TypeError, match=REFUSED):
                await aiowsgi_server(asgi, raise_app_errors=False)


        def test_live_server_factory(aiowsgi_live_server_factory):
            with pytest.raises(TypeError, match=REFUSED):
                aiowsgi_live_server_factory(asgi)


        def test_from_the_ini(aiowsgi_live_server):
            pass
    '''))
    result = run(pytester, "-v")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*aiowsgi_app: 'asgimod:asgi' looks like an ASGI application "
                                 "(async def asgi(scope, receive, send)), but aiowsgi serves "
                                 "WSGI applications: serve it with an ASGI server such as "
                                 "uvicorn (uvicorn asgimod:asgi)*"])
    assert_no_threads_left(pytester)


def test_async_fixtures_without_pytest_asyncio_name_the_extra(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_noasync=textwrap.dedent('''
        def test_server(aiowsgi_server):
            pass


        def test_client(aiowsgi_client):
            pass
    '''))
    result = run(pytester, "-p", "no:asyncio")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([
        "*aiowsgi_server is an async fixture and needs pytest-asyncio: "
        "pip install 'aiowsgi-server?pytest?'*"])


def test_client_without_aiohttp_names_the_extra(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(myapp=APP_MODULE)
    pytester.makeconftest("import sys\nsys.modules['aiohttp'] = None\n")
    pytester.makepyfile(test_noaiohttp=textwrap.dedent('''
        import pytest

        from myapp import app


        @pytest.mark.asyncio
        async def test_client(aiowsgi_client):
            await aiowsgi_client(app)
    '''))
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*aiowsgi_client needs aiohttp: pip install 'aiowsgi-server?pytest?'*"])


# The start of the test modules below: status(url) is the status a GET got.
STATUS_HELPER = '''
import urllib.error
import urllib.request

import aiohttp
import pytest

from aiowsgi.testing import live_server


def status(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code
'''

APP_ERROR_TESTS = STATUS_HELPER + '''
from myapp import app, boom


def test_sync_view_error(aiowsgi_live_server_factory):
    assert status(aiowsgi_live_server_factory(boom).url) == 500


@pytest.mark.aiowsgi(raise_app_errors=False)
def test_marker_opt_out(aiowsgi_live_server_factory):
    assert status(aiowsgi_live_server_factory(boom).url) == 500


def test_argument_opt_out(aiowsgi_live_server_factory):
    assert status(aiowsgi_live_server_factory(boom, raise_app_errors=False).url) == 500


def test_other_app_unaffected(aiowsgi_live_server_factory):
    assert status(aiowsgi_live_server_factory(app).url) == 200


@pytest.mark.asyncio
async def test_async_view_error(aiowsgi_server):
    server = await aiowsgi_server(boom)
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url) as response:
            assert response.status == 500


def test_session_server_error(aiowsgi_live_server_session):
    assert status(aiowsgi_live_server_session.url) == 500


def test_session_server_after_an_error(aiowsgi_live_server_session):
    assert status(aiowsgi_live_server_session.url + "/again") == 500
'''


def test_app_errors_fail_the_test_with_their_own_traceback(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(myapp=APP_MODULE)
    pytester.makeini("[pytest]\naiowsgi_app = myapp:boom\n")
    pytester.makeconftest(THREADS_CONFTEST)
    pytester.makepyfile(test_errors=APP_ERROR_TESTS)
    result = run(pytester, "-v")
    # sync and async factories and both session tests: the app's error is re-raised at
    # teardown; the opt-outs and the healthy app pass
    result.assert_outcomes(passed=7, errors=4)
    result.stdout.fnmatch_lines([
        "*test_sync_view_error ERROR*",
        "*test_marker_opt_out PASSED*",
        "*test_argument_opt_out PASSED*",
        "*test_other_app_unaffected PASSED*",
        "*test_async_view_error ERROR*",
        "*test_session_server_error ERROR*",
        "*test_session_server_after_an_error ERROR*",
    ])
    result.stdout.fnmatch_lines(["*def boom(environ, start_response):*",
                                 "*ZeroDivisionError: boom in the view*"])
    assert_no_threads_left(pytester)


def test_app_errors_opt_out_in_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(myapp=APP_MODULE)
    pytester.makeini("[pytest]\naiowsgi_app = myapp:boom\naiowsgi_raise_app_errors = false\n")
    pytester.makepyfile(test_errors=APP_ERROR_TESTS)
    run(pytester).assert_outcomes(passed=7)


# -- the plain helper ------------------------------------------------------------------


def boom(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    raise ZeroDivisionError("boom in the view")


def test_live_server_helper_serves_until_the_block_ends() -> None:
    with live_server(echo, threads=2) as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/x", timeout=SAFETY) as response:
            assert response.read() == b"GET /x "
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=SAFETY)


def test_live_server_helper_reraises_app_errors() -> None:
    with pytest.raises(ZeroDivisionError, match="boom in the view"), live_server(boom) as url:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url, timeout=SAFETY)
        assert info.value.code == 500
        info.value.close()
    with live_server(boom, raise_app_errors=False) as url:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url, timeout=SAFETY)
        info.value.close()


def test_live_server_helper_reports_a_bad_option() -> None:
    from aiowsgi import ConfigError

    with pytest.raises(ConfigError, match=r"^threads: "), live_server(echo, threads=0):
        pass


# -- an error belongs to the server that saw it ----------------------------------------

# Every server below serves the very same object, myapp.fails: the session server and the
# function-scoped ones.  The path names the request, so a report says which server saw it.
SHARED_APP_MODULE = '''
def fails(environ, start_response):
    if environ["PATH_INFO"].startswith("/fail"):
        raise LookupError("failed at " + environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
'''

# What pytest reported for each test: the application errors among its failed reports.
REPORTS_CONFTEST = '''
import json
import pathlib
import re

reported = {}


def pytest_runtest_logreport(report):
    errors = reported.setdefault(report.nodeid.rpartition("::")[2], [])
    if report.failed:
        # "E   LookupError: ..." in pytest's own traceback, "|   LookupError: ..." in an
        # exception group's; not the captured log's lines
        errors += re.findall(r"^(?:E|\\s*\\|) +LookupError: (failed at \\S+)",
                             report.longreprtext, re.M)
    pathlib.Path("reported.json").write_text(json.dumps(reported))
'''


def reported(pytester: pytest.Pytester) -> dict[str, list[str]]:
    result: dict[str, list[str]] = json.loads((pytester.path / "reported.json").read_text())
    return result


def test_app_errors_belong_to_the_server_that_saw_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(myapp=SHARED_APP_MODULE)
    pytester.makeini("[pytest]\naiowsgi_app = myapp:fails\n")
    pytester.makeconftest(THREADS_CONFTEST + REPORTS_CONFTEST)
    pytester.makepyfile(test_shared=STATUS_HELPER + textwrap.dedent('''
        def test_a_session_server_error(aiowsgi_live_server_session):
            assert status(aiowsgi_live_server_session.make_url("/fail/a")) == 500


        def test_b_later_function_server_error(aiowsgi_live_server):
            assert status(aiowsgi_live_server.make_url("/fail/b")) == 500


        def test_c_function_server_opted_out(aiowsgi_live_server_factory, aiowsgi_app):
            server = aiowsgi_live_server_factory(aiowsgi_app, raise_app_errors=False)
            assert status(server.make_url("/fail/c")) == 500


        def test_f_function_server_beside_the_session_server(aiowsgi_live_server_session,
                                                             aiowsgi_live_server):
            assert status(aiowsgi_live_server.make_url("/fail/f")) == 500
            assert status(aiowsgi_live_server_session.make_url("/ok")) == 200


        @pytest.mark.asyncio
        async def test_g_async_server_error(aiowsgi_server, aiowsgi_app):
            server = await aiowsgi_server(aiowsgi_app)
            async with aiohttp.ClientSession() as session:
                async with session.get(server.make_url("/fail/g")) as response:
                    assert response.status == 500


        @pytest.mark.asyncio
        async def test_h_async_server_opted_out(aiowsgi_server, aiowsgi_app):
            server = await aiowsgi_server(aiowsgi_app, raise_app_errors=False)
            async with aiohttp.ClientSession() as session:
                async with session.get(server.make_url("/fail/h")) as response:
                    assert response.status == 500


        def test_i_helper_opted_out(aiowsgi_live_server_session, aiowsgi_app):
            with live_server(aiowsgi_app, raise_app_errors=False) as url:
                assert status(url + "/fail/i") == 500


        def test_j_helper_opted_in(aiowsgi_live_server_session, aiowsgi_app):
            with pytest.raises(LookupError, match="failed at /fail/j"):
                with live_server(aiowsgi_app) as url:
                    assert status(url + "/fail/j") == 500


        def test_k_nothing_left_over(aiowsgi_live_server_session, aiowsgi_live_server,
                                     aiowsgi_app):
            assert status(aiowsgi_live_server_session.make_url("/ok")) == 200
            assert status(aiowsgi_live_server.make_url("/ok")) == 200
            assert aiowsgi_live_server.app is aiowsgi_app
            assert aiowsgi_live_server_session.app is aiowsgi_app
    '''))
    result = run(pytester, "-v")
    # each error is reported once, in the test during which its server saw it, and only
    # when that server's own setting asks for it
    assert reported(pytester) == {
        "test_a_session_server_error": ["failed at /fail/a"],
        "test_b_later_function_server_error": ["failed at /fail/b"],
        "test_c_function_server_opted_out": [],
        "test_f_function_server_beside_the_session_server": ["failed at /fail/f"],
        "test_g_async_server_error": ["failed at /fail/g"],
        "test_h_async_server_opted_out": [],
        "test_i_helper_opted_out": [],
        "test_j_helper_opted_in": [],
        "test_k_nothing_left_over": [],
    }
    result.assert_outcomes(passed=9, errors=4)
    result.stdout.fnmatch_lines(["*E * LookupError: failed at /fail/a",
                                 "*raised inside the application served by aiowsgi*"])
    result.stdout.no_fnmatch_line("*more application error*")
    assert_no_threads_left(pytester)


@pytest.mark.parametrize(("session_opt_out", "function_raises", "reported_error"), [
    ("", False, "failed at /fail/session"),
    ("marker", True, "failed at /fail/function"),
    ("ini", True, "failed at /fail/function"),
], ids=["session-in-function-out", "session-out-by-marker-function-in",
        "session-out-by-ini-function-in"])
def test_app_errors_of_session_and_function_servers_of_one_app_each_as_it_says(
        pytester: pytest.Pytester, session_opt_out: str, function_raises: bool,
        reported_error: str) -> None:
    pytester.makepyfile(myapp=SHARED_APP_MODULE)
    ini = "[pytest]\naiowsgi_app = myapp:fails\n"
    marker = ""
    if session_opt_out == "ini":
        ini += "aiowsgi_raise_app_errors = false\n"
    elif session_opt_out == "marker":
        marker = "pytestmark = pytest.mark.aiowsgi(raise_app_errors=False)\n"
    pytester.makeini(ini)
    pytester.makeconftest(REPORTS_CONFTEST)
    pytester.makepyfile(test_shared=STATUS_HELPER + marker + textwrap.dedent(f'''
        def test_both(aiowsgi_live_server_session, aiowsgi_live_server_factory, aiowsgi_app):
            server = aiowsgi_live_server_factory(aiowsgi_app,
                                                 raise_app_errors={function_raises})
            assert status(server.make_url("/fail/function")) == 500
            assert status(aiowsgi_live_server_session.make_url("/fail/session")) == 500


        def test_later(aiowsgi_live_server_session, aiowsgi_live_server):
            assert status(aiowsgi_live_server_session.make_url("/ok")) == 200
            assert status(aiowsgi_live_server.make_url("/ok")) == 200
    '''))
    result = run(pytester, "-p", "no:asyncio")
    assert reported(pytester) == {"test_both": [reported_error], "test_later": []}
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.no_fnmatch_line("*more application error*")
