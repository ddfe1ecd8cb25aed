"""The README's options table and Config describe the same options with the same defaults."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from aiowsgi.config import Config

README = Path(__file__).resolve().parent.parent / "README.md"


def _table_rows() -> list[tuple[str, str, str]]:
    text = README.read_text()
    section = text.split("\n## Options\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \| `(--[\w-]+)` \| `([^`]*)` \|", section, re.M)


def _default(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def test_readme_options_table_matches_config() -> None:
    expected = [(f.name, "--" + f.name.replace("_", "-"), _default(f.default))
                for f in dataclasses.fields(Config)]
    assert _table_rows() == expected
