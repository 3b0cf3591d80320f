"""The results store reads what earlier versions wrote exactly as they read it, and plans the same
run keys: results written by rnnbench 0.1 (tests/fixtures/results-0.1: a sweep of rnn, lstm and
eurnn on two seeds, a run trained again with --force, a study of two trials per cell with its
final runs) and what 0.1's readers made of them (tests/fixtures/results-0.1-read)."""

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import invoke

from rnnbench import config, store
from rnnbench.store import layout, schema

FIXTURES = Path(__file__).parent / "fixtures"
RESULTS = FIXTURES / "results-0.1"
READ = FIXTURES / "results-0.1-read"


def _same(expected, actual) -> bool:
    """Equal as a reader sees them: numbers as numbers (NaN equal to NaN and to ''),
    text as text."""
    if expected is None or expected == "" or (isinstance(expected, float) and math.isnan(expected)):
        return actual is None or actual == "" or (isinstance(actual, float) and math.isnan(actual))
    try:
        return math.isclose(float(expected), float(actual), rel_tol=0, abs_tol=0)
    except (TypeError, ValueError):
        return str(expected) == str(actual)


def _compare(expected: list[dict], actual: pd.DataFrame) -> None:
    assert len(actual) == len(expected)
    for i, (want, got) in enumerate(zip(expected, actual.to_dict("records"), strict=True)):
        for column, value in want.items():
            assert column in got, column
            assert _same(value, got[column]), (i, column, value, got[column])


def test_rows_written_by_0_1_read_back_as_0_1_read_them():
    _compare(json.loads((READ / "read_rows.json").read_text()), store.read_rows(RESULTS, "adding"))


def test_the_reports_rows_and_curves_of_0_1_are_the_stores():
    rows, curves = store.read_all(RESULTS)
    _compare(json.loads((READ / "report_rows.json").read_text()), rows)
    _compare(json.loads((READ / "report_curves.json").read_text()), curves)


def test_latest_is_the_last_row_of_each_run_in_the_order_runs_first_appear():
    rows = store.read_rows(RESULTS, "adding")
    forced = rows[rows.run_key.duplicated(keep=False)]
    assert (
        forced.run_key.nunique() == 1 and len(forced) == 2
    )  # (the fixture's run trained again with --force)
    latest = store.latest(rows)
    assert latest.run_key.is_unique and len(latest) == rows.run_key.nunique()
    assert latest[latest.run_key == forced.run_key.iloc[0]].run_id.item() == forced.run_id.iloc[-1]
    assert list(latest.run_key) == list(dict.fromkeys(rows.run_key))


def test_the_report_of_0_1_results_is_unchanged(tmp_path):
    out = invoke("report", "--results", str(RESULTS), "--out", str(tmp_path / "report"))
    assert out.exit_code == 0, out.output
    assert out.stdout == (READ / "report.md").read_text()


@pytest.mark.parametrize("sweep", sorted(p.name for p in (RESULTS / "sweeps").glob("run-*.toml")))
def test_every_run_key_of_0_1_is_planned_again_unchanged(tmp_path, sweep):
    """Each sweep of the fixture, planned again from its resolved config, finds every run done:
    nothing trains, nothing is written (the keys are those 0.1 wrote)."""
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    before = (results / "adding.csv").read_bytes()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # (a CPU run's key holds its threads: the fixture ran with 2)
    try:
        out = invoke("run", "--config", str(results / "sweeps" / sweep), "--results", str(results))
    finally:
        torch.set_num_threads(threads)
    assert out.exit_code == 0, out.output
    assert "already has" in out.output and "resuming" not in out.output and " s, " not in out.output
    assert (results / "adding.csv").read_bytes() == before


def test_upgrades_fill_what_old_rows_lack_and_leave_new_ones_alone():
    old = {
        "run_id": "a",
        "run_key": "k",
        "status": "ok",
        "task": "pmnist",
        "cell_spec": "eurnn:capacity=4",
        "device_name": "AMD EPYC (2 threads)",
        "data": "sample",
        "protocol": "sample",
        "perm_sha256": "fe",
        "config_json": json.dumps({"lr": 0.1}),
    }
    row = schema.upgrade(dict(old))
    assert row["task_spec"] == "pmnist" and row["cell"] == "eurnn" and row["num_threads"] == "2"
    assert json.loads(row["data_json"]) == {
        "data": "sample",
        "perm_sha256": "fe",
        "protocol": "sample",
    }
    assert row["data_hash"] == schema.data_hash(json.loads(row["data_json"]))
    assert json.loads(row["config_json"]) == {"lr": 0.1, **schema.CONFIG_ADDED}
    assert schema.upgrade(dict(row)) == row  # (idempotent: a row of this version is left as it is)


def test_the_schema_reads_configs_against_runconfigs_defaults():
    """Rows are read against RunConfig's defaults (a field a row lacks ran with the value it had
    then): changing a default is a decision about old rows, an upgrade step, which this test
    asks for."""
    assert schema.CONFIG_DEFAULTS == config.DEFAULTS and schema.CONFIG_WATCH == config.WATCH
    assert set(schema.CONFIG_ADDED) < set(config.DEFAULTS)


def test_the_layout_is_one_folder_of_named_parts(tmp_path):
    assert layout.rows_csv(tmp_path, "copying") == tmp_path / "copying.csv"
    assert layout.curves_csv(tmp_path, "copying") == tmp_path / "copying-curves.csv"
    assert layout.task_card(tmp_path, "copying:delay=5", 2).parent == tmp_path / "tasks"
    assert layout.task_card(tmp_path, "copying:delay=5", 2) != layout.task_card(
        tmp_path, "copying:delay=6", 2
    )
    assert layout.results_of_record(layout.sweep_record(tmp_path, "123")) == tmp_path
    assert all(
        p.is_relative_to(tmp_path)
        for p in (
            layout.journal(tmp_path, "s"),
            layout.job_folder(tmp_path, "u"),
            layout.checkpoint(tmp_path, "t-k"),
            layout.claim(tmp_path, "t-k"),
            layout.report_folder(tmp_path),
            layout.tensorboard(tmp_path),
        )
    )


def test_cell_cards_are_kept_once_per_cell_and_version(tmp_path):
    card = {
        "name": "my-rnn",
        "cell_version": 2,
        "citation": "@misc{me}",
        "summary": "mine",
        "options": {},
    }
    path = store.write_cell_card(tmp_path, card)
    store.write_cell_card(tmp_path, {**card, "summary": "changed"})  # (kept as first written)
    assert store.read_cell_cards(tmp_path) == [card]
    path.write_text("{")
    with pytest.warns(UserWarning, match="not a readable cell card"):
        assert store.read_cell_cards(tmp_path) == []


def test_rnnbench_records_still_reads_for_one_release(tmp_path):
    from rnnbench import records

    assert records.COLUMNS == store.COLUMNS and records.read_rows is store.read_rows
    assert records.results_path(tmp_path, "t") == layout.rows_csv(tmp_path, "t")
