"""Figures: each cell's colour (the same in every report), line styles and markers, and every figure
of a results table (validation curves, test score, score against cost, cost) and of a task's input,
drawn in the report's theme (`_drawing`) and saved through files._save."""

from __future__ import annotations

import contextlib
import hashlib
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench.report.files import _save, _save_all
from rnnbench.report.grouping import (
    GROUP_KEYS,
    _finite,
    _recorded,
    experiment_labels,
    score_name,
    with_group_keys,
)
from rnnbench.report.tables import MEMORY_WORDS
from rnnbench.report.text import _name_part, _plot_text

COLUMN_WIDTH_IN = 3.4  # one column of a two-column paper
# Colours never depend on what else is in a report: the built-in cells have fixed ones (the
# indices in seaborn's colorblind palette); any other cell name hashes into a palette of its own.
CELL_COLORS = {
    "eurnn": 0,
    "gru": 1,
    "lstm": 2,
    "rnn": 3,
    "eurnn-c4": 4,
    "eurnn-c8": 5,
    "eurnn-c16": 6,
    "eurnn-fft": 7,
    "eurnn-full": 8,
}
OTHER_COLORS = 12
MARKERS = ["o", "s", "^", "D", "v", "P"]
STYLES = [
    "-",
    "--",
    ":",
    "-.",
]  # a cell's colour stays; its variants differ by line style and marker


def cell_color(name: str) -> tuple[float, float, float]:
    """The colour of a cell name, the same in every report: `cell_color("lstm")`."""
    import seaborn as sns

    if name in CELL_COLORS:
        return tuple(sns.color_palette("colorblind", 10)[CELL_COLORS[name]])
    index = (
        int(hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest(), 16) % OTHER_COLORS
    )
    return tuple(sns.husl_palette(OTHER_COLORS, s=0.9, l=0.55)[index])


def memory_label(sources) -> str:
    """The axis label of peak memory, in words for the way it was measured."""
    sources = {s for source in sources for s in str(source).split(",") if s}
    return (
        f"{MEMORY_WORDS.get(sources.pop(), 'peak memory') if len(sources) == 1 else 'peak memory'} "
        "(MiB)"
    )


def _inside_axes(extent, box, slack: float = 0.5) -> bool:
    return (
        extent.x0 >= box.x0 - slack
        and extent.x1 <= box.x1 + slack
        and extent.y0 >= box.y0 - slack
        and extent.y1 <= box.y1 + slack
    )


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
    sides = (
        [(3, dy, "left", va) for dy, va in ((3, "bottom"), (-3, "top"))]
        + [(-3, dy, "right", va) for dy, va in ((3, "bottom"), (-3, "top"))]
        + [
            (dx, dy, ha, va)
            for dy, va in ((11, "bottom"), (-11, "top"))
            for dx, ha in ((3, "left"), (-3, "right"))
        ]
    )
    placed = []
    for x, y, text in points:
        fits = []
        for dx, dy, ha, va in sides:
            note = ax.annotate(
                _plot_text(text, limit=30),
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize="x-small",
            )
            note.set_in_layout(False)
            extent = note.get_window_extent(renderer)
            note.remove()
            if _inside_axes(extent, box):
                fits.append(((dx, dy, ha, va), extent))
        clear = [fit for fit in fits if not any(_overlaps(fit[1], other) for other in placed)]
        (dx, dy, ha, va), extent = (clear or fits or [(sides[0], None)])[0]
        note = ax.annotate(
            _plot_text(text, limit=30),
            (x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize="x-small",
            clip_on=extent is None,
        )
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
        ax.xaxis.set_major_locator(
            LogLocator(base=10, subs=(1.0, 3.0) if decades < 2 else (1.0,), numticks=6)
        )
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


def curve_figures(
    summary: pd.DataFrame, rows: pd.DataFrame, curves: pd.DataFrame, score: str
) -> dict:
    """Validation score against step and against training time (mean over seeds, ±1 sd band);
    {} when no curve has a value."""
    import matplotlib.pyplot as plt

    styles, _ = _styles(summary)
    experiment = with_group_keys(rows)[["run_id"] + GROUP_KEYS].merge(
        summary[GROUP_KEYS + ["label", "cell"]], on=GROUP_KEYS
    )[["run_id", "cell", "label"]]
    valid = (
        curves[curves["split"] == "valid"]
        .merge(experiment, on="run_id")
        .dropna(subset=["acc", "step"])
    )
    figures = {}
    if valid.empty:
        return figures
    per_step = (
        valid.groupby(["label", "cell", "step"])
        .agg(acc=("acc", "mean"), sd=("acc", "std"), time=("wall_time_s", "mean"))
        .reset_index()
    )
    for x, xlabel, name in (
        ("step", "training step", "valid-acc-vs-step"),
        ("time", "training time (s)", "valid-acc-vs-time"),
    ):
        lines = per_step.dropna(subset=[x])
        if lines.empty:
            continue
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.5))
        for (label, cell), line in lines.groupby(["label", "cell"]):
            sd = line["sd"].fillna(0)
            ax.plot(
                line[x],
                100 * line["acc"],
                color=cell_color(cell),
                linestyle=styles[label],
                label=_plot_text(label),
                marker=".",
            )
            ax.fill_between(
                line[x],
                100 * (line["acc"] - sd),
                100 * (line["acc"] + sd),
                color=cell_color(cell),
                alpha=0.2,
                linewidth=0,
            )
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
    lines.update(
        {str(k): float(v) for k, v in own.items() if _finite(v)} if isinstance(own, dict) else {}
    )
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
    ax.errorbar(
        100 * lines["test_acc_mean"],
        positions,
        xerr=100 * lines["test_acc_std"].fillna(0),
        fmt="none",
        ecolor="0.3",
        capsize=3,
    )
    for position, (_, line) in zip(positions, lines.iterrows(), strict=True):
        ax.scatter(
            100 * line["test_acc_mean"],
            position,
            color=cell_color(line["cell"]),
            marker=markers[line["label"]],
            zorder=3,
        )
    # Each reference line gets a row of its own above the cells, where its label sits beside it.
    rows_of_labels = {name: len(lines) + i for i, name in enumerate(references)}
    for value in references.values():
        ax.axvline(100 * value, color="0.4", linestyle="--", linewidth=1)
    ax.set(
        yticks=positions,
        yticklabels=[_plot_text(label, width=26) for label in lines["label"]],
        xlabel=f"test {_plot_text(score)} (%)",
        ylim=(-0.6, len(lines) + len(references) - 0.4),
    )
    fig.tight_layout()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    for name, value in references.items():
        label = f"{name}: {100 * value:.4g} %"
        tries = [
            (text, dx, ha)
            for text in (_plot_text(label, limit=60), _plot_text(label, limit=60, width=24))
            for dx, ha in ((3, "left"), (-3, "right"))
        ]  # on one line, else on two
        for text, dx, ha in tries:
            note = ax.annotate(
                text,
                (100 * value, rows_of_labels[name]),
                xytext=(dx, 0),
                textcoords="offset points",
                ha=ha,
                va="center",
                fontsize="x-small",
                color="0.3",
            )
            note.set_in_layout(False)
            if _inside_axes(note.get_window_extent(renderer), box):
                break
            note.remove()
        else:
            note = ax.annotate(
                tries[-1][0],
                (100 * value, rows_of_labels[name]),
                xytext=(3, 0),
                textcoords="offset points",
                ha="left",
                va="center",
                fontsize="x-small",
                color="0.3",
                clip_on=True,
            )
            note.set_in_layout(False)
    return fig


def tradeoff_figure(summary: pd.DataFrame, score: str):
    """Score against parameters and against time per step, a panel for each that has points;
    None if neither has."""
    import matplotlib.pyplot as plt

    scored = summary[summary["test_acc_mean"].notna()]
    panels = [
        (x, xlabel, scored[scored[x].notna() & ((scored[x] > 0) if x == "params" else True)])
        for x, xlabel in (("params", "parameters"), ("step_time_ms", "time per step (ms)"))
    ]
    panels = [p for p in panels if not p[2].empty]
    if not panels:
        return None
    _, markers = _styles(summary)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(len(panels) * COLUMN_WIDTH_IN, 2.5), sharey=True, squeeze=False
    )
    for ax, (x, xlabel, points) in zip(axes[0], panels, strict=True):
        ax.errorbar(
            points[x],
            100 * points["test_acc_mean"],
            yerr=100 * points["test_acc_std"].fillna(0),
            fmt="none",
            ecolor="0.5",
            capsize=2,
        )
        for _, line in points.iterrows():
            ax.scatter(
                line[x],
                100 * line["test_acc_mean"],
                color=cell_color(line["cell"]),
                marker=markers[line["label"]],
                zorder=3,
            )
        ax.set(xlabel=xlabel)
        if x == "params":
            _count_axis(ax, points[x])
        ax.margins(x=0.08, y=0.1)
    axes[0][0].set_ylabel(f"test {_plot_text(score)} (%)")
    fig.tight_layout()
    for ax, (x, _, points) in zip(axes[0], panels, strict=True):
        _label_points(
            ax,
            [
                (line[x], 100 * line["test_acc_mean"], line["label"])
                for _, line in points.iterrows()
            ],
        )
    return fig


def cost_figure(summary: pd.DataFrame):
    """Time per step and peak memory as bars, a panel for each that has values; None if neither
    has. The memory axis says how memory was measured."""
    import matplotlib.pyplot as plt

    panels = [
        (x, xlabel)
        for x, xlabel in (
            ("step_time_ms", "time per step (ms)"),
            ("peak_mem_mb", memory_label(summary["mem_source"])),
        )
        if summary[x].notna().any()
    ]
    if not panels:
        return None
    lines = summary[summary[[x for x, _ in panels]].notna().any(axis=1)]
    positions = np.arange(len(lines))[::-1]  # the table's order, top to bottom
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(len(panels) * COLUMN_WIDTH_IN, 0.9 + 0.3 * len(lines)),
        sharey=True,
        squeeze=False,
    )
    colors = [cell_color(cell) for cell in lines["cell"]]
    for ax, (x, xlabel) in zip(axes[0], panels, strict=True):
        ax.barh(positions, lines[x].fillna(0), color=colors)
        for position, value in zip(positions, lines[x], strict=True):
            if pd.isna(value):  # (not a bar of length 0)
                ax.text(0, position, " not measured", va="center", fontsize="x-small", color="0.4")
        ax.set(xlabel=xlabel)
    axes[0][0].set(
        yticks=positions, yticklabels=[_plot_text(label, width=26) for label in lines["label"]]
    )
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


def plot_group(
    stem: str, summary: pd.DataFrame, rows: pd.DataFrame, curves: pd.DataFrame, out: Path
) -> list[Path]:
    """Every figure of one table group that has something to show; returns the files written."""
    task_spec = summary["task_spec"].iloc[0]
    score = score_name(summary)
    summary = summary.assign(label=experiment_labels(summary))
    with _drawing():
        figures = curve_figures(summary, rows, curves, score)
        figures.update(
            {
                "test-acc": test_acc_figure(summary, task_spec, score),
                "tradeoff": tradeoff_figure(summary, score),
                "cost": cost_figure(summary),
            }
        )
        return _save_all(figures, out, stem)


def plot_input(card: dict, out: Path) -> list[Path]:
    """What the cell sees, from a task card (store.write_task_card): each array of the task's
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
    for (name, array), width in zip(panels.items(), widths, strict=True):
        ax = fig.add_subplot(grid[0, column : column + width])
        column += width
        if array.ndim == 2:
            ax.imshow(
                array,
                cmap="gray_r",
                aspect="equal" if width == 1 else "auto",
                interpolation="nearest",
            )
            ax.set(xticks=[], yticks=[])
        else:
            ax.plot(array, linewidth=0.6, color="0.2")
            ax.set(xlabel="time step")
        ax.set_title(_plot_text(textwrap.shorten(name, 48 * width)), fontsize="small")
    fig.tight_layout()
    return _save(
        fig,
        out,
        f"{_name_part(str(card['task_spec']).replace(':', '_'))}-v{card['task_version']}-input",
    )
