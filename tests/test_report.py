"""`rnnbench report`: aggregation, malformed rows, tables, LaTeX that compiles, every figure."""

import json
import shutil
import subprocess

import pandas as pd
import pytest
from click.testing import CliRunner

from rnnbench import records
from rnnbench import report as reporting
from rnnbench.cli import main

CONFIG = {"hidden_size": 8, "batch_size": 10, "steps": 20, "eval_every": 10, "eval_batch_size": 50,
          "optimizer": "rmsprop", "lr": 0.001, "clip": 0.0, "device": "cpu", "dtype": "float32",
          "data": "sample", "protocol": "sample", "sampling": "epochs", "perm_seed": 0, "warmup_steps": 1}


def make_row(cell, seed, acc, perm="aaaa", status="ok", **extra):
    config = {**CONFIG, "seed": seed, **extra.pop("config", {})}
    row = {c: "" for c in records.COLUMNS}
    row.update(run_id=f"{cell}-{seed}-{perm}-{config['lr']}", run_key=f"k{seed}", task="pmnist", task_version=1,
               cell=cell.split(":")[0], cell_spec=cell, seed=seed, hidden_size=config["hidden_size"],
               config_json=json.dumps(config), status=status, perm_sha256=perm, data="sample",
               protocol="sample", device="cpu", device_name="Test CPU", test_acc=acc,
               test_acc_final=acc - 0.01, params=100 if cell == "eurnn" else 900, train_time_s=10.0 + seed,
               step_time_ms=5.0 if cell == "eurnn" else 3.0, peak_mem_mb=50.0, mem_source="cpu_peak_rss")
    row.update(extra)
    return row


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    rows = [make_row("eurnn", 0, 0.5), make_row("eurnn", 1, 0.6), make_row("eurnn", 2, 0.7),
            make_row("lstm", 0, 0.8), make_row("lstm", 1, 0.8),
            make_row("lstm", 2, 0.1, status="failed")]
    for row in rows:
        curves = [{"run_id": row["run_id"], "step": s, "wall_time_s": s / 10, "split": "valid", "loss": 1.0,
                   "acc": row["test_acc"] * s / 20} for s in (10, 20)]
        records.append_run(folder, "pmnist", row, curves)
    return folder


def test_aggregation_over_seeds(results):
    rows, curves = reporting.read_results(results)
    selected, counts = reporting.select(rows)
    assert counts == {"ok": 5, "failed": 1}
    summary = reporting.aggregate(selected).set_index("cell_spec")
    assert summary.loc["eurnn", "n"] == 3 and summary.loc["lstm", "n"] == 2
    assert summary.loc["eurnn", "test_acc_mean"] == pytest.approx(0.6)
    assert summary.loc["eurnn", "test_acc_std"] == pytest.approx(0.1)  # sample standard deviation
    assert summary.loc["lstm", "test_acc_std"] == 0.0
    assert summary.loc["eurnn", "train_time_s"] == pytest.approx(11.0)
    assert summary.loc["eurnn", "seeds"] == "0,1,2"
    assert len(curves) == 12


def test_different_permutations_or_configs_are_never_merged(tmp_path):
    for row in [make_row("eurnn", 0, 0.5), make_row("eurnn", 1, 0.7, perm="bbbb"),
                make_row("eurnn", 2, 0.9, config={"lr": 0.01})]:
        records.append_run(tmp_path, "pmnist", row, [])
    summary = reporting.aggregate(reporting.read_results(tmp_path)[0])
    assert len(summary) == 3 and set(summary.n) == {1}
    groups = reporting.table_groups(summary)
    assert [len(part) for _, part in groups] == [2, 1]  # the lr variant shares a table, not the perm
    assert reporting.experiment_labels(groups[0][1]) == ["eurnn (lr=0.001)", "eurnn (lr=0.01)"]


def test_malformed_rows_are_skipped_with_the_file_and_line(results):
    path = records.results_path(results, "pmnist")
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(",0.5,", ",abc,", 1)  # test_acc of eurnn seed 0 hand-edited
    lines.append("only,three,fields")
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning) as caught:
        rows, _ = reporting.read_results(results)
    messages = sorted(str(w.message) for w in caught)
    assert messages == [f"{path}:2: skipped, test_acc 'abc' is not a number",
                        f"{path}:8: skipped, 3 fields where the header has {len(records.COLUMNS)}"]
    assert len(rows) == 5


def test_tables_show_mean_std_best_in_bold_and_what_they_are(results):
    rows, _ = reporting.read_results(results)
    summary = reporting.aggregate(reporting.select(rows)[0])
    markdown = reporting.markdown_table(summary)
    assert "| eurnn | 60.00 ± 10.00 | 59.00 ± 10.00 | **100** | 5.0 | 11 | **50** | 3 |" in markdown
    assert "| lstm | **80.00 ± 0.00** | **79.00 ± 0.00** | 900 | **3.0** | **10** | **50** | 2 |" in markdown
    assert "Accuracy (%) ↑" in markdown and "Step (ms) ↓" in markdown
    assert "pmnist (task version 1), data: sample" in markdown and "on Test CPU" in markdown
    assert "over 2/3 seed(s)" in markdown
    latex = reporting.latex_table(summary, "tab:x")
    assert r"\textbf{80.00 $\pm$ 0.00}" in latex and r"\toprule" in latex and r"Accuracy (\%) $\uparrow$" in latex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_the_latex_table_compiles_in_a_minimal_document(results, tmp_path):
    rows, _ = reporting.read_results(results)
    summary = reporting.aggregate(reporting.select(rows)[0].assign(cell_spec=lambda r: r.cell_spec + ":x_y=1%"))
    (tmp_path / "table.tex").write_text(reporting.latex_table(summary, "tab:pmnist_1"))
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n"
                                      "\\begin{document}\n\\input{table}\n\\end{document}\n")
    out = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_report_writes_every_table_and_figure(results, tmp_path):
    out = CliRunner().invoke(main, ["report", "--results", str(results), "--out", str(tmp_path / "rep")])
    assert out.exit_code == 0, out.output
    assert "left out: 1 failed (--status to include)" in out.output
    stem = "pmnist-v1-sample-sample-aaaa-cpu"  # TASK_SPEC-vVERSION-DATA-PROTOCOL-PERM-DEVICE
    expected = {f"{stem}.md", f"{stem}.tex", f"{stem}-summary.csv", "report.md"}
    for figure in ("valid-acc-vs-step", "valid-acc-vs-time", "test-acc", "tradeoff", "cost"):
        expected |= {f"{stem}-{figure}.png", f"{stem}-{figure}.pdf"}
    expected |= {"pmnist-input.png", "pmnist-input.pdf"}
    written = {p.name for p in (tmp_path / "rep").iterdir()}
    assert written == expected
    assert all((tmp_path / "rep" / name).stat().st_size > 1000 for name in expected if not name.endswith((".md", ".csv", ".tex")))
    assert pd.read_csv(tmp_path / "rep" / f"{stem}-summary.csv").n.tolist() == [3, 2]


def test_filters_and_statuses(results, tmp_path):
    out = CliRunner().invoke(main, ["report", "--results", str(results), "--out", str(tmp_path / "a"),
                                    "--cells", "eur*", "--status", "ok,failed"])
    assert out.exit_code == 0 and "| eurnn |" in out.output and "lstm" not in out.output


@pytest.mark.parametrize("args, message", [
    (["--results", "{tmp}/nowhere"], "does not exist; run `rnnbench run ...` first"),
    (["--results", "{tmp}/empty"], "no ok rows in {tmp}/empty"),
    (["--results", "{results}", "--task", "copying"], "no ok rows in {results} matching --task copying; tasks there: pmnist"),
    (["--results", "{results}", "--cells", "gru"], "matching --cells gru"),
    (["--results", "{results}", "--status", "good"], "unknown status 'good'"),
])
def test_nothing_to_report_exits_2_with_a_reason(results, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    fill = {"tmp": tmp_path, "results": results}
    out = CliRunner().invoke(main, ["report", *[a.format(**fill) for a in args]])
    assert out.exit_code == 2
    assert " ".join(message.format(**fill).split()) in " ".join(out.output.split())
