"""A sweep: planning its runs, and running each exactly once whoever else uses the folder.

`plan` turns cell specs x hidden sizes x seeds into planned runs: everything that can be checked
before training is checked there (a bad sweep writes nothing), and values given twice are planned
once. `execute` runs planned runs in this process: each run is *claimed* before it trains
(claims.take), so a second command on the same folder, or a job of another node, never trains it
at the same time; runs claimed by others are left for later and waited on, with a message, until
their row appears or their claim goes stale (then this process takes them over).
"""

from __future__ import annotations

import abc
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rnnbench import checkpoints, claims, records
from rnnbench.config import RunConfig, check_budget_or_size, flag
from rnnbench.registry import Spec


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
    plugins: tuple[tuple[str, str], ...] = field(default=())  # (module, folder it was imported from)
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
        return self.results / "checkpoints" / f"{self.name}.pt"


def load_plugins(plugins: tuple[tuple[str, str], ...]) -> None:
    """Import the submitting process's plugin modules (module, folder), their folders placed
    after everything else on sys.path, so that they never shadow an installed package."""
    import importlib

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


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def once(values: list, what: str, log: Callable[[str], None]) -> list:
    """`values` without repeats (first occurrence kept), saying which were given twice."""
    unique = list(dict.fromkeys(values))
    if len(unique) < len(values):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        log(f"{what} {', '.join(repeated)} given more than once: planned once")
    return unique


def resolve_task(text: str, preset_name: str | None = None) -> Spec:
    """The task spec a sweep runs: `text` as typed (`copying:delay=200`), plus the option values
    the task declares for the preset (Task.presets: the quick preset's `data=sample` for MNIST)
    where the text does not set them. Unknown names and options are refused (RegistryError).

    >>> str(resolve_task("pmnist", "quick"))
    'pmnist:data=sample'
    """
    from rnnbench.registry import TASKS, format_value

    spec = TASKS.parse(text)
    implied = TASKS.get(spec.name).factory.presets.get(preset_name, {}) if preset_name else {}
    given = {part.partition("=")[0].strip() for part in text.split(":")[1:]}
    extra = "".join(f":{k}={format_value(v)}" for k, v in implied.items() if k not in given)
    if not extra:
        return spec
    spec = TASKS.parse(text + extra)
    try:
        TASKS.build(spec)  # (cheap: a task loads nothing before load())
    except ValueError as error:  # a value the user never typed: say where it came from
        raise ValueError(f"--task {text} with the {preset_name} preset, which adds {extra[1:].replace(':', ', ')}: "
                         f"{error}") from None
    return spec


def expand(config: RunConfig, grid: dict[str, list] | None, log: Callable[[str], None] = print) -> list[RunConfig]:
    """The configs of a grid: `config` with every combination of the listed values (the cross
    product, in the order given), each value once.

    >>> [c.lr for c in expand(RunConfig(), {"lr": [1e-3, 1e-4]}, log=print)]
    [0.001, 0.0001]
    """
    combos: list[dict[str, Any]] = [{}]
    for name, values in (grid or {}).items():
        values = once(list(values), flag(name), log)
        combos = [{**combo, name: value} for combo in combos for value in values]
    return [config.replace(**combo) for combo in combos]


@dataclass
class Sweep:
    """What every run of a sweep shares: the task, its data (by seed) and where rows go. `runs`
    turns (cell spec, config) pairs into planned runs; `plan` and the tuner (tune.py) use it."""

    task: Any
    task_spec: Spec
    splits: dict[int, Any]
    results: Path
    threads: int
    device: Any
    data_folder: Path | None = None
    keep_checkpoints: bool = False
    plugins: tuple[tuple[str, str], ...] = ()
    linear: dict[int, float | None] = field(default_factory=dict)

    def runs(self, entries: list[tuple[Spec, RunConfig, dict[str, Any]]], force: bool = False,
             log: Callable[[str], None] = print) -> list[PlannedRun]:
        """A planned run per (cell spec, run config with its seed and hidden size, extra fields of
        PlannedRun such as phase and study); a run given twice is planned once."""
        import json

        from rnnbench.registry import CELLS

        done = records.done_run_ids(records.read_rows(self.results, self.task.name)) if force else {}
        task_json = json.dumps(self.task.metadata(), sort_keys=True)
        runs: dict[str, PlannedRun] = {}
        for spec, run_config, extra in entries:
            version = CELLS.get(spec.name).version
            study = {k: extra[k] for k in ("phase", "study") if extra.get(k)}  # (absent: the keys of plain runs stay)
            identity = {"task": self.task.name, "task_spec": str(self.task_spec), "task_version": self.task.version,
                        "cell_spec": str(spec), "config": run_config.identity(),
                        "data": self.splits[run_config.seed].identity, "device": self.device.type,
                        **({"threads": self.threads} if self.device.type == "cpu" else {}),
                        # (version 1 left out, so that the keys of rows written before versions stay)
                        **({"cell_version": version} if version != 1 else {}), **study}
            key = records.run_key(identity)
            run = PlannedRun(self.task.name, str(self.task_spec), str(spec), run_config, key, self.results,
                             self.threads, task_version=self.task.version, task_json=task_json, cell_version=version,
                             cell_options=json.dumps(dict(spec.options), sort_keys=True),
                             data_folder=self.data_folder, keep_checkpoints=self.keep_checkpoints,
                             superseded=frozenset(done.get(key, ())), plugins=self.plugins,
                             linear_acc=self.linear.get(run_config.seed), **extra)
            if key in runs:  # (two specs that mean the same cell, e.g. eurnn and eurnn:capacity=2)
                log(f"{run.describe()} is the same run as {runs[key].describe()}: planned once")
                continue
            runs[key] = run
        return list(runs.values())


def prepare(task_name: str | Spec, seeds: list[int], config: RunConfig, results: Path,
            data_folder: Path | None = None, keep_checkpoints: bool = False, log: Callable[[str], None] = print,
            plugins: tuple[tuple[str, str], ...] = (), threads: int | None = None,
            sized: list[tuple[Spec, RunConfig]] | None = None, runs_at_once: int = 1) -> Sweep:
    """Check the task and seeds, check that the runs `sized` ((cell spec, config with its hidden
    size) pairs) fit this machine's memory before anything is loaded, then load the data of each
    seed and compute the task's linear baseline: everything the runs of a sweep share."""
    from rnnbench.registry import TASKS
    from rnnbench.resources import check_memory
    from rnnbench.runner import resolve_device
    from rnnbench.task import check_task

    threads = threads or torch_threads()
    task_spec = TASKS.parse(task_name)  # a name with options: copying:delay=200 (parsed once)
    task = TASKS.build(task_spec)
    check_task(task)
    device = resolve_device(config.device)
    if not seeds:
        raise ValueError("no seeds given")
    for seed in seeds:
        config.replace(seed=seed).validate()
    if config.tensorboard:  # (refused before anything runs: not installed, or RESULTS/tb cannot be made)
        from rnnbench.monitor import check_tensorboard

        check_tensorboard()
        (results / "tb").mkdir(parents=True, exist_ok=True)
    records.read_rows(results, task.name)  # a foreign or unreadable file stops the sweep here
    if runs_at_once:  # (0: the runs go to other machines, a SLURM cluster's nodes: not measured here)
        by_config: dict[RunConfig, list[tuple[Spec, int]]] = {}
        for spec, sized_config in sized or []:
            by_config.setdefault(sized_config.replace(hidden_size=1), []).append((spec, sized_config.hidden_size))
        for shared, cells in by_config.items():
            check_memory(task, str(task_spec), cells, shared, device, len(seeds), runs_at_once)
    # Tasks that generate their data from the run's seed (copying, adding) load it per seed.
    if task.data_per_seed:
        splits = {seed: task.load(config.replace(seed=seed), data_folder) for seed in seeds}
    else:
        shared_data = task.load(config, data_folder)
        splits = {seed: shared_data for seed in seeds}
    n_train = len(splits[seeds[0]].train)
    for _, sized_config in sized or [(None, config)]:
        if sized_config.batch_size > n_train:
            raise ValueError(f"--batch-size {sized_config.batch_size} is larger than the training set "
                             f"({n_train} examples)")
    sweep = Sweep(task, task_spec, splits, results, threads, device, data_folder, keep_checkpoints, plugins,
                  _linear_baselines(task, splits, log))
    _keep_task_card(results, task, str(task_spec), log)
    return sweep


def size_cells(task: Any, specs: list[Spec], configs: list[RunConfig],
               log: Callable[[str], None] = print) -> list[tuple[Spec, RunConfig]]:
    """(cell spec, config with its hidden size) for each cell and config: config.hidden_size, or
    with config.params_budget the largest size within that many parameters. An impossible cell
    (odd N for EURNN...) fails here, counted without allocating anything."""
    from rnnbench.sizing import check_size, match_hidden_size

    sized = []
    for spec in specs:
        for config in configs:
            if config.params_budget:
                size, params = match_hidden_size(task, spec, config.params_budget)
                log(f"{spec}: hidden size {size} ({params} parameters) for --params {config.params_budget}")
                config = config.replace(hidden_size=size)
            else:
                check_size(task, spec, config.hidden_size)
            sized.append((spec, config))
    return sized


def plan(task_name: str | Spec, specs: list[Spec], seeds: list[int], config: RunConfig, results: Path,
         data_folder: Path | None = None, force: bool = False, keep_checkpoints: bool = False,
         log: Callable[[str], None] = print, grid: dict[str, list] | None = None,
         plugins: tuple[tuple[str, str], ...] = (), threads: int | None = None,
         runs_at_once: int = 1) -> tuple[list[PlannedRun], dict[int, Any]]:
    """The runs of a sweep, and the data loaded for them (by seed): every cell of `specs`, with
    every combination of the `grid` values (RunConfig field -> values: `{"lr": [1e-3, 1e-4],
    "hidden_size": [64, 128]}`), for every seed.

    Each run's memory is estimated first, and a sweep that cannot fit this machine (`runs_at_once`
    sharing it; 0 for runs that go elsewhere) is refused with the estimate, before anything is
    loaded or allocated.
    `threads` is the number of torch CPU threads each run will use (default: this process's).
    On CPU it goes into the run key: torch's own matrix products sum in an order that depends
    on it, so the same run with 1 and 2 threads ends with (slightly) different numbers, and its
    times differ anyway. (The fused EURNN kernel is thread-count independent; nn.LSTM is not.)

    With config.params_budget (or a grid of budgets), each cell gets the largest hidden size
    within that many parameters. Everything that can be checked before training is checked here
    (ValueError), so that a bad sweep writes nothing. Runs that already have an `ok` row stay in
    the plan: execute skips them (and removes their leftover checkpoints), unless `force`.
    """
    from rnnbench.registry import TASKS

    grid = dict(grid or {})
    check_budget_or_size([config.params_budget, *grid.get("params_budget", [])], grid.get("hidden_size", []))
    configs = expand(config, grid, log)
    for each in configs:
        each.validate()
    seeds = once(seeds, "seed", log)
    specs = once(specs, "cell", log)
    task = TASKS.build(task_name)
    sized = size_cells(task, specs, configs, log)
    sweep = prepare(task_name, seeds, config, results, data_folder, keep_checkpoints, log, plugins, threads,
                    sized, runs_at_once)
    entries = [(spec, sized_config.replace(seed=seed), {}) for spec, sized_config in sized for seed in seeds]
    return sweep.runs(entries, force, log), sweep.splits


def _keep_task_card(results: Path, task: Any, task_spec: str, log: Callable[[str], None]) -> None:
    """The task's input example and citation, for the report (records.write_task_card)."""
    import numpy as np

    example = task.example()
    card = {"metadata": task.metadata(), "citation": task.citation,
            "example": {str(k): np.round(np.asarray(v, dtype=float), 4).tolist() for k, v in (example or {}).items()}}
    try:
        records.write_task_card(results, task_spec, task.version, card)
    except OSError as error:  # (only the report's input figure would miss it)
        log(f"warning: could not keep the task's card in {results / 'tasks'}: {error}")


def _linear_baselines(task: Any, splits: dict[int, Any], log: Callable[[str], None]) -> dict[int, float | None]:
    """The task's linear baseline on each seed's data (computed once per distinct data)."""
    from rnnbench import baselines

    if not baselines.applies(task):
        return {seed: None for seed in splits}
    by_data: dict[int, float | None] = {}
    for data in {id(s): s for s in splits.values()}.values():
        by_data[id(data)] = baselines.linear_accuracy(task, data, log=log)
        log(f"linear baseline on this data: test {task.score_name} {by_data[id(data)]:.4f}")
    return {seed: by_data[id(s)] for seed, s in splits.items()}


def finished(run: PlannedRun, rows: Any) -> dict[str, Any] | None:
    """The run's latest row that finishes it (records.DONE: ok, diverged, or pruned by a study),
    unless it is one that --force supersedes."""
    mine = rows[(rows["run_key"] == run.key) & rows["status"].isin(records.DONE) & ~rows["run_id"].isin(run.superseded)]
    return mine.iloc[-1].to_dict() if len(mine) else None


def _tidy_checkpoints(run: PlannedRun, rows: Any, log: Callable[[str], None]) -> None:
    """With the run's claim held: remove what no writer will use any more, that is temporary files
    of writers that died, and a checkpoint whose run already has its row (a kill between the row
    and the removal, or --keep-checkpoints before --force)."""
    for temporary in run.checkpoint.parent.glob(f"{run.checkpoint.name}.*.tmp"):
        temporary.unlink(missing_ok=True)
    if not run.checkpoint.exists():
        return
    try:
        run_id = checkpoints.read(run.checkpoint)["progress"]["run_id"]
    except Exception:  # noqa: BLE001 - an unreadable checkpoint is the runner's to refuse, with a warning
        return
    done = rows[(rows["run_id"] == run_id) & rows["status"].isin(records.DONE)]
    if len(done) and not (run.keep_checkpoints and not run.superseded):
        run.checkpoint.unlink(missing_ok=True)
        log(f"removed {run.checkpoint}: its run {run_id} already has its row")


def execute(runs: list[PlannedRun], splits: dict[int, Any] | None = None, log: Callable[[str], None] = print,
            poll_s: float = 2.0, isolate: bool = True) -> list[dict[str, Any]]:
    """Run each planned run once, unless it is done or claimed by another; returns the row of
    every run (its latest ok row if it was done already), in plan order. With `isolate`, each run
    trains in a fresh child process (child.train), so that its memory and clocks are its own;
    else in this process."""
    from rnnbench import child
    from rnnbench.runner import run_planned

    rows_by_key: dict[str, dict[str, Any]] = {}
    pending, told = list(runs), set()
    # Rows that exist now. A row written later by the process this one waited for is that run's
    # outcome, whatever its status: a run that failed there is not tried again here at once.
    known = {task: set(records.read_rows(results, task)["run_id"]) for task, results in
             {(run.task, run.results) for run in runs}}
    while pending:
        progressed = False
        for run in list(pending):
            existing = records.read_rows(run.results, run.task)
            row = finished(run, existing)
            if row is None and run.key in told:
                theirs = existing[(existing["run_key"] == run.key) & ~existing["run_id"].isin(known[run.task])]
                row = theirs.iloc[-1].to_dict() if len(theirs) else None
            if row is None:
                claim = claims.take(run.results, run.name, log)
                if isinstance(claim, claims.Held):
                    if run.key not in told:
                        log(f"{run.describe()} is being trained by {claim.describe()}: waiting for its row")
                        told.add(run.key)
                    continue
                with claim:
                    existing = records.read_rows(run.results, run.task)  # (it may have finished meanwhile)
                    row = finished(run, existing)
                    _tidy_checkpoints(run, existing, log)
                    if row is None and isolate:
                        row = child.train(run, claim, splits[run.config.seed] if splits else None, log)
                    elif row is None:
                        row = run_planned(run, splits[run.config.seed] if splits else None, log, claim)
                    else:
                        log(f"{run.describe()}: finished by another process")
            elif run.key in told:
                log(f"{run.describe()}: ended in another process, {row['status']}")
            else:
                log(records.skip_message(run.describe(), row))
                if run.checkpoint.exists():
                    claim = claims.take(run.results, run.name, log)
                    if isinstance(claim, claims.Claim):
                        with claim:
                            _tidy_checkpoints(run, existing, log)
            rows_by_key[run.key] = row
            pending.remove(run)
            progressed = True
        if pending and not progressed:
            sys.stderr.flush()
            time.sleep(poll_s)
    return [rows_by_key[run.key] for run in runs]


class Executor(abc.ABC):
    """Where the planned runs of a sweep train: `Inline` here (rnnbench.executors has `Local` and
    `Slurm`). The planner asks `threads` (torch threads per run, which a CPU run's key holds) and
    `runs_at_once` (runs sharing this machine, for the memory check; 0 for runs that go elsewhere)."""

    threads: int | None = None  # None: this process's
    runs_at_once: int = 1

    @abc.abstractmethod
    def run(self, runs: list[PlannedRun], splits: dict[int, Any], log: Callable[[str], None]) -> list[dict] | None:
        """Run (or submit) the runs; the rows of those that have one, or None when the runs were
        submitted and not waited for."""

    def complete(self, runs: list[PlannedRun], rows: list[dict]) -> bool:
        """Whether every run of the sweep ended with a row."""
        return len(rows) == len(runs)


@dataclass
class Inline(Executor):
    """One run after another, each in a child process of its own (`isolate`), or in this one."""

    isolate: bool = True

    def run(self, runs: list[PlannedRun], splits: dict[int, Any], log: Callable[[str], None]) -> list[dict]:
        return execute(runs, splits, log, isolate=self.isolate)
