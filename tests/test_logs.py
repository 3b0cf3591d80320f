"""Where the library's lines go (rnnbench.logs): the CLI's stderr, each line once however many
commands ran in the process; a child process's lines through its parent; nothing for a library
user who configured nothing."""

import io
import logging
import warnings

import pandas as pd
from conftest import invoke

from rnnbench import executors, logs, sweep
from rnnbench.config import RunConfig
from rnnbench.registry import CELLS
from rnnbench.store import layout

TASK = "adding:length=8:n_train=48:n_valid=16:n_test=16"
TINY = [
    "--cells",
    "rnn",
    "--task",
    TASK,
    "--hidden",
    "6",
    "--steps",
    "12",
    "--eval-every",
    "6",
    "--batch-size",
    "16",
    "--eval-batch-size",
    "16",
    "--device",
    "cpu",
]


def test_a_handler_pointed_at_a_new_stream_is_the_same_one_and_formats_warnings():
    first, second = io.StringIO(), io.StringIO()
    logs.to_stream(first)
    logging.getLogger("rnnbench.sweep").info("to the first")
    handler = logs.to_stream(second)
    log = logging.getLogger("rnnbench.anywhere")
    log.info("a line as is")
    log.warning("something odd")
    warnings.warn("a Python warning", stacklevel=2)
    assert [h for h in logging.getLogger("rnnbench").handlers if getattr(h, "rnnbench", False)] == [
        handler
    ]
    assert first.getvalue() == "to the first\n"
    assert second.getvalue() == "a line as is\nwarning: something odd\nwarning: a Python warning\n"


def test_a_library_user_who_configured_nothing_sees_no_progress_lines(tmp_path, capsys):
    from rnnbench import configfile

    configfile.keep(tmp_path, "st", {"command": "tune"})
    assert capsys.readouterr() == ("", "")


def test_the_cli_prints_each_line_once_across_commands_and_a_childs_lines_through_it(tmp_path):
    """Two commands in one process (CliRunner gives each its own stderr): each line once, in the
    second as in the first; the second trains again from a damaged checkpoint, in a child process,
    whose warning reaches this one's stderr with one `warning: ` prefix."""
    results = tmp_path / "res"
    results.mkdir()
    layout.sweeps_folder(results).write_text(
        "a file where the folder should be"
    )  # (a warning in every command)
    args = ["run", *TINY, "--seeds", "0,0", "--results", str(results), "--keep-checkpoints"]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    (checkpoint,) = layout.checkpoint(results, "*").parent.glob("*.pt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # torn
    layout.rows_csv(results, "adding").unlink()  # (the run is to train again)
    second = invoke(*args)
    assert second.exit_code == 0, second.output
    for out in (first, second):
        lines = out.stderr.splitlines()
        assert lines.count("seed 0 given more than once: planned once") == 1
        assert (
            sum(line.startswith("warning: could not keep this config in ") for line in lines) == 1
        )
        assert (
            sum(line.startswith("adding rnn N=6 seed 0: step 6/12 (50 %)") for line in lines) == 1
        )
        assert sum(line.startswith("rnn N=6 seed 0: ok, test acc ") for line in lines) == 1
        assert not any("warning: warning:" in line for line in lines)
    assert (
        sum(
            line.startswith(f"warning: ignoring checkpoint {checkpoint} ")
            for line in second.stderr.splitlines()
        )
        == 1
    )
    assert "ignoring checkpoint" not in first.stderr
    assert (
        len(logging.getLogger("rnnbench").handlers) == 1
    )  # (a stacked one would write to the first's stderr)


def test_a_childs_lines_reach_the_parents_stream_unchanged(tmp_path):
    runs, splits = sweep.plan(
        TASK,
        [CELLS.parse("rnn")],
        [0],
        RunConfig(
            hidden_size=6, steps=12, eval_every=6, batch_size=16, eval_batch_size=16, device="cpu"
        ),
        tmp_path,
    )
    stream = io.StringIO()
    logs.to_stream(stream)
    (row,) = executors.execute(runs, splits, isolate=True)
    assert row["status"] == "ok"
    lines = stream.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["adding rnn N=6 seed 0"] * 2 + [
        "rnn N=6 seed 0"
    ] + ["  warning"] * (
        len(lines) - 3
    )  # (the timing note, when the machine is busy, is the summary's)
    assert lines[2].startswith("rnn N=6 seed 0: ok, test acc ")
    assert pd.read_csv(layout.rows_csv(tmp_path, "adding")).run_id.tolist() == [row["run_id"]]
