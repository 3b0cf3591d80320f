"""Selective copying, the Mamba paper's form of the copying task: the tokens to copy stand at
random steps among noise, so that a model must select them by content, not by time. Generated
from the run's seed, so train, validation and test sets are fixed by it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rnnbench.registry import register_task
from rnnbench.task import IGNORE, TokenTask, split_sizes

MAMBA = """@article{gu2023mamba,
  title={Mamba: Linear-Time Sequence Modeling with Selective State Spaces},
  author={Gu, Albert and Dao, Tri},
  journal={arXiv preprint arXiv:2312.00752}, year={2023}}"""
NOISE = (
    0  # token 0 is the noise (blank); vocab_size - 1 is the marker; the tokens to copy are between
)


@register_task("selective-copying")
class SelectiveCopying(TokenTask):
    """Selective copying: `n_tokens` tokens at random steps among noise, then `n_tokens` markers;
    at the markers, output the tokens in their order.

    The task of Gu & Dao (2023, arXiv:2312.00752, section 3.1 and appendix E.1), in the form of
    their generator (the S4 repository's copying task with variable=True): tokens drawn uniformly
    from 1 .. vocab_size - 2 stand at `n_tokens` distinct random steps of the first
    `length - n_tokens` steps (noise, token 0, elsewhere), and the last `n_tokens` steps are the
    marker (vocab_size - 1). Every step is read; only the marker steps count. The defaults are
    Mamba's: 4096 steps, 16 tokens to copy, a vocabulary of 16 counting noise and marker.
    Deviations: `length` is the whole sequence, markers included (Mamba's "length 4096" may be its
    generator's noise length, 32 steps fewer than the whole); a fixed training set of 10,000
    sequences instead of fresh ones at every step (Mamba: 400K steps of 64).
    """

    version = 1
    salt = 5  # (split_generators)
    readout = "every"  # a target at each marker step, IGNORE elsewhere
    target_score = 0.99
    score_name = "copy acc."
    citation = MAMBA
    # Quick: 4 tokens among 28 steps, Mamba's vocabulary (a 64-unit LSTM: 21-40% after the quick
    # preset's 300 steps, over 7.1% chance; at 64 steps it stays at chance).
    presets = {
        "quick": {"length": 32, "n_tokens": 4, "n_train": 2_000, "n_valid": 500, "n_test": 500}
    }

    def __init__(
        self,
        length: int = 4096,
        n_tokens: int = 16,
        vocab_size: int = 16,
        n_train: int = 10_000,
        n_valid: int = 1_000,
        n_test: int = 1_000,
    ):
        if n_tokens < 1:
            raise ValueError(f"selective-copying: n_tokens={n_tokens} must be >= 1")
        if length < 2 * n_tokens:
            raise ValueError(
                f"selective-copying: length={length} must be >= 2 x n_tokens = {2 * n_tokens} "
                "(the tokens, then as many markers)"
            )
        if vocab_size < 3:
            raise ValueError(
                f"selective-copying: vocab_size={vocab_size} must be >= 3 (noise, marker and at "
                "least one token to copy)"
            )
        self.length, self.n_tokens, self.vocab_size = length, n_tokens, vocab_size
        self.sizes = split_sizes("selective-copying", n_train, n_valid, n_test)

    @property
    def input_size(self) -> int:
        return (
            self.vocab_size
        )  # one-hot: 0 noise, 1 .. vocab_size - 2 tokens, vocab_size - 1 the marker

    @property
    def num_classes(self) -> int:
        return self.vocab_size  # a token (only 1 .. vocab_size - 2 are ever targets)

    @property
    def options(self) -> dict[str, int]:
        """Every option's value (the data identity's items)."""
        return {
            "length": self.length,
            "n_tokens": self.n_tokens,
            "vocab_size": self.vocab_size,
            **{f"n_{split}": n for split, n in self.sizes.items()},
        }

    @property
    def chance(self) -> float:
        # Memoryless: every marker step looks the same, and the token due there is uniform over the
        # vocab_size - 2 tokens, independent of it: 1 / (vocab_size - 2).
        return 1 / (self.vocab_size - 2)

    def generate(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Token indices (n, length) and targets (n, length), IGNORE except at the markers."""
        k, region = self.n_tokens, self.length - self.n_tokens
        symbols = torch.randint(1, self.vocab_size - 1, (n, k), generator=generator)
        steps = torch.rand(n, region, generator=generator).topk(k, dim=-1).indices.sort(-1).values
        tokens = torch.full((n, self.length), NOISE, dtype=torch.int64)
        tokens.scatter_(1, steps, symbols)
        tokens[:, region:] = self.vocab_size - 1
        targets = torch.full((n, self.length), IGNORE, dtype=torch.int64)
        targets[:, region:] = symbols
        return tokens, targets

    def memoryless_loss(self) -> float:
        """The memoryless answer's loss: uniform over the tokens, at every marker step."""
        return math.log(self.vocab_size - 2)

    def example(self) -> dict[str, Any]:
        inputs, targets = self.example_input()
        return {
            f"the input: {self.length} steps, one-hot (0 noise, 1-{self.vocab_size - 2} tokens, "
            f"{self.vocab_size - 1} the marker)": inputs,
            "the target at each marker step (0: no target)": targets.clamp(min=0)
            .numpy()
            .astype(float),
        }
