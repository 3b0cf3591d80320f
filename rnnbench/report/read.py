"""The report's view of a results folder: the store's rows and curves (checked, upgraded, the
latest row of each run), typed for tables and labels, and the two views of a row's config the
report needs: `config_rest` (what tells experiments apart) and `differing_config` (what the page
lists of a run's setting), both read against the defaults the row schema records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rnnbench import store
from rnnbench.report.errors import ReportError
from rnnbench.store.schema import CONFIG_DEFAULTS, CONFIG_WATCH

# Columns the report treats as text ('' where missing); every other column of the store's NUMERIC
# list is a number (NaN where missing), and num_threads a whole number written as text (a table
# key).
TEXT = [
    "task",
    "task_spec",
    "data_hash",
    "data_json",
    "task_json",
    "device",
    "device_name",
    "cell",
    "cell_spec",
    "impl",
    "mem_source",
    "status",
    "phase",
    "study",
    "tuned_json",
    "study_json",
]

# The config fields a table line pools (the package's docstring says why): the seed; hidden_size, a
# group key of its own; device as asked for (auto...), where the row's device columns say the one
# used; warmup_steps and eval_batch_size, which change what is measured, never training or scores;
# and the watch fields, how a run was shown while it trained.
POOLED = ("seed", "hidden_size", "device", "warmup_steps", "eval_batch_size", *CONFIG_WATCH)


def config_rest(config_json: str) -> str:
    """The rest of a run's config, which tells experiments apart, as canonical JSON: every field but
    those POOLED, and none at its default (so that rows written before a field existed match rows
    that leave it at its default): `config_rest('{"seed": 3, "lr": 0.01}') == '{"lr": 0.01}'`."""
    config = {
        k: v
        for k, v in json.loads(config_json).items()
        if k not in CONFIG_DEFAULTS or CONFIG_DEFAULTS[k] != v
    }
    for key in POOLED:
        config.pop(key, None)
    return json.dumps(config, sort_keys=True)


def differing_config(config: dict) -> dict:
    """A run's config as the page lists it: the fields that differ from their defaults, less the
    seed and hidden size (columns of their own) and the watch fields (how the run was logged, not
    what it ran): `differing_config({"seed": 1, "lr": 0.01}) == {"lr": 0.01}` where 0.01 is not
    the default."""
    return {
        k: v
        for k, v in config.items()
        if k not in ("seed", "hidden_size", *CONFIG_WATCH) and CONFIG_DEFAULTS.get(k, object()) != v
    }


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The store's frame as tables and labels use it: TEXT columns as strings, num_threads as a
    whole number's text ('' if unknown), so that either can be a group key."""
    for column in TEXT:
        frame[column] = frame[column].astype(object).fillna("").astype(str)
    frame["num_threads"] = [str(int(t)) if pd.notna(t) else "" for t in frame["num_threads"]]
    return frame


def rows_frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    """Rows as a results file would give them (checked rows, as dicts of text), upgraded and
    typed."""
    return _typed(store.rows.frame(rows))


def read_results(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every run's latest row and every curve point of the results files in `folder`; malformed
    rows are skipped with a warning naming the file and the line."""
    try:
        rows, curves = store.read_all(folder)
    except store.ResultsMissing as error:
        raise ReportError(str(error)) from None
    return _typed(rows), curves
