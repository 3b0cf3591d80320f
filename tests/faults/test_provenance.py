"""Determinism and provenance: the same run twice gives the same row (times aside), and a row's
stored config reproduces it."""

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import invoke

import rnnbench
from rnnbench import executors, store
from rnnbench import sweep as sweeps
from rnnbench.config import RunConfig
from rnnbench.store import schema

PACKAGE = Path(rnnbench.__file__).parent

SWEEP = [
    "--cells",
    "rnn,lstm,eurnn",
    "--task",
    "copying:delay=5:n_train=64:n_valid=32:n_test=32",
    "--hidden",
    "10",
    "--steps",
    "12",
    "--eval-every",
    "4",
    "--batch-size",
    "16",
    "--eval-batch-size",
    "32",
    "--lr",
    "0.01",
    "--seeds",
    "3",
    "--device",
    "cpu",
]
# What may differ between two runs of the same experiment: the run's id, and measurements of time
# and memory (the process's resident set depends on what ran before in it).
MEASURED = [
    "run_id",
    "build_time_s",
    "train_time_s",
    "step_time_ms",
    "step_time_iqr_ms",
    "warmup_time_s",
    "eval_time_s",
    "log_time_s",
    "time_to_target_s",
    "timing_note",
    "peak_mem_mb",
    "timestamp",
]


def sweep(results, *extra):
    out = invoke("run", *SWEEP, "--results", str(results), *extra)
    assert out.exit_code == 0, out.output
    return pd.read_csv(results / "copying.csv", dtype=str, keep_default_na=False)


@pytest.mark.fused
def test_the_same_config_and_seed_give_identical_rows_but_for_times(tmp_path):
    first = sweep(tmp_path / "a")
    second = sweep(tmp_path / "b")
    assert "fused" in set(
        first.impl
    )  # eurnn at N=10 runs the compiled kernel: it is deterministic too
    assert first.drop(columns=MEASURED).equals(second.drop(columns=MEASURED))
    curves = [
        pd.read_csv(folder / "copying-curves.csv").drop(columns=["run_id", "wall_time_s"])
        for folder in (tmp_path / "a", tmp_path / "b")
    ]
    assert curves[0].equals(curves[1])


def test_a_row_is_reproduced_from_its_stored_config(tmp_path):
    rows = sweep(tmp_path / "a")
    for _, row in rows.iterrows():
        assert row.rnnbench_version == rnnbench.__version__
        config = RunConfig(**json.loads(row.config_json))
        runs, splits = sweeps.plan(
            row.task_spec,
            [rnnbench.parse_cell_spec(row.cell_spec)],
            [int(row.seed)],
            config,
            tmp_path / "again",
        )
        again = executors.execute(runs, splits)[0]
        assert again["run_key"] == row.run_key
        for metric in (
            "test_acc",
            "test_acc_final",
            "test_loss",
            "best_valid_acc",
            "final_train_loss",
        ):
            assert repr(again[metric]) == row[metric] or str(again[metric]) == row[metric], metric


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=PACKAGE)
    return out.stdout.strip() if out.returncode == 0 else ""


def test_every_row_names_what_produced_it(tmp_path):
    """Each provenance column holds what produced the row, checked against its source here: the
    plan's keys, the specs given, the versions imported, the checkout's commit (asked of git)."""
    rows = sweep(tmp_path / "a")  # (one sweep for every column: each costs seconds)
    assert list(rows.columns) == store.COLUMNS  # every column written, in the schema's order
    config = RunConfig(**json.loads(rows.config_json[0]))
    cells = [rnnbench.parse_cell_spec(spec) for spec in ("rnn", "lstm", "eurnn")]
    runs, _ = sweeps.plan(rows.task_spec[0], cells, [3], config, tmp_path / "plan")
    assert sorted(rows.run_key) == sorted(run.key for run in runs) and rows.run_key.is_unique
    assert set(rows.cell_spec) == {"rnn", "lstm", "eurnn"}
    assert set(rows.task_spec) == {"copying:delay=5:n_test=32:n_train=64:n_valid=32"}
    assert {json.dumps(json.loads(text), sort_keys=True) for text in rows.task_json} == {
        json.dumps(rnnbench.build_task(rows.task_spec[0]).metadata(), sort_keys=True)
    }
    assert json.loads(rows.data_json[0]) == {
        "generator": "copying",
        "delay": 5,
        "n_train": 64,
        "n_valid": 32,
        "n_test": 32,
    }
    assert set(rows.data_hash) == {schema.data_hash(json.loads(rows.data_json[0]))}
    assert set(rows.torch_version) == {torch.__version__}
    assert set(rows.rnnbench_version) == {rnnbench.__version__}
    impl = dict(zip(rows.cell_spec, rows.impl, strict=True))
    assert impl["rnn"] == impl["lstm"] == "native" and impl["eurnn"] in {"fused", "dense"}
    # The commit of the checkout rnnbench runs from, '+dirty' when its code has changes; nothing
    # where rnnbench is not a checkout (installed from a wheel).
    commit = _git("rev-parse", "--short=12", "HEAD")
    if commit:
        top = _git("rev-parse", "--show-toplevel")
        code = ("rnnbench", "cells", "tasks", "pyproject.toml")
        dirty = _git("-C", top, "status", "--porcelain", "--", *code)
        assert set(rows.git_commit) == {commit + ("+dirty" if dirty else "")}
    else:
        assert set(rows.git_commit) == {""}


def test_a_run_inside_a_multi_seed_sweep_equals_the_same_seed_run_alone(tmp_path):
    """Tasks that generate data from the seed (copying) give each run its own seed's data."""
    together = sweep(tmp_path / "a", "--seeds", "3,4")
    alone = sweep(tmp_path / "b", "--seeds", "4")
    pick = lambda rows: rows[rows.seed == "4"].drop(columns=MEASURED).reset_index(drop=True)  # noqa: E731
    assert pick(together).equals(pick(alone))
