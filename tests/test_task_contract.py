"""The task contract's edges: what the runner does with a task that breaks it, the score's
direction, presets that imply options, and options that would not change the data."""

import json

import pandas as pd
import pytest
import torch
from conftest import invoke

import rnnbench
from rnnbench import report as reporting
from rnnbench import sweep
from rnnbench.config import RunConfig
from rnnbench.registry import TASKS, RegistryError
from rnnbench.runner import train
from rnnbench.task import IGNORE, Split, Splits, Task

CONFIG = RunConfig(
    hidden_size=8, batch_size=16, steps=6, eval_every=3, eval_batch_size=32, lr=1e-2, device="cpu"
)


class Sign(Task):
    """The sign of the first input, read at the end."""

    input_size, num_classes = 1, 2

    def load(self, config, folder=None):
        x = torch.randn(128, 6, 1, generator=torch.Generator().manual_seed(0))
        y = (x[:, 0, 0] > 0).long()
        return Splits(
            Split(x[:64], y[:64]),
            Split(x[64:96], y[64:96]),
            Split(x[96:], y[96:]),
            {"generator": "sign"},
        )


def fit(task):
    return train(
        task, rnnbench.parse_cell_spec("rnn"), CONFIG, task.load(CONFIG), torch.device("cpu")
    )


class TensorMetrics(Sign):
    def metrics(self, logits, y):  # tensors where numbers are due: the contract wants floats
        return {"loss": (torch.tensor(1.0), len(y)), "acc": (torch.tensor(0.5), len(y))}


class MeanMetrics(Sign):
    def metrics(self, logits, y):  # the old contract: means, not (sum, count)
        return {"loss": 1.0, "acc": 0.5}


class NoScore(Sign):
    def metrics(self, logits, y):
        return {"loss": (1.0, len(y))}


def test_metrics_given_as_tensors_are_numbers_in_the_row():
    result = fit(TensorMetrics())
    assert isinstance(result["test_acc"], float) and result["test_acc"] == pytest.approx(
        0.5 / 32
    )  # (one batch: 0.5 over 32)


@pytest.mark.parametrize(
    "task, message",
    [
        (MeanMetrics(), r"must return \{name: \(sum, count\)\}"),
        (NoScore(), "must return 'loss' and 'acc'"),
    ],
)
def test_metrics_that_break_the_contract_fail_before_training_with_what_it_wants(task, message):
    with pytest.raises(TypeError, match=message):
        fit(task)


class NothingCounts(Sign):
    """A split whose targets are all IGNORE: it cannot be scored."""

    readout = "every"

    def load(self, config, folder=None):
        x = torch.randn(32, 6, 1, generator=torch.Generator().manual_seed(0))
        counted = torch.zeros(32, 6, dtype=torch.int64)
        nothing = torch.full((32, 6), IGNORE)
        return Splits(
            Split(x, counted), Split(x, nothing), Split(x, counted), {"generator": "nothing"}
        )


def test_a_split_with_no_target_that_counts_is_an_error_not_a_silent_nan():
    with pytest.raises(ValueError, match="no target of this split counts for acc, loss"):
        fit(NothingCounts())


def test_a_training_batch_whose_targets_all_do_not_count_has_zero_loss_not_nan():
    task = NothingCounts()
    logits = torch.randn(5, 2, requires_grad=True)
    loss = task.loss(logits, torch.full((5,), IGNORE))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros(5, 2))


class LowerIsBetter(Sign):
    """The score is the loss: lower is better."""

    higher_is_better = False
    score_name = "loss"

    def metrics(self, logits, y):
        total = torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
        return {"loss": (total, len(y)), "acc": (total, len(y))}


def test_a_lower_is_better_score_keeps_the_weights_with_the_lowest_validation_score():
    result = fit(LowerIsBetter())
    valid = [point["acc"] for point in result["curves"] if point["split"] == "valid"]
    assert result["best_valid_acc"] == min(valid) and len(valid) == 2


def test_the_table_marks_the_recorded_direction_of_the_score():
    rows = pd.DataFrame(
        {"status": ["ok", "ok"], "task_json": [json.dumps(LowerIsBetter().metadata())] * 2}
    )
    assert reporting.score_higher_is_better(rows) is False
    assert reporting.score_higher_is_better(rows.assign(task_json="")) is True


def test_a_permutation_seed_for_a_task_in_raster_order_is_refused():
    with pytest.raises(ValueError, match="perm_seed=3: smnist reads the pixels in raster order"):
        rnnbench.build_task("smnist:perm_seed=3")


def test_options_a_preset_adds_are_named_when_they_conflict_with_the_users():
    assert str(sweep.resolve_task("pmnist:data=full", "quick")) == "pmnist"  # the user's value wins
    assert str(sweep.resolve_task("pmnist", "torch-eunn")) == "pmnist:protocol=pooled"
    with pytest.raises(
        ValueError,
        match="with the torch-eunn preset, which adds protocol=pooled: protocol=pooled "
        "applies to data=full",
    ):
        sweep.resolve_task("pmnist:data=sample", "torch-eunn")
    out = invoke("run", "--cells", "rnn", "--task", "listops:min_len=1000", "--preset", "quick")
    assert out.exit_code == 2 and "with the quick preset, which adds" in out.output


def test_a_preset_that_names_no_option_is_refused_at_registration(monkeypatch):
    TASKS.names()
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))

    class Typo(Sign):
        presets = {"quick": {"n_trian": 10}}

    with pytest.raises(
        RegistryError, match="its preset 'quick' sets n_trian, which is not an option"
    ):
        rnnbench.register_task("typo")(Typo)
    assert "typo" not in TASKS.names()


def test_a_class_that_is_not_a_task_is_refused():
    with pytest.raises(RegistryError, match="must be a subclass of rnnbench.task.Task"):
        rnnbench.register_task("not-a-task")(type("NotATask", (), {}))
