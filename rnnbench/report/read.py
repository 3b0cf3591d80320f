"""Reading a results folder, and everything the report knows of how rows and configs are written.

`read_results` gives every checked row (records.parse; the latest row of each run) and curve point
as frames (`_rows_frame`, `_curves_frame`: text columns as strings, NUMERIC ones as numbers);
`config_rest` (what tells experiments apart) and `differing_config` (what the page lists) are the
report's only views of a row's config: they alone know RunConfig's defaults and its WATCH fields.
The rest of the package asks this module, never rnnbench.config, rnnbench.task or the results files:
the results store is to take this module's place.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from rnnbench import records
from rnnbench.config import DEFAULTS, WATCH
from rnnbench.report.errors import ReportError
from rnnbench.task import data_hash, data_json

NUMERIC = ["seed", "hidden_size", "test_acc", "test_acc_final", "best_valid_acc", "test_loss", "baseline_loss",
           "params", "train_time_s", "step_time_ms", "step_time_iqr_ms", "peak_mem_mb", "time_to_target_s",
           "task_version", "n_test", "num_threads", "linear_acc", "trial", "steps_done", "n_valid"]
REQUIRED = ["run_id", "task", "task_version", "cell_spec", "seed", "hidden_size", "config_json", "status",
            "device", "test_acc"]
TEXT = ["task", "task_spec", "data_hash", "data_json", "task_json", "device", "device_name", "cell", "cell_spec",
        "impl", "mem_source", "status", "phase", "study", "tuned_json", "study_json"]


# The config fields a table line pools (the package's docstring says why): the seed; hidden_size, a
# group key of its own; device as asked for (auto...), where the row's device columns say the one used;
# warmup_steps and eval_batch_size, which change what is measured, never training or scores; and the
# WATCH fields, how a run was shown while it trained.
POOLED = ("seed", "hidden_size", "device", "warmup_steps", "eval_batch_size", *WATCH)


def config_rest(config_json: str) -> str:
    """The rest of a run's config, which tells experiments apart, as canonical JSON: every field but
    those POOLED, and none at RunConfig's default (so that rows written before a field existed
    match rows that leave it at its default): `config_rest('{"seed": 3, "lr": 0.01}') == '{"lr": 0.01}'`."""
    config = {k: v for k, v in json.loads(config_json).items() if k not in DEFAULTS or DEFAULTS[k] != v}
    for key in POOLED:
        config.pop(key, None)
    return json.dumps(config, sort_keys=True)


def differing_config(config: dict) -> dict:
    """A run's config as the page lists it: the fields that differ from RunConfig's defaults, less
    the seed and hidden size (columns of their own) and the WATCH fields (how the run was logged,
    not what it ran): `differing_config({"seed": 1, "lr": 0.01}) == {"lr": 0.01}` where 0.01 is
    not the default."""
    return {k: v for k, v in config.items() if k not in ("seed", "hidden_size", *WATCH)
            and DEFAULTS.get(k, object()) != v}


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
