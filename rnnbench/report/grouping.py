"""Which rows go together, and what they recorded: `select` picks rows, `aggregate` pools the seeds
of each experiment (GROUP_KEYS) into one line, `table_groups` splits the lines into tables that
never mix task versions, data or machines (TABLE_KEYS), each with a file-name stem;
`experiment_labels` names the lines; `score_name`, `data_words` and the like read what the rows
recorded as JSON.

What a line pools is said in the package's docstring (rnnbench.report).
"""

from __future__ import annotations

import fnmatch
import json
from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd

from rnnbench import store
from rnnbench.report.read import config_rest
from rnnbench.report.text import _digest, _name_part, _printable

# What a table never mixes: two machines, or one machine with another number of threads, are two
# tables.
TABLE_KEYS = [
    "task",
    "task_spec",
    "task_version",
    "data_hash",
    "device",
    "device_name",
    "num_threads",
]
# Everything that must be equal for two rows to be seeds of the same experiment (a line of a table):
# a study's final runs are an experiment of their own, apart from plain runs of the same config.
GROUP_KEYS = TABLE_KEYS + [
    "cell_spec",
    "impl",
    "status",
    "hidden_size",
    "config_rest",
    "study",
    "phase",
]


def with_group_keys(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with the column `config_rest` (read.config_rest) that GROUP_KEYS names."""
    return rows.assign(config_rest=rows["config_json"].map(config_rest))


def select(
    rows: pd.DataFrame,
    tasks: list[str] | None = None,
    cells: list[str] | None = None,
    statuses: tuple[str, ...] = ("ok",),
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows of the given tasks, cells (names or globs, matched against the name and the spec)
    and statuses, with a study's trials (phase tune) whatever their status, as its trials table
    shows every one; also the counts of every status among the other rows that matched otherwise.
    `select(rows, ["pmnist"], ["eurnn*"], ("ok", "diverged"))`."""
    keep = pd.Series(True, index=rows.index)
    if tasks:
        keep &= rows["task"].isin(tasks)
    if cells:
        keep &= pd.Series(
            [
                any(
                    fnmatch.fnmatchcase(str(name), p) or fnmatch.fnmatchcase(str(spec), p)
                    for p in cells
                )
                for name, spec in zip(rows["cell"], rows["cell_spec"], strict=True)
            ],
            index=rows.index,
            dtype=bool,
        )
    trial = rows["phase"] == "tune"
    counts = rows.loc[keep & ~trial, "status"].value_counts().to_dict()
    return rows[keep & (rows["status"].isin(statuses) | trial)].copy(), counts


def aggregate(rows: pd.DataFrame, **more: tuple) -> pd.DataFrame:
    """One line per experiment (GROUP_KEYS): n seeds, mean and standard deviation of the test
    accuracies, and the costs (median step time; means of the rest), each with its standard
    deviation over seeds (NaN with fewer than two values); `more` adds named aggregations
    (`aggregate(rows, trial=("trial", "last"))`)."""
    rows = with_group_keys(rows)
    grouped = rows.groupby(GROUP_KEYS, sort=True, dropna=False)
    summary = grouped.agg(
        n=("seed", "size"),
        cell=("cell", "first"),
        test_acc_mean=("test_acc", "mean"),
        test_acc_std=("test_acc", "std"),
        test_acc_final_mean=("test_acc_final", "mean"),
        test_acc_final_std=("test_acc_final", "std"),
        test_loss_mean=("test_loss", "mean"),
        test_loss_std=("test_loss", "std"),
        baseline_loss=("baseline_loss", "first"),
        params=("params", "median"),
        params_std=("params", "std"),
        step_time_ms=("step_time_ms", "median"),
        step_time_ms_std=("step_time_ms", "std"),
        step_time_iqr_ms=("step_time_iqr_ms", "median"),
        train_time_s=("train_time_s", "mean"),
        train_time_s_std=("train_time_s", "std"),
        time_to_target_s=("time_to_target_s", "mean"),
        time_to_target_s_std=("time_to_target_s", "std"),
        peak_mem_mb=("peak_mem_mb", "mean"),
        peak_mem_mb_std=("peak_mem_mb", "std"),
        mem_source=("mem_source", lambda s: ",".join(sorted({v for v in s if v}))),
        n_test=("n_test", "min"),
        linear_acc=("linear_acc", "median"),
        seeds=("seed", lambda s: ",".join(str(int(v)) for v in sorted(s))),
        commits=("git_commit", lambda s: ",".join(sorted({v for v in s if v}))),
        task_json=("task_json", "last"),
        data_json=("data_json", "last"),
        **({"cell_citation": ("cell_citation", "first")} if "cell_citation" in rows else {}),
        **more,
    ).reset_index()
    # A step time is uncertain by the spread of its seeds and, within a run, of its steps.
    summary["step_time_spread_ms"] = np.fmax(
        summary["step_time_ms_std"], summary["step_time_iqr_ms"]
    )
    return summary


def experiment_labels(summary: pd.DataFrame, shown: tuple[str, ...] = ()) -> list[str]:
    """A label per summary line: the cell spec, then N and the config fields only where they
    differ between the lines, the implementation where the cell ran in more than one, the study
    of a study's final runs, and the status unless ok (`eurnn (N=64, impl=fused, lr=0.003)`);
    what the table shows in `shown` columns of its own (config fields, "study") is left out."""
    rests = [json.loads(r) for r in summary["config_rest"]]
    varying = sorted(
        k
        for k in set().union(*rests)
        if k not in shown and len({json.dumps(r.get(k)) for r in rests}) > 1
    )
    show_n = summary["hidden_size"].nunique() > 1
    impls = summary.groupby("cell_spec")["impl"].agg(
        lambda s: len(set(s) - {""})
    )  # (a failed run has none)
    labels = []
    for (_, line), rest in zip(summary.iterrows(), rests, strict=True):
        details = (
            ([f"N={int(line['hidden_size'])}"] if show_n else [])
            + ([f"impl={line['impl'] or '?'}"] if impls[line["cell_spec"]] > 1 else [])
            + [f"{k}={rest.get(k)}" for k in varying]
            + ([f"study={line['study']}"] if line.get("study") and "study" not in shown else [])
            + ([line["status"]] if line["status"] != "ok" else [])
        )
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


def _finite(value) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))
    )


def score_name(summary: pd.DataFrame) -> str:
    """What `acc` means for the table's task, as its rows recorded: accuracy, recall accuracy, R²...
    ("score" for rows from before rnnbench recorded it: the report does not guess)."""
    name = _recorded(summary, "task_json").get("score_name")
    return name if isinstance(name, str) and name else "score"


def score_higher_is_better(summary: pd.DataFrame) -> bool:
    """Which way the table's score is better, as its rows recorded (higher where they do not
    say)."""
    return _recorded(summary, "task_json").get("higher_is_better") is not False


def data_words(summary: pd.DataFrame, escape: Callable[[str], str] = _printable) -> str:
    """The table's data identity as recorded, `key=value, ...` (long values cut to 12
    characters)."""
    identity = _recorded(summary, "data_json")
    if not identity:
        return "not recorded (rows from before rnnbench recorded data identities)"
    return ", ".join(
        f"{escape(k)}={escape(str(v) if len(str(v)) <= 16 else str(v)[:12] + '…')}"
        for k, v in identity.items()
    )


def mixed_commits(summary: pd.DataFrame) -> list[str]:
    """The code versions (git commits, `+dirty` for uncommitted changes) behind a table's rows,
    when they are not all one: such a table may compare code that changed in between."""
    commits = sorted({c for line in summary["commits"] for c in str(line).split(",") if c})
    return commits if len(commits) > 1 else []


def table_groups(summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The summary split into tables that never mix task versions, data or machines; each with a
    file-name stem `TASK-vVERSION-DEVICE`, followed by the data's hash where two tables would share
    it, then the device's name and threads, and by a hash where they still would."""
    groups = []
    for keys, part in summary.groupby(TABLE_KEYS, sort=True, dropna=False):
        k = dict(zip(TABLE_KEYS, keys, strict=True))
        stem = "-".join(
            p
            for p in map(
                _name_part,
                (str(k["task_spec"]).replace(":", "_"), f"v{int(k['task_version'])}", k["device"]),
            )
            if p
        )
        data = f"-data{_name_part(str(k['data_hash'])[:8])}" if k["data_hash"] else ""
        machine = "".join(
            f"-{p}"
            for p in map(
                _name_part, (k["device_name"], k["num_threads"] and f"{k['num_threads']}threads")
            )
            if p
        )
        part = part.assign(
            _status=part["status"].map(store.STATUSES.index)
        )  # ok first, then the others
        part = part.sort_values(
            ["cell_spec", "hidden_size", "_status", "impl", "config_rest", "study", "phase"]
        ).drop(columns="_status")
        groups.append([stem, data, machine, keys, part])
    stems = [g[0] for g in groups]
    for extra in (
        1,
        2,
    ):  # the data's hash, then the machine, only where stems clash and they tell them apart
        values: dict[str, set] = {}  # (casefolded: a case-insensitive disk would merge A and a)
        for s, g in zip(stems, groups, strict=True):
            values.setdefault(s.casefold(), set()).add(g[extra])
        stems = [
            s + g[extra] if len(values[s.casefold()]) > 1 else s
            for s, g in zip(stems, groups, strict=True)
        ]
    groups = [[g[0], g[1] + g[2], g[3], g[4]] for g in groups]
    stems = _distinct(stems, [g[2] for g in groups])
    return [(stem, g[3]) for stem, g in zip(stems, groups, strict=True)]


def _distinct(stems: list[str], keys: list) -> list[str]:
    """File-name stems made distinct, also on a case-insensitive disk, by a hash of each one's
    group keys where they clash: `_distinct(["a", "A"], [("x",), ("y",)])`."""
    while len({s.casefold() for s in stems}) < len(stems):
        counts = Counter(s.casefold() for s in stems)
        stems = [
            f"{s}-{_digest([*k, s])}" if counts[s.casefold()] > 1 else s
            for s, k in zip(stems, keys, strict=True)
        ]
    return stems


def summary_csv(summary: pd.DataFrame) -> pd.DataFrame:
    """A results table as its CSV holds it: the study and phase columns only where the table has a
    study's final runs, so that the tables of plain runs keep the columns they always had; the
    cells' BibTeX (in the captions and references.bib) left out."""
    empty = [c for c in ("study", "phase") if not summary[c].astype(bool).any()]
    return summary.drop(
        columns=[*empty, *(["cell_citation"] if "cell_citation" in summary else [])]
    )
