"""Induction heads, the synthetic task of H3 and Mamba: a random token sequence in which a
trigger token is followed once by some token b; when the trigger comes again at the end, output b.
Generated from the run's seed, so train, validation and test sets are fixed by it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from rnnbench.registry import register_task
from rnnbench.task import TokenTask, split_sizes

CITATION = """@article{olsson2022context,
  title={In-context Learning and Induction Heads},
  author={Olsson, Catherine and Elhage, Nelson and Nanda, Neel and Joseph, Nicholas and DasSarma, \
Nova
          and Henighan, Tom and Mann, Ben and Askell, Amanda and Bai, Yuntao and Chen, Anna and \
Conerly, Tom
          and Drain, Dawn and Ganguli, Deep and Hatfield-Dodds, Zac and Hernandez, Danny and \
Johnston, Scott
          and Jones, Andy and Kernion, Jackson and Lovitt, Liane and Ndousse, Kamal and Amodei, \
Dario
          and Brown, Tom and Clark, Jack and Kaplan, Jared and McCandlish, Sam and Olah, Chris},
  journal={arXiv preprint arXiv:2209.11895}, year={2022}}
@inproceedings{fu2023hungry,
  title={Hungry Hungry Hippos: Towards Language Modeling with State Space Models},
  author={Fu, Daniel Y. and Dao, Tri and Saab, Khaled K. and Thomas, Armin W. and Rudra, Atri and \
R{\\'e}, Christopher},
  booktitle={International Conference on Learning Representations}, year={2023},
  note={arXiv:2212.14052}}
@article{gu2023mamba,
  title={Mamba: Linear-Time Sequence Modeling with Selective State Spaces},
  author={Gu, Albert and Dao, Tri},
  journal={arXiv preprint arXiv:2312.00752}, year={2023}}"""


@register_task("induction-heads")
class InductionHeads(TokenTask):
    """Induction heads: random tokens in which a trigger token is followed once by a token b; the
    trigger again at the last step; output b there.

    After Olsson et al. (2022, arXiv:2209.11895), in the form of the synthetic task of H3 (Fu et
    al. 2023, arXiv:2212.14052; its generator in HazyResearch/safari) used by Mamba (Gu & Dao 2023,
    arXiv:2312.00752, section 4.1.2: length 256, vocabulary 16): the first length - 1 steps are
    tokens drawn uniformly from the vocab_size - 1 ordinary tokens, one of the first length - 2 is
    replaced by the trigger (token vocab_size - 1), and the last step is the trigger; b is the
    token after the first trigger. Deviations: the vocabulary counts the trigger but not H3's unused
    no-op token; a fixed training set of 10,000 sequences instead of fresh ones at every step.
    """

    version = 1
    salt = 6  # (split_generators)
    readout = "last"
    target_score = 0.99
    citation = CITATION
    # Quick: 20 steps (a 64-unit LSTM: 70-94% after the quick preset's 300 steps, over 6.7% chance;
    # ~20% at 24 steps, chance at 32 or 64).
    presets = {"quick": {"length": 20, "n_train": 2_000, "n_valid": 500, "n_test": 500}}

    def __init__(
        self,
        length: int = 256,
        vocab_size: int = 16,
        n_train: int = 10_000,
        n_valid: int = 1_000,
        n_test: int = 1_000,
    ):
        if length < 3:
            raise ValueError(f"induction-heads: length={length} must be >= 3 (trigger, b, trigger)")
        if vocab_size < 3:
            raise ValueError(
                f"induction-heads: vocab_size={vocab_size} must be >= 3 (the trigger and at "
                "least two ordinary tokens)"
            )
        self.length, self.vocab_size = length, vocab_size
        self.sizes = split_sizes("induction-heads", n_train, n_valid, n_test)

    @property
    def input_size(self) -> int:
        return (
            self.vocab_size
        )  # one-hot: 0 .. vocab_size - 2 ordinary tokens, vocab_size - 1 the trigger

    @property
    def num_classes(self) -> int:
        return self.vocab_size  # a token (only ordinary ones are ever targets)

    @property
    def trigger(self) -> int:
        return self.vocab_size - 1

    @property
    def options(self) -> dict[str, int]:
        """Every option's value (the data identity's items)."""
        return {
            "length": self.length,
            "vocab_size": self.vocab_size,
            **{f"n_{split}": n for split, n in self.sizes.items()},
        }

    @property
    def chance(self) -> float:
        # Memoryless: the last step is always the trigger, and b is uniform over the vocab_size - 1
        # ordinary tokens, independent of it: 1 / (vocab_size - 1).
        return 1 / (self.vocab_size - 1)

    def generate(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Token indices (n, length) and the targets b (n,)."""
        tokens = torch.randint(0, self.trigger, (n, self.length), generator=generator)
        first = torch.randint(
            0, self.length - 2, (n,), generator=generator
        )  # b at first + 1 <= length - 2
        rows = torch.arange(n)
        tokens[rows, first] = self.trigger
        tokens[:, -1] = self.trigger
        return tokens, tokens[rows, first + 1]

    def memoryless_loss(self) -> float:
        """The memoryless answer's loss: uniform over the ordinary tokens."""
        return math.log(self.vocab_size - 1)

    def example(self) -> dict[str, Any]:
        inputs, target = self.example_input()
        return {
            f"the input: {self.length} steps, one-hot ({self.vocab_size - 1} tokens, then the "
            f"trigger); target {int(target)}": inputs
        }
