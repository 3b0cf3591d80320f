"""A sweep, planned: cell specs x hidden sizes (or parameter budgets) x config grid x seeds,
de-duplicated, each a PlannedRun with its run key.

`plan` turns what a command asks for into planned runs: everything that can be checked before
training is checked there (a bad sweep writes nothing: unknown names, sizes a cell cannot take,
runs that cannot fit this machine's memory), and values given twice are planned once. `prepare`
loads what the runs of a sweep share (the task, its data per seed, its linear baseline). Where the
runs then train is the executors' concern (executors.py); planning imports nothing of execution
or training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench import store
from rnnbench.config import RunConfig, check_budget_or_size, flag
from rnnbench.planned import DataBySeed, PlannedRun
from rnnbench.registry import Spec
from rnnbench.store import layout

log = logging.getLogger(__name__)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def once(values: list, what: str) -> list:
    """`values` without repeats (first occurrence kept), saying which were given twice."""
    unique = list(dict.fromkeys(values))
    if len(unique) < len(values):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        log.info(f"{what} {', '.join(repeated)} given more than once: planned once")
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
        raise ValueError(
            f"--task {text} with the {preset_name} preset, which adds "
            f"{extra[1:].replace(':', ', ')}: {error}"
        ) from None
    return spec


def expand(config: RunConfig, grid: dict[str, list] | None) -> list[RunConfig]:
    """The configs of a grid: `config` with every combination of the listed values (the cross
    product, in the order given), each value once.

    >>> [c.lr for c in expand(RunConfig(), {"lr": [1e-3, 1e-4]})]
    [0.001, 0.0001]
    """
    combos: list[dict[str, Any]] = [{}]
    for name, values in (grid or {}).items():
        values = once(list(values), flag(name))
        combos = [{**combo, name: value} for combo in combos for value in values]
    return [config.replace(**combo) for combo in combos]


@dataclass
class Sweep:
    """What every run of a sweep shares: the task, its data (by seed) and where rows go. `runs`
    turns (cell spec, config) pairs into planned runs; `plan` and the tuner (tune.py) use it."""

    task: Any
    task_spec: Spec
    data: DataBySeed
    results: Path
    threads: int
    device: Any
    data_folder: Path | None = None
    keep_checkpoints: bool = False
    plugins: tuple[tuple[str, str], ...] = ()
    linear: dict[int, float | None] = field(default_factory=dict)

    def runs(
        self, entries: list[tuple[Spec, RunConfig, dict[str, Any]]], force: bool = False
    ) -> list[PlannedRun]:
        """A planned run per (cell spec, run config with its seed and hidden size, extra fields of
        PlannedRun such as phase and study); a run given twice is planned once."""
        import json

        from rnnbench.registry import CELLS

        done = store.done_run_ids(store.read_rows(self.results, self.task.name)) if force else {}
        task_json = json.dumps(self.task.metadata(), sort_keys=True)
        runs: dict[str, PlannedRun] = {}
        for spec, run_config, extra in entries:
            version = CELLS.get(spec.name).version
            study = {
                k: extra[k] for k in ("phase", "study") if extra.get(k)
            }  # (absent: the keys of plain runs stay)
            identity = {
                "task": self.task.name,
                "task_spec": str(self.task_spec),
                "task_version": self.task.version,
                "cell_spec": str(spec),
                "config": run_config.identity(),
                "data": self.data[run_config.seed].identity,
                "device": self.device.type,
                **({"threads": self.threads} if self.device.type == "cpu" else {}),
                # (version 1 left out, so that the keys of rows written before versions stay)
                **({"cell_version": version} if version != 1 else {}),
                **study,
            }
            key = store.run_key(identity)
            run = PlannedRun(
                self.task.name,
                str(self.task_spec),
                str(spec),
                run_config,
                key,
                self.results,
                self.threads,
                task_version=self.task.version,
                task_json=task_json,
                cell_version=version,
                cell_options=json.dumps(dict(spec.options), sort_keys=True),
                data_folder=self.data_folder,
                keep_checkpoints=self.keep_checkpoints,
                superseded=frozenset(done.get(key, ())),
                plugins=self.plugins,
                linear_acc=self.linear.get(run_config.seed),
                **extra,
            )
            if key in runs:  # (two specs that mean the same cell, e.g. eurnn and eurnn:capacity=2)
                log.info(
                    f"{run.describe()} is the same run as {runs[key].describe()}: planned once"
                )
                continue
            runs[key] = run
        return list(runs.values())


def prepare(
    task_name: str | Spec,
    seeds: list[int],
    config: RunConfig,
    results: Path,
    data_folder: Path | None = None,
    keep_checkpoints: bool = False,
    plugins: tuple[tuple[str, str], ...] = (),
    threads: int | None = None,
    sized: list[tuple[Spec, RunConfig]] | None = None,
    runs_at_once: int = 1,
) -> Sweep:
    """Check the task and seeds, check that the runs `sized` ((cell spec, config with its hidden
    size) pairs) fit this machine's memory before anything is loaded, then load the data of each
    seed and compute the task's linear baseline: everything the runs of a sweep share."""
    from rnnbench.measure import check_tensorboard, resolve_device
    from rnnbench.registry import TASKS
    from rnnbench.resources import check_memory
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
    if (
        config.tensorboard
    ):  # (refused before anything runs: not installed, or RESULTS/tb cannot be made)
        check_tensorboard()
        layout.tensorboard(results).mkdir(parents=True, exist_ok=True)
    store.read_rows(results, task.name)  # a foreign or unreadable file stops the sweep here
    if (
        runs_at_once
    ):  # (0: the runs go to other machines, a SLURM cluster's nodes: not measured here)
        by_config: dict[RunConfig, list[tuple[Spec, int]]] = {}
        for spec, sized_config in sized or []:
            by_config.setdefault(sized_config.replace(hidden_size=1), []).append(
                (spec, sized_config.hidden_size)
            )
        for shared, cells in by_config.items():
            check_memory(task, str(task_spec), cells, shared, device, len(seeds), runs_at_once)
    # Tasks that generate their data from the run's seed (copying, adding) load it per seed.
    if task.data_per_seed:
        data = {seed: task.load(config.replace(seed=seed), data_folder) for seed in seeds}
    else:
        shared_data = task.load(config, data_folder)
        data = {seed: shared_data for seed in seeds}
    n_train = len(data[seeds[0]].train)
    for _, sized_config in sized or [(None, config)]:
        if sized_config.batch_size > n_train:
            raise ValueError(
                f"--batch-size {sized_config.batch_size} is larger than the training set "
                f"({n_train} examples)"
            )
    sweep = Sweep(
        task,
        task_spec,
        data,
        results,
        threads,
        device,
        data_folder,
        keep_checkpoints,
        plugins,
        _linear_baselines(task, data),
    )
    _keep_cards(results, task, str(task_spec), [spec for spec, _ in sized or []])
    return sweep


def size_cells(
    task: Any, specs: list[Spec], configs: list[RunConfig], quiet: bool = False
) -> list[tuple[Spec, RunConfig]]:
    """(cell spec, config with its hidden size) for each cell and config: config.hidden_size, or
    with config.params_budget the largest size within that many parameters, said in a line (at
    DEBUG level if `quiet`). An impossible cell (odd N for EURNN...) fails here, counted without
    allocating anything."""
    from rnnbench.sizing import check_size, match_hidden_size

    sized = []
    for spec in specs:
        for config in configs:
            if config.params_budget:
                size, params = match_hidden_size(task, spec, config.params_budget)
                log.log(
                    logging.DEBUG if quiet else logging.INFO,
                    f"{spec}: hidden size {size} ({params} parameters) "
                    f"for --params {config.params_budget}",
                )
                config = config.replace(hidden_size=size)
            else:
                check_size(task, spec, config.hidden_size)
            sized.append((spec, config))
    return sized


def plan(
    task_name: str | Spec,
    specs: list[Spec],
    seeds: list[int],
    config: RunConfig,
    results: Path,
    data_folder: Path | None = None,
    force: bool = False,
    keep_checkpoints: bool = False,
    grid: dict[str, list] | None = None,
    plugins: tuple[tuple[str, str], ...] = (),
    threads: int | None = None,
    runs_at_once: int = 1,
) -> tuple[list[PlannedRun], dict[int, Any]]:
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
    check_budget_or_size(
        [config.params_budget, *grid.get("params_budget", [])], grid.get("hidden_size", [])
    )
    configs = expand(config, grid)
    for each in configs:
        each.validate()
    seeds = once(seeds, "seed")
    specs = once(specs, "cell")
    task = TASKS.build(task_name)
    sized = size_cells(task, specs, configs)
    sweep = prepare(
        task_name,
        seeds,
        config,
        results,
        data_folder,
        keep_checkpoints,
        plugins,
        threads,
        sized,
        runs_at_once,
    )
    entries = [
        (spec, sized_config.replace(seed=seed), {})
        for spec, sized_config in sized
        for seed in seeds
    ]
    return sweep.runs(entries, force), sweep.data


def _keep_cards(results: Path, task: Any, task_spec: str, cells: list[Spec]) -> None:
    """The task's input example and citation, and each cell's citation and version, for the report
    and `rnnbench cite` (store.write_task_card, store.write_cell_card: no registry needed there)."""
    import numpy as np

    from rnnbench import cell

    example = task.example()
    card = {
        "metadata": task.metadata(),
        "citation": task.citation,
        "example": {
            str(k): np.round(np.asarray(v, dtype=float), 4).tolist()
            for k, v in (example or {}).items()
        },
    }
    try:
        store.write_task_card(results, task_spec, task.version, card)
        for spec in cells:
            store.write_cell_card(results, cell.card(spec))
    except OSError as error:  # (only the report's input figure and citations would miss them)
        log.warning(f"could not keep the task's and cells' cards in {results}: {error}")


def _linear_baselines(task: Any, data: DataBySeed) -> dict[int, float | None]:
    """The task's linear baseline on each seed's data (computed once per distinct data)."""
    from rnnbench import baselines

    if not baselines.applies(task):
        return {seed: None for seed in data}
    by_data: dict[int, float | None] = {}
    for splits in {id(s): s for s in data.values()}.values():
        by_data[id(splits)] = baselines.linear_accuracy(task, splits)
        log.info(f"linear baseline on this data: test {task.score_name} {by_data[id(splits)]:.4f}")
    return {seed: by_data[id(s)] for seed, s in data.items()}
