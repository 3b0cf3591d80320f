"""Multi-query associative recall (MQAR), the Zoology benchmark's form: key-value pairs, then the
keys again, each to be answered with its value. Generated from the run's seed, so train,
validation and test sets are fixed by it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rnnbench.registry import register_task
from rnnbench.task import IGNORE, TokenTask, split_sizes

ZOOLOGY = """@inproceedings{arora2024zoology,
  title={Zoology: Measuring and Improving Recall in Efficient Language Models},
  author={Arora, Simran and Eyuboglu, Sabri and Timalsina, Aman and Johnson, Isys and Poli, Michael
          and Zou, James and Rudra, Atri and R{\\'e}, Christopher},
  booktitle={International Conference on Learning Representations}, year={2024},
  note={arXiv:2312.04927}}"""


@register_task("mqar")
class MQAR(TokenTask):
    """Multi-query associative recall: `num_kv_pairs` key-value pairs, then the keys again at
    random later steps among blanks; at each key, output the value it was paired with.

    The form of Zoology (Arora et al. 2023, arXiv:2312.04927; its generator
    `zoology/data/multiquery_ar.py`): token 0 is the blank, keys are drawn without replacement from
    1 .. vocab_size/2 - 1 and values from vocab_size/2 .. vocab_size - 1; the pairs fill the first
    2 x num_kv_pairs steps, and each key is queried once, at an even offset of the remaining steps
    drawn without replacement with probability proportional to (gap + 1)^(power_a - 1) (a power
    law: most queries come soon after the pairs). Every step is read; only the queries count. The
    defaults, 128 steps and 8 pairs, are a setting of the paper's figure 2. Deviations: the steps
    between queries are blanks (Zoology's option random_non_queries=False; its default fills them
    with random tokens); inputs are one-hot, so the default vocabulary is 256 tokens instead of the
    paper's 8,192 (at 8,192 one sequence of 128 steps would hold 4 MB), and the vocabulary may be
    smaller than the sequence (Zoology asserts it is larger; the quick preset has 32 tokens over
    64 steps); fixed 10,000 training sequences instead of 100,000.
    """

    version = 1
    salt = 4  # (split_generators)
    readout = "every"  # a target at each query, IGNORE elsewhere
    target_score = 0.99
    score_name = "recall acc."
    citation = ZOOLOGY
    # Quick: Zoology's smallest setting (64 steps, 4 pairs) over 32 tokens (a 64-unit LSTM: 22-24%
    # after the quick preset's 300 steps, over 6.25% chance).
    presets = {
        "quick": {
            "vocab_size": 32,
            "length": 64,
            "num_kv_pairs": 4,
            "n_train": 2_000,
            "n_valid": 500,
            "n_test": 500,
        }
    }

    def __init__(
        self,
        vocab_size: int = 256,
        length: int = 128,
        num_kv_pairs: int = 8,
        power_a: float = 0.01,
        n_train: int = 10_000,
        n_valid: int = 1_000,
        n_test: int = 1_000,
    ):
        if length < 4 or length % 2:
            raise ValueError(
                f"mqar: length={length} must be even and >= 4 (pairs, then queries at even offsets)"
            )
        if num_kv_pairs < 1 or 4 * num_kv_pairs > length:
            raise ValueError(
                f"mqar: num_kv_pairs={num_kv_pairs} must be in [1, length / 4 = {length // 4}] "
                f"(2 steps per pair and room for its query at an even offset)"
            )
        if vocab_size < 4 or vocab_size // 2 - 1 < num_kv_pairs:
            raise ValueError(
                f"mqar: vocab_size={vocab_size} leaves {max(vocab_size // 2 - 1, 0)} keys for "
                f"num_kv_pairs={num_kv_pairs}; it needs vocab_size >= {2 * num_kv_pairs + 2}"
            )
        if not 0 < power_a <= 1:
            raise ValueError(
                f"mqar: power_a={power_a} must be in (0, 1] (1: queries placed uniformly)"
            )
        self.vocab_size, self.length, self.num_kv_pairs, self.power_a = (
            vocab_size,
            length,
            num_kv_pairs,
            power_a,
        )
        self.sizes = split_sizes("mqar", n_train, n_valid, n_test)

    @property
    def input_size(self) -> int:
        return self.vocab_size  # one-hot tokens: 0 the blank, then keys, then values

    @property
    def num_classes(self) -> int:
        return self.vocab_size  # a token (only values are ever targets)

    @property
    def options(self) -> dict[str, Any]:
        """Every option's value (the data identity's items)."""
        return {
            "vocab_size": self.vocab_size,
            "length": self.length,
            "num_kv_pairs": self.num_kv_pairs,
            "power_a": self.power_a,
            **{f"n_{split}": n for split, n in self.sizes.items()},
        }

    @property
    def n_values(self) -> int:
        return self.vocab_size - self.vocab_size // 2

    @property
    def chance(self) -> float:
        # Memoryless: at a query step the input is the key alone, and the value bound to it is
        # uniform over the n_values value tokens, independent of the key: 1 / n_values.
        return 1 / self.n_values

    def generate(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Token indices (n, length) and targets (n, length), IGNORE except at the queries."""
        k, first_value = self.num_kv_pairs, self.vocab_size // 2
        keys = torch.rand(n, first_value - 1, generator=generator).argsort(-1)[:, :k] + 1
        values = torch.rand(n, self.n_values, generator=generator).argsort(-1)[:, :k] + first_value
        context = 2 * k
        space = (self.length - context) // 2  # even offsets at which a query may stand
        weights = self.power_a * torch.arange(1, space + 1, dtype=torch.float64) ** (
            self.power_a - 1
        )
        # Drawing k gaps without replacement, each in turn with probability proportional to its
        # weight (numpy's choice(p=..., replace=False), as Zoology does): the k largest of
        # u^(1/weight), in decreasing order (Efraimidis & Spirakis 2006), so that key i gets the
        # i-th gap drawn.
        u = torch.rand(n, space, generator=generator, dtype=torch.float64).clamp_(min=1e-300)
        gaps = (u.log() / (weights / weights.sum())).topk(k, dim=-1).indices
        tokens = torch.zeros(n, self.length, dtype=torch.int64)
        tokens[:, 0:context:2], tokens[:, 1:context:2] = keys, values
        queries = context + 2 * gaps
        tokens.scatter_(1, queries, keys)
        targets = torch.full((n, self.length), IGNORE, dtype=torch.int64).scatter_(
            1, queries, values
        )
        return tokens, targets

    def memoryless_loss(self) -> float:
        """The memoryless answer's loss: uniform over the values, at every query."""
        return math.log(self.n_values)

    def example(self) -> dict[str, Any]:
        inputs, targets = self.example_input()
        return {
            f"the input: {self.length} steps, one-hot over {self.vocab_size} tokens (0 blank, "
            "keys, values)": inputs,
            "the target: the value at each query (0: no target)": targets.clamp(min=0)
            .numpy()
            .astype(float),
        }
