"""The benchmark scripts run (at tiny sizes) and print what they promise."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def test_cells_benchmark_quick(tmp_path):
    csv = tmp_path / "cells.csv"
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cells.py"), "--quick", "--csv", str(csv)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for ratio in ("eurnn-dense / rnn", "reference / dense", "lstm / rnn"):
        assert ratio in out.stdout
    table = pd.read_csv(csv)
    assert set(table.cell) >= {"rnn", "lstm", "gru", "eurnn:impl=reference", "eurnn-full:impl=dense"}
    assert (table.median_ms > 0).all()
    assert set(table.impl) == {"native", "reference", "dense"}


@pytest.mark.parametrize("script, expected", [
    ("overhead.py", ["bare loop", "runner", "overhead"]),
    ("data.py", ["parse + checksum, gzipped files", "parse + checksum, plain files", "task load"]),
])
def test_measurement_scripts_run_quickly(script, expected):
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for line in expected:
        assert line in out.stdout
