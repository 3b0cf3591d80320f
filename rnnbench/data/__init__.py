"""Datasets: IDX parsing, fetching with checksums, the cache folder, the bundled MNIST sample."""

from rnnbench.data.fetch import (
    DataFile,
    DownloadError,
    data_dir,
    fetch,
    fetch_missing,
    load_dataset,
    load_idx,
)
from rnnbench.data.idx import IdxError, parse_idx, read_maybe_gzipped, write_idx
from rnnbench.data.mnist import FASHION_FILES, MNIST_FILES, MNIST_MIRRORS, load_mnist, load_sample

__all__ = [
    "DataFile",
    "DownloadError",
    "FASHION_FILES",
    "IdxError",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "data_dir",
    "fetch",
    "fetch_missing",
    "load_dataset",
    "load_idx",
    "load_mnist",
    "load_sample",
    "parse_idx",
    "read_maybe_gzipped",
    "write_idx",
]
