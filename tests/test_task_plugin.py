"""The task contract is enough: a task written outside the package, in a plugin module, runs
through `run` (inline and local), `status` and `report`, and the report needs no registry: it is
made by a process that never imports the plugin."""

import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

PLUGIN = textwrap.dedent('''
    """A task of our own: the parity of a bit string of 3 to 9 bits, read at its end."""
    import numpy as np
    import torch

    from rnnbench import Split, Splits, Task, register_task
    from rnnbench.task import split_generators


    @register_task("parity-test")
    class Parity(Task):
        """Parity of a bit string of varying length, read at its last bit."""

        version = 3
        input_size, num_classes, length = 2, 2, 9
        data_per_seed = True
        chance = 0.5
        score_name = "parity acc."
        reference_lines = {"a line of our own": 0.75}
        citation = "@misc{parity, title={Parity}, author={Nobody}, year={2026}}"

        def __init__(self, n_train: int = 200, shortest: int = 3):
            self.n_train, self.shortest = n_train, shortest

        def generate(self, n, generator):
            lengths = torch.randint(self.shortest, self.length + 1, (n,), generator=generator)
            bits = torch.randint(2, (n, self.length), generator=generator)
            # padding that would flip the parity
            bits[torch.arange(self.length) >= lengths[:, None]] = 1
            parity = (bits * (torch.arange(self.length) < lengths[:, None])).sum(1) % 2
            return torch.nn.functional.one_hot(bits, 2).float(), parity, lengths

        def load(self, config, folder=None):
            sizes = {"train": self.n_train, "valid": 50, "test": 50}
            generators = split_generators(config.seed, 7)
            splits = {k: Split(*self.generate(sizes[k], g)) for k, g in generators.items()}
            identity = {"generator": "parity", "n_train": self.n_train, "shortest": self.shortest}
            return Splits(splits["train"], splits["valid"], splits["test"], identity)

        def example(self):
            x, _, _ = self.generate(1, torch.Generator().manual_seed(0))
            return {"bits": x[0].T.numpy()}
''')


def rnnbench(*args, cwd, plugin=True):
    command = (
        [sys.executable, "-m", "rnnbench"]
        + (["--plugin", "parity_task"] if plugin else [])
        + list(args)
    )
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_task_of_our_own_runs_through_run_status_and_report(tmp_path):
    (tmp_path / "parity_task.py").write_text(PLUGIN)
    results = tmp_path / "results"
    quick = [
        "--preset",
        "quick",
        "--steps",
        "6",
        "--eval-every",
        "3",
        "--hidden",
        "8",
        "--batch-size",
        "10",
    ]
    out = rnnbench(
        "run",
        "--cells",
        "lstm,eurnn",
        "--task",
        "parity-test",
        *quick,
        "--results",
        str(results),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    out = rnnbench(
        "run",
        "--cells",
        "gru",
        "--task",
        "parity-test:shortest=4",
        *quick,
        "--results",
        str(results),
        "--executor",
        "local",
        "--jobs",
        "1",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    out = rnnbench("status", "--results", str(results), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("1 ok"), out.stdout

    rows = pd.read_csv(results / "parity-test.csv")
    assert sorted(rows["cell_spec"]) == ["eurnn", "gru", "lstm"] and set(rows["status"]) == {"ok"}
    assert set(rows["task_version"]) == {3}
    assert json.loads(rows["task_json"][0])["score_name"] == "parity acc."
    assert json.loads(rows.loc[rows["cell_spec"] == "gru", "data_json"].iloc[0])["shortest"] == 4
    assert rows.loc[rows["cell_spec"] == "gru", "data_hash"].iloc[0] != rows["data_hash"][0]

    # The report: in a process without the plugin, from what the rows and the task card recorded.
    out = rnnbench("report", "--results", str(results), cwd=tmp_path, plugin=False)
    assert out.returncode == 0, out.stderr
    assert "Parity acc. (%)" in out.stdout  # the recorded score name, not the registry's
    report = results / "report"
    assert (report / "parity-test-v3-input.png").exists()
    assert "@misc{parity" in (report / "references.bib").read_text()
    tables = sorted(p.name for p in report.glob("*.md") if p.name != "report.md")
    assert len(tables) == 2  # two task specs: two tables


def test_the_readme_example_task_runs_as_written(tmp_path):
    """README's "Adding your own task" code, as a plugin, trains and writes its rows."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Adding your own task", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "my_tasks.py").write_text(code)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnnbench",
            "--plugin",
            "my_tasks",
            "run",
            "--cells",
            "lstm",
            "--task",
            "parity:n_train=200",
            "--preset",
            "quick",
            "--steps",
            "4",
            "--eval-every",
            "2",
            "--hidden",
            "8",
            "--batch-size",
            "10",
            "--results",
            str(tmp_path / "results"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    rows = pd.read_csv(tmp_path / "results" / "parity.csv")
    assert list(rows["status"]) == ["ok"] and rows["task_spec"][0] == "parity:n_train=200"
