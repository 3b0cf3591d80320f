"""Where everything lives in a results folder: the one place that builds a path under RESULTS.

    RESULTS/
      TASK.csv, TASK-curves.csv   one row per run, one row per curve point (csvfile, rows)
      .TASK.lock, .TASK.lock.owner  the short lock of an append to them (claims.folder_lock)
      tasks/NAME-HASH.json        a task's card, per task spec and version (cards)
      cells/NAME-HASH.json        a cell's card, per cell name and version (cards)
      claims/TASK-KEY.claim       who trains a run now (claims.take), and claims/.claims.lock
      checkpoints/TASK-KEY.pt     a run's checkpoint, written at every evaluation
      tb/RUN_ID/                  TensorBoard event files of a run (--tensorboard)
      sweeps/ID.json              a submitted sweep: its jobs and their run keys (rnnbench status)
      sweeps/NAME.toml            a sweep's or study's resolved config (--config reads it back)
      studies/NAME.journal        a study's Optuna journal (rnnbench tune)
      logs-USER/JOBID/            submitit's job files and logs, private to the user
      report/                     rnnbench report's default output folder

Every other module asks these functions for a path and never joins one itself (a test greps the
tree for it), so the layout can be read, and changed, here alone.
"""

from __future__ import annotations

import getpass
import hashlib
from pathlib import Path


def rows_csv(results: Path, task: str) -> Path:
    """`RESULTS/TASK.csv`: the task's rows, one per run."""
    return results / f"{task}.csv"


def curves_csv(results: Path, task: str) -> Path:
    """`RESULTS/TASK-curves.csv`: the curve points of the task's runs, keyed by run_id."""
    return results / f"{task}-curves.csv"


def is_curves_csv(path: Path) -> bool:
    return path.name.endswith("-curves.csv")


def csv_files(results: Path) -> list[Path]:
    """Every results and curves file of the folder, sorted by name."""
    return sorted(results.glob("*.csv"))


def append_lock(results: Path, task: str) -> Path:
    """The lock held while appending to a task's files."""
    return results / f".{task}.lock"


def _card(results: Path, folder: str, spec: str, version: int) -> Path:
    digest = hashlib.sha256(f"{spec}\0{version}".encode()).hexdigest()[:10]
    return results / folder / f"{spec.split(':')[0]}-{digest}.json"


def task_card(results: Path, task_spec: str, version: int) -> Path:
    """`RESULTS/tasks/NAME-HASH.json`: one per task spec and version."""
    return _card(results, "tasks", task_spec, version)


def task_cards(results: Path) -> list[Path]:
    return sorted((results / "tasks").glob("*.json"))


def cell_card(results: Path, cell: str, version: int) -> Path:
    """`RESULTS/cells/NAME-HASH.json`: one per cell name and version."""
    return _card(results, "cells", cell, version)


def cell_cards(results: Path) -> list[Path]:
    return sorted((results / "cells").glob("*.json"))


def claims_folder(results: Path) -> Path:
    return results / "claims"


def claim(results: Path, name: str) -> Path:
    """`RESULTS/claims/TASK-KEY.claim`: the claim on the run `name`."""
    return claims_folder(results) / f"{name}.claim"


def checkpoint(results: Path, name: str) -> Path:
    """`RESULTS/checkpoints/TASK-KEY.pt`: the run `name`'s checkpoint."""
    return results / "checkpoints" / f"{name}.pt"


def tensorboard(results: Path) -> Path:
    """`RESULTS/tb`: a folder of event files per run id."""
    return results / "tb"


def sweeps_folder(results: Path) -> Path:
    return results / "sweeps"


def sweep_record(results: Path, sweep_id: str) -> Path:
    """`RESULTS/sweeps/ID.json`: a submitted sweep's jobs."""
    return sweeps_folder(results) / f"{sweep_id}.json"


def sweep_records(results: Path) -> list[Path]:
    """Every recorded sweep, oldest first (by modification time)."""
    return sorted(sweeps_folder(results).glob("*.json"), key=lambda p: p.stat().st_mtime)


def results_of_record(record: Path) -> Path:
    """The results folder that holds a sweep record."""
    return record.parent.parent


def sweep_config(results: Path, name: str) -> Path:
    """`RESULTS/sweeps/NAME.toml`: a sweep's or study's resolved config."""
    return sweeps_folder(results) / f"{name}.toml"


def journal(results: Path, study: str) -> Path:
    """`RESULTS/studies/NAME.journal`: a study's Optuna journal."""
    return results / "studies" / f"{study}.journal"


def job_folder(results: Path, user: str | None = None) -> Path:
    """`RESULTS/logs-USER`: submitit's job files (pickles) and logs, private to the user."""
    return results / f"logs-{user or getpass.getuser()}"


def report_folder(results: Path) -> Path:
    """`RESULTS/report`: where `rnnbench report` writes by default."""
    return results / "report"
