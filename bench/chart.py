#!/usr/bin/env python3
"""The benchmark's chart: one panel per scenario, one bar per server (matplotlib, Agg).

``bench/run.py`` calls :func:`draw` with the panels it also stores in
``results.json`` under ``"chart"``, so the chart can be redrawn from a results
file without running anything:

    python bench/chart.py bench/results/results.json [OUT.png]
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

AIOWSGI_COLOR = "#1f6fb4"
PEER_COLOR = "#8c8c8c"
REFERENCE_COLOR = "#d9d9d9"


TARGET_COLOR = "#c0392b"
TARGET_STYLES = ("--", ":", "-.")


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def draw(panels: Sequence[dict[str, Any]], path: Path, subtitle: str = "") -> None:
    """Write the chart of ``panels`` (see ``chart_panels`` in run.py) as a PNG to ``path``."""
    panels = [p for p in panels if p["bars"]]
    if not panels:
        return
    ncols = 2 if len(panels) > 1 else 1
    nrows = math.ceil(len(panels) / ncols)
    most_bars = max(len(p["bars"]) for p in panels)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(8 * ncols, (0.9 + 0.42 * most_bars) * nrows + 0.8),
        squeeze=False,
    )
    for ax, panel in zip(axes.flat, panels, strict=False):
        bars = panel["bars"]
        names = [b["server"] for b in bars]
        values = [b["value"] or 0.0 for b in bars]
        colors = [
            AIOWSGI_COLOR if b["aiowsgi"] else REFERENCE_COLOR if b["reference"] else PEER_COLOR
            for b in bars
        ]
        ys = range(len(bars))
        drawn = ax.barh(ys, values, color=colors, edgecolor="#404040", linewidth=0.5)
        for rect, bar in zip(drawn, bars, strict=True):
            if bar["reference"]:
                rect.set_hatch("//")
        ax.set_yticks(list(ys), names)
        ax.invert_yaxis()
        targets = panel.get("targets", [])
        # Reference points (the ceiling) can be far off the scale of the WSGI servers:
        # the scale follows the others, and a longer bar is cut with its value inside.
        scaled = [v for v, b in zip(values, bars, strict=True) if not b["reference"]] or values
        top = max([*scaled, *(t["value"] for t in targets)]) or 1.0
        right = top * 1.55
        ax.set_xlim(0, right)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _fmt(x) if x else "0"))
        for target, style in zip(targets, TARGET_STYLES, strict=False):
            ax.axvline(target["value"], color=TARGET_COLOR, linestyle=style, linewidth=1.2,
                       label=f"target: {target['label']}" + (
                           f" ({_fmt(target['value'])})" if target.get("relative", True) else ""))
        if targets:
            ax.legend(loc="best", fontsize=7, framealpha=0.9)
        for y, bar in zip(ys, bars, strict=True):
            value = bar["value"]
            text = "failed" if value is None else _fmt(value)
            if bar["note"]:
                text += f"  ({bar['note']})"
            if value is not None and value > right:
                ax.text(right * 0.99, y, text + "  (off scale)", va="center", ha="right",
                        fontsize=8, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
            else:
                ax.text((value or 0.0) + top * 0.01, y, text, va="center", fontsize=8)
        ax.set_title(f"{panel['scenario']}: {panel['title']}", fontsize=10, loc="left")
        ax.set_xlabel(panel["label"], fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("aiowsgi benchmark: medians of interleaved rounds, server pinned to one CPU"
                 " (red lines: the issue's targets)", fontsize=12)
    if subtitle:
        fig.text(0.5, 0.005, subtitle, ha="center", va="bottom", fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.02, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2:
        print("usage: python bench/chart.py RESULTS.json [OUT.png]", file=sys.stderr)
        return 2
    source = Path(args[0])
    out = Path(args[1]) if len(args) > 1 else source.with_suffix(".png")
    data = json.loads(source.read_text(encoding="utf-8"))
    draw(data["chart"], out, " ".join(data.get("command", [])))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
