"""The distributions: the sdist and the wheel build without warnings, each installs into a
fresh venv and serves the demo from there, and the sdist carries the whole suite.

The suite itself runs from the unpacked sdist here only in part (a few modules, to show
that it runs from there at all); with ``AIOWSGI_SDIST_SUITE=1`` (set by ``.ci/run`` for
one Python) the whole of it runs from there.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tarfile
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..process import ROOT, http_get
from ..waiting import SAFETY, wait_for

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NAME = PYPROJECT["project"]["name"]
VERSION = PYPROJECT["project"]["version"]
BUILD_TIMEOUT = 10 * SAFETY
SUITE_TIMEOUT = 900

# What the suite needs beside the package; the sdist must carry all of it.
SHIPPED_DIRS = ("tests", "examples", "bench", "docs")
SHIPPED_FILES = ("README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml", ".ci/run")


@dataclass
class Dists:
    sdist: Path
    wheel: Path
    source: Path  # the unpacked sdist
    build_output: str


def _build(hook: str, source: Path, out: Path) -> tuple[Path, str]:
    """Run setuptools' PEP 517 ``hook`` in ``source``, writing to ``out``: the file made
    and everything the build printed."""
    code = (f"import sys; from setuptools import build_meta as b; "
            f"print('MADE', b.{hook}(sys.argv[1]))")
    # (PYTHONDONTWRITEBYTECODE would make setuptools warn that it skips byte-compiling)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=source, env=env,
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    made = re.findall(r"^MADE (.+)$", done.stdout, re.MULTILINE)[-1]
    return out / made, output


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist built from this tree, and the wheel built from the unpacked sdist (as
    ``python -m build`` does), so that the sdist is shown to be complete enough to build."""
    out = tmp_path_factory.mktemp("dist")
    sdist, sdist_output = _build("build_sdist", ROOT, out)
    unpacked = tmp_path_factory.mktemp("sdist")
    with tarfile.open(sdist) as tar:
        tar.extractall(unpacked, filter="data")
    (source,) = unpacked.iterdir()
    wheel, wheel_output = _build("build_wheel", source, out)
    return Dists(sdist, wheel, source, sdist_output + wheel_output)


def test_the_builds_are_named_for_the_distribution_and_warn_of_nothing(dists: Dists) -> None:
    stem = f"{NAME.replace('-', '_')}-{VERSION}"
    assert dists.sdist.name == f"{stem}.tar.gz"
    assert dists.wheel.name == f"{stem}-py3-none-any.whl"
    warnings = [line for line in dists.build_output.splitlines()
                if re.search(r"warn|deprecat", line, re.IGNORECASE)]
    assert warnings == []


def test_the_wheel_says_what_the_index_shows(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(f"{NAME.replace('-', '_')}-{VERSION}.dist-info/METADATA").decode()
    assert "aiowsgi/py.typed" in names and "aiowsgi/demo.py" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "examples/"))]
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert f"Name: {NAME}\n" in metadata
    assert "License-Expression: MIT\n" in metadata
    for label in ("Homepage", "Source", "Changelog", "Issues"):
        assert re.search(rf"^Project-URL: {label}, https://", metadata, re.MULTILINE), label
    # The project's own tooling is in the dev extra, not in what users install.
    requirements = re.findall(r"^Requires-Dist: (.+)$", metadata, re.MULTILINE)
    pinned = [r for r in requirements if re.match(r"[\w.-]+(\[[^]]*\])?\s*==", r)]
    assert pinned and all("extra == \"dev\"" in r for r in pinned), pinned


def test_the_sdist_carries_the_suite_and_what_it_reads(dists: Dists) -> None:
    for name in SHIPPED_FILES:
        assert (dists.source / name).is_file(), name
    ours = [path.relative_to(ROOT) for top in SHIPPED_DIRS for path in (ROOT / top).rglob("*")
            if path.is_file() and _tracked(path)]
    missing = [str(path) for path in ours if not (dists.source / path).is_file()]
    assert missing == []


def _tracked(path: Path) -> bool:
    """Whether ``path`` is part of the project rather than something a run left behind."""
    parts = path.relative_to(ROOT).parts
    return not ({"__pycache__", "results", ".mypy_cache", ".pytest_cache"} & set(parts)
                or path.suffix in (".pyc", ".sqlite3", ".so"))


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_each_installs_into_a_fresh_venv_and_serves(dists: Dists, tmp_path: Path,
                                                     kind: str) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=BUILD_TIMEOUT)
    python = venv / "bin" / "python"
    target = dists.wheel if kind == "wheel" else dists.sdist
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", str(target)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AIOWSGI_"))}
    where = subprocess.run([str(python), "-c", "import aiowsgi; print(aiowsgi.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=SAFETY, check=True).stdout
    assert Path(where.strip()).is_relative_to(venv)
    with _serving([str(venv / "bin" / "aiowsgi"), "serve", "aiowsgi.demo:app", "--port", "0"],
                  cwd=tmp_path, env=env) as port:
        page = http_get(port).decode()
    assert f"aiowsgi {VERSION} is serving this page" in page


@contextlib.contextmanager
def _serving(command: list[str], cwd: Path, env: dict[str, str]) -> Iterator[int]:
    """``command`` (an ``aiowsgi serve``) running, until the block ends: its port."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    ended = threading.Event()

    def collect() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
        ended.set()

    threading.Thread(target=collect, daemon=True).start()
    try:
        wait_for(lambda: ended.is_set() or any("serving http://" in line for line in lines),
                 "the installed server to start")
        serving = [line for line in lines if "serving http://" in line]
        assert serving, "".join(lines)
        yield int(serving[0].split("serving http://127.0.0.1:", 1)[1].split()[0].rstrip(","))
    finally:
        proc.terminate()
        assert proc.wait(SAFETY) == 0, "".join(lines)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.timeout(SUITE_TIMEOUT + 60)  # the whole suite, under AIOWSGI_SDIST_SUITE=1
def test_the_suite_runs_from_the_sdist(dists: Dists) -> None:
    """A few modules of the suite run from the unpacked sdist, with this interpreter (which
    has the dev extra); with AIOWSGI_SDIST_SUITE=1, all of them (but this one)."""
    whole = os.environ.get("AIOWSGI_SDIST_SUITE") == "1"
    selection = ([] if whole else
                 ["tests/test_demo.py", "tests/test_http11.py", "tests/project/test_docs.py"])
    env = {k: v for k, v in os.environ.items() if k != "AIOWSGI_SDIST_SUITE"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--deselect", "tests/project/test_packaging.py", *selection],
        cwd=dists.source, env=env, capture_output=True, text=True,
        timeout=SUITE_TIMEOUT if whole else BUILD_TIMEOUT, check=False)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
