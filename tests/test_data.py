"""IDX parsing, fetching from mirrors (a real HTTP server on 127.0.0.1), the cache, the sample."""

import gzip
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest

from rnnbench.data import (
    DataFile,
    DownloadError,
    IdxError,
    data_dir,
    fetch,
    load_idx,
    load_sample,
    parse_idx,
    read_maybe_gzipped,
    write_idx,
)
from rnnbench.data import mnist as mnist_data

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([3, 1, 4], dtype=np.uint8),
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
        np.array([[-5, 7]], dtype=np.int32),
    ],
)
def test_idx_round_trip(tmp_path, array, suffix):
    path = tmp_path / f"a-idx{suffix}"
    write_idx(path, array)
    back = parse_idx(read_maybe_gzipped(path), path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def _idx_bytes(array):
    return (
        bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes() + array.tobytes()
    )


GOOD = _idx_bytes(np.zeros((3, 2, 2), np.uint8))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not an IDX file (bad magic number none)"),
        (b"\x12\x34\x08\x01", "not an IDX file (bad magic number 12340801)"),
        (b"\0\0\x42\x01" + bytes(8), "unknown IDX type code 0x42"),
        (GOOD[:10], "truncated header (10 bytes, expected 16)"),
        (GOOD[:-1], "truncated: 27 bytes where shape (3, 2, 2) needs 28"),
        (GOOD + b"\0", "has trailing bytes: 29 bytes where shape (3, 2, 2) needs 28"),
    ],
)
def test_bad_idx_names_the_file_the_problem_and_the_fix(tmp_path, data, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(IdxError) as error:
        parse_idx(read_maybe_gzipped(path), path)
    assert str(path) in str(error.value) and message in str(error.value)
    assert "delete the file" in str(error.value) and "--data-dir" in str(error.value)


@pytest.mark.parametrize("cut", [10, 30])
def test_truncated_gzip_is_a_clear_error(tmp_path, cut):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(GOOD * 50)[:cut])
    with pytest.raises(IdxError, match="corrupt or truncated gzip data"):
        read_maybe_gzipped(path)


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNBENCH_DATA", str(tmp_path / "env"))
    assert data_dir(tmp_path / "flag") == tmp_path / "flag"  # --data-dir holds the files themselves
    assert data_dir() == tmp_path / "env" / "mnist"  # a root with one folder per dataset
    assert data_dir(dataset="fashion-mnist") == tmp_path / "env" / "fashion-mnist"
    monkeypatch.delenv("RNNBENCH_DATA")
    assert data_dir().parts[-2:] == ("data", "mnist") and "rnnbench" in str(data_dir())


# --- fetching, against a real HTTP server -------------------------------------------------


@pytest.fixture
def digits():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 6, 6), dtype=np.uint8)
    return images, DataFile(
        "train-images-idx3-ubyte", hashlib.sha256(_idx_bytes(images)).hexdigest()
    )


def _publish(root, mirror, name, content: bytes):
    (root / mirror).mkdir(exist_ok=True)
    (root / mirror / name).write_bytes(content)


def test_fetch_from_a_good_mirror_then_use_the_cache(server, digits, tmp_path):
    root, url = server
    images, file = digits
    _publish(root, "good", "train-images-idx3-ubyte.gz", gzip.compress(_idx_bytes(images)))
    cache = tmp_path / "cache"
    np.testing.assert_array_equal(load_idx(file, cache, [f"{url}/good"]), images)
    assert sorted(p.name for p in cache.iterdir()) == ["train-images-idx3-ubyte.gz"]
    (root / "good" / "train-images-idx3-ubyte.gz").unlink()  # the second load needs no network
    np.testing.assert_array_equal(load_idx(file, cache, [f"{url}/good"]), images)


def test_bad_mirrors_are_skipped_and_never_poison_the_cache(server, digits, tmp_path):
    root, url = server
    images, file = digits
    good = gzip.compress(_idx_bytes(images))
    flipped = bytearray(_idx_bytes(images))
    flipped[40] ^= 0xFF
    _publish(root, "corrupt", "train-images-idx3-ubyte.gz", gzip.compress(bytes(flipped)))
    _publish(root, "truncated", "train-images-idx3-ubyte.gz", good[: len(good) // 2])
    _publish(root, "good", "train-images-idx3-ubyte.gz", good)
    mirrors = [f"{url}/missing", f"{url}/corrupt", f"{url}/truncated", f"{url}/good"]
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # quietly: only a failure has something to say
        path = fetch(file, cache, mirrors)
    assert path == cache / "train-images-idx3-ubyte.gz" and path.read_bytes() == good
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary files left


def test_all_mirrors_bad_leaves_nothing_and_says_what_to_do(server, digits, tmp_path):
    root, url = server
    images, file = digits
    _publish(root, "corrupt", "train-images-idx3-ubyte.gz", gzip.compress(_idx_bytes(images[:-1])))
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as error:
        fetch(file, cache, [f"{url}/missing", f"{url}/corrupt"])
    message = str(error.value)
    assert f"{url}/missing/train-images-idx3-ubyte.gz: HTTP Error 404" in message
    assert f"{url}/corrupt/train-images-idx3-ubyte.gz:" in message and "SHA-256" in message
    assert f"Put it into {cache} yourself, as published (gzipped) or decompressed:" in message
    assert "train-images-idx3-ubyte.gz  or  train-images-idx3-ubyte" in message
    assert list(cache.iterdir()) == []


def test_missing_files_make_one_error_that_lists_them_all_and_a_silent_mirror_is_asked_once(
    server, tmp_path
):
    """Offline (a mirror on a closed port) beside a mirror that lacks the files: one error, no
    warnings, every missing file named with where to put it; what is already there is not
    asked for."""
    from rnnbench.data import load_dataset

    root, url = server
    (root / "empty").mkdir()
    files = {
        key: mnist_data.MNIST_FILES[key] for key in ("train_images", "train_labels", "test_labels")
    }
    cache = tmp_path / "cache"
    cache.mkdir()
    write_idx(cache / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))  # there already, by hand
    closed = "http://127.0.0.1:9/mnist"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DownloadError) as error:
            load_dataset(files, cache, [closed, f"{url}/empty"], "mnist")
    message = str(error.value)
    assert message.startswith(
        f"mnist: 2 files are missing from {cache}, and no mirror gave a good copy:\n"
    )
    assert f"{closed}/train-images-idx3-ubyte.gz: <urlopen error" in message
    assert f"{closed}/train-labels" not in message  # asked once, not once per file
    assert f"({closed} did not answer, so it was not asked for the other files)" in message
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        assert f"{url}/empty/{name}.gz: HTTP Error 404" in message
        assert f"\n  {name}.gz  or  {name}" in message
    assert "t10k-labels" not in message
    assert f"Put these files into {cache} yourself" in message and "pass --data-dir" in message
    assert sorted(p.name for p in cache.iterdir()) == [
        "t10k-labels-idx1-ubyte"
    ]  # no partial downloads


def test_files_placed_by_hand_are_used_without_network(digits, tmp_path):
    images, file = digits
    write_idx(tmp_path / "train-images-idx3-ubyte", images)  # plain, not gzipped
    np.testing.assert_array_equal(
        load_idx(file, tmp_path, ["http://127.0.0.1:9/unreachable"]), images
    )


def test_a_wrong_file_placed_by_hand_is_reported_not_replaced(digits, tmp_path):
    images, file = digits
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images[::-1])
    with pytest.raises(IdxError, match="SHA-256 of the content is .*, expected"):
        load_idx(file, tmp_path, ["http://127.0.0.1:9/unreachable"])
    assert (tmp_path / "train-images-idx3-ubyte.gz").exists()


def test_load_mnist_fetches_all_four_files(server, tmp_path, monkeypatch):
    root, url = server
    rng = np.random.default_rng(1)
    arrays = {
        "train_images": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, 12, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, 5, dtype=np.uint8),
    }
    files = {}
    for key, array in arrays.items():
        name = mnist_data.MNIST_FILES[key].name
        files[key] = DataFile(name, hashlib.sha256(_idx_bytes(array)).hexdigest())
        _publish(root, "m", f"{name}.gz", gzip.compress(_idx_bytes(array)))
    monkeypatch.setattr(mnist_data, "MNIST_FILES", files)
    loaded = mnist_data.load_mnist(tmp_path / "cache", [f"{url}/m"])
    for key, array in arrays.items():
        np.testing.assert_array_equal(loaded[key], array)


def test_mismatched_images_and_labels_are_refused(server, tmp_path, monkeypatch):
    for key, array in {
        "train_images": np.zeros((4, 2, 2), np.uint8),
        "train_labels": np.zeros(3, np.uint8),
        "test_images": np.zeros((2, 2, 2), np.uint8),
        "test_labels": np.zeros(2, np.uint8),
    }.items():
        write_idx(tmp_path / mnist_data.MNIST_FILES[key].name, array)
    monkeypatch.setattr(
        mnist_data,
        "MNIST_FILES",
        {k: DataFile(f.name, None) for k, f in mnist_data.MNIST_FILES.items()},
    )
    with pytest.raises(
        IdxError, match=r"images of shape \(4, 2, 2\) do not go with labels of shape \(3,\)"
    ):
        mnist_data.load_mnist(tmp_path, [])


def test_bundled_sample_is_real_mnist():
    images, labels = load_sample()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert images.max() == 255 and 0.1 < (images > 0).mean() < 0.3  # ink on a blank background


@pytest.mark.skipif(not FASHION.exists(), reason="apt-get install dataset-fashion-mnist")
def test_any_mnist_format_dataset_reads_through_the_same_code():
    images = load_idx(DataFile("train-images-idx3-ubyte", None), FASHION)
    labels = load_idx(DataFile("train-labels-idx1-ubyte", None), FASHION)
    assert images.shape == (60000, 28, 28) and np.bincount(labels).tolist() == [6000] * 10


@pytest.mark.skipif(not FASHION.exists(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_checksums_hold_for_debians_recompressed_files():
    arrays = mnist_data.load_mnist(
        FASHION, mirrors=[], dataset="fashion-mnist"
    )  # checked, no network
    assert arrays["train_images"].shape == (60000, 28, 28) and arrays["test_labels"].shape == (
        10000,
    )
