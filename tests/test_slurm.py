"""`rnnbench run --executor slurm` against a real SLURM: a one-node cluster that
`.ci/slurm.sh start` sets up (CI does; skipped, with the reason, where no SLURM node is up). Every
sweep here is a real job array; the tests cancel and preempt jobs the way a cluster does."""

import getpass
import re
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

TASK = "adding:length=10:n_train=64:n_valid=16:n_test=16"


def _slurm_problem() -> str:
    if not (shutil.which("sbatch") and shutil.which("sinfo") and shutil.which("squeue")):
        return (
            "SLURM's commands are not installed"
            " (`bash .ci/slurm.sh start` installs and starts a one-node cluster)"
        )
    out = subprocess.run(
        ["sinfo", "--noheader", "--format", "%T"], capture_output=True, text=True, timeout=30
    )
    if out.returncode != 0 or not re.search(
        r"^(idle|mixed|allocated|completing)", out.stdout, re.M
    ):
        return (
            f"no SLURM node is up ({(out.stderr or out.stdout).strip()[:200]});"
            " `bash .ci/slurm.sh start` starts one"
        )
    return ""


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(bool(_slurm_problem()), reason=_slurm_problem() or "-"),
]


def rnnbench(results, *args, steps=30, cells="rnn,gru", seeds="1,2", check=True):
    command = [
        sys.executable,
        "-m",
        "rnnbench",
        "run",
        "--cells",
        cells,
        "--task",
        TASK,
        "--hidden",
        "8",
        "--steps",
        str(steps),
        "--eval-every",
        "10",
        "--batch-size",
        "16",
        "--seeds",
        seeds,
        "--device",
        "cpu",
        "--results",
        str(results),
        *args,
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def job_ids(output: str) -> list[str]:
    return re.findall(r"^(\d+(?:_\d+)?)  ", output, re.M)


def queued(ids: list[str]) -> dict[str, str]:
    out = subprocess.run(
        ["squeue", "--noheader", "--array", "--format", "%i %T"], capture_output=True, text=True
    )
    states = dict(line.split() for line in out.stdout.splitlines() if line.strip())
    return {i: states[i] for i in ids if i in states}


def wait_until(condition, timeout=120, what="condition"):
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        time.sleep(0.3)


def rows(results) -> pd.DataFrame:
    return pd.read_csv(results / "adding.csv")


def test_a_sweep_runs_as_one_job_array_and_a_resubmission_runs_nothing_twice(tmp_path):
    results = tmp_path / "r"
    output = rnnbench(results, "--executor", "slurm", "--wait", "--mem", "500M")
    assert "submitted 4 runs as SLURM job array" in output
    ids = job_ids(output)
    assert len(ids) == 4 and len({i.split("_")[0] for i in ids}) == 1  # one array
    table = rows(results)
    assert len(table) == 4 and set(table.status) == {"ok"} and table.run_key.is_unique
    assert all(
        (results / f"logs-{getpass.getuser()}" / i).is_dir() for i in ids
    )  # a log folder per run

    again = rnnbench(results, "--executor", "slurm", "--wait", "--mem", "500M")
    assert "nothing to run: every run of this sweep already has an ok row" in again and not job_ids(
        again
    )
    assert len(rows(results)) == 4

    status = subprocess.run(
        [sys.executable, "-m", "rnnbench", "status", "--results", str(results)],
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and "4 ok" in status.stdout, status.stdout + status.stderr


def _submit_and_reach_a_checkpoint(results, cells, steps=6000):
    """Submit without waiting; return the job ids once the first run has written a checkpoint."""
    output = rnnbench(
        results, "--executor", "slurm", "--mem", "500M", steps=steps, cells=cells, seeds="1"
    )
    ids = job_ids(output)
    wait_until(lambda: any((results / "checkpoints").glob("*.pt")), what="a checkpoint")
    return ids


def test_a_cancelled_job_is_completed_by_resubmitting_the_sweep(tmp_path):
    results = tmp_path / "r"
    ids = _submit_and_reach_a_checkpoint(results, "rnn,gru")
    running = [i for i, state in queued(ids).items() if state == "RUNNING"]
    victim = running[0]
    subprocess.run(["scancel", victim], check=True)  # killed mid-run: no row
    wait_until(lambda: not queued(ids), what="the array to leave the queue")
    status = subprocess.run(
        [sys.executable, "-m", "rnnbench", "status", "--results", str(results)],
        capture_output=True,
        text=True,
    ).stdout
    assert re.search(rf"^{victim}\s.*\blost$", status, re.M), status

    output = rnnbench(
        results,
        "--executor",
        "slurm",
        "--wait",
        "--mem",
        "500M",
        steps=6000,
        cells="rnn,gru",
        seeds="1",
    )
    assert "submitted 1 runs" in output and "already has an ok row" in output
    table = rows(results)
    assert len(table) == 2 and set(table.status) == {"ok"} and table.run_key.is_unique
    (retry,) = job_ids(output)
    assert "resuming from step" in "".join(
        p.read_text() for p in (results / f"logs-{getpass.getuser()}" / retry).glob("*_log.*")
    )


def test_a_preempted_job_is_requeued_and_ends_as_if_never_interrupted(tmp_path):
    results = tmp_path / "r"
    (job,) = _submit_and_reach_a_checkpoint(results, "rnn")
    subprocess.run(
        ["scancel", "--signal=USR2", job], check=True
    )  # what SLURM sends before preempting
    wait_until(lambda: queued([job]).get(job) == "PENDING", what="the requeue")
    subprocess.run(
        ["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True
    )  # skip the 2-min requeue hold
    wait_until(lambda: not queued([job]), timeout=300, what="the requeued job to finish")
    log = "".join(
        p.read_text() for p in (results / f"logs-{getpass.getuser()}" / job).glob("*_log.*")
    )
    assert "Requeued job" in log and "resuming from step" in log

    straight = tmp_path / "straight"
    rnnbench(straight, steps=6000, cells="rnn", seeds="1")
    (row,) = rows(results).to_dict("records")
    (want,) = rows(straight).to_dict("records")
    for metric in (
        "test_acc",
        "test_loss",
        "best_valid_acc",
        "best_valid_step",
        "final_train_loss",
        "n_evals",
    ):
        assert row[metric] == want[metric], metric
