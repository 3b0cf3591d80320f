"""Pixel-by-pixel MNIST: `smnist` (784 steps, one pixel per step) and `pmnist` (the same with
one fixed permutation of the pixels, which spreads the strokes over the whole sequence), after
Le, Jaitly & Hinton (2015), arXiv:1504.00941; and the same on Fashion-MNIST.

Options (`pmnist:data=sample:perm_seed=3`): `data` full (the official files) or sample (the
bundled 5,000 digits); `protocol` standard (the official test set, 10k of train held out for
validation) or pooled (train and test pooled and split 50k/10k/10k, as the torch-eunn notebook
did); `perm_seed` (the pixel order; 0 is the notebook's). They are the task's data identity.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from rnnbench.config import RunConfig
from rnnbench.data import data_dir, load_mnist, load_sample
from rnnbench.registry import register_task
from rnnbench.task import Split, Splits, Task

SPLIT_SEED = 0  # fixes which images are held out for validation, in every protocol


def pixel_permutation(seed: int, pixels: int = 784) -> np.ndarray:
    """The fixed order of the pixels; seed 0 on 784 pixels gives the original notebook's
    (`np.random.RandomState(0)` shuffling 0..783)."""
    order = np.arange(pixels)
    np.random.RandomState(seed).shuffle(order)
    return order


@functools.lru_cache(maxsize=4)
def _images(
    dataset: str, source: str, protocol: str, folder: Path | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uint8 images (n, pixels) and labels per split, as the protocol splits them (cached: a
    sweep over cells loads the files once). The official sizes give 50k/10k/10k splits; a
    smaller dataset in the same format keeps the same proportions."""
    if source == "sample":  # the bundled 5,000 digits, sorted by class: shuffle, then 4k/0.5k/0.5k
        if dataset != "mnist":
            raise ValueError(
                f"no sample of {dataset} is bundled; "
                "use --data full (and --data-dir with its files)"
            )
        images, labels = load_sample()
        order = np.random.RandomState(SPLIT_SEED).permutation(len(images))
        cuts = {"train": order[:4000], "valid": order[4000:4500], "test": order[4500:]}
        return {k: (images[i].reshape(len(i), -1), labels[i]) for k, i in cuts.items()}
    arrays = load_mnist(folder, dataset=dataset)
    train_x, train_y = (
        arrays["train_images"].reshape(len(arrays["train_labels"]), -1),
        arrays["train_labels"],
    )
    test_x, test_y = (
        arrays["test_images"].reshape(len(arrays["test_labels"]), -1),
        arrays["test_labels"],
    )
    if (
        protocol == "standard"
    ):  # the official test set; 1/6 of the training set (10k) for validation
        order = np.random.RandomState(SPLIT_SEED).permutation(len(train_x))
        held_out = len(train_x) // 6
        return {
            "train": (train_x[order[held_out:]], train_y[order[held_out:]]),
            "valid": (train_x[order[:held_out]], train_y[order[:held_out]]),
            "test": (test_x, test_y),
        }
    pooled_x, pooled_y = np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
    order = np.random.RandomState(SPLIT_SEED).permutation(len(pooled_x))  # 70k -> 50k/10k/10k
    train_end, valid_end = len(order) * 5 // 7, len(order) * 6 // 7
    cuts = {
        "train": order[:train_end],
        "valid": order[train_end:valid_end],
        "test": order[valid_end:],
    }
    return {k: (pooled_x[i], pooled_y[i]) for k, i in cuts.items()}


@register_task("smnist")
class SequentialMNIST(Task):
    """Sequential MNIST: the 784 pixels in raster order, one per step; classify at the end."""

    version = 2  # (2: options data, protocol, perm_seed; data identity in data_json)
    input_size = 1
    num_classes = 10
    readout = "last"
    length = 28 * 28  # steps per sequence: one per pixel
    chance = 0.1
    permuted = False
    dataset = "mnist"
    linear_baseline = True  # computed on the rows' own data (rnnbench.baselines)
    # Drawn only on the data it was measured on: yann.lecun.com/exdb/mnist lists "linear classifier
    # (1-layer NN), no preprocessing: 12.0 % test error, LeCun et al. 1998". A linear model is
    # blind to the order of the pixels, so it holds for pmnist and smnist alike.
    published_lines = {
        "linear classifier, LeCun et al. 1998": (0.880, {"dataset": "mnist", "source": "full"})
    }
    target_score = 0.95  # for time_to_target_s: a level well-tuned recurrent cells reach
    presets = {"quick": {"data": "sample"}, "torch-eunn": {"protocol": "pooled"}}
    citation = """@article{le2015simple,
  title={A Simple Way to Initialize Recurrent Networks of Rectified Linear Units},
  author={Le, Quoc V. and Jaitly, Navdeep and Hinton, Geoffrey E.},
  journal={arXiv preprint arXiv:1504.00941}, year={2015}}"""
    IMAGES = {
        "full": 70_000,
        "sample": 5_000,
    }  # the official train + test files; the bundled sample

    def __init__(
        self,
        data: Literal["full", "sample"] = "full",
        protocol: Literal["standard", "pooled"] = "standard",
        perm_seed: int = 0,
    ):
        if not 0 <= perm_seed < 2**32:  # numpy's RandomState takes seeds in [0, 2**32)
            raise ValueError(f"perm_seed {perm_seed}: a seed must be an integer in [0, 2**32 - 1]")
        if data == "sample" and self.dataset != "mnist":
            raise ValueError(
                f"no sample of {self.dataset} is bundled; "
                "use data=full (and --data-dir with its files)"
            )
        if perm_seed and not self.permuted:  # (it would change the run's identity, not its data)
            raise ValueError(
                f"perm_seed={perm_seed}: {self.name} reads the pixels in raster order; the "
                "permuted tasks (pmnist, pfmnist) take a permutation seed"
            )
        if data == "sample" and protocol != "standard":
            raise ValueError(
                f"protocol={protocol} applies to data=full: the bundled sample has its own split "
                "(4,000 / 500 / 500)"
            )
        self.data, self.protocol, self.perm_seed = data, protocol, perm_seed

    def data_bytes(self, config: RunConfig) -> int:
        """Memory that load() holds at its peak, before loading anything: per image, the uint8
        pixels kept for every sweep (cached), the float sequence, its label, and the file's bytes
        and parsed copy while reading (full data; assumes the official 70,000 images)."""
        n = self.IMAGES[self.data]
        itemsize = config.itemsize
        return n * (self.length * (1 + itemsize + 3) + 8)

    def order(self, pixels: int = 784) -> np.ndarray:
        return pixel_permutation(self.perm_seed, pixels) if self.permuted else np.arange(pixels)

    def load(self, config: RunConfig, folder: Path | None = None) -> Splits:
        """Splits as float tensors x (n, 784, 1) in [0, 1] and int64 labels (n,)."""
        protocol = "sample" if self.data == "sample" else self.protocol
        images = _images(
            self.dataset,
            self.data,
            protocol,
            data_dir(folder, self.dataset) if self.data == "full" else None,
        )
        order = self.order(images["train"][0].shape[1])  # 784 pixels for MNIST: the sequence length
        dtype = getattr(torch, config.dtype)
        splits = {}
        for key, (x, y) in images.items():
            sequence = (
                torch.from_numpy(x[:, order]).to(dtype).div_(255).unsqueeze(-1)
            )  # (n, 784, 1)
            splits[key] = Split(sequence, torch.from_numpy(y.astype(np.int64)))
        identity = {
            "dataset": self.dataset,
            "source": self.data,
            "protocol": protocol,
            "perm_seed": self.perm_seed,
            "perm_sha256": hashlib.sha256(order.astype("<i8").tobytes()).hexdigest(),
        }
        return Splits(splits["train"], splits["valid"], splits["test"], identity)

    def example(self) -> dict[str, np.ndarray] | None:
        """A digit of the bundled sample as an image, the same digit after the task's pixel order,
        and the resulting input sequence."""
        if self.dataset != "mnist":
            return None  # (needs the dataset's files)
        images, _ = load_sample()
        image = images[0].astype(np.float32) / 255
        sequence = image.reshape(-1)[self.order(image.size)]
        return {
            "the digit": image,
            "its pixels in the task's order": sequence.reshape(image.shape),
            f"the input: {sequence.size} steps, one pixel each": sequence,
        }


@register_task("pmnist")
class PermutedMNIST(SequentialMNIST):
    """Permuted MNIST: the pixels in one fixed random order (`perm_seed`), one per step."""

    permuted = True
    target_score = 0.90


@register_task("sfmnist")
class SequentialFashionMNIST(SequentialMNIST):
    """Sequential Fashion-MNIST: Zalando's clothing images, pixel by pixel in raster order."""

    dataset = "fashion-mnist"
    published_lines: dict = {}  # (the linear baseline is computed on the data)
    presets = {"torch-eunn": {"protocol": "pooled"}}  # (no sample is bundled)
    target_score = 0.85
    citation = """@article{xiao2017fashion,
  title={Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms},
  author={Xiao, Han and Rasul, Kashif and Vollgraf, Roland}, journal={arXiv preprint \
arXiv:1708.07747},
  year={2017}}"""


@register_task("pfmnist")
class PermutedFashionMNIST(SequentialFashionMNIST):
    """Permuted Fashion-MNIST: the pixels in one fixed random order (`perm_seed`), one per step."""

    permuted = True
