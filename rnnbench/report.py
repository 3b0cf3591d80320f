"""`rnnbench report`: result rows -> aggregation over seeds -> tables and plots.

One aggregation (`aggregate`) feeds the Markdown, LaTeX and CSV tables and the plots. Rows are
only ever aggregated with rows of the same task version, permutation, data source, protocol,
device and config (all but the seed); each table states which of those it shows.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench import records

NUMERIC = ["seed", "hidden_size", "test_acc", "test_acc_final", "best_valid_acc", "test_loss", "baseline_loss",
           "params", "train_time_s",
           "step_time_ms", "peak_mem_mb", "time_to_target_s", "task_version"]
REQUIRED = ["run_id", "task", "task_version", "cell_spec", "seed", "hidden_size", "config_json", "status",
            "perm_sha256", "data", "protocol", "device", "test_acc"]
# Everything that must be equal for two rows to be seeds of the same experiment.
TABLE_KEYS = ["task", "task_spec", "task_version", "data", "protocol", "perm_sha256", "device"]
GROUP_KEYS = TABLE_KEYS + ["cell_spec", "hidden_size", "config_rest"]


class ReportError(ValueError):
    """Nothing to report; the message says why."""


def _config_rest(config_json: str) -> str:
    """The config without the seed and the fields already in the group keys, as canonical JSON
    (fields at their default left out, so rows written before a field existed still match)."""
    from rnnbench.config import DEFAULTS

    config = {k: v for k, v in json.loads(config_json).items() if k not in DEFAULTS or DEFAULTS[k] != v}
    for key in ("seed", "hidden_size", "data", "protocol", "perm_seed", "device", "warmup_steps",
                "eval_batch_size"):
        config.pop(key, None)
    return json.dumps(config, sort_keys=True)


def read_results(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All rows and curves of the results CSVs in `folder`; malformed rows are skipped with a
    warning naming the file and the line."""
    if not folder.is_dir():
        raise ReportError(f"results folder {folder} does not exist; run `rnnbench run ...` first")
    rows, curves = [], []
    for path in sorted(folder.glob("*.csv")):
        is_curves = path.name.endswith("-curves.csv")
        with io.StringIO(records.whole_rows(path).decode(), newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                continue
            needed = ["run_id", "step", "wall_time_s", "split"] if is_curves else REQUIRED
            missing = [c for c in needed if c not in header]
            if missing:
                warnings.warn(f"{path}: skipped, the header lacks {', '.join(missing)}")
                continue
            for line, fields in enumerate(reader, start=2):
                if len(fields) != len(header):
                    warnings.warn(f"{path}:{line}: skipped, {len(fields)} fields where the header has {len(header)}")
                    continue
                row = dict(zip(header, fields))
                if not is_curves:
                    problem = _row_problem(row)
                    if problem:
                        warnings.warn(f"{path}:{line}: skipped, {problem}")
                        continue
                (curves if is_curves else rows).append(row)
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(records.COLUMNS + (list(rows[0]) if rows else []))))
    unnamed = frame["task_spec"].isna() | (frame["task_spec"] == "")
    frame.loc[unnamed, "task_spec"] = frame.loc[unnamed, "task"]  # rows written before task specs
    frame["perm_sha256"] = frame["perm_sha256"].fillna("")
    for column in NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    # A run killed between writing its curves and its row writes them again when it resumes.
    curves_frame = pd.DataFrame(curves, columns=records.CURVE_COLUMNS).drop_duplicates(
        ["run_id", "step", "split"], keep="last")
    for column in ("step", "wall_time_s", "loss", "acc"):
        curves_frame[column] = pd.to_numeric(curves_frame[column], errors="coerce")
    return frame, curves_frame


def _row_problem(row: dict[str, str]) -> str:
    """Why a row cannot be used, or ''."""
    if row["status"] not in records.STATUSES:
        return f"unknown status {row['status']!r} (known: {', '.join(records.STATUSES)})"
    for column in ("seed", "hidden_size", "task_version"):
        try:
            int(float(row[column]))
        except ValueError:
            return f"{column} {row[column]!r} is not a number"
    if row["status"] == "ok":
        try:  # an accuracy, or a score such as R^2 that may be negative
            if not float(row["test_acc"]) <= 1:
                return f"test_acc {row['test_acc']} is above 1"
        except ValueError:
            return f"test_acc {row['test_acc']!r} is not a number"
    try:
        json.loads(row["config_json"])
    except json.JSONDecodeError:
        return "config_json is not valid JSON"
    return ""


def select(rows: pd.DataFrame, tasks: list[str] | None = None, cells: list[str] | None = None,
           statuses: tuple[str, ...] = ("ok",)) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows of the given tasks, cells (names or globs, matched against the name and the spec)
    and statuses; also the counts of every status among the rows that matched otherwise."""
    keep = pd.Series(True, index=rows.index)
    if tasks:
        keep &= rows["task"].isin(tasks)
    if cells:
        keep &= pd.Series([any(fnmatch.fnmatchcase(str(name), p) or fnmatch.fnmatchcase(str(spec), p)
                                   for p in cells) for name, spec in zip(rows["cell"], rows["cell_spec"])],
                          index=rows.index, dtype=bool)
    counts = rows.loc[keep, "status"].value_counts().to_dict()
    return rows[keep & rows["status"].isin(statuses)].copy(), counts


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per experiment (GROUP_KEYS): n seeds, mean and standard deviation of the test
    accuracies, and the costs (median step time; means of the rest)."""
    rows = rows.assign(config_rest=rows["config_json"].map(_config_rest))
    grouped = rows.groupby(GROUP_KEYS, sort=True, dropna=False)
    summary = grouped.agg(
        n=("seed", "size"),
        test_acc_mean=("test_acc", "mean"), test_acc_std=("test_acc", "std"),
        test_acc_final_mean=("test_acc_final", "mean"), test_acc_final_std=("test_acc_final", "std"),
        test_loss_mean=("test_loss", "mean"), test_loss_std=("test_loss", "std"),
        baseline_loss=("baseline_loss", "first"),
        params=("params", "median"), step_time_ms=("step_time_ms", "median"),
        train_time_s=("train_time_s", "mean"), time_to_target_s=("time_to_target_s", "mean"),
        peak_mem_mb=("peak_mem_mb", "mean"), device_name=("device_name", "first"),
        seeds=("seed", lambda s: ",".join(str(int(v)) for v in sorted(s))),
    ).reset_index()
    stds = ["test_acc_std", "test_acc_final_std", "test_loss_std"]
    summary[stds] = summary[stds].fillna(0.0)
    return summary


# --- tables -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    key: str  # in the summary
    title: str
    higher_is_better: bool
    digits: int
    scale: float = 1.0
    std: str | None = None  # the summary column of its standard deviation


TABLE_COLUMNS = [
    Column("test_acc_mean", "Acc. (%)", True, 2, 100, "test_acc_std"),
    Column("test_acc_final_mean", "Final (%)", True, 2, 100, "test_acc_final_std"),
    Column("test_loss_mean", "Loss", False, 3, 1, "test_loss_std"),  # for tasks with a baseline loss
    Column("params", "Params", False, 0),
    Column("step_time_ms", "Step (ms)", False, 1),
    Column("train_time_s", "Train (s)", False, 0),
    Column("time_to_target_s", "To target (s)", False, 0),
    Column("peak_mem_mb", "Mem. (MiB)", False, 0),
]


def _table_columns(summary: pd.DataFrame) -> list[Column]:
    has_baseline = summary["baseline_loss"].notna().any()
    return [c for c in TABLE_COLUMNS if summary[c.key].notna().any() and (c.key != "test_loss_mean" or has_baseline)]


def experiment_labels(summary: pd.DataFrame) -> list[str]:
    """A label per summary line: the cell spec, then N and the config fields only where they
    differ between the lines (`eurnn (N=64, lr=0.003)`)."""
    rests = [json.loads(r) for r in summary["config_rest"]]
    varying = sorted(k for k in set().union(*rests) if len({json.dumps(r.get(k)) for r in rests}) > 1)
    show_n = summary["hidden_size"].nunique() > 1
    labels = []
    for (_, line), rest in zip(summary.iterrows(), rests):
        details = ([f"N={int(line['hidden_size'])}"] if show_n else []) + [f"{k}={rest.get(k)}" for k in varying]
        labels.append(line["cell_spec"] + (f" ({', '.join(details)})" if details else ""))
    return labels


def _task_attribute(task_spec: str, name: str, default):
    from rnnbench.registry import TASKS

    try:
        return getattr(TASKS.build(task_spec), name, default)
    except ValueError:  # a task of rows written elsewhere that is not registered here
        return default


def score_name(summary: pd.DataFrame) -> str:
    """What `acc` means for the table's task: accuracy, recall accuracy, R²..."""
    return _task_attribute(summary["task_spec"].iloc[0], "score_name", "acc.")


def _formatted(summary: pd.DataFrame, bold: str) -> tuple[list[str], list[list[str]]]:
    """Header and cells of one table, with the best value of each column wrapped in `bold`."""
    columns = _table_columns(summary)
    titles = {"test_acc_mean": f"{score_name(summary).capitalize()} (%)"}
    header = ["Cell"] + [f"{titles.get(c.key, c.title)} {'↑' if c.higher_is_better else '↓'}"
                         for c in columns] + ["Seeds"]
    body = []
    for label, (_, line) in zip(experiment_labels(summary), summary.iterrows()):
        cells = [label]
        for c in columns:
            value = line[c.key]
            if pd.isna(value):
                cells.append("–")
                continue
            text = f"{value * c.scale:,.{c.digits}f}"
            if c.std is not None:
                text += f" ± {line[c.std] * c.scale:.{c.digits}f}"
            best = summary[c.key].max() if c.higher_is_better else summary[c.key].min()
            cells.append(bold.format(text) if np.isclose(value, best) and len(summary) > 1 else text)
        cells.append(str(int(line["n"])))
        body.append(cells)
    return header, body


def table_caption(summary: pd.DataFrame) -> str:
    """What a table shows: task and version, data, protocol, permutation, device, seeds."""
    first = summary.iloc[0]
    seeds = sorted(set(summary["n"].astype(int)))
    order = f", pixel order {str(first['perm_sha256'])[:12]}" if first["perm_sha256"] else ""
    score = score_name(summary)
    return (f"{first['task_spec']} (task version {int(first['task_version'])}), data: {first['data']}, protocol: "
            f"{first['protocol']}{order}, on {first['device_name']}; "
            f"mean ± standard deviation over {'/'.join(map(str, seeds))} seed(s). {score.capitalize()}: "
            f"test {score} of the weights with the best validation score; Final: of the final "
            f"weights; Step: median time of a "
            f"training step; Train: training time; Mem.: peak memory."
            + (f" Loss: test loss; the memoryless baseline's is {first['baseline_loss']:.4g}."
               if pd.notna(first["baseline_loss"]) else ""))


def markdown_table(summary: pd.DataFrame) -> str:
    header, body = _formatted(summary, "**{}**")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return f"{table_caption(summary)}\n\n" + "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"),
                          ("#", r"\#"), ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                          ("^", r"\textasciicircum{}")):
        text = text.replace(char, escaped)
    return text


def latex_table(summary: pd.DataFrame, label: str) -> str:
    """A booktabs table that compiles as it is (needs \\usepackage{booktabs})."""
    header, body = _formatted(summary, "\x00{}\x01")

    def tex(text: str) -> str:
        text = _latex_escape(text).replace("±", r"$\pm$").replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$")
        return text.replace("\x00", r"\textbf{").replace("\x01", "}").replace("–", "--")

    lines = [r"\begin{table}[t]", r"\centering", r"\footnotesize", r"\setlength{\tabcolsep}{3pt}",
             r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(tex(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(tex(c) for c in row) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{tex(table_caption(summary))}}}",
              rf"\label{{{label}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def table_groups(summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The summary split into tables that never mix task versions, data or devices; each with a
    file-name stem."""
    groups = []
    for keys, part in summary.groupby(TABLE_KEYS, sort=True):
        task, task_spec, version, data, protocol, perm, device = keys
        name = str(task_spec).replace(":", "_")
        stem = "-".join(str(p) for p in (name, f"v{int(version)}", data, protocol, str(perm)[:8], device) if p)
        groups.append((stem, part.sort_values(["cell_spec", "hidden_size", "config_rest"])))
    return groups


# --- plots ---------------------------------------------------------------------------------------

COLUMN_WIDTH_IN = 3.4  # one column of a two-column paper


def cell_colors(specs) -> dict[str, tuple]:
    """One colour per cell spec, the same in every figure of a report."""
    import seaborn as sns

    specs = sorted(set(specs))
    palette = sns.color_palette("colorblind", max(len(specs), 1))
    return dict(zip(specs, palette))


def _save(fig, out: Path, stem: str) -> list[Path]:
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    fig.tight_layout()
    for path in paths:
        fig.savefig(path, dpi=200)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


def plot_group(stem: str, summary: pd.DataFrame, rows: pd.DataFrame, curves: pd.DataFrame, out: Path,
               colors: dict[str, tuple]) -> list[Path]:
    """Every figure of one table group; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=0.9)
    written: list[Path] = []
    task_spec = summary["task_spec"].iloc[0]
    score = score_name(summary)
    summary = summary.assign(label=experiment_labels(summary))
    color_of = [colors[spec] for spec in summary["cell_spec"]]
    styles = ["-", "--", ":", "-."]  # a cell's colour stays; its variants differ by line style
    style_of = {label: styles[i % len(styles)] for _, part in summary.groupby("cell_spec")
                for i, label in enumerate(part["label"])}

    # Validation accuracy against training step and against training wall-clock time, per experiment.
    experiment = rows.assign(config_rest=rows["config_json"].map(_config_rest)).merge(
        summary[GROUP_KEYS + ["label"]], on=GROUP_KEYS)[["run_id", "cell_spec", "label"]]
    valid = curves[curves["split"] == "valid"].merge(experiment, on="run_id")
    if not valid.empty:
        per_step = valid.groupby(["label", "cell_spec", "step"]).agg(
            acc=("acc", "mean"), sd=("acc", "std"), time=("wall_time_s", "mean")).reset_index()
        for x, xlabel, name in (("step", "training step", "valid-acc-vs-step"),
                                ("time", "training time (s)", "valid-acc-vs-time")):
            fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.5))
            for (label, spec), line in per_step.groupby(["label", "cell_spec"]):
                sd = line["sd"].fillna(0)
                ax.plot(line[x], 100 * line["acc"], color=colors[spec], linestyle=style_of[label], label=label,
                        marker=".")
                ax.fill_between(line[x], 100 * (line["acc"] - sd), 100 * (line["acc"] + sd),
                                color=colors[spec], alpha=0.2, linewidth=0)
            ax.set(xlabel=xlabel, ylabel=f"validation {score} (%)")
            ax.legend(fontsize="small")
            written += _save(fig, out, f"{stem}-{name}")

    # Test accuracy per cell, mean and standard deviation over seeds, with the task's lines.
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 0.9 + 0.3 * len(summary)))
    positions = np.arange(len(summary))
    ax.errorbar(100 * summary["test_acc_mean"], positions, xerr=100 * summary["test_acc_std"], fmt="none",
                ecolor="0.3", capsize=3)
    ax.scatter(100 * summary["test_acc_mean"], positions, c=color_of, zorder=3)
    for name, value in _task_attribute(task_spec, "reference_lines", {}).items():
        ax.axvline(100 * value, color="0.4", linestyle="--", linewidth=1)
        ax.annotate(name, (100 * value, 1.0), xycoords=("data", "axes fraction"), fontsize="x-small",
                    rotation=90, ha="right", va="top", color="0.3")
    ax.set(yticks=positions, yticklabels=summary["label"], xlabel=f"test {score} (%)")
    written += _save(fig, out, f"{stem}-test-acc")

    # The trade-off: accuracy against parameters (log) and against time per step.
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH_IN, 2.5), sharey=True)
    for ax, x, xlabel in ((axes[0], "params", "parameters"), (axes[1], "step_time_ms", "time per step (ms)")):
        ax.errorbar(summary[x], 100 * summary["test_acc_mean"], yerr=100 * summary["test_acc_std"], fmt="none",
                    ecolor="0.5", capsize=2)
        ax.scatter(summary[x], 100 * summary["test_acc_mean"], c=color_of, zorder=3)
        for _, line in summary.iterrows():
            ax.annotate(line["label"], (line[x], 100 * line["test_acc_mean"]), fontsize="x-small",
                        xytext=(3, 3), textcoords="offset points")
        ax.set(xlabel=xlabel, xscale="log" if x == "params" else "linear")
    axes[0].set_ylabel(f"test {score} (%)")
    written += _save(fig, out, f"{stem}-tradeoff")

    # Costs as bars: time per step and peak memory.
    fig, axes = plt.subplots(1, 2, figsize=(2 * COLUMN_WIDTH_IN, 0.9 + 0.3 * len(summary)), sharey=True)
    for ax, x, xlabel in ((axes[0], "step_time_ms", "time per step (ms)"),
                          (axes[1], "peak_mem_mb", f"peak memory (MiB, {rows['mem_source'].iloc[0]})")):
        ax.barh(positions, summary[x], color=color_of)
        ax.set(xlabel=xlabel)
    axes[0].set(yticks=positions, yticklabels=summary["label"])
    written += _save(fig, out, f"{stem}-cost")
    return written


def plot_input(task_name: str, perm_seed: int, out: Path) -> list[Path]:
    """What the cell sees (tasks with an `example`): the digit, its pixels in the task's order,
    and the input sequence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnnbench.registry import TASKS

    task = TASKS.build(task_name)
    if getattr(task, "example", None) is None:
        return []
    example = task.example(perm_seed)
    fig = plt.figure(figsize=(2 * COLUMN_WIDTH_IN, 1.9))
    grid = fig.add_gridspec(1, 4)
    for i, (key, title) in enumerate((("image", "the digit"), ("reordered", f"pixels in {task_name} order"))):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(example[key], cmap="gray_r")
        ax.set(title=title, xticks=[], yticks=[])
    ax = fig.add_subplot(grid[0, 2:])
    ax.plot(example["sequence"], linewidth=0.6, color="0.2")
    ax.set(title=f"the input: {len(example['sequence'])} steps, one pixel each", xlabel="time step",
           ylabel="intensity")
    return _save(fig, out, f"{task_name}-input" + (f"-perm{perm_seed}" if perm_seed else ""))


def write_report(rows: pd.DataFrame, curves: pd.DataFrame, out: Path) -> tuple[list[Path], str]:
    """Tables and figures of every group into `out`; returns the files and the Markdown text."""
    out.mkdir(parents=True, exist_ok=True)
    summary = aggregate(rows)
    colors = cell_colors(summary["cell_spec"])
    written, markdown = [], []
    for stem, part in table_groups(summary):
        md, tex = markdown_table(part), latex_table(part, f"tab:{stem}")
        for suffix, text in ((".md", md), (".tex", tex)):
            (out / f"{stem}{suffix}").write_text(text)
            written.append(out / f"{stem}{suffix}")
        part.to_csv(out / f"{stem}-summary.csv", index=False)
        written.append(out / f"{stem}-summary.csv")
        group_rows = rows[rows["task_spec"] == part["task_spec"].iloc[0]]
        written += plot_group(stem, part, group_rows, curves, out, colors)
        markdown.append(f"## {stem}\n\n{md}")
    from rnnbench.registry import TASKS

    for task in sorted(set(summary["task"]) & set(TASKS.names())):
        perm_seeds = {json.loads(c).get("perm_seed", 0) for c in rows.loc[rows["task"] == task, "config_json"]}
        for perm_seed in sorted(perm_seeds):
            written += plot_input(task, perm_seed, out)
    text = "\n".join(markdown)
    (out / "report.md").write_text(text)
    return written + [out / "report.md"], text

