"""What a run shows while it trains: its curve points, progress lines and TensorBoard events.

The runner owns the loop and the clock; it hands this module what it measured, always after the
clock has stopped, so that nothing here is ever inside a timed step. Three views of one run:

- curve points (the curves file): every `log_every` steps a `train` point (the mean training loss
  over those steps, and the gradient norm before clipping of the last one), and at every evaluation
  a `valid` point with the task's metrics and, for a cell whose recurrent matrix is unitary or
  orthogonal by construction (it defines `recurrent_matrix()`), ‖U^H U − I‖_F, which shows numerical
  drift over a long run;
- progress: a tqdm bar on a terminal; elsewhere (nohup, SLURM logs) lines that each name the run
  and say how far it is, with the time elapsed and an estimate of the time left (this module's
  logger, at INFO; where they go is rnnbench.logs's to say);
- TensorBoard (`--tensorboard`): the same scalars under RESULTS/tb/RUN_ID/, the run's config as
  hyper-parameters from its start and its final metrics at the end.

>>> watch = Monitor("pmnist eurnn N=64 seed 0", steps=300)
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from rnnbench import measure
from rnnbench.cell import recurrent_matrix

log = logging.getLogger(__name__)

# Progress lines off a terminal: one at the first logged step, then at most one per this many
# seconds (and one per evaluation), so that a 40,000-step run's log stays readable.
PROGRESS_SECONDS = 60.0
# Event files are flushed by the monitor at each logged step, outside the clock; TensorBoard's own
# writer thread would otherwise wake every 2 minutes, possibly in the middle of a timed step.
NEVER_SECONDS = 10**9

# The scalars of each kind of point, TensorBoard's tag GROUP/NAME: the curves file's columns.
TRAIN_SCALARS = ("loss", "grad_norm")
VALID_SCALARS = ("loss", "acc")
HEALTH_SCALARS = ("unitarity_error",)  # (of valid points: measured at evaluation)
# What TensorBoard shows of a finished run next to its hyper-parameters (the HPARAMS tab).
FINAL_METRICS = (
    "test_acc",
    "test_acc_final",
    "test_loss",
    "best_valid_acc",
    "params",
    "train_time_s",
    "step_time_ms",
    "peak_mem_mb",
)


def grad_norm(parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """The 2-norm of all gradients together, as clip_grad_norm_ computes it (0 without any):
    one fused norm over the list where torch has it (as clip_grad_norm_ itself does)."""
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    foreach = getattr(torch, "_foreach_norm", None)
    norms = foreach(grads) if foreach is not None else [torch.linalg.vector_norm(g) for g in grads]
    return torch.linalg.vector_norm(torch.stack(norms))


@torch.no_grad()
def unitarity_error(cell: torch.nn.Module) -> float | None:
    """‖U^H U − I‖_F of the cell's recurrent matrix, for a cell that defines `recurrent_matrix()`
    (EURNN's unitary U, the orthogonal W of expRNN and scoRNN); None for any other cell.

    >>> unitarity_error(rnnbench.build_cell("eurnn", 1, 8)) < 1e-5
    True
    """
    u = recurrent_matrix(cell)  # (N, N), real or complex; None: the cell does not define one
    if u is None:
        return None
    eye = torch.eye(u.shape[-1], dtype=u.dtype, device=u.device)
    return float(torch.linalg.matrix_norm(u.conj().transpose(-2, -1) @ u - eye))


def describe(task: str, cell_spec: str, hidden_size: int, seed: int) -> str:
    """How progress lines name a run:
    `describe("pmnist", "eurnn", 64, 0) == "pmnist eurnn N=64 seed 0"`."""
    return f"{task} {cell_spec} N={hidden_size} seed {seed}"


def duration(seconds: float) -> str:
    """`duration(5) == "5 s"`, `duration(125) == "2 min 05 s"`, `duration(7300) == "2 h 01 min"`."""
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Monitor:
    """The live views of one run. The runner calls `train_point` every `log_every` steps,
    `valid_point` at every evaluation and `close` at the end (also after an error), each outside
    the clock. With `tensorboard` (the run's folder), the run's `hparams` are written at once, so
    that TensorBoard names the run while it trains; a folder that cannot be written (or stops
    being writable) costs a warning and the TensorBoard view, never the run."""

    def __init__(
        self,
        name: str,
        steps: int,
        start_step: int = 0,
        tensorboard: Path | None = None,
        terminal: bool | None = None,
        hparams: dict[str, Any] | None = None,
    ):
        self.name, self.steps, self.start_step = name, steps, start_step
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.started = time.perf_counter()
        self.last_line = -math.inf
        self.last_step = start_step
        self.writer = None
        if tensorboard is not None:
            measure.check_tensorboard()
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams as hparams_summaries

            values = {
                k: v if isinstance(v, (bool, int, float, str)) else str(v)
                for k, v in (hparams or {}).items()
            }
            # the HPARAMS tab's experiment and session start now, its end in close()
            self.session = hparams_summaries(values, {f"final/{k}": 0.0 for k in FINAL_METRICS})

            def start() -> None:
                # purge_step: a run resumed from its checkpoint at step S hides what it logged
                # after S (TensorBoard's reader drops those events), which it logs again
                self.writer = SummaryWriter(
                    str(tensorboard),
                    purge_step=start_step + 1 if start_step else None,
                    flush_secs=NEVER_SECONDS,
                )
                self.writer.file_writer.add_summary(self.session[0], start_step)
                self.writer.file_writer.add_summary(self.session[1], start_step)
                self.writer.add_text("run", name, start_step)
                self.writer.flush()

            self._tensorboard(start)
        self.bar = tqdm(
            total=steps,
            initial=start_step,
            desc=name,
            unit="step",
            leave=False,
            disable=not self.terminal,
            dynamic_ncols=True,
        )

    def step(self, loss: float, best: float) -> None:
        """One training step done (the terminal's bar; nothing elsewhere)."""
        if self.terminal:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}", valid=f"{best:.3f}", refresh=False)

    def train_point(self, point: dict[str, Any]) -> None:
        """A `train` curve point (step, loss, grad_norm): TensorBoard, a progress line."""
        self._scalars("train", point, TRAIN_SCALARS)
        now = time.perf_counter()
        if not self.terminal and now - self.last_line >= PROGRESS_SECONDS:
            self.last_line = now
            norm = (
                f", grad norm {point['grad_norm']:.3g}" if _number(point.get("grad_norm")) else ""
            )
            log.info(f"{self._where(point['step'])}; train loss {point['loss']:.4f}{norm}")

    def valid_point(self, point: dict[str, Any]) -> None:
        """A `valid` curve point (the task's metrics, unitarity_error where the cell has one): a
        line in every case, TensorBoard."""
        self._scalars("valid", point, VALID_SCALARS + HEALTH_SCALARS)
        health = (
            f", ‖UᴴU − I‖ {point['unitarity_error']:.2g}"
            if _number(point.get("unitarity_error"))
            else ""
        )
        log.info(
            f"{self._where(point['step'])}; valid {point['acc']:.4f}, "
            f"loss {point['loss']:.4f}{health}"
        )
        self.last_line = time.perf_counter()

    def close(self, metrics: dict[str, Any] | None = None) -> None:
        """End the views (once: a second call does nothing); with `metrics` (the run ended and
        has its row's numbers), TensorBoard gets the final ones (FINAL_METRICS that are finite
        numbers) and the session's end."""
        self.bar.close()
        writer, self.writer = self.writer, None
        if writer is None:
            return

        def end() -> None:
            try:
                if metrics is not None:
                    for key in FINAL_METRICS:
                        if _number(metrics.get(key)):
                            writer.add_scalar(f"final/{key}", float(metrics[key]), self.last_step)
                    writer.file_writer.add_summary(self.session[2], self.last_step)
            finally:
                writer.close()

        self._tensorboard(end)

    def _scalars(self, group: str, point: dict[str, Any], names: Iterable[str]) -> None:
        self.last_step = max(self.last_step, point["step"])
        if self.writer is None:
            return
        writer = self.writer

        def write() -> None:
            for name in names:
                if _number(point.get(name)):
                    tag = f"{'health' if name in HEALTH_SCALARS else group}/{name}"
                    writer.add_scalar(tag, float(point[name]), point["step"])
            writer.flush()

        self._tensorboard(write)

    def _tensorboard(self, write: Callable[[], None]) -> None:
        """Run a TensorBoard write; an OSError (a folder that cannot be made, a full disk) turns
        TensorBoard off for this run, with a warning, and the run goes on."""
        try:
            write()
        except OSError as error:
            self.writer = None
            log.warning(
                f"{self.name}: TensorBoard stops here, its event files cannot be written "
                f"({error}); the run goes on, its curves file has every point"
            )

    def _where(self, step: int) -> str:
        """`pmnist eurnn N=64 seed 0: step 150/300 (50 %), 12 s elapsed, about 12 s left`."""
        elapsed = time.perf_counter() - self.started
        done = step - self.start_step
        left = elapsed / done * (self.steps - step) if done > 0 else math.nan
        return (
            f"{self.name}: step {step}/{self.steps} ({100 * step / self.steps:.0f} %), "
            f"{duration(elapsed)} elapsed, about {duration(left)} left"
        )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
