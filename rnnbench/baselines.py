"""A task's linear baseline, computed on the run's own data.

A reference line belongs to the data it is drawn on: a linear classifier's accuracy on the full
MNIST test set says little about a plot of runs on the 5,000-digit sample. So for every
classification task read at its last step, rnnbench fits a multinomial logistic regression to
the whole input sequence (every pixel, in the task's order: a linear model does not care about
the order), on the run's own training split, with its L2 penalty chosen on the run's validation
split, and records its test accuracy in each row (`linear_acc`). The result is cached on disk by
a hash of the data itself, so a sweep computes it once per dataset and split.

Published numbers are drawn separately, with their source, and only on the data they were
measured on (a task's `published` lines).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from rnnbench.task import Split, Splits, Task, data_json

log = logging.getLogger(__name__)

PENALTIES = (0.0, 1e-4, 1e-3, 1e-2)  # L2 weights on the (standardised) inputs' weights
ITERATIONS = 100


def applies(task: Task) -> bool:
    """Whether the task asks for a linear baseline (Task.linear_baseline): classification at the
    last step, of inputs of one length."""
    return task.linear_baseline and task.readout == "last" and task.num_classes > 1


def _digest(splits: Any) -> str:
    hasher = hashlib.sha256(data_json(splits.identity).encode())
    for split in (splits.train, splits.valid, splits.test):
        for tensor in (split.x, split.y):
            hasher.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return hasher.hexdigest()[:20]


def _cache(folder: Path | None) -> Path:
    if folder is not None:
        return folder
    from platformdirs import user_cache_dir

    return Path(os.environ.get("RNNBENCH_CACHE") or user_cache_dir("rnnbench")) / "baselines"


def _fit(x: torch.Tensor, y: torch.Tensor, classes: int, penalty: float) -> torch.nn.Linear:
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], classes, dtype=torch.float64)
    optimizer = torch.optim.LBFGS(
        model.parameters(), max_iter=ITERATIONS, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        loss = (
            torch.nn.functional.cross_entropy(model(x), y) + penalty * model.weight.square().sum()
        )
        loss.backward()
        return loss

    optimizer.step(closure)
    return model


@torch.no_grad()
def _accuracy(model: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(1) == y).double().mean())


def linear_accuracy(task: Task, splits: Splits, cache: Path | None = None) -> float | None:
    """Test accuracy of the L2-regularised logistic regression on the run's splits (the penalty
    chosen on validation), or None where it does not apply. Cached by the data's hash.

    >>> linear_accuracy(task, splits)  # pmnist on the bundled sample: about 0.89
    """
    if not applies(task):
        return None
    path = _cache(cache) / f"{_digest(splits)}.json"
    try:
        return float(json.loads(path.read_text())["test_acc"])
    except (OSError, ValueError, KeyError, TypeError):
        log.info(
            "computing the linear baseline on this data "
            "(logistic regression, L2 chosen on validation; once)"
        )

    def features(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        if split.lengths is not None:
            raise ValueError(f"task {task.name}: a linear baseline needs sequences of one length")
        return split.x.reshape(len(split), -1).to(torch.float64), split.y.long()

    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = map(
        features, (splits.train, splits.valid, splits.test)
    )
    mean, std = (
        train_x.mean(0),
        train_x.std(0).clamp_min(1e-6),
    )  # standardised, as the penalty assumes
    train_x, valid_x, test_x = ((x - mean) / std for x in (train_x, valid_x, test_x))
    best = max(
        PENALTIES,
        key=lambda p: _accuracy(_fit(train_x, train_y, task.num_classes, p), valid_x, valid_y),
    )
    result = _accuracy(_fit(train_x, train_y, task.num_classes, best), test_x, test_y)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        from rnnbench.store.claims import write_atomically

        write_atomically(
            path,
            json.dumps(
                {"test_acc": result, "penalty": best, "data": splits.identity}, default=str
            ).encode(),
            durable=False,
        )
    except OSError:
        pass  # (a cache that cannot be written only costs time)
    return result
