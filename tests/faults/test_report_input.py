"""Bad input to `rnnbench report`: rows whose values would name files outside --out, failed and
diverged rows, non-finite numbers, odd JSON, odd text, and an --out that cannot be written. The
report never crashes: it skips what it cannot use (with file:line and why) or exits with a clear
error, and writes only inside --out."""

import csv
import errno
import json
import os
import re
from pathlib import Path

import pytest
from conftest import invoke

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


def row(cell="lstm", seed=0, status="ok", **values):
    """A row as the runner writes it: ok rows have every metric, diverged rows lack the final
    accuracy, failed rows have no metric at all."""
    out = {c: "" for c in store.COLUMNS}
    out.update(
        run_id=f"{cell}-{seed}-{status}",
        run_key=f"k{seed}",
        task="pmnist",
        task_spec="pmnist",
        task_version=1,
        cell=cell.split(":")[0],
        cell_spec=cell,
        seed=seed,
        hidden_size=8,
        config_json=json.dumps({**CONFIG, "seed": seed}),
        status=status,
        data_hash="ab" * 6,
        data_json=json.dumps({"source": "sample", "perm_sha256": "ab" * 32}),
        n_test=1000,
        device="cpu",
        device_name="Test CPU (2 threads)",
        mem_source="cpu_peak_rss",
    )
    if status != "failed":
        out.update(
            test_acc=0.5 + 0.1 * seed,
            test_loss=1.0,
            params=900,
            impl="native",
            train_time_s=10.0,
            step_time_ms=3.0,
            step_time_iqr_ms=0.1,
            peak_mem_mb=50.0,
        )
    if status == "ok":
        out.update(test_acc_final=0.5 + 0.1 * seed - 0.01)
    if status == "diverged":
        out.update(error="training loss became nan at step 7")
    if status == "failed":
        out.update(error="RuntimeError: out of memory (lower --batch-size or --hidden)")
    out.update(values)
    if "run_key" not in values:  # one run, one key: the report shows the latest row of each run
        out["run_key"] = f"k-{out['run_id']}"
    return out


def write(folder: Path, rows: list[dict], curves: bool = True) -> Path:
    """A results folder with `pmnist.csv` (the schema's columns, then any others the rows have)
    and its curves."""
    folder.mkdir(parents=True, exist_ok=True)
    header = list(dict.fromkeys(store.COLUMNS + [k for r in rows for k in r]))
    with open(folder / "pmnist.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(rows)
    with open(folder / "pmnist-curves.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, store.CURVE_COLUMNS)
        writer.writeheader()
        writer.writerows(
            {
                "run_id": r["run_id"],
                "step": s,
                "wall_time_s": s / 10,
                "split": "valid",
                "loss": 1.0,
                "acc": 0.05 * s,
            }
            for r in rows
            if curves and r["status"] != "failed"
            for s in (10, 20)
        )
    return folder


def report(results: Path, out: Path, *args: str):
    return invoke("report", "--results", str(results), "--out", str(out), *args)


def assert_clean_exit(result, code: int = 0):
    """The exit code, and no Python exception escaped (CliRunner keeps it in result.exception)."""
    assert result.exit_code == code, result.output + repr(result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


# --- 1. nothing is written outside --out -------------------------------------------------------

ESCAPES = ["../elsewhere/x", "../../elsewhere", "/abs/x", "..", ".hidden", "a\\b", "-rf", "x" * 300]


NAMING = ["task_spec", "data_hash", "device", "device_name", "impl", "cell_spec"]


@pytest.mark.slow
@pytest.mark.parametrize("value", ESCAPES)
def test_row_values_never_name_files_outside_out(tmp_path, value):
    """Every column that could end up in a file name holds the same hostile value."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "rep").mkdir()
    odd = {column: value for column in NAMING}
    results = write(
        tmp_path / "results", [row("lstm", 0, **odd), row("eurnn", 0, **odd), row("lstm", 1)]
    )
    before = files_under(tmp_path)
    result = report(results, tmp_path / "rep" / "out")
    assert_clean_exit(result)
    new = files_under(tmp_path) - before
    out = (tmp_path / "rep" / "out").resolve()
    assert len(new) > 10 and all(p.resolve().parent == out for p in new), sorted(map(str, new))
    for p in new:
        assert not p.name.startswith((".", "-")) and len(p.name.encode()) <= 255, p.name
        assert re.fullmatch(r"[A-Za-z0-9._=-]+", p.name), p.name


def test_a_task_name_from_rows_names_no_file_outside_out(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    results = write(
        tmp_path / "results", [row("lstm", 0, task="../elsewhere/pmnist", task_spec="")]
    )
    before = files_under(tmp_path)
    result = report(results, tmp_path / "out")
    assert_clean_exit(result)
    assert all(p.parent == tmp_path / "out" for p in files_under(tmp_path) - before)


def test_groups_whose_names_sanitise_alike_stay_apart(tmp_path):
    rows = [row("lstm", 0, data_hash=value) for value in ("a/b", "a_b", "a:b", "A_B", "a b", "a?b")]
    rows = [{**r, "run_id": f"r{i}", "run_key": f"k{i}"} for i, r in enumerate(rows)]
    result = report(write(tmp_path / "results", rows), tmp_path / "out")
    assert_clean_exit(result)
    tables = [p.name.lower() for p in (tmp_path / "out").glob("*.md") if p.name != "report.md"]
    assert len(tables) == 6 == len(set(tables)), tables  # distinct even on a case-insensitive disk


def test_a_symlink_in_out_is_not_followed_outside(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "secret").write_text("keep\n")
    (tmp_path / "out" / "report.md").symlink_to(tmp_path / "secret")
    result = report(write(tmp_path / "results", [row()]), tmp_path / "out")
    assert result.exit_code != 0 and "report.md" in result.output
    assert (tmp_path / "secret").read_text() == "keep\n"


# --- 2. every status, every flag ----------------------------------------------------------------


def mixed_rows():
    """Rows as real sweeps leave them: a run that diverged late has a score from its best
    weights; one that diverged at its first step has none, and no step time."""
    first_step = dict(
        status="diverged",
        test_acc="",
        test_loss="",
        step_time_ms="",
        step_time_iqr_ms="",
        train_time_s=0.0,
    )
    return [
        row("lstm", 0),
        row("lstm", 1),
        row("eurnn", 0),
        row("eurnn", 1, status="diverged"),
        row("eurnn", 2, status="diverged", params=0, peak_mem_mb=""),
        row("rnn", 1, **first_step),
        row("rnn", 2, **first_step),
        row("gru", 0, status="failed"),
        row("gru", 1, status="failed"),
        row("rnn", 0, status="failed"),
    ]


@pytest.mark.parametrize(
    "flags",
    [
        ["--status", "diverged"],
        ["--status", "failed"],
        ["--status", "ok,diverged"],
        ["--status", "ok,failed"],
        ["--status", "ok,diverged,failed"],
        ["--status", "failed", "--cells", "gru"],
        ["--status", "diverged", "--task", "pmnist"],
        ["--status", "failed,diverged", "--cells", "eurnn*,gru"],
    ],
)
def test_every_status_reports_without_crashing(tmp_path, flags):
    result = report(write(tmp_path / "results", mixed_rows()), tmp_path / "out", *flags)
    assert_clean_exit(result)
    assert (tmp_path / "out" / "report.md").exists()


def test_failed_rows_show_dashes_and_draw_no_empty_figure(tmp_path):
    result = report(
        write(tmp_path / "results", mixed_rows()), tmp_path / "out", "--status", "failed"
    )
    assert_clean_exit(result)
    table = next(p for p in (tmp_path / "out").glob("*.md") if p.name != "report.md").read_text()
    assert "| gru (failed) | – | 2 |" in table, table
    pngs = [p.name for p in (tmp_path / "out").glob("*.png")]
    assert not any(
        name.endswith(("-test-acc.png", "-tradeoff.png", "-cost.png", "-valid-acc-vs-step.png"))
        for name in pngs
    ), pngs


# --- 3. numbers, JSON and text the report must survive ------------------------------------------

# (column, value, a word the reason must contain). The shared reader (store.row_problem) may
# give the reason before the report's own check does: the test holds either to file:line and why.
UNUSABLE = [
    ("test_acc", "inf", "test_acc inf"),
    ("test_acc", "-inf", "test_acc -inf"),
    ("test_acc", "nan", "test_acc nan"),
    ("test_acc", "", "test_acc ''"),
    ("params", "inf", "params inf is not a finite number"),
    ("params", "-5", "params -5 is negative"),
    ("step_time_ms", "-inf", "step_time_ms -inf is not a finite number"),
    ("peak_mem_mb", "1e999", "peak_mem_mb 1e999 is not a finite number"),
    ("train_time_s", "abc", "train_time_s 'abc' is not a number"),
    ("test_acc_final", "Infinity", "test_acc_final Infinity is not a finite number"),
    ("n_test", "0.5", "n_test '0.5' is not a whole number"),
    ("seed", "inf", "seed 'inf'"),
    ("seed", "nan", "seed 'nan'"),
    ("seed", "1e400", "seed '1e400'"),
    ("hidden_size", "-3", "hidden_size -3 is negative"),
    ("task_version", "1.5", "task_version '1.5'"),
    ("num_threads", "0", "num_threads 0 is not a positive whole number"),
    ("config_json", "[1]", "config_json is a JSON"),
    ("config_json", "3", "config_json is a JSON"),
    ("config_json", '"x"', "config_json is a JSON"),
    ("config_json", "null", "config_json is a JSON"),
    ("data_json", "[1]", "data_json is a JSON array, not an object"),
    ("task_json", "{", "task_json is not valid JSON"),
]


def test_unusable_rows_are_skipped_with_file_line_and_why(tmp_path):
    bad = [
        {**row("eurnn", i, test_acc=0.5), column: value}
        for i, (column, value, _) in enumerate(UNUSABLE)
    ]
    results = write(
        tmp_path / "results",
        [row("lstm", 0)]
        + [{**r, "run_id": f"bad{i}", "run_key": f"kbad{i}"} for i, r in enumerate(bad)],
    )
    result = report(results, tmp_path / "out")
    assert_clean_exit(result)
    output = " ".join(result.output.split())
    for line, (column, value, why) in enumerate(UNUSABLE, start=3):
        said = output.split(f"{results / 'pmnist.csv'}:{line}: skipped, ", 1)[-1].split(
            " warning: "
        )[0]
        assert said != output and why.replace("'", "") in said.replace("'", ""), (
            column,
            value,
            said[:200],
        )
    assert "| lstm |" in output and "eurnn" not in output.split("skipped")[-1]


def test_config_json_nested_too_deep_for_the_json_parser_is_skipped(tmp_path):
    results = write(
        tmp_path / "results", [row("lstm", 0), row("eurnn", 0, config_json="[" * 100_000)]
    )
    result = report(results, tmp_path / "out")
    assert_clean_exit(result)
    assert f"{results / 'pmnist.csv'}:3: skipped, config_json is not valid JSON" in result.output


def test_nan_in_a_measurement_is_a_missing_value(tmp_path):
    """The runner writes nan for a statistic it could not compute: the row is used, the value
    is shown as missing."""
    columns = [
        "params",
        "step_time_ms",
        "peak_mem_mb",
        "test_loss",
        "step_time_iqr_ms",
        "time_to_target_s",
    ]
    rows = [row("lstm", 0)] + [
        row(f"eurnn:{column}=nan", 0, **{column: "nan"}) for column in columns
    ]
    result = report(write(tmp_path / "results", rows), tmp_path / "out")
    assert_clean_exit(result)
    assert "skipped" not in result.output
    assert all(f"| eurnn:{column}=nan |" in result.output for column in columns), result.output


ODD_TEXT = [
    "eurnn:a|b",
    "eurnn:$\\frac$",
    "eurnn:$x$",
    "eurnn:100%",
    "eurnn:_x_",
    "eurnn:a&b",
    "eurnn:#1",
    "eurnn:ü→日本",
    "eurnn:\x1b[31mred",
    "eurnn:tab\there",
    "eurnn:{}\\",
    "eurnn:*a*`b`<i>",
    "eurnn:" + "long" * 500,
    "eurnn:\x00nul",
]


def test_odd_text_is_escaped_in_markdown_latex_and_figures(tmp_path):
    rows = [row(text, seed) for text in ["lstm", *ODD_TEXT] for seed in (0, 1)]
    rows = [{**r, "run_id": f"r{i}", "run_key": f"k{i}"} for i, r in enumerate(rows)]
    result = report(write(tmp_path / "results", rows), tmp_path / "out")
    assert_clean_exit(result)
    table = next(p for p in (tmp_path / "out").glob("*.md") if p.name != "report.md").read_text(
        encoding="utf-8"
    )
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert len(lines) == 3 + len(ODD_TEXT)  # header, rule, a line per cell: nothing broke a line
    cells = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
    assert len(cells) == 1, lines  # no unescaped | added a column
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", table)
    tex = next((tmp_path / "out").glob("*.tex")).read_text(encoding="utf-8")
    assert tex.isascii() and not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", tex)
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    for char in "$%#_":  # every special character of LaTeX is escaped
        assert not re.search(rf"(?<!\\){re.escape(char)}", re.sub(r"\$\\[a-z]+\$", "", body)), (
            char,
            body,
        )
    assert (
        len({len(re.findall(r"(?<!\\)&", line)) for line in body.strip().splitlines()}) == 1
    )  # & only between cells
    assert body.count("{") == body.count("}")
    assert any(p.name.endswith("-test-acc.png") for p in (tmp_path / "out").iterdir())


def test_a_pipe_in_a_cell_name_is_escaped_in_markdown(tmp_path):
    rows = [row("lstm", 0), row("eurnn:a|b", 0)]
    result = report(write(tmp_path / "results", rows), tmp_path / "out")
    assert_clean_exit(result)
    assert "| eurnn:a\\|b |" in result.output


def test_bytes_that_are_not_utf8_skip_the_row_not_the_report(tmp_path):
    results = write(tmp_path / "results", [row("lstm", 0), row("eurnn", 0, cell_spec="eurnn:XX")])
    path = results / "pmnist.csv"
    path.write_bytes(path.read_bytes().replace(b"eurnn:XX", b"eurnn:\xff\xfe"))
    result = report(results, tmp_path / "out")
    assert_clean_exit(result)
    assert "| lstm |" in result.output


# --- 4. an --out that cannot be written ---------------------------------------------------------


def assert_names_the_folder(result, folder: Path):
    assert_clean_exit(result, code=result.exit_code)
    assert result.exit_code not in (0,), result.output
    assert str(folder) in " ".join(result.output.split()), result.output


def test_out_under_a_regular_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    results = write(tmp_path / "results", [row()])
    result = report(results, tmp_path / "file" / "sub")
    assert_names_the_folder(result, tmp_path / "file" / "sub")


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes into read-only folders: the case cannot be made here"
)
def test_a_read_only_out_is_a_clear_error(tmp_path):
    results = write(tmp_path / "results", [row()])
    (tmp_path / "out").mkdir(mode=0o500)
    try:
        result = report(results, tmp_path / "out")
    finally:
        (tmp_path / "out").chmod(0o700)
    assert_names_the_folder(result, tmp_path / "out")


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="root may write into every user's folders: the case cannot be made here",
)
def test_a_folder_of_another_user_is_a_clear_error(tmp_path):
    other = Path("/root") if Path("/root").exists() else Path("/")
    results = write(tmp_path / "results", [row()])
    result = report(results, other / "rnnbench-report-test")
    assert_names_the_folder(result, other / "rnnbench-report-test")


@pytest.mark.parametrize("target", ["matplotlib.figure.Figure.savefig", "os.replace"])
def test_a_full_disk_is_a_clear_error_and_leaves_no_temporary_file(tmp_path, monkeypatch, target):
    results = write(tmp_path / "results", [row("lstm", 0), row("eurnn", 0)])

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(target, full)
    result = report(results, tmp_path / "out")
    assert_names_the_folder(result, tmp_path / "out")
    assert "No space left on device" in result.output
    assert not [
        p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".") or p.suffix == ".tmp"
    ]


# --- task metadata and task cards as people (or attackers) leave them --------------------------

HOSTILE_TASK_JSON = [
    {
        "score_name": "<img src=x onerror=alert(1)> [x](http://evil) | pipe",
        "reference_lines": ["a", "b"],
    },
    {"published_lines": "a string", "chance": True, "reference_lines": {"ok line": "0.5"}},
    {
        "published_lines": {"x": [0.5, "full"], "y": 3, "z": [float("inf"), {}]},
        "higher_is_better": "no",
    },
    {"score_name": 7, "reference_lines": {"nan": float("nan"), "big": 1e308}, "chance": "half"},
]


@pytest.mark.parametrize("task_json", HOSTILE_TASK_JSON, ids=range(len(HOSTILE_TASK_JSON)))
def test_hand_edited_task_metadata_never_crashes_the_report_and_is_escaped(tmp_path, task_json):
    text = json.dumps(task_json)
    results = write(
        tmp_path / "results", [row("lstm", 0, task_json=text), row("eurnn", 1, task_json=text)]
    )
    (results / "tasks").mkdir()
    for i, card in enumerate(
        [
            {"task_spec": "pmnist", "task_version": [2], "example": {"x": [1, 2]}},
            {"task_spec": "pmnist", "task_version": 1, "example": [1, 2]},
            {"task_spec": "pmnist", "task_version": 1, "example": {"bad": "text", "deep": [[[1]]]}},
            {"task_spec": "pmnist", "task_version": 1, "citation": ["not-a-citation-5d1e", "text"]},
        ]
    ):
        (results / "tasks" / f"pmnist-{i}.json").write_text(json.dumps(card))
    (results / "tasks" / "broken.json").write_text("{")
    result = report(results, tmp_path / "out")
    assert_clean_exit(result)
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert not re.search(r"(?<!\\)<img", markdown) and not re.search(
        r"(?<!\\)\]\(http", markdown
    )  # escaped
    bib = tmp_path / "out" / "references.bib"
    assert (
        not bib.exists() or "not-a-citation-5d1e" not in bib.read_text()
    )  # (a citation that is not text is left out)
