"""The benchmark scripts run (at tiny sizes) and print what they promise."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.fused
def test_cells_benchmark_quick(tmp_path):
    csv, js = tmp_path / "cells.csv", tmp_path / "cells.json"
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "cells.py"),
            "--quick",
            "--csv",
            str(csv),
            "--json",
            str(js),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    for ratio in (
        "eurnn-dense / rnn",
        "reference / dense",
        "eurnn-fused / rnn",
        "dense / fused",
        "lstm / rnn",
        "step memory eurnn-full:impl=fused / rnn",
        "lmu / rnn",
        "exprnn / rnn",
        "lru loop / scan",
        "mingru scan / rnn",
        "minlstm loop / scan",
    ):
        assert ratio in out.stdout
    table = pd.read_csv(csv)
    assert set(table.cell) >= {
        "rnn",
        "lstm",
        "gru",
        "eurnn:impl=reference",
        "eurnn-full:impl=dense",
        "eurnn:capacity=2:impl=fused",
        "eurnn-fft:impl=fused",
        "exprnn",
        "scornn",
        "lmu",
        "indrnn",
        "cornn",
        "lru:impl=scan",
        "lru:impl=loop",
        "mingru:impl=scan",
        "minlstm:impl=loop",
    }
    assert (table.median_ms > 0).all()
    assert set(table.impl) == {"native", "reference", "dense", "fused", "scan", "loop"}
    document = json.loads(js.read_text())
    assert len(document["rows"]) == len(table) and document["environment"]["threads"] >= 1
    ratios = {r["name"]: r for r in document["ratios"]}
    assert ratios["dense / fused (N=32, T=20, capacity 2)"]["target"] == ">= 4"
    assert all(r["value"] is None or r["value"] >= 0 for r in document["ratios"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, expected",
    [
        ("overhead.py", ["bare loop", "runner", "runner + tb", "overhead", "logging"]),
        (
            "data.py",
            ["parse + checksum, gzipped files", "parse + checksum, plain files", "task load"],
        ),
    ],
)
def test_measurement_scripts_run_quickly(script, expected):
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    for line in expected:
        assert line in out.stdout


@pytest.mark.slow
@pytest.mark.triton
def test_gpu_benchmark_dry_run_exercises_every_step_on_cpu(tmp_path):
    pytest.importorskip("triton")
    js = tmp_path / "gpu.json"
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--dry-run", "--json", str(js)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    document = json.loads(js.read_text())
    assert document["dry_run"] is True and document["environment"]["device"] == "cpu"
    assert document["tests"]["ok"] and "-m cuda" in document["tests"]["command"]
    rows = {row["cell"]: row for row in document["steps"]["rows"]}
    assert (
        rows["eurnn:impl=triton"]["impl"] == "triton"
        and rows["eurnn:impl=dense"]["impl"] == "dense"
    )
    assert {"rnn", "lstm", "gru", "lmu", "lru", "minlstm"} <= set(rows)
    assert all(
        row["forward_ms"] > 0 and row["backward_ms"] > 0 and row["peak_mb"] > 0
        for row in rows.values()
    )
    registers = document["steps"]["triton_registers_sm90"]
    assert [r["kernel"] for r in registers] == ["forward_kernel", "backward_kernel"]
    assert all(r["registers"] > 0 and r["spill_stores"] == 0 for r in registers)
    assert document["run"]["returncode"] == 0
    assert {row["cell_spec"] for row in document["run"]["rows"]} == {"eurnn", "lstm"}
    assert all(row["status"] == "ok" for row in document["run"]["rows"])
    targets = {r["name"]: r["target"] for r in document["ratios"]}
    assert targets["eurnn (capacity 2, triton) step / nn.RNN step"] == "<= 0.5"
    assert all(r["value"] is not None and r["value"] > 0 for r in document["ratios"])


def test_gpu_benchmark_functions_reach_fresh_processes():
    """Its GPU run measures each cell in a spawned process: the functions it sends must pickle."""
    import importlib.util
    import pickle

    spec = importlib.util.spec_from_file_location("gpu_benchmark", REPO / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # (its own functions pickle as __main__'s when it runs as a script; benchmarks/cells.py's, which
    # it loads by path, only if it registers that module)
    function = module.bench_cells.step_memory
    assert pickle.loads(pickle.dumps(function)) is function
