"""The package stays readable: no module over 500 lines, no class over 350, and the
architecture document describes the modules there are; the documents name files there are."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ..process import ROOT

PACKAGE = ROOT / "aiowsgi"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 350
MODULES = sorted(PACKAGE.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_and_class_sizes(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    count = len(text.splitlines())
    assert count <= MAX_MODULE_LINES, f"{path.name} has {count} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1
            assert lines <= MAX_CLASS_LINES, f"{path.name}: class {node.name} has {lines} lines"


ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"


def test_the_architecture_document_names_every_module_and_only_those() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    named = set(re.findall(r"`(\w+)\.py`", text))
    modules = {path.stem for path in MODULES} - {"__init__", "__main__"}
    assert modules - named == set(), "modules docs/architecture.md does not describe"
    assert named - modules == set(), "modules docs/architecture.md names that do not exist"


# (not the CHANGELOG: it names files as they were when each change was made)
DOCUMENTS = [ROOT / "README.md", ROOT / "bench" / "README.md",
             *sorted((ROOT / "docs").glob("*.md"))]
OUTPUT = ROOT / "bench" / "results"  # written by bench/run.py, not in the repository


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_files_a_document_names_exist(document: Path) -> None:
    """A path like ``tests/system/test_faults.py`` or ``aiowsgi/states.py`` in the docs
    points at a file there is (files move when the layout changes)."""
    named = set(re.findall(r"`((?:aiowsgi|tests|bench|examples|docs)/[\w/]+\.\w+)`",
                           document.read_text(encoding="utf-8")))
    missing = sorted(path for path in named
                     if not (ROOT / path).exists() and not (ROOT / path).is_relative_to(OUTPUT))
    assert missing == []


def test_the_tests_mirror_the_package() -> None:
    """``tests/test_<module>.py`` tests ``aiowsgi/<module>.py``: no test file is named
    after anything else (whole-server suites go to tests/system/)."""
    modules = {path.stem for path in MODULES}
    orphans = sorted(path.name for path in (ROOT / "tests").glob("test_*.py")
                     if path.stem.removeprefix("test_") not in modules)
    assert orphans == []
