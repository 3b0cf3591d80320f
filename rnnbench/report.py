"""`rnnbench report`: result rows -> aggregation over seeds -> tables and plots.

One aggregation (`aggregate`) feeds the Markdown, LaTeX and CSV tables and the plots. Rows are
only ever aggregated with rows of the same task spec and version, data (the hash of what the
task recorded as its data identity), device (type, name and threads), implementation, status and config (all but the seed); each
table states which of those it shows.

A tuning study (`rnnbench tune`) has rows of two phases: its trials (phase "tune"), which are how
a setting was chosen and never results, and the final runs of each cell's chosen setting (phase
"final"), which are results of their own, never averaged with other rows. Each study gets a section
of its own (`write_study`): the final table, every trial, a figure of validation score against each
searched hyper-parameter, and a warning where a chosen value lies at an edge of what was searched.
The choice rests on validation scores only: the trials' test scores are never shown or used.

Row contents are untrusted text: they are checked (`records.row_problem`) before use, escaped for
Markdown, LaTeX and matplotlib, and never reach a file name unsanitised (`_name_part`); every
file is written inside the output folder, through a temporary file (`_write`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import hashlib
import json
import os
import re
import secrets
import textwrap
import unicodedata
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from rnnbench import cite, records
from rnnbench.task import data_hash, data_json

NUMERIC = ["seed", "hidden_size", "test_acc", "test_acc_final", "best_valid_acc", "test_loss", "baseline_loss",
           "params", "train_time_s", "step_time_ms", "step_time_iqr_ms", "peak_mem_mb", "time_to_target_s",
           "task_version", "n_test", "num_threads", "linear_acc", "trial", "steps_done", "n_valid"]
REQUIRED = ["run_id", "task", "task_version", "cell_spec", "seed", "hidden_size", "config_json", "status",
            "device", "test_acc"]
# What a table never mixes: two machines, or one machine with another number of threads, are two tables.
TABLE_KEYS = ["task", "task_spec", "task_version", "data_hash", "device", "device_name", "num_threads"]
# Everything that must be equal for two rows to be seeds of the same experiment (a line of a table):
# a study's final runs are an experiment of their own, apart from plain runs of the same config.
GROUP_KEYS = TABLE_KEYS + ["cell_spec", "impl", "status", "hidden_size", "config_rest", "study", "phase"]
TEXT = ["task", "task_spec", "data_hash", "data_json", "task_json", "device", "device_name", "cell", "cell_spec", "impl",
        "mem_source", "status", "phase", "study", "tuned_json", "study_json"]



class ReportError(ValueError):
    """Nothing to report, or the report cannot be written; the message says why."""


def _config_rest(config_json: str) -> str:
    """The config without the seed and the fields already in the group keys, as canonical JSON
    (fields at their default left out, so rows written before a field existed still match)."""
    from rnnbench.config import DEFAULTS, WATCH

    config = {k: v for k, v in json.loads(config_json).items() if k not in DEFAULTS or DEFAULTS[k] != v}
    for key in ("seed", "hidden_size", "device", "warmup_steps", "eval_batch_size", *WATCH):
        config.pop(key, None)
    return json.dumps(config, sort_keys=True)


def read_results(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All rows and curves of the results CSVs in `folder`; malformed rows are skipped with a
    warning naming the file and the line."""
    if not folder.is_dir():
        raise ReportError(f"results folder {folder} does not exist; run `rnnbench run ...` first")
    rows, curves = [], []
    for path in sorted(folder.glob("*.csv")):
        kind = "curves" if path.name.endswith("-curves.csv") else "rows"
        try:
            parsed = records.parse(path, kind)
        except records.ForeignFile as error:
            warnings.warn(f"{error} (skipped)")
            continue
        if parsed.layout is None:
            continue
        needed = ["run_id", "step", "wall_time_s", "split"] if kind == "curves" else REQUIRED
        missing = [c for c in needed if c not in parsed.layout.header]
        if missing:
            warnings.warn(f"{path}: skipped, the header lacks {', '.join(missing)}")
            continue
        for problem in parsed.problems:
            warnings.warn(problem)
        for row in parsed.rows:  # (each already passed records.row_problem, the rule `run` uses too)
            row.pop("_line", None)
            (curves if kind == "curves" else rows).append(row)
    # A run trained again (--force) has a newer row: the latest row of each run is its result.
    rows = list({row["run_key"]: row for row in rows}.values())
    return _rows_frame(rows), _curves_frame(curves)


def _rows_frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    """Checked rows as a frame: text columns as strings ('' where missing), NUMERIC as finite
    numbers or NaN; `num_threads` filled in from older rows' device names."""
    extra = [k for r in rows for k in r if k not in records.COLUMNS]  # (columns of older files, or added by hand)
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(records.COLUMNS + ["num_threads"] + extra)))
    for column in TEXT:  # (object first: a column that no row has is all NaN, a float)
        frame[column] = frame[column].astype(object).fillna("").astype(str)
    # Rows from before rnnbench recorded data identities: what they hold in columns this version
    # does not write (there: the data source, the split and the pixel order) is their identity, so
    # that rows of different data never share a table.
    retired = [c for c in dict.fromkeys(extra) if c != "num_threads"]
    for i in frame.index[frame["data_json"] == ""] if retired else ():
        identity = {c: str(frame.at[i, c]) for c in retired if pd.notna(frame.at[i, c]) and frame.at[i, c] != ""}
        if identity:
            frame.at[i, "data_json"], frame.at[i, "data_hash"] = data_json(identity), data_hash(identity)
    unnamed = frame["task_spec"] == ""
    frame.loc[unnamed, "task_spec"] = frame.loc[unnamed, "task"]  # rows written before task specs
    unnamed = frame["cell"] == ""
    frame.loc[unnamed, "cell"] = frame.loc[unnamed, "cell_spec"].str.split(":").str[0]
    for column in NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").replace([np.inf, -np.inf], np.nan)
    # Rows written before the num_threads column: the CPU's device name ends in "(N threads)".
    from_name = pd.to_numeric(frame["device_name"].str.extract(r"\((\d+) threads?\)\s*$")[0], errors="coerce")
    threads = frame["num_threads"].fillna(from_name)
    frame["num_threads"] = [str(int(t)) if pd.notna(t) else "" for t in threads]
    return frame


def _curves_frame(curves: list[dict[str, str]]) -> pd.DataFrame:
    # A run killed between writing its curves and its row writes them again when it resumes.
    frame = pd.DataFrame(curves, columns=records.CURVE_COLUMNS).drop_duplicates(["run_id", "step", "split"],
                                                                                 keep="last")
    for column in records.CURVE_NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").replace([np.inf, -np.inf], np.nan)
    return frame


def select(rows: pd.DataFrame, tasks: list[str] | None = None, cells: list[str] | None = None,
           statuses: tuple[str, ...] = ("ok",)) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows of the given tasks, cells (names or globs, matched against the name and the spec)
    and statuses, with a study's trials (phase tune) whatever their status, as its trials table
    shows every one; also the counts of every status among the other rows that matched otherwise.
    `select(rows, ["pmnist"], ["eurnn*"], ("ok", "diverged"))`."""
    keep = pd.Series(True, index=rows.index)
    if tasks:
        keep &= rows["task"].isin(tasks)
    if cells:
        keep &= pd.Series([any(fnmatch.fnmatchcase(str(name), p) or fnmatch.fnmatchcase(str(spec), p)
                                   for p in cells) for name, spec in zip(rows["cell"], rows["cell_spec"])],
                          index=rows.index, dtype=bool)
    trial = rows["phase"] == "tune"
    counts = rows.loc[keep & ~trial, "status"].value_counts().to_dict()
    return rows[keep & (rows["status"].isin(statuses) | trial)].copy(), counts


def aggregate(rows: pd.DataFrame, **more: tuple) -> pd.DataFrame:
    """One line per experiment (GROUP_KEYS): n seeds, mean and standard deviation of the test
    accuracies, and the costs (median step time; means of the rest), each with its standard
    deviation over seeds (NaN with fewer than two values); `more` adds named aggregations
    (`aggregate(rows, trial=("trial", "last"))`)."""
    rows = rows.assign(config_rest=rows["config_json"].map(_config_rest))
    grouped = rows.groupby(GROUP_KEYS, sort=True, dropna=False)
    summary = grouped.agg(
        n=("seed", "size"), cell=("cell", "first"),
        test_acc_mean=("test_acc", "mean"), test_acc_std=("test_acc", "std"),
        test_acc_final_mean=("test_acc_final", "mean"), test_acc_final_std=("test_acc_final", "std"),
        test_loss_mean=("test_loss", "mean"), test_loss_std=("test_loss", "std"),
        baseline_loss=("baseline_loss", "first"),
        params=("params", "median"), params_std=("params", "std"),
        step_time_ms=("step_time_ms", "median"), step_time_ms_std=("step_time_ms", "std"),
        step_time_iqr_ms=("step_time_iqr_ms", "median"),
        train_time_s=("train_time_s", "mean"), train_time_s_std=("train_time_s", "std"),
        time_to_target_s=("time_to_target_s", "mean"), time_to_target_s_std=("time_to_target_s", "std"),
        peak_mem_mb=("peak_mem_mb", "mean"), peak_mem_mb_std=("peak_mem_mb", "std"),
        mem_source=("mem_source", lambda s: ",".join(sorted({v for v in s if v}))),
        n_test=("n_test", "min"), linear_acc=("linear_acc", "median"),
        seeds=("seed", lambda s: ",".join(str(int(v)) for v in sorted(s))),
        commits=("git_commit", lambda s: ",".join(sorted({v for v in s if v}))),
        task_json=("task_json", "last"), data_json=("data_json", "last"), **more,
    ).reset_index()
    # A step time is uncertain by the spread of its seeds and, within a run, of its steps.
    summary["step_time_spread_ms"] = np.fmax(summary["step_time_ms_std"], summary["step_time_iqr_ms"])
    return summary


# --- text that came from rows -------------------------------------------------------------------

def _printable(text) -> str:
    """Text without control characters (each becomes a visible \\xNN)."""
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                   for c in str(text))


def _markdown(text) -> str:
    """Text as it reads in a Markdown table cell: `|` and the characters that would start
    emphasis, code, math, links, HTML or entities escaped (an underscore inside a word needs none)."""
    text = re.sub(r"([\\`*\[\]<>|~&$])", r"\\\1", _printable(text))
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                 "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "|": r"\textbar{}",
                 "<": r"\textless{}", ">": r"\textgreater{}"}  # (OT1 fonts print | < > as other glyphs)
LATEX_SYMBOLS = {"±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "–": "--", "—": "---",
                 "²": r"\textsuperscript{2}", "×": r"$\times$", "…": r"\ldots{}", "→": r"$\rightarrow$", "µ": r"$\mu$",
                 "μ": r"$\mu$"}


def _latex(text) -> str:
    """Text as LaTeX that compiles with pdflatex and booktabs alone: its special characters
    escaped, and ASCII only (accents dropped; other characters written as [U+XXXX])."""
    text = re.sub(r"[\\&%$#_{}~^|<>]", lambda m: LATEX_SPECIAL[m.group()], _printable(text))
    out = []
    for char in text:
        if char.isascii():
            out.append(char)
        elif char in LATEX_SYMBOLS:
            out.append(LATEX_SYMBOLS[char])
        else:
            folded = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            out.append(_latex(folded) if folded.isascii() and folded else f"[U+{ord(char):04X}]")
    return "".join(out)


def _plot_text(text, limit: int = 48, width: int | None = None) -> str:
    """Text for matplotlib: `$` taken literally (not as mathtext), no control characters, short;
    given a `width`, on two lines at most."""
    text = _printable(text)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    if width is not None:
        text = "\n".join(textwrap.wrap(text, width, max_lines=2, placeholder="…"))
    return text.replace("$", r"\$")


# --- tables -------------------------------------------------------------------------------------

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
    Column("test_loss_mean", "Loss", False, 3, 1, "test_loss_std"),  # for tasks with a baseline loss
    Column("params", "Params", False, 0, spread="params_std"),
    Column("step_time_ms", "Step (ms)", False, 1, spread="step_time_spread_ms"),
    Column("train_time_s", "Train (s)", False, 0, spread="train_time_s_std"),
    Column("time_to_target_s", "To target (s)", False, 0, spread="time_to_target_s_std"),
    Column("peak_mem_mb", "Mem. (MiB)", False, 0, spread="peak_mem_mb_std"),
]
MEMORY_WORDS = {"cpu_peak_rss": "peak RSS", "cpu_peak_rss_since_start": "peak RSS since the process started",
                "cuda_max_allocated": "peak CUDA memory allocated"}


def _table_columns(summary: pd.DataFrame) -> list[Column]:
    """The score always; the other columns where a line has a value."""
    has_baseline = summary["baseline_loss"].notna().any()
    return [c for c in TABLE_COLUMNS if c.key == "test_acc_mean" or (
        summary[c.key].notna().any() and (c.key != "test_loss_mean" or has_baseline))]


def _score_digits(summary: pd.DataFrame) -> tuple[int, str]:
    """Decimals of a percentage the test set supports, and a sentence that says why: none
    below 1,000 test examples, one up to 10,000, two above."""
    n = summary["n_test"].min()
    if pd.isna(n):
        return 2, "Scores to 0.01 % (the rows do not record the test set's size)."
    n = int(n)
    digits = 0 if n < 1000 else 1 if n <= 10_000 else 2
    shown = {0: "whole percents", 1: "0.1 %", 2: "0.01 %"}[digits]
    return digits, (f"Scores to {shown}, as {n:,} test examples support (one example is {100 / n:.2g} %; "
                    "finer digits would be noise).")


def experiment_labels(summary: pd.DataFrame, shown: tuple[str, ...] = ()) -> list[str]:
    """A label per summary line: the cell spec, then N and the config fields only where they
    differ between the lines, the implementation where the cell ran in more than one, the study
    of a study's final runs, and the status unless ok (`eurnn (N=64, impl=fused, lr=0.003)`);
    what the table shows in `shown` columns of its own (config fields, "study") is left out."""
    rests = [json.loads(r) for r in summary["config_rest"]]
    varying = sorted(k for k in set().union(*rests)
                     if k not in shown and len({json.dumps(r.get(k)) for r in rests}) > 1)
    show_n = summary["hidden_size"].nunique() > 1
    impls = summary.groupby("cell_spec")["impl"].agg(lambda s: len(set(s) - {""}))  # (a failed run has none)
    labels = []
    for (_, line), rest in zip(summary.iterrows(), rests):
        details = ([f"N={int(line['hidden_size'])}"] if show_n else []) \
            + ([f"impl={line['impl'] or '?'}"] if impls[line["cell_spec"]] > 1 else []) \
            + [f"{k}={rest.get(k)}" for k in varying] \
            + ([f"study={line['study']}"] if line.get("study") and "study" not in shown else []) \
            + ([line["status"]] if line["status"] != "ok" else [])
        labels.append(line["cell_spec"] + (f" ({', '.join(details)})" if details else ""))
    return labels


def _recorded(summary: pd.DataFrame, column: str) -> dict:
    """What the table's rows recorded as JSON in `column` (task_json: the task's metadata when it
    ran; data_json: its data identity; study_json, tuned_json: a study's), from its latest row that
    did; {} for rows from before."""
    for text in reversed(list(summary[column])) if column in summary else []:
        value = _json_object(text)
        if value is not None:
            return value
    return {}


def _json_object(text) -> dict | None:
    """A JSON object written in a row, or None for anything else: `_json_object('{"lr": 0.1}')`."""
    try:
        value = json.loads(text) if text else None
    except (TypeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def score_name(summary: pd.DataFrame) -> str:
    """What `acc` means for the table's task, as its rows recorded: accuracy, recall accuracy, R²...
    ("score" for rows from before rnnbench recorded it: the report does not guess)."""
    name = _recorded(summary, "task_json").get("score_name")
    return name if isinstance(name, str) and name else "score"


def score_higher_is_better(summary: pd.DataFrame) -> bool:
    """Which way the table's score is better, as its rows recorded (higher where they do not say)."""
    return _recorded(summary, "task_json").get("higher_is_better") is not False


def data_words(summary: pd.DataFrame, escape: Callable[[str], str] = _printable) -> str:
    """The table's data identity as recorded, `key=value, ...` (long values cut to 12 characters)."""
    identity = _recorded(summary, "data_json")
    if not identity:
        return "not recorded (rows from before rnnbench recorded data identities)"
    return ", ".join(f"{escape(k)}={escape(str(v) if len(str(v)) <= 16 else str(v)[:12] + '…')}"
                     for k, v in identity.items())


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


def _cells(summary: pd.DataFrame, extra: Extra = Extra()) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Header and cells (text, bold) of one table. ± only where a line has two values or more."""
    higher = score_higher_is_better(summary)
    columns = [dataclasses.replace(c, higher_is_better=higher) if c.scale == 100 else c
               for c in _table_columns(summary)]
    score_digits, _ = _score_digits(summary)
    titles = {"test_acc_mean": f"{score_name(summary).capitalize()} (%)"}
    header = ["Cell"] + [title for title, _ in extra.columns] \
        + [f"{titles.get(c.key, c.title)} {'↑' if c.higher_is_better else '↓'}" for c in columns] + ["Seeds"]
    texts, bold = {}, {}
    for c in columns:
        digits = score_digits if c.scale == 100 else c.digits
        texts[c.key] = {i: f"{v * c.scale:,.{digits}f}" for i, v in summary[c.key].items() if pd.notna(v)}
        bold[c.key] = _best(summary, c, texts[c.key])
        if c.std is not None:
            for i, sd in summary[c.std].items():
                if i in texts[c.key] and pd.notna(sd):
                    texts[c.key][i] += f" ± {sd * c.scale:.{digits}f}"
    body = []
    for label, i in zip(experiment_labels(summary, extra.shown), summary.index):
        body.append([(label, False)] + [(values.get(i, "–"), False) for _, values in extra.columns]
                    + [(texts[c.key].get(i, "–"), i == bold[c.key]) for c in columns]
                    + [(str(int(summary.loc[i, "n"])), False)])
    return header, body


def _where(first: pd.Series, escape: Callable[[str], str]) -> str:
    """The machine of a table: its device name and number of threads."""
    name = escape(first["device_name"] or first["device"])
    threads = first["num_threads"]
    if not threads:
        return f"on {name} (number of threads not recorded)"
    said = re.search(rf"\({threads} threads?\)\s*$", first["device_name"])
    return f"on {name}" + ("" if said else f", {threads} thread{'s' if threads != '1' else ''}")


def table_caption(summary: pd.DataFrame, escape: Callable[[str], str] = _printable, note: str = "") -> str:
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
        spread = (f"mean ± standard deviation over {'/'.join(map(str, seeds))} seeds"
                  + ("; a value without ± has one run behind it" if (summary["test_acc_std"].isna()
                                                                     | (summary["n"] < 2)).any() else ""))
    _, precision = _score_digits(summary)
    memory = MEMORY_WORDS.get(first["mem_source"], "peak memory") if summary["mem_source"].nunique() == 1 \
        else "peak memory"
    return ((f"{escape(note)} " if note else "")
            + f"{escape(first['task_spec'])} (task version {int(first['task_version'])}), data: "
            f"{data_words(summary, escape)}; {_where(first, escape)}"
            + (f", implementation{'s' if len(impls) > 1 else ''}: {', '.join(escape(i) for i in impls)}"
               if impls else "") + f"; {spread}. "
            f"{precision} Bold: best ok run by more than the larger spread of it and the runner-up "
            f"(standard deviation over 2 seeds or more; for Step, also the interquartile range of step times). "
            f"{score.capitalize()}: test {score} of the weights with the best validation score; Final: of the final "
            f"weights; Step: median time of a training step; Train: training time; Mem.: {memory}."
            + (f" Loss: test loss; the memoryless baseline's is {first['baseline_loss']:.4g}."
               if pd.notna(first["baseline_loss"]) else "")
            + (f" Caution: rows from {len(commits)} versions of the code ({', '.join(escape(c) for c in commits)})."
               if len(commits := mixed_commits(summary)) > 1 else "")
            + (f" {escape(cited)}" if (cited := cite.cells_sentence(summary["cell"])) else ""))


def mixed_commits(summary: pd.DataFrame) -> list[str]:
    """The code versions (git commits, `+dirty` for uncommitted changes) behind a table's rows,
    when they are not all one: such a table may compare code that changed in between."""
    commits = sorted({c for line in summary["commits"] for c in str(line).split(",") if c})
    return commits if len(commits) > 1 else []


def markdown_table(summary: pd.DataFrame, extra: Extra = Extra()) -> str:
    header, body = _cells(summary, extra)
    return f"{table_caption(summary, _markdown, extra.note)}\n\n" + _markdown_lines(header, body)


def _markdown_lines(header: list[str], body: list[list[tuple[str, bool]]]) -> str:
    """A Markdown table of texts from rows (escaped here), bold where flagged, numbers right-aligned:
    `_markdown_lines(["Cell", "n"], [[("lstm", False), ("3", True)]])`."""
    lines = ["| " + " | ".join(_markdown(h) for h in header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(f"**{_markdown(text)}**" if bold else _markdown(text) for text, bold in row) + " |"
              for row in body]
    return "\n".join(lines) + "\n"


def latex_table(summary: pd.DataFrame, label: str, extra: Extra = Extra()) -> str:
    """A booktabs table that compiles as it is (needs \\usepackage{booktabs}), caption on top."""
    header, body = _cells(summary, extra)
    lines = [r"\begin{table}[t]", r"\centering", r"\footnotesize",
             rf"\caption{{{_latex(table_caption(summary, note=extra.note))}}}", rf"\label{{{label}}}",
             r"\setlength{\tabcolsep}{3pt}", r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(_latex(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(rf"\textbf{{{_latex(text)}}}" if bold else _latex(text) for text, bold in row) + r" \\"
              for row in body]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _name_part(text, limit: int = 32) -> str:
    """A piece of a file name made from row contents: only [A-Za-z0-9._=-], no leading dot or
    dash, at most `limit` characters; where that changed the text, a short hash of it keeps
    different texts apart (`../x` -> `x_1b2c3d4e`)."""
    text = str(text)
    clean = re.sub(r"[^A-Za-z0-9._=-]+", "_", text)
    if clean == text and not text.startswith((".", "-")) and len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    clean = re.sub(r"^[._-]+", "", clean[: limit - 9]).rstrip("_")
    return f"{clean}_{digest}" if clean else digest


def _digest(keys) -> str:
    return hashlib.sha256(json.dumps([str(k) for k in keys]).encode("utf-8", "surrogatepass")).hexdigest()[:8]


def table_groups(summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The summary split into tables that never mix task versions, data or machines; each with a
    file-name stem `TASK-vVERSION-DEVICE`, followed by the data's hash where two tables would share
    it, then the device's name and threads, and by a hash where they still would."""
    groups = []
    for keys, part in summary.groupby(TABLE_KEYS, sort=True, dropna=False):
        k = dict(zip(TABLE_KEYS, keys))
        stem = "-".join(p for p in map(_name_part, (str(k["task_spec"]).replace(":", "_"), f"v{int(k['task_version'])}",
                                                    k["device"])) if p)
        data = f"-data{_name_part(str(k['data_hash'])[:8])}" if k["data_hash"] else ""
        machine = "".join(f"-{p}" for p in map(_name_part, (k["device_name"], k["num_threads"] and
                                                           f"{k['num_threads']}threads")) if p)
        part = part.assign(_status=part["status"].map(records.STATUSES.index))  # ok first, then the others
        part = part.sort_values(["cell_spec", "hidden_size", "_status", "impl", "config_rest", "study", "phase"]
                                ).drop(columns="_status")
        groups.append([stem, data, machine, keys, part])
    stems = [g[0] for g in groups]
    for extra in (1, 2):  # the data's hash, then the machine, only where stems clash and they tell them apart
        values: dict[str, set] = {}  # (casefolded: a case-insensitive disk would merge A and a)
        for s, g in zip(stems, groups):
            values.setdefault(s.casefold(), set()).add(g[extra])
        stems = [s + g[extra] if len(values[s.casefold()]) > 1 else s for s, g in zip(stems, groups)]
    groups = [[g[0], g[1] + g[2], g[3], g[4]] for g in groups]
    stems = _distinct(stems, [g[2] for g in groups])
    return [(stem, g[3]) for stem, g in zip(stems, groups)]


def _distinct(stems: list[str], keys: list) -> list[str]:
    """File-name stems made distinct, also on a case-insensitive disk, by a hash of each one's
    group keys where they clash: `_distinct(["a", "A"], [("x",), ("y",)])`."""
    while len({s.casefold() for s in stems}) < len(stems):
        counts = Counter(s.casefold() for s in stems)
        stems = [f"{s}-{_digest([*k, s])}" if counts[s.casefold()] > 1 else s for s, k in zip(stems, keys)]
    return stems


# --- writing files --------------------------------------------------------------------------------

def _inside(out: Path, name: str) -> Path:
    """out/name, refused if it would resolve outside `out` (a name with a path in it, a link)."""
    path = out / name
    if path.resolve().parent != out.resolve():
        raise ReportError(f"refusing to write {path}: it resolves to {path.resolve()}, outside {out}")
    return path


def _write(out: Path, name: str, write: Callable[[Path], None]) -> Path:
    """Write out/name through a temporary file renamed over it: a failed write (disk full...)
    leaves the old file, or none, and no temporary one."""
    path = _inside(out, name)
    temporary = out / f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _write_text(out: Path, name: str, text: str) -> Path:
    return _write(out, name, lambda p: p.write_text(text, encoding="utf-8"))


# --- plots ---------------------------------------------------------------------------------------

COLUMN_WIDTH_IN = 3.4  # one column of a two-column paper
# Colours never depend on what else is in a report: the built-in cells have fixed ones (the
# indices in seaborn's colorblind palette); any other cell name hashes into a palette of its own.
CELL_COLORS = {"eurnn": 0, "gru": 1, "lstm": 2, "rnn": 3, "eurnn-c4": 4, "eurnn-c8": 5, "eurnn-c16": 6,
               "eurnn-fft": 7, "eurnn-full": 8}
OTHER_COLORS = 12
MARKERS = ["o", "s", "^", "D", "v", "P"]
STYLES = ["-", "--", ":", "-."]  # a cell's colour stays; its variants differ by line style and marker


def cell_color(name: str) -> tuple[float, float, float]:
    """The colour of a cell name, the same in every report: `cell_color("lstm")`."""
    import seaborn as sns

    if name in CELL_COLORS:
        return tuple(sns.color_palette("colorblind", 10)[CELL_COLORS[name]])
    index = int(hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest(), 16) % OTHER_COLORS
    return tuple(sns.husl_palette(OTHER_COLORS, s=0.9, l=0.55)[index])


def memory_label(sources) -> str:
    """The axis label of peak memory, in words for the way it was measured."""
    sources = {s for source in sources for s in str(source).split(",") if s}
    return f"{MEMORY_WORDS.get(sources.pop(), 'peak memory') if len(sources) == 1 else 'peak memory'} (MiB)"


def _save(fig, out: Path, stem: str) -> list[Path]:
    import matplotlib.pyplot as plt

    try:
        return [_write(out, f"{stem}.{suffix}", lambda p, s=suffix: fig.savefig(p, format=s, dpi=200))
                for suffix in ("png", "pdf")]
    finally:
        plt.close(fig)


def _inside_axes(extent, box, slack: float = 0.5) -> bool:
    return (extent.x0 >= box.x0 - slack and extent.x1 <= box.x1 + slack and extent.y0 >= box.y0 - slack
            and extent.y1 <= box.y1 + slack)


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _label_points(ax, points) -> None:
    """Label each (x, y, text) next to its point, on the first side where the label stays inside
    the axes and clear of the labels before it (else inside the axes; a label too long for any
    side is clipped at the axes). Call after the layout is done."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    sides = [(3, dy, "left", va) for dy, va in ((3, "bottom"), (-3, "top"))] \
        + [(-3, dy, "right", va) for dy, va in ((3, "bottom"), (-3, "top"))] \
        + [(dx, dy, ha, va) for dy, va in ((11, "bottom"), (-11, "top")) for dx, ha in ((3, "left"), (-3, "right"))]
    placed = []
    for x, y, text in points:
        fits = []
        for dx, dy, ha, va in sides:
            note = ax.annotate(_plot_text(text, limit=30), (x, y), xytext=(dx, dy), textcoords="offset points",
                               ha=ha, va=va, fontsize="x-small")
            note.set_in_layout(False)
            extent = note.get_window_extent(renderer)
            note.remove()
            if _inside_axes(extent, box):
                fits.append(((dx, dy, ha, va), extent))
        clear = [fit for fit in fits if not any(_overlaps(fit[1], other) for other in placed)]
        (dx, dy, ha, va), extent = (clear or fits or [(sides[0], None)])[0]
        note = ax.annotate(_plot_text(text, limit=30), (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha,
                           va=va, fontsize="x-small", clip_on=extent is None)
        note.set_in_layout(False)
        if extent is not None:
            placed.append(extent)


def _count_axis(ax, values) -> None:
    """An x axis for counts such as parameters: log where they span a factor of 10 or more,
    else linear; few ticks, written short (19.5k), so that labels never overlap."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    values = np.asarray([v for v in values if np.isfinite(v) and v > 0])
    if len(values) and values.max() / values.min() >= 10:
        ax.set_xscale("log")
        decades = np.log10(values.max() / values.min())
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0) if decades < 2 else (1.0,),
                                              numticks=6))
        ax.xaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(2, 10)), numticks=12))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))

    def short(value, _):
        for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= size:
                return f"{value / size:.4g}{suffix}"
        return f"{value:.4g}"

    ax.xaxis.set_major_formatter(FuncFormatter(short))


def _styles(summary: pd.DataFrame) -> tuple[dict, dict]:
    """Per label: a line style and a marker, different among the lines of one colour."""
    styles, markers = {}, {}
    for _, part in summary.groupby("cell"):
        for i, label in enumerate(part["label"]):
            styles[label], markers[label] = STYLES[i % len(STYLES)], MARKERS[i % len(MARKERS)]
    return styles, markers


def curve_figures(summary: pd.DataFrame, rows: pd.DataFrame, curves: pd.DataFrame, score: str) -> dict:
    """Validation score against step and against training time (mean over seeds, ±1 sd band);
    {} when no curve has a value."""
    import matplotlib.pyplot as plt

    styles, _ = _styles(summary)
    experiment = rows.assign(config_rest=rows["config_json"].map(_config_rest))[["run_id"] + GROUP_KEYS].merge(
        summary[GROUP_KEYS + ["label", "cell"]], on=GROUP_KEYS)[["run_id", "cell", "label"]]
    valid = curves[curves["split"] == "valid"].merge(experiment, on="run_id").dropna(subset=["acc", "step"])
    figures = {}
    if valid.empty:
        return figures
    per_step = valid.groupby(["label", "cell", "step"]).agg(
        acc=("acc", "mean"), sd=("acc", "std"), time=("wall_time_s", "mean")).reset_index()
    for x, xlabel, name in (("step", "training step", "valid-acc-vs-step"),
                            ("time", "training time (s)", "valid-acc-vs-time")):
        lines = per_step.dropna(subset=[x])
        if lines.empty:
            continue
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.5))
        for (label, cell), line in lines.groupby(["label", "cell"]):
            sd = line["sd"].fillna(0)
            ax.plot(line[x], 100 * line["acc"], color=cell_color(cell), linestyle=styles[label],
                    label=_plot_text(label), marker=".")
            ax.fill_between(line[x], 100 * (line["acc"] - sd), 100 * (line["acc"] + sd), color=cell_color(cell),
                            alpha=0.2, linewidth=0)
        ax.set(xlabel=xlabel, ylabel=f"validation {_plot_text(score)} (%)")
        ax.legend(fontsize="small")
        fig.tight_layout()
        figures[name] = fig
    return figures


def reference_lines(summary: pd.DataFrame, task_spec: str) -> dict[str, float]:
    """The lines a test-score figure draws, each from the data it is drawn on: the task's own
    (a memoryless baseline...), the linear baseline computed on the rows' own data, and the task's
    published numbers, with their source, only on the data they were measured on."""
    task = _recorded(summary, "task_json")
    lines: dict[str, float] = {}
    if _finite(task.get("chance")):
        lines["chance (the best memoryless answer)"] = float(task["chance"])
    own = task.get("reference_lines")
    lines.update({str(k): float(v) for k, v in own.items() if _finite(v)} if isinstance(own, dict) else {})
    linear = summary["linear_acc"].dropna() if "linear_acc" in summary else pd.Series(dtype=float)
    if len(linear):
        lines["linear classifier on this data"] = float(linear.median())
    identities = {text for text in summary["data_json"]} if "data_json" in summary else set()
    data = _recorded(summary, "data_json") if len(identities) == 1 else {}
    published_lines = task.get("published_lines")
    for name, published in published_lines.items() if isinstance(published_lines, dict) else ():
        try:
            value, where = published
            if _finite(value) and where and all(data.get(k) == v for k, v in where.items()):
                lines[str(name)] = float(value)
        except (TypeError, ValueError, AttributeError):  # a hand-edited row: its line is left out
            continue
    return lines


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def test_acc_figure(summary: pd.DataFrame, task_spec: str, score: str):
    """Test score per line (mean, ±1 sd where two seeds or more), with the task's reference
    lines, each labelled beside its line with its value; None if no line has a score."""
    import matplotlib.pyplot as plt

    lines = summary[summary["test_acc_mean"].notna()]
    if lines.empty:
        return None
    references = reference_lines(summary, task_spec)
    _, markers = _styles(summary)
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 0.9 + 0.3 * (len(lines) + len(references))))
    positions = np.arange(len(lines))[::-1]  # the table's order, top to bottom
    ax.errorbar(100 * lines["test_acc_mean"], positions, xerr=100 * lines["test_acc_std"].fillna(0), fmt="none",
                ecolor="0.3", capsize=3)
    for position, (_, line) in zip(positions, lines.iterrows()):
        ax.scatter(100 * line["test_acc_mean"], position, color=cell_color(line["cell"]), marker=markers[line["label"]],
                   zorder=3)
    # Each reference line gets a row of its own above the cells, where its label sits beside it.
    rows_of_labels = {name: len(lines) + i for i, name in enumerate(references)}
    for name, value in references.items():
        ax.axvline(100 * value, color="0.4", linestyle="--", linewidth=1)
    ax.set(yticks=positions, yticklabels=[_plot_text(label, width=26) for label in lines["label"]],
           xlabel=f"test {_plot_text(score)} (%)", ylim=(-0.6, len(lines) + len(references) - 0.4))
    fig.tight_layout()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    for name, value in references.items():
        label = f"{name}: {100 * value:.4g} %"
        tries = [(text, dx, ha) for text in (_plot_text(label, limit=60), _plot_text(label, limit=60, width=24))
                 for dx, ha in ((3, "left"), (-3, "right"))]  # on one line, else on two
        for text, dx, ha in tries:
            note = ax.annotate(text, (100 * value, rows_of_labels[name]), xytext=(dx, 0), textcoords="offset points",
                               ha=ha, va="center", fontsize="x-small", color="0.3")
            note.set_in_layout(False)
            if _inside_axes(note.get_window_extent(renderer), box):
                break
            note.remove()
        else:
            note = ax.annotate(tries[-1][0], (100 * value, rows_of_labels[name]), xytext=(3, 0),
                               textcoords="offset points", ha="left", va="center", fontsize="x-small", color="0.3",
                               clip_on=True)
            note.set_in_layout(False)
    return fig


def tradeoff_figure(summary: pd.DataFrame, score: str):
    """Score against parameters and against time per step, a panel for each that has points;
    None if neither has."""
    import matplotlib.pyplot as plt

    scored = summary[summary["test_acc_mean"].notna()]
    panels = [(x, xlabel, scored[scored[x].notna() & ((scored[x] > 0) if x == "params" else True)])
              for x, xlabel in (("params", "parameters"), ("step_time_ms", "time per step (ms)"))]
    panels = [p for p in panels if not p[2].empty]
    if not panels:
        return None
    _, markers = _styles(summary)
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * COLUMN_WIDTH_IN, 2.5), sharey=True,
                             squeeze=False)
    for ax, (x, xlabel, points) in zip(axes[0], panels):
        ax.errorbar(points[x], 100 * points["test_acc_mean"], yerr=100 * points["test_acc_std"].fillna(0),
                    fmt="none", ecolor="0.5", capsize=2)
        for _, line in points.iterrows():
            ax.scatter(line[x], 100 * line["test_acc_mean"], color=cell_color(line["cell"]),
                       marker=markers[line["label"]], zorder=3)
        ax.set(xlabel=xlabel)
        if x == "params":
            _count_axis(ax, points[x])
        ax.margins(x=0.08, y=0.1)
    axes[0][0].set_ylabel(f"test {_plot_text(score)} (%)")
    fig.tight_layout()
    for ax, (x, _, points) in zip(axes[0], panels):
        _label_points(ax, [(line[x], 100 * line["test_acc_mean"], line["label"]) for _, line in points.iterrows()])
    return fig


def cost_figure(summary: pd.DataFrame):
    """Time per step and peak memory as bars, a panel for each that has values; None if neither
    has. The memory axis says how memory was measured."""
    import matplotlib.pyplot as plt

    panels = [(x, xlabel) for x, xlabel in (("step_time_ms", "time per step (ms)"),
                                            ("peak_mem_mb", memory_label(summary["mem_source"])))
              if summary[x].notna().any()]
    if not panels:
        return None
    lines = summary[summary[[x for x, _ in panels]].notna().any(axis=1)]
    positions = np.arange(len(lines))[::-1]  # the table's order, top to bottom
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * COLUMN_WIDTH_IN, 0.9 + 0.3 * len(lines)),
                             sharey=True, squeeze=False)
    colors = [cell_color(cell) for cell in lines["cell"]]
    for ax, (x, xlabel) in zip(axes[0], panels):
        ax.barh(positions, lines[x].fillna(0), color=colors)
        for position, value in zip(positions, lines[x]):
            if pd.isna(value):  # (not a bar of length 0)
                ax.text(0, position, " not measured", va="center", fontsize="x-small", color="0.4")
        ax.set(xlabel=xlabel)
    axes[0][0].set(yticks=positions, yticklabels=[_plot_text(label, width=26) for label in lines["label"]])
    fig.tight_layout()
    return fig


@contextlib.contextmanager
def _drawing():
    """matplotlib without a display, in the report's seaborn theme, a missing glyph (a cell name
    in a script the font lacks) no warning: `with _drawing(): fig = test_acc_figure(...)`."""
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=0.9)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        yield


def _save_all(figures: dict, out: Path, stem: str) -> list[Path]:
    """Save each figure that is not None as out/STEM-NAME.png and .pdf, then close them all (also
    after a failed save): `_save_all({"cost": fig}, out, "pmnist-v2-cpu")`."""
    import matplotlib.pyplot as plt

    written: list[Path] = []
    try:
        for name, fig in figures.items():
            if fig is not None:
                written += _save(fig, out, f"{stem}-{name}")
    finally:
        for fig in figures.values():
            if fig is not None:
                plt.close(fig)
    return written


def plot_group(stem: str, summary: pd.DataFrame, rows: pd.DataFrame, curves: pd.DataFrame, out: Path) -> list[Path]:
    """Every figure of one table group that has something to show; returns the files written."""
    task_spec = summary["task_spec"].iloc[0]
    score = score_name(summary)
    summary = summary.assign(label=experiment_labels(summary))
    with _drawing():
        figures = curve_figures(summary, rows, curves, score)
        figures.update({"test-acc": test_acc_figure(summary, task_spec, score),
                        "tradeoff": tradeoff_figure(summary, score), "cost": cost_figure(summary)})
        return _save_all(figures, out, stem)


def plot_input(card: dict, out: Path) -> list[Path]:
    """What the cell sees, from a task card (records.write_task_card): each array of the task's
    example, 2-D ones as images (features down, time along), 1-D ones as curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {}
    example = card.get("example")
    for name, values in example.items() if isinstance(example, dict) else ():
        try:
            array = np.asarray(values, dtype=float)
        except (TypeError, ValueError):  # a damaged card: that panel is left out
            continue
        if array.ndim in (1, 2) and array.size and np.isfinite(array).all():
            panels[str(name)] = array
    if not panels:
        return []
    widths = [1 if a.ndim == 2 and a.shape[0] * 2 >= a.shape[1] else 2 for a in panels.values()]
    fig = plt.figure(figsize=(2 * COLUMN_WIDTH_IN, 1.9))
    grid = fig.add_gridspec(1, sum(widths))
    column = 0
    for (name, array), width in zip(panels.items(), widths):
        ax = fig.add_subplot(grid[0, column : column + width])
        column += width
        if array.ndim == 2:
            ax.imshow(array, cmap="gray_r", aspect="equal" if width == 1 else "auto", interpolation="nearest")
            ax.set(xticks=[], yticks=[])
        else:
            ax.plot(array, linewidth=0.6, color="0.2")
            ax.set(xlabel="time step")
        ax.set_title(_plot_text(textwrap.shorten(name, 48 * width)), fontsize="small")
    fig.tight_layout()
    return _save(fig, out, f"{_name_part(str(card['task_spec']).replace(':', '_'))}-v{card['task_version']}-input")


def bibliography(cards: list[dict], task_specs: set[str], cells: Iterable[str] = ()) -> str:
    """The BibTeX of the reported tasks' sources, as their cards recorded it, and of the reported
    cells that are registered here with a citation; each entry once."""
    found = cite.sources(cells)
    for card in cards:
        if card.get("task_spec") in task_specs and isinstance(card.get("citation"), str) and card["citation"].strip():
            found.add("task", str(card["task_spec"]), card["citation"])
    return found.bibtex()


# --- tuning studies ------------------------------------------------------------------------------

STUDY_KEYS = ["study", "task_spec", "task_version", "data_hash"]  # what one study section never mixes
EDGE = 0.05  # a chosen value this close to an end of its range (a share of the span) lies at its edge
TRIALS_NOTE = ("✓: the chosen trial (the one whose setting the final runs use; before they exist, the best "
               "validation score among complete trials). Pruned: stopped early by the pruner, with its best "
               "validation score so far. –: not recorded. The trials' test scores play no part and are not shown.")


def study_groups(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The rows of each study (its trials and final runs), a group per study name, task spec and
    version and data, with a column `study_cell` (the cell each row tuned); each group has a
    file-name stem `study-NAME-TASK-vVERSION`, and a hash where two would share it."""
    rows = rows[rows["phase"].isin(("tune", "final"))]
    groups = []
    for keys, part in rows.groupby(STUDY_KEYS, sort=True, dropna=False):
        k = dict(zip(STUDY_KEYS, keys))
        stem = "-".join(["study"] + [_name_part(p) for p in (k["study"] or "unnamed", str(k["task_spec"]).replace(
            ":", "_"), f"v{int(k['task_version'])}")])
        cells = [_study_cell(spec, _searched(tuned, study)) for spec, tuned, study in
                 zip(part["cell_spec"], part["tuned_json"], part["study_json"])]
        groups.append((stem, keys, part.assign(study_cell=cells)))
    stems = _distinct([stem for stem, _, _ in groups], [keys for _, keys, _ in groups])
    return [(stem, part) for stem, (_, _, part) in zip(stems, groups)]


def _space(study_json: str) -> dict:
    """The space a row's study searched, as the row recorded it ({} where none): name -> range or
    choices. `_space('{"space": {"lr": {"low": 0.001, "high": 0.1, "log": true}}}')`."""
    space = (_json_object(study_json) or {}).get("space")
    return space if isinstance(space, dict) else {}


def _searched(tuned_json: str, study_json: str) -> set[str]:
    """The names a row searched: those of its values and of its study's space."""
    return set(_json_object(tuned_json) or {}) | set(_space(study_json))


def _study_cell(cell_spec: str, searched: set[str]) -> str:
    """The cell a study's row tuned: its spec without the searched cell options, which differ
    from trial to trial (`_study_cell("eurnn:angles_lr=0.01:capacity=4", {"angles_lr"})` is
    `eurnn:capacity=4`)."""
    name, *options = cell_spec.split(":")
    return ":".join([name] + [option for option in options if option.split("=", 1)[0] not in searched])


def study_spaces(study: pd.DataFrame) -> dict[str, dict]:
    """Per cell of a study, the space searched for it, as the latest of its rows that recorded one:
    `{"lstm": {"lr": {"low": 0.0001, "high": 0.01, "log": True}}}`."""
    return {cell: next((space for space in map(_space, reversed(list(part["study_json"]))) if space), {})
            for cell, part in study.groupby("study_cell", sort=True)}


def study_dims(study: pd.DataFrame, spaces: dict[str, dict]) -> list[str]:
    """The searched names of a study, in the order of its spaces, then any other a row's values
    have: `["lr", "clip"]`."""
    names = [name for space in spaces.values() for name in space]
    names += [name for text in study["tuned_json"] for name in _json_object(text) or {}]
    return list(dict.fromkeys(names))


def study_higher_is_better(study: pd.DataFrame) -> bool:
    """Which way a study's validation score is better: its recorded direction, else the task's."""
    direction = _recorded(study, "study_json").get("direction")
    return direction == "maximize" if direction in ("maximize", "minimize") else score_higher_is_better(study)


def chosen_trials(study: pd.DataFrame, higher: bool) -> dict[str, int | None]:
    """Per cell of a study, the trial whose setting was chosen: the one its final runs name, else
    the best by validation score (best_valid_acc, the mean over a trial's seeds; never the test
    score) among its complete trials (records.trial_state, as the tuner counts them), the lowest
    number among equals; None where no trial completed. `chosen_trials(study, higher=True) == {"lstm": 3, "eurnn": None}`."""
    chosen: dict[str, int | None] = {}
    for cell, part in study.groupby("study_cell", sort=True):
        named = part.loc[part["phase"] == "final", "trial"].dropna()
        if len(named):
            chosen[cell] = int(named.iloc[-1])  # (the latest: a study chosen again names its new trial)
            continue
        trials = part[(part["phase"] == "tune") & part["trial"].notna()].groupby("trial")
        states = trials.apply(lambda t: records.trial_state(list(t["status"]), list(t["best_valid_acc"])))
        scores = trials["best_valid_acc"].mean()[states == "complete"].sort_index()  # (the tuner's rule)
        chosen[cell] = None if scores.empty else int((scores if higher else -scores).idxmax())
    return chosen


def chosen_setting(study: pd.DataFrame, cell: str, trial: int | None) -> dict:
    """The searched values of a cell's chosen setting: those its final runs carry, else those of
    its chosen trial ({} where neither says). `chosen_setting(study, "lstm", 3) == {"lr": 0.01}`."""
    part = study[study["study_cell"] == cell]
    finals = part[part["phase"] == "final"]
    return _recorded(finals if len(finals) else part[(part["phase"] == "tune") & (part["trial"] == trial)],
                     "tuned_json")


def _value_text(value) -> str:
    """A searched value as the tables print it: to 4 significant digits (`_value_text(0.00125207) ==
    "0.001252"`, 64.0 as 64), text as it is, anything else as JSON (`true`, `null`, `[1, 2]`)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else str(value) if isinstance(value, int) and not isinstance(
        value, bool) else json.dumps(value, sort_keys=True, default=str)


def edge_notes(cell: str, space: dict, setting: dict) -> list[str]:
    """Where a cell's chosen value of a numeric dimension lies at an end of what was searched, in
    words: within 5 % of the span of an end of a range (in log space for a log range), or the
    smallest or largest of three numeric choices or more (of two, every choice is an end: the note
    would say nothing).

    >>> edge_notes("lstm", {"lr": {"low": 0.0001, "high": 0.01, "log": True}}, {"lr": 0.01})
    ['lstm: the chosen lr 0.01 is at the upper edge of the searched range [0.0001, 0.01]: the optimum may lie outside it']
    """
    notes = []
    for name, dimension in space.items():
        value = setting.get(name)
        if not isinstance(dimension, dict) or not _finite(value):
            continue
        side, searched = _edge(dimension, float(value))
        if side:
            notes.append(f"{cell}: the chosen {name} {_value_text(value)} is at the {side} edge of the searched "
                         f"{searched}: the optimum may lie outside it")
    return notes


def _edge(dimension: dict, value: float) -> tuple[str, str]:
    """("lower", "upper" or "" where the value lies inside, and the searched values in words) for
    one dimension of a space: `_edge({"choices": [1, 2, 4]}, 4.0) == ("upper", "choices [1, 2, 4]")`."""
    choices = dimension.get("choices")
    if isinstance(choices, list):
        numbers = sorted(c for c in choices if _finite(c))
        if len(numbers) < 3 or len(numbers) < len(choices):  # (a list with text in it has no order to speak of)
            return "", ""
        side = "lower" if value == numbers[0] else "upper" if value == numbers[-1] else ""
        return side, f"choices [{', '.join(map(_value_text, numbers))}]"
    low, high = dimension.get("low"), dimension.get("high")
    if not (_finite(low) and _finite(high) and low < high):
        return "", ""
    scale = np.log if dimension.get("log") is True and low > 0 and value > 0 else float
    span = scale(high) - scale(low)
    side = "lower" if scale(value) - scale(low) <= EDGE * span else \
        "upper" if scale(high) - scale(value) <= EDGE * span else ""
    return side, f"range [{_value_text(low)}, {_value_text(high)}]"


def trials_frame(study: pd.DataFrame, chosen: dict[str, int | None]) -> pd.DataFrame:
    """Every trial row of a study in cell, trial and seed order: cell, trial, seed, its searched
    values (a dict: `{"lr": 0.01}`), validation score, status, steps done, whether it is its cell's
    chosen trial, and the validation set's size. No test score: a choice made on validation is not
    to be second-guessed on test."""
    tune = study[study["phase"] == "tune"].sort_values(["study_cell", "trial", "seed"], na_position="last")
    return pd.DataFrame({  # (trials and seeds are whole numbers: records.row_problem checked them)
        "cell": tune["study_cell"], "trial": tune["trial"].astype("Int64"), "seed": tune["seed"].astype("Int64"),
        "values": [_json_object(text) or {} for text in tune["tuned_json"]],
        "best_valid_acc": tune["best_valid_acc"], "status": tune["status"], "steps_done": tune["steps_done"],
        "chosen": [chosen.get(cell) is not None and trial == chosen[cell]
                   for cell, trial in zip(tune["study_cell"], tune["trial"])],
        "n_valid": tune["n_valid"]}).reset_index(drop=True)


def _whole(value) -> str:
    """A whole number as text, '–' where missing: `_whole(3.0) == "3"`."""
    return "–" if pd.isna(value) else str(int(value))


def trials_table(trials: pd.DataFrame, dims: list[str], score: str, higher: bool) -> str:
    """The Markdown table of a study's trials: a line per trial row, a column per searched name,
    the seed only where a trial ran on more than one (`| lstm | 1 | 0.01 | 64 | 90.0 | ok | 20 | ✓ |`)."""
    return _markdown_lines(*trials_cells(trials, dims, score, higher))


def trials_cells(trials: pd.DataFrame, dims: list[str], score: str,
                 higher: bool) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Header and cells (text, bold) of the trials table (trials_table)."""
    digits, _ = _score_digits(trials.assign(n_test=trials["n_valid"]))  # (the validation set's size rules here)
    seeds = trials.groupby(["cell", "trial"])["seed"].nunique().gt(1).any()
    header = ["Cell", "Trial"] + (["Seed"] if seeds else []) + dims \
        + [f"Valid. {score} (%) {'↑' if higher else '↓'}", "Status", "Steps", "Chosen"]
    body = [[(line.cell, False), (_whole(line.trial), False)] + ([(_whole(line.seed), False)] if seeds else [])
            + [(_value_text(line.values[d]) if d in line.values else "–", False) for d in dims]
            + [("–" if pd.isna(line.best_valid_acc) else f"{100 * line.best_valid_acc:.{digits}f}", False),
               (line.status, False), (_whole(line.steps_done), False), ("✓" if line.chosen else "", False)]
            for line in trials.itertuples()]
    return header, body


def trials_csv(trials: pd.DataFrame, dims: list[str]) -> pd.DataFrame:
    """The trials as their CSV holds them: a column per searched name (`searched_NAME` where the
    name is one of the other columns'): `trials_csv(trials, ["lr"]).columns[-1] == "lr"`."""
    table = trials.drop(columns=["values", "n_valid"])
    for dim in dims:
        table[f"searched_{dim}" if dim in table else dim] = [values.get(dim) for values in trials["values"]]
    return table


def final_tables(study: pd.DataFrame, dims: list[str], trials: pd.DataFrame) -> list[tuple[str, pd.DataFrame, Extra]]:
    """The final runs of a study as tables (split as table_groups splits results: by machine...),
    a line per cell and setting with its chosen values, the trial they came from and the number of
    trials of its cell (of those planned, where fewer ran); each with table_groups' stem
    (`[("pmnist-v2-cpu", summary, Extra(...))]`, whose line reads `| lstm | 0.01 | 1 | 4 | 82.00 ± 2.00 | ...`)."""
    finals = study[study["phase"] == "final"]
    if finals.empty:
        return []
    summary = aggregate(finals, tuned_json=("tuned_json", "last"), study_cell=("study_cell", "first"),
                        trial=("trial", lambda s: ",".join(sorted({_whole(v) for v in s.dropna()}))))
    ran = trials.groupby("cell")["trial"].nunique()
    planned = {cell: _recorded(part, "study_json").get("trials") for cell, part in study.groupby("study_cell")}
    counts = [f"{ran.get(cell, 0)}/{_value_text(planned[cell])}"
              if _finite(planned[cell]) and ran.get(cell, 0) < planned[cell] else str(ran.get(cell, 0))
              for cell in summary["study_cell"]]
    values = [_json_object(text) or {} for text in summary["tuned_json"]]
    summary = summary.assign(trials=counts, **{f"chosen_{d}": [v.get(d) for v in values] for d in dims})
    columns = tuple((d, {i: _value_text(v[d]) for i, v in zip(summary.index, values) if d in v}) for d in dims) \
        + (("Trial", dict(summary["trial"])), ("Trials", dict(summary["trials"])))
    name = summary["study"].iloc[0] or "unnamed"
    note = (f"Study {name}: the final runs of each cell's chosen setting ({', '.join(dims) or 'nothing searched'}; "
            "Trial: the trial it was chosen from by validation score; Trials: the cell's trials).")
    return [(stem, part, Extra(columns, shown=tuple(dims) + ("study",), note=note))
            for stem, part in table_groups(summary)]


def _categories(dim: str, spaces: dict[str, dict], values: list[dict]) -> list[str] | None:
    """The ticks of a dimension's categorical axis, as JSON texts: its choices and any other value
    a trial has (in numeric order where all are numbers); None for a numeric range."""
    lists = [d["choices"] for d in (space.get(dim) for space in spaces.values())
             if isinstance(d, dict) and isinstance(d.get("choices"), list)]
    seen = [v[dim] for v in values if dim in v]
    if not lists and all(_finite(v) for v in seen):
        return None
    every = [c for choices in lists for c in choices] + seen
    if all(_finite(v) for v in every):
        every = sorted(every)
    return list(dict.fromkeys(json.dumps(v, sort_keys=True) for v in every))


def study_figure(trials: pd.DataFrame, dims: list[str], spaces: dict[str, dict], score: str):
    """Validation score against each searched name, a panel each, a colour per cell (cell_color):
    a log axis for log ranges (dotted lines at their ends), a categorical one for choices; each
    cell's chosen trial a star, pruned trials hollow, diverged ones crosses. None where no trial
    has a score to draw."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    scored = trials[trials["best_valid_acc"].notna()]
    panels = [d for d in dims if any(d in v for v in scored["values"])]
    if not panels:
        return None
    columns = min(3, len(panels))
    fig, axes = plt.subplots(-(-len(panels) // columns), columns, sharey=True, squeeze=False,
                             figsize=(0.8 * COLUMN_WIDTH_IN * columns + 1.2, 2.3 * -(-len(panels) // columns)))
    cells = sorted(scored["cell"].unique())
    for ax, dim in zip(axes.flat, panels):
        categories = _categories(dim, spaces, list(scored["values"]))
        log = categories is None and any(isinstance(s.get(dim), dict) and s[dim].get("log") is True
                                         for s in spaces.values())
        for j, cell in enumerate(cells):
            offset = (j - (len(cells) - 1) / 2) * min(0.15, 0.6 / len(cells))  # (cells side by side at a choice)
            points = [(_axis_position(line.values.get(dim), categories, log), 100 * line.best_valid_acc, line)
                      for line in scored[scored["cell"] == cell].itertuples() if dim in line.values]
            for x, y, line in points:
                if x is not None:
                    _trial_point(ax, x + (offset if categories else 0), y, line, cell_color(cell))
        if categories:
            ax.set_xticks(range(len(categories)), [_plot_text(_value_text(json.loads(c)), limit=12)
                                                   for c in categories], rotation=45 if len(categories) > 4 else 0)
            ax.set_xlim(-0.5, len(categories) - 0.5)
        else:
            ax.set_xscale("log" if log else "linear")
            for end in {d[key] for d in (s.get(dim) for s in spaces.values()) if isinstance(d, dict)
                        for key in ("low", "high") if _finite(d.get(key)) and (d[key] > 0 or not log)}:
                ax.axvline(end, color="0.6", linestyle=":", linewidth=0.8)  # (where the search stopped)
        ax.set_xlabel(_plot_text(dim))
    for ax in axes[:, 0]:
        ax.set_ylabel(f"validation {_plot_text(score)} (%)")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    marks = [("*", "0.6", "black", "chosen", True),
             ("o", "none", "0.3", "pruned", (scored["status"] == "pruned").any()),
             ("x", "0.3", "0.3", "diverged", (scored["status"] == "diverged").any())]
    handles = [Line2D([], [], linestyle="", marker="o", color=cell_color(c), label=_plot_text(c, limit=24))
               for c in cells] + [Line2D([], [], linestyle="", marker=m, markerfacecolor=face, markeredgecolor=edge,
                                         color=edge, markersize=8 if m == "*" else 5, label=label)
                                  for m, face, edge, label, shown in marks if shown]
    axes.flat[len(panels) - 1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                                      fontsize="x-small", frameon=False)
    fig.tight_layout()
    return fig


def _axis_position(value, categories: list[str] | None, log: bool) -> float | None:
    """Where a value sits on its panel's x axis (None: it cannot be drawn there):
    `_axis_position(64, ["16", "32", "64"], False) == 2.0`."""
    if categories is not None:
        text = json.dumps(value, sort_keys=True)
        return float(categories.index(text)) if text in categories else None
    return float(value) if _finite(value) and (value > 0 or not log) else None


def _trial_point(ax, x: float, y: float, line, color) -> None:
    """One trial's point: a star if chosen (edged black), hollow if pruned, a cross if diverged:
    `_trial_point(ax, 0.01, 90.0, trials.iloc[0], cell_color("lstm"))`."""
    if line.status == "diverged" and not line.chosen:
        ax.scatter([x], [y], marker="x", color=color, s=18, zorder=3)
        return
    face = "white" if line.status == "pruned" else color
    ax.scatter([x], [y], marker="*" if line.chosen else "o", s=90 if line.chosen else 18, facecolors=[face],
               edgecolors=["black" if line.chosen else color], linewidths=0.7 if line.chosen else 0.9,
               zorder=4 if line.chosen else 3)


def write_study(stem: str, study: pd.DataFrame, out: Path,
                sections: list[Section] | None = None) -> tuple[list[Path], str]:
    """One study's files and Markdown section: its final tables (Markdown, LaTeX, CSV), its trials
    (Markdown, CSV) and their figure, what is missing (final runs, a chosen trial) and each chosen
    value at an edge of what was searched, in words and as a warning (and, to `sections`, its
    section of the HTML page): `write_study("study-s-pmnist-v2", study, out)` writes
    `study-s-pmnist-v2-final.md`, `...-trials.md`..."""
    first = study.iloc[0]
    name = first["study"] or "unnamed"
    spaces = study_spaces(study)
    dims = study_dims(study, spaces)
    higher = study_higher_is_better(study)
    chosen = chosen_trials(study, higher)
    trials = trials_frame(study, chosen)
    score = score_name(study)
    title = f"Study {name}: {first['task_spec']} (task version {int(first['task_version'])})"
    text = [f"## {_markdown(title)}\n", _markdown(study_words(study, higher)) + "\n"]
    section = Section("study", stem, _printable(title), [_printable(study_words(study, higher))])
    files: list[Path] = []
    tables = final_tables(study, dims, trials)
    for table_stem, summary, extra in tables:
        final = f"{stem}-final" + (f"-{table_stem}" if len(tables) > 1 else "")
        md = markdown_table(summary, extra)
        files += [_write_text(out, f"{final}.md", md),
                  _write_text(out, f"{final}.tex", latex_table(summary, f"tab:{final}", extra)),
                  _write(out, f"{final}-summary.csv", lambda p, s=summary: s.to_csv(p, index=False))]
        text.append(f"### Final runs\n\n{md}")
        section.tables.append(TableView("Final runs", table_caption(summary, note=extra.note), *_cells(summary, extra)))
    missing = sorted(set(trials["cell"]) - set(study.loc[study["phase"] == "final", "study_cell"]))
    if missing:
        said = (f"No final runs of {', '.join(missing)} in these rows: tuning is still going or stopped before "
                "them (or they did not end ok: see --status).")
        text.append(_markdown(said) + "\n")
        section.words.append(_printable(said))
    for cell in sorted(c for c, trial in chosen.items() if trial is None):
        statuses = Counter(trials.loc[trials["cell"] == cell, "status"])
        said = (f"{cell}: no trial has a validation score ("
                + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + "): nothing chosen.")
        text.append(_markdown(said) + "\n")
        section.words.append(_printable(said))
    if len(trials):
        table = trials_table(trials, dims, score, higher)
        files += [_write_text(out, f"{stem}-trials.md", f"{_markdown(TRIALS_NOTE)}\n\n{table}"),
                  _write(out, f"{stem}-trials.csv", lambda p: trials_csv(trials, dims).to_csv(p, index=False))]
        text.append(f"### Trials\n\n{_markdown(TRIALS_NOTE)}\n\n{table}")
        section.tables.append(TableView("Trials", TRIALS_NOTE, *trials_cells(trials, dims, score, higher)))
        with _drawing():
            figures = _save_all({"trials": study_figure(trials, dims, spaces, score)}, out, stem)
        files += figures
        section.figures += [f for f in figures if f.suffix == ".png"]
    else:
        text.append("These rows hold none of its trials.\n")
    notes = [note for cell, trial in chosen.items()
             for note in edge_notes(cell, spaces.get(cell, {}), chosen_setting(study, cell, trial))]
    for note in notes:
        warnings.warn(f"study {_printable(name)}: {_printable(note)}")
    if notes:
        text.append("Edges:\n\n" + "".join(f"- {_markdown(note)}\n" for note in notes))
        section.words += [_printable(f"Edge: {note}") for note in notes]
    section.runs = study
    if sections is not None:
        sections.append(section)
    return files, "\n".join(text)


def study_words(study: pd.DataFrame, higher: bool) -> str:
    """How a study searched, as its rows recorded it (what they lack is left out), and how its
    choice was made: `Search: sampler tpe, pruner asha, 16 trials per cell on seed 0; final runs
    on seeds 1, 2, 3. ...`"""
    recorded = _recorded(study, "study_json")

    def listed(key: str, word: str) -> str:
        values = recorded.get(key)
        values = values if isinstance(values, list) else []
        return f"{word}{'s' if len(values) > 1 else ''} {', '.join(map(str, values))}" if values else ""

    parts = [f"{key} {recorded[key]}" for key in ("sampler", "pruner") if isinstance(recorded.get(key), str)]
    trials = f"{_value_text(recorded['trials'])} trials per cell" if _finite(recorded.get("trials")) else ""
    parts.append(" on ".join(p for p in (trials, listed("tune_seeds", "seed")) if p))
    finals = listed("final_seeds", "seed")
    search = ", ".join(p for p in parts if p)
    return (f"Search: {search or 'not recorded'}" + (f"; final runs on {finals}" if finals else "")
            + f". Each cell's setting is chosen by its validation {score_name(study)} (best_valid_acc, "
            f"{'higher' if higher else 'lower'} is better), never by a test score.")


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


class ReportNotWritten(ReportError):
    """The output folder could not be written (read-only, full, not a folder...)."""


def write_report(rows: pd.DataFrame, curves: pd.DataFrame, out: Path, cards: list[dict] | None = None,
                 html: bool = False, runs: pd.DataFrame | None = None) -> tuple[list[Path], str]:
    """Tables and figures of every group into `out` (and each task's input figure and citation,
    from `cards`: records.read_task_cards); returns the files and the Markdown text. With `html`,
    also out/report.html, the whole report in one page (rnnbench.report_html), whose run lists
    show `runs` (default: `rows`; the CLI gives every status there, failed runs too).
    ReportNotWritten, naming the folder, if it cannot be written."""
    try:
        return _write_report(rows, curves, out, cards or [], html, rows if runs is None else runs)
    except OSError as error:
        where = f" ({error.filename})" if error.filename and str(error.filename) != str(out) else ""
        raise ReportNotWritten(f"cannot write the report into {out}: {error.strerror or error}{where}") from error


def _write_report(rows: pd.DataFrame, curves: pd.DataFrame, out: Path, cards: list[dict], html: bool,
                  runs: pd.DataFrame) -> tuple[list[Path], str]:
    out.mkdir(parents=True, exist_ok=True)
    results = rows[rows["phase"] != "tune"]  # (a study's trials are how a setting was chosen, not results)
    summary = aggregate(results) if len(results) else None
    written, markdown, sections = [], [], []
    for stem, part in table_groups(summary) if summary is not None else ():
        if len(commits := mixed_commits(part)) > 1:
            warnings.warn(f"table {stem} mixes rows from {len(commits)} versions of the code: {', '.join(commits)}; "
                          "`rnnbench run --force` the older ones, or report them apart")
        md, tex = markdown_table(part), latex_table(part, f"tab:{stem}")
        written += [_write_text(out, f"{stem}.md", md), _write_text(out, f"{stem}.tex", tex),
                    _write(out, f"{stem}-summary.csv", lambda p, part=part: _summary_csv(part).to_csv(p, index=False))]
        group_rows = results[results["task_spec"] == part["task_spec"].iloc[0]]
        figures = plot_group(stem, part, group_rows, curves, out)
        written += figures
        markdown.append(f"## {stem}\n\n{md}")
        first = part.iloc[0]
        title = (f"{_printable(first['task_spec'])} (task version {int(first['task_version'])}) "
                 f"{_where(first, _printable)}")
        sections.append(Section("table", stem, title, [], [TableView("", table_caption(part), *_cells(part))],
                                [f for f in figures if f.suffix == ".png"], _runs_of(part, runs)))
    for stem, study in study_groups(rows):
        files, section = write_study(stem, study, out, sections)
        written += files
        markdown.append(section)
    listed = {run_id for section in sections if section.runs is not None for run_id in section.runs["run_id"]}
    unlisted = runs[~runs["run_id"].isin(listed) & (runs["phase"] != "tune")]
    if len(unlisted):  # (a task none of whose runs ended ok, say: its errors belong on the page)
        sections.append(Section("runs", "other-runs", "Runs in no table", [
            "These runs are in no table above: their status is left out of the tables (rnnbench report "
            "--status), so a task whose runs all failed has its errors here."], runs=unlisted))
    reported = {(spec, int(version)) for spec, version in zip(rows["task_spec"], rows["task_version"])}
    shown = [c for c in cards if isinstance(c.get("task_version"), int)
             and (c.get("task_spec"), c["task_version"]) in reported]
    inputs = []  # (title, PNG) of each task's input figure
    for card in shown:
        files = plot_input(card, out)
        written += files
        inputs += [(f"{_printable(card['task_spec'])} (task version {card['task_version']})", f)
                   for f in files if f.suffix == ".png"]
    references = bibliography(shown, {spec for spec, _ in reported}, sorted(set(rows["cell"])))
    if references:
        written.append(_write_text(out, "references.bib", references))
    text = "\n".join(markdown)
    written.append(_write_text(out, "report.md", text))
    if html:
        from rnnbench import report_html

        written.append(_write_text(out, "report.html", report_html.render(sections, inputs, references, rows)))
    return written, text


def _runs_of(summary: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of `runs` that belong to a table (its task, data and machine: TABLE_KEYS), a
    study's trials left out: the page's run list of that table."""
    keys = summary[TABLE_KEYS].drop_duplicates()
    return runs[runs["phase"] != "tune"].merge(keys, on=TABLE_KEYS)


def _summary_csv(summary: pd.DataFrame) -> pd.DataFrame:
    """A results table as its CSV holds it: the study and phase columns only where the table has a
    study's final runs, so that the tables of plain runs keep the columns they always had."""
    return summary.drop(columns=[c for c in ("study", "phase") if not summary[c].astype(bool).any()])
