"""The README's options table is the one generated from Config."""

from __future__ import annotations

from aiowsgi.config import options_markdown

from ..process import ROOT

README = ROOT / "README.md"


def test_readme_options_table_matches_config() -> None:
    section = README.read_text().split("\n## Options\n", 1)[1].split("\n## ", 1)[0]
    assert options_markdown() in section, "regenerate it from aiowsgi.config.options_markdown()"
