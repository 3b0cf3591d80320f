"""Sweeps and studies as TOML files: the resolved config of a sweep plans the same runs again,
options on the command line override the file, shipped studies load by name, and a bad file
fails with its file, line and key named."""

import logging
from pathlib import Path

import pandas as pd
import pytest
from conftest import invoke

from rnnbench import configfile
from rnnbench.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.usefixtures("flip_task")  # the task "flip-test" (conftest.py)

TINY = [
    "--task",
    "flip-test",
    "--hidden",
    "8",
    "--steps",
    "20",
    "--eval-every",
    "10",
    "--batch-size",
    "20",
    "--device",
    "cpu",
    "--in-process",
]


def test_the_resolved_config_of_a_sweep_plans_the_same_runs(tmp_path):
    results = tmp_path / "r"
    out = invoke(
        "run",
        "--cells",
        "rnn,lstm",
        *TINY,
        "--lr",
        "1e-3,1e-2",
        "--seeds",
        "0-1",
        "--results",
        str(results),
    )
    assert out.exit_code == 0, out.output
    (written,) = (results / "sweeps").glob("run-*.toml")
    text = written.read_text()
    assert (
        'command = "run"' in text
        and "lr = [\n    0.001,\n    0.01,\n]" in text
        and str(tmp_path) not in text
    )
    keys = set(pd.read_csv(results / "flip-test.csv")["run_key"])
    again = invoke("run", "--config", str(written), "--results", str(results))
    assert again.exit_code == 0, again.output
    assert (
        again.output.count("already has an ok row") == 8
    )  # the same eight runs, none trained again
    assert set(pd.read_csv(results / "flip-test.csv")["run_key"]) == keys
    assert [p.name for p in (results / "sweeps").glob("run-*.toml")] == [written.name]
    # Into a fresh folder, the file alone plans runs with the same keys.
    fresh = invoke("run", "--config", str(written), "--results", str(tmp_path / "fresh"))
    assert (
        fresh.exit_code == 0
        and set(pd.read_csv(tmp_path / "fresh" / "flip-test.csv")["run_key"]) == keys
    )


def test_the_resolved_config_of_a_study_continues_it(tmp_path):
    args = [
        "tune",
        "--cells",
        "rnn",
        *TINY,
        "--space",
        "lr=1e-3,1e-2",
        "--final-seeds",
        "1",
        "--name",
        "s",
    ]
    assert invoke(*args, "--results", str(tmp_path)).exit_code == 0
    rows = pd.read_csv(tmp_path / "flip-test.csv")
    again = invoke(
        "tune", "--config", str(tmp_path / "sweeps" / "s.toml"), "--results", str(tmp_path)
    )
    assert again.exit_code == 0, again.output
    assert len(pd.read_csv(tmp_path / "flip-test.csv")) == len(rows) == 3


def test_command_line_options_override_the_file(tmp_path):
    study = tmp_path / "mine.toml"
    study.write_text(
        'command = "run"\ncells = ["rnn"]\ntask = "flip-test"\nhidden_size = 8\nsteps = 20\n'
        'eval_every = 10\nbatch_size = 20\ndevice = "cpu"\nin_process = true\nseeds = "0-1"\n'
        "lr = [1e-3, 1e-2]\n"
    )
    out = invoke("run", "--config", str(study), "--lr", "3e-3", "--results", str(tmp_path / "r"))
    assert out.exit_code == 0, out.output
    rows = pd.read_csv(tmp_path / "r" / "flip-test.csv")
    assert (
        set(rows["lr"]) == {3e-3}
        and set(rows["seed"]) == {0, 1}
        and set(rows["hidden_size"]) == {8}
    )


@pytest.mark.parametrize("name", configfile.shipped())
def test_every_shipped_study_loads_by_name(name):
    from rnnbench import tune
    from rnnbench.cli import expand_cells
    from rnnbench.config import parse_seeds

    assert {"torch-eunn", "pmnist-tuned", "copying-matched", "quick-tuned"} <= set(
        configfile.shipped()
    )
    command = main.commands[
        configfile.tomllib.loads(configfile.locate(name).read_text())["command"]
    ]
    defaults = configfile.read(
        configfile.locate(name), command, {"cells", "seeds", "tune_seeds", "final_seeds"}
    )
    specs = expand_cells(defaults["cells"])
    if command.name == "tune":
        study = tune.make_study(
            name,
            specs,
            defaults["space"],
            int(defaults.get("trials") or 0) or None,
            defaults.get("sampler"),
            defaults.get("pruner", "none"),
            parse_seeds(defaults["tune_seeds"]),
            parse_seeds(defaults["final_seeds"]),
        )
        assert study.cells == specs and all(study.space.values())


BAD = [
    (
        'cells = ["rnn"]\ntask = "flip-test"\nlrr = 0.1\n',
        3,
        "unknown key 'lrr' (did you mean 'lr'?)",
    ),
    (
        'cells = ["rnn"]\ntask = "flip-test"\n\nlr = "fast"\n',
        4,
        "lr: --lr 'fast': 'fast' is not a number",
    ),
    (
        'cells = ["rnn"]\ntask = "flip-test"\nbatch_size = 2.5\n',
        3,
        "batch_size: --batch-size '2.5'",
    ),
    ('cells = ["rnn"]\ntask = "flip-test"\nsteps = true\n', 3, "steps: --steps 'true'"),
    ('cells = 3\ntask = "flip-test"\n', 1, "cells: unknown cell '3'"),
    ('cells = ["rnn"]\ntask = "nope"\n', 2, "task: unknown task 'nope'"),
    (
        'cells = ["rnn"]\ntask = "flip-test"\nseeds = "4-1"\n',
        3,
        "seeds: --seeds '4-1': the range 4-1 runs backwards",
    ),
    ('cells = ["rnn"]\ntask = "flip-test"\nexecutor = "cloud"\n', 3, "executor:"),
    ('cells = ["rnn"]\ntask = "flip-test"\nforce = "yes"\n', 3, "force: expected true or false"),
    (
        'cells = ["rnn"]\ntask = "flip-test"\noptimizer = ["adam", ["sgd"]]\n',
        3,
        "optimizer: expected a value or a list",
    ),
    (
        'command = "tune"\ncells = ["rnn"]\n',
        1,
        "this file is for `rnnbench tune`, not `rnnbench run`",
    ),
    ('cells = ["rnn"]\ntask = "flip-test"\nlr = 0.1\nlr = 0.2\n', None, "not valid TOML"),
    ('cells = ["rnn"\n', None, "not valid TOML"),
]


@pytest.mark.parametrize("text, line, said", BAD)
def test_a_bad_config_file_names_its_file_line_and_key(tmp_path, text, line, said):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = invoke("run", "--config", str(path), "--results", str(tmp_path / "r"))
    assert out.exit_code == 2 and said in out.output, out.output
    assert (f"{path}:{line}:" if line else f"{path}:") in out.output.replace("\n", "")
    assert not (tmp_path / "r").exists()


def test_a_bad_space_in_a_study_file_names_its_line(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(
        'command = "tune"\ncells = ["rnn"]\ntask = "flip-test"\n\n[space]\nlr = "1e-2:1e-4:log"\n'
    )
    out = invoke("tune", "--config", str(path), "--results", str(tmp_path / "r"))
    assert (
        out.exit_code == 2
        and f"{path}:6: space.lr:" in out.output
        and "LOW must be below HIGH" in out.output
    )


def test_a_missing_file_or_unknown_study_lists_the_shipped_ones(tmp_path):
    out = invoke("tune", "--config", "no-such-study")
    assert out.exit_code == 2 and "no such file, nor a study shipped with rnnbench" in out.output
    assert "pmnist-tuned" in out.output and "quick-tuned" in out.output


def test_a_sweeps_resolved_config_is_kept_under_sweeps_with_how_to_run_it_again(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="rnnbench")
    results = tmp_path / "res"
    assert configfile.sweep_path(results, "st") == results / "sweeps" / "st.toml"
    path = configfile.keep(
        results, "st", {"command": "tune", "name": "st", "trials": None, "space": []}
    )
    assert path == results / "sweeps" / "st.toml"
    assert path.read_text() == (
        "# The resolved config of `rnnbench tune` (written by rnnbench). From the folder\n"
        "# that holds res/: rnnbench tune --config res/sweeps/st.toml --results res\n"
        "# plans the same runs again (with the same --plugin modules, if any).\n\n"
        'command = "tune"\nname = "st"\n'
    )
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, f"config: {path} (rnnbench tune --config it to run it again)")
    ]
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "sweeps").write_text(
        "a file where the folder should be"
    )  # (root may write read-only folders)
    assert configfile.keep(blocked, "st", {"command": "tune"}) is None
    warning = caplog.records[-1]
    assert warning.levelno == logging.WARNING
    assert warning.getMessage().startswith(
        f"could not keep this config in {blocked / 'sweeps' / 'st.toml'}: "
    )


def test_a_document_keeps_the_sizing_in_use_and_the_executor_options_given():
    from rnnbench.config import RunConfig

    document = configfile.config_document(RunConfig(params_budget=500), {"lr": [1e-3, 1e-2]})
    assert document["lr"] == [1e-3, 1e-2] and document["params_budget"] == 500
    assert "hidden_size" not in document and "seed" not in document
    assert "params_budget" not in configfile.config_document(RunConfig(), {})
    options = {
        "executor": "slurm",
        "jobs": None,
        "in_process": False,
        "time_min": 30,
        "sbatch_options": ("a=b",),
    }
    assert configfile.executor_document(options) == {
        "executor": "slurm",
        "time": 30,
        "sbatch": ["a=b"],
    }
    assert configfile.without_executor(
        {"lr": 0.1, "executor": "slurm", "time": 30, "sbatch": ["a=b"]}
    ) == {"lr": 0.1}
