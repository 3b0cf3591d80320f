"""SIGKILL of `rnnbench run`, again and again, at random times and at the exact points where a
kill does most harm (halfway through a checkpoint, halfway through a result row, between a run's
curves and its row). The sweep is then finished, and it must be as if nothing had happened: every
run exactly once, every file readable, the metrics of resumed runs equal to those of a sweep that
was never interrupted (CPU, same seeds).

`pytest --soak` runs 60 kills instead of 5 (one of each kind).
"""

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

HERE = Path(__file__).parent
SWEEP = [
    "run",
    "--cells",
    "rnn,eurnn",
    "--task",
    "adding:length=12:n_train=96:n_valid=32:n_test=32",
    "--hidden",
    "8",
    "--steps",
    "300",
    "--eval-every",
    "10",
    "--batch-size",
    "16",
    "--eval-batch-size",
    "32",
    "--lr",
    "0.01",
    "--seeds",
    "1,2",
    "--device",
    "cpu",
]
RUNS = 4  # 2 cells x 2 seeds
METRICS = [
    "test_acc",
    "test_acc_final",
    "test_loss",
    "best_valid_acc",
    "best_valid_step",
    "final_train_loss",
    "steps_done",
    "n_evals",
]


def rnnbench(results: Path, fault: str = "", **popen) -> subprocess.Popen:
    """The sweep in a process of its own, with the fault plugin: `fault` ("WHERE:N") is due, and
    the fault that fires says so in results.parent / FIRED (see fired())."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "RNNBENCH_FAULT": fault,
        "RNNBENCH_FAULT_FIRED": str(results.parent / FIRED),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rnnbench",
            "--plugin",
            "fault_plugin",
            *SWEEP,
            "--results",
            str(results),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


FIRED = "faults-fired.txt"


def fired(results: Path) -> list[str]:
    """The faults that fired in the sweeps of results' parent folder, in order ("WHERE:N")."""
    path = results.parent / FIRED
    return path.read_text().splitlines() if path.exists() else []


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out + err


def attempts(count: int, rng: random.Random):
    """(fault, seconds before a SIGKILL from outside or None) for each attempt: the kinds in
    turn, the point drawn at random."""
    for i in range(count):
        kind = ("time", "checkpoint", "row", "time", "curves")[i % 5]
        if kind == "time":
            yield "", rng.uniform(2.0, 5.0)  # (starting Python and torch takes about 2 s)
        elif kind == "checkpoint":
            yield f"checkpoint:{rng.randint(1, 40)}", None
        else:
            yield f"{kind}:{rng.randint(1, 2)}", None


def curve_points(curves: pd.DataFrame, run_id: str) -> list:
    mine = curves[curves.run_id == run_id].drop_duplicates(["step", "split"], keep="last")
    return (
        mine[["step", "split", "loss", "acc"]].astype(str).values.tolist()
    )  # (NaN: train rows have no acc)


@pytest.mark.slow
def test_sigkill_at_any_point_loses_nothing_and_runs_nothing_twice(tmp_path, request):
    kills_wanted = 60 if request.config.getoption("--soak") else 5  # (each kind of fault once)
    reference = tmp_path / "reference"
    code, output = finish(rnnbench(reference))
    assert code == 0, output

    results = tmp_path / "killed"
    rng = random.Random(7)
    kills, log, fault_kills = 0, [], set()
    for fault, delay in attempts(kills_wanted * 3, rng):
        process = rnnbench(results, fault)
        if delay is not None:
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
        code, output = finish(process)
        assert code in (0, -signal.SIGKILL), output
        if fault:  # a fault kills its sweep when it fires, and only then
            assert (fired(results)[-1:] == [fault]) == (code == -signal.SIGKILL), (fault, output)
            if code == -signal.SIGKILL:
                (results.parent / FIRED).unlink()
                fault_kills.add(fault.partition(":")[0])
        log.append((fault or f"time:{delay:.1f}s", code))
        kills += code == -signal.SIGKILL
        if code == 0:  # the sweep got through despite the kills: go on in a fresh folder
            assert len(pd.read_csv(results / "adding.csv")) == RUNS
            results = tmp_path / f"killed-{len(log)}"
        if kills >= kills_wanted and fault_kills == {"checkpoint", "row", "curves"}:
            break
    assert kills >= kills_wanted and fault_kills == {"checkpoint", "row", "curves"}, log

    code, output = finish(rnnbench(results))  # the survivor finishes what is left...
    assert code == 0, output
    code, output = finish(rnnbench(results))  # ...and a second pass finds nothing to do
    assert code == 0 and output.count("already has an ok row") == RUNS, output

    want = pd.read_csv(reference / "adding.csv").set_index("run_key")
    rows_written = 0
    want_curves = pd.read_csv(reference / "adding-curves.csv")
    for folder in sorted(tmp_path.glob("killed*")):
        rows = pd.read_csv(folder / "adding.csv")  # parses
        rows_written += len(rows)
        assert set(rows.status) == {"ok"} and rows.run_key.is_unique, folder
        assert set(rows.run_key) == set(want.index), folder
        curves = pd.read_csv(folder / "adding-curves.csv")
        for _, row in rows.iterrows():
            for metric in METRICS:
                assert row[metric] == want.loc[row.run_key, metric], (
                    folder,
                    row.cell_spec,
                    row.seed,
                    metric,
                )
            assert curve_points(curves, row.run_id) == curve_points(
                want_curves, want.loc[row.run_key, "run_id"]
            )
        assert not list(folder.glob("checkpoints/*.pt"))  # finished runs leave no checkpoint
    by_kind = {
        kind: sum(1 for what, code in log if what.startswith(kind) and code == -signal.SIGKILL)
        for kind in ("time", "checkpoint", "row", "curves")
    }
    print(
        f"\n{kills} kills survived over {len(log)} attempts ({by_kind}); {rows_written} rows in "
        f"{len(list(tmp_path.glob('killed*')))} sweeps, none lost or doubled: {log}"
    )


@pytest.mark.slow
def test_a_kill_halfway_through_a_row_leaves_it_aside_and_the_run_runs_again(tmp_path):
    results = tmp_path / "r"
    code, _ = finish(rnnbench(results, "row:2"))
    assert code == -signal.SIGKILL and fired(results) == ["row:2"]
    data = (results / "adding.csv").read_bytes()
    assert not data.endswith(b"\n")  # the torn row
    code, output = finish(rnnbench(results))
    assert code == 0, output
    assert "torn row" in output and (results / "adding.csv.torn").exists()
    rows = pd.read_csv(results / "adding.csv")
    assert len(rows) == RUNS and rows.run_key.is_unique and set(rows.status) == {"ok"}
