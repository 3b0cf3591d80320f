"""Numbers a reviewer can trust: clocks that measure training only, memory that belongs to the
run, rows that say when their times deserve caution, and which code and environment made them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnbench import measure, store

PLUGINS = Path(__file__).parent / "faults"  # fault_plugin registers the cells `lazy` and `hog`
TASK = "adding:length=8:n_train=48:n_valid=16:n_test=16"
TINY = [
    "--task",
    TASK,
    "--hidden",
    "6",
    "--steps",
    "12",
    "--eval-every",
    "6",
    "--batch-size",
    "16",
    "--eval-batch-size",
    "16",
    "--lr",
    "0.01",
    "--device",
    "cpu",
]


def rnnbench(*args, **env):
    path = [str(PLUGINS), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("rnnbench")),
            "--plugin",
            "fault_plugin",
            *map(str, args),
        ],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(path),
            **{k: str(v) for k, v in env.items()},
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


@pytest.mark.slow
def test_a_kernel_built_on_first_use_is_timed_apart_from_training(tmp_path):
    rnnbench("run", "--cells", "lazy", *TINY, "--results", tmp_path, RNNBENCH_LAZY_S=3)
    row = store.read_rows(tmp_path, "adding").iloc[0]
    assert row.build_time_s >= 3
    assert row.warmup_time_s < 1 and row.train_time_s < 2  # the build is in neither


@pytest.mark.slow
def test_a_runs_memory_is_its_own_whatever_ran_before_it_in_the_sweep(tmp_path):
    rnnbench("run", "--cells", "lstm", *TINY, "--results", tmp_path / "alone")
    rnnbench(
        "run", "--cells", "hog,lstm", *TINY, "--results", tmp_path / "after", RNNBENCH_HOG_MB=1000
    )
    alone = store.read_rows(tmp_path / "alone", "adding").set_index("cell").peak_mem_mb
    after = store.read_rows(tmp_path / "after", "adding").set_index("cell").peak_mem_mb
    assert after["hog"] > alone["lstm"] + 900  # the hog's memory is real...
    assert after["lstm"] == pytest.approx(alone["lstm"], rel=0.10)  # ...and not the next run's


@pytest.mark.slow
def test_in_one_process_what_an_earlier_run_kept_is_counted_in_the_next(tmp_path):
    """What --in-process is for (debugging), and why it is not the default."""
    rnnbench(
        "run",
        "--cells",
        "hog,lstm",
        *TINY,
        "--results",
        tmp_path,
        "--in-process",
        RNNBENCH_HOG_MB=1000,
    )
    rows = store.read_rows(tmp_path, "adding").set_index("cell").peak_mem_mb
    assert rows["lstm"] > 900


@pytest.mark.parametrize(
    "times, loads, threads, note",
    [
        ([10.0] * 20, [0.5, 0.8], 2, ""),
        ([10.0] * 10 + [14.0] * 10, [0.5, 0.8], 2, "noisy step times (IQR 33% of the median)"),
        ([10.0] * 20, [0.5, 3.5], 2, "busy machine (load average 3.5 with 2 thread(s) in use)"),
        ([10.0] * 20, [float("nan")] * 2, 1, ""),
    ],
)
def test_a_row_says_when_its_times_deserve_caution(times, loads, threads, note):
    assert measure.timing_note(times, loads, threads) == note


@pytest.mark.slow
def test_rows_record_threads_and_versions_and_the_key_ignores_them(tmp_path):
    rnnbench("run", "--cells", "rnn", *TINY, "--results", tmp_path)
    row = store.read_rows(tmp_path, "adding").iloc[0]
    import numpy
    import torch

    assert row.num_threads == torch.get_num_threads()
    assert (
        row.python_version == ".".join(map(str, sys.version_info[:3]))
        and row.numpy_version == numpy.__version__
    )
    assert "timing_note" in row.index


def git(folder, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=folder,
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(
    subprocess.run(["git", "--version"], capture_output=True).returncode != 0, reason="no git"
)
def test_git_commit_is_marked_dirty_by_uncommitted_code_only(tmp_path):
    (tmp_path / "rnnbench").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "rnnbench" / "cell.py").write_text("x = 1\n")
    (tmp_path / "results" / "pmnist.csv").write_text("run_id\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "first")
    clean = measure.git_commit(tmp_path / "rnnbench")
    assert len(clean) == 12 and "+" not in clean
    (tmp_path / "results" / "pmnist.csv").write_text("run_id\nabc\n")  # a benchmark ran
    assert measure.git_commit(tmp_path / "rnnbench") == clean
    (tmp_path / "rnnbench" / "cell.py").write_text("x = 2\n")  # the code changed
    assert measure.git_commit(tmp_path / "rnnbench") == clean + "+dirty"
    assert measure.git_commit(tmp_path.parent) == ""  # not a checkout


@pytest.mark.slow
def test_the_linear_baseline_is_computed_on_the_runs_own_data_and_cached(tmp_path):
    import time

    import rnnbench
    from rnnbench import baselines
    from rnnbench.config import preset

    config = preset("quick")
    pmnist, smnist = (
        rnnbench.build_task("pmnist:data=sample"),
        rnnbench.build_task("smnist:data=sample"),
    )
    accuracy = baselines.linear_accuracy(pmnist, pmnist.load(config, None), tmp_path)
    assert (
        0.85 < accuracy < 0.95
    )  # the bundled 5,000 digits: well below 92.65 % or any full-MNIST number
    start = time.perf_counter()
    assert (
        baselines.linear_accuracy(smnist, smnist.load(config, None), tmp_path) == accuracy
    )  # blind to order...
    assert len(list(tmp_path.glob("*.json"))) == 2  # ...but each dataset has its own entry
    start = time.perf_counter()
    assert baselines.linear_accuracy(pmnist, pmnist.load(config, None), tmp_path) == accuracy
    assert time.perf_counter() - start < 2  # from the cache
    assert baselines.linear_accuracy(rnnbench.build_task("copying"), None, tmp_path) is None


def test_published_lines_are_drawn_only_on_the_data_they_were_measured_on():
    import pandas as pd

    from rnnbench.report import reference_lines

    def rows(task, source, n=1):
        import json

        task_json = json.dumps(rnnbench.build_task(task).metadata())
        data_json = json.dumps(
            {"dataset": "mnist", "source": source, "protocol": "standard", "perm_seed": 0}
        )
        return pd.DataFrame(
            {"task_json": [task_json] * n, "data_json": [data_json] * n, "linear_acc": [0.91] * n}
        )

    import rnnbench

    chance = {"chance (the best memoryless answer)": 0.1}
    assert reference_lines(rows("pmnist", "sample"), "pmnist") == {
        **chance,
        "linear classifier on this data": 0.91,
    }
    assert reference_lines(rows("pmnist", "full", 2), "pmnist") == {
        **chance,
        "linear classifier on this data": 0.91,
        "linear classifier, LeCun et al. 1998": 0.88,
    }
    # Fashion-MNIST's rows carry no MNIST line, even on its full data.
    assert "linear classifier, LeCun et al. 1998" not in reference_lines(
        rows("pfmnist", "full"), "pfmnist"
    )
    # Rows written before task metadata was recorded: only what they hold themselves.
    old = pd.DataFrame({"task_json": [""], "data_json": [""], "linear_acc": [0.91]})
    assert reference_lines(old, "pmnist") == {"linear classifier on this data": 0.91}


def test_a_cells_version_is_part_of_its_run_keys(tmp_path, scratch_cells):
    """Editing a cell's math and bumping its version makes new runs: old rows are never reused."""
    import dataclasses

    from rnnbench import register_cell, sweep
    from rnnbench.config import preset

    @register_cell("versioned")
    def versioned(input_size, hidden_size):
        """A cell with a version."""
        import torch

        module = torch.nn.RNN(input_size, hidden_size, batch_first=True)
        module.output_size = hidden_size
        return module

    def key():
        config = preset("quick").replace(hidden_size=6, batch_size=16, device="cpu")
        runs, _ = sweep.plan(TASK, [scratch_cells.parse("versioned")], [0], config, tmp_path)
        return runs[0].key

    first = key()
    scratch_cells._entries["versioned"] = dataclasses.replace(
        scratch_cells.get("versioned"), version=2
    )
    assert key() != first
    assert (
        scratch_cells.get("eurnn").version == 2
    )  # (EURNN's diagonal phase moved: its rows of version 1 differ)
