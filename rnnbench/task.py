"""The task contract: the one file a task author reads.

A task owns its data, the target of the readout, the loss and the score. The runner owns
everything else: it adds the readout `Linear(cell.output_size, num_classes)`, reads each
sequence's last *valid* step (readout "last") or every valid step (readout "every"), and hands
the task only what counts, never padding. A task is a subclass of `Task`, registered by name;
its options are its constructor's keyword arguments (with defaults), exactly like a cell's
(README.md, "Adding your own task", has a whole one; tasks/ holds the built-in ones).

Everything below that has a default may be left out. What a run recorded about its task
(`metadata()`: score name and direction, chance, reference lines...) goes into its row, so that
`rnnbench report` never asks the registry: a task renamed or removed later still reports.

Padding: sequences of different lengths are stored padded at the end (zeros) to the split's
longest, with `Split.lengths`. Cells are causal (the cell contract: the output at step t depends
on steps up to t only, which tests/test_padding.py checks for every registered cell), so what
follows a sequence's end cannot change its valid steps; the runner reads the last valid step
(`last`), or drops padded steps before the loss (`every`), and trims each batch to its longest
sequence.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from rnnbench.store.schema import data_hash, data_json  # noqa: F401 - (part of the task contract's API)

if TYPE_CHECKING:
    import numpy as np

    from rnnbench.config import RunConfig

IGNORE = -100  # a class target that counts for nothing (a step whose output is free)


@dataclass
class Split:
    """One split's tensors: inputs x (n, T, input_size), targets y ((n,) for readout "last";
    (n, T) for "every"; class indices, or floats for a regression), and the valid steps of each
    sequence (n,) where lengths vary (None: all T steps are valid)."""

    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"a split has {len(self.x)} inputs but {len(self.y)} targets")
        if self.lengths is not None:
            if self.lengths.shape != (len(self.x),):
                raise ValueError(
                    f"lengths must be one per sequence ({len(self.x)}); got shape "
                    f"{tuple(self.lengths.shape)}"
                )
            if len(self.x) and (
                int(self.lengths.min()) < 1 or int(self.lengths.max()) > self.x.shape[1]
            ):
                raise ValueError(f"lengths must be in [1, {self.x.shape[1]}] (the padded length)")

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device) -> Split:
        """The split on `device` (itself where it is there already)."""
        lengths = None if self.lengths is None else self.lengths.to(device)
        return replace(self, x=self.x.to(device), y=self.y.to(device), lengths=lengths)

    def take(self, index: torch.Tensor | slice, device: torch.device | None = None) -> Split:
        """The sequences at `index` (on `device`), trimmed to the longest of them: steps that are
        padding in every sequence of the batch are never computed."""
        x, y = self.x[index], self.y[index]
        lengths = None if self.lengths is None else self.lengths[index]
        if lengths is not None and len(lengths):
            longest = int(lengths.max())
            x = x[:, :longest]
            y = y[:, :longest] if y.dim() > 1 else y
        if device is not None:
            x, y = x.to(device), y.to(device)
            lengths = None if lengths is None else lengths.to(device)
        return Split(x, y, lengths)


@dataclass
class Splits:
    """Train / validation / test, and what identifies the data: `identity` is an open dict the task
    fills (MNIST: files, split and pixel order; a generated task: its generator's parameters,
    without the seed, which every row holds anyway, so that the seeds of one experiment share one
    identity). It goes into every row (`data_json`, and its hash `data_hash`, which the report
    groups by) and into the run key. `baseline_loss`: the loss of the best memoryless answer."""

    train: Split
    valid: Split
    test: Split
    identity: dict[str, Any] = field(default_factory=dict)
    baseline_loss: float | None = None

    def to(self, device: torch.device) -> Splits:
        """The three splits on `device` (the runner moves a run's data once, not batch by batch)."""
        return replace(
            self,
            train=self.train.to(device),
            valid=self.valid.to(device),
            test=self.test.to(device),
        )

    def sizes(self) -> dict[str, int]:
        return {"n_train": len(self.train), "n_valid": len(self.valid), "n_test": len(self.test)}


def valid_steps(
    outputs: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None, readout: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """What a task's loss and metrics see: from outputs (B, T, F) and targets, the last valid step
    of each sequence, (B, F) and (B,) (readout "last"), or every valid step, flattened: (n, F) and
    (n,) (readout "every"). Padding never reaches a task."""
    if readout == "last":
        if lengths is None:
            return outputs[:, -1], y
        rows = torch.arange(len(outputs), device=outputs.device)
        return outputs[rows, lengths.to(outputs.device) - 1], y
    if lengths is None:
        return outputs.reshape(-1, outputs.shape[-1]), y.reshape(-1)
    steps = torch.arange(outputs.shape[1], device=outputs.device)
    mask = steps < lengths.to(outputs.device)[:, None]  # (B, T)
    return outputs[mask], y[mask]


def split_generators(seed: int, salt: int) -> dict[str, torch.Generator]:
    """One random generator per split (train, valid, test), all fixed by the run's seed and a
    task's own `salt` (a constant per task, so that two tasks never share their draws)."""
    return {
        split: torch.Generator().manual_seed(seed * 1_000_003 + salt * 10 + i)
        for i, split in enumerate(("train", "valid", "test"))
    }


def split_sizes(task: str, n_train: int, n_valid: int, n_test: int) -> dict[str, int]:
    """Examples per split, {"train": n_train, ...}, or ValueError naming the first that is not
    positive."""
    for name, n in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)):
        if n < 1:
            raise ValueError(f"{task}: {name}={n} must be positive")
    return {"train": n_train, "valid": n_valid, "test": n_test}


def doc_summary(thing: Any) -> str:
    """The first paragraph of `thing`'s docstring, on one line ('' without one)."""
    return " ".join((inspect.getdoc(thing) or "").split("\n\n")[0].split())


class Task:
    """Base of every task: the attributes a task may set, each with its default, and the methods
    it implements (`load`) or may override (`loss`, `metrics`, `data_bytes`, `example`)."""

    name: ClassVar[str] = ""  # set by register_task
    version: ClassVar[int] = (
        1  # bump when what the task measures changes: rows of two versions never mix
    )
    input_size: int = 1  # features per step
    num_classes: int = 2  # outputs of the readout; 1 for a regression
    readout: ClassVar[Literal["last", "every"]] = (
        "last"  # the loss reads the last valid step, or every one
    )
    length: int = 0  # steps per sequence (the longest, where lengths vary): for the memory estimate
    data_per_seed: ClassVar[bool] = (
        False  # True: load() generates the data from config.seed (one copy per seed)
    )
    score_name: ClassVar[str] = "accuracy"  # what the `acc` metric is, in tables and figures
    higher_is_better: ClassVar[bool] = True
    target_score: ClassVar[float] = 0.0  # validation score whose first reaching is timed (0: none)
    chance: float | None = (
        None  # the score of the best memoryless answer, drawn as a reference line
    )
    reference_lines: ClassVar[dict[str, float]] = {}  # other lines for the test-score figure
    # Published numbers, each drawn only on data whose identity has these items:
    # {label: (score, {...})}.
    published_lines: ClassVar[dict[str, tuple[float, dict[str, Any]]]] = {}
    linear_baseline: ClassVar[bool] = (
        False  # fit a logistic regression on the whole inputs (fixed length)
    )
    citation: ClassVar[str] = ""  # BibTeX of the task's source
    # Option values a preset implies, where the user did not give them:
    # {"quick": {"data": "sample"}}.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def load(self, config: RunConfig, folder: Path | None = None) -> Splits:
        """The run's data, in config.dtype (`folder`: where the task's files are, --data-dir)."""
        raise NotImplementedError(f"task {self.name!r} does not implement load()")

    def data_bytes(self, config: RunConfig) -> int:
        """What load() holds at its peak, in bytes, estimated before loading (0: unknown)."""
        return 0

    def example(self) -> dict[str, np.ndarray] | None:
        """What the cell sees, for the report's input figure: named arrays, 2-D ones drawn as
        images (time along x), 1-D ones as curves; None: no figure."""
        return None

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch, a mean. `logits` (n, num_classes) and `y` (n,) are the
        valid steps only: one per sequence (readout "last") or every valid step, flattened."""
        if self.num_classes == 1:
            return F.mse_loss(logits.squeeze(-1), y)
        if not bool(
            (y != IGNORE).any()
        ):  # a batch whose targets all do not count: no loss, not NaN
            return logits.sum() * 0
        return F.cross_entropy(logits, y, ignore_index=IGNORE)

    def metrics(self, logits: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[float, float]]:
        """Sums and counts of a batch ({"loss": (sum, count), "acc": (sum, count)}), so that a
        split's mean is exact whatever the batch size. `acc` is the score (accuracy over the targets
        that count, or what score_name says)."""
        if self.num_classes == 1:
            error = (logits.squeeze(-1) - y).square().sum().item()
            return {"loss": (error, len(y)), "acc": (len(y) - error / self.score_scale(), len(y))}
        counted = y != IGNORE
        n = int(counted.sum())
        loss = F.cross_entropy(logits, y, ignore_index=IGNORE, reduction="sum").item()
        correct = ((logits.argmax(-1) == y) & counted).sum().item()
        return {"loss": (loss, n), "acc": (correct, n)}

    def score_scale(self) -> float:
        """A regression's score is 1 - MSE / score_scale() (R² when it is the target's variance)."""
        return 1.0

    def metadata(self) -> dict[str, Any]:
        """What rows record about the task, for reports made without the registry."""
        chance = self.chance if self.chance is None or math.isfinite(self.chance) else None
        return {
            "score_name": self.score_name,
            "higher_is_better": self.higher_is_better,
            "target_score": self.target_score,
            "chance": chance,
            "readout": self.readout,
            "reference_lines": dict(self.reference_lines),
            "published_lines": {
                k: [v, dict(where)] for k, (v, where) in self.published_lines.items()
            },
            "summary": doc_summary(type(self)),
        }


def check_task(task: Any) -> None:
    """Refuse (TypeError) a registered class that does not follow the contract."""
    if not isinstance(task, Task):
        raise TypeError(f"task {type(task).__name__} must subclass rnnbench.task.Task")
    if task.readout not in ("last", "every"):
        raise TypeError(
            f"task {task.name!r}: readout must be 'last' or 'every'; got {task.readout!r}"
        )
    if task.num_classes < 1 or task.input_size < 1:
        raise TypeError(f"task {task.name!r}: input_size and num_classes must be positive")


def one_hot(tokens: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """Token indices (..., T) as one-hot inputs (..., T, size) in `dtype`, all zeros where an index
    is negative (padding), built in place (no int64 one-hot on the way)."""
    valid = tokens >= 0
    return torch.zeros(*tokens.shape, size, dtype=dtype).scatter_(
        -1, tokens.clamp(min=0).unsqueeze(-1), valid.unsqueeze(-1).to(dtype)
    )


class TokenTask(Task):
    """A task of token sequences drawn from the run's seed and fed one-hot over `input_size`
    tokens. A subclass sets `salt` (its own constant) and `sizes` (examples per split), and
    implements `generate(n, generator) -> (tokens (n, T), targets)`, `options` (its data identity)
    and, if it knows it, `memoryless_loss()`; loading is done here."""

    data_per_seed = True
    salt: ClassVar[int] = 0
    sizes: dict[str, int]

    def generate(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f"task {self.name!r} does not implement generate()")

    @property
    def options(self) -> dict[str, Any]:
        """Every option's value: the data identity's items (without the seed: see Splits)."""
        return {}

    def memoryless_loss(self) -> float | None:
        """The loss of the best memoryless answer (the row's baseline_loss), if known."""
        return None

    def data_bytes(self, config: RunConfig) -> int:
        """Memory that load() holds at its peak, before generating anything: per step of every
        example, the one-hot input (dtype) and an int64 target it keeps, plus, while it generates
        the largest split, that split's int64 tokens and targets and float64 draws per step and
        token."""
        kept = sum(self.sizes.values()) * self.length * (self.input_size * config.itemsize + 8)
        generating = max(self.sizes.values()) * (self.length * 24 + self.input_size * 16)
        return kept + generating

    def load(self, config: RunConfig, folder: Path | None = None) -> Splits:
        dtype = getattr(torch, config.dtype)
        splits = {}
        for split, generator in split_generators(config.seed, self.salt).items():
            tokens, targets = self.generate(self.sizes[split], generator)
            splits[split] = Split(one_hot(tokens, self.input_size, dtype), targets)
        return Splits(
            splits["train"],
            splits["valid"],
            splits["test"],
            {"generator": self.name, **self.options},
            self.memoryless_loss(),
        )

    def example_input(self) -> tuple[np.ndarray, torch.Tensor]:
        """One sequence drawn from a fixed seed, for example(): its one-hot inputs (tokens x time)
        and its targets."""
        tokens, targets = self.generate(1, torch.Generator().manual_seed(0))
        return one_hot(tokens[0], self.input_size, torch.float64).T.numpy(), targets[0]
