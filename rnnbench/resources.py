"""Memory a run needs, estimated before anything is allocated, and the check that refuses a sweep
whose runs cannot fit: `--hidden 100000` asks an LSTM for 160 GB of weights alone, and is better
refused in a second, by name, than killed by the kernel after minutes of swapping.

The estimate is simple and errs on the large side. In bytes of the run's dtype (4 or 8):

- weights: P parameters (cell and readout, counted without allocating them: sizing.check_size),
  held as the parameters, their gradients, the optimizer's state (RMSprop 1, Adam 2 per parameter)
  and the best-so-far copy the runner keeps: P x (3 + states);
- checkpoint: writing one serialises the model, the optimizer and the best copy, and holds that
  payload twice while it writes (the payload, and the file's bytes with its header):
  2 P x (2 + states);
- data: what the task's load() holds at its peak (its `data_bytes(config)`), once per seed for tasks
  that generate their data from the seed (all seeds are loaded when the sweep is planned);
- activations: a training step, batch x steps x (hidden x F + 4 x classes read at every step),
  where F is what the cell keeps per example, step and unit for backward, plus an evaluation batch,
  eval batch x steps x hidden x F' (F, F': the cell's `memory`, declared when it registered and
  measured on CPU, rounded up: rnnbench.cell.memory_floats; 24 and 8 for a cell that declares none).
  Both count, because what a training step frees stays in the allocator's heap while evaluation
  allocates its large outputs anew.

On CPU all of it is compared with the memory available now (psutil); on CUDA, weights,
activations and one copy of the data (the runner moves a run's data to the GPU once) with the GPU's
free memory, the data as loaded and the checkpoint with the host's.

>>> format_bytes(estimate(build_task("pmnist"), parse_cell_spec("lstm"), preset("default")).total)
'4.5 GB'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psutil
import torch

from rnnbench.cell import memory_floats
from rnnbench.config import RunConfig
from rnnbench.registry import Spec
from rnnbench.sizing import check_size

OPTIMIZER_STATES = {"rmsprop": 1, "adam": 2}  # tensors of the parameters' size the optimizer keeps


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs, by what holds them (see the module docstring)."""

    weights: int  # parameters, gradients, optimizer state, best-so-far copy (on the run's device)
    training: int  # activations of a training step (on the run's device)
    evaluation: int  # activations of an evaluation batch (on the run's device)
    data: int  # the task's tensors (host)
    checkpoint: int  # writing a checkpoint (host)
    params: int  # the parameter count behind `weights`
    run_data: int = 0  # one run's copy of the data, which the runner moves to its device once

    @property
    def activations(self) -> int:
        return self.training + self.evaluation

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.data + self.checkpoint

    def needs(self, device: torch.device) -> dict[str, int]:
        """Bytes per memory pool: {"host": ...} on CPU; {"device": ..., "host": ...} on CUDA."""
        if device.type == "cpu":
            return {"host": self.total}
        return {
            "device": self.weights + self.activations + self.run_data,
            "host": self.data + self.checkpoint,
        }

    def describe(self) -> str:
        parts = {
            "weights, gradients and optimizer state": self.weights + self.checkpoint,
            "activations": self.activations,
            "data": self.data,
        }
        return ", ".join(f"{what} {format_bytes(n)}" for what, n in parts.items() if n)


def estimate(
    task: Any,
    spec: Spec,
    config: RunConfig,
    device: torch.device | str = "cpu",
    data_copies: int = 1,
) -> MemoryEstimate:
    """The memory one run of `spec` at config.hidden_size on `task` needs, before anything is
    allocated (a ValueError for a size the cell refuses). `data_copies`: how many loads of the
    task's data are held at once (one per seed for tasks that generate it from the seed).

    >>> estimate(build_task("copying"), parse_cell_spec("lstm"), preset("quick")).total > 0
    True
    """
    device = torch.device(device)
    itemsize = config.itemsize
    params = check_size(task, spec, config.hidden_size)
    states = OPTIMIZER_STATES.get(config.optimizer, 2)
    length = int(task.length)  # (0: a task that does not say; no activations counted)
    every = task.num_classes * 4 if task.readout == "every" else 0  # logits, grad, softmax
    train_floats, eval_floats = memory_floats(spec, config.hidden_size, device)
    train = (
        config.batch_size
        * length
        * (config.hidden_size * train_floats + every + 2 * task.input_size)
    )
    evaluation = (
        config.eval_batch_size
        * length
        * (config.hidden_size * eval_floats + task.num_classes + task.input_size)
    )
    return MemoryEstimate(
        weights=params * (3 + states) * itemsize,
        training=int(train * itemsize),
        evaluation=int(evaluation * itemsize),
        data=int(task.data_bytes(config)) * data_copies,
        checkpoint=2 * params * (2 + states) * itemsize,
        params=params,
        run_data=int(task.data_bytes(config)),
    )


def available_bytes(device: torch.device) -> dict[str, int]:
    """Memory free now, per pool: the host's available memory (psutil: what can be allocated
    without swapping), and on CUDA the device's free memory."""
    pools = {"host": int(psutil.virtual_memory().available)}
    if device.type == "cuda":
        pools["device"] = int(torch.cuda.mem_get_info(device)[0])
    return pools


def format_bytes(n: float) -> str:
    """`160 GB`, `2.5 GB`, `310 MB`: decimal units, two significant digits or more."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"


def _cause(
    estimate_: MemoryEstimate, spec: Spec, config: RunConfig, task_spec: str
) -> tuple[str, str]:
    """(the option that asks for most of the memory, as typed; what to lower)."""
    weights = estimate_.weights + estimate_.checkpoint
    if estimate_.data >= max(weights, estimate_.activations):
        return f"--task {task_spec}", f"lower the sizes in --task {task_spec}"
    size = f"--hidden {config.hidden_size}"
    if config.params_budget:
        size = f"--params {config.params_budget} (hidden size {config.hidden_size} for {spec})"
    if weights >= estimate_.activations:
        return size, "lower --params" if config.params_budget else "lower --hidden"
    training = estimate_.training >= estimate_.evaluation
    batch = "--batch-size" if training else "--eval-batch-size"
    value = config.batch_size if training else config.eval_batch_size
    advice = f"lower {'--params' if config.params_budget else '--hidden'} or {batch}"
    if ":" in task_spec:  # the task's options set its sequence length
        advice += f", or the sizes in --task {task_spec}"
    return f"{size} with {batch} {value}", advice


def check_memory(
    task: Any,
    task_spec: str,
    cells: list[tuple[Spec, int]],
    config: RunConfig,
    device: torch.device | str,
    n_seeds: int = 1,
    runs_at_once: int = 1,
    available: dict[str, int] | None = None,
) -> None:
    """Refuse (ValueError) a sweep one of whose runs needs more memory than is available, before
    anything is loaded or allocated; the message names the option, the estimate and what is free:

        --hidden 100000: lstm needs about 2.5 TB (weights, gradients and optimizer state 1.6 TB,
        activations 941 GB, data 440 MB), this machine has 23 GB available; lower --hidden

    `cells`: the sweep's (cell spec, hidden size) pairs; `task_spec`: --task as typed; `n_seeds`:
    for tasks that generate their data from the seed, the planner holds one copy per seed;
    `runs_at_once`: runs that share the machine (--executor local --jobs N), each getting its share;
    `available`: bytes free per pool (default: available_bytes(device), measured now).
    """
    device = torch.device(device)
    copies = n_seeds if task.data_per_seed else 1
    available = available_bytes(device) if available is None else available
    for spec, size in cells:
        run_config = config.replace(hidden_size=size)
        need = estimate(task, spec, run_config, device, copies)
        for pool, needed in need.needs(device).items():
            if needed * runs_at_once > available[pool]:
                where = "this machine has" if pool == "host" else f"the GPU ({device}) has"
                share = (
                    f" ({format_bytes(available[pool] / runs_at_once)} for each of {runs_at_once} "
                    "runs at once)"
                )
                cause, advice = _cause(need, spec, run_config, task_spec)
                raise ValueError(
                    f"{cause}: {spec} needs about {format_bytes(needed)} ({need.describe()}), "
                    f"{where} {format_bytes(available[pool])} available"
                    f"{share if runs_at_once > 1 else ''}; {advice}"
                )
