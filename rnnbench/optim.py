"""The optimizer of a run, and its learning rate at each step.

`build` turns a RunConfig (--optimizer, --lr, --weight-decay) and a model into a torch optimizer,
with one parameter group per learning-rate group the cell declares (below); `learning_rate_factor`
is the schedule (--lr-schedule, --lr-warmup-steps, --lr-decay-every, --lr-decay): a pure function
of the step, so that a resumed run needs no scheduler state in its checkpoint. Before each step
the runner sets every group's rate to its base rate times that factor (`set_learning_rates`).

Learning-rate groups (rnnbench/cell.py, the cell contract, has `lr_groups` and `group_rate`): a cell
module may define `lr_groups(self) -> dict[str, list[Parameter]]`, naming groups of its parameters
(EURNN: `{"angles": [theta, phi, omega]}`). The rate of group G is the cell's option `G_lr` (a float
option of its factory, default 0.0), so that it is in the cell spec, recorded in rows and tunable: 0
keeps the group at --lr, another value is the group's own rate. A cell whose paper gives the group's
rate as a ratio to the others' (expRNN, scoRNN: a tenth) may also have an option `G_lr_factor`:
unless `G_lr` is set (not 0), the group's rate is that factor times --lr, so the ratio holds at any
--lr and through a tuning of --lr. Every group is scaled by the same schedule factor, and weight
decay applies to all.

>>> optimizer = build(RunConfig(lr=1e-3), model, model.cell, {"angles_lr": 1e-4})
>>> base = [group["lr"] for group in optimizer.param_groups]  # [0.001, 0.0001]
>>> set_learning_rates(optimizer, base, learning_rate_factor(config, step))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from rnnbench.cell import group_rate, lr_groups
from rnnbench.config import RunConfig

# (RMSprop and Adam add weight_decay * w to the gradient, an L2 penalty; AdamW decouples it,
# shrinking the weights by lr * weight_decay * w at each step, apart from the adaptive update.)
OPTIMIZERS = {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def build(
    config: RunConfig,
    model: nn.Module,
    cell: nn.Module | None = None,
    options: Mapping[str, Any] | None = None,
) -> torch.optim.Optimizer:
    """The run's optimizer over every parameter of `model`, each in exactly one group: first the
    parameters at --lr, then one group per learning-rate group of `cell` whose option `G_lr`
    (in `options`, the cell spec's resolved options) is set.

    >>> optimizer = build(RunConfig(optimizer="adamw", weight_decay=0.01), model)
    >>> optimizer.param_groups[0]["weight_decay"]
    0.01
    """
    groups = param_groups(config, model, cell, options or {})
    return OPTIMIZERS[config.optimizer](groups, lr=config.lr, weight_decay=config.weight_decay)


def param_groups(
    config: RunConfig, model: nn.Module, cell: nn.Module | None, options: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """torch's parameter groups for `build`: the base group (no `lr`: the optimizer's --lr), then
    `{"params", "lr", "name"}` per cell group with a rate of its own. A cell group whose rate is 0
    stays in the base group, so that a cell without groups, or with none set, gets exactly the
    single group it had before groups existed (and its checkpoints still fit).

    >>> [g.get("name") for g in param_groups(config, model, model.cell, {"angles_lr": 1e-4})]
    [None, 'angles']
    """
    declared = lr_groups(cell)
    in_model = {id(p) for p in model.parameters()}
    owner: dict[int, str] = {}  # id(parameter) -> the cell group that named it
    own: list[dict[str, Any]] = []
    for name, params in declared.items():
        for p in params:
            if id(p) not in in_model:
                raise ValueError(
                    f"lr group {name!r} of the cell holds a tensor "
                    "that is not a parameter of the model"
                )
            if id(p) in owner:
                raise ValueError(
                    f"a parameter is in lr groups {owner[id(p)]!r} and {name!r}; each may be in one"
                )
            owner[id(p)] = name
        rate = group_rate(name, options, config.lr)
        if rate and params:
            own.append({"params": list(params), "lr": rate, "name": name})
    grouped = {id(p) for g in own for p in g["params"]}
    base = [p for p in model.parameters() if id(p) not in grouped]
    return [{"params": base}] + own


def learning_rate_factor(config: RunConfig, step: int) -> float:
    """What every group's base rate is multiplied by for optimizer step `step` (0 = the first).

    Warm-up: the first W = lr_warmup_steps steps rise linearly, (step + 1) / (W + 1), so that no
    step is wasted at rate 0 and step W is the first at the full rate. After warm-up, with
    s = step - W steps since it ended: constant, 1; cosine, (1 + cos(pi s / (steps - W))) / 2,
    from 1 down to 0 at `steps` (the last step keeps a small positive rate); step,
    lr_decay ** (s // lr_decay_every).

    >>> learning_rate_factor(RunConfig(steps=100, lr_schedule="cosine"), 50)
    0.5
    """
    warmup = config.lr_warmup_steps
    if step < warmup:
        return (step + 1) / (warmup + 1)
    since = step - warmup
    if config.lr_schedule == "cosine":
        span = config.steps - warmup  # (validate: warm-up ends before the last step)
        return 0.5 * (1 + math.cos(math.pi * min(since, span) / span))
    if config.lr_schedule == "step":
        return config.lr_decay ** (since // config.lr_decay_every)
    return 1.0


def set_learning_rates(
    optimizer: torch.optim.Optimizer, base_lrs: list[float], factor: float
) -> None:
    """Set each group's rate to its base rate times `factor`. The base rates are kept apart, not in
    the groups, because loading a checkpoint replaces the groups' rates with the scaled ones.

    >>> set_learning_rates(optimizer, [1e-3, 1e-4], 0.5)  # groups at 5e-4 and 5e-5
    """
    for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
        group["lr"] = base * factor
