"""Results tables: their columns (`Column`, TABLE_COLUMNS), cells (`_cells`: the precision the test
set supports, ± where there are seeds to spread, bold only for a clear best) and captions
(`table_caption`: what the table shows, in words), as Markdown and as LaTeX that compiles."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from rnnbench.report.citations import cells_sentence
from rnnbench.report.grouping import (
    data_words,
    experiment_labels,
    mixed_commits,
    score_higher_is_better,
    score_name,
)
from rnnbench.report.text import _latex, _markdown, _printable


@dataclass(frozen=True)
class Column:
    key: str  # in the summary
    title: str
    higher_is_better: bool
    digits: int  # for percentages: see _score_digits
    scale: float = 1.0
    std: str | None = None  # the summary column of its standard deviation, shown as ±
    spread: str | None = None  # what a difference must exceed to be bold (default: the std)


TABLE_COLUMNS = [
    Column("test_acc_mean", "Acc. (%)", True, 2, 100, "test_acc_std"),
    Column("test_acc_final_mean", "Final (%)", True, 2, 100, "test_acc_final_std"),
    Column(
        "test_loss_mean", "Loss", False, 3, 1, "test_loss_std"
    ),  # for tasks with a baseline loss
    Column("params", "Params", False, 0, spread="params_std"),
    Column("step_time_ms", "Step (ms)", False, 1, spread="step_time_spread_ms"),
    Column("train_time_s", "Train (s)", False, 0, spread="train_time_s_std"),
    Column("time_to_target_s", "To target (s)", False, 0, spread="time_to_target_s_std"),
    Column("peak_mem_mb", "Mem. (MiB)", False, 0, spread="peak_mem_mb_std"),
]
MEMORY_WORDS = {
    "cpu_peak_rss": "peak RSS",
    "cpu_peak_rss_since_start": "peak RSS since the process started",
    "cuda_max_allocated": "peak CUDA memory allocated",
}


def _table_columns(summary: pd.DataFrame) -> list[Column]:
    """The score always; the other columns where a line has a value."""
    has_baseline = summary["baseline_loss"].notna().any()
    return [
        c
        for c in TABLE_COLUMNS
        if c.key == "test_acc_mean"
        or (summary[c.key].notna().any() and (c.key != "test_loss_mean" or has_baseline))
    ]


def _score_digits(summary: pd.DataFrame) -> tuple[int, str]:
    """Decimals of a percentage the test set supports, and a sentence that says why: none
    below 1,000 test examples, one up to 10,000, two above."""
    n = summary["n_test"].min()
    if pd.isna(n):
        return 2, "Scores to 0.01 % (the rows do not record the test set's size)."
    n = int(n)
    digits = 0 if n < 1000 else 1 if n <= 10_000 else 2
    shown = {0: "whole percents", 1: "0.1 %", 2: "0.01 %"}[digits]
    return digits, (
        f"Scores to {shown}, as {n:,} test examples support (one example is {100 / n:.2g} %; "
        "finer digits would be noise)."
    )


def _best(summary: pd.DataFrame, column: Column, texts: dict) -> object | None:
    """The index of the ok line that is clearly best in `column`, or None: it beats the ok
    runner-up by more than the larger spread of the two (which both must have: two seeds at
    least, or for step times the spread of the steps), and the printed values differ."""
    values = summary.loc[summary["status"] == "ok", column.key].dropna()
    if len(values) < 2:
        return None
    best, runner_up = values.sort_values(ascending=not column.higher_is_better).index[:2]
    spreads = summary.loc[[best, runner_up], column.std or column.spread]
    if spreads.isna().any() or texts[best] == texts[runner_up]:
        return None
    return best if abs(values[best] - values[runner_up]) > spreads.max() else None


@dataclass(frozen=True)
class Extra:
    """What a table shows beyond the usual: columns after the cell's (title, summary index -> text),
    the fields they show (left out of the labels), and a sentence that opens its caption.
    `Extra((("lr", {0: "0.003"}),), shown=("lr",), note="The final runs of study s.")`"""

    columns: tuple[tuple[str, dict], ...] = ()
    shown: tuple[str, ...] = ()
    note: str = ""


def _cells(
    summary: pd.DataFrame, extra: Extra = Extra()
) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Header and cells (text, bold) of one table. ± only where a line has two values or more."""
    higher = score_higher_is_better(summary)
    columns = [
        dataclasses.replace(c, higher_is_better=higher) if c.scale == 100 else c
        for c in _table_columns(summary)
    ]
    score_digits, _ = _score_digits(summary)
    titles = {"test_acc_mean": f"{score_name(summary).capitalize()} (%)"}
    header = (
        ["Cell"]
        + [title for title, _ in extra.columns]
        + [f"{titles.get(c.key, c.title)} {'↑' if c.higher_is_better else '↓'}" for c in columns]
        + ["Seeds"]
    )
    texts, bold = {}, {}
    for c in columns:
        digits = score_digits if c.scale == 100 else c.digits
        texts[c.key] = {
            i: f"{v * c.scale:,.{digits}f}" for i, v in summary[c.key].items() if pd.notna(v)
        }
        bold[c.key] = _best(summary, c, texts[c.key])
        if c.std is not None:
            for i, sd in summary[c.std].items():
                if i in texts[c.key] and pd.notna(sd):
                    texts[c.key][i] += f" ± {sd * c.scale:.{digits}f}"
    body = []
    for label, i in zip(experiment_labels(summary, extra.shown), summary.index, strict=True):
        body.append(
            [(label, False)]
            + [(values.get(i, "–"), False) for _, values in extra.columns]
            + [(texts[c.key].get(i, "–"), i == bold[c.key]) for c in columns]
            + [(str(int(summary.loc[i, "n"])), False)]
        )
    return header, body


def _where(first: pd.Series, escape: Callable[[str], str]) -> str:
    """The machine of a table: its device name and number of threads."""
    name = escape(first["device_name"] or first["device"])
    threads = first["num_threads"]
    if not threads:
        return f"on {name} (number of threads not recorded)"
    said = re.search(rf"\({threads} threads?\)\s*$", first["device_name"])
    return f"on {name}" + ("" if said else f", {threads} thread{'s' if threads != '1' else ''}")


def table_caption(
    summary: pd.DataFrame, escape: Callable[[str], str] = _printable, note: str = ""
) -> str:
    """What a table shows: task and version, data identity, device and threads,
    implementations, seeds, the precision printed and the rule for bold, after `note` if given;
    `escape` is applied to every value that came from rows (and to `note`)."""
    first = summary.iloc[0]
    seeds = sorted(set(summary["n"].astype(int)))
    impls = sorted(set(summary["impl"]) - {""})
    score = escape(score_name(summary))  # (text from rows, like every other)
    if seeds == [1]:
        spread = "1 seed: each value is a single run"
    else:
        spread = f"mean ± standard deviation over {'/'.join(map(str, seeds))} seeds" + (
            "; a value without ± has one run behind it"
            if (summary["test_acc_std"].isna() | (summary["n"] < 2)).any()
            else ""
        )
    _, precision = _score_digits(summary)
    memory = (
        MEMORY_WORDS.get(first["mem_source"], "peak memory")
        if summary["mem_source"].nunique() == 1
        else "peak memory"
    )
    return (
        (f"{escape(note)} " if note else "")
        + f"{escape(first['task_spec'])} (task version {int(first['task_version'])}), data: "
        f"{data_words(summary, escape)}; {_where(first, escape)}"
        + (
            f", implementation{'s' if len(impls) > 1 else ''}: "
            f"{', '.join(escape(i) for i in impls)}"
            if impls
            else ""
        )
        + f"; {spread}. {precision} Bold: best ok run by more than the larger spread of it and the "
        "runner-up (standard deviation over 2 seeds or more; for Step, also the interquartile "
        f"range of step times). {score.capitalize()}: test {score} of the weights with the best "
        "validation score; Final: of the final weights; Step: median time of a training step; "
        f"Train: training time; Mem.: {memory}."
        + (
            f" Loss: test loss; the memoryless baseline's is {first['baseline_loss']:.4g}."
            if pd.notna(first["baseline_loss"])
            else ""
        )
        + (
            f" Caution: rows from {len(commits)} versions of the code "
            f"({', '.join(escape(c) for c in commits)})."
            if len(commits := mixed_commits(summary)) > 1
            else ""
        )
        + (f" {escape(cited)}" if (cited := cells_sentence(summary)) else "")
    )


def markdown_table(summary: pd.DataFrame, extra: Extra = Extra()) -> str:
    header, body = _cells(summary, extra)
    return f"{table_caption(summary, _markdown, extra.note)}\n\n" + _markdown_lines(header, body)


def _markdown_lines(header: list[str], body: list[list[tuple[str, bool]]]) -> str:
    """A Markdown table of texts from rows (escaped here), bold where flagged, numbers
    right-aligned: `_markdown_lines(["Cell", "n"], [[("lstm", False), ("3", True)]])`."""
    lines = [
        "| " + " | ".join(_markdown(h) for h in header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += [
        "| "
        + " | ".join(f"**{_markdown(text)}**" if bold else _markdown(text) for text, bold in row)
        + " |"
        for row in body
    ]
    return "\n".join(lines) + "\n"


def latex_table(summary: pd.DataFrame, label: str, extra: Extra = Extra()) -> str:
    """A booktabs table that compiles as it is (needs \\usepackage{booktabs}), caption on top."""
    header, body = _cells(summary, extra)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\footnotesize",
        rf"\caption{{{_latex(table_caption(summary, note=extra.note))}}}",
        rf"\label{{{label}}}",
        r"\setlength{\tabcolsep}{3pt}",
        r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
        r"\toprule",
        " & ".join(_latex(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [
        " & ".join(rf"\textbf{{{_latex(text)}}}" if bold else _latex(text) for text, bold in row)
        + r" \\"
        for row in body
    ]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
