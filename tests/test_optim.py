"""Optimizers, learning-rate schedules and cell learning-rate groups (rnnbench.optim)."""

import json
import logging
import math
import re

import pandas as pd
import pytest
import test_runner  # noqa: E402 - its tiny task (pytest puts tests/ on sys.path)
import torch
from conftest import invoke

import rnnbench
from rnnbench import checkpoints, optim, store
from rnnbench.config import PRESETS, RunConfig
from rnnbench.registry import CELLS
from rnnbench.runner import SequenceClassifier, train
from rnnbench.task import Split

NEW_FIELDS = ("weight_decay", "lr_schedule", "lr_warmup_steps", "lr_decay_every", "lr_decay")


def test_defaults_keep_every_run_key():
    assert RunConfig().identity() == {}
    for config in PRESETS.values():
        assert not set(config.identity()) & set(NEW_FIELDS)
    # A row of results/copying.csv, written before these fields existed: its key comes out the same.
    old = {
        "batch_size": 50,
        "clip": 0.0,
        "device": "auto",
        "dtype": "float32",
        "eval_batch_size": 500,
        "eval_every": 100,
        "hidden_size": 868,
        "lr": 0.003,
        "optimizer": "rmsprop",
        "params_budget": 20000,
        "sampling": "epochs",
        "seed": 0,
        "steps": 300,
        "target": 0.0,
        "warmup_steps": 2,
    }
    identity = {
        "task": "copying",
        "task_spec": "copying",
        "task_version": 2,
        "cell_spec": "eurnn",
        "config": RunConfig(**old).identity(),
        "device": "cpu",
        "threads": 2,
        "cell_version": 2,
        "data": {
            "delay": 100,
            "generator": "copying",
            "n_test": 1000,
            "n_train": 10000,
            "n_valid": 1000,
        },
    }
    assert store.run_key(identity) == "5e5054b2955ee5f7"
    assert (
        str(rnnbench.parse_cell_spec("eurnn:angles_lr=0")) == "eurnn"
    )  # the default is left out of specs


def test_constant_and_warm_up_factors():
    constant = RunConfig(steps=10)
    assert [optim.learning_rate_factor(constant, s) for s in (0, 5, 9)] == [1.0, 1.0, 1.0]
    warm = RunConfig(steps=10, lr_warmup_steps=3)  # 1/4, 2/4, 3/4, then the full rate from step 3
    assert [optim.learning_rate_factor(warm, s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_cosine_factors_after_warm_up():
    cosine = RunConfig(steps=110, lr_schedule="cosine", lr_warmup_steps=10)
    factor = lambda step: optim.learning_rate_factor(cosine, step)  # noqa: E731
    assert factor(9) == pytest.approx(10 / 11)
    assert factor(10) == 1.0  # start
    assert factor(35) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert factor(60) == pytest.approx(0.5)  # middle
    assert (
        factor(109) == pytest.approx((1 + math.cos(math.pi * 99 / 100)) / 2) and factor(109) > 0
    )  # last step
    assert factor(110) == pytest.approx(0.0, abs=1e-15)  # end


def test_step_decay_boundaries():
    config = RunConfig(
        steps=100, lr_schedule="step", lr_decay_every=10, lr_decay=0.5, lr_warmup_steps=2
    )
    factors = {s: optim.learning_rate_factor(config, s) for s in (0, 1, 2, 11, 12, 21, 22, 32)}
    assert factors == {0: 1 / 3, 1: 2 / 3, 2: 1.0, 11: 1.0, 12: 0.5, 21: 0.5, 22: 0.25, 32: 0.125}


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"lr_decay": 0.5},
            "--lr-decay 0.5 applies to --lr-schedule step only; got --lr-schedule constant",
        ),
        (
            {"lr_decay_every": 5, "lr_schedule": "cosine"},
            "--lr-decay-every 5 applies to --lr-schedule step only",
        ),
        ({"lr_schedule": "step"}, "--lr-schedule step needs --lr-decay-every >= 1"),
        (
            {"lr_schedule": "step", "lr_decay_every": 5, "lr_decay": 1.5},
            "--lr-decay must be in (0, 1]",
        ),
        (
            {"lr_schedule": "step", "lr_decay_every": 5, "lr_decay": 0.0},
            "--lr-decay must be in (0, 1]",
        ),
        ({"weight_decay": -0.1}, "--weight-decay must be >= 0"),
        ({"weight_decay": math.inf}, "--weight-decay must be a finite number"),
        ({"lr_warmup_steps": -1}, "--lr-warmup-steps must be an integer >= 0"),
        ({"lr_warmup_steps": 10}, "--lr-warmup-steps 10 must be smaller than --steps 10"),
        (
            {"lr_schedule": "linear"},
            "--lr-schedule must be one of constant, cosine, step; got 'linear'",
        ),
        ({"optimizer": "sgd"}, "--optimizer must be one of rmsprop, adam, adamw"),
    ],
)
def test_validation_names_the_flag(changes, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        RunConfig(steps=10).replace(**changes).validate()


TINY = [
    "--task",
    "copying:delay=2:n_train=40:n_valid=10:n_test=10",
    "--cells",
    "rnn",
    "--hidden",
    "8",
    "--steps",
    "4",
    "--eval-every",
    "2",
    "--batch-size",
    "10",
    "--eval-batch-size",
    "10",
    "--device",
    "cpu",
    "--warmup-steps",
    "1",
]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--lr-decay", "0.5"], "--lr-decay 0.5 applies to --lr-schedule step only"),
        (["--lr-schedule", "step"], "--lr-decay-every >= 1"),
        (
            ["--lr-schedule", "cosine", "--lr-decay-every", "2"],
            "--lr-decay-every 2 applies to --lr-schedule step",
        ),
        (["--cells", "eurnn:angles_lr=-1"], "EURNN angles_lr must be >= 0"),
    ],
)
def test_bad_flags_fail_before_anything_runs(tmp_path, flags, message):
    results = tmp_path / "results"
    out = invoke("run", *TINY, *flags, "--results", str(results))
    assert out.exit_code == 2, out.output
    assert message in out.output
    assert not list(results.glob("*.csv"))


def _tiny_model(cell_name="rnn", hidden=4):
    torch.manual_seed(0)
    cell = rnnbench.build_cell(cell_name, input_size=2, hidden_size=hidden)
    return cell, SequenceClassifier(cell, num_classes=3, mode="last")


def test_adamw_weight_decay_shrinks_the_weights():
    norms = {}
    for decay in (0.0, 0.5):
        cell, model = _tiny_model()
        optimizer = optim.build(
            RunConfig(optimizer="adamw", lr=1e-2, weight_decay=decay), model, cell
        )
        assert (
            type(optimizer) is torch.optim.AdamW
            and optimizer.param_groups[0]["weight_decay"] == decay
        )
        batch = Split(
            torch.randn(8, 5, 2, generator=torch.Generator().manual_seed(1)), torch.arange(8) % 3
        )
        for _ in range(20):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(*model(batch)).backward()
            optimizer.step()
        norms[decay] = torch.cat([p.detach().flatten() for p in model.parameters()]).norm().item()
    assert norms[0.5] < 0.95 * norms[0.0], norms


@pytest.mark.parametrize("name", ["rmsprop", "adam", "adamw"])
def test_every_optimizer_gets_the_weight_decay(name):
    cell, model = _tiny_model()
    optimizer = optim.build(RunConfig(optimizer=name, weight_decay=0.01), model, cell)
    assert (
        isinstance(optimizer, optim.OPTIMIZERS[name])
        and optimizer.param_groups[0]["weight_decay"] == 0.01
    )


def test_without_groups_every_parameter_is_in_one_group_at_lr():
    cell, model = _tiny_model("lstm")
    groups = optim.build(
        RunConfig(lr=3e-3), model, cell, rnnbench.parse_cell_spec("lstm").options
    ).param_groups
    assert len(groups) == 1 and groups[0]["lr"] == 3e-3
    assert groups[0]["params"] == list(
        model.parameters()
    )  # the order of before, so checkpoints still fit


@pytest.mark.parametrize("name", CELLS.names("eurnn*"))
@pytest.mark.parametrize("diag_phase", [False, True])
def test_eurnn_angles_lr_puts_the_angles_in_their_own_group(name, diag_phase):
    spec = rnnbench.parse_cell_spec(f"{name}:angles_lr=1e-4:diag_phase={str(diag_phase).lower()}")
    cell, model = _tiny_model(spec, hidden=16)
    optimizer = optim.build(RunConfig(lr=1e-2), model, cell, spec.options)
    angles = [cell.theta, cell.phi] + ([cell.omega] if diag_phase else [])
    assert [(g.get("name"), g["lr"]) for g in optimizer.param_groups] == [
        (None, 1e-2),
        ("angles", 1e-4),
    ]
    assert optimizer.param_groups[1]["params"] == angles
    listed = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(listed) == sorted(
        id(p) for p in model.parameters()
    )  # each parameter exactly once
    assert {id(cell.mod_bias), id(cell.input.weight)} <= {
        id(p) for p in optimizer.param_groups[0]["params"]
    }
    # A schedule scales every group alike.
    optim.set_learning_rates(optimizer, [1e-2, 1e-4], 0.5)
    assert [g["lr"] for g in optimizer.param_groups] == [5e-3, 5e-5]


def test_eurnn_angles_at_lr_by_default():
    spec = rnnbench.parse_cell_spec("eurnn")
    cell, model = _tiny_model(spec, hidden=8)
    assert len(optim.build(RunConfig(), model, cell, spec.options).param_groups) == 1


def test_a_cell_group_without_its_option_is_a_clear_error(scratch_cells):
    class Grouped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.output_size = torch.nn.RNN(2, 4, batch_first=True), 4

        def lr_groups(self):
            return {"recurrent": [self.rnn.weight_hh_l0]}

    cell = Grouped()
    model = SequenceClassifier(cell, 3, "last")
    with pytest.raises(
        ValueError, match="declares lr group 'recurrent', but its spec has no option 'recurrent_lr'"
    ):
        optim.build(RunConfig(), model, cell, {})
    groups = optim.build(RunConfig(lr=1e-2), model, cell, {"recurrent_lr": 1e-3}).param_groups
    assert [g["params"] for g in groups][1] == [cell.rnn.weight_hh_l0] and groups[1]["lr"] == 1e-3


class FirstSign(test_runner.FirstSign):
    """test_runner's task, smaller."""

    sizes = (60, 20, 20)


class _CrashAfter(FirstSign):
    """The loss raises on its 11th call (a preemption in the middle of a run)."""

    def loss(self, logits, y):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 11:
            raise KeyboardInterrupt("preempted")
        return super().loss(logits, y)


def test_a_resumed_cosine_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, caplog):
    config = RunConfig(
        hidden_size=8,
        batch_size=10,
        steps=12,
        eval_every=4,
        eval_batch_size=20,
        lr=3e-2,
        optimizer="adamw",
        weight_decay=0.1,
        lr_schedule="cosine",
        lr_warmup_steps=3,
        device="cpu",
    )
    spec, cpu, task = (
        rnnbench.parse_cell_spec("eurnn:angles_lr=1e-2"),
        torch.device("cpu"),
        FirstSign(),
    )
    splits = task.load(config)
    straight = tmp_path / "straight.pt"
    train(task, spec, config, splits, cpu, straight)
    resumed = tmp_path / "resumed.pt"
    with pytest.raises(KeyboardInterrupt):
        train(_CrashAfter(), spec, config, splits, cpu, resumed)  # dies at step 11
    caplog.set_level(logging.INFO, logger="rnnbench")
    train(task, spec, config, splits, cpu, resumed)
    assert ": resuming from step 8" in caplog.messages[0]
    # The checkpoint of the last validation (step 12) holds the final weights and optimizer state.
    a, b = checkpoints.read(straight), checkpoints.read(resumed)
    assert a["progress"]["step"] == b["progress"]["step"] == 12
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert [g["lr"] for g in b["optimizer"]["param_groups"]] == [
        g["lr"] for g in a["optimizer"]["param_groups"]
    ]
    assert b["optimizer"]["param_groups"][0]["lr"] == pytest.approx(
        3e-2 * optim.learning_rate_factor(config, 11)
    )


def test_a_run_records_its_optimizer_and_schedule(tmp_path):
    results = tmp_path / "results"
    out = invoke(
        "run",
        *TINY,
        "--optimizer",
        "adamw",
        "--weight-decay",
        "0.01",
        "--lr-schedule",
        "cosine",
        "--lr-warmup-steps",
        "2",
        "--results",
        str(results),
        "--keep-checkpoints",
    )
    assert out.exit_code == 0, out.output
    row = pd.read_csv(results / "copying.csv").iloc[0]
    assert row.status == "ok"
    assert (row.optimizer, row.weight_decay, row.lr_schedule, row.lr_warmup_steps) == (
        "adamw",
        0.01,
        "cosine",
        2,
    )
    assert (row.lr_decay_every, row.lr_decay) == (0, 0.1)
    assert json.loads(row.config_json)["lr_schedule"] == "cosine"
    saved = checkpoints.read(next((results / "checkpoints").glob("*.pt")))
    assert saved["optimizer"]["param_groups"][0]["weight_decay"] == 0.01
