"""The classic long-memory tasks: the copying memory task and the adding problem, in the forms
of Arjovsky et al. (2016) and Jing et al. (2017). Their data is generated from the run's seed,
so train, validation and test sets are fixed by it and results reproduce exactly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rnnbench.config import RunConfig
from rnnbench.registry import register_task
from rnnbench.task import Split, Splits, Task, TokenTask, split_generators

BLANK, MARKER, SYMBOLS, RECALLED = 0, 9, 8, 10
ARJOVSKY = """@inproceedings{arjovsky2016unitary,
  title={Unitary Evolution Recurrent Neural Networks}, author={Arjovsky, Martin and Shah, Amar and \
Bengio, Yoshua},
  booktitle={International Conference on Machine Learning}, pages={1120--1128}, year={2016}}"""


@register_task("copying")
class CopyingMemory(TokenTask):
    """Copying memory: 10 symbols from 8, `delay` blanks, a marker; output the 10 symbols at the
    end."""

    version = 2  # (2: the task contract of rnnbench.task; data identity in data_json)
    salt = 1  # (split_generators)
    input_size = 10  # one-hot: 0 blank, 1-8 symbols, 9 the marker
    num_classes = 9  # 0 blank, 1-8 symbols
    readout = "every"  # cross-entropy at every step
    target_score = 0.99  # time_to_target_s: all but 1% of the recalled symbols right
    score_name = "recall acc."
    chance = 1 / SYMBOLS  # memoryless: guessing the symbols
    citation = ARJOVSKY

    def __init__(
        self, delay: int = 100, n_train: int = 10_000, n_valid: int = 1_000, n_test: int = 1_000
    ):
        if delay < 1 or min(n_train, n_valid, n_test) < 1:
            raise ValueError(
                f"copying needs delay >= 1 and positive split sizes; got delay={delay}, "
                f"n_train={n_train}, n_valid={n_valid}, n_test={n_test}"
            )
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

    @property
    def options(self) -> dict[str, int]:
        return {"delay": self.delay, **{f"n_{split}": n for split, n in self.sizes.items()}}

    def memoryless_loss(self) -> float:
        """Cross-entropy of the best memoryless answer: blanks, then uniform over the 8 symbols."""
        return RECALLED * math.log(SYMBOLS) / self.length

    def metrics(self, logits: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[float, float]]:
        """Loss over every step; accuracy on the recalled symbols only (the only targets that are
        not blanks: blanks are easy)."""
        recalled = y != BLANK
        loss = F.cross_entropy(logits, y, reduction="sum").item()
        correct = ((logits.argmax(-1) == y) & recalled).sum().item()
        return {"loss": (loss, len(y)), "acc": (correct, int(recalled.sum()))}

    def example(self) -> dict[str, Any]:
        inputs, targets = self.example_input()
        return {
            f"the input: {self.length} steps, one-hot (0 blank, 1-8 symbols, 9 the marker)": inputs,
            "the target at every step": targets.numpy().astype(float),
        }


@register_task("adding")
class AddingProblem(Task):
    """Adding problem: values and a two-hot marker over `length` steps; output the sum of the two
    marked values (one marker in each half)."""

    version = 2  # (2: the task contract of rnnbench.task; data identity in data_json)
    data_per_seed = True
    input_size = 2  # the value, and the marker
    num_classes = 1  # a regression: one output
    readout = "last"
    target_score = 0.99  # time_to_target_s: R^2 of 0.99 (MSE under 0.0017)
    score_name = "R²"
    # acc is R^2 = 1 - MSE / Var(sum) with Var(sum) = 1/6: 0 is the baseline of always
    # answering 1 (MSE 0.167), 1 is exact.
    chance = 0.0  # memoryless: always answering 1
    citation = ARJOVSKY
    TARGET_VARIANCE = 1 / 6

    def __init__(
        self, length: int = 100, n_train: int = 10_000, n_valid: int = 1_000, n_test: int = 1_000
    ):
        if length < 2 or min(n_train, n_valid, n_test) < 1:
            raise ValueError(
                f"adding needs length >= 2 and positive split sizes; got length={length}, "
                f"n_train={n_train}, n_valid={n_valid}, n_test={n_test}"
            )
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
        itemsize = config.itemsize
        kept = sum(self.sizes.values()) * (self.length * 2 + 1) * itemsize
        generating = max(self.sizes.values()) * self.length * (8 + 8 + 16)
        return kept + generating

    def load(self, config: RunConfig, folder: Path | None = None) -> Splits:
        dtype = getattr(torch, config.dtype)
        splits = {}
        for split, generator in split_generators(config.seed, salt=2).items():
            inputs, sums = self.generate(self.sizes[split], generator)
            splits[split] = Split(inputs.to(dtype), sums.to(dtype))
        identity = {
            "generator": "adding",
            "length": self.length,
            **{f"n_{k}": n for k, n in self.sizes.items()},
        }
        return Splits(
            splits["train"], splits["valid"], splits["test"], identity, self.TARGET_VARIANCE
        )

    def score_scale(self) -> float:
        return self.TARGET_VARIANCE  # the score is R^2

    def example(self) -> dict[str, Any]:
        inputs, _ = self.generate(1, torch.Generator().manual_seed(0))
        return {f"the input: {self.length} steps of (value, marker)": inputs[0].T.numpy()}
