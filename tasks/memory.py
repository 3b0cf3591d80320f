"""The classic long-memory tasks: the copying memory task and the adding problem, in the forms
of Arjovsky et al. (2016) and Jing et al. (2017). Their data is generated from the run's seed,
so train, validation and test sets are fixed by it and results reproduce exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from rnnbench.config import RunConfig
from rnnbench.registry import register_task
from rnnbench.tasks.mnist import Splits

BLANK, MARKER, SYMBOLS, RECALLED = 0, 9, 8, 10


def _generators(config: RunConfig, salt: int) -> dict[str, torch.Generator]:
    """One generator per split, all fixed by the run's seed (and the task: `salt`)."""
    return {split: torch.Generator().manual_seed(config.seed * 1_000_003 + salt * 10 + i)
            for i, split in enumerate(("train", "valid", "test"))}


def _itemsize(config: RunConfig) -> int:
    return torch.tensor([], dtype=getattr(torch, config.dtype)).element_size()


@register_task("copying")
class CopyingMemory:
    """Copying memory: 10 symbols from 8, `delay` blanks, a marker; output the 10 symbols at the end."""

    name = "copying"
    version = 1
    seeded_data = True  # the runner loads the data with each run's own seed
    input_size = 10  # one-hot: 0 blank, 1-8 symbols, 9 the marker
    num_classes = 9  # 0 blank, 1-8 symbols
    target = "every"  # cross-entropy at every step
    target_acc = 0.99  # time_to_target_s: all but 1% of the recalled symbols right
    score_name = "recall acc."
    reference_lines = {"memoryless: guessing the symbols": 1 / SYMBOLS}

    def __init__(self, delay: int = 100, n_train: int = 10_000, n_valid: int = 1_000, n_test: int = 1_000):
        if delay < 1 or min(n_train, n_valid, n_test) < 1:
            raise ValueError(f"copying needs delay >= 1 and positive split sizes; got delay={delay}, "
                             f"n_train={n_train}, n_valid={n_valid}, n_test={n_test}")
        self.delay, self.sizes = delay, {"train": n_train, "valid": n_valid, "test": n_test}

    @property
    def length(self) -> int:
        return self.delay + 2 * RECALLED  # symbols, delay - 1 blanks, marker, 10 blanks

    def generate(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Symbol indices (n, T + 20) of inputs and of targets."""
        symbols = torch.randint(1, SYMBOLS + 1, (n, RECALLED), generator=generator)
        inputs = torch.full((n, self.length), BLANK, dtype=torch.int64)
        inputs[:, :RECALLED] = symbols
        inputs[:, RECALLED + self.delay - 1] = MARKER
        targets = torch.full((n, self.length), BLANK, dtype=torch.int64)
        targets[:, -RECALLED:] = symbols
        return inputs, targets

    def data_bytes(self, config: RunConfig) -> int:
        """Memory that load() holds at its peak, before generating anything: per step of every
        example, the one-hot inputs (dtype) and int64 targets it keeps, plus, while it generates the
        largest split, the int64 symbol indices, targets and one-hot of that split."""
        itemsize = _itemsize(config)
        kept = sum(self.sizes.values()) * self.length * (self.input_size * itemsize + 8)
        generating = max(self.sizes.values()) * self.length * (8 + 8 + self.input_size * 8)
        return kept + generating

    def baseline_loss(self) -> float:
        """Cross-entropy of the best memoryless answer: blanks, then uniform over the 8 symbols."""
        return RECALLED * math.log(SYMBOLS) / self.length

    def load(self, config: RunConfig, folder: Path | None = None) -> Splits:
        dtype = getattr(torch, config.dtype)
        splits = {}
        for split, generator in _generators(config, salt=1).items():
            inputs, targets = self.generate(self.sizes[split], generator)
            splits[split] = (F.one_hot(inputs, self.input_size).to(dtype), targets)
        info = {"data": "generated", "protocol": "seeded", "perm_sha256": "",
                "baseline_loss": self.baseline_loss(), **{f"n_{k}": v for k, v in self.sizes.items()}}
        return Splits(splits["train"], splits["valid"], splits["test"], info)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.reshape(-1, self.num_classes), y.reshape(-1))

    def metrics(self, logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Loss over every step; accuracy on the 10 recalled symbols only (blanks are easy)."""
        recalled = logits[:, -RECALLED:].argmax(-1) == y[:, -RECALLED:]
        return {"loss": self.loss(logits, y).item(), "acc": recalled.float().mean().item()}


@register_task("adding")
class AddingProblem:
    """Adding problem: values and a two-hot marker over `length` steps; output the sum of the two
    marked values (one marker in each half)."""

    name = "adding"
    version = 1
    seeded_data = True
    input_size = 2  # the value, and the marker
    num_classes = 1  # a regression: one output
    target = "last"
    target_acc = 0.99  # time_to_target_s: R^2 of 0.99 (MSE under 0.0017)
    score_name = "R²"
    # acc is R^2 = 1 - MSE / Var(sum) with Var(sum) = 1/6: 0 is the baseline of always
    # answering 1 (MSE 0.167), 1 is exact.
    reference_lines = {"baseline: always 1 (MSE 0.167)": 0.0}
    TARGET_VARIANCE = 1 / 6

    def __init__(self, length: int = 100, n_train: int = 10_000, n_valid: int = 1_000, n_test: int = 1_000):
        if length < 2 or min(n_train, n_valid, n_test) < 1:
            raise ValueError(f"adding needs length >= 2 and positive split sizes; got length={length}, "
                             f"n_train={n_train}, n_valid={n_valid}, n_test={n_test}")
        self.length, self.sizes = length, {"train": n_train, "valid": n_valid, "test": n_test}

    def generate(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (n, length, 2) in float64 and the sums (n,)."""
        values = torch.rand(n, self.length, generator=generator, dtype=torch.float64)
        half = self.length // 2
        first = torch.randint(0, half, (n,), generator=generator)
        second = torch.randint(half, self.length, (n,), generator=generator)
        markers = torch.zeros(n, self.length, dtype=torch.float64)
        rows = torch.arange(n)
        markers[rows, first] = 1
        markers[rows, second] = 1
        return torch.stack([values, markers], -1), values[rows, first] + values[rows, second]

    def data_bytes(self, config: RunConfig) -> int:
        """Memory that load() holds at its peak, before generating anything: per example, the inputs
        (length x 2) and the sum it keeps (dtype), plus, while it generates the largest split, that
        split's float64 values, markers and stacked inputs."""
        itemsize = _itemsize(config)
        kept = sum(self.sizes.values()) * (self.length * 2 + 1) * itemsize
        generating = max(self.sizes.values()) * self.length * (8 + 8 + 16)
        return kept + generating

    def load(self, config: RunConfig, folder: Path | None = None) -> Splits:
        dtype = getattr(torch, config.dtype)
        splits = {}
        for split, generator in _generators(config, salt=2).items():
            inputs, sums = self.generate(self.sizes[split], generator)
            splits[split] = (inputs.to(dtype), sums.to(dtype))
        info = {"data": "generated", "protocol": "seeded", "perm_sha256": "",
                "baseline_loss": self.TARGET_VARIANCE, **{f"n_{k}": v for k, v in self.sizes.items()}}
        return Splits(splits["train"], splits["valid"], splits["test"], info)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(logits.squeeze(-1), y)

    def metrics(self, logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        mse = self.loss(logits, y).item()
        return {"loss": mse, "acc": 1 - mse / self.TARGET_VARIANCE}
