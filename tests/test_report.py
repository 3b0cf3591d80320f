"""`rnnbench report`: aggregation, malformed rows, tables, LaTeX that compiles, every figure."""

import json
import shutil
import subprocess

import matplotlib
from conftest import invoke

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

import rnnbench
from rnnbench import report as reporting
from rnnbench import store
from rnnbench.task import data_hash

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
PMNIST = rnnbench.build_task("pmnist:data=sample")
TASK_JSON = json.dumps(PMNIST.metadata())


def identity(perm: str) -> dict:
    return {
        "dataset": "mnist",
        "source": "sample",
        "protocol": "sample",
        "perm_seed": 0,
        "perm_sha256": perm,
    }


def make_row(cell, seed, acc, perm="aaaa", status="ok", **extra):
    config = {**CONFIG, "seed": seed, **extra.pop("config", {})}
    row = {c: "" for c in store.COLUMNS}
    row.update(
        run_id=f"{cell}-{seed}-{perm}-{config['lr']}",
        run_key="",
        task="pmnist",
        task_version=2,
        task_spec="pmnist:data=sample",
        task_json=TASK_JSON,
        cell=cell.split(":")[0],
        cell_spec=cell,
        seed=seed,
        hidden_size=config["hidden_size"],
        config_json=json.dumps(config),
        status=status,
        data_json=json.dumps(identity(perm)),
        data_hash=data_hash(identity(perm)),
        device="cpu",
        device_name="Test CPU",
        test_acc=acc,
        test_acc_final=acc - 0.01,
        params=100 if cell == "eurnn" else 900,
        train_time_s=10.0 + seed,
        step_time_ms=5.0 if cell == "eurnn" else 3.0,
        peak_mem_mb=50.0,
        mem_source="cpu_peak_rss",
    )
    row.update(extra)
    if "run_key" not in extra:  # one run, one key: the report shows the latest row of each run
        row["run_key"] = f"k-{row['run_id']}"
    return row


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    rows = [
        make_row("eurnn", 0, 0.5),
        make_row("eurnn", 1, 0.6),
        make_row("eurnn", 2, 0.7),
        make_row("lstm", 0, 0.8),
        make_row("lstm", 1, 0.8),
        make_row("lstm", 2, 0.1, status="failed"),
    ]
    for row in rows:
        curves = [
            {
                "run_id": row["run_id"],
                "step": s,
                "wall_time_s": s / 10,
                "split": "valid",
                "loss": 1.0,
                "acc": row["test_acc"] * s / 20,
            }
            for s in (10, 20)
        ]
        store.append_run(folder, "pmnist", row, curves)
    store.write_task_card(
        folder,
        "pmnist:data=sample",
        2,
        {
            "citation": PMNIST.citation,
            "example": {k: v.tolist() for k, v in PMNIST.example().items()},
        },
    )
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
    for row in [
        make_row("eurnn", 0, 0.5),
        make_row("eurnn", 1, 0.7, perm="bbbb"),
        make_row("eurnn", 2, 0.9, config={"lr": 0.01}),
    ]:
        store.append_run(tmp_path, "pmnist", row, [])
    summary = reporting.aggregate(reporting.read_results(tmp_path)[0])
    assert len(summary) == 3 and set(summary.n) == {1}
    groups = reporting.table_groups(summary)
    assert [len(part) for _, part in groups] == [
        2,
        1,
    ]  # the lr variant shares a table, not the perm
    assert reporting.experiment_labels(groups[0][1]) == ["eurnn (lr=0.001)", "eurnn (lr=0.01)"]


def test_malformed_rows_are_skipped_with_the_file_and_line(results):
    path = store.layout.rows_csv(results, "pmnist")
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(",0.5,", ",abc,", 1)  # test_acc of eurnn seed 0 hand-edited
    lines.append("only,three,fields")
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning) as caught:
        rows, _ = reporting.read_results(results)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2, messages  # (the reasons are the shared reader's: store.row_problem)
    assert messages[0].startswith(f"{path}:2: skipped, test_acc 'abc' is not a")
    assert messages[1].startswith(f"{path}:8: skipped, ")
    assert len(rows) == 5


def test_tables_show_mean_std_best_in_bold_and_what_they_are(results):
    rows, _ = reporting.read_results(results)
    summary = reporting.aggregate(reporting.select(rows)[0])
    markdown = reporting.markdown_table(summary)
    # Train: 11 ± 1 against 10.5 ± 0.7 is within the spread; Mem.: a tie. Neither is bold.
    assert "| eurnn | 60.00 ± 10.00 | 59.00 ± 10.00 | **100** | 5.0 | 11 | 50 | 3 |" in markdown
    assert (
        "| lstm | **80.00 ± 0.00** | **79.00 ± 0.00** | 900 | **3.0** | 10 | 50 | 2 |" in markdown
    )
    assert "Accuracy (%) ↑" in markdown and "Step (ms) ↓" in markdown
    assert (
        "pmnist:data=sample (task version 2), data: dataset=mnist, source=sample, protocol=sample, "
        "perm_seed=0, perm_sha256=aaaa; on Test CPU" in markdown
    )
    assert "over 2/3 seeds" in markdown
    latex = reporting.latex_table(summary, "tab:x")
    assert (
        r"\textbf{80.00 $\pm$ 0.00}" in latex
        and r"\toprule" in latex
        and r"Accuracy (\%) $\uparrow$" in latex
    )


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
@pytest.mark.parametrize("suffix", [":x_y=1%", ":a|b<c>$\\frac$~^#&{}\\", ":ü→日本²\x1b[31m…"])
def test_the_latex_table_compiles_in_a_minimal_document(results, tmp_path, suffix):
    rows, _ = reporting.read_results(results)
    summary = reporting.aggregate(
        reporting.select(rows)[0].assign(
            cell_spec=lambda r: r.cell_spec + suffix, task_spec="pmnist:a_b=%$"
        )
    )
    (tmp_path / "table.tex").write_text(reporting.latex_table(summary, "tab:pmnist_1"))
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n"
        "\\begin{document}\n\\input{table}\n\\end{document}\n"
    )
    out = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_report_writes_every_table_and_figure(results, tmp_path):
    out = invoke("report", "--results", str(results), "--out", str(tmp_path / "rep"))
    assert out.exit_code == 0, out.output
    assert "left out: 1 failed (--status to include)" in out.output
    stem = "pmnist_data=sample-v2-cpu"  # TASK_SPEC-vVERSION-DEVICE
    expected = {f"{stem}.md", f"{stem}.tex", f"{stem}-summary.csv", "report.md", "references.bib"}
    for figure in ("valid-acc-vs-step", "valid-acc-vs-time", "test-acc", "tradeoff", "cost"):
        expected |= {f"{stem}-{figure}.png", f"{stem}-{figure}.pdf"}
    expected |= {"pmnist_data=sample-v2-input.png", "pmnist_data=sample-v2-input.pdf"}
    written = {p.name for p in (tmp_path / "rep").iterdir()}
    assert written == expected
    assert all(
        (tmp_path / "rep" / name).stat().st_size > 1000
        for name in expected
        if not name.endswith((".md", ".csv", ".tex", ".bib"))
    )
    assert pd.read_csv(tmp_path / "rep" / f"{stem}-summary.csv").n.tolist() == [3, 2]


def test_filters_and_statuses(results, tmp_path):
    out = invoke(
        "report",
        "--results",
        str(results),
        "--out",
        str(tmp_path / "a"),
        "--cells",
        "eur*",
        "--status",
        "ok,failed",
    )
    assert out.exit_code == 0 and "| eurnn |" in out.output and "lstm" not in out.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--results", "{tmp}/nowhere"], "does not exist; run `rnnbench run ...` first"),
        (["--results", "{tmp}/empty"], "no ok rows in {tmp}/empty"),
        (
            ["--results", "{results}", "--task", "copying"],
            "no ok rows in {results} matching --task copying; tasks there: pmnist",
        ),
        (["--results", "{results}", "--cells", "gru"], "matching --cells gru"),
        (["--results", "{results}", "--status", "good"], "unknown status 'good'"),
    ],
)
def test_nothing_to_report_exits_2_with_a_reason(results, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    fill = {"tmp": tmp_path, "results": results}
    out = invoke("report", *[a.format(**fill) for a in args])
    assert out.exit_code == 2
    assert " ".join(message.format(**fill).split()) in " ".join(out.output.split())


# --- tables that never mix what differs (issue 13) ----------------------------------------------


def summary_of(tmp_path, rows):
    folder = tmp_path / f"results{len(list(tmp_path.glob('results*')))}"
    for row in rows:
        store.append_run(folder, "pmnist", row, [])
    summary = reporting.aggregate(reporting.read_results(folder)[0])
    return summary.assign(label=reporting.experiment_labels(summary))


def test_machines_threads_and_implementations_are_never_averaged(tmp_path):
    rows = [
        make_row("eurnn", 0, 0.5, device_name="CPU A (2 threads)", impl="fused", run_id="a"),
        make_row("eurnn", 0, 0.7, device_name="CPU A (2 threads)", impl="dense", run_id="b"),
        make_row("eurnn", 0, 0.6, device_name="CPU B (2 threads)", impl="fused", run_id="c"),
        make_row(
            "eurnn",
            0,
            0.6,
            device_name="CPU A (4 threads)",
            num_threads=4,
            impl="fused",
            run_id="d",
        ),
        make_row(
            "eurnn", 1, 0.8, device_name="CPU A (4 threads)", impl="fused", run_id="e"
        ),  # an older row
        make_row(
            "eurnn",
            0,
            0.6,
            device_name="CPU A (4 threads)",
            num_threads=2,
            impl="fused",
            run_id="f",
        ),
        make_row("eurnn", 0, 0.6, device_name="Other", num_threads=8, impl="fused", run_id="g"),
    ]
    summary = summary_of(tmp_path, rows)
    assert sorted(summary["n"]) == [
        1,
        1,
        1,
        1,
        1,
        2,
    ]  # only d and e (4 threads, from its name) are seeds of one
    groups = dict(reporting.table_groups(summary))
    assert len(groups) == 5 and len(set(map(str.casefold, groups))) == 5
    two_threads = next(part for stem, part in groups.items() if "CPU_A_2" in stem)
    assert reporting.experiment_labels(two_threads) == ["eurnn (impl=dense)", "eurnn (impl=fused)"]
    caption = reporting.table_caption(two_threads)
    assert "on CPU A (2 threads)" in caption and "implementations: dense, fused" in caption
    other = next(part for stem, part in groups.items() if "Other" in stem)
    assert "on Other, 8 threads" in reporting.table_caption(other)
    assert "on CPU A (4 threads), 2 threads" in reporting.table_caption(
        groups[next(stem for stem in groups if "CPU_A_4" in stem and stem.endswith("-2threads"))]
    )


def test_a_single_machine_keeps_the_short_file_name(tmp_path):
    summary = summary_of(tmp_path, [make_row("lstm", 0, 0.8, device_name="CPU A (2 threads)")])
    assert [stem for stem, _ in reporting.table_groups(summary)] == ["pmnist_data=sample-v2-cpu"]


def test_one_seed_shows_the_value_alone(tmp_path):
    summary = summary_of(
        tmp_path,
        [make_row("eurnn", 0, 0.5, n_test=10_000), make_row("lstm", 0, 0.8, n_test=10_000)],
    )
    markdown = reporting.markdown_table(summary)
    assert "±" not in markdown.split("\n\n", 1)[1] and "| lstm | 80.0 | 79.0 |" in markdown
    assert "1 seed" in markdown


@pytest.mark.parametrize(
    "n_test, shown, says",
    [
        (500, "| lstm | 80 |", "Scores to whole percents, as 500 test examples support"),
        (1000, "| lstm | 80.0 |", "Scores to 0.1 %, as 1,000 test examples support"),
        (10_000, "| lstm | 80.0 |", "Scores to 0.1 %, as 10,000 test examples support"),
        (60_000, "| lstm | 80.00 |", "Scores to 0.01 %, as 60,000 test examples support"),
    ],
)
def test_precision_follows_the_test_set_size(tmp_path, n_test, shown, says):
    summary = summary_of(tmp_path, [make_row("lstm", 0, 0.8, n_test=n_test)])
    markdown = reporting.markdown_table(summary)
    assert shown in markdown and says in markdown


@pytest.mark.parametrize(
    "accs, bold",
    [
        (([0.80, 0.82, 0.84], [0.70, 0.72, 0.74]), "lstm"),  # 10 points apart, sd 2: clear
        (
            ([0.80, 0.90, 0.70], [0.75, 0.85, 0.65]),
            None,
        ),  # 5 points apart, sd 10: within the spread
        (([0.80], [0.70]), None),  # one seed: no spread, no claim
    ],
)
def test_bold_only_where_the_difference_exceeds_the_spread(tmp_path, accs, bold):
    rows = [
        make_row(
            cell,
            seed,
            acc,
            n_test=10_000,
            params=1000 + 10 * i,
            peak_mem_mb=50 + i,
            step_time_ms=3.0 + 2 * i,
            step_time_iqr_ms=0.5,
        )
        for i, (cell, values) in enumerate(zip(("lstm", "eurnn"), accs, strict=True))
        for seed, acc in enumerate(values)
    ]
    markdown = reporting.markdown_table(summary_of(tmp_path, rows))
    lines = {
        line.split(" | ")[0][2:]: line for line in markdown.splitlines() if line.startswith("| ")
    }
    assert ("**" in lines["lstm"].split(" | ")[1]) == (bold == "lstm")
    assert "**" not in lines["eurnn"].split(" | ")[1]
    if (
        len(accs[0]) == 1
    ):  # one seed: never bold for parameters and memory; the step time has its IQR
        params, step, memory = (lines["lstm"].split(" | ")[i] for i in (3, 4, 7))
        assert "**" not in params and "**" not in memory and step == "**3.0**"
    assert "Bold: best ok run by more than the larger spread" in markdown


def test_the_latex_caption_is_above_the_table(results):
    rows, _ = reporting.read_results(results)
    latex = reporting.latex_table(reporting.aggregate(reporting.select(rows)[0]), "tab:x")
    assert (
        latex.index(r"\caption{") < latex.index(r"\begin{tabular}") < latex.index(r"\end{tabular}")
    )


# --- figures that read well ---------------------------------------------------------------------


def _drawn(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


def test_cell_colours_do_not_depend_on_the_other_cells(tmp_path):
    alone = summary_of(tmp_path, [make_row("lstm", 0, 0.8)])
    crowd = summary_of(
        tmp_path, [make_row(c, 0, 0.5, run_id=c) for c in ("eurnn", "gru", "lstm", "rnn", "aaa")]
    )
    colours = []
    for summary in (alone, crowd):
        fig = reporting.test_acc_figure(summary, "pmnist", "accuracy")
        points = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
        by_y = {int(c.get_offsets()[0][1]): tuple(c.get_facecolor()[0][:3]) for c in points}
        row_colours = (by_y[i] for i in range(len(summary)))
        colours.append(dict(zip(summary["cell"][::-1], row_colours, strict=True)))
        plt.close(fig)
    assert colours[0]["lstm"] == pytest.approx(colours[1]["lstm"])
    assert reporting.cell_color("my-cell") == reporting.cell_color("my-cell")
    builtins = [reporting.cell_color(name) for name in reporting.CELL_COLORS]
    assert len(set(builtins)) == len(builtins)


@pytest.mark.parametrize(
    "params", [[19_476, 19_767, 19_921, 19_973], [120, 4_000, 90_000, 2_500_000], [900, 1_000]]
)
def test_tradeoff_ticks_never_overlap_and_labels_stay_inside(tmp_path, params):
    rows = [
        make_row(cell, 0, acc, run_id=cell, params=p, step_time_ms=3.0 + i)
        # (strict=False: a `params` of two values plots the first two cells only)
        for i, (cell, acc, p) in enumerate(
            zip(("eurnn", "gru", "lstm", "rnn"), (1.0, 0.12, 0.11, 0.0), params, strict=False)
        )
    ]
    summary = summary_of(tmp_path, rows)
    fig = reporting.tradeoff_figure(summary, "recall acc.")
    renderer = _drawn(fig)
    axis = fig.axes[0]
    assert axis.get_xscale() == ("log" if max(params) / min(params) >= 10 else "linear")
    low, high = axis.get_xlim()
    ticks = [
        t for t in axis.get_xticklabels() if t.get_text() and low <= t.get_position()[0] <= high
    ]
    assert len(ticks) >= 2
    boxes = [t.get_window_extent(renderer) for t in ticks]
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]), [
        t.get_text() for t in ticks
    ]
    for ax in fig.axes:
        frame = ax.get_window_extent(renderer)
        notes = [t for t in ax.texts if t.get_text()]
        assert len(notes) == len(summary)
        for note in notes:
            box = note.get_window_extent(renderer)
            assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1
            assert frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1
    plt.close(fig)


def test_the_reference_line_is_labelled_beside_it_with_its_value(tmp_path):
    summary = summary_of(
        tmp_path,
        [
            make_row("eurnn", 0, 0.95, linear_acc=0.9265),
            make_row("lstm", 0, 0.91, linear_acc=0.9265),
        ],
    )
    fig = reporting.test_acc_figure(
        summary, "pmnist", "accuracy"
    )  # the rows' own linear baseline: 92.65 %
    renderer = _drawn(fig)
    ax = fig.axes[0]
    note = next(t for t in ax.texts if "92.65 %" in t.get_text())
    assert "linear classifier" in note.get_text()
    line_x = ax.transData.transform((92.65, 0))[0]
    box, frame = note.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert min(abs(box.x0 - line_x), abs(box.x1 - line_x)) < 10  # it starts (or ends) at its line
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
    plt.close(fig)


@pytest.mark.parametrize(
    "source, words",
    [
        ("cpu_peak_rss", "peak RSS (MiB)"),
        ("cuda_max_allocated", "peak CUDA memory allocated (MiB)"),
    ],
)
def test_the_memory_axis_says_what_was_measured(tmp_path, source, words):
    summary = summary_of(tmp_path, [make_row("lstm", 0, 0.8, mem_source=source)])
    fig = reporting.cost_figure(summary)
    assert fig.axes[1].get_xlabel() == words
    plt.close(fig)
    assert f"Mem.: {words.split(' (')[0]}" in reporting.table_caption(summary)


def test_a_table_of_rows_from_two_versions_of_the_code_says_so(tmp_path):
    folder = tmp_path / "results"
    for row in (
        make_row("eurnn", 0, 0.5, git_commit="aaaaaaaaaaaa"),
        make_row("eurnn", 1, 0.6, git_commit="bbbbbbbbbbbb"),
        make_row("lstm", 0, 0.7, git_commit="bbbbbbbbbbbb"),
    ):
        store.append_run(folder, "pmnist", row, [])
    out = invoke("report", "--results", str(folder), "--out", str(tmp_path / "out"))
    assert out.exit_code == 0, out.output
    assert "mixes rows from 2 versions of the code: aaaaaaaaaaaa, bbbbbbbbbbbb" in out.output
    assert "Caution: rows from 2 versions of the code" in out.output


def test_rows_written_before_data_identities_still_report(tmp_path):
    """Rows of rnnbench before task metadata and data identities were recorded (data, protocol and
    permutation as columns of their own, task version 1): read without a warning, reported, and
    never put in one table with rows of another pixel order: the columns this version does not
    write are their data identity."""
    import csv
    import io
    import warnings
    from pathlib import Path

    folder = tmp_path / "old"
    folder.mkdir()
    text = (Path(__file__).parent / "fixtures" / "pmnist-rows-v1.csv").read_text()
    old = list(csv.DictReader(io.StringIO(text)))
    other = {
        **old[0],
        "run_id": "other",
        "run_key": "other-key",
        "perm_sha256": "f" * 64,
        "config_json": old[0]["config_json"].replace('"perm_seed": 0', '"perm_seed": 5'),
    }
    with open(folder / "pmnist.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(old[0]))
        writer.writeheader()
        writer.writerows(old + [other])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows, _ = reporting.read_results(folder)
    assert len(rows) == 4 and set(rows["task_version"]) == {1}
    groups = reporting.table_groups(reporting.aggregate(rows))
    assert sorted(len(part) for _, part in groups) == [1, len(set(r["cell_spec"] for r in old))]
    files, markdown = reporting.write_report(
        rows, pd.DataFrame(columns=store.CURVE_COLUMNS), tmp_path / "rep"
    )
    assert "data: data=sample, perm_sha256=" in markdown and "protocol=sample" in markdown
    assert "Score (%)" in markdown  # (what the score was, these rows did not record)
