"""The CUDA path, checked without a GPU (issue 17, part 5): clocks read after a synchronisation, the
data moved to the device once per run, cuDNN's autotuner off and deterministic algorithms on, the
GPU's model in the row, and a GPU's memory counted for the data it will hold. (An out-of-memory
error failing only its own run is tests/faults/test_files.py's.)"""

import os
import types

import pytest
import torch
from test_runner import FirstSign

import rnnbench
from rnnbench import measure, resources, runner
from rnnbench import task as task_module
from rnnbench.config import RunConfig

CONFIG = RunConfig(
    hidden_size=8,
    batch_size=16,
    steps=6,
    eval_every=3,
    eval_batch_size=64,
    device="cpu",
    warmup_steps=1,
)


def train(**kwargs):
    task = FirstSign()
    return runner.train(
        task,
        rnnbench.parse_cell_spec("gru"),
        CONFIG,
        task.load(CONFIG),
        torch.device("cpu"),
        **kwargs,
    )


def test_every_clock_read_follows_a_synchronisation(monkeypatch):
    """Each time.perf_counter() the runner reads is preceded by measure.synchronize since the read
    before (on CUDA the clock would otherwise read queued, unfinished work)."""
    events = []
    monkeypatch.setattr(runner, "synchronize", lambda device: events.append("sync"))
    real = runner.time

    def perf_counter():
        events.append("clock")
        return real.perf_counter()

    monkeypatch.setattr(runner, "time", types.SimpleNamespace(perf_counter=perf_counter))
    result = train()
    assert result["status"] == "ok"
    clocks = [i for i, e in enumerate(events) if e == "clock"]
    assert len(clocks) >= 2 * CONFIG.steps
    # each clock that starts a measurement follows a sync; each that ends one follows a sync too,
    # except the evaluation clocks, whose end is a .item() on the result (evaluate returns floats)
    starts_and_ends = [i for i in clocks if events[i - 1] == "sync"]
    assert len(starts_and_ends) >= 2 * CONFIG.steps + 2


def test_the_data_moves_to_the_device_once_per_run(monkeypatch):
    moved_splits, taken_from = [], []
    to, take = task_module.Split.to, task_module.Split.take

    def spy_to(self, device):
        out = to(self, device)
        moved_splits.append(out)
        return out

    def spy_take(self, index, device=None):
        taken_from.append(self)
        return take(self, index, device)

    monkeypatch.setattr(task_module.Split, "to", spy_to)
    monkeypatch.setattr(task_module.Split, "take", spy_take)
    assert train()["status"] == "ok"
    assert len(moved_splits) == 3  # train, valid, test: once each
    assert len(taken_from) > CONFIG.steps
    assert all(
        any(split is moved for moved in moved_splits) for split in taken_from
    )  # every batch from them


def test_configure_device_on_cuda_makes_runs_repeatable(monkeypatch):
    calls = []
    monkeypatch.setattr(
        torch,
        "use_deterministic_algorithms",
        lambda mode, warn_only=False: calls.append((mode, warn_only)),
    )
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    runner.configure_device(torch.device("cpu"))
    assert (
        calls == []
        and torch.backends.cudnn.benchmark
        and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    )
    runner.configure_device(torch.device("cuda"))
    assert calls == [(True, True)]
    assert torch.backends.cudnn.benchmark is False and torch.backends.cudnn.deterministic is True
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    runner.configure_device(torch.device("cuda"))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"  # the user's is kept


def test_the_row_names_the_gpu_model(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    env = measure.environment(torch.device("cuda"))
    assert env["device"] == "cuda" and env["device_name"] == "NVIDIA H200"


def test_on_cuda_the_gpu_must_hold_the_runs_data_too():
    task = rnnbench.build_task("copying")
    config = RunConfig(hidden_size=64)
    estimate = resources.estimate(
        task, rnnbench.parse_cell_spec("lstm"), config, "cuda", data_copies=3
    )
    one_copy = int(task.data_bytes(config))
    assert estimate.run_data == one_copy and estimate.data == 3 * one_copy
    needs = estimate.needs(torch.device("cuda"))
    assert needs["device"] == estimate.weights + estimate.activations + one_copy
    assert needs["host"] == estimate.data + estimate.checkpoint


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_cuda_run_takes_its_batches_on_the_gpu():
    task = FirstSign()
    config = CONFIG.replace(device="cuda")
    result = runner.train(
        task, rnnbench.parse_cell_spec("eurnn"), config, task.load(config), torch.device("cuda")
    )
    assert result["status"] == "ok" and result["impl"] in ("triton", "dense")
