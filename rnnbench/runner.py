"""The training loop: one (task, cell spec, config, seed) -> one result row and its curves.

The runner alone owns the loop, the clock, memory measurement, evaluation and checkpoints.
The clock reads only after the device is synchronised and is paused while evaluating and
checkpointing (reported apart, as `eval_time_s`); the first `warmup_steps` steps are timed
apart too (`warmup_time_s`) and left out of the per-step statistics. A checkpoint written at
every evaluation holds everything that defines the rest of the run (weights, optimizer, batch
order, best-so-far weights, curves), so a resumed run on CPU ends with the same metrics as an
uninterrupted one.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import random
import statistics
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from rnnbench import records
from rnnbench.config import RunConfig
from rnnbench.measure import environment, peak_memory_mb, reset_peak_memory, synchronize
from rnnbench.registry import Spec, build_cell
from rnnbench.sizing import match_hidden_size

CHECKPOINT_VERSION = 1


class SequenceClassifier(nn.Module):
    """A cell plus the readout the runner adds: Linear(cell.output_size, num_classes)."""

    def __init__(self, cell: nn.Module, num_classes: int, target: str):
        super().__init__()
        self.cell, self.target = cell, target
        self.readout = nn.Linear(cell.output_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cell(x)  # (B, T, output_size)
        return self.readout(y[:, -1] if self.target == "last" else y)


class Batches:
    """Indices of training batches: shuffled epochs (the last partial batch dropped) or draws
    with replacement, from a generator whose state goes into checkpoints."""

    def __init__(self, n: int, batch_size: int, sampling: str, seed: int):
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} is larger than the training set ({n} examples)")
        self.n, self.batch_size, self.sampling = n, batch_size, sampling
        self.generator = torch.Generator().manual_seed(seed)
        self.order, self.position = torch.empty(0, dtype=torch.int64), 0

    def next(self) -> torch.Tensor:
        if self.sampling == "replacement":
            return torch.randint(self.n, (self.batch_size,), generator=self.generator)
        if self.position + self.batch_size > len(self.order):
            self.order, self.position = torch.randperm(self.n, generator=self.generator), 0
        self.position += self.batch_size
        return self.order[self.position - self.batch_size : self.position]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "order": self.order, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.position = state["order"], state["position"]


@torch.no_grad()
def evaluate(model: nn.Module, task: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int,
             device: torch.device) -> dict[str, float]:
    """Loss and accuracy over a whole split, in batches, averaged by batch size."""
    model.eval()
    totals: dict[str, float] = {}
    for start in range(0, len(y), batch_size):
        xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
        for name, value in task.metrics(model(xb), yb).items():
            totals[name] = totals.get(name, 0.0) + value * len(yb)
    model.train()
    return {name: value / len(y) for name, value in totals.items()}


def _optimizer(config: RunConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    return torch.optim.RMSprop(params, lr=config.lr)


@dataclass
class Progress:
    """Everything a checkpoint restores besides weights, optimizer and batch order."""

    run_id: str
    step: int = 0
    curves: list[dict[str, Any]] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)  # seconds, after warm-up
    warmup_time: float = 0.0
    train_time: float = 0.0
    eval_time: float = 0.0
    n_evals: int = 0
    best_valid_acc: float = -math.inf  # a score such as R^2 can be below -1
    best_valid_step: int = -1
    last_train_loss: float = float("nan")
    time_to_target: float | None = None  # training time when validation accuracy first reached the target


CHECKPOINT_MAGIC = b"rnnbench checkpoint\n"


def _save_checkpoint(path: Path, progress: Progress, model, optimizer, batches, best_state) -> None:
    """Write the run's state as: a magic line, the SHA-256 of the payload, the payload
    (torch.save). Written to a temporary file, synced, then renamed over the previous one: a
    crash at any point leaves either the old checkpoint or the new one, never a mix."""
    state = {"version": CHECKPOINT_VERSION, "progress": progress.__dict__, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "batches": batches.state_dict(), "best_state": best_state,
             "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as f:
        f.write(CHECKPOINT_MAGIC + hashlib.sha256(payload).digest() + payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The state in a checkpoint file, after checking its checksum; loaded with
    weights_only=True, so a file crafted to run code is refused, never executed."""
    data = path.read_bytes()
    head = len(CHECKPOINT_MAGIC)
    if not data.startswith(CHECKPOINT_MAGIC):
        raise ValueError("not an rnnbench checkpoint (no magic line)")
    digest, payload = data[head : head + 32], data[head + 32 :]
    if hashlib.sha256(payload).digest() != digest:
        raise ValueError("checksum mismatch: the file is truncated or corrupt")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def _load_checkpoint(path: Path, model, optimizer, batches) -> tuple[Progress, dict] | None:
    """Restore a run from `path`; None (with a warning) if it is unreadable."""
    try:
        state = read_checkpoint(path)
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {state.get('version')}, expected {CHECKPOINT_VERSION}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        batches.load_state_dict(state["batches"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return Progress(**state["progress"]), state["best_state"]
    except Exception as error:  # a torn or foreign file: start over rather than resume wrongly
        warnings.warn(f"ignoring unreadable checkpoint {path} ({type(error).__name__}: {error}); "
                      "the run starts from scratch")
        return None


def train(task: Any, spec: Spec, config: RunConfig, splits: Any, device: torch.device,
          checkpoint: Path | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train one run and return the quality and cost columns of its row (plus `curves`,
    `status` and `error`)."""
    dtype = getattr(torch, config.dtype)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)  # all devices
    cell = build_cell(spec, task.input_size, config.hidden_size)
    model = SequenceClassifier(cell, task.num_classes, task.target).to(device=device, dtype=dtype)
    optimizer = _optimizer(config, model.parameters())
    train_x, train_y = splits.train
    batches = Batches(len(train_y), config.batch_size, config.sampling, config.seed)
    progress, best_state = Progress(run_id=uuid.uuid4().hex[:12]), None
    if checkpoint is not None and checkpoint.exists():
        restored = _load_checkpoint(checkpoint, model, optimizer, batches)
        if restored is not None:
            progress, best_state = restored
            log(f"resuming from step {progress.step} ({checkpoint})")

    def validate() -> None:
        nonlocal best_state
        synchronize(device)
        start = time.perf_counter()
        valid = evaluate(model, task, *splits.valid, config.eval_batch_size, device)
        progress.n_evals += 1
        elapsed = progress.train_time
        progress.curves.append({"step": progress.step, "wall_time_s": elapsed, "split": "train",
                                "loss": progress.last_train_loss, "acc": ""})
        progress.curves.append({"step": progress.step, "wall_time_s": elapsed, "split": "valid", **valid})
        if target and progress.time_to_target is None and valid["acc"] >= target:
            progress.time_to_target = progress.train_time
        if valid["acc"] > progress.best_valid_acc:
            progress.best_valid_acc, progress.best_valid_step = valid["acc"], progress.step
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if checkpoint is not None:
            _save_checkpoint(checkpoint, progress, model, optimizer, batches, best_state)
        progress.eval_time += time.perf_counter() - start
        log(f"step {progress.step}: train loss {progress.last_train_loss:.4f}, "
            f"valid acc {valid['acc']:.4f}, loss {valid['loss']:.4f}")

    target = config.target or getattr(task, "target_acc", 0.0)
    mem_source = reset_peak_memory(device)
    status, error = "ok", ""
    bar = tqdm(total=config.steps, initial=progress.step, desc=str(spec), unit="step", leave=False,
               disable=not sys.stderr.isatty(), dynamic_ncols=True)
    while progress.step < config.steps:
        index = batches.next()
        xb, yb = train_x[index].to(device), train_y[index].to(device)
        synchronize(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss(model(xb), yb)
        loss_value = loss.item()  # synchronises; and a NaN must stop the run before the update
        if not math.isfinite(loss_value):
            status, error = "diverged", f"training loss became {loss_value} at step {progress.step + 1}"
            break
        loss.backward()
        if config.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimizer.step()
        synchronize(device)
        elapsed = time.perf_counter() - start
        progress.step += 1
        progress.train_time += elapsed
        if progress.step <= config.warmup_steps:
            progress.warmup_time += elapsed
        else:
            progress.step_times.append(elapsed)
        progress.last_train_loss = loss_value
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", valid=f"{max(progress.best_valid_acc, 0):.3f}")
        if progress.step % config.eval_every == 0 or progress.step == config.steps:
            validate()
    bar.close()
    peak_mb = peak_memory_mb(device)

    result: dict[str, Any] = {"status": status, "error": error, "run_id": progress.run_id,
                              "curves": progress.curves, "steps_done": progress.step}
    synchronize(device)
    start = time.perf_counter()
    if status == "ok":
        final = evaluate(model, task, *splits.test, config.eval_batch_size, device)
        result["test_acc_final"] = final["acc"]
    if best_state is not None:
        model.load_state_dict(best_state)
        best = evaluate(model, task, *splits.test, config.eval_batch_size, device)
        result.update(test_acc=best["acc"], test_loss=best["loss"])
    progress.eval_time += time.perf_counter() - start
    times_ms = sorted(t * 1e3 for t in progress.step_times)
    quartiles = statistics.quantiles(times_ms, n=4) if len(times_ms) >= 2 else [math.nan] * 3
    result.update(
        best_valid_acc=progress.best_valid_acc if progress.best_valid_step >= 0 else "",
        best_valid_step=progress.best_valid_step if progress.best_valid_step >= 0 else "",
        final_train_loss=progress.last_train_loss,
        params=sum(p.numel() for p in model.parameters()),
        impl=getattr(cell, "last_impl", None) or "native",
        train_time_s=progress.train_time, warmup_time_s=progress.warmup_time,
        step_time_ms=statistics.median(times_ms) if times_ms else "",
        step_time_iqr_ms=quartiles[2] - quartiles[0] if times_ms else "",
        eval_time_s=progress.eval_time, n_evals=progress.n_evals, target=target or "",
        time_to_target_s="" if progress.time_to_target is None else progress.time_to_target,
        peak_mem_mb=peak_mb, mem_source=mem_source,
    )
    return result


def resolve_device(name: str) -> torch.device:
    """auto: CUDA when available; asking for cuda without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device; use --device cpu or auto")
    return torch.device(name)


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
    data_folder: Path | None = None
    keep_checkpoints: bool = False

    def describe(self) -> str:
        return f"{self.cell_spec} N={self.config.hidden_size} seed {self.config.seed}"


def plan_sweep(task_name: str, specs: list[Spec], seeds: list[int], config: RunConfig, results: Path,
               data_folder: Path | None = None, force: bool = False, keep_checkpoints: bool = False,
               log: Callable[[str], None] = print,
               hidden_sizes: list[int] | None = None) -> tuple[list[PlannedRun], dict[int, Any]]:
    """The runs of a sweep that still have to run, and the data loaded for them (by seed).

    The hidden sizes are `hidden_sizes` (a sweep), else config.hidden_size; with
    config.params_budget, each cell gets the largest size within that many parameters.
    Everything that can be checked before training is checked here (ValueError), so that a bad
    sweep writes nothing. A run whose key already has an `ok` row is left out unless `force`.
    """
    from rnnbench.registry import TASKS, build_task

    task_spec = TASKS.parse(task_name)  # a name with options: copying:delay=200
    task = build_task(task_spec)
    config.validate()
    device = resolve_device(config.device)
    if not seeds:
        raise ValueError("no seeds given")
    if config.params_budget and hidden_sizes:
        raise ValueError("give a parameter budget (--params) or hidden sizes (--hidden), not both")
    plan = []  # (spec, hidden size): an impossible cell (odd N for EURNN...) fails here, before any run
    for spec in specs:
        if config.params_budget:
            size, params = match_hidden_size(task, spec, config.params_budget)
            log(f"{spec}: hidden size {size} ({params} parameters) for --params {config.params_budget}")
            plan.append((spec, size))
            continue
        for size in hidden_sizes or [config.hidden_size]:
            build_cell(spec, task.input_size, size)
            plan.append((spec, size))
    # Tasks that generate their data from the run's seed (copying, adding) load it per seed.
    if getattr(task, "seeded_data", False):
        splits = {seed: task.load(config.replace(seed=seed), data_folder) for seed in seeds}
    else:
        shared = task.load(config, data_folder)
        splits = {seed: shared for seed in seeds}
    n_train = len(splits[seeds[0]].train[1])
    if config.batch_size > n_train:
        raise ValueError(f"batch_size {config.batch_size} is larger than the training set ({n_train} examples)")
    finished = set() if force else records.finished_keys(results, task.name)
    runs = []
    for spec, size in plan:
        for seed in seeds:
            run_config = config.replace(seed=seed, hidden_size=size)
            identity = {"task": task.name, "task_spec": str(task_spec), "task_version": task.version,
                        "cell_spec": str(spec), "config": run_config.identity(), "data": splits[seed].info,
                        "device": device.type}
            run = PlannedRun(task.name, str(task_spec), str(spec), run_config, records.run_key(identity), results, data_folder,
                             keep_checkpoints)
            if run.key in finished:
                log(f"skip {run.describe()}: run {run.key} already has an ok row (--force to run it again)")
            else:
                runs.append(run)
    return runs, splits


def run_planned(run: PlannedRun, splits: Any = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train one planned run (resuming from its checkpoint if there is one) and append its row;
    returns the row. A run that fails gets a `failed` row; only a row that cannot be written
    raises (its checkpoint is kept, so that the run resumes next time)."""
    from rnnbench.measure import flush_denormals
    from rnnbench.registry import CELLS, TASKS, build_task

    task_spec = TASKS.parse(run.task_spec)
    task = build_task(task_spec)
    spec = CELLS.parse(run.cell_spec)
    device = resolve_device(run.config.device)
    if device.type == "cpu":
        flush_denormals()
    if splits is None:
        splits = task.load(run.config, run.data_folder)
    checkpoints = run.results / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    checkpoint = checkpoints / f"{task.name}-{run.key}.pt"
    try:
        result = train(task, spec, run.config, splits, device, checkpoint, log)
    except Exception as error:  # noqa: BLE001 - one failed run must not stop the sweep
        message = f"{type(error).__name__}: {error}"
        if isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower():
            message += " (lower --batch-size or --hidden)"
        result = {"status": "failed", "error": message, "run_id": uuid.uuid4().hex[:12], "curves": []}
    curves = [{"run_id": result["run_id"], **point} for point in result.pop("curves")]
    row = {**{k: v for k, v in run.config.as_dict().items() if k in records.COLUMNS},
           **{k: v for k, v in splits.info.items() if k in records.COLUMNS},
           "run_key": run.key, "task": task.name, "task_spec": run.task_spec, "task_version": task.version,
           "cell": spec.name, "cell_spec": run.cell_spec, "options": json.dumps(dict(spec.options), sort_keys=True),
           "config_json": json.dumps(run.config.as_dict(), sort_keys=True), **environment(device), **result}
    records.append_run(run.results, task.name, row, curves)
    if result["status"] != "failed" and not run.keep_checkpoints:
        checkpoint.unlink(missing_ok=True)
    log(summary_line(row))
    return row


def run_sweep(task_name: str, specs: list[Spec], seeds: list[int], config: RunConfig, results: Path,
              data_folder: Path | None = None, force: bool = False, keep_checkpoints: bool = False,
              log: Callable[[str], None] = print, hidden_sizes: list[int] | None = None) -> list[dict[str, Any]]:
    """Run every (cell spec, hidden size, seed) of a sweep in turn, in this process, and append a
    row for each; returns the rows. See plan_sweep and run_planned: a bad sweep writes nothing,
    finished runs are skipped, an interrupted run resumes from its checkpoint, a run that fails
    or diverges gets its row and the sweep goes on."""
    runs, splits = plan_sweep(task_name, specs, seeds, config, results, data_folder, force, keep_checkpoints, log,
                              hidden_sizes)
    rows = [run_planned(run, splits[run.config.seed], log) for run in runs]
    remove_if_empty(results / "checkpoints")
    return rows


def remove_if_empty(folder: Path) -> None:
    """Remove a folder left empty. (Not while other processes may still write into it.)"""
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def summary_line(row: dict[str, Any]) -> str:
    """One line per finished run, as the sweep prints it."""
    def fmt(value: Any, spec: str) -> str:
        return format(value, spec) if isinstance(value, (int, float)) and value != "" else "-"

    return (f"{row['cell_spec']} N={row['hidden_size']} seed {row['seed']}: {row['status']}, test acc {fmt(row.get('test_acc'), '.4f')}"
            f" (final {fmt(row.get('test_acc_final'), '.4f')}), {fmt(row.get('train_time_s'), '.1f')} s, "
            f"{fmt(row.get('step_time_ms'), '.1f')} ms/step, peak {fmt(row.get('peak_mem_mb'), '.0f')} MiB"
            + (f" [{row['error']}]" if row.get("error") else ""))
