"""The runner and `rnnbench run`, end to end on tiny generated MNIST-format data."""

import hashlib
import logging
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import invoke

import rnnbench
from rnnbench import store
from rnnbench.config import RunConfig
from rnnbench.data import mnist as mnist_data
from rnnbench.runner import train
from rnnbench.task import Split, Splits, Task
from rnnbench.tasks.mnist import pixel_permutation

TINY = [
    "--task",
    "pmnist",
    "--hidden",
    "8",
    "--steps",
    "6",
    "--eval-every",
    "3",
    "--batch-size",
    "10",
    "--eval-batch-size",
    "7",
    "--device",
    "cpu",
]


def test_run_writes_a_row_per_run_with_every_column_and_curves(tiny_mnist, tmp_path):
    results = tmp_path / "results"
    out = invoke(
        "run",
        "--cells",
        "eurnn,lstm",
        "--seeds",
        "0,1",
        "--data-dir",
        str(tiny_mnist),
        "--results",
        str(results),
        *TINY,
    )
    assert out.exit_code == 0, out.output
    rows = pd.read_csv(results / "pmnist.csv")
    assert list(rows.columns) == store.COLUMNS
    import json

    assert set(rows.task_spec) == {"pmnist"} and set(rows.task_version) == {2}
    assert json.loads(rows.task_json[0])[
        "published_lines"
    ]  # what the report will draw, as recorded
    assert len(rows) == 4 and set(rows.status) == {"ok"}
    assert rows.cell_spec.tolist() == ["eurnn", "eurnn", "lstm", "lstm"] and rows.seed.tolist() == [
        0,
        1,
        0,
        1,
    ]
    assert (set(rows.n_train), set(rows.n_valid), set(rows.n_test)) == ({50}, {10}, {12})
    order = pixel_permutation(0, 16)
    identities = {json.dumps(json.loads(text), sort_keys=True) for text in rows.data_json}
    assert len(identities) == 1 and len(set(rows.data_hash)) == 1
    identity = json.loads(identities.pop())
    assert identity["perm_sha256"] == hashlib.sha256(order.astype("<i8").tobytes()).hexdigest()
    assert (identity["dataset"], identity["source"], identity["protocol"]) == (
        "mnist",
        "full",
        "standard",
    )
    for column in (
        "test_acc",
        "test_acc_final",
        "best_valid_acc",
        "train_time_s",
        "step_time_ms",
        "peak_mem_mb",
        "params",
        "torch_version",
        "timestamp",
    ):
        assert rows[column].notna().all(), column
    assert set(rows.mem_source) == {"cpu_peak_rss"} and set(rows.impl) == {"dense", "native"}
    curves = pd.read_csv(results / "pmnist-curves.csv")
    assert set(curves.run_id) == set(rows.run_id)
    assert sorted(curves[curves.split == "valid"].step.unique()) == [3, 6]
    assert not list((results / "checkpoints").glob("*.pt"))  # removed once runs finish
    assert (
        "eurnn N=8 seed 1: ok" in out.output and "test_acc" in out.output
    )  # per-run lines and table


def test_finished_runs_are_skipped_unless_forced(tiny_mnist, tmp_path):
    args = [
        "run",
        "--cells",
        "rnn",
        "--data-dir",
        str(tiny_mnist),
        "--results",
        str(tmp_path / "r"),
        *TINY,
    ]
    assert invoke(*args).exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 0 and "already has an ok row" in again.output
    assert len(pd.read_csv(tmp_path / "r" / "pmnist.csv")) == 1
    assert invoke(*args, "--force").exit_code == 0
    assert len(pd.read_csv(tmp_path / "r" / "pmnist.csv")) == 2


class _CrashAfter:
    """The pmnist task, but the loss raises on call `n` (a preemption in the middle of a run)."""

    def __init__(self, n):
        self.task, self.calls, self.n = rnnbench.build_task("pmnist"), 0, n

    def __getattr__(self, name):
        return getattr(self.task, name)

    def loss(self, logits, y):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt("preempted")
        return self.task.loss(logits, y)


@pytest.mark.parametrize("spec", ["eurnn", "lstm"])
def test_a_resumed_run_ends_exactly_like_an_uninterrupted_one(tiny_mnist, tmp_path, spec, caplog):
    # (log_every 3: the checkpoint at step 8 falls inside a window of training points, 7-9)
    config = RunConfig(
        hidden_size=8,
        batch_size=10,
        steps=12,
        eval_every=4,
        eval_batch_size=7,
        lr=1e-2,
        device="cpu",
        log_every=3,
    )
    task = rnnbench.build_task("pmnist")
    splits = task.load(config, tiny_mnist)
    spec = rnnbench.parse_cell_spec(spec)
    cpu = torch.device("cpu")
    straight = train(task, spec, config, splits, cpu, None)
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(_CrashAfter(11), spec, config, splits, cpu, checkpoint)  # dies at step 11
    caplog.set_level(logging.INFO, logger="rnnbench")
    resumed = train(task, spec, config, splits, cpu, checkpoint)
    assert caplog.messages[0].startswith(f"pmnist {spec} N=8 seed 0: resuming from step 8")
    for key in (
        "test_acc",
        "test_acc_final",
        "test_loss",
        "best_valid_acc",
        "best_valid_step",
        "final_train_loss",
        "steps_done",
        "n_evals",
    ):
        assert resumed[key] == straight[key], key
    untimed = lambda curves: [{k: v for k, v in c.items() if k != "wall_time_s"} for c in curves]  # noqa: E731
    assert untimed(resumed["curves"]) == untimed(straight["curves"])
    assert [c["step"] for c in straight["curves"] if c["split"] == "train"] == [3, 6, 9, 12]


def test_an_older_results_file_gains_new_columns_without_loss(tmp_path):
    old_columns = [c for c in store.COLUMNS if c != "impl"]
    pd.DataFrame([{c: "old" for c in old_columns}]).to_csv(tmp_path / "t.csv", index=False)
    store.append_run(tmp_path, "t", {c: "new" for c in store.COLUMNS}, [])
    rows = pd.read_csv(tmp_path / "t.csv", dtype=str, keep_default_na=False)
    assert len(rows) == 2 and rows.loc[0, "run_id"] == "old" and rows.loc[0, "impl"] == ""
    assert rows.loc[1, "impl"] == "new"


def test_divergence_writes_a_diverged_row_and_the_sweep_goes_on(tiny_mnist, tmp_path):
    out = invoke(
        "run",
        "--cells",
        "rnn,gru",
        "--lr",
        "1e38",
        "--data-dir",
        str(tiny_mnist),
        "--results",
        str(tmp_path / "r"),
        *TINY,
    )
    rows = pd.read_csv(tmp_path / "r" / "pmnist.csv")
    assert out.exit_code == 0 and len(rows) == 2, out.output
    assert "diverged" in set(rows.status)
    assert rows.loc[rows.status == "diverged", "error"].str.contains("training loss became").all()
    again = invoke(
        "run",
        "--cells",
        "rnn,gru",
        "--lr",
        "1e38",
        "--data-dir",
        str(tiny_mnist),
        "--results",
        str(tmp_path / "r"),
        *TINY,
    )  # (training is deterministic: it would diverge again)
    assert again.exit_code == 0 and len(pd.read_csv(tmp_path / "r" / "pmnist.csv")) == 2
    assert "already has a diverged row (--force to run it again)" in again.output


def test_a_failing_run_does_not_stop_the_next(tiny_mnist, tmp_path, scratch_cells):
    @rnnbench.register_cell("broken")
    def broken(input_size, hidden_size):
        """Fails in forward."""
        module = torch.nn.Linear(input_size, hidden_size)
        module.output_size = hidden_size

        def fail(x):
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

        module.forward = fail
        return module

    out = invoke(
        "run",
        "--cells",
        "broken,rnn",
        "--data-dir",
        str(tiny_mnist),
        "--results",
        str(tmp_path / "r"),
        *TINY,
        "--in-process",
    )  # (a cell registered in this process only)
    rows = pd.read_csv(tmp_path / "r" / "pmnist.csv")
    assert out.exit_code == 1
    assert rows.status.tolist() == ["failed", "ok"]
    assert "out of memory" in rows.error[0] and "lower --batch-size or --hidden" in rows.error[0]


class FirstSign(Task):
    """A tiny memory task: 12 steps of noise; the class is the sign of the first input."""

    version, input_size, num_classes, readout = 1, 1, 2, "last"
    sizes = (512, 128, 256)  # train, valid, test

    def load(self, config, folder=None):
        generator = torch.Generator().manual_seed(0)

        def split(n):
            x = torch.randn(n, 12, 1, generator=generator)
            return Split(x, (x[:, 0, 0] > 0).long())

        return Splits(*map(split, self.sizes), {"generator": "first-sign"})


# Options a cell needs for this 12-step task. coRNN's time step, stiffness and damping set the time
# scale of its oscillators, and its paper chooses them per task for sequences of 500 to 2,000 steps:
# at its psMNIST setting (dt 0.076) the state moves by O(dt^2) per step, and 150 steps of training
# reach 84 % here (600: 91 %). dt = gamma = epsilon = 1 is a stable setting (dt * epsilon < 2) at
# this task's time scale.
# IndRNN's bound on |u| is gamma^(1/T) for sequences of T steps, and its long-memory init draws the
# last layer's u from [gamma^(-1/T), gamma^(1/T)]: set for T = 12 (median accuracy 0.96 over seeds
# 0-7; 0.65 with the bound and init of 784 steps, where no unit can favour the first of 12 inputs).
TIME_SCALE = {"cornn": "cornn:dt=1:gamma=1:epsilon=1", "indrnn": "indrnn:max_length=12:init=long"}


@pytest.mark.parametrize("name", rnnbench.list_cells())
def test_every_cell_learns_a_tiny_sequence_task(name):
    config = RunConfig(
        hidden_size=16,
        batch_size=32,
        steps=200,
        eval_every=50,
        eval_batch_size=256,
        optimizer="adam",
        lr=1e-2,
        device="cpu",
    )
    task = FirstSign()
    result = train(
        task,
        rnnbench.parse_cell_spec(TIME_SCALE.get(name, name)),
        config,
        task.load(config),
        torch.device("cpu"),
    )
    assert result["status"] == "ok"
    assert result["test_acc"] >= 0.9, result["test_acc"]  # chance is 0.5
    assert math.isfinite(result["final_train_loss"])


def test_unreachable_data_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(
        mnist_data, "MNIST_MIRRORS", ("http://127.0.0.1:9",)
    )  # nothing listens there
    (tmp_path / "d").mkdir()
    out = invoke(
        "run",
        "--cells",
        "rnn",
        "--task",
        "pmnist",
        "--device",
        "cpu",
        "--data-dir",
        str(tmp_path / "d"),
        "--results",
        str(tmp_path / "r"),
    )
    assert out.exit_code == 1
    assert "mnist: 4 files are missing from" in out.output and "Put these files into" in out.output
    assert "train-images-idx3-ubyte.gz  or  train-images-idx3-ubyte" in out.output
    assert not (tmp_path / "r").exists() and list((tmp_path / "d").iterdir()) == []


def test_hidden_sizes_and_cells_expand_into_their_cross_product(tiny_mnist, tmp_path):
    args = [
        "run",
        "--cells",
        "eurnn:capacity=2,eurnn:capacity=4",
        "--data-dir",
        str(tiny_mnist),
        "--results",
        str(tmp_path / "r"),
        *TINY,
    ]
    args[args.index("--hidden") + 1] = "4,8"
    assert invoke(*args).exit_code == 0
    rows = pd.read_csv(tmp_path / "r" / "pmnist.csv")
    assert list(zip(rows.cell_spec, rows.hidden_size, strict=True)) == [
        ("eurnn", 4),
        ("eurnn", 8),
        ("eurnn:capacity=4", 4),
        ("eurnn:capacity=4", 8),
    ]


def test_a_parameter_budget_sizes_each_cell(tiny_mnist, tmp_path):
    out = invoke(
        "run",
        "--cells",
        "eurnn,lstm",
        "--params",
        "2000",
        "--data-dir",
        str(tiny_mnist),
        "--results",
        str(tmp_path / "r"),
        *[a for a in TINY if a not in ("--hidden", "8")],
    )
    assert out.exit_code == 0, out.output
    rows = pd.read_csv(tmp_path / "r" / "pmnist.csv").set_index("cell")
    assert (rows.params <= 2000).all() and set(rows.params_budget) == {2000}
    assert rows.hidden_size["eurnn"] > 3 * rows.hidden_size["lstm"]
    assert "lstm: hidden size" in out.output and "for --params 2000" in out.output
    both = invoke(
        "run",
        "--cells",
        "rnn",
        "--params",
        "2000",
        "--hidden",
        "8,16",
        "--task",
        "pmnist:data=sample",
        "--results",
        str(tmp_path / "x"),
    )
    assert both.exit_code == 2 and "not both" in both.output


def test_time_to_target_is_the_training_time_when_validation_first_reaches_it(tiny_mnist, tmp_path):
    config = RunConfig(
        hidden_size=8,
        batch_size=10,
        steps=12,
        eval_every=4,
        eval_batch_size=7,
        lr=1e-2,
        device="cpu",
    )
    task = rnnbench.build_task("pmnist")
    splits = task.load(config, tiny_mnist)
    reached = train(
        task,
        rnnbench.parse_cell_spec("rnn"),
        config.replace(target=1e-9),
        splits,
        torch.device("cpu"),
    )
    first_eval_time = next(p["wall_time_s"] for p in reached["curves"] if p["split"] == "valid")
    assert reached["time_to_target_s"] == first_eval_time and reached["target"] == 1e-9
    never = train(
        task,
        rnnbench.parse_cell_spec("rnn"),
        config.replace(target=1.0),
        splits,
        torch.device("cpu"),
    )
    assert never["time_to_target_s"] == ""


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").exists(),
    reason="apt-get install dataset-fashion-mnist",
)
def test_pfmnist_reads_real_fashion_mnist_files():
    task = rnnbench.build_task("pfmnist")
    splits = task.load(RunConfig(), Path("/usr/share/datasets/fashion-mnist"))
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (50000, 10000, 10000)
    x = splits.train.x
    assert x.shape[1:] == (784, 1) and 0 <= x.min() < x.max() <= 1
    sample = rnnbench.build_task("pmnist:data=sample").load(RunConfig())
    assert splits.identity["perm_sha256"] == sample.identity["perm_sha256"]
    assert splits.identity["dataset"] == "fashion-mnist" != sample.identity["dataset"]


def test_fashion_mnist_has_no_bundled_sample(tmp_path):
    out = invoke(
        "run", "--cells", "rnn", "--task", "sfmnist:data=sample", "--results", str(tmp_path / "r")
    )
    assert out.exit_code == 2 and "no sample of fashion-mnist is bundled" in out.output
    assert not (tmp_path / "r").exists()
