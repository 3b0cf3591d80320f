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

import json
import logging
import math
import os
import random
import statistics
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from rnnbench import checkpoints, monitor, optim, store
from rnnbench.cell import implementation, init_readout, output_size
from rnnbench.config import RunConfig
from rnnbench.measure import (
    environment,
    load_average,
    peak_memory_mb,
    peak_reserved_mb,
    reset_peak_memory,
    resolve_device,
    synchronize,
    timing_note,
)
from rnnbench.registry import Spec, build_cell
from rnnbench.store import layout
from rnnbench.store.claims import ClaimLost, LockTimeout
from rnnbench.store.schema import data_hash, data_json
from rnnbench.task import Split, Splits, Task, valid_steps

if TYPE_CHECKING:
    from rnnbench.planned import PlannedRun

log = logging.getLogger(__name__)


class SequenceClassifier(nn.Module):
    """A cell plus the readout the runner adds: Linear(cell.output_size, num_classes), applied to
    the steps the task reads (`mode`: each sequence's last valid step, or every valid step)."""

    def __init__(self, cell: nn.Module, num_classes: int, mode: str):
        super().__init__()
        self.cell, self.mode = cell, mode
        self.readout = nn.Linear(output_size(cell), num_classes)
        init_readout(
            cell, self.readout
        )  # a cell may ask for its readout's init (EURNN init=notebook)

    def forward(self, batch: Split) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, targets) of the steps that count: (B, C) and (B,), or (n, C) and (n,)."""
        states = self.cell(batch.x)  # (B, T, output_size)
        states, y = valid_steps(states, batch.y, batch.lengths, self.mode)
        return self.readout(states), y


class Batches:
    """Indices of training batches: shuffled epochs (the last partial batch dropped) or draws
    with replacement, from a generator whose state goes into checkpoints."""

    def __init__(self, n: int, batch_size: int, sampling: str, seed: int):
        if batch_size > n:
            raise ValueError(
                f"batch_size {batch_size} is larger than the training set ({n} examples)"
            )
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
        return {
            "generator": self.generator.get_state(),
            "order": self.order,
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.position = state["order"], state["position"]


@torch.no_grad()
def evaluate(
    model: nn.Module, task: Task, split: Split, batch_size: int, device: torch.device
) -> dict[str, float]:
    """Each metric's mean over a whole split: the task's sums over its counts, batch by batch, so
    that the result does not depend on the batch size."""
    model.eval()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for start in range(0, len(split), batch_size):
        metrics = checked_metrics(
            task, task.metrics(*model(split.take(slice(start, start + batch_size), device)))
        )
        for name, (total, count) in metrics.items():
            sums[name], counts[name] = sums.get(name, 0.0) + total, counts.get(name, 0.0) + count
    model.train()
    empty = sorted(name for name, count in counts.items() if not count)
    if empty:
        raise ValueError(
            f"task {task.name!r}: no target of this split counts for {', '.join(empty)} "
            "(every one is IGNORE): it cannot be scored"
        )
    return {name: total / counts[name] for name, total in sums.items()}


def checked_metrics(task: Task, metrics: Any) -> dict[str, tuple[float, float]]:
    """A task's metrics as floats, or TypeError saying what the contract wants (a plugin's metrics
    returning tensors, means, or no `acc` would otherwise write rows that cannot be read)."""
    try:
        checked = {
            str(name): (float(total), float(count)) for name, (total, count) in metrics.items()
        }
    except (AttributeError, TypeError, ValueError) as error:
        raise TypeError(
            f"task {task.name!r}: metrics() must return {{name: (sum, count)}} of numbers, "
            f"with 'loss' and 'acc'; got {metrics!r:.200}"
        ) from error
    if not {"loss", "acc"} <= set(checked):
        raise TypeError(
            f"task {task.name!r}: metrics() must return 'loss' and 'acc'; got {', '.join(checked)}"
        )
    return checked


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
    time_to_target: float | None = (
        None  # training time when validation accuracy first reached the target
    )
    # The steps since the last `train` curve point and their summed loss (a checkpoint between two
    # points keeps them).
    window_steps: int = 0
    window_loss: float = 0.0
    log_time: float = 0.0  # seconds spent logging training steps (outside the clock)


save_checkpoint = checkpoints.save  # (the fault tests wrap it)


def build_kernels(model: nn.Module, task: Task, batch: Split, device: torch.device) -> None:
    """One forward and backward pass on one example, before any clock starts: it builds or loads
    every kernel the run needs (the fused EURNN kernel compiles on first use), so that no build
    lands in warm-up, training time or time to target. Weights, optimizer and random state are
    left as they were."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        logits, y = model(batch)
        task.loss(logits, y).backward()
        checked_metrics(
            task, task.metrics(logits.detach(), y)
        )  # (a malformed return fails here, not at validation)
    model.zero_grad(set_to_none=True)


def _checkpoint_state(
    run_key: str, progress: Progress, model, optimizer, batches, best_state
) -> dict[str, Any]:
    return {
        "version": checkpoints.VERSION,
        "run_key": run_key,
        "progress": dict(progress.__dict__),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "batches": batches.state_dict(),
        "best_state": best_state,
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def configure_device(device: torch.device) -> None:
    """On CUDA, what makes a run repeatable and its timings honest: cuDNN's autotuner off (it picks
    kernels by timing them, differently from run to run, and its first steps are slow), cuDNN and
    torch's deterministic algorithms where torch offers them (warn_only: an operation without one
    warns instead of failing the run), and cuBLAS's fixed workspace, which its determinism needs
    (CUBLAS_WORKSPACE_CONFIG, read when cuBLAS starts: a run's process sets it before its first
    matmul; one set by the user is kept). Nothing on other devices."""
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass
class Trainee:
    """What a run trains and how: the cell, the model around it (cell and readout), the optimizer,
    the order of training batches, and each parameter group's rate before any schedule."""

    cell: nn.Module
    model: nn.Module
    optimizer: torch.optim.Optimizer
    batches: Batches
    base_lrs: list[float]

    @classmethod
    def fresh(
        cls, task: Task, spec: Spec, config: RunConfig, device: torch.device, n_train: int
    ) -> Trainee:
        """Everything a run starts from, from the seed alone."""
        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)  # all devices
        cell = build_cell(spec, task.input_size, config.hidden_size)
        model = SequenceClassifier(cell, task.num_classes, task.readout).to(
            device=device, dtype=getattr(torch, config.dtype)
        )
        optimizer = optim.build(config, model, cell, spec.options)
        # (the rates are read now: a checkpoint's optimizer state brings the rates of its last step)
        return cls(
            cell,
            model,
            optimizer,
            Batches(n_train, config.batch_size, config.sampling, config.seed),
            [group["lr"] for group in optimizer.param_groups],
        )


def fresh_progress(higher_is_better: bool) -> Progress:
    return Progress(
        run_id=uuid.uuid4().hex[:12], best_valid_acc=-math.inf if higher_is_better else math.inf
    )


def resume(
    trainee: Trainee, checkpoint: Path, run_key: str, name: str
) -> tuple[Progress, dict | None]:
    """Restore a fresh `trainee` from `checkpoint` (weights, optimizer, batch order, random states)
    and return the progress and best weights it holds. Raises, leaving `trainee` possibly changed
    in part, if the file does not fit this run exactly (checkpoints.validate)."""
    state = checkpoints.read(checkpoint)
    checkpoints.validate(
        state,
        run_key,
        set(Progress.__dataclass_fields__),
        trainee.model,
        trainee.optimizer,
        trainee.batches.n,
    )
    trainee.model.load_state_dict(state["model"])
    trainee.optimizer.load_state_dict(state["optimizer"])
    trainee.batches.load_state_dict(state["batches"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    progress = Progress(**state["progress"])
    log.info(f"{name}: resuming from step {progress.step} ({checkpoint})")
    return progress, state["best_state"]


def start(
    task: Task,
    spec: Spec,
    config: RunConfig,
    device: torch.device,
    n_train: int,
    checkpoint: Path | None,
    run_key: str,
    name: str,
) -> tuple[Trainee, Progress, dict | None]:
    """A run's start: from its checkpoint if there is one that fits it, else fresh. A torn, foreign
    or damaged checkpoint is ignored with a warning: the run starts over, never resumes wrongly."""
    trainee = Trainee.fresh(task, spec, config, device, n_train)
    if checkpoint is None or not checkpoint.exists():
        return trainee, fresh_progress(task.higher_is_better), None
    try:
        progress, best_state = resume(trainee, checkpoint, run_key, name)
        return trainee, progress, best_state
    except Exception as error:  # noqa: BLE001 - a torn, foreign or damaged file: start over, never resume wrongly
        warnings.warn(
            f"ignoring checkpoint {checkpoint} ({type(error).__name__}: {error}); "
            "the run starts from scratch",
            stacklevel=2,
        )
        # (nothing of the checkpoint survives, even if applied in part)
        return (
            Trainee.fresh(task, spec, config, device, n_train),
            fresh_progress(task.higher_is_better),
            None,
        )


class Training:
    """One run as it trains: its trainee, progress and best weights, and the three things it does,
    each a method a reader can check alone: `step` (one timed training step), `validate` (an
    evaluation with the clock paused, the best weights kept, a checkpoint) and `result` (the final
    evaluations and the quality and cost columns of the row)."""

    def __init__(
        self,
        task: Task,
        config: RunConfig,
        splits: Splits,
        device: torch.device,
        trainee: Trainee,
        progress: Progress,
        best_state: dict | None,
        watch: monitor.Monitor,
        checkpoint: Path | None,
        run_key: str,
        claim: Any,
        should_stop: Callable[[int, float], bool] | None,
    ):
        self.task, self.config, self.splits, self.device = task, config, splits, device
        self.trainee, self.progress, self.best_state, self.watch = (
            trainee,
            progress,
            best_state,
            watch,
        )
        self.checkpoint, self.run_key, self.claim, self.should_stop = (
            checkpoint,
            run_key,
            claim,
            should_stop,
        )
        self.target = config.target or task.target_score
        self.higher = (
            task.higher_is_better
        )  # which way the score is better (best weights, time to target)

    def _better(self, score: float, than: float) -> bool:
        return score > than if self.higher else score < than

    def step(self) -> float:
        """One training step, timed from a synchronised device to a synchronised device; returns its
        loss (not finite: the step stops before the update, and the run has diverged)."""
        progress, trainee, config = self.progress, self.trainee, self.config
        batch = self.splits.train.take(trainee.batches.next(), self.device)
        optim.set_learning_rates(
            trainee.optimizer, trainee.base_lrs, optim.learning_rate_factor(config, progress.step)
        )
        synchronize(self.device)
        start = time.perf_counter()
        trainee.optimizer.zero_grad(set_to_none=True)
        loss = self.task.loss(*trainee.model(batch))
        loss_value = loss.item()  # synchronises; and a NaN must stop the run before the update
        if not math.isfinite(loss_value):
            return loss_value
        loss.backward()
        norm = (
            nn.utils.clip_grad_norm_(trainee.model.parameters(), config.clip)
            if config.clip > 0
            else None
        )
        trainee.optimizer.step()
        synchronize(self.device)
        elapsed = time.perf_counter() - start
        logging = (
            time.perf_counter()
        )  # (the clock has stopped: what follows is not in the step's time)
        progress.step += 1
        progress.train_time += elapsed
        if progress.step <= config.warmup_steps:
            progress.warmup_time += elapsed
        else:
            progress.step_times.append(elapsed)
        progress.last_train_loss = loss_value
        progress.window_steps += 1
        progress.window_loss += loss_value
        if progress.step % config.log_every == 0 or progress.step == config.steps:
            # the gradient norm before clipping, of this step (measuring it at every step would
            # cost ~1 % of a 15 ms step on CPU: see benchmarks/overhead.py)
            self.log_train(
                float(norm if norm is not None else monitor.grad_norm(trainee.model.parameters()))
            )
        self.watch.step(loss_value, progress.best_valid_acc)
        progress.log_time += time.perf_counter() - logging
        return loss_value

    def log_train(self, grad_norm: float | None) -> None:
        """The `train` curve point of the steps since the last one: their mean loss, and the
        gradient norm (before clipping) of the last one (None: not measured; inf and NaN are
        kept: they say why a run diverged)."""
        progress = self.progress
        point = {
            "step": progress.step,
            "wall_time_s": progress.train_time,
            "split": "train",
            "loss": progress.window_loss / progress.window_steps,
            "acc": "",
            "grad_norm": "" if grad_norm is None else grad_norm,
        }
        progress.curves.append(point)
        progress.window_steps, progress.window_loss = 0, 0.0
        self.watch.train_point(point)

    def validate(self) -> bool:
        """Evaluate on the validation split, keep the best weights, checkpoint; True: stop here
        (the study's pruner says so)."""
        progress, model = self.progress, self.trainee.model
        synchronize(self.device)
        start = time.perf_counter()
        valid = evaluate(
            model, self.task, self.splits.valid, self.config.eval_batch_size, self.device
        )
        progress.n_evals += 1
        health = monitor.unitarity_error(self.trainee.cell)
        point = {
            "step": progress.step,
            "wall_time_s": progress.train_time,
            "split": "valid",
            "loss": valid["loss"],
            "acc": valid["acc"],
            "unitarity_error": "" if health is None else health,
        }
        progress.curves.append(point)
        if (
            self.target
            and progress.time_to_target is None
            and not self._better(self.target, valid["acc"])
        ):
            progress.time_to_target = progress.train_time
        if self._better(valid["acc"], progress.best_valid_acc):
            progress.best_valid_acc, progress.best_valid_step = valid["acc"], progress.step
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.watch.valid_point(
            point
        )  # (before the checkpoint: a run resumed from it does not log this point again)
        if self.checkpoint is not None:
            if self.claim is not None:
                self.claim.check()
            save_checkpoint(
                self.checkpoint,
                _checkpoint_state(
                    self.run_key,
                    progress,
                    model,
                    self.trainee.optimizer,
                    self.trainee.batches,
                    self.best_state,
                ),
            )
        progress.eval_time += time.perf_counter() - start
        return (
            self.should_stop is not None
            and progress.step < self.config.steps
            and self.should_stop(progress.step, valid["acc"])
        )

    def result(
        self, status: str, error: str, build_time: float, loads: list[float], mem_source: str
    ) -> dict[str, Any]:
        """The row's quality and cost columns (and `curves`, `status`, `error`): the test scores of
        the final weights (an ok run) and of the best validation weights, timed as evaluation."""
        progress, model, config = self.progress, self.trainee.model, self.config
        peak_mb, reserved_mb = peak_memory_mb(self.device), peak_reserved_mb(self.device)
        loads.append(load_average())
        result: dict[str, Any] = {
            "status": status,
            "error": error,
            "run_id": progress.run_id,
            "curves": progress.curves,
            "steps_done": progress.step,
        }
        synchronize(self.device)
        start = time.perf_counter()
        if status == "ok":
            final = evaluate(
                model, self.task, self.splits.test, config.eval_batch_size, self.device
            )
            result["test_acc_final"] = final["acc"]
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
            best = evaluate(model, self.task, self.splits.test, config.eval_batch_size, self.device)
            result.update(test_acc=best["acc"], test_loss=best["loss"])
        progress.eval_time += time.perf_counter() - start
        times_ms = sorted(t * 1e3 for t in progress.step_times)
        quartiles = statistics.quantiles(times_ms, n=4) if len(times_ms) >= 2 else [math.nan] * 3
        validated = progress.best_valid_step >= 0
        result.update(
            best_valid_acc=progress.best_valid_acc if validated else "",
            best_valid_step=progress.best_valid_step if validated else "",
            final_train_loss=progress.last_train_loss,
            params=sum(p.numel() for p in model.parameters()),
            impl=implementation(self.trainee.cell),
            build_time_s=build_time,
            train_time_s=progress.train_time,
            warmup_time_s=progress.warmup_time,
            step_time_ms=statistics.median(times_ms) if times_ms else "",
            step_time_iqr_ms=quartiles[2] - quartiles[0] if times_ms else "",
            eval_time_s=progress.eval_time,
            n_evals=progress.n_evals,
            target=self.target or "",
            time_to_target_s="" if progress.time_to_target is None else progress.time_to_target,
            timing_note=timing_note(times_ms, loads, torch.get_num_threads()),
            peak_mem_mb=peak_mb,
            peak_reserved_mb=reserved_mb,
            mem_source=mem_source,
            log_time_s=progress.log_time,
        )
        return result


def train(
    task: Task,
    spec: Spec,
    config: RunConfig,
    splits: Splits,
    device: torch.device,
    checkpoint: Path | None = None,
    run_key: str = "",
    claim: Any = None,
    should_stop: Callable[[int, float], bool] | None = None,
    tensorboard: Path | None = None,
) -> dict[str, Any]:
    """Train one run and return the quality and cost columns of its row (plus `curves`,
    `status` and `error`). With `checkpoint`, resume from it if it fits this run (`run_key`)
    exactly, and write it at every validation; with `claim`, check before every write that
    this process still owns the run (ClaimLost otherwise). `should_stop(step, valid score)`,
    asked after every validation, ends the run early with status `pruned` (a study's pruner).
    With `tensorboard` (a folder), its event files go to TENSORBOARD/RUN_ID/ (rnnbench.monitor)."""
    name = monitor.describe(
        task.name, str(spec), config.hidden_size, config.seed
    )  # (how lines name the run)
    configure_device(device)
    splits = splits.to(device)  # once: every batch is then taken on the device (nothing per step)
    trainee, progress, best_state = start(
        task, spec, config, device, len(splits.train), checkpoint, run_key, name
    )
    synchronize(device)
    begin = time.perf_counter()
    build_kernels(trainee.model, task, splits.train.take(slice(0, 1), device), device)
    synchronize(device)
    build_time = time.perf_counter() - begin
    # (the views start before peak memory is reset: TensorBoard's writer is no part of the run's
    # memory)
    watch = monitor.Monitor(
        name,
        config.steps,
        progress.step,
        tensorboard / progress.run_id if tensorboard is not None else None,
        hparams={"task": task.name, "cell_spec": str(spec), **config.as_dict()},
    )
    training = Training(
        task,
        config,
        splits,
        device,
        trainee,
        progress,
        best_state,
        watch,
        checkpoint,
        run_key,
        claim,
        should_stop,
    )
    loads = [load_average()]
    mem_source = reset_peak_memory(device)
    status, error = "ok", ""
    try:
        while progress.step < config.steps:
            loss = training.step()
            if not math.isfinite(loss):
                status, error = (
                    "diverged",
                    f"training loss became {loss} at step {progress.step + 1}",
                )
                break
            if (
                progress.step % config.eval_every == 0 or progress.step == config.steps
            ) and training.validate():
                status, error = (
                    "pruned",
                    f"stopped at step {progress.step} of {config.steps} by the study's pruner",
                )
                break
        if (
            progress.window_steps
        ):  # (a run that diverged or was pruned between two points: no gradient norm)
            training.log_train(None)
        result = training.result(status, error, build_time, loads, mem_source)
        watch.close(result)
    finally:
        watch.close()  # (after an error: the bar and the event files; nothing if closed above)
    return result


def run_planned(run: PlannedRun, splits: Any = None, claim: Any = None) -> dict[str, Any]:
    """Train one planned run (resuming from its checkpoint if it fits) and append its row;
    returns the row. The caller holds the run's `claim` (see executors.execute). A run that fails
    gets a `failed` row; a row that cannot be written raises (RowNotWritten: the checkpoint is
    kept, so that the run resumes next time), as does a lost claim (ClaimLost: nothing written)."""
    from rnnbench.measure import flush_denormals
    from rnnbench.registry import CELLS, build_task

    task = build_task(run.task_spec)
    spec = CELLS.parse(run.cell_spec)
    device = resolve_device(run.config.device)
    if device.type == "cpu":
        flush_denormals()
    if splits is None:
        splits = task.load(run.config, run.data_folder)
    checkpoint = run.checkpoint
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = train(
            task,
            spec,
            run.config,
            splits,
            device,
            checkpoint,
            run.key,
            claim,
            run.pruning.should_stop if run.pruning is not None else None,
            layout.tensorboard(run.results) if run.config.tensorboard else None,
        )
    except (ClaimLost, KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # noqa: BLE001 - one failed run must not stop the sweep
        message = f"{type(error).__name__}: {error}"
        if isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower():
            message += " (lower --batch-size or --hidden)"
        result = failure(message)
    row = write_row(run, result, splits, claim)
    if result["status"] != "failed" and not run.keep_checkpoints:
        checkpoint.unlink(missing_ok=True)
    return row


def write_row(
    run: PlannedRun, result: dict[str, Any], splits: Splits, claim: Any = None
) -> dict[str, Any]:
    """Append the row (and curves) of a run that ended with `result` (train's, or a failure's:
    status, error, run_id, curves) and print its summary line; returns the row. What the row says
    about the task and the cell comes from the plan (`run`), not from the registry again."""
    curves = [
        {
            "run_id": result["run_id"],
            "cell_spec": run.cell_spec,
            "hidden_size": run.config.hidden_size,
            "seed": run.config.seed,
            **point,
        }
        for point in result.pop("curves")
    ]
    row = {
        **{k: v for k, v in run.config.as_dict().items() if k in store.COLUMNS},
        **splits.sizes(),
        "data_json": data_json(splits.identity),
        "data_hash": data_hash(splits.identity),
        "baseline_loss": "" if splits.baseline_loss is None else splits.baseline_loss,
        "run_key": run.key,
        "task": run.task,
        "task_spec": run.task_spec,
        "task_version": run.task_version,
        "task_json": run.task_json,
        "cell": run.cell_spec.split(":")[0],
        "cell_version": run.cell_version,
        "cell_spec": run.cell_spec,
        "options": run.cell_options,
        "config_json": json.dumps(run.config.as_dict(), sort_keys=True),
        "linear_acc": "" if run.linear_acc is None else run.linear_acc,
        "phase": run.phase,
        "study": run.study,
        "trial": "" if run.trial is None else run.trial,
        "tuned_json": run.tuned_json,
        "study_json": run.study_json,
        **environment(resolve_device(run.config.device)),
        **result,
    }
    try:
        store.append_run(
            run.results, run.task, row, curves, check=claim.check if claim is not None else None
        )
    except (OSError, LockTimeout) as error:
        kept = (
            " Its checkpoint is kept: the run resumes from it next time."
            if run.checkpoint.exists()
            else ""
        )
        raise RowNotWritten(
            f"the row of {run.describe()} could not be written: {error}.{kept}"
        ) from error
    log.info(summary_line(row))
    return row


def failure(message: str) -> dict[str, Any]:
    """The result of a run that failed before or outside training."""
    return {"status": "failed", "error": message, "run_id": uuid.uuid4().hex[:12], "curves": []}


class RowNotWritten(OSError):
    """A finished run's row could not be appended (disk full, a lock held too long...)."""


def summary_line(row: dict[str, Any]) -> str:
    """One line per finished run, as the sweep prints it."""

    def fmt(value: Any, spec: str) -> str:
        return format(value, spec) if isinstance(value, (int, float)) and value != "" else "-"

    return (
        f"{row['cell_spec']} N={row['hidden_size']} seed {row['seed']}: {row['status']}, test acc "
        f"{fmt(row.get('test_acc'), '.4f')} (final {fmt(row.get('test_acc_final'), '.4f')}), "
        f"{fmt(row.get('train_time_s'), '.1f')} s, {fmt(row.get('step_time_ms'), '.1f')} ms/step, "
        f"peak {fmt(row.get('peak_mem_mb'), '.0f')} MiB"
        + (f" [{row['error']}]" if row.get("error") else "")
        + (
            f"\n  warning: its times deserve caution: {row['timing_note']}"
            if row.get("timing_note")
            else ""
        )
        + (
            f"\n  (building or loading its kernels took {row['build_time_s']:.0f} s, "
            "outside every clock)"
            if isinstance(row.get("build_time_s"), float) and row["build_time_s"] >= 5
            else ""
        )
    )
