"""Executors that need no cluster: `--executor local`, the options of `--executor slurm` as sbatch
sees them, and the refusals. The real SLURM runs are in test_slurm.py."""

import json
import os

import pandas as pd
import pytest
import submitit
import torch
from conftest import invoke

from rnnbench.executors import SlurmOptions, parse_sbatch_options

SWEEP = [
    "run",
    "--cells",
    "rnn,gru",
    "--task",
    "adding:length=8:n_train=48:n_valid=16:n_test=16",
    "--hidden",
    "6",
    "--steps",
    "12",
    "--eval-every",
    "6",
    "--batch-size",
    "16",
    "--seeds",
    "1,2",
    "--device",
    "cpu",
]


@pytest.mark.slow
def test_local_executor_runs_the_sweep_in_parallel_processes_with_the_rows_of_an_inline_run(
    tmp_path,
):
    out = invoke(*SWEEP, "--results", tmp_path / "local", "--executor", "local", "--jobs", "2")
    assert out.exit_code == 0, out.output
    assert out.output.count("started ") == 4
    local = pd.read_csv(tmp_path / "local" / "adding.csv")
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # as each of the two local processes had: the same runs, so the same keys
    try:
        assert invoke(*SWEEP, "--results", tmp_path / "inline").exit_code == 0
    finally:
        torch.set_num_threads(threads)
    inline = pd.read_csv(tmp_path / "inline" / "adding.csv")
    assert sorted(local.run_key) == sorted(inline.run_key)
    merged = local.merge(inline, on="run_key", suffixes=("_local", "_inline"))
    for metric in ("test_acc", "test_loss", "final_train_loss"):
        assert (merged[f"{metric}_local"] == merged[f"{metric}_inline"]).all(), metric
    (sweep,) = (tmp_path / "local" / "sweeps").glob("local-*.json")
    assert len(json.loads(sweep.read_text())["jobs"]) == 4
    status = invoke("status", "--results", tmp_path / "local")
    assert status.exit_code == 0 and "4 ok" in status.output
    again = invoke(*SWEEP, "--results", tmp_path / "local", "--executor", "local")
    assert again.exit_code == 0 and "nothing to run" in again.output
    assert not list((tmp_path / "local" / "checkpoints").glob("*"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--partition", "gpu"], "--partition applies to --executor slurm; got --executor inline"),
        (["--wait"], "--wait applies to --executor slurm; got --executor inline"),
        (
            ["--executor", "local", "--sbatch", "constraint=a100"],
            "--sbatch applies to --executor slurm; got --executor local",
        ),
        (
            ["--executor", "slurm", "--jobs", "4"],
            "--jobs applies to --executor local; got --executor slurm",
        ),
        (
            ["--executor", "local", "--jobs", "0"],
            "Invalid value for '--jobs': 0 is not in the range x>=1",
        ),
        (["--executor", "pbs"], "'pbs' is not one of 'inline', 'local', 'slurm'"),
        (
            ["--executor", "slurm", "--sbatch", "=5"],
            "--sbatch takes KEY=VALUE (an sbatch option without its dashes); got '=5'",
        ),
    ],
)
def test_executor_options_are_checked_before_anything_runs(tmp_path, args, message):
    out = invoke(*SWEEP, "--results", tmp_path / "r", *args)
    assert out.exit_code == 2 and message in out.output, out.output
    assert not (tmp_path / "r").exists()


def test_slurm_without_sbatch_says_where_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    out = invoke(*SWEEP, "--results", tmp_path / "r", "--executor", "slurm")
    assert out.exit_code == 1
    assert "needs SLURM's sbatch on the PATH; run on the cluster's login node" in out.output


def test_slurm_options_become_sbatch_lines(tmp_path, monkeypatch):
    """The sbatch file rnnbench's options make (no SLURM needed: submitit only checks that
    srun exists)."""
    monkeypatch.setattr(
        submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2)
    )  # as if srun were there
    options = SlurmOptions(
        partition="gpu",
        time_min=600,
        gpus_per_task=1,
        cpus_per_task=8,
        mem="32G",
        account="lab",
        qos="high",
        array_parallelism=4,
        sbatch=parse_sbatch_options(("constraint=a100", "--exclusive")),
    )
    executor = submitit.SlurmExecutor(folder=tmp_path)
    executor.update_parameters(**options.parameters())
    executor.parameters["map_count"] = 10  # what map_array sets for an array of 10 runs
    script = executor._make_submission_file_text("python -c pass", "uid")
    for line in (
        "--partition=gpu",
        "--time=600",
        "--gpus-per-task=1",
        "--cpus-per-task=8",
        "--mem=32G",
        "--account=lab",
        "--qos=high",
        "--array=0-9%4",
        "--constraint=a100",
        "--exclusive",
        "--signal=USR2@90",
    ):
        assert f"#SBATCH {line}" in script, line


def test_a_sweep_record_lists_lost_runs(tmp_path):
    """A job that SLURM no longer has and that wrote no row is `lost`."""
    from rnnbench.executors import sweep_status

    (tmp_path / "sweeps").mkdir()
    record = tmp_path / "sweeps" / "5.json"
    record.write_text(
        json.dumps(
            {
                "executor": "local",
                "task": "adding",
                "jobs": [{"job_id": "5_0", "run_key": "k0", "run": "rnn N=8 seed 1"}],
            }
        )
    )
    assert sweep_status(record) == [{"job": "5_0", "run": "rnn N=8 seed 1", "state": "lost"}]
    assert os.listdir(tmp_path) == ["sweeps"]  # reading writes nothing


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"executor": "inline", "partition": "gpu"},
            "--partition applies to --executor slurm; got --executor inline",
        ),
        (
            {"executor": "local", "time_min": 30, "sbatch_options": ("a=b",)},
            "--time applies to --executor slurm",
        ),
        (
            {"executor": "local", "sbatch_options": ("a=b",)},
            "--sbatch applies to --executor slurm; got --executor local",
        ),
        (
            {"executor": "slurm", "jobs": 4},
            "--jobs applies to --executor local; got --executor slurm",
        ),
        ({"jobs": 4}, "--jobs applies to --executor local; got --executor inline"),
        (
            {"executor": "local", "in_process": True},
            "--in-process applies to --executor inline; got --executor local",
        ),
        ({"executor": "slurm", "sbatch_options": ("=5",)}, "--sbatch takes KEY=VALUE"),
    ],
)
def test_options_the_executor_would_ignore_are_refused_naming_their_flag(options, message):
    from rnnbench.executors import from_options

    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        from_options(options)


def test_options_make_the_executor_they_name():
    from rnnbench import executors

    assert executors.from_options({}).isolate  # inline, each run in a child process
    assert not executors.from_options(
        {"executor": "inline", "in_process": True, "wait": False}
    ).isolate
    assert executors.from_options({"executor": "local", "jobs": 3}).jobs == 3
    slurm = executors.from_options(
        {"executor": "slurm", "time_min": None, "mem": "4G", "sbatch_options": ("a=b",)}, wait=True
    )
    assert (
        slurm.options == SlurmOptions(time_min=24 * 60, mem="4G", sbatch={"a": "b"}) and slurm.wait
    )
