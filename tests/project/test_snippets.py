"""The README's code snippets are the files in docs/snippets/, and each of them works in a
fresh project: a directory of its own, outside this repository, with aiowsgi installed and
pytest-asyncio in its default (strict) mode."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..process import ROOT, free_port
from ..waiting import SAFETY, wait_for

SNIPPETS = ROOT / "docs" / "snippets"
LANGUAGES = {".py": "python", ".toml": "toml"}


def _fresh_env() -> dict[str, str]:
    """This environment without what points into this checkout or sets pytest's options."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTHONPATH", "PYTEST_", "AIOWSGI_"))}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project: the snippets copied into an empty directory."""
    for path in SNIPPETS.iterdir():
        if path.suffix in LANGUAGES:
            shutil.copy(path, tmp_path / path.name)
    return tmp_path


@pytest.mark.parametrize("name", sorted(p.name for p in SNIPPETS.iterdir()
                                        if p.suffix in LANGUAGES))
def test_the_readme_shows_the_file_as_it_is(name: str) -> None:
    path = SNIPPETS / name
    block = f"```{LANGUAGES[path.suffix]}\n{path.read_text()}```"
    assert block in (ROOT / "README.md").read_text()


def test_the_fixtures_snippet_passes_in_strict_mode(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "test_hello.py"],
        cwd=project, env=_fresh_env(), capture_output=True, text=True, timeout=10 * SAFETY,
        check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "asyncio: mode=Mode.STRICT" in done.stdout or "mode=strict" in done.stdout.lower()
    assert "2 passed" in done.stdout, done.stdout


def test_the_script_without_pytest_prints_the_answer(project: Path) -> None:
    done = subprocess.run([sys.executable, "without_pytest.py"], cwd=project,
                          env=_fresh_env(), capture_output=True, text=True,
                          timeout=SAFETY, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "200 Hello, world!\n"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=SAFETY) as response:
        body: bytes = response.read()
    return body


def _answers(url: str) -> bool:
    try:
        return _get(url) == b"Hello, world!\n"
    except OSError:
        return False


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """The snippets' processes the test starts, ended at teardown."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_the_embedded_serve_snippet_serves(project: Path,
                                           started: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "embedded_serve.py"], cwd=project,
                            env={**_fresh_env(), "PORT": str(port)}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started.append(proc)
    url = f"http://127.0.0.1:{port}/"
    wait_for(lambda: proc.poll() is not None or _answers(url), "the embedded server")
    assert proc.poll() is None, proc.communicate()
    assert _get(url) == b"Hello, world!\n"


def test_the_server_object_snippet_prints_its_url_and_serves(
        project: Path, started: list[subprocess.Popen[str]]) -> None:
    proc = subprocess.Popen([sys.executable, "server_object.py"], cwd=project,
                            env=_fresh_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started.append(proc)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()  # printed once it listens
    assert url.startswith("http://127.0.0.1:"), proc.communicate()
    assert _get(url + "/") == b"Hello, world!\n"
