"""`rnnbench report --html`: the whole report as one self-contained page, report.html.

The page holds what the report's other files hold (the rest of rnnbench.report makes them and
hands them over as `Section`s and `TableView`s, defined here; this module only lays them out): per
results table its caption, the table with sortable columns, its figures and the list of its runs
(config, status, error); per tuning study its final tables, trials and figure; the tasks' inputs
and the BibTeX. Figures are embedded as PNG data, and the few lines of
script that sort a column are inline, so that the file opens anywhere, offline, and can be sent
as it is. The markup is a Jinja2 template (templates/report.html.j2), every value autoescaped.

>>> html = render(sections, inputs=[], references="", rows=rows)
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rnnbench._version import __version__
from rnnbench.report.read import differing_config

# What each figure of a table shows, by the end of its file name (figures.plot_group,
# studies.write_study).
FIGURE_WORDS = {
    "valid-acc-vs-step": (
        "Validation score against training step (mean over seeds, band: ±1 standard deviation)."
    ),
    "valid-acc-vs-time": (
        "Validation score against training time (mean over seeds, band: ±1 standard deviation)."
    ),
    "test-acc": (
        "Test score of each cell (mean ± standard deviation; "
        "dashed: published results and baselines)."
    ),
    "tradeoff": (
        "Test score (mean ± standard deviation) against parameters and against time per step."
    ),
    "cost": "Median time per training step and peak memory of each cell.",
    "trials": "Each trial's validation score against the values it tried; ★ the chosen trial.",
    "input": "One example of the task's input, as the cell sees it.",
}
DISPLAY_SCALE = (
    0.75  # the PNGs are drawn at 200 dpi: shown at 150 dpi, a column figure is ~510 px wide
)


@dataclass
class TableView:
    """One table as the HTML page shows it: a title, its caption, header and cells (text, bold)."""

    title: str
    caption: str
    header: list[str]
    body: list[list[tuple[str, bool]]]


@dataclass
class Section:
    """One section of the HTML page: a results table (`kind` "table"), a study ("study") or the
    runs in no table ("runs"), with its sentences, tables, figures (PNG files) and the rows of its
    runs."""

    kind: str
    stem: str
    title: str
    words: list[str] = field(default_factory=list)
    tables: list[TableView] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    runs: pd.DataFrame | None = None


def render(
    sections: list[Section], inputs: list[tuple[str, Path]], references: str, rows: pd.DataFrame
) -> str:
    """The page, as text, from write_report's sections (Section), the tasks' input
    figures (title, PNG), the BibTeX and every reported row."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("rnnbench", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    dates = sorted(
        t for t in rows.get("timestamp", pd.Series(dtype=str)).astype(str) if t and t != "nan"
    )
    return environment.get_template("report.html.j2").render(
        version=__version__,
        dates=(dates[0][:10], dates[-1][:10]) if dates else None,
        n_rows=len(rows),
        tasks=sorted(set(rows["task"])),
        cells=sorted(set(rows["cell"])),
        n_listed=len(
            {run_id for s in sections if s.runs is not None for run_id in s.runs["run_id"]}
        ),
        sections=[_section(s) for s in sections],
        inputs=[{**_figure(path), "title": title} for title, path in inputs],
        references=references,
    )


def _section(section) -> dict[str, Any]:
    return {
        "kind": section.kind,
        "id": _anchor(section.stem),
        "stem": section.stem,
        "title": section.title,
        "words": section.words,
        "tables": section.tables,
        "figures": [_figure(path) for path in section.figures],
        "runs": _runs(section.runs, study=section.kind == "study"),
    }


def _anchor(stem: str) -> str:
    """An id attribute from a file-name stem (already [A-Za-z0-9._=-]):
    `_anchor("pmnist-v2-cpu")`."""
    return "s-" + re.sub(r"[^A-Za-z0-9_-]", "_", stem)


def _figure(path: Path) -> dict[str, Any]:
    """A PNG as the page embeds it: data URI, display width (from its header), alt text, caption."""
    data = _palette_png(path.read_bytes())
    width = struct.unpack(">I", data[16:20])[0] if data[:8] == b"\x89PNG\r\n\x1a\n" else 0
    kind = next((k for k in FIGURE_WORDS if path.stem.endswith(k)), "")
    return {
        "src": "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
        "width": round(width * DISPLAY_SCALE) or None,
        "caption": FIGURE_WORDS.get(kind, ""),
        "alt": f"{FIGURE_WORDS[kind]} ({path.stem})" if kind else path.stem,
    }


def _palette_png(data: bytes) -> bytes:
    """The PNG re-encoded with a palette of 256 colours (Pillow, which matplotlib installs): a plot
    has few colours, and the page is a third the size (results/report: 3.4 MB of truecolour
    figures, 1.4 MB so); the PNG files beside it keep every colour."""
    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").quantize(256).save(out, "PNG", optimize=True)
    return out.getvalue()


RUN_COLUMNS = [
    ("Run", "run_id"),
    ("Cell", "cell_spec"),
    ("N", "hidden_size"),
    ("Seed", "seed"),
    ("Status", "status"),
    ("Test (%)", "test_acc"),
    ("Train (s)", "train_time_s"),
    ("Step (ms)", "step_time_ms"),
    ("Mem. (MiB)", "peak_mem_mb"),
    ("Date", "timestamp"),
]
STUDY_COLUMNS = [("Phase", "phase"), ("Trial", "trial")]


def _runs(rows: pd.DataFrame | None, study: bool = False) -> dict[str, Any] | None:
    """The run list of a section: a line per row, with what sets it apart from the other runs
    of its cell in this list (`lr=0.003`: the settings a study tried), its error, and its whole
    setting (the cell's options, the config where it differs from RunConfig's defaults) folded
    away; and how many rows have each status."""
    if rows is None or rows.empty:
        return None
    columns = RUN_COLUMNS[:4] + (STUDY_COLUMNS if study else []) + RUN_COLUMNS[4:]
    order = [c for c in ("phase", "cell_spec", "hidden_size", "trial", "seed") if c in rows]
    rows = rows.sort_values(order, kind="stable", na_position="last")
    options = [_json_dict(text) for text in rows["options"]]
    configs = [differing_config(_json_dict(text)) for text in rows["config_json"]]
    settings = [{**o, **c} for o, c in zip(options, configs, strict=True)]
    varying: dict[
        str, set[str]
    ] = {}  # per cell spec, the keys whose values differ between its runs
    for cell in set(rows["cell_spec"]):
        mine = [s for s, c in zip(settings, rows["cell_spec"], strict=True) if c == cell]
        varying[cell] = {
            k
            for k in set().union(*mine)
            if len({json.dumps(s.get(k), default=str) for s in mine}) > 1
        }
    lines = []
    for (_, row), option, config, setting in zip(
        rows.iterrows(), options, configs, settings, strict=True
    ):
        keys = sorted(varying[row["cell_spec"]])
        lines.append(
            {
                "cells": [_text(key, row.get(key)) for _, key in columns],
                "status": str(row["status"]),
                "differs": ", ".join(f"{k}={setting.get(k, '–')}" for k in keys),
                "options": _pairs(option),
                "config": _pairs(config),
                "commit": _text("git_commit", row.get("git_commit")),
                "error": "" if pd.isna(row.get("error")) else str(row.get("error") or ""),
            }
        )
    counts = rows["status"].value_counts()
    return {
        "header": [title for title, _ in columns],
        "lines": lines,
        "counts": ", ".join(f"{n} {status}" for status, n in counts.items()),
    }


def _text(key: str, value: Any) -> str:
    """A run list cell: percentages for scores, rounded times, whole numbers, '–' where missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return "–"
    if key == "test_acc":
        return f"{100 * float(value):.2f}"
    if key in ("train_time_s", "peak_mem_mb"):
        return f"{float(value):,.0f}"
    if key == "step_time_ms":
        return f"{float(value):.1f}"
    if key in ("hidden_size", "seed", "trial"):
        return str(int(float(value)))
    if key == "timestamp":
        return str(value)[:16].replace("T", " ")
    return str(value)


def _json_dict(text: Any) -> dict[str, Any]:
    """A JSON object written in a row, {} for anything else (a row from before, a damaged field)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _pairs(values: dict[str, Any]) -> str:
    """`capacity=2, impl=auto`."""
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
