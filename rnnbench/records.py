"""Result rows: the schema, the run key, and appending to the results files safely.

One CSV per task in the results folder (`{task}.csv`, one row per run) and a companion curves
file (`{task}-curves.csv`, one row per evaluation, keyed by `run_id`). Appends happen under a
file lock, so concurrent processes never interleave or lose rows; curves are written before
the run's row, which is the mark that a run finished.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
from filelock import FileLock

# Column groups in the order they appear in the CSV.
IDENTITY = ["run_id", "run_key", "task", "task_spec", "task_version", "cell", "cell_spec", "options", "seed"]
CONFIG = ["hidden_size", "params_budget", "target", "batch_size", "steps", "eval_every", "optimizer", "lr", "clip", "dtype",
          "data", "protocol", "sampling", "perm_sha256", "n_train", "n_valid", "n_test", "config_json"]
QUALITY = ["test_acc", "test_acc_final", "best_valid_acc", "best_valid_step", "test_loss", "baseline_loss",
           "final_train_loss", "steps_done"]
COST = ["params", "impl", "train_time_s", "step_time_ms", "step_time_iqr_ms", "warmup_time_s",
        "eval_time_s", "n_evals", "time_to_target_s", "peak_mem_mb", "mem_source"]
ENVIRONMENT = ["device", "device_name", "torch_version", "cuda_version", "rnnbench_version",
               "git_commit", "hostname", "timestamp"]
STATUS = ["status", "error"]
COLUMNS = IDENTITY + CONFIG + QUALITY + COST + ENVIRONMENT + STATUS
CURVE_COLUMNS = ["run_id", "step", "wall_time_s", "split", "loss", "acc"]
STATUSES = ("ok", "diverged", "failed")


def run_key(fields: dict[str, Any]) -> str:
    """A short hash of everything that defines a run (task and version, canonical cell spec,
    config, data identity, device); equal keys mean the same experiment."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def results_path(results: Path, task: str) -> Path:
    return results / f"{task}.csv"


def curves_path(results: Path, task: str) -> Path:
    return results / f"{task}-curves.csv"


def _lock(results: Path, task: str) -> FileLock:
    return FileLock(str(results / f".{task}.lock"))


def _encode(header: list[str], rows: Iterable[dict[str, Any]], with_header: bool) -> bytes:
    """Rows as CSV bytes, one line each: line breaks inside values become spaces, so that the
    last line break of a file always ends a whole row (see _set_aside_torn_tail)."""
    def one_line(value: Any) -> Any:
        return " ".join(value.splitlines()) if isinstance(value, str) else value

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="ignore", restval="")
    if with_header:
        writer.writeheader()
    writer.writerows({k: one_line(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue().encode()


def _complete_part(data: bytes) -> bytes:
    """The file's bytes up to its last line break: every whole row. A tail after it is what
    was left by a writer killed mid-row (or a disk that filled up)."""
    return data[: data.rfind(b"\n") + 1]


def _set_aside_torn_tail(path: Path) -> None:
    """Move a torn last row out of the file, into `{file}.torn`, with a warning; the bytes are
    kept for inspection, the run it belonged to has no row and will be run again."""
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":  # the common case: the last row is whole
            return
        f.seek(0)
        data = f.read()
    whole = _complete_part(data)
    if len(whole) == len(data):
        return
    aside = path.with_name(path.name + ".torn")
    with open(aside, "ab") as f:
        f.write(data[len(whole):] + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.truncate(path, len(whole))
    warnings.warn(f"{path} ended in a torn row ({len(data) - len(whole)} bytes, from a writer that was killed or ran "
                  f"out of disk); moved it to {aside}. Its run has no row and will run again.")


def _append(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    """Append rows in one write; a file whose header lacks some of `columns` (an older version
    wrote it) is first rewritten with the union of both headers, so that nothing is lost. If
    the write fails (disk full...), the file is cut back to its size before, and the error
    raised: earlier rows are never touched."""
    header = columns
    if path.exists() and path.stat().st_size > 0:
        _set_aside_torn_tail(path)
        with open(path, newline="") as f:
            header = next(csv.reader(f), columns)
        missing = [c for c in columns if c not in header]
        if missing:
            old = pd.read_csv(path, dtype=str, keep_default_na=False)
            header = header + missing
            handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            os.close(handle)
            old.reindex(columns=header, fill_value="").to_csv(temporary, index=False)
            os.replace(temporary, path)
    new = not path.exists() or path.stat().st_size == 0
    data = _encode(header, rows, with_header=new)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        except OSError as error:
            if stat.S_ISREG(os.fstat(fd).st_mode):  # (not /dev/full, say, which cannot be cut)
                os.ftruncate(fd, size)
            raise OSError(error.errno, f"could not append to {path} ({error.strerror or error}); "
                                       "the file is as it was before this run") from error
    finally:
        os.close(fd)


def append_run(results: Path, task: str, row: dict[str, Any], curves: list[dict[str, Any]]) -> None:
    """Append one run: its curves, then its row, under the task's lock."""
    results.mkdir(parents=True, exist_ok=True)
    with _lock(results, task):
        _append(curves_path(results, task), CURVE_COLUMNS, curves)
        _append(results_path(results, task), COLUMNS, [row])


def whole_rows(path: Path) -> bytes:
    """A results or curves file's bytes without a torn last row (ignored with a warning)."""
    data = path.read_bytes()
    whole = _complete_part(data)
    if len(whole) < len(data):
        warnings.warn(f"{path} ends in a torn row ({len(data) - len(whole)} bytes): ignored; the next append to the "
                      "file moves it aside")
    return whole


def read_rows(results: Path, task: str) -> pd.DataFrame:
    """All rows of a task (an empty frame with the columns if there are none)."""
    path = results_path(results, task)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=COLUMNS)
    return pd.read_csv(io.BytesIO(whole_rows(path)), dtype={"run_key": str, "run_id": str})


def finished_keys(results: Path, task: str) -> set[str]:
    """Run keys that already have an `ok` row."""
    rows = read_rows(results, task)
    return set(rows.loc[rows["status"] == "ok", "run_key"].astype(str))
