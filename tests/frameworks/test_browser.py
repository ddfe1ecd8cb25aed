"""A real browser through the real server: headless Chromium logs in to the Django admin
of ``examples/django_project``, served by ``aiowsgi serve`` in a subprocess, and saves a
note.

What this proves that the HTTP-level tests cannot: the requests an actual browser makes
(redirects, session and CSRF cookies, the Origin header Django's CSRF check compares with
Host, a form-encoded POST body with non-ASCII text, several parallel connections for the
admin's CSS and scripts) go through the server and come back intact, and a browser that
kept its connections alive does not stop the server from shutting down cleanly.

Debian's ``chromium`` and ``chromium-driver`` packages provide the binaries and Selenium
drives them; nothing is downloaded at run time (the driver's path is given to Selenium,
so Selenium Manager never runs: the test makes sure of that).  Without the binaries or
Selenium the test is skipped, unless ``AIOWSGI_REQUIRE_BROWSER=1`` (set by CI, which
installs them) turns their absence into a failure.

Synchronisation is ``WebDriverWait`` on what the page shows; its timeout is a safety net
for a loaded machine, never a delay.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..process import ROOT, ServeProcess
from ..waiting import SAFETY

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

PROJECT = ROOT / "examples" / "django_project"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

USERNAME = "admin"
PASSWORD = "correct horse battery staple"
# Non-ASCII in both fields checks the encoding end to end: the browser's UTF-8 form body,
# Django's decoding, SQLite, and the HTML that comes back.
TITLE = "Café ✓ served by aiowsgi"
TEXT = "first line\nsecond line: naïve 日本語 ✓"


def _require_browser() -> None:
    """Skip unless Chromium, ChromeDriver and Selenium are all here; with
    ``AIOWSGI_REQUIRE_BROWSER=1``, fail instead."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    if not missing:
        return
    reason = ("the browser test needs " + ", ".join(missing)
              + " (apt-get install chromium chromium-driver; pip install -e '.[dev]')")
    if os.environ.get("AIOWSGI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"AIOWSGI_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _manage(env: dict[str, str], *args: str, cwd: Path) -> None:
    """``python examples/django_project/manage.py *args`` with ``env`` added."""
    result = subprocess.run([sys.executable, str(PROJECT / "manage.py"), *args],
                            env={**os.environ, **env}, cwd=cwd, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout}{result.stderr}"


def _project_env(db_path: Path, *, debug: bool) -> dict[str, str]:
    return {
        "DJANGO_DB_PATH": str(db_path),
        "DJANGO_DEBUG": "1" if debug else "0",
        "DJANGO_SETTINGS_MODULE": "mysite.settings",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }


def _start_chromium(profile: Path, log: Path) -> WebDriver:
    """Headless Chromium from Debian's packages.  The flags keep it from reaching out to
    Google's services, which a closed network refuses, and from needing a sandbox or a
    large /dev/shm that containers do not have."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,1024",
                     f"--user-data-dir={profile}"):
        options.add_argument(argument)
    service = Service(str(CHROMEDRIVER), log_output=str(log))
    return webdriver.Chrome(options=options, service=service)


def _stylesheet_rules(driver: WebDriver, name: str) -> int:
    """How many CSS rules the page got from the stylesheet whose URL ends with ``name``
    (0 when it failed to load: a 404 page is not accepted as CSS)."""
    script = """
        const sheet = Array.from(document.styleSheets)
            .find(s => s.href && s.href.endsWith(arguments[0]));
        return sheet ? sheet.cssRules.length : 0;
    """
    return int(driver.execute_script(script, name))


def test_admin_login_and_save_in_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _require_browser()
    from selenium.webdriver.common import selenium_manager
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.wait import WebDriverWait

    def no_download(*args: Any, **kwargs: Any) -> dict[str, str]:
        raise AssertionError("Selenium Manager was asked to find or download a browser")

    monkeypatch.setattr(selenium_manager.SeleniumManager, "binary_paths", no_download)
    monkeypatch.delenv("SE_CHROMEDRIVER", raising=False)  # would replace our driver path
    # Selenium reaches ChromeDriver, and Chromium the server, on 127.0.0.1: never through
    # a proxy from the environment.
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)

    db_path = tmp_path / "db.sqlite3"
    # DEBUG on: Django serves the admin's CSS and scripts itself (FileResponse, so the
    # server's wsgi.file_wrapper), and the browser fetches them in parallel.
    env = _project_env(db_path, debug=True)
    _manage(env, "migrate", "--noinput", cwd=tmp_path)
    _manage({**env, "DJANGO_SUPERUSER_USERNAME": USERNAME,
             "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
             "DJANGO_SUPERUSER_EMAIL": "admin@example.com"},
            "createsuperuser", "--noinput", cwd=tmp_path)

    with ServeProcess("mysite.wsgi:application", "--app-dir", str(PROJECT),
                      "--port", "0", env=env) as server:
        base = f"http://127.0.0.1:{server.port}"
        driver = _start_chromium(tmp_path / "chromium-profile", tmp_path / "chromedriver.log")
        try:
            wait = WebDriverWait(driver, SAFETY)

            # Not logged in: the admin redirects to its login page.
            driver.get(f"{base}/admin/")
            wait.until(ec.url_to_be(f"{base}/admin/login/?next=/admin/"))
            username = wait.until(ec.visibility_of_element_located((By.NAME, "username")))
            wait.until(lambda d: _stylesheet_rules(d, "/static/admin/css/base.css") > 0)
            assert driver.get_cookie("csrftoken") is not None

            # The login POST passes Django's CSRF check (cookie + form token + Origin),
            # and the session cookie it sets logs the next requests in.
            username.send_keys(USERNAME)
            driver.find_element(By.NAME, "password").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
            wait.until(ec.url_to_be(f"{base}/admin/"))
            wait.until(ec.presence_of_element_located((By.ID, "user-tools")))
            assert driver.get_cookie("sessionid") is not None

            # From the admin index, the "Add" link of Notes.
            driver.find_element(By.CSS_SELECTOR, "a.addlink[href='/admin/notes/note/add/']"
                                ).click()
            title = wait.until(ec.visibility_of_element_located((By.ID, "id_title")))
            title.send_keys(TITLE)
            driver.find_element(By.ID, "id_text").send_keys(TEXT)
            driver.find_element(By.NAME, "_save").click()

            # Saved: Django redirects to the change list with its success message.
            message = wait.until(ec.visibility_of_element_located(
                (By.CSS_SELECTOR, "ul.messagelist li.success")))
            assert "was added successfully" in message.text, message.text
            assert TITLE in message.text, message.text
            assert driver.current_url == f"{base}/admin/notes/note/"
            results = driver.find_element(By.ID, "result_list")
            assert TITLE in results.text, results.text
            assert driver.title.startswith("Select note to change")
        finally:
            driver.quit()
            print("aiowsgi's stderr:\n" + "".join(server.lines))  # shown when the test fails

        # Chromium has quit: the server stops cleanly, with no request left behind.
        server.signal(signal.SIGTERM)
        assert server.wait() == 0, "".join(server.lines)
    log = "".join(server.lines)
    assert "Traceback" not in log, log

    # The row is in the database, as typed (a browser submits a textarea's line breaks
    # as CRLF, and Django keeps them).
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        rows = db.execute("SELECT title, text FROM notes_note").fetchall()
    assert rows == [(TITLE, TEXT.replace("\n", "\r\n"))]


def test_pages_without_a_database(tmp_path: Path) -> None:
    """``/`` and ``/healthz`` answer without a database: the SQLite file's directory does
    not even exist, so any query would fail."""
    pytest.importorskip("django")
    db_path = tmp_path / "absent" / "db.sqlite3"
    env = _project_env(db_path, debug=False)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with ServeProcess("mysite.wsgi:application", "--app-dir", str(PROJECT),
                      "--port", "0", env=env) as server:
        base = f"http://127.0.0.1:{server.port}"
        with opener.open(f"{base}/healthz", timeout=SAFETY) as response:
            assert response.status == 200
            assert response.read() == b"ok\n"
        with opener.open(f"{base}/", timeout=SAFETY) as response:
            assert response.status == 200
            assert b"Hello from Django, served by aiowsgi" in response.read()
    assert not db_path.parent.exists()
