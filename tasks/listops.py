"""ListOps, the Long Range Arena's form: nested MAX / MIN / MED / SM expressions over digits,
evaluated to one digit. The expressions are generated from the run's seed with the benchmark's
own grammar and length filter, so train, validation and test sets are fixed by it.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnbench.config import RunConfig
from rnnbench.registry import register_task
from rnnbench.task import Split, Splits, Task, one_hot, split_generators, split_sizes

# The tokens, one-hot in this order: the ten digits, the four operators (each opens a bracket:
# "[MAX" is one token, as in the benchmark) and the closing bracket. The benchmark's "(" and ")"
# are display only: its input pipeline strips them before tokenising, and so do we.
DIGITS = 10
MIN, MAX, MED, SM, CLOSE = 10, 11, 12, 13, 14
OPERATORS = (MIN, MAX, MED, SM)
TOKENS = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "[MIN", "[MAX", "[MED", "[SM", "]")
# A node above the deepest level is a digit with this probability, else an operator (the benchmark
# draws u uniform and makes a digit where u > VALUE_P = 0.25).
DIGIT_P = 0.75

# Chance: the last step is always "]", so the best memoryless answer is a constant, the most
# frequent value. Its share, per distribution (max_depth, max_args, min_len, max_len), measured by
# generating 50,000 expressions from seed 0 with `_measure_chance` below (standard errors 0.17 and
# 0.14 points). In both, 0 and 9 are the most frequent values (MIN and MAX over many digits) and
# the other eight take 7-10% each.
MEASURED_CHANCE = {
    (10, 10, 500, 2000): 0.1699,  # the default (LRA's): 0 in 16.99%, 9 in 16.90%
    (10, 5, 50, 128): 0.1171,  # the quick preset's: 0 in 11.71%, 9 in 11.69%
}
LRA = """@inproceedings{tay2021long,
  title={Long Range Arena: A Benchmark for Efficient Transformers},
  author={Tay, Yi and Dehghani, Mostafa and Abnar, Samira and Shen, Yikang and Bahri, Dara and \
Pham, Philip
          and Rao, Jinfeng and Yang, Liu and Ruder, Sebastian and Metzler, Donald},
  booktitle={International Conference on Learning Representations}, year={2021},
  note={arXiv:2011.04006}}
@inproceedings{nangia2018listops,
  title={ListOps: A Diagnostic Dataset for Latent Tree Learning},
  author={Nangia, Nikita and Bowman, Samuel R.},
  booktitle={Proceedings of the 2018 Conference of the North American Chapter of the Association for
             Computational Linguistics: Student Research Workshop}, pages={92--99}, year={2018},
  note={arXiv:1804.06028}}"""


class _TooLong(Exception):
    """An expression that has passed max_len while being generated: it would be refused anyway."""


def _evaluate(op: int, args: list[int]) -> int:
    if op == MIN:
        return min(args)
    if op == MAX:
        return max(args)
    if op == SM:
        return sum(args) % 10
    ordered = sorted(args)  # MED: the median, rounded down where it falls between two digits
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) // 2


def _length_distribution(max_depth: int, max_args: int, max_len: int) -> np.ndarray:
    """P(an expression has L tokens) for L = 0..max_len (longer ones dropped), exactly, by the
    recursion of the grammar over depth, with FFTs (so that building a task stays instant)."""
    size = 1 << int(np.ceil(np.log2((max_len + 1) * max_args + 3)))  # no wrap-around in a product
    p = np.zeros(max_len + 1)
    p[1] = 1.0  # at the deepest level: a digit
    for _ in range(max_depth - 1):
        spectrum = np.fft.rfft(p, size)
        children = sum(spectrum**k for k in range(2, max_args + 1)) / (max_args - 1)
        operator = np.fft.irfft(children, size)[: max_len - 1].clip(min=0)  # +2: the operator, "]"
        p = np.zeros(max_len + 1)
        p[1] = DIGIT_P
        p[2:] = (1 - DIGIT_P) * operator
    return p


@register_task("listops")
class ListOps(Task):
    """ListOps: a nested expression of MAX, MIN, MED (median) and SM (sum modulo 10) over digits,
    one token per step; output its value (a digit) at the end.

    The Long Range Arena's task (Tay et al. 2021, arXiv:2011.04006), after Nangia & Bowman (2018,
    arXiv:1804.06028), with the benchmark's generator: a node shallower than `max_depth` is a digit
    with probability 0.75, else an operator over 2 to `max_args` sub-expressions, and an
    expression is kept if its token count lies strictly between `min_len` and `max_len`; repeated
    expressions are drawn again, so that no two examples of a run are the same. Deviations: the
    data is drawn from each run's seed instead of read from the published files (the same
    distribution), and the default sizes are 10,000 / 1,000 / 1,000 expressions (the benchmark's
    96,000 / 2,000 / 2,000 hold 12 GB as one-hot float32: n_train=96000:n_valid=2000:n_test=2000).
    """

    version = 1
    data_per_seed = True
    input_size = len(TOKENS)  # one-hot: digits 0-9, [MIN, [MAX, [MED, [SM, ] (padding: all zeros)
    num_classes = DIGITS
    readout = "last"
    target_score = 0.36  # time_to_target_s: about the LRA Transformer's test accuracy
    citation = LRA
    # Tay et al. 2021, table 1: the vanilla Transformer's test accuracy on ListOps (the published
    # files, drawn from this distribution).
    published_lines = {
        "Transformer, Tay et al. 2021": (
            0.3637,
            {
                "generator": "listops",
                "max_depth": 10,
                "max_args": 10,
                "min_len": 500,
                "max_len": 2000,
                "n_train": 96_000,
            },
        )
    }
    # Quick: the benchmark's depth, at most 5 arguments, 51-127 tokens (a 64-unit LSTM: 16-19% after
    # the quick preset's 300 steps, over 11.7% chance; ListOps is hard for it at any size).
    presets = {
        "quick": {
            "max_args": 5,
            "min_len": 50,
            "max_len": 128,
            "n_train": 2_000,
            "n_valid": 500,
            "n_test": 500,
        }
    }

    def __init__(
        self,
        max_depth: int = 10,
        max_args: int = 10,
        min_len: int = 500,
        max_len: int = 2000,
        n_train: int = 10_000,
        n_valid: int = 1_000,
        n_test: int = 1_000,
    ):
        if not 2 <= max_depth <= 500:
            raise ValueError(
                f"listops: max_depth={max_depth} must be in [2, 500] (1 allows only a single "
                "digit; the generator recurses once per level)"
            )
        if max_args < 2:
            raise ValueError(f"listops: max_args={max_args} must be >= 2")
        if min_len < 1:
            raise ValueError(f"listops: min_len={min_len} must be >= 1")
        if max_len < min_len + 2:
            raise ValueError(
                f"listops: max_len={max_len} must be >= min_len + 2 = {min_len + 2} "
                "(lengths lie strictly between the two)"
            )
        self.max_depth, self.max_args, self.min_len, self.max_len = (
            max_depth,
            max_args,
            min_len,
            max_len,
        )
        self.sizes = split_sizes("listops", n_train, n_valid, n_test)
        self.accepted = float(
            _length_distribution(max_depth, max_args, max_len)[min_len + 1 : max_len].sum()
        )
        if self.accepted < 1e-5:  # (one draw in 100,000 kept: generating would take forever)
            raise ValueError(
                f"listops: with max_depth={max_depth} and max_args={max_args}, an expression of "
                f"{min_len} < length < {max_len} tokens has probability {self.accepted:.1e}; "
                "lower min_len or raise max_depth / max_args"
            )

    @property
    def length(self) -> int:
        return self.max_len - 1  # the longest expression kept

    @property
    def options(self) -> dict[str, int]:
        """Every option's value (the data identity's items)."""
        return {
            "max_depth": self.max_depth,
            "max_args": self.max_args,
            "min_len": self.min_len,
            "max_len": self.max_len,
            **{f"n_{split}": n for split, n in self.sizes.items()},
        }

    @property
    def chance(self) -> float | None:
        """Always answering the most frequent class: measured (MEASURED_CHANCE) for the default and
        the quick distributions; None (unknown) for others."""
        return MEASURED_CHANCE.get((self.max_depth, self.max_args, self.min_len, self.max_len))

    def _expression(self, rng: random.Random, depth: int, tokens: list[int]) -> int:
        """Append one expression's tokens (the grammar of the benchmark's generator); its value.
        (Only rng.random() is drawn: its sequence is the one Python promises to keep across
        versions.)"""
        if depth >= self.max_depth or rng.random() < DIGIT_P:
            digit = int(rng.random() * DIGITS)
            tokens.append(digit)
            if len(tokens) >= self.max_len:
                raise _TooLong
            return digit
        n_args = 2 + int(rng.random() * (self.max_args - 1))  # 2 .. max_args
        op = OPERATORS[int(rng.random() * len(OPERATORS))]
        tokens.append(op)
        args = [self._expression(rng, depth + 1, tokens) for _ in range(n_args)]
        tokens.append(CLOSE)
        if len(tokens) >= self.max_len:
            raise _TooLong
        return _evaluate(op, args)

    def draw(self, rng: random.Random) -> tuple[list[int], int]:
        """One expression of min_len < length < max_len tokens, and its value. (Giving up on an
        expression as soon as it reaches max_len tokens keeps the same distribution: it would be
        refused at its end.)"""
        while True:
            tokens: list[int] = []
            try:
                value = self._expression(rng, 1, tokens)
            except _TooLong:
                continue
            if len(tokens) > self.min_len:
                return tokens, value

    def generate(
        self, n: int, generator: torch.Generator, seen: set[bytes] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token indices (n, longest) padded with -1, values (n,) and lengths (n,); an expression
        already in `seen` is drawn again (and every new one is added to it)."""
        rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))
        seen = set() if seen is None else seen
        expressions, values = [], []
        while len(expressions) < n:
            tokens, value = self.draw(rng)
            key = hashlib.blake2b(bytes(tokens), digest_size=16).digest()
            if key in seen:
                continue
            seen.add(key)
            expressions.append(tokens)
            values.append(value)
        lengths = torch.tensor([len(t) for t in expressions], dtype=torch.int64)
        indices = torch.full((n, int(lengths.max())), -1, dtype=torch.int64)
        for row, tokens in enumerate(expressions):
            indices[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.int64)
        return indices, torch.tensor(values, dtype=torch.int64), lengths

    def data_bytes(self, config: RunConfig) -> int:
        """Memory that load() holds at its peak, before generating anything: per step of every
        example (padded to max_len - 1), the one-hot inputs (dtype) it keeps, plus, while it builds
        the largest split, that split's token lists (a pointer per token), its int64 padded indices
        and their clamped copy, and the padding mask (bool and dtype)."""
        itemsize = config.itemsize
        kept = sum(self.sizes.values()) * (self.length * self.input_size * itemsize + 16)
        building = max(self.sizes.values()) * self.length * (8 + 8 + 8 + 1 + itemsize)
        return kept + building

    def load(self, config: RunConfig, folder: Path | None = None) -> Splits:
        dtype = getattr(torch, config.dtype)
        splits, seen = {}, set()
        for split, generator in split_generators(config.seed, salt=3).items():
            indices, values, lengths = self.generate(self.sizes[split], generator, seen)
            splits[split] = Split(one_hot(indices, self.input_size, dtype), values, lengths)
        identity = {"generator": "listops", **self.options}
        return Splits(splits["train"], splits["valid"], splits["test"], identity)

    def example(self) -> dict[str, Any]:
        indices, values, lengths = self.generate(1, torch.Generator().manual_seed(0))
        tokens = indices[0, : int(lengths[0])]
        opens, closes = ((tokens >= MIN) & (tokens < CLOSE)).long(), (tokens == CLOSE).long()
        depth = torch.cumsum(opens - closes, 0) + closes  # (a "]" is drawn at the depth it closes)
        return {
            f"the input: {len(tokens)} tokens, one-hot (0-9, MIN, MAX, MED, SM, ]); value "
            f"{int(values[0])}": one_hot(tokens, self.input_size, torch.float64).T.numpy(),
            "the nesting depth at each step": depth.numpy().astype(float),
        }


def _measure_chance(
    max_depth: int = 10,
    max_args: int = 10,
    min_len: int = 500,
    max_len: int = 2000,
    n: int = 50_000,
    seed: int = 0,
) -> tuple[float, list[int]]:
    """The most frequent class's share among n expressions (how MEASURED_CHANCE was measured)."""
    task = ListOps(max_depth, max_args, min_len, max_len)
    rng = random.Random(seed)
    counts = [0] * DIGITS
    for _ in range(n):
        counts[task.draw(rng)[1]] += 1
    return max(counts) / n, counts
