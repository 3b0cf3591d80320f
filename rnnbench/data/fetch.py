"""Dataset files: where they are cached, how they are fetched and checked.

A file is looked for in the data folder as `NAME` or `NAME.gz` (files placed there by hand
are used as they are, with no network). A missing file is downloaded from each mirror in
turn to a temporary name, checked against the SHA-256 of its decompressed content (so that
one checksum holds for the gzipped and the plain file, whoever compressed it), and only
then renamed into place: a failed or corrupt download never leaves a file where a good one
belongs. Files that no mirror gives make one error listing them all and where to put them; a
mirror that does not answer (offline) is asked once, not once per file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs
from tqdm import tqdm

from rnnbench.data.idx import FIX_HINT, IdxError, parse_idx, read_maybe_gzipped

DATA_ENV = "RNNBENCH_DATA"


class DownloadError(RuntimeError):
    """No mirror gave a good copy; the message lists what each mirror did."""


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its name (without .gz) and the SHA-256 of its decompressed content."""

    name: str
    sha256: str | None  # None: any content is accepted (a user's own dataset)


def data_dir(explicit: str | Path | None = None, dataset: str = "mnist") -> Path:
    """The folder of a dataset's files: `explicit` (--data-dir, which holds the files), else
    $RNNBENCH_DATA/DATASET, else DATASET in the user cache folder. MNIST and Fashion-MNIST
    share file names, so each dataset has its own folder."""
    if explicit is not None:
        return Path(explicit).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser() / dataset
    return Path(platformdirs.user_cache_dir("rnnbench")) / "data" / dataset


def find_local(file: DataFile, folder: Path) -> Path | None:
    """`folder/NAME` or `folder/NAME.gz`, whichever exists (the plain file first)."""
    for candidate in (folder / file.name, folder / f"{file.name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download(url: str, target: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=url.rsplit("/", 1)[-1],
            disable=None,
            leave=False,
        ) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))


def _checked_content(file: DataFile, path: Path) -> bytes:
    """The decompressed content of `path`, after checking its SHA-256."""
    content = read_maybe_gzipped(path)
    if file.sha256 is not None:
        digest = hashlib.sha256(content).hexdigest()
        if digest != file.sha256:
            raise IdxError(
                f"{path}: SHA-256 of the content is {digest}, expected {file.sha256}; {FIX_HINT}"
            )
    return content


def _fetch_one(
    file: DataFile, folder: Path, mirrors: Sequence[str], failures: list[str], silent: set[str]
) -> Path | None:
    """Download `file` (as NAME.gz) from the first mirror that gives a good copy; None if none did.
    Each failure is added to `failures`; a mirror that does not answer at all (refused, no route,
    no name, timed out: not an HTTP error) joins `silent` and is not asked again."""
    for mirror in mirrors:
        if mirror in silent:
            continue
        url = f"{mirror.rstrip('/')}/{file.name}.gz"
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{file.name}.", suffix=".part")
        os.close(handle)
        temporary = Path(temporary)
        try:
            _download(url, temporary)
            _checked_content(file, temporary)
            target = folder / f"{file.name}.gz"
            os.replace(temporary, target)
            return target
        except (urllib.error.URLError, OSError, IdxError) as error:
            failures.append(f"  {url}: {error}")
            if isinstance(error, OSError) and not isinstance(error, urllib.error.HTTPError):
                silent.add(mirror)
        finally:
            temporary.unlink(missing_ok=True)
    return None


def fetch_missing(
    files: Sequence[DataFile], folder: Path, mirrors: Sequence[str], what: str = ""
) -> list[Path]:
    """Download each of `files` (as NAME.gz) from the first mirror that gives a good copy; the
    paths, in order. Files that no mirror gave raise one DownloadError that lists them all, what
    each mirror did, and where to put the files by hand; what was fetched stays. Nothing is
    printed on the way (no warnings): the error says it all, once."""
    if mirrors:
        folder.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    silent: set[str] = set()
    paths, missing = [], []
    for file in files:
        path = (
            _fetch_one(file, folder, mirrors, failures, silent)
            if len(silent) < len(mirrors)
            else None
        )
        paths.append(path)
        if path is None:
            missing.append(file)
    if not missing:
        return paths
    tried = failures or ["  (no mirror to download from)"]
    if silent and len(missing) > 1:
        they = "it was" if len(silent) == 1 else "they were"
        tried.append(
            f"  ({', '.join(sorted(silent))} did not answer, "
            f"so {they} not asked for the other files)"
        )
    width = max(len(f.name) for f in missing) + 5
    source = f"from {mirrors[0].rstrip('/')}/NAME.gz for example, or " if mirrors else "or "
    raise DownloadError(
        f"{what + ': ' if what else ''}{len(missing)} file{'s are' if len(missing) > 1 else ' is'} "
        f"missing from {folder}, and no mirror gave a good copy:\n"
        + "\n".join(tried)
        + f"\nPut {'these files' if len(missing) > 1 else 'it'} into {folder} yourself, as "
        "published (gzipped) or decompressed:\n"
        + "\n".join(f"  {f.name + '.gz':{width}}or  {f.name}" for f in missing)
        + f"\n{source}pass --data-dir a folder that holds them; then run again."
    )


def fetch(file: DataFile, folder: Path, mirrors: Sequence[str]) -> Path:
    """Download `file` (as NAME.gz) from the first mirror that gives a good copy (see
    fetch_missing)."""
    return fetch_missing([file], folder, mirrors)[0]


def load_idx(file: DataFile, folder: Path, mirrors: Sequence[str] = ()) -> np.ndarray:
    """The array of a dataset file: from `folder` if it is there, else fetched from `mirrors`."""
    path = find_local(file, folder)
    if path is None:
        if not mirrors:
            raise FileNotFoundError(f"{file.name} (or {file.name}.gz) is not in {folder}")
        path = fetch(file, folder, mirrors)
    return parse_idx(_checked_content(file, path), path)


def load_dataset(
    files: dict[str, DataFile], folder: Path, mirrors: Sequence[str], what: str
) -> dict[str, np.ndarray]:
    """The arrays of several files of one dataset (`what`, named in errors), from `folder`; those
    missing there are fetched first, all of them, so that one error lists every file still
    missing."""
    missing = [file for file in files.values() if find_local(file, folder) is None]
    if missing:
        fetch_missing(missing, folder, mirrors, what)
    return {key: load_idx(file, folder) for key, file in files.items()}
