"""The row schema: the columns of a results and a curves file, which rows can be used, the run
key, and the upgrades that bring rows of older versions up to this one.

Every reader of rows goes through `upgrade` (rows.read_rows does it), so `run`, `tune`,
`status`, `cite` and `report` see old rows the same way: as this version would have written
them, as far as that can be known (asv's `update_to_N`, for rows).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

# Column groups in the order they appear in the CSV.
IDENTITY = [
    "run_id",
    "run_key",
    "task",
    "task_spec",
    "task_version",
    "cell",
    "cell_version",
    "cell_spec",
    "options",
    "seed",
    "phase",
    "study",
    "trial",
]
CONFIG = [
    "hidden_size",
    "params_budget",
    "target",
    "batch_size",
    "steps",
    "eval_every",
    "optimizer",
    "lr",
    "clip",
    "weight_decay",
    "lr_schedule",
    "lr_warmup_steps",
    "lr_decay_every",
    "lr_decay",
    "dtype",
    "sampling",
    "n_train",
    "n_valid",
    "n_test",
    "data_hash",
    "data_json",
    "task_json",
    "config_json",
    "tuned_json",
    "study_json",
]
QUALITY = [
    "test_acc",
    "test_acc_final",
    "best_valid_acc",
    "best_valid_step",
    "test_loss",
    "baseline_loss",
    "linear_acc",
    "final_train_loss",
    "steps_done",
]
COST = [
    "params",
    "impl",
    "build_time_s",
    "train_time_s",
    "step_time_ms",
    "step_time_iqr_ms",
    "warmup_time_s",
    "eval_time_s",
    "log_time_s",
    "n_evals",
    "time_to_target_s",
    "timing_note",
    "peak_mem_mb",
    "peak_reserved_mb",
    "mem_source",
]
ENVIRONMENT = [
    "device",
    "device_name",
    "num_threads",
    "torch_version",
    "cuda_version",
    "python_version",
    "numpy_version",
    "rnnbench_version",
    "git_commit",
    "hostname",
    "timestamp",
]
STATUS = ["status", "error"]
COLUMNS = IDENTITY + CONFIG + QUALITY + COST + ENVIRONMENT + STATUS
# Curve points: `train` every log_every steps (loss: the mean over those steps; grad_norm: the
# gradient norm before clipping of the last one), `valid` at each evaluation (with
# unitarity_error, ‖U^H U − I‖_F, for cells whose recurrent matrix is unitary or orthogonal).
CURVE_COLUMNS = [
    "run_id",
    "cell_spec",
    "hidden_size",
    "seed",
    "step",
    "wall_time_s",
    "split",
    "loss",
    "acc",
    "grad_norm",
    "unitarity_error",
]
STATUSES = ("ok", "diverged", "pruned", "failed")  # pruned: stopped early by a study's pruner
# A run with a row of these is over, never trained again unless forced: training is deterministic,
# so a diverged run diverges again (a failed one, which raised, may not fail again: it is retried).
DONE = ("ok", "diverged", "pruned")


def run_key(fields: dict[str, Any]) -> str:
    """A short hash of everything that defines a run (task and version, canonical cell spec,
    config, data identity, device); equal keys mean the same experiment."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# What a file must have to be read as rows or curves.
REQUIRED = {"rows": ["run_id", "run_key", "status"], "curves": ["run_id", "step", "split"]}
NUMERIC = [
    "seed",
    "trial",
    "hidden_size",
    "task_version",
    "params_budget",
    "target",
    "batch_size",
    "steps",
    "eval_every",
    "lr",
    "clip",
    "weight_decay",
    "lr_warmup_steps",
    "lr_decay_every",
    "lr_decay",
    "n_train",
    "n_valid",
    "n_test",
    "test_acc",
    "test_acc_final",
    "best_valid_acc",
    "best_valid_step",
    "test_loss",
    "baseline_loss",
    "linear_acc",
    "final_train_loss",
    "steps_done",
    "params",
    "build_time_s",
    "train_time_s",
    "step_time_ms",
    "step_time_iqr_ms",
    "warmup_time_s",
    "eval_time_s",
    "log_time_s",
    "n_evals",
    "time_to_target_s",
    "peak_mem_mb",
    "peak_reserved_mb",
    "num_threads",
]
CURVE_NUMERIC = [
    "hidden_size",
    "seed",
    "step",
    "wall_time_s",
    "loss",
    "acc",
    "grad_norm",
    "unitarity_error",
]


def _number(text: str, decimal_comma: bool) -> float:
    """A CSV field as a number (NaN if empty or not a number); '0,75' where the file uses a
    decimal comma."""
    text = text.strip()
    if decimal_comma and "," in text and "." not in text:
        text = text.replace(",", ".")
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


# The numbers a row is checked for (empty means missing, and is fine unless said otherwise).
CHECKED = [
    "seed",
    "trial",
    "hidden_size",
    "task_version",
    "n_test",
    "num_threads",
    "test_acc",
    "test_acc_final",
    "best_valid_acc",
    "test_loss",
    "baseline_loss",
    "params",
    "train_time_s",
    "step_time_ms",
    "step_time_iqr_ms",
    "peak_mem_mb",
    "time_to_target_s",
]
WHOLE_NUMBERS = ("seed", "trial", "hidden_size", "task_version", "n_test", "num_threads")
NOT_NEGATIVE = (
    "trial",
    "hidden_size",
    "n_test",
    "params",
    "train_time_s",
    "step_time_ms",
    "step_time_iqr_ms",
    "peak_mem_mb",
    "time_to_target_s",
)
# (all but config_json absent from rows before them; tuned_json and study_json only in a study's
# rows)
JSON_OBJECTS = ("config_json", "data_json", "task_json", "tuned_json", "study_json")


def _shown(value: Any, quoted: bool = True) -> str:
    """A value for a message: quoted if text, and short."""
    text = repr(value) if isinstance(value, str) and quoted else str(value)
    return text if len(text) <= 40 else text[:37] + "…"


def row_problem(row: dict[str, str], kind: str = "rows") -> str:
    """Why a row (or curve point) of a results file cannot be used, or ''. The one rule for `run`
    (which rows finish a run) and `report` (which rows it shows): every number must be a number,
    finite, whole where it counts, not negative where it measures; an ok row needs a score of at
    most 1; config_json (and data_json, task_json where present) must be JSON objects.

    >>> row_problem({"status": "lost"})
    "unknown status 'lost' (known: ok, diverged, pruned, failed)"
    """
    if kind == "curves":
        if not row.get("run_id"):
            return "no run_id"
        if row.get("split") not in ("train", "valid"):
            return f"split {_shown(row.get('split'))} is not train or valid"
        if not math.isfinite(_number(row.get("step", ""), True)):
            return f"step {_shown(row.get('step'))} is not a number"
        return ""
    status = row.get("status", "")
    if status not in STATUSES:
        return f"unknown status {_shown(status)} (known: {', '.join(STATUSES)})"
    if not row.get("run_key") or not row.get("run_id"):
        return "no run_key or run_id"
    values = {}
    for column in CHECKED:
        text = str(row.get(column) or "").strip()
        if not text:
            if column in ("seed", "hidden_size", "task_version"):
                return f"{column} '' is not a whole number"
            continue
        value = _number(text, True)
        if math.isnan(value) and text.lower() not in ("nan", "+nan", "-nan"):
            return f"{column} {_shown(text)} is not a number"
        if column in WHOLE_NUMBERS and not (math.isfinite(value) and value.is_integer()):
            return f"{column} {_shown(text)} is not a whole number"
        if math.isinf(value):
            return f"{column} {_shown(text, quoted=False)} is not a finite number"
        if column in NOT_NEGATIVE and value < 0:
            return f"{column} {_shown(text, quoted=False)} is negative"
        if column == "num_threads" and value < 1:
            return f"num_threads {text} is not a positive whole number"
        # (a NaN measurement is a missing one: the runner writes NaN it could not compute)
        values[column] = value
    score = values.get(
        "test_acc", math.nan
    )  # an accuracy, or a score such as R^2 that may be negative
    if status == "ok" and "test_acc" not in values:
        return f"test_acc {_shown(row.get('test_acc') or '')} is not a number"
    if status == "ok" and math.isnan(score):
        return "test_acc nan: an ok row needs a score"
    if score > 1:
        return f"test_acc {_shown(row['test_acc'], quoted=False)} is above 1"
    for column in JSON_OBJECTS:
        text = row.get(column) or ""
        if not text and column != "config_json":
            continue
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return f"{column} is not valid JSON"
        if not isinstance(value, dict):
            kinds = {
                list: "array",
                int: "number",
                float: "number",
                str: "string",
                bool: "boolean",
                type(None): "null",
            }
            return (
                f"{column} is a JSON {kinds.get(type(value), type(value).__name__)}, not an object"
            )
    return ""


def trial_state(statuses: list[str], scores: list[float]) -> str:
    """What a study's trial came to, from the rows of its seeds (their statuses, their validation
    scores): `complete` only if every run ended ok with a score; else `failed` (one raised),
    `diverged`, `pruned`. The tuner tells Optuna this, and the report chooses by the same rule.

    >>> trial_state(["ok", "diverged"], [0.7, 0.8])
    'diverged'
    """
    for state in ("failed", "diverged", "pruned"):
        if state in statuses:
            return state
    return "failed" if any(not math.isfinite(score) for score in scores) else "complete"


def data_json(identity: dict[str, Any]) -> str:
    """The canonical JSON of a data identity (what rows store)."""
    return json.dumps(identity, sort_keys=True, default=str)


def data_hash(identity: dict[str, Any]) -> str:
    """A short hash of a data identity: rows with equal hashes were trained on the same data."""
    return hashlib.sha256(data_json(identity).encode()).hexdigest()[:12]


# The upgrades. A row written by an older rnnbench lacks what later versions record; each step
# below fills in what the row itself still tells (and nothing it cannot), so that every reader sees
# it as this version would have written it. Each step is idempotent and leaves rows of this
# version as they are. (Rows carry no version number of their own: what a step upgrades is what
# the row lacks.)

# RunConfig's fields and their defaults, as this version writes them into config_json: what a value
# left out of a row's config was, and which values are unremarkable (the report lists what differs).
# rnnbench.config defines RunConfig; tests/test_store.py keeps the two equal, so that changing a
# default is a decision about the rows written before (an upgrade step below), never an accident.
CONFIG_DEFAULTS = {
    "hidden_size": 256,
    "batch_size": 100,
    "steps": 40000,
    "eval_every": 500,
    "eval_batch_size": 1000,
    "optimizer": "rmsprop",
    "lr": 0.0001,
    "clip": 0.0,
    "weight_decay": 0.0,
    "lr_schedule": "constant",
    "lr_warmup_steps": 0,
    "lr_decay_every": 0,
    "lr_decay": 0.1,
    "seed": 0,
    "device": "auto",
    "dtype": "float32",
    "sampling": "epochs",
    "warmup_steps": 3,
    "target": 0.0,
    "params_budget": 0,
    "log_every": 50,
    "tensorboard": False,
}
# The config fields that say how a run was watched (its logging), never what it ran: in no run key,
# never swept, pooled by the report (rnnbench.config.WATCH is this).
CONFIG_WATCH = ("log_every", "tensorboard")
# RunConfig fields that rows written by 0.1 lack; those rows ran with the value the field has by
# default (the behaviour before the field existed).
CONFIG_ADDED = {
    k: CONFIG_DEFAULTS[k]
    for k in (
        "weight_decay",
        "lr_schedule",
        "lr_warmup_steps",
        "lr_decay_every",
        "lr_decay",
        "log_every",
        "tensorboard",
    )
}
# Columns this version no longer writes, which held a run's data identity before data_json did:
# the data source, its split protocol and the pixel order's hash (pMNIST rows of version 0.1).
RETIRED_DATA_COLUMNS = ("data", "protocol", "perm_sha256")


def upgrade(row: dict[str, str]) -> dict[str, str]:
    """A checked row (row_problem passed), completed in place as this version would write it:
    `task_spec` (rows before task options: the task's name), `cell` (before it had a column: the
    spec's name), `num_threads` (before its column: from a CPU's device name, "... (2 threads)"),
    `data_json`/`data_hash` (before data identities: from the retired columns that held it), and
    config_json's fields added since (CONFIG_ADDED)."""
    if not row.get("task_spec"):
        row["task_spec"] = row.get("task", "")
    if not row.get("cell"):
        row["cell"] = str(row.get("cell_spec", "")).split(":")[0]
    if not str(row.get("num_threads") or "").strip():
        found = re.search(r"\((\d+) threads?\)\s*$", str(row.get("device_name") or ""))
        row["num_threads"] = found.group(1) if found else ""
    if not row.get("data_json"):
        identity = {c: row[c] for c in RETIRED_DATA_COLUMNS if row.get(c)}
        if identity:
            row["data_json"], row["data_hash"] = data_json(identity), data_hash(identity)
    config = row.get("config_json") or ""
    if config:
        value = json.loads(config)
        missing = {k: v for k, v in CONFIG_ADDED.items() if k not in value}
        if missing:
            row["config_json"] = json.dumps({**value, **missing}, sort_keys=True)
    return row
