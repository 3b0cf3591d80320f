"""Pixel-by-pixel MNIST: `smnist` (784 steps, one pixel per step) and `pmnist` (the same with
one fixed permutation of the pixels, which spreads the strokes over the whole sequence).

A task owns its data, loss and metric (see tasks/__init__.py for the interface).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnbench.config import RunConfig
from rnnbench.data import data_dir, load_mnist, load_sample
from rnnbench.registry import register_task

SPLIT_SEED = 0  # fixes which images are held out for validation, in every protocol


@dataclass
class Splits:
    """Train / validation / test tensors, and what identifies the data (goes into every row)."""

    train: tuple[torch.Tensor, torch.Tensor]
    valid: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    info: dict[str, str | int]


def pixel_permutation(seed: int, pixels: int = 784) -> np.ndarray:
    """The fixed order of the pixels; seed 0 on 784 pixels gives the original notebook's
    (`np.random.RandomState(0)` shuffling 0..783)."""
    order = np.arange(pixels)
    np.random.RandomState(seed).shuffle(order)
    return order


@functools.lru_cache(maxsize=4)
def _images(dataset: str, source: str, protocol: str, folder: Path | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uint8 images (n, pixels) and labels per split, as the protocol splits them (cached: a
    sweep over cells loads the files once). The official sizes give 50k/10k/10k splits; a
    smaller dataset in the same format keeps the same proportions."""
    if source == "sample":  # the bundled 5,000 digits, sorted by class: shuffle, then 4k/0.5k/0.5k
        if dataset != "mnist":
            raise ValueError(f"no sample of {dataset} is bundled; use --data full (and --data-dir with its files)")
        images, labels = load_sample()
        order = np.random.RandomState(SPLIT_SEED).permutation(len(images))
        cuts = {"train": order[:4000], "valid": order[4000:4500], "test": order[4500:]}
        return {k: (images[i].reshape(len(i), -1), labels[i]) for k, i in cuts.items()}
    arrays = load_mnist(folder, dataset=dataset)
    train_x, train_y = arrays["train_images"].reshape(len(arrays["train_labels"]), -1), arrays["train_labels"]
    test_x, test_y = arrays["test_images"].reshape(len(arrays["test_labels"]), -1), arrays["test_labels"]
    if protocol == "standard":  # the official test set; 1/6 of the training set (10k) for validation
        order = np.random.RandomState(SPLIT_SEED).permutation(len(train_x))
        held_out = len(train_x) // 6
        return {"train": (train_x[order[held_out:]], train_y[order[held_out:]]),
                "valid": (train_x[order[:held_out]], train_y[order[:held_out]]),
                "test": (test_x, test_y)}
    pooled_x, pooled_y = np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
    order = np.random.RandomState(SPLIT_SEED).permutation(len(pooled_x))  # 70k -> 50k/10k/10k
    train_end, valid_end = len(order) * 5 // 7, len(order) * 6 // 7
    cuts = {"train": order[:train_end], "valid": order[train_end:valid_end], "test": order[valid_end:]}
    return {k: (pooled_x[i], pooled_y[i]) for k, i in cuts.items()}


@register_task("smnist")
class SequentialMNIST:
    """Sequential MNIST: the 784 pixels in raster order, one per step; classify at the end."""

    name = "smnist"
    version = 1
    input_size = 1
    num_classes = 10
    target = "last"  # the loss reads the output of the last step only
    permuted = False
    dataset = "mnist"
    # The test-accuracy plots draw the linear baseline computed on the rows' own data (a recurrent
    # cell below it is not using the sequence: rnnbench.baselines), and this published number,
    # on the data it was measured on only: yann.lecun.com/exdb/mnist lists "linear classifier
    # (1-layer NN), no preprocessing: 12.0 % test error, LeCun et al. 1998". A linear model is
    # blind to the order of the pixels, so it holds for pmnist and smnist alike.
    reference_lines: dict[str, float] = {}
    published_lines = {"linear classifier, LeCun et al. 1998": (0.880, "full")}
    target_acc = 0.95  # for time_to_target_s: a level well-tuned recurrent cells reach
    score_name = "accuracy"
    length = 28 * 28  # steps per sequence: one per pixel
    IMAGES = {"full": 70_000, "sample": 5_000}  # the official train + test files; the bundled sample

    def data_bytes(self, config: RunConfig) -> int:
        """Memory that load() holds at its peak, before loading anything: per image, the uint8
        pixels kept for every sweep (cached), the float sequence, its label, and the file's bytes
        and parsed copy while reading (full data; assumes the official 70,000 images)."""
        n = self.IMAGES[config.data]
        itemsize = torch.tensor([], dtype=getattr(torch, config.dtype)).element_size()
        return n * (self.length * (1 + itemsize + 3) + 8)

    def load(self, config: RunConfig, folder: Path | None = None) -> Splits:
        """Splits as float tensors x (n, 784, 1) in [0, 1] and int64 labels (n,)."""
        protocol = "sample" if config.data == "sample" else config.protocol
        images = _images(self.dataset, config.data, protocol,
                         data_dir(folder, self.dataset) if config.data == "full" else None)
        pixels = images["train"][0].shape[1]  # 784 for MNIST: the sequence length
        order = pixel_permutation(config.perm_seed, pixels) if self.permuted else np.arange(pixels)
        dtype = getattr(torch, config.dtype)
        splits = {}
        for key, (x, y) in images.items():
            sequence = torch.from_numpy(x[:, order]).to(dtype).div_(255).unsqueeze(-1)  # (n, 784, 1)
            splits[key] = (sequence, torch.from_numpy(y.astype(np.int64)))
        info = {"data": config.data, "protocol": protocol,
                "perm_sha256": hashlib.sha256(order.astype("<i8").tobytes()).hexdigest(),
                "n_train": len(splits["train"][1]), "n_valid": len(splits["valid"][1]),
                "n_test": len(splits["test"][1])}
        return Splits(splits["train"], splits["valid"], splits["test"], info)

    def example(self, perm_seed: int = 0) -> dict[str, np.ndarray]:
        """What the cell sees, for the report: a digit of the bundled sample as an image, the same
        digit after the task's pixel order, and the resulting input sequence."""
        images, _ = load_sample()
        image = images[0].astype(np.float32) / 255
        order = pixel_permutation(perm_seed, image.size) if self.permuted else np.arange(image.size)
        sequence = image.reshape(-1)[order]
        return {"image": image, "reordered": sequence.reshape(image.shape), "sequence": sequence}

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y)

    def metrics(self, logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Mean loss and accuracy of a batch (the runner averages them over batches by size)."""
        return {"loss": F.cross_entropy(logits, y).item(), "acc": (logits.argmax(-1) == y).float().mean().item()}


@register_task("pmnist")
class PermutedMNIST(SequentialMNIST):
    """Permuted MNIST: the pixels in one fixed random order (`perm_seed`), one per step."""

    name = "pmnist"
    permuted = True
    target_acc = 0.90


@register_task("sfmnist")
class SequentialFashionMNIST(SequentialMNIST):
    """Sequential Fashion-MNIST: Zalando's clothing images, pixel by pixel in raster order."""

    name = "sfmnist"
    dataset = "fashion-mnist"
    published_lines: dict[str, tuple[float, str]] = {}  # (the linear baseline is computed on the data)
    target_acc = 0.85
    example = None  # needs the dataset's files: the report draws no input figure


@register_task("pfmnist")
class PermutedFashionMNIST(SequentialFashionMNIST):
    """Permuted Fashion-MNIST: the pixels in one fixed random order (`perm_seed`), one per step."""

    name = "pfmnist"
    permuted = True
