"""Tuning studies (`rnnbench tune`), a report of their own. A study has rows of two phases: its
trials (phase "tune"), which are how a setting was chosen and never results, and the final runs of
each cell's chosen setting (phase "final"), which are results of their own, never averaged with
other rows. Each study gets a section (`write_study`): the final tables, every trial, a figure of
validation score against each searched hyper-parameter, and a warning where a chosen value lies at
an edge of what was searched. The choice rests on validation scores only: the trials' test scores
are never shown or used."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench import store
from rnnbench.report.figures import COLUMN_WIDTH_IN, _drawing, cell_color
from rnnbench.report.files import _save_all, _write, _write_text
from rnnbench.report.grouping import (
    _distinct,
    _finite,
    _json_object,
    _recorded,
    aggregate,
    score_higher_is_better,
    score_name,
    summary_csv,
    table_groups,
)
from rnnbench.report.html import Section, TableView
from rnnbench.report.tables import (
    Extra,
    _cells,
    _markdown_lines,
    _score_digits,
    latex_table,
    markdown_table,
    table_caption,
)
from rnnbench.report.text import _markdown, _name_part, _plot_text, _printable

STUDY_KEYS = [
    "study",
    "task_spec",
    "task_version",
    "data_hash",
]  # what one study section never mixes
EDGE = (
    0.05  # a chosen value this close to an end of its range (a share of the span) lies at its edge
)
TRIALS_NOTE = (
    "✓: the chosen trial (the one whose setting the final runs use; before they exist, the best "
    "validation score among complete trials). Pruned: stopped early by the pruner, with its best "
    "validation score so far. –: not recorded. "
    "The trials' test scores play no part and are not shown."
)


def study_groups(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The rows of each study (its trials and final runs), a group per study name, task spec and
    version and data, with a column `study_cell` (the cell each row tuned); each group has a
    file-name stem `study-NAME-TASK-vVERSION`, and a hash where two would share it."""
    rows = rows[rows["phase"].isin(("tune", "final"))]
    groups = []
    for keys, part in rows.groupby(STUDY_KEYS, sort=True, dropna=False):
        k = dict(zip(STUDY_KEYS, keys, strict=True))
        stem = "-".join(
            ["study"]
            + [
                _name_part(p)
                for p in (
                    k["study"] or "unnamed",
                    str(k["task_spec"]).replace(":", "_"),
                    f"v{int(k['task_version'])}",
                )
            ]
        )
        cells = [
            _study_cell(spec, _searched(tuned, study))
            for spec, tuned, study in zip(
                part["cell_spec"], part["tuned_json"], part["study_json"], strict=True
            )
        ]
        groups.append((stem, keys, part.assign(study_cell=cells)))
    stems = _distinct([stem for stem, _, _ in groups], [keys for _, keys, _ in groups])
    return [(stem, part) for stem, (_, _, part) in zip(stems, groups, strict=True)]


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
    return ":".join(
        [name] + [option for option in options if option.split("=", 1)[0] not in searched]
    )


def study_spaces(study: pd.DataFrame) -> dict[str, dict]:
    """Per cell of a study, the space searched for it, as the latest of its rows that recorded one:
    `{"lstm": {"lr": {"low": 0.0001, "high": 0.01, "log": True}}}`."""
    return {
        cell: next(
            (space for space in map(_space, reversed(list(part["study_json"]))) if space), {}
        )
        for cell, part in study.groupby("study_cell", sort=True)
    }


def study_dims(study: pd.DataFrame, spaces: dict[str, dict]) -> list[str]:
    """The searched names of a study, in the order of its spaces, then any other a row's values
    have: `["lr", "clip"]`."""
    names = [name for space in spaces.values() for name in space]
    names += [name for text in study["tuned_json"] for name in _json_object(text) or {}]
    return list(dict.fromkeys(names))


def study_higher_is_better(study: pd.DataFrame) -> bool:
    """Which way a study's validation score is better: its recorded direction, else the task's."""
    direction = _recorded(study, "study_json").get("direction")
    return (
        direction == "maximize"
        if direction in ("maximize", "minimize")
        else score_higher_is_better(study)
    )


def chosen_trials(study: pd.DataFrame, higher: bool) -> dict[str, int | None]:
    """Per cell of a study, the trial whose setting was chosen: the one its final runs name, else
    the best by validation score (best_valid_acc, the mean over a trial's seeds; never the test
    score) among its complete trials (store.trial_state, as the tuner counts them), the lowest
    number among equals; None where no trial completed:
    `chosen_trials(study, higher=True) == {"lstm": 3, "eurnn": None}`."""
    chosen: dict[str, int | None] = {}
    for cell, part in study.groupby("study_cell", sort=True):
        named = part.loc[part["phase"] == "final", "trial"].dropna()
        if len(named):
            chosen[cell] = int(
                named.iloc[-1]
            )  # (the latest: a study chosen again names its new trial)
            continue
        trials = part[(part["phase"] == "tune") & part["trial"].notna()].groupby("trial")
        states = trials.apply(
            lambda t: store.trial_state(list(t["status"]), list(t["best_valid_acc"]))
        )
        scores = (
            trials["best_valid_acc"].mean()[states == "complete"].sort_index()
        )  # (the tuner's rule)
        chosen[cell] = None if scores.empty else int((scores if higher else -scores).idxmax())
    return chosen


def chosen_setting(study: pd.DataFrame, cell: str, trial: int | None) -> dict:
    """The searched values of a cell's chosen setting: those its final runs carry, else those of
    its chosen trial ({} where neither says). `chosen_setting(study, "lstm", 3) == {"lr": 0.01}`."""
    part = study[study["study_cell"] == cell]
    finals = part[part["phase"] == "final"]
    return _recorded(
        finals if len(finals) else part[(part["phase"] == "tune") & (part["trial"] == trial)],
        "tuned_json",
    )


def _value_text(value) -> str:
    """A searched value as the tables print it: to 4 significant digits (`_value_text(0.00125207) ==
    "0.001252"`, 64.0 as 64), text as it is, anything else as JSON (`true`, `null`, `[1, 2]`)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return (
        value
        if isinstance(value, str)
        else str(value)
        if isinstance(value, int) and not isinstance(value, bool)
        else json.dumps(value, sort_keys=True, default=str)
    )


def edge_notes(cell: str, space: dict, setting: dict) -> list[str]:
    """Where a cell's chosen value of a numeric dimension lies at an end of what was searched, in
    words: within 5 % of the span of an end of a range (in log space for a log range), or the
    smallest or largest of three numeric choices or more (of two, every choice is an end: the note
    would say nothing).

    >>> edge_notes(
    ...     "lstm", {"lr": {"low": 0.0001, "high": 0.01, "log": True}}, {"lr": 0.01}
    ... )  # doctest: +NORMALIZE_WHITESPACE
    ['lstm: the chosen lr 0.01 is at the upper edge of the searched range [0.0001, 0.01]: the
     optimum may lie outside it']
    """
    notes = []
    for name, dimension in space.items():
        value = setting.get(name)
        if not isinstance(dimension, dict) or not _finite(value):
            continue
        side, searched = _edge(dimension, float(value))
        if side:
            notes.append(
                f"{cell}: the chosen {name} {_value_text(value)} is at the {side} edge of the "
                f"searched {searched}: the optimum may lie outside it"
            )
    return notes


def _edge(dimension: dict, value: float) -> tuple[str, str]:
    """("lower", "upper" or "" where the value lies inside, and the searched values in words) for
    one dimension of a space:
    `_edge({"choices": [1, 2, 4]}, 4.0) == ("upper", "choices [1, 2, 4]")`."""
    choices = dimension.get("choices")
    if isinstance(choices, list):
        numbers = sorted(c for c in choices if _finite(c))
        if len(numbers) < 3 or len(numbers) < len(
            choices
        ):  # (a list with text in it has no order to speak of)
            return "", ""
        side = "lower" if value == numbers[0] else "upper" if value == numbers[-1] else ""
        return side, f"choices [{', '.join(map(_value_text, numbers))}]"
    low, high = dimension.get("low"), dimension.get("high")
    if not (_finite(low) and _finite(high) and low < high):
        return "", ""
    scale = np.log if dimension.get("log") is True and low > 0 and value > 0 else float
    span = scale(high) - scale(low)
    side = (
        "lower"
        if scale(value) - scale(low) <= EDGE * span
        else "upper"
        if scale(high) - scale(value) <= EDGE * span
        else ""
    )
    return side, f"range [{_value_text(low)}, {_value_text(high)}]"


def trials_frame(study: pd.DataFrame, chosen: dict[str, int | None]) -> pd.DataFrame:
    """Every trial row of a study in cell, trial and seed order: cell, trial, seed, its searched
    values (a dict: `{"lr": 0.01}`), validation score, status, steps done, whether it is its cell's
    chosen trial, and the validation set's size. No test score: a choice made on validation is not
    to be second-guessed on test."""
    tune = study[study["phase"] == "tune"].sort_values(
        ["study_cell", "trial", "seed"], na_position="last"
    )
    return pd.DataFrame(
        {  # (trials and seeds are whole numbers: store.row_problem checked them)
            "cell": tune["study_cell"],
            "trial": tune["trial"].astype("Int64"),
            "seed": tune["seed"].astype("Int64"),
            "values": [_json_object(text) or {} for text in tune["tuned_json"]],
            "best_valid_acc": tune["best_valid_acc"],
            "status": tune["status"],
            "steps_done": tune["steps_done"],
            "chosen": [
                chosen.get(cell) is not None and trial == chosen[cell]
                for cell, trial in zip(tune["study_cell"], tune["trial"], strict=True)
            ],
            "n_valid": tune["n_valid"],
        }
    ).reset_index(drop=True)


def _whole(value) -> str:
    """A whole number as text, '–' where missing: `_whole(3.0) == "3"`."""
    return "–" if pd.isna(value) else str(int(value))


def trials_table(trials: pd.DataFrame, dims: list[str], score: str, higher: bool) -> str:
    """The Markdown table of a study's trials: a line per trial row, a column per searched name, the
    seed only where a trial ran on more than one
    (`| lstm | 1 | 0.01 | 64 | 90.0 | ok | 20 | ✓ |`)."""
    return _markdown_lines(*trials_cells(trials, dims, score, higher))


def trials_cells(
    trials: pd.DataFrame, dims: list[str], score: str, higher: bool
) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Header and cells (text, bold) of the trials table (trials_table)."""
    digits, _ = _score_digits(
        trials.assign(n_test=trials["n_valid"])
    )  # (the validation set's size rules here)
    seeds = trials.groupby(["cell", "trial"])["seed"].nunique().gt(1).any()
    header = (
        ["Cell", "Trial"]
        + (["Seed"] if seeds else [])
        + dims
        + [f"Valid. {score} (%) {'↑' if higher else '↓'}", "Status", "Steps", "Chosen"]
    )
    body = [
        [(line.cell, False), (_whole(line.trial), False)]
        + ([(_whole(line.seed), False)] if seeds else [])
        + [(_value_text(line.values[d]) if d in line.values else "–", False) for d in dims]
        + [
            (
                "–" if pd.isna(line.best_valid_acc) else f"{100 * line.best_valid_acc:.{digits}f}",
                False,
            ),
            (line.status, False),
            (_whole(line.steps_done), False),
            ("✓" if line.chosen else "", False),
        ]
        for line in trials.itertuples()
    ]
    return header, body


def trials_csv(trials: pd.DataFrame, dims: list[str]) -> pd.DataFrame:
    """The trials as their CSV holds them: a column per searched name (`searched_NAME` where the
    name is one of the other columns'): `trials_csv(trials, ["lr"]).columns[-1] == "lr"`."""
    table = trials.drop(columns=["values", "n_valid"])
    for dim in dims:
        table[f"searched_{dim}" if dim in table else dim] = [
            values.get(dim) for values in trials["values"]
        ]
    return table


def final_tables(
    study: pd.DataFrame, dims: list[str], trials: pd.DataFrame
) -> list[tuple[str, pd.DataFrame, Extra]]:
    """The final runs of a study as tables (split as table_groups splits results: by machine...), a
    line per cell and setting with its chosen values, the trial they came from and the number of
    trials of its cell (of those planned, where fewer ran); each with table_groups' stem
    (`[("pmnist-v2-cpu", summary, Extra(...))]`, whose line reads
    `| lstm | 0.01 | 1 | 4 | 82.00 ± 2.00 | ...`)."""
    finals = study[study["phase"] == "final"]
    if finals.empty:
        return []
    summary = aggregate(
        finals,
        tuned_json=("tuned_json", "last"),
        study_cell=("study_cell", "first"),
        trial=("trial", lambda s: ",".join(sorted({_whole(v) for v in s.dropna()}))),
    )
    ran = trials.groupby("cell")["trial"].nunique()
    planned = {
        cell: _recorded(part, "study_json").get("trials")
        for cell, part in study.groupby("study_cell")
    }
    counts = [
        f"{ran.get(cell, 0)}/{_value_text(planned[cell])}"
        if _finite(planned[cell]) and ran.get(cell, 0) < planned[cell]
        else str(ran.get(cell, 0))
        for cell in summary["study_cell"]
    ]
    values = [_json_object(text) or {} for text in summary["tuned_json"]]
    summary = summary.assign(
        trials=counts, **{f"chosen_{d}": [v.get(d) for v in values] for d in dims}
    )
    columns = tuple(
        (d, {i: _value_text(v[d]) for i, v in zip(summary.index, values, strict=True) if d in v})
        for d in dims
    ) + (("Trial", dict(summary["trial"])), ("Trials", dict(summary["trials"])))
    name = summary["study"].iloc[0] or "unnamed"
    note = (
        f"Study {name}: the final runs of each cell's chosen setting "
        f"({', '.join(dims) or 'nothing searched'}; Trial: the trial it was chosen from by "
        "validation score; Trials: the cell's trials)."
    )
    return [
        (stem, part, Extra(columns, shown=tuple(dims) + ("study",), note=note))
        for stem, part in table_groups(summary)
    ]


def _categories(dim: str, spaces: dict[str, dict], values: list[dict]) -> list[str] | None:
    """The ticks of a dimension's categorical axis, as JSON texts: its choices and any other value
    a trial has (in numeric order where all are numbers); None for a numeric range."""
    lists = [
        d["choices"]
        for d in (space.get(dim) for space in spaces.values())
        if isinstance(d, dict) and isinstance(d.get("choices"), list)
    ]
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
    fig, axes = plt.subplots(
        -(-len(panels) // columns),
        columns,
        sharey=True,
        squeeze=False,
        figsize=(0.8 * COLUMN_WIDTH_IN * columns + 1.2, 2.3 * -(-len(panels) // columns)),
    )
    cells = sorted(scored["cell"].unique())
    # (the grid's last row may have axes to spare: hidden below)
    for ax, dim in zip(axes.flat, panels, strict=False):
        categories = _categories(dim, spaces, list(scored["values"]))
        log = categories is None and any(
            isinstance(s.get(dim), dict) and s[dim].get("log") is True for s in spaces.values()
        )
        for j, cell in enumerate(cells):
            offset = (j - (len(cells) - 1) / 2) * min(
                0.15, 0.6 / len(cells)
            )  # (cells side by side at a choice)
            points = [
                (
                    _axis_position(line.values.get(dim), categories, log),
                    100 * line.best_valid_acc,
                    line,
                )
                for line in scored[scored["cell"] == cell].itertuples()
                if dim in line.values
            ]
            for x, y, line in points:
                if x is not None:
                    _trial_point(ax, x + (offset if categories else 0), y, line, cell_color(cell))
        if categories:
            ax.set_xticks(
                range(len(categories)),
                [_plot_text(_value_text(json.loads(c)), limit=12) for c in categories],
                rotation=45 if len(categories) > 4 else 0,
            )
            ax.set_xlim(-0.5, len(categories) - 0.5)
        else:
            ax.set_xscale("log" if log else "linear")
            for end in {
                d[key]
                for d in (s.get(dim) for s in spaces.values())
                if isinstance(d, dict)
                for key in ("low", "high")
                if _finite(d.get(key)) and (d[key] > 0 or not log)
            }:
                ax.axvline(
                    end, color="0.6", linestyle=":", linewidth=0.8
                )  # (where the search stopped)
        ax.set_xlabel(_plot_text(dim))
    for ax in axes[:, 0]:
        ax.set_ylabel(f"validation {_plot_text(score)} (%)")
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    marks = [
        ("*", "0.6", "black", "chosen", True),
        ("o", "none", "0.3", "pruned", (scored["status"] == "pruned").any()),
        ("x", "0.3", "0.3", "diverged", (scored["status"] == "diverged").any()),
    ]
    handles = [
        Line2D([], [], linestyle="", marker="o", color=cell_color(c), label=_plot_text(c, limit=24))
        for c in cells
    ] + [
        Line2D(
            [],
            [],
            linestyle="",
            marker=m,
            markerfacecolor=face,
            markeredgecolor=edge,
            color=edge,
            markersize=8 if m == "*" else 5,
            label=label,
        )
        for m, face, edge, label, shown in marks
        if shown
    ]
    axes.flat[len(panels) - 1].legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize="x-small",
        frameon=False,
    )
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
    ax.scatter(
        [x],
        [y],
        marker="*" if line.chosen else "o",
        s=90 if line.chosen else 18,
        facecolors=[face],
        edgecolors=["black" if line.chosen else color],
        linewidths=0.7 if line.chosen else 0.9,
        zorder=4 if line.chosen else 3,
    )


def write_study(
    stem: str, study: pd.DataFrame, out: Path, sections: list[Section] | None = None
) -> tuple[list[Path], str]:
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
        files += [
            _write_text(out, f"{final}.md", md),
            _write_text(out, f"{final}.tex", latex_table(summary, f"tab:{final}", extra)),
            _write(
                out,
                f"{final}-summary.csv",
                lambda p, s=summary: summary_csv(s).to_csv(p, index=False),
            ),
        ]
        text.append(f"### Final runs\n\n{md}")
        section.tables.append(
            TableView(
                "Final runs", table_caption(summary, note=extra.note), *_cells(summary, extra)
            )
        )
    missing = sorted(set(trials["cell"]) - set(study.loc[study["phase"] == "final", "study_cell"]))
    if missing:
        said = (
            f"No final runs of {', '.join(missing)} in these rows: tuning is still going or "
            "stopped before them (or they did not end ok: see --status)."
        )
        text.append(_markdown(said) + "\n")
        section.words.append(_printable(said))
    for cell in sorted(c for c, trial in chosen.items() if trial is None):
        statuses = Counter(trials.loc[trials["cell"] == cell, "status"])
        said = (
            f"{cell}: no trial has a validation score ("
            + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
            + "): nothing chosen."
        )
        text.append(_markdown(said) + "\n")
        section.words.append(_printable(said))
    if len(trials):
        table = trials_table(trials, dims, score, higher)
        files += [
            _write_text(out, f"{stem}-trials.md", f"{_markdown(TRIALS_NOTE)}\n\n{table}"),
            _write(
                out, f"{stem}-trials.csv", lambda p: trials_csv(trials, dims).to_csv(p, index=False)
            ),
        ]
        text.append(f"### Trials\n\n{_markdown(TRIALS_NOTE)}\n\n{table}")
        section.tables.append(
            TableView("Trials", TRIALS_NOTE, *trials_cells(trials, dims, score, higher))
        )
        with _drawing():
            figures = _save_all({"trials": study_figure(trials, dims, spaces, score)}, out, stem)
        files += figures
        section.figures += [f for f in figures if f.suffix == ".png"]
    else:
        text.append("These rows hold none of its trials.\n")
    notes = [
        note
        for cell, trial in chosen.items()
        for note in edge_notes(cell, spaces.get(cell, {}), chosen_setting(study, cell, trial))
    ]
    for note in notes:
        warnings.warn(f"study {_printable(name)}: {_printable(note)}", stacklevel=2)
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
        return (
            f"{word}{'s' if len(values) > 1 else ''} {', '.join(map(str, values))}"
            if values
            else ""
        )

    parts = [
        f"{key} {recorded[key]}"
        for key in ("sampler", "pruner")
        if isinstance(recorded.get(key), str)
    ]
    trials = (
        f"{_value_text(recorded['trials'])} trials per cell"
        if _finite(recorded.get("trials"))
        else ""
    )
    parts.append(" on ".join(p for p in (trials, listed("tune_seeds", "seed")) if p))
    finals = listed("final_seeds", "seed")
    search = ", ".join(p for p in parts if p)
    return (
        f"Search: {search or 'not recorded'}"
        + (f"; final runs on {finals}" if finals else "")
        + f". Each cell's setting is chosen by its validation {score_name(study)} (best_valid_acc, "
        f"{'higher' if higher else 'lower'} is better), never by a test score."
    )
