"""Lists and grids in `rnnbench run`, and `rnnbench tune`: selection on validation only, trials
never repeated, a killed study resumed, pruning, and bad studies refused before anything runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import invoke

from rnnbench.config import parse_seeds, parse_values

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.usefixtures("flip_task")  # the task "flip-test" (conftest.py)

TINY = [
    "--task",
    "flip-test",
    "--hidden",
    "8",
    "--steps",
    "40",
    "--eval-every",
    "10",
    "--batch-size",
    "20",
    "--optimizer",
    "adam",
    "--device",
    "cpu",
]


def rows_of(results):
    return pd.read_csv(results / "flip-test.csv")


def test_lists_and_seed_ranges_parse_and_name_bad_values():
    assert parse_values("lr", "1e-4, 3e-4") == [1e-4, 3e-4] and parse_values(
        "batch_size", "5,10"
    ) == [5, 10]
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    for name, text, said in [
        ("lr", "1e-3,x", "'x' is not a number"),
        ("batch_size", "5,1.5", "not a whole number"),
        ("clip", "1,", "empty value"),
    ]:
        with pytest.raises(ValueError, match=said):
            parse_values(name, text)
    for text, said in [("3-1", "runs backwards"), ("0-x", "not a seed"), ("-1", "a seed must be")]:
        with pytest.raises(ValueError, match=said):
            parse_seeds(text)


def test_numeric_lists_expand_into_the_cross_product_with_cells_and_seeds(tmp_path):
    out = invoke(
        "run",
        "--cells",
        "rnn,lstm",
        *TINY,
        "--lr",
        "1e-3,1e-2",
        "--batch-size",
        "10,20",
        "--seeds",
        "0-1",
        "--in-process",
        "--results",
        str(tmp_path),
    )
    assert out.exit_code == 0, out.output
    rows = rows_of(tmp_path)
    assert len(rows) == 2 * 2 * 2 * 2 and rows["run_key"].is_unique
    combos = set(zip(rows["cell"], rows["lr"], rows["batch_size"], rows["seed"], strict=True))
    assert combos == {
        (c, lr, b, s)
        for c in ("rnn", "lstm")
        for lr in (1e-3, 1e-2)
        for b in (10, 20)
        for s in (0, 1)
    }
    assert set(rows["phase"].fillna("")) == {""}  # plain runs: no study
    again = invoke(
        "run",
        "--cells",
        "rnn,lstm",
        *TINY,
        "--lr",
        "1e-3,1e-2",
        "--batch-size",
        "10,20",
        "--seeds",
        "0,1",
        "--in-process",
        "--results",
        str(tmp_path),
    )
    assert (
        again.exit_code == 0 and len(rows_of(tmp_path)) == 16
    )  # done already: nothing trained twice


@pytest.mark.parametrize(
    "flags, said",
    [
        (["--lr", "1e-3,abc"], "--lr '1e-3,abc': 'abc' is not a number"),
        (["--lr", "1e-3,0"], "--lr must be positive; got 0.0"),
        (["--batch-size", "10,0"], "--batch-size must be a positive integer; got 0"),
        (["--seeds", "2-0"], "--seeds '2-0': the range 2-0 runs backwards"),
        (["--clip", "1,-1"], "--clip must be >= 0"),
        (["--params", "500,900"], "not both"),
    ],
)
def test_bad_lists_fail_before_anything_runs(tmp_path, flags, said):
    out = invoke("run", "--cells", "rnn", *TINY, *flags, "--results", str(tmp_path / "r"))
    assert out.exit_code == 2 and said in out.output, out.output
    assert not (tmp_path / "r").exists()


def test_selection_reads_validation_never_test(tmp_path):
    """On flip-test the setting that learns has the best validation score and the worst test
    score: the study must choose it, and its final rows must carry it."""
    out = invoke(
        "tune",
        "--cells",
        "lstm,rnn",
        *TINY,
        "--space",
        "lr=1e-5,3e-2",
        "--final-seeds",
        "1,2",
        "--in-process",
        "--results",
        str(tmp_path),
        "--name",
        "flip",
    )
    assert out.exit_code == 0, out.output
    rows = rows_of(tmp_path)
    tune, final = rows[rows["phase"] == "tune"], rows[rows["phase"] == "final"]
    assert (
        len(tune) == 4 and set(tune["study"]) == {"flip"} and sorted(tune["trial"]) == [0, 0, 1, 1]
    )
    for cell, trials in tune.groupby("cell"):
        by_valid = trials.loc[trials["best_valid_acc"].idxmax()]
        by_test = trials.loc[trials["test_acc"].idxmax()]
        assert by_valid["lr"] != by_test["lr"], "the fixture must make validation and test disagree"
        chosen = final[final["cell"] == cell]
        assert len(chosen) == 2 and set(chosen["seed"]) == {1, 2}
        assert set(chosen["lr"]) == {by_valid["lr"]} and set(chosen["trial"]) == {by_valid["trial"]}
        assert json.loads(chosen["tuned_json"].iloc[0]) == {"lr": by_valid["lr"]}
        study = json.loads(chosen["study_json"].iloc[0])
        assert (
            study["space"] == {"lr": {"choices": [1e-5, 3e-2]}}
            and study["objective"] == "best_valid_acc"
        )
    assert f"{cell}: chose trial" in out.output
    # The whole study again: every trial and final run has its row, nothing runs.
    again = invoke(
        "tune",
        "--cells",
        "lstm,rnn",
        *TINY,
        "--space",
        "lr=1e-5,3e-2",
        "--final-seeds",
        "1,2",
        "--in-process",
        "--results",
        str(tmp_path),
        "--name",
        "flip",
    )
    assert again.exit_code == 0 and len(rows_of(tmp_path)) == len(rows)


@pytest.mark.slow
def test_a_study_killed_halfway_resumes_without_repeating_a_trial(tmp_path):
    command = [
        sys.executable,
        "-m",
        "rnnbench",
        "--plugin",
        "flip_task",
        "tune",
        "--cells",
        "lstm,rnn",
        *TINY,
        "--steps",
        "300",
        "--space",
        "lr=1e-3,3e-3,1e-2",
        "--final-seeds",
        "1",
        "--in-process",
        "--results",
        str(tmp_path),
        "--name",
        "killed",
    ]
    env = {**os.environ, "PYTHONPATH": str(FIXTURES)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    csv = tmp_path / "flip-test.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if csv.exists() and len(pd.read_csv(csv)) >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = pd.read_csv(csv)
    assert 2 <= len(before) < 6, "the kill must come halfway through the six trials"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = pd.read_csv(csv)
    tune = rows[rows["phase"] == "tune"]
    assert len(tune) == 6 and tune["run_key"].is_unique, "each trial trained exactly once"
    assert set(before["run_id"]) <= set(rows["run_id"])
    assert sorted(tune.groupby("cell")["trial"].apply(sorted).tolist()) == [[0, 1, 2], [0, 1, 2]]
    assert len(rows[rows["phase"] == "final"]) == 2

    import optuna

    from rnnbench._optuna import storage as _storage
    from rnnbench.tune import journal_path

    storage = _storage(journal_path(tmp_path, "killed"))
    for cell in ("lstm", "rnn"):
        trials = optuna.load_study(study_name=f"killed:{cell}", storage=storage).trials
        assert [t.state.name for t in trials] == [
            "COMPLETE"
        ] * 3  # the killed trial taken up, not asked anew


def test_trials_that_ended_before_the_study_heard_of_them_are_not_trained_again(
    tmp_path, monkeypatch
):
    """A study killed after its trials' rows were written, before it told Optuna (one trial
    diverged): the next `tune` tells Optuna from those rows, and trains none of them again."""
    from rnnbench import tune

    args = [
        "tune",
        "--cells",
        "rnn",
        *TINY,
        "--optimizer",
        "rmsprop",
        "--space",
        "lr=1e38,1e-2",
        "--final-seeds",
        "1",
        "--in-process",
        "--results",
        str(tmp_path),
        "--name",
        "told",
    ]

    def killed(*_):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(tune.Tuner, "_tell", killed)
        assert invoke(*args).exit_code != 0
    before = rows_of(tmp_path)
    assert sorted(before["status"]) == ["diverged", "ok"] and set(before["phase"]) == {"tune"}
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    rows = rows_of(tmp_path)
    assert list(rows["run_id"][:2]) == list(before["run_id"]) and list(rows["phase"][2:]) == [
        "final"
    ]
    assert "already has a diverged row" in again.output
    assert set(rows.loc[rows["phase"] == "final", "lr"]) == {1e-2}


def test_a_resumed_tpe_study_asks_new_settings_not_the_ones_it_tried(tmp_path, monkeypatch):
    """Each sampler draw has a seed of its own: a study taken up by a new process does not get
    its earlier settings proposed again (a sampler seeded alike in every process would)."""
    from rnnbench import tune

    args = [
        "tune",
        "--cells",
        "rnn",
        *TINY,
        "--steps",
        "10",
        "--space",
        "lr=1e-4:1e-1:log",
        "--sampler",
        "tpe",
        "--trials",
        "3",
        "--final-seeds",
        "1",
        "--in-process",
        "--results",
        str(tmp_path),
        "--name",
        "tpe",
    ]
    real = tune.Tuner._tell
    calls = []

    def killed_after_first(self, *a):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(self, *a)

    with monkeypatch.context() as patched:
        patched.setattr(tune.Tuner, "_tell", killed_after_first)
        assert invoke(*args).exit_code != 0
    assert invoke(*args).exit_code == 0
    tune_rows = rows_of(tmp_path).query("phase == 'tune'")
    assert (
        len(tune_rows) == 3
        and tune_rows["lr"].nunique() == 3
        and sorted(tune_rows["trial"]) == [0, 1, 2]
    )


def test_a_setting_a_cell_cannot_run_fails_its_trial_and_the_study_goes_on(tmp_path):
    out = invoke(
        "tune",
        "--cells",
        "eurnn",
        *TINY,
        "--space",
        "hidden_size=7,8",
        "--final-seeds",
        "1",
        "--in-process",
        "--results",
        str(tmp_path),
        "--name",
        "odd",
    )
    assert out.exit_code == 0, out.output
    assert "(hidden_size 7) cannot run: EURNN needs an even hidden size" in out.output
    rows = rows_of(tmp_path)
    assert list(rows["phase"]) == ["tune", "final"] and set(rows["hidden_size"]) == {8}


def test_a_failed_trial_is_tried_once_more_then_failed(tmp_path, monkeypatch):
    from rnnbench import runner

    real = runner.train

    def fails_at_high_lr(task, spec, config, *a, **k):
        if config.lr > 1e-2:
            raise RuntimeError("out of luck")
        return real(task, spec, config, *a, **k)

    monkeypatch.setattr(runner, "train", fails_at_high_lr)
    out = invoke(
        "tune",
        "--cells",
        "rnn",
        *TINY,
        "--space",
        "lr=1e-3,1e-1",
        "--final-seeds",
        "1",
        "--in-process",
        "--results",
        str(tmp_path),
        "--name",
        "retry",
    )
    assert out.exit_code == 0, out.output
    rows = rows_of(tmp_path)
    assert sorted(rows.loc[rows["lr"] == 1e-1, "status"]) == ["failed", "failed"]  # tried twice
    assert "trying them once more" in out.output
    assert list(rows.loc[rows["phase"] == "final", "lr"]) == [1e-3]


def test_a_cell_spec_with_options_and_a_space_of_its_own_round_trip(tmp_path):
    args = [
        "--cells",
        "eurnn:capacity=4,rnn",
        *TINY,
        "--steps",
        "10",
        "--space",
        "lr=1e-3,1e-2",
        "--space",
        "eurnn.angles_lr=1e-3,1e-2",
        "--final-seeds",
        "1",
        "--in-process",
    ]
    assert invoke("tune", *args, "--results", str(tmp_path), "--name", "own").exit_code == 0
    rows = rows_of(tmp_path)
    assert len(rows.query("phase == 'tune'")) == 4 + 2
    again = invoke(
        "tune", "--config", str(tmp_path / "sweeps" / "own.toml"), "--results", str(tmp_path)
    )
    assert again.exit_code == 0, again.output
    assert len(rows_of(tmp_path)) == len(rows)


def test_the_pruner_stops_a_lagging_trial_and_its_row_says_pruned(tmp_path):
    import optuna

    from rnnbench._optuna import storage as _storage
    from rnnbench.tune import Pruning, _pruner, journal_path

    storage = _storage(journal_path(tmp_path, "p"))
    study = optuna.create_study(
        study_name="p:lstm", storage=storage, pruner=_pruner("asha"), direction="maximize"
    )
    for _ in range(4):  # four trials that did well at every step, reported as their runs do
        trial = study.ask()
        for step in (10, 20, 30, 40):
            assert not Pruning(
                str(journal_path(tmp_path, "p")), "p:lstm", trial.number, "asha"
            ).should_stop(step, 0.9)
        study.tell(trial, 0.9)
    lagging = study.ask()
    assert Pruning(str(journal_path(tmp_path, "p")), "p:lstm", lagging.number, "asha").should_stop(
        10, 0.1
    )
    keeps = study.ask()
    assert not Pruning(
        str(journal_path(tmp_path, "p")), "p:lstm", keeps.number, "asha"
    ).should_stop(10, 0.95)

    from rnnbench import build_task, parse_cell_spec
    from rnnbench.config import RunConfig
    from rnnbench.runner import train

    config = RunConfig(hidden_size=8, steps=40, eval_every=10, batch_size=20, device="cpu")
    task = build_task("flip-test")
    result = train(
        task,
        parse_cell_spec("lstm"),
        config,
        task.load(config),
        __import__("torch").device("cpu"),
        should_stop=lambda step, value: step >= 20,
    )
    assert (
        result["status"] == "pruned" and result["steps_done"] == 20 and "pruner" in result["error"]
    )
    assert result["best_valid_acc"] != "" and "test_acc" in result


@pytest.mark.parametrize(
    "flags, said",
    [
        (
            ["--space", "lr=1e-4:1e-2:log", "--sampler", "grid"],
            "--sampler grid needs listed values",
        ),
        (["--space", "lr=1e-4:1e-2:log"], "--sampler tpe needs --trials"),
        (["--space", "lrr=1e-3,1e-2"], "'lrr' is not a hyper-parameter that can be searched"),
        (["--space", "lr=1e-2:1e-4"], "LOW must be below HIGH"),
        (["--space", "lr=0:1:log", "--trials", "2"], "a log range needs LOW > 0"),
        (["--space", "gru.lr=1e-3,1e-2"], "'gru' is not one of the study's cells"),
        (["--space", "lr=1e-3,1e-2", "--final-seeds", "0,1"], "--final-seeds must be fresh seeds"),
        (
            ["--space", "lr=1e-3,1e-2", "--clip", "0,1"],
            "a study searches with --space clip=..., not lists",
        ),
        (
            ["--space", "lr=1e-3,1e-2", "--pruner", "asha", "--tune-seeds", "0,1"],
            "give one --tune-seeds, not 2",
        ),
        (
            ["--space", "lr=1e-3,1e-2", "--params", "900", "--space", "hidden_size=8,16"],
            "--space hidden_size: the study sizes cells by --params 900",
        ),
        (
            ["--space", "lr_warmup_steps=0,50"],
            "--space lr_warmup_steps=0,50: --lr-warmup-steps 50 must be smaller",
        ),
        (["--space", "lr=1e-3,1e-2", "--name", "../up"], "--name '../up': a study's name is"),
        (
            ["--space", "batch_size=16:500", "--trials", "2"],
            "--batch-size 500 is larger than the training set (200",
        ),
        ([], "a study needs a search space"),
    ],
)
def test_bad_studies_are_refused_before_anything_runs(tmp_path, flags, said):
    tiny = (
        TINY[:2] + TINY[4:] if "--params" in flags else TINY
    )  # (--hidden with --params is refused first)
    out = invoke("tune", "--cells", "lstm,rnn", *tiny, *flags, "--results", str(tmp_path / "r"))
    assert "Traceback" not in out.output
    assert out.exit_code == 2 and said in out.output, out.output
    assert not (tmp_path / "r").exists()


def test_a_study_name_is_not_reused_for_another_config(tmp_path):
    args = [
        "tune",
        "--cells",
        "rnn",
        *TINY,
        "--steps",
        "10",
        "--final-seeds",
        "1",
        "--in-process",
        "--results",
        str(tmp_path),
        "--name",
        "same",
    ]
    assert invoke(*args, "--space", "lr=1e-3,1e-2").exit_code == 0
    out = invoke(*args, "--space", "lr=1e-3,3e-2")
    assert (
        out.exit_code == 2
        and "was started with another config" in out.output
        and "space" in out.output
    )


def test_run_study_refuses_lists_before_anything_is_written_and_names_a_study_by_its_task(tmp_path):
    from rnnbench import executors, tune
    from rnnbench.config import preset
    from rnnbench.registry import CELLS

    request = tune.Request(
        "st",
        [CELLS.parse("rnn")],
        "pmnist:data=sample",
        "quick",
        preset("quick"),
        ["lr=1e-3,1e-2"],
        grid={"clip": [0.0, 1.0]},
    )
    with pytest.raises(
        ValueError, match=r"^--clip 0.0,1.0: a study searches with --space clip=\.\.\., not lists$"
    ):
        tune.run_study(request, executors.from_options({}), {}, tmp_path)
    assert not list(tmp_path.iterdir())
    assert tune.default_name("pmnist:data=sample") == "pmnist-tuned"
    assert tune.default_name("pmnist", Path("studies/mine.toml")) == "mine"
