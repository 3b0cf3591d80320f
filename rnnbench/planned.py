"""What a planned run is: everything a process (this one, a child, a SLURM job on another node)
needs to train one run and append its row. Planning (sweep.py, tune.py) makes them; execution
(executors.py, child.py) and training (runner.py) take them; this module sits below all three.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.config import RunConfig
from rnnbench.store import layout

if TYPE_CHECKING:
    from rnnbench.task import Splits

# What a sweep loads once and its runs share: each seed's data (tasks that generate their data from
# the seed have one Splits per seed; the others share one). Training takes one Splits, a run's.
DataBySeed = dict[int, "Splits"]


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep, as it is handed to an executor: everything a process (here, or a
    SLURM job on another node) needs to train it and append its row."""

    task: str  # the task's name, which names its results file
    task_spec: str
    cell_spec: str
    config: RunConfig  # with the run's seed and hidden size
    key: str  # the run_key of its row
    results: Path
    threads: int  # torch's CPU threads, which change a CPU run's numbers (its key says so)
    task_version: int
    task_json: str  # what the row records about the task (Task.metadata), as JSON
    cell_version: int
    cell_options: str  # every option of the cell, resolved, as JSON
    data_folder: Path | None = None
    keep_checkpoints: bool = False
    # --force: rows of this key that existed when the sweep was planned do not count as done.
    superseded: frozenset[str] = frozenset()  # their run_ids
    plugins: tuple[tuple[str, str], ...] = field(
        default=()
    )  # (module, folder it was imported from)
    linear_acc: float | None = None  # the task's linear baseline on this run's data (baselines.py)
    # A study's runs (tune.py): its phase (tune or final), name and trial, the searched values
    # (JSON) and the study as it applies to this cell (JSON); `pruning` lets the run report its
    # validation curve to the study's pruner (tune.Pruning).
    phase: str = ""
    study: str = ""
    trial: int | None = None
    tuned_json: str = ""
    study_json: str = ""
    pruning: Any = None

    def describe(self) -> str:
        return f"{self.cell_spec} N={self.config.hidden_size} seed {self.config.seed}"

    @property
    def name(self) -> str:
        return f"{self.task}-{self.key}"

    @property
    def checkpoint(self) -> Path:
        return layout.checkpoint(self.results, self.name)


def load_plugins(plugins: tuple[tuple[str, str], ...]) -> None:
    """Import the submitting process's plugin modules (module, folder), their folders placed
    after everything else on sys.path, so that they never shadow an installed package."""
    for module, folder in plugins:
        if folder and folder not in sys.path:
            sys.path.append(folder)
        importlib.import_module(module)


def plugin_origins(modules: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(module, the sys.path folder it was imported from) for each plugin module already imported
    here: what a job on another process or node needs to import the same ones."""
    origins = []
    for name in modules:
        module = sys.modules[name]
        where = Path(getattr(module, "__file__", None) or "").resolve()
        depth = name.count(".") + (1 if where.name == "__init__.py" else 0)
        folder = where.parents[depth] if where.name else None
        origins.append((name, str(folder) if folder else ""))
    return tuple(origins)
