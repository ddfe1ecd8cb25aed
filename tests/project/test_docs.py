"""The README: its options table is the one generated from Config, and its links work
where the package index shows it."""

from __future__ import annotations

import re
import tomllib

from aiowsgi.config import options_markdown

from ..process import ROOT

README = ROOT / "README.md"


def test_readme_options_table_matches_config() -> None:
    section = README.read_text().split("\n## Options\n", 1)[1].split("\n## ", 1)[0]
    assert options_markdown() in section, "regenerate it from aiowsgi.config.options_markdown()"


REPOSITORY = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Source"]


def test_readme_links_work_where_the_index_renders_it() -> None:
    """The package index shows README.md without the repository around it: every link and
    image is absolute, and those into this repository name files that exist."""
    text = README.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#"))]
    assert relative == []
    ours = [t for t in targets if t.startswith(REPOSITORY)]
    assert ours, "the README links to no file of the repository"
    for target in ours:
        path = re.sub(r"^(?:/blob/main/|/raw/main/)", "", target[len(REPOSITORY):])
        assert (ROOT / path.split("#", 1)[0]).exists(), target
    images = [t for t in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)]
    assert images and all(t.startswith(f"{REPOSITORY}/raw/main/") for t in images), images
