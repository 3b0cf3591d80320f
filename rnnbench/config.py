"""RunConfig: everything that defines one training run besides the task and the cell, and the
named presets. CLI flags map one to one onto its fields (`option_flags`); a command line's values,
one or a list each, become a config and a grid (`config_grid`).

>>> config = preset("quick").replace(seed=3)
>>> config.validate()
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


def _doc(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


# The flag that sets each field, where it is not `--` + the name with dashes: errors name the option
# as the user typed it (`--hidden`, `--seeds`), not the field. The CLI accepts it besides the long
# flag (option_flags); the one table of aliases.
FLAGS = {"hidden_size": "--hidden", "params_budget": "--params", "seed": "--seeds"}
SEED_LIMIT = 2**32  # numpy's RandomState takes seeds in [0, 2**32)
SEED_RANGE_LIMIT = 10_000  # seeds one range (--seeds 0-9999) may give: more is a typo, not a sweep


def flag(name: str) -> str:
    """The command-line option of a RunConfig field: `flag("eval_every") == "--eval-every"`."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def option_flags(name: str) -> list[str]:
    """The flags of a RunConfig field's option, the long one first (a config file's key is made from
    it, configfile.option_key), then its alias:
    `option_flags("hidden_size") == ["--hidden-size", "--hidden"]`."""
    long = "--" + name.replace("_", "-")
    return [long, *([FLAGS[name]] if name in FLAGS else [])]


def check_seed(name: str, value: Any) -> None:
    """Refuse a seed outside [0, 2**32), naming the field's flag: `check_seed("seed", -1)`."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < SEED_LIMIT:
        raise ValueError(
            f"{flag(name)} {value}: a seed must be an integer in [0, 2**32 - 1 = {SEED_LIMIT - 1}]"
        )


CHOICES = {
    "optimizer": ("rmsprop", "adam", "adamw"),
    "lr_schedule": ("constant", "cosine", "step"),
    "device": ("auto", "cpu", "cuda"),
    "dtype": ("float32", "float64"),
    "sampling": ("epochs", "replacement"),
}


@dataclass(frozen=True)
class RunConfig:
    hidden_size: int = _doc("units of the recurrent state (N)", default=256)
    batch_size: int = _doc("training batch size", default=100)
    steps: int = _doc("optimizer steps", default=40_000)
    eval_every: int = _doc("validate every this many steps", default=500)
    eval_batch_size: int = _doc("batch size for validation and test", default=1000)
    optimizer: str = _doc("rmsprop, adam or adamw", default="rmsprop")
    lr: float = _doc("learning rate", default=1e-4)
    clip: float = _doc("clip the gradient norm to this value; 0 = no clipping", default=0.0)
    weight_decay: float = _doc(
        "weight decay of every parameter: adamw decouples it (w -= lr * decay * w); "
        "rmsprop and adam add decay * w to the gradient (L2)",
        default=0.0,
    )
    lr_schedule: str = _doc(
        "constant; cosine: from the rate down to 0 at the last step; step: times "
        "--lr-decay every --lr-decay-every steps (both after warm-up)",
        default="constant",
    )
    lr_warmup_steps: int = _doc(
        "first steps whose rate rises linearly, lr * (step + 1) / (W + 1), before "
        "the schedule (not --warmup-steps, which is about timing)",
        default=0,
    )
    lr_decay_every: int = _doc("--lr-schedule step: steps between decays", default=0)
    lr_decay: float = _doc(
        "--lr-schedule step: factor applied to the rate at each decay, in (0, 1]", default=0.1
    )
    seed: int = _doc("seed of weights, batches and everything random in the run", default=0)
    device: str = _doc("auto (CUDA when available), cpu or cuda", default="auto")
    dtype: str = _doc("float32 or float64", default="float32")
    sampling: str = _doc(
        "epochs: shuffled passes; replacement: each batch drawn at random", default="epochs"
    )
    warmup_steps: int = _doc(
        "first steps timed apart from the rest (allocator, kernel choice)", default=3
    )
    target: float = _doc(
        "validation accuracy whose first reaching is timed (time_to_target_s); "
        "0: the task's own target",
        default=0.0,
    )
    params_budget: int = _doc(
        "0, or give each cell the largest hidden size whose parameter count "
        "(readout included) fits this budget, instead of hidden_size",
        default=0,
    )
    # What a run shows while it trains (WATCH: not part of what defines it, nor of its run key).
    log_every: int = _doc(
        "log the mean training loss and gradient norm every this many steps", default=50
    )
    tensorboard: bool = _doc(
        "also write TensorBoard event files, RESULTS/tb/RUN_ID/", default=False
    )

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (unknown names are an error)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown config field(s) {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    @property
    def itemsize(self) -> int:
        """Bytes per number of the run's dtype (4 for float32)."""
        import torch  # (here, not at import: the CLI parses its options without torch)

        return torch.tensor([], dtype=getattr(torch, self.dtype)).element_size()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The fields that differ from RunConfig's defaults: what identifies a run. A field added
        later, with a default that keeps the old behaviour, changes no existing run key; the WATCH
        fields (how a run is logged) are never part of it."""
        return {k: v for k, v in self.as_dict().items() if DEFAULTS[k] != v and k not in WATCH}

    def validate(self) -> None:
        """Raise ValueError naming the first bad value, by its flag (`--lr inf`), and the valid
        range or choices."""
        for f in dataclasses.fields(
            self
        ):  # nan and inf pass every comparison below, or wrongly fail it
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{flag(f.name)} must be a finite number; got {value}")
        for name in (
            "hidden_size",
            "batch_size",
            "steps",
            "eval_every",
            "eval_batch_size",
            "log_every",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{flag(name)} must be a positive integer; got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive; got {self.lr!r}")
        if not self.clip >= 0:
            raise ValueError(f"--clip must be >= 0 (0 = off); got {self.clip!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"--warmup-steps must be >= 0; got {self.warmup_steps!r}")
        if not 0 <= self.target <= 1:
            raise ValueError(
                f"--target must be in [0, 1] (0 = the task's own); got {self.target!r}"
            )
        if self.params_budget < 0:
            raise ValueError(f"--params must be >= 0 (0 = off); got {self.params_budget!r}")
        check_seed("seed", self.seed)
        if not isinstance(self.tensorboard, bool):
            raise ValueError(
                f"--tensorboard is on or off (true or false); got {self.tensorboard!r}"
            )
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"{flag(name)} must be one of {', '.join(choices)}; got {getattr(self, name)!r}"
                )
        self._validate_optimizer()

    def _validate_optimizer(self) -> None:
        """The weight decay and learning-rate schedule fields (after the choices are known good)."""
        if not self.weight_decay >= 0:
            raise ValueError(f"--weight-decay must be >= 0 (0 = off); got {self.weight_decay!r}")
        for name in ("lr_warmup_steps", "lr_decay_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{flag(name)} must be an integer >= 0; got {value!r}")
        if (
            self.lr_warmup_steps >= self.steps
        ):  # (the run would never reach --lr; cosine would divide by 0)
            raise ValueError(
                f"--lr-warmup-steps {self.lr_warmup_steps} must be smaller than "
                f"--steps {self.steps}"
            )
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"--lr-decay must be in (0, 1] (1 = no decay); got {self.lr_decay!r}")
        if self.lr_schedule == "step":
            if self.lr_decay_every < 1:
                raise ValueError(
                    f"--lr-schedule step needs --lr-decay-every >= 1 (steps between decays); "
                    f"got {self.lr_decay_every}"
                )
            return
        for name in ("lr_decay_every", "lr_decay"):  # (no flag is silently ignored)
            if getattr(self, name) != DEFAULTS[name]:
                raise ValueError(
                    f"{flag(name)} {getattr(self, name)} applies to --lr-schedule step only; "
                    f"got --lr-schedule {self.lr_schedule}"
                )


DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig)}
# Fields that change what a run shows while it trains, not what it computes: left out of its
# identity (a sweep resumed with --tensorboard trains nothing again) and never swept over.
WATCH = ("log_every", "tensorboard")

# A preset is a RunConfig; a task may add option values of its own for a preset (Task.presets:
# MNIST's quick data is the bundled sample, its torch-eunn split the notebook's).
PRESETS = {
    # The original notebook's hyper-parameters (on MNIST: the official test set).
    "default": RunConfig(),
    # The original notebook's batches, drawn with replacement (on MNIST: train+test pooled into
    # 50k/10k/10k). Its cell is `--cells eurnn:init=notebook:modrelu=notebook` (a RunConfig holds no
    # cell options); what still differs from the notebook is listed in README.md, section EURNN.
    "torch-eunn": RunConfig(sampling="replacement"),
    # A few hundred small steps (on MNIST: the bundled sample): `--cells eurnn,lstm` in under a
    # minute on two CPU cores, well above chance. For trying rnnbench, not for papers.
    "quick": RunConfig(
        hidden_size=64,
        batch_size=50,
        steps=300,
        eval_every=100,
        eval_batch_size=500,
        lr=3e-3,
        warmup_steps=2,
    ),
}


def preset(name: str) -> RunConfig:
    """A named preset; an unknown name lists the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


# Fields a comma-separated list of values turns into a sweep (their cross product, with cells and
# seeds): every field but the seed (--seeds takes lists and ranges) and those that change the data
# or the machine rather than the training (a sweep loads its data once).
NOT_LISTED = ("seed", "device", "dtype") + WATCH


def listed(name: str) -> bool:
    """Whether `--NAME` takes a comma-separated list: `listed("lr")`."""
    return name in DEFAULTS and name not in NOT_LISTED


def parse_values(name: str, text: str) -> list[Any]:
    """The values of a RunConfig field given as text, one or a comma-separated list, each of the
    field's type: `parse_values("lr", "1e-4,3e-4") == [1e-4, 3e-4]`. ValueError names the flag
    and the bad value. Ranges (`--lr 0`) are the planner's to check, on each whole config, since
    some fields only make sense together (`--lr-decay-every` with `--lr-schedule step`)."""
    kind = type(DEFAULTS[name])
    parts = [part.strip() for part in str(text).split(",")]
    if not any(parts):
        raise ValueError(f"{flag(name)} needs a value; got {text!r}")
    values = []
    for part in parts:
        if not part:
            raise ValueError(f"{flag(name)} {text!r}: an empty value between commas")
        try:
            value = kind(part) if kind is not int else int(part, 10)
        except ValueError:
            expected = {int: "a whole number", float: "a number"}.get(kind, "a value")
            raise ValueError(f"{flag(name)} {text!r}: {part!r} is not {expected}") from None
        values.append(value)
    return values


def parse_seeds(text: str) -> list[int]:
    """Seeds as commas and ranges: `parse_seeds("0-2,7") == [0, 1, 2, 7]` (a range includes both
    ends). ValueError names the bad part."""
    seeds = []
    for part in (part.strip() for part in str(text).split(",")):
        low, dash, high = part.partition("-")
        try:  # (a leading '-' is a negative number, refused by check_seed)
            first, last = (int(low, 10), int(high, 10)) if dash and low else (int(part, 10),) * 2
        except ValueError:
            raise ValueError(
                f"--seeds {text!r}: {part!r} is not a seed or a range of seeds (0-4)"
            ) from None
        if last < first:
            raise ValueError(f"--seeds {text!r}: the range {part} runs backwards")
        check_seed("seed", first)
        check_seed("seed", last)  # (before the range is made: 0-5000000000 would fill memory)
        if last - first >= SEED_RANGE_LIMIT:
            raise ValueError(
                f"--seeds {text!r}: the range {part} has {last - first + 1} seeds, "
                f"more than the {SEED_RANGE_LIMIT} a sweep may plan"
            )
        seeds += range(first, last + 1)
    return seeds


# The two fields that size a run's cell: its hidden size, or the largest one within a parameter
# budget.
SIZING = ("hidden_size", "params_budget")


def check_budget_or_size(budgets: list[int], sizes: list[int]) -> None:
    """Refuse cells sized both by a parameter budget (any of `budgets` not 0) and by hidden sizes
    given (`sizes`): each sizes the cells, so one of them would be silently ignored.

    >>> check_budget_or_size([0], [64])  # a hidden size alone
    >>> check_budget_or_size([2000], [64])
    Traceback (most recent call last):
    ValueError: give a parameter budget (--params) or a hidden size (--hidden), not both
    """
    if any(budgets) and sizes:
        raise ValueError("give a parameter budget (--params) or a hidden size (--hidden), not both")


def command_line_wins(
    fields: dict[str, Any], typed: set[str], from_file: set[str]
) -> dict[str, Any]:
    """`fields` (field -> value or None) less a config file's hidden size or parameter budget where
    the command line gives the other one: a resolved config file sets the hidden size, and
    `--params` given with it replaces it (check_budget_or_size would refuse the two). `typed`: the
    fields given on the command line; `from_file`: those a config file gave.

    >>> command_line_wins(
    ...     {"hidden_size": 64, "params_budget": "2000"}, {"params_budget"}, {"hidden_size"}
    ... )
    {'hidden_size': None, 'params_budget': '2000'}
    """
    given = [name for name in SIZING if name in typed]
    if len(given) == 1 and all(fields.get(name) is not None for name in SIZING):
        other = SIZING[1 - SIZING.index(given[0])]
        if other in from_file:
            return {**fields, other: None}
    return fields


def config_grid(preset_name: str, fields: dict[str, Any]) -> tuple[RunConfig, dict[str, list]]:
    """The preset with the single values of `fields` (RunConfig field -> its option's text, None
    if not given), and the grid of those given as lists (field -> values). ValueError names the
    flag and value.

    >>> config_grid("quick", {"lr": "1e-3,1e-2", "steps": "50", "clip": None})[1]
    {'lr': [0.001, 0.01]}
    """
    single, grid = {}, {}
    for name, value in fields.items():
        if value is None:
            continue
        values = parse_values(name, value) if listed(name) else [value]
        if len(values) > 1:
            grid[name] = values
        else:
            single[name] = values[0]
    sizes = [single["hidden_size"]] if "hidden_size" in single else grid.get("hidden_size", [])
    check_budget_or_size([single.get("params_budget", 0), *grid.get("params_budget", [])], sizes)
    return preset(preset_name).replace(**single), grid
