"""`rnnbench report` on tuning studies (issue 15): trials left out of the results tables, a
study's final table, its trials, its figure, the choice made on validation only, and the warning
for a chosen value at an edge of what was searched."""

import csv
import itertools
import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pandas as pd
import pytest
from conftest import invoke

from rnnbench import report as reporting
from rnnbench import store

CONFIG = {
    "hidden_size": 8,
    "batch_size": 10,
    "steps": 20,
    "eval_every": 10,
    "eval_batch_size": 50,
    "optimizer": "rmsprop",
    "lr": 0.001,
    "clip": 0.0,
    "device": "cpu",
    "dtype": "float32",
    "sampling": "epochs",
    "warmup_steps": 1,
}
TASK_JSON = json.dumps({"score_name": "accuracy", "higher_is_better": True})
SPACE = {
    "lr": {"low": 0.0001, "high": 0.01, "log": True},
    "batch_size": {"choices": [16, 32, 64, 128]},
}
STUDY = {
    "space": SPACE,
    "sampler": "tpe",
    "pruner": "asha",
    "objective": "best_valid_acc",
    "direction": "maximize",
    "trials": 4,
    "tune_seeds": [0],
    "final_seeds": [1, 2, 3],
}
ODD_NAME = "../../evil|*x*$\\_{}<b>#1"
NUMBERS = itertools.count()  # (every row its own run)


def row(
    cell,
    seed,
    test=None,
    valid=None,
    status="ok",
    phase="",
    study="",
    trial=None,
    tuned=None,
    **extra,
):
    """A row as the runner writes it; a study's rows carry their phase, study, trial, searched
    values (also in the config, as the tuner sets them) and the study's description."""
    tuned = tuned or {}
    number = next(NUMBERS)
    out = {c: "" for c in store.COLUMNS}
    out.update(
        run_id=f"r{number}",
        run_key=f"k{number}",
        task="pmnist",
        task_spec="pmnist",
        task_version=2,
        task_json=TASK_JSON,
        cell=cell.split(":")[0],
        cell_spec=cell,
        seed=seed,
        hidden_size=8,
        config_json=json.dumps({**CONFIG, **tuned, "seed": seed}),
        status=status,
        data_hash="ab" * 6,
        data_json=json.dumps({"source": "sample"}),
        n_test=60_000,
        n_valid=1000,
        device="cpu",
        device_name="Test CPU (2 threads)",
        mem_source="cpu_peak_rss",
        phase=phase,
        study=study,
        trial="" if trial is None else trial,
        steps_done=20 if status == "ok" else 10,
        tuned_json=json.dumps(tuned) if phase else "",
        study_json=json.dumps(STUDY) if phase else "",
    )
    if status != "failed":
        out.update(
            test_acc=test,
            test_acc_final=test,
            best_valid_acc=valid,
            params=900,
            step_time_ms=3.0,
            train_time_s=10.0,
            peak_mem_mb=50.0,
        )
    out.update(extra)
    return out


def trial(cell, number, valid, test, lr, batch_size, status="ok", study="pmnist-tuned", **extra):
    return row(
        cell,
        0,
        test,
        valid,
        status,
        "tune",
        study,
        number,
        {"lr": lr, "batch_size": batch_size},
        **extra,
    )


def final(cell, seed, test, number, lr, batch_size, study="pmnist-tuned"):
    return row(
        cell, seed, test, test, "ok", "final", study, number, {"lr": lr, "batch_size": batch_size}
    )


def tuned_study():
    """lstm: trial 0 has the best test score, trial 1 the best validation score (at the upper end
    of the lr range); eurnn: trial 1 is best, inside every range. Final runs of both."""
    return [
        trial("lstm", 0, 0.80, 0.95, 0.001, 32),
        trial("lstm", 1, 0.90, 0.70, 0.01, 64),
        trial("lstm", 2, 0.40, None, 0.0003, 128, status="pruned"),
        trial("lstm", 3, None, None, 0.005, 16, status="failed"),
        trial("eurnn", 0, 0.70, 0.72, 0.001, 16),
        trial("eurnn", 1, 0.75, 0.71, 0.003, 32),
        final("lstm", 1, 0.80, 1, 0.01, 64),
        final("lstm", 2, 0.82, 1, 0.01, 64),
        final("lstm", 3, 0.84, 1, 0.01, 64),
        final("eurnn", 1, 0.70, 1, 0.003, 32),
        final("eurnn", 2, 0.71, 1, 0.003, 32),
        final("eurnn", 3, 0.72, 1, 0.003, 32),
    ]


def running_study():
    """Still tuning: trials only, one pruned."""
    return [
        trial("gru", 0, 0.60, 0.6, 0.001, 32, study="running"),
        trial("gru", 1, 0.65, 0.6, 0.002, 64, study="running"),
        trial("gru", 2, 0.30, None, 0.005, 16, status="pruned", study="running"),
    ]


def odd_study():
    """A hostile name; rnn: only failed trials; gru: a trial that lacks a searched value."""
    return [
        trial("rnn", 0, None, None, 0.001, 32, status="failed", study=ODD_NAME),
        trial("rnn", 1, None, None, 0.002, 64, status="failed", study=ODD_NAME),
        row("gru", 0, 0.5, 0.5, "ok", "tune", ODD_NAME, 0, {"lr": 0.001}),
        row("gru", 1, 0.5, 0.5, "ok", "final", ODD_NAME, 0, {"lr": 0.001}),
    ]


def write(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "pmnist.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, store.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return folder


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """One report (through the CLI, as people run it) of plain runs and three studies."""
    tmp = tmp_path_factory.mktemp("studies")
    plain = [row("lstm", 0, 0.60, 0.6), row("lstm", 1, 0.62, 0.6)]
    results = write(tmp / "results", plain + tuned_study() + running_study() + odd_study())
    out = tmp / "nested" / "out"
    result = invoke("report", "--results", str(results), "--out", str(out))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output, out


def study_frame(rows):
    frame = reporting.rows_frame(rows)
    return reporting.study_groups(frame)[0][1]


# --- the results tables --------------------------------------------------------------------------


def test_trials_stay_out_of_the_results_tables_and_final_runs_are_lines_of_their_own(reported):
    output, out = reported
    summary = pd.read_csv(out / "pmnist-v2-cpu-summary.csv", keep_default_na=False)
    lines = {
        (r.cell_spec, r.study, r.phase): (r.n, round(r.test_acc_mean, 4))
        for r in summary.itertuples()
    }
    assert lines == {
        ("lstm", "", ""): (2, 0.61),
        ("lstm", "pmnist-tuned", "final"): (3, 0.82),
        ("eurnn", "pmnist-tuned", "final"): (3, 0.71),
        ("gru", ODD_NAME, "final"): (1, 0.5),
    }
    table = (out / "pmnist-v2-cpu.md").read_text()
    assert "| lstm (batch_size=10, lr=0.001) | 61.00 ± 1.41 |" in table
    assert "| lstm (batch_size=64, lr=0.01, study=pmnist-tuned) | **82.00 ± 2.00** |" in table
    assert "95.00" not in table  # (the best test score of a trial: not a result)
    assert (
        "left out" not in output
    )  # (the pruned and failed trials are shown in their study's section)


def test_the_committed_fixture_reports_exactly_as_before(tmp_path):
    """Rows from before studies (no phase, study or trial columns): the report of
    tests/fixtures/pmnist-rows-v1.csv is the one the code before studies wrote, with only the
    caption's sentence naming the cells' papers added (issue 16)."""
    fixtures = Path(__file__).parent / "fixtures"
    results = tmp_path / "results"
    results.mkdir()
    (results / "pmnist.csv").write_bytes((fixtures / "pmnist-rows-v1.csv").read_bytes())
    result = invoke("report", "--results", str(results), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "report.md").read_text() == (
        fixtures / "pmnist-rows-v1-report.md"
    ).read_text()
    assert (tmp_path / "out" / "pmnist-v1-cpu-summary.csv").read_text() == (
        fixtures / "pmnist-rows-v1-summary.csv"
    ).read_text()


# --- a study's section ---------------------------------------------------------------------------


def test_the_final_table_shows_mean_and_std_with_the_chosen_setting(reported):
    output, out = reported
    stem = "study-pmnist-tuned-pmnist-v2"
    table = (out / f"{stem}-final.md").read_text()
    assert "| Cell | lr | batch_size | Trial | Trials | Accuracy (%) ↑ |" in table
    assert "| lstm | 0.01 | 64 | 1 | 4 | **82.00 ± 2.00** |" in table, table
    assert "| eurnn | 0.003 | 32 | 1 | 2/4 | 71.00 ± 1.00 |" in table, (
        table
    )  # (2 of the 4 planned trials ran)
    assert table.startswith("Study pmnist-tuned: the final runs of each cell's chosen setting")
    tex = (out / f"{stem}-final.tex").read_text()
    assert r"lstm & 0.01 & 64 & 1 & 4 & \textbf{82.00 $\pm$ 2.00}" in tex and r"\toprule" in tex
    summary = pd.read_csv(out / f"{stem}-final-summary.csv").set_index("cell_spec")
    assert (
        summary.loc["lstm", "chosen_lr"] == 0.01 and summary.loc["eurnn", "chosen_batch_size"] == 32
    )
    assert summary.loc["lstm", "n"] == 3 and summary.loc["lstm", "test_acc_std"] == pytest.approx(
        0.02
    )
    assert "## Study pmnist-tuned: pmnist (task version 2)" in output
    assert (
        "Search: sampler tpe, pruner asha, 4 trials per cell on seed 0;"
        " final runs on seeds 1, 2, 3." in output
    )


def test_the_choice_is_the_best_validation_score_whatever_the_test_scores(reported):
    study = study_frame(
        [r for r in tuned_study() if r["phase"] == "tune"]
    )  # (before the final runs)
    assert reporting.chosen_trials(study, higher=True) == {
        "eurnn": 1,
        "lstm": 1,
    }  # lstm 0 has the best test score
    flipped = study.assign(test_acc=1 - study["test_acc"])
    assert reporting.chosen_trials(flipped, higher=True) == {"eurnn": 1, "lstm": 1}
    assert reporting.chosen_trials(study, higher=False) == {
        "eurnn": 0,
        "lstm": 0,
    }  # (pruned lstm 2 never is)
    more = [
        row(
            "lstm",
            seed,
            0.5,
            valid,
            "ok",
            "tune",
            "pmnist-tuned",
            5,
            {"lr": 0.002, "batch_size": 32},
        )
        for seed, valid in ((0, 0.95), (1, 0.5))
    ]  # a trial on two seeds: their mean, 72.5, is what counts
    more += [
        row(
            "eurnn:angles_lr=0.3", 0, 0.5, 0.99, "ok", "tune", "pmnist-tuned", 7, {"angles_lr": 0.3}
        )
    ]
    chosen = reporting.chosen_trials(
        study_frame([r for r in tuned_study() if r["phase"] == "tune"] + more), True
    )
    assert chosen == {"eurnn": 7, "lstm": 1}  # (a searched cell option is not another cell)
    _, out = reported
    trials = pd.read_csv(out / "study-pmnist-tuned-pmnist-v2-trials.csv")
    assert "test_acc" not in trials.columns
    assert trials.loc[trials["chosen"], ["cell", "trial"]].values.tolist() == [
        ["eurnn", 1],
        ["lstm", 1],
    ]


def test_the_trials_table_shows_every_trial_pruned_and_failed_ones_too(reported):
    _, out = reported
    table = (out / "study-pmnist-tuned-pmnist-v2-trials.md").read_text()
    assert (
        "| Cell | Trial | lr | batch_size | Valid. accuracy (%) ↑ | Status | Steps | Chosen |"
        in table
    )
    assert "| lstm | 1 | 0.01 | 64 | 90.0 | ok | 20 | ✓ |" in table, table
    assert "| lstm | 2 | 0.0003 | 128 | 40.0 | pruned | 10 |  |" in table
    assert "| lstm | 3 | 0.005 | 16 | – | failed | 10 |  |" in table
    assert (
        len([line for line in table.splitlines() if line.startswith("| ")]) == 1 + 6
    )  # (the header, a line per trial)
    for name in ("trials.png", "trials.pdf"):
        assert (out / f"study-pmnist-tuned-pmnist-v2-{name}").stat().st_size > 1000


@pytest.mark.parametrize(
    "space, value, side",
    [
        ({"low": 0.0001, "high": 0.01, "log": True}, 0.01, "upper"),
        (
            {"low": 0.0001, "high": 0.01, "log": True},
            0.00012,
            "lower",
        ),  # 0.08 of 2 decades from the end
        (
            {"low": 0.0001, "high": 0.01, "log": True},
            0.0003,
            None,
        ),  # inside on the log scale that was searched
        ({"low": 0.0001, "high": 0.01}, 0.0003, "lower"),  # ... while within 5 % of a linear range
        ({"low": 16, "high": 128, "log": False, "int": True}, 64, None),
        ({"choices": [128, 16, 64, 32]}, 128, "upper"),
        ({"choices": [16, 32, 64, 128]}, 16, "lower"),
        ({"choices": [16, 32, 64, 128]}, 32, None),
        (
            {"choices": [0.0, 1.0]},
            1.0,
            None,
        ),  # two choices: both are ends, a note would say nothing
        ({"choices": ["adam", "rmsprop", "sgd"]}, "adam", None),
    ],
)
def test_a_chosen_value_at_an_edge_of_the_search_is_noted(space, value, side):
    notes = reporting.edge_notes("lstm", {"x": space}, {"x": value})
    assert [note.split(" is at the ")[1].split(" edge")[0] for note in notes] == (
        [side] if side else []
    ), notes


def test_the_edge_warning_is_printed_and_in_the_markdown(reported):
    output, _ = reported
    said = (
        "lstm: the chosen lr 0.01 is at the upper edge of the searched range [0.0001, 0.01]: "
        "the optimum may lie outside it"
    )
    assert f"warning: study pmnist-tuned: {said}" in output
    assert (
        f"- {reporting._markdown(said)}" in output
    )  # (its brackets escaped: [x] is a link in Markdown)
    assert "eurnn: the chosen" not in output and "batch_size 64 is at" not in output


def test_a_study_without_final_runs_still_shows_its_trials_and_says_so(reported):
    output, out = reported
    assert (
        "No final runs of gru in these rows: tuning is still going or stopped before them" in output
    )
    assert not list(out.glob("study-running-*final*"))
    table = (out / "study-running-pmnist-v2-trials.md").read_text()
    assert "| gru | 1 | 0.002 | 64 | 65.0 | ok | 20 | ✓ |" in table  # the best by validation so far
    assert "| gru | 2 | 0.005 | 16 | 30.0 | pruned | 10 |  |" in table
    assert (out / "study-running-pmnist-v2-trials.png").exists()


def test_an_odd_study_name_only_failed_trials_and_a_missing_value(reported):
    output, out = reported
    files = list(out.iterdir())
    assert all(
        re.fullmatch(r"[A-Za-z0-9._=-]+", p.name) and not p.name.startswith((".", "-"))
        for p in files
    )
    assert not (out.parent / "evil").exists() and not list(out.parent.parent.glob("*evil*"))
    assert "## Study ../../evil\\|\\*x\\*\\$\\\\\\_{}\\<b\\>#1: pmnist" in output
    assert "rnn: no trial has a validation score (2 failed): nothing chosen." in output
    stem = next(
        p.name[: -len("-trials.md")]
        for p in files
        if p.name.endswith("-trials.md") and "evil" in p.name
    )
    assert "| gru | 0 | 0.001 | – | 50.0 | ok | 20 | ✓ |" in (out / f"{stem}-trials.md").read_text()
    tex = (out / f"{stem}-final.tex").read_text()
    caption = tex.split(r"\caption{", 1)[1].split(r"\label")[0]
    assert (
        tex.isascii()
        and r"evil\textbar{}*x*\$\textbackslash{}\_\{\}\textless{}b\textgreater{}\#1" in caption
    )


def test_hand_edited_spaces_and_values_never_crash_the_report(tmp_path):
    """Spaces and values of every odd shape, and a trial without a number: shown as they are,
    drawn where they can be, never an edge note from what is not a number."""
    odd = {
        "space": {
            "lr": "oops",
            "clip": {"low": "a", "high": 3},
            "opt": {"choices": "abc"},
            "wd": {"low": 0, "high": 1, "log": True},
            "bs": {"choices": [True, 2, "x"]},
        },
        "trials": "many",
        "tune_seeds": "0",
        "direction": 3,
    }
    values = [
        {"lr": "text", "clip": [1, 2], "opt": {"a": 1}, "wd": 0.0, "bs": "x"},
        {"lr": None, "wd": 1.0},
        {"wd": float("nan")},
        {},
    ]
    rows = [
        row(
            "lstm",
            0,
            0.5,
            0.1 * i,
            "ok",
            "tune",
            "odd",
            i if i < 3 else None,
            v,
            study_json=json.dumps(odd),
        )
        for i, v in enumerate(values)
    ]
    frame = reporting.rows_frame(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no edge warning, nor any other)
        files, markdown = reporting.write_report(
            frame, pd.DataFrame(columns=store.CURVE_COLUMNS), tmp_path
        )
    assert "| lstm | 2 | – | – | – | nan | – |" in markdown, markdown  # (the best by validation)
    assert "| lstm | – | – | – | – | – | – |" in markdown
    assert any(p.name.endswith("-trials.png") for p in files)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_the_final_table_of_an_odd_study_compiles(reported, tmp_path):
    _, out = reported
    table = next(p for p in out.glob("*-final.tex") if "evil" in p.name)
    shutil.copy(table, tmp_path / "table.tex")
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n"
        "\\begin{document}\n\\input{table}\n\\end{document}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]


def test_study_rows_with_any_status_and_plain_rows_by_status_are_selected():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = reporting.rows_frame(tuned_study() + [row("lstm", 5, None, None, "failed")])
    selected, counts = reporting.select(frame)
    assert counts == {"ok": 6, "failed": 1}  # the final runs, and the plain failed run
    assert set(selected.loc[selected["phase"] == "tune", "status"]) == {"ok", "pruned", "failed"}
    assert "failed" not in set(selected.loc[selected["phase"] != "tune", "status"])
