"""The copying memory task and the adding problem: generators, solvers, baselines, learning."""

import math

import pytest
import torch

import rnnbench
from rnnbench.config import RunConfig
from rnnbench.runner import train
from rnnbench.task import valid_steps

CONFIG = RunConfig(seed=3, device="cpu")


def means(task, logits, y):
    """The task's metrics of a whole batch, as means (what the runner computes over a split), with
    the logits of every step (B, T, C) or of the last (B, C)."""
    if logits.dim() == 3:
        logits, y = valid_steps(logits, y, None, task.readout)
    return {name: total / count for name, (total, count) in task.metrics(logits, y).items()}


def copying(delay=7, n=50):
    return rnnbench.build_task(f"copying:delay={delay}:n_train={n}:n_valid={n}:n_test={n}")


def adding(length=12, n=50):
    return rnnbench.build_task(f"adding:length={length}:n_train={n}:n_valid={n}:n_test={n}")


def test_copying_sequences_have_the_published_layout():
    task = copying(delay=7)
    splits = task.load(CONFIG)
    x, y = splits.train.x, splits.train.y
    assert x.shape == (50, 27, 10) and y.shape == (50, 27)  # T + 20 steps, one-hot over 10 inputs
    symbols = x.argmax(-1)
    assert ((symbols[:, :10] >= 1) & (symbols[:, :10] <= 8)).all()
    assert (
        (symbols[:, 10:16] == 0).all()
        and (symbols[:, 16] == 9).all()
        and (symbols[:, 17:] == 0).all()
    )
    assert (y[:, :17] == 0).all() and torch.equal(y[:, 17:], symbols[:, :10])
    assert splits.baseline_loss == pytest.approx(10 * math.log(8) / 27)
    assert splits.train.lengths is None  # (one length: no padding)


def test_a_hand_written_solver_recalls_everything():
    task = copying(delay=30)
    test = task.load(CONFIG).test
    x, y = test.x, test.y
    answer = torch.zeros_like(y)
    answer[:, -10:] = x[:, :10].argmax(-1)  # read the symbols, say them after the marker
    logits = torch.nn.functional.one_hot(answer, 9).float() * 100
    metrics = means(task, logits, y)
    assert metrics["acc"] == 1.0 and metrics["loss"] < 1e-6


def test_the_memoryless_baseline_loss_is_exact():
    task = copying(delay=13)
    y = task.load(CONFIG).test.y
    log_probs = torch.full((*y.shape, 9), -math.inf)
    log_probs[:, :-10, 0] = 0.0  # blanks, certain, until the symbols are due
    log_probs[:, -10:, 1:] = -math.log(8)  # then a uniform guess among the 8 symbols
    assert means(task, log_probs, y)["loss"] == pytest.approx(task.memoryless_loss(), rel=1e-6)
    assert means(task, log_probs, y)["acc"] == pytest.approx(1 / 8, abs=0.05)


def test_adding_inputs_have_one_marker_in_each_half_and_the_sum_is_recoverable():
    task = adding(length=12)
    x, y = task.load(CONFIG).train.x, task.load(CONFIG).train.y
    assert x.shape == (50, 12, 2) and y.shape == (50,)
    markers = x[..., 1]
    assert (markers.sum(1) == 2).all() and (markers[:, :6].sum(1) == 1).all()
    solved = (x[..., 0] * markers).sum(1, keepdim=True)  # the hand-written solver
    assert means(task, solved, y) == {
        "loss": pytest.approx(0.0, abs=1e-12),
        "acc": pytest.approx(1.0),
    }


def test_the_adding_baseline_is_an_mse_of_one_sixth():
    task = adding(length=10, n=200_000)
    y = task.load(RunConfig(dtype="float64")).test.y
    always_one = torch.ones(len(y), 1, dtype=y.dtype)
    assert means(task, always_one, y)["loss"] == pytest.approx(1 / 6, abs=0.002)
    assert means(task, always_one, y)["acc"] == pytest.approx(0.0, abs=0.012)


@pytest.mark.parametrize("make", [copying, adding])
def test_data_is_fixed_by_the_seed(make):
    task = make()
    first, again, other = task.load(CONFIG), task.load(CONFIG), task.load(CONFIG.replace(seed=4))
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(first, split).x, getattr(again, split).x)
        assert not torch.equal(getattr(first, split).x, getattr(other, split).x)
    assert not torch.equal(first.train.x, first.test.x)
    assert first.identity == other.identity  # (the seed is the row's, not the data identity's)
    assert first.identity != make(n=51).load(CONFIG).identity  # (every option is part of it)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("copying:delay=0", "delay >= 1"),
        ("adding:length=1", "length >= 2"),
        ("copying:n_test=0", "positive split sizes"),
    ],
)
def test_bad_task_options(spec, message):
    with pytest.raises(ValueError, match=message):
        rnnbench.build_task(spec)


def test_lstm_beats_the_memoryless_baseline_on_a_short_copy():
    task = rnnbench.build_task("copying:delay=2:n_train=2000:n_valid=200:n_test=200")
    config = RunConfig(
        hidden_size=32,
        batch_size=64,
        steps=800,
        eval_every=100,
        eval_batch_size=200,
        optimizer="adam",
        lr=1e-2,
        device="cpu",
    )
    result = train(
        task, rnnbench.parse_cell_spec("lstm"), config, task.load(config), torch.device("cpu")
    )
    assert result["test_loss"] < 0.9 * task.memoryless_loss()
    assert result["test_acc"] > 2 / 8  # recalls well above guessing


def test_a_score_far_below_zero_still_selects_best_weights():
    """R^2 of an untrained adder can be below -1; the best-validation weights must still be kept."""
    task = adding(length=10, n=64)
    config = RunConfig(
        hidden_size=8,
        batch_size=16,
        steps=4,
        eval_every=2,
        eval_batch_size=64,
        lr=1e-9,
        device="cpu",
    )
    result = train(
        _Offset(task),
        rnnbench.parse_cell_spec("rnn"),
        config,
        task.load(config),
        torch.device("cpu"),
    )
    assert result["best_valid_acc"] < -1
    assert (
        math.isfinite(result["test_acc"]) and result["test_acc"] < -1
    )  # tested on the best weights
    assert result["best_valid_step"] in (2, 4)


class _Offset:
    """The adding task, with every output shifted by 10 (as if the readout started far off)."""

    def __init__(self, task):
        self.task = task

    def __getattr__(self, name):
        return getattr(self.task, name)

    def loss(self, logits, y):
        return self.task.loss(logits + 10, y)

    def metrics(self, logits, y):
        return self.task.metrics(logits + 10, y)
