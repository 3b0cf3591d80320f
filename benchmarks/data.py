"""How long the data takes: parsing the four MNIST-format files (gzipped, and plain), with the
content checksum that every load does, and a whole task load (the tensors the runner uses).

    python benchmarks/data.py --data-dir /usr/share/datasets/fashion-mnist --dataset fashion-mnist
    python benchmarks/data.py --quick              # small generated files, seconds
"""

from __future__ import annotations

import gzip
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import click
import numpy as np

import rnnbench
from rnnbench.config import RunConfig
from rnnbench.data import mnist as mnist_data
from rnnbench.data import write_idx


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _generated(folder: Path) -> None:
    """Small files in MNIST's format (with their checksums accepted), for --quick."""
    rng = np.random.default_rng(0)
    for key, shape in (
        ("train_images", (600, 28, 28)),
        ("train_labels", (600,)),
        ("test_images", (100, 28, 28)),
        ("test_labels", (100,)),
    ):
        write_idx(
            folder / f"{mnist_data.MNIST_FILES[key].name}.gz",
            rng.integers(0, 256 if "images" in key else 10, shape).astype(np.uint8),
        )
    mnist_data.MNIST_FILES = {
        k: mnist_data.DataFile(f.name, None) for k, f in mnist_data.MNIST_FILES.items()
    }


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A folder holding the four files (gzipped).",
)
@click.option(
    "--dataset", type=click.Choice(["mnist", "fashion-mnist"]), default="mnist", show_default=True
)
@click.option("--repeats", default=5, show_default=True)
@click.option("--quick", is_flag=True, help="Small generated files: checks the script runs.")
def main(data_dir, dataset, repeats, quick):
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        generated = quick or data_dir is None  # no files given: small generated ones
        if generated:
            data_dir, dataset, repeats = scratch / "gz", "mnist", 1
            data_dir.mkdir()
            _generated(data_dir)
        plain = scratch / "plain"  # the same files decompressed, as a user may place them
        plain.mkdir()
        for path in data_dir.glob("*-ubyte.gz"):
            with gzip.open(path) as source, open(plain / path.name[:-3], "wb") as target:
                shutil.copyfileobj(source, target)
        gz_s = _median_seconds(
            lambda: mnist_data.load_mnist(data_dir, mirrors=[], dataset=dataset), repeats
        )
        plain_s = _median_seconds(
            lambda: mnist_data.load_mnist(plain, mirrors=[], dataset=dataset), repeats
        )
        task = rnnbench.build_task("pmnist" if dataset == "mnist" else "pfmnist")
        from rnnbench.tasks import mnist as task_module

        def task_load():
            task_module._images.cache_clear()  # a cold load, as the first run of a process does
            task.load(RunConfig(), data_dir)

        task_s = _median_seconds(task_load, repeats)
    click.echo(
        f"{dataset} files in {'generated scratch files' if generated else data_dir}, "
        f"median of {repeats}"
    )
    click.echo(f"  parse + checksum, gzipped files  {gz_s:7.3f} s")
    click.echo(f"  parse + checksum, plain files    {plain_s:7.3f} s")
    click.echo(f"  task load (split, permute, to tensors)  {task_s:7.3f} s")


if __name__ == "__main__":
    main()
