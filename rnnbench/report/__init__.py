"""`rnnbench report`: result rows -> aggregation over seeds -> tables, figures and one HTML page.

`read_results` reads a results folder, `select` picks the rows to report, `write_report` writes
every file into the output folder: per table its Markdown, LaTeX and CSV and its figures, per
tuning study its section (studies), each task's input figure, references.bib, report.md and, asked
for, report.html. One aggregation (`aggregate`) feeds the tables and the figures.

What a table line pools. A line is one experiment: the rows equal in every one of GROUP_KEYS, which
are the task (name, spec, version), its data (the hash of what the task recorded as its data
identity), the machine (device type, device name, number of threads), the cell spec, implementation,
status and hidden size, the study and phase (a study's final runs are an experiment of their own,
apart from plain runs of the same config) and the rest of the config (read.config_rest). So a line
pools, besides its seeds, what should not change its result:
- `device` as asked for (auto, cpu, cuda): the device the run used is a key already;
- `warmup_steps` and `eval_batch_size`: they change neither training nor scores, only measurement
  (which first steps the median step time leaves out; how many examples are evaluated at once);
- the WATCH fields (`log_every`, `tensorboard`): how a run was shown while it trained, no part of
  its run key either;
- a field at RunConfig's default and the same field absent: rows written before it existed match;
- code versions, which might: rows of different git commits are pooled, with a warning and a caution
  in the table's caption (`mixed_commits`).
A study's trials (phase "tune") are how a setting was chosen, never results: no results table
holds them. Each table states which of its keys it shows.

Row contents are untrusted text: they are checked (`store.row_problem`) before use, escaped for
Markdown, LaTeX and matplotlib (text), and never reach a file name unsanitised (`text._name_part`);
every file is written inside the output folder, through a temporary file (files).

The modules, each importing only those above it:

    errors      ReportError, ReportNotWritten
    text        escaping for Markdown, LaTeX and matplotlib; pieces of file names
    files       safe writes inside the output folder
    read        the results folder: rows, curves, views of a config (the results store is to
                replace it)
    citations   cell labels for captions, references.bib (the only user of rnnbench.cite)
    grouping    select rows, pool seeds into lines, split lines into tables; labels, recorded
                metadata
    tables      columns, cells and captions; Markdown and LaTeX tables
    figures     colours, markers, every figure of a table and of a task's input
    html        the one-page report (report.html) and its parts, Section and TableView
    studies     tuning studies: their tables, trials, figure and section
    __init__    write_report, and the names the CLI and the tests use
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from rnnbench.report.citations import attach, bibliography
from rnnbench.report.errors import ReportError, ReportNotWritten
from rnnbench.report.figures import (
    CELL_COLORS,
    cell_color,
    cost_figure,
    plot_group,
    plot_input,
    reference_lines,
    test_acc_figure,
    tradeoff_figure,
)
from rnnbench.report.files import _write, _write_text
from rnnbench.report.grouping import (
    GROUP_KEYS,
    TABLE_KEYS,
    aggregate,
    experiment_labels,
    mixed_commits,
    score_higher_is_better,
    score_name,
    select,
    summary_csv,
    table_groups,
)
from rnnbench.report.html import Section, TableView, render
from rnnbench.report.read import read_results, rows_frame  # noqa: F401 - rows_frame: for the tests
from rnnbench.report.studies import chosen_trials, edge_notes, study_groups, write_study
from rnnbench.report.tables import _cells, _where, latex_table, markdown_table, table_caption
from rnnbench.report.text import _markdown, _printable  # noqa: F401 - _markdown: for the tests

__all__ = [
    "CELL_COLORS",
    "GROUP_KEYS",
    "TABLE_KEYS",
    "ReportError",
    "ReportNotWritten",
    "Section",
    "TableView",
    "aggregate",
    "cell_color",
    "chosen_trials",
    "cost_figure",
    "edge_notes",
    "experiment_labels",
    "latex_table",
    "markdown_table",
    "read_results",
    "reference_lines",
    "score_higher_is_better",
    "score_name",
    "select",
    "study_groups",
    "table_caption",
    "table_groups",
    "test_acc_figure",
    "tradeoff_figure",
    "write_report",
    "write_study",
]


def write_report(
    rows: pd.DataFrame,
    curves: pd.DataFrame,
    out: Path,
    cards: list[dict] | None = None,
    html: bool = False,
    runs: pd.DataFrame | None = None,
    cell_cards: list[dict] | None = None,
) -> tuple[list[Path], str]:
    """Tables and figures of every group into `out` (and each task's input figure and citation,
    from `cards`: store.read_task_cards; each cell's citation from `cell_cards`:
    store.read_cell_cards); returns the files and the Markdown text. With `html`,
    also out/report.html, the whole report in one page (rnnbench.report.html), whose run lists
    show `runs` (default: `rows`; the CLI gives every status there, failed runs too).
    ReportNotWritten, naming the folder, if it cannot be written."""
    try:
        runs = rows if runs is None else runs
        return _write_report(
            attach(rows, cell_cards or []),
            curves,
            out,
            cards or [],
            html,
            attach(runs, cell_cards or []),
        )
    except OSError as error:
        where = f" ({error.filename})" if error.filename and str(error.filename) != str(out) else ""
        raise ReportNotWritten(
            f"cannot write the report into {out}: {error.strerror or error}{where}"
        ) from error


def _write_report(
    rows: pd.DataFrame,
    curves: pd.DataFrame,
    out: Path,
    cards: list[dict],
    html: bool,
    runs: pd.DataFrame,
) -> tuple[list[Path], str]:
    out.mkdir(parents=True, exist_ok=True)
    results = rows[
        rows["phase"] != "tune"
    ]  # (a study's trials are how a setting was chosen, not results)
    summary = aggregate(results) if len(results) else None
    written, markdown, sections = [], [], []
    for stem, part in table_groups(summary) if summary is not None else ():
        if len(commits := mixed_commits(part)) > 1:
            warnings.warn(
                f"table {stem} mixes rows from {len(commits)} versions of the code: "
                f"{', '.join(commits)}; "
                "`rnnbench run --force` the older ones, or report them apart",
                stacklevel=3,
            )
        md, tex = markdown_table(part), latex_table(part, f"tab:{stem}")
        written += [
            _write_text(out, f"{stem}.md", md),
            _write_text(out, f"{stem}.tex", tex),
            _write(
                out,
                f"{stem}-summary.csv",
                lambda p, part=part: summary_csv(part).to_csv(p, index=False),
            ),
        ]
        group_rows = results[results["task_spec"] == part["task_spec"].iloc[0]]
        figures = plot_group(stem, part, group_rows, curves, out)
        written += figures
        markdown.append(f"## {stem}\n\n{md}")
        first = part.iloc[0]
        title = (
            f"{_printable(first['task_spec'])} (task version {int(first['task_version'])}) "
            f"{_where(first, _printable)}"
        )
        sections.append(
            Section(
                "table",
                stem,
                title,
                [],
                [TableView("", table_caption(part), *_cells(part))],
                [f for f in figures if f.suffix == ".png"],
                _runs_of(part, runs),
            )
        )
    for stem, study in study_groups(rows):
        files, section = write_study(stem, study, out, sections)
        written += files
        markdown.append(section)
    listed = {
        run_id
        for section in sections
        if section.runs is not None
        for run_id in section.runs["run_id"]
    }
    unlisted = runs[~runs["run_id"].isin(listed) & (runs["phase"] != "tune")]
    if len(unlisted):  # (a task none of whose runs ended ok, say: its errors belong on the page)
        sections.append(
            Section(
                "runs",
                "other-runs",
                "Runs in no table",
                [
                    "These runs are in no table above: their status is left out of the tables "
                    "(rnnbench report --status), so a task whose runs all failed has its errors "
                    "here."
                ],
                runs=unlisted,
            )
        )
    reported = {
        (spec, int(version))
        for spec, version in zip(rows["task_spec"], rows["task_version"], strict=True)
    }
    shown = [
        c
        for c in cards
        if isinstance(c.get("task_version"), int)
        and (c.get("task_spec"), c["task_version"]) in reported
    ]
    inputs = []  # (title, PNG) of each task's input figure
    for card in shown:
        files = plot_input(card, out)
        written += files
        inputs += [
            (f"{_printable(card['task_spec'])} (task version {card['task_version']})", f)
            for f in files
            if f.suffix == ".png"
        ]
    references = bibliography(shown, {spec for spec, _ in reported}, rows)
    if references:
        written.append(_write_text(out, "references.bib", references))
    text = "\n".join(markdown)
    written.append(_write_text(out, "report.md", text))
    if html:
        written.append(_write_text(out, "report.html", render(sections, inputs, references, rows)))
    return written, text


def _runs_of(summary: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of `runs` that belong to a table (its task, data and machine: TABLE_KEYS), a
    study's trials left out: the page's run list of that table."""
    keys = summary[TABLE_KEYS].drop_duplicates()
    return runs[runs["phase"] != "tune"].merge(keys, on=TABLE_KEYS)
