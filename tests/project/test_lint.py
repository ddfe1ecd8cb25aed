"""The code base stays ruff- and mypy-clean: part of the suite, so CI checks it too."""

from __future__ import annotations

import subprocess
import sys

from ..process import ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_ruff() -> None:
    result = _run("ruff", "check", "aiowsgi", "tests", "examples", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
