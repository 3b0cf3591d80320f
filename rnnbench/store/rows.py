"""Reading rows and curves, the run's latest row, and appending a finished run.

Every command reads rows here, and only here: `run` and `tune` (which runs are done), `status`
(which jobs wrote their row), `cite` (which cells and tasks a folder holds) and `report` (what
to show). Rows are checked (schema.row_problem) and upgraded (schema.upgrade) on every read, and
one rule (`latest`) says which row is a run's result: the last one written for its run key.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnbench.store import claims, csvfile, layout
from rnnbench.store.schema import COLUMNS, CURVE_COLUMNS, CURVE_NUMERIC, DONE, NUMERIC, upgrade

# Columns every row of a results file must have for the report to show it (a file whose header
# lacks one is skipped whole, with a warning), and those curves files need.
SHOWN = [
    "run_id",
    "task",
    "task_version",
    "cell_spec",
    "seed",
    "hidden_size",
    "config_json",
    "status",
    "device",
    "test_acc",
]
CURVES_SHOWN = ["run_id", "step", "wall_time_s", "split"]


class ResultsMissing(ValueError):
    """The results folder does not exist."""


def _frame(rows: list[dict[str, str]], header: list[str], kind: str) -> pd.DataFrame:
    """Checked rows as a frame: every column of this version (and any other the file has), text
    as strings ('' where missing), NUMERIC columns as numbers (NaN where missing or infinite)."""
    columns = COLUMNS if kind == "rows" else CURVE_COLUMNS
    extra = [k for r in rows for k in r if k not in columns]
    frame = pd.DataFrame(
        rows, columns=list(dict.fromkeys(columns + header + extra)), dtype=object
    ).fillna("")
    for column in NUMERIC if kind == "rows" else CURVE_NUMERIC:
        frame[column] = pd.to_numeric(frame[column].replace("", math.nan), errors="coerce").replace(
            [np.inf, -np.inf], np.nan
        )
    return frame


def frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    """Checked rows (dicts of text, as a results file holds them) as every reader sees them:
    upgraded, typed (see _frame), in their order."""
    return _frame([upgrade(dict(row)) for row in rows], [], "rows")


def read_path(path: Path, kind: str = "rows", warn: bool = True) -> pd.DataFrame:
    """Every usable row of a results (or curves, `kind="curves"`) file, upgraded to this version;
    the others are skipped with a warning naming file and line. ForeignFile if the file is not
    rnnbench's."""
    parsed = csvfile.parse(path, kind)
    if warn:
        for problem in parsed.problems:
            warnings.warn(problem, stacklevel=2)
        if parsed.torn_at is not None:
            warnings.warn(
                f"{path} ends in a torn row ({path.stat().st_size - parsed.torn_at} bytes): "
                "ignored; the next append to the file moves it aside",
                stacklevel=2,
            )
    rows = [upgrade(row) for row in parsed.rows] if kind == "rows" else parsed.rows
    return _frame(rows, parsed.layout.header if parsed.layout else [], kind)


def read_rows(results: Path, task: str, kind: str = "rows", warn: bool = True) -> pd.DataFrame:
    """Every usable row of a task's results file (or curves file), as `run` and `report` both see
    them; see read_path."""
    path = layout.rows_csv(results, task) if kind == "rows" else layout.curves_csv(results, task)
    return read_path(path, kind, warn)


def latest(rows: pd.DataFrame) -> pd.DataFrame:
    """The result of each run: of the rows given, the last one written for each run key (a run
    trained again, with --force or after a failure, has a newer row). Filter first to ask for
    the latest row of a kind: `latest(rows[rows.status.isin(DONE)])`."""
    last = rows.drop_duplicates("run_key", keep="last")
    first = {
        key: i for i, key in reversed(list(enumerate(rows["run_key"])))
    }  # (each run where it first appears)
    return last.iloc[np.argsort([first[key] for key in last["run_key"]], kind="stable")]


def finished(
    rows: pd.DataFrame, key: str, superseded: frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    """The latest row of run `key` that finishes it (DONE: ok, diverged, or pruned by a study),
    leaving out the rows `superseded` names (run_ids that --force asked to run again)."""
    mine = latest(
        rows[
            (rows["run_key"] == key) & rows["status"].isin(DONE) & ~rows["run_id"].isin(superseded)
        ]
    )
    return mine.iloc[-1].to_dict() if len(mine) else None


def done_run_ids(rows: pd.DataFrame) -> dict[str, list[str]]:
    """run_key -> run_ids of its rows that finish it (DONE: ok, diverged, pruned by a study)."""
    ok = rows[rows["status"].isin(DONE)]
    return ok.groupby("run_key")["run_id"].agg(list).to_dict()


def latest_of(results: Path, task: str, keys: list[str]) -> list[dict[str, Any]]:
    """The latest row of each run key, in the order of `keys` (runs without a row left out)."""
    by_key = latest(read_rows(results, task)).set_index("run_key", drop=False)
    return [by_key.loc[key].to_dict() for key in keys if key in by_key.index]


def failures(results: Path, task: str, keys: list[str]) -> int:
    """The most failed rows any one of these runs has."""
    rows = read_rows(results, task)
    failed = rows[rows["run_key"].isin(keys) & (rows["status"] == "failed")]
    return int(failed.groupby("run_key").size().max()) if len(failed) else 0


def skip_message(description: str, row: dict[str, Any]) -> str:
    """What a sweep says of a run it skips because `row` finished it."""
    article = "an" if row["status"] == "ok" else "a"
    return (
        f"skip {description}: run {row['run_key']} already has {article} {row['status']} row "
        "(--force to run it again)"
    )


def used(results: Path) -> tuple[list[str], list[str]]:
    """The cells and the tasks (names) of every row in a results folder, each file's sorted, in
    the order of the files; files rnnbench did not write are passed over, and so are problems."""
    cells, tasks = [], []
    for path in layout.csv_files(results):
        if layout.is_curves_csv(path):
            continue
        try:
            rows = read_path(path, warn=False)
        except csvfile.ForeignFile:
            continue
        cells += sorted(set(rows["cell"]) - {""})
        tasks += sorted(set(rows["task"]) - {""})
    return cells, tasks


def read_all(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The result of every run in the folder (its latest row) and every curve point, for the
    report: malformed rows are skipped with a warning naming the file and the line, and so are
    foreign files and files whose header lacks a column the report needs. ResultsMissing if the
    folder does not exist."""
    if not results.is_dir():
        raise ResultsMissing(
            f"results folder {results} does not exist; run `rnnbench run ...` first"
        )
    rows, curves, headers = [], [], {"rows": [], "curves": []}
    for path in layout.csv_files(results):
        kind = "curves" if layout.is_curves_csv(path) else "rows"
        try:
            parsed = csvfile.parse(path, kind)
        except csvfile.ForeignFile as error:
            warnings.warn(f"{error} (skipped)", stacklevel=2)
            continue
        if parsed.layout is None:
            continue
        missing = [
            c
            for c in (CURVES_SHOWN if kind == "curves" else SHOWN)
            if c not in parsed.layout.header
        ]
        if missing:
            warnings.warn(f"{path}: skipped, the header lacks {', '.join(missing)}", stacklevel=2)
            continue
        for problem in parsed.problems:
            warnings.warn(problem, stacklevel=2)
        headers[kind] += parsed.layout.header
        for row in parsed.rows:
            (curves if kind == "curves" else rows).append(upgrade(row) if kind == "rows" else row)
    frame = latest(_frame(rows, list(dict.fromkeys(headers["rows"])), "rows"))
    # A run killed between writing its curves and its row writes them again when it resumes.
    points = _frame(curves, [], "curves")[CURVE_COLUMNS].drop_duplicates(
        ["run_id", "step", "split"], keep="last"
    )
    return frame.reset_index(drop=True), points.reset_index(drop=True)


def append_run(
    results: Path,
    task: str,
    row: dict[str, Any],
    curves: list[dict[str, Any]],
    check: Callable[[], None] | None = None,
) -> None:
    """Append one run: its curves, then its row (the mark that the run finished), under the task's
    lock. `check` runs under the lock first (the writer still owns the run: claims.Claim.check)."""
    results.mkdir(parents=True, exist_ok=True)
    path = layout.rows_csv(results, task)
    with claims.folder_lock(layout.append_lock(results, task), f"appending to {path}"):
        if check is not None:
            check()
        csvfile.append(layout.curves_csv(results, task), CURVE_COLUMNS, curves, "curves")
        csvfile.append(path, COLUMNS, [row], "rows")
