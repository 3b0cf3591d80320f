"""Bad files and failing writes: corrupt checkpoints, torn rows, concurrent appends, a full disk,
old results files, rows nobody should have written, an out-of-memory run."""

import errno
import hashlib
import io
import multiprocessing
import os
import pickle
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import invoke

import rnnbench
from rnnbench import checkpoints, runner, store
from rnnbench.config import RunConfig
from rnnbench.store import csvfile

TASK = "adding:length=6:n_train=40:n_valid=16:n_test=16"
TINY = [
    "--task",
    TASK,
    "--hidden",
    "4",
    "--steps",
    "6",
    "--eval-every",
    "3",
    "--batch-size",
    "8",
    "--eval-batch-size",
    "16",
    "--device",
    "cpu",
]


def train_tiny(checkpoint: Path, steps: int = 6):
    config = RunConfig(
        hidden_size=4, batch_size=8, steps=steps, eval_every=3, eval_batch_size=16, device="cpu"
    )
    task = rnnbench.build_task(TASK)
    return runner.train(
        task,
        rnnbench.parse_cell_spec("rnn"),
        config,
        task.load(config),
        torch.device("cpu"),
        checkpoint,
    )


@pytest.fixture
def checkpoint(tmp_path):
    """A real checkpoint of a run stopped at step 3 of 6."""
    path = tmp_path / "run.pt"
    train_tiny(path, steps=3)
    return path


@pytest.mark.parametrize(
    "damage",
    [
        "flip a byte in the payload",
        "flip a byte in the checksum",
        "cut in half",
        "cut to nothing",
        "another file format",
    ],
)
def test_a_damaged_checkpoint_restarts_the_run_from_scratch_with_a_warning(checkpoint, damage):
    data = bytearray(checkpoint.read_bytes())
    if damage == "flip a byte in the payload":
        data[len(data) * 3 // 4] ^= 0x40
    elif damage == "flip a byte in the checksum":
        data[len(checkpoints.MAGIC) + 3] ^= 0x01
    elif damage == "cut in half":
        data = data[: len(data) // 2]
    elif damage == "cut to nothing":
        data = b""
    else:
        data = bytearray(data[len(checkpoints.MAGIC) + 32 :])  # a bare torch.save file
    checkpoint.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=f"ignoring checkpoint {checkpoint}.*starts from scratch"):
        result = train_tiny(checkpoint)
    straight = train_tiny(None)
    assert result["status"] == "ok" and result["steps_done"] == 6
    assert (
        result["test_loss"] == straight["test_loss"]
    )  # from scratch, not from a wrongly read state


class RunsCode:
    """A pickle that runs code when loaded by an unrestricted unpickler."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_crafted_to_run_code_is_refused(checkpoint, tmp_path):
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(
        {"version": checkpoints.VERSION, "progress": RunsCode(marker)}, protocol=2
    )
    buffer = io.BytesIO()
    torch.save({"version": checkpoints.VERSION, "progress": RunsCode(marker)}, buffer)
    for crafted in (
        buffer.getvalue(),
        payload,
    ):  # valid checksum: only the loader stands in the way
        checkpoint.write_bytes(checkpoints.MAGIC + hashlib.sha256(crafted).digest() + crafted)
        with pytest.warns(UserWarning, match="ignoring checkpoint"):
            assert train_tiny(checkpoint)["status"] == "ok"
        assert not marker.exists()


def _append_rows(results: str, worker: int, count: int) -> None:
    for i in range(count):
        row = {column: f"{worker}-{i}" for column in store.COLUMNS}
        store.append_run(Path(results), "t", row, [{"run_id": f"{worker}-{i}", "step": i}])


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["plain", "with spaces and ünïcødé ✓"])
def test_four_processes_append_25_rows_each_and_every_row_is_whole(tmp_path, folder):
    results = tmp_path / folder
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_rows, args=(str(results), w, 25)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    rows = pd.read_csv(results / "t.csv", dtype=str)
    assert len(rows) == 100 and rows.run_id.nunique() == 100
    assert (rows.run_id == rows.status).all()  # every row whole: its own values in every column
    assert len(pd.read_csv(results / "t-curves.csv")) == 100


def _row(name: str) -> dict:
    return {
        **{c: "" for c in store.COLUMNS},
        "run_id": name,
        "run_key": name,
        "status": "ok",
        "seed": 0,
        "hidden_size": 4,
        "task_version": 1,
        "test_acc": 0.5,
        "config_json": "{}",
        "error": "two\nlines",
    }


def test_a_failed_write_leaves_the_file_as_it_was_and_says_so(tmp_path, monkeypatch):
    store.append_run(tmp_path, "t", _row("first"), [])
    before = (tmp_path / "t.csv").read_bytes()

    filled = []

    def disk_fills_up(fd, data):
        filled.append(fd)
        os.write(fd, data[:10])  # some bytes go through, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(
        csvfile, "os", type("os", (), {**vars(os), "write": staticmethod(disk_fills_up)})
    )
    with pytest.raises(
        OSError, match=r"could not append to .*t.csv \(No space left on device\); the file is as it"
    ):
        store.append_run(tmp_path, "t", _row("second"), [])
    assert filled  # (the write failed where the fault put it)
    assert (tmp_path / "t.csv").read_bytes() == before


def test_a_full_disk_during_a_sweep_is_reported_and_keeps_rows_and_checkpoint(
    tmp_path, monkeypatch
):
    results = tmp_path / "r"
    assert invoke("run", "--cells", "rnn", *TINY, "--results", results).exit_code == 0
    before = (results / "adding.csv").read_bytes()
    real_append = csvfile.append

    refused = []

    def full(path, columns, rows, *rest):
        if not path.name.endswith("-curves.csv"):
            refused.append(path.name)
            raise OSError(errno.ENOSPC, f"could not append to {path} (No space left on device)")
        real_append(path, columns, rows, *rest)

    monkeypatch.setattr(csvfile, "append", full)
    out = invoke(
        "run", "--cells", "gru", *TINY, "--results", results, "--in-process"
    )  # (where the patch holds)
    assert out.exit_code == 1 and "No space left on device" in out.output, out.output
    assert refused == ["adding.csv"]  # the row's write, and only it, met the full disk
    assert (results / "adding.csv").read_bytes() == before  # earlier rows intact
    assert (
        len(list((results / "checkpoints").glob("*.pt"))) == 1
    )  # the finished run's state survives
    monkeypatch.setattr(csvfile, "append", real_append)
    out = invoke("run", "--cells", "gru", *TINY, "--results", results)
    assert out.exit_code == 0 and "resuming from step 6" in out.output
    assert pd.read_csv(results / "adding.csv").cell.tolist() == ["rnn", "gru"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_real_enospc_is_an_error_not_a_crash(tmp_path):
    (tmp_path / "t.csv").symlink_to("/dev/full")
    with pytest.raises(OSError, match="No space left on device"):
        store.append_run(tmp_path, "t", _row("x"), [])


def test_out_of_memory_fails_that_run_says_what_to_lower_and_the_sweep_goes_on(
    tmp_path, scratch_cells
):
    @rnnbench.register_cell("oom")
    def oom(input_size, hidden_size):
        """Runs out of GPU memory in forward."""
        module = torch.nn.Linear(input_size, hidden_size)
        module.output_size = hidden_size

        def forward(x):
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 139 GiB total)"
            )

        module.forward = forward
        return module

    out = invoke(
        "run", "--cells", "oom,rnn", *TINY, "--results", tmp_path / "r", "--in-process"
    )  # (a cell of this process)
    rows = pd.read_csv(tmp_path / "r" / "adding.csv")
    assert out.exit_code == 1
    assert rows.status.tolist() == ["failed", "ok"]
    assert rows.error[0].startswith("OutOfMemoryError: CUDA out of memory")
    assert "lower --batch-size or --hidden" in rows.error[0]


def test_an_older_results_file_is_read_and_appended_to_without_loss(tmp_path):
    results = tmp_path / "r"
    assert invoke("run", "--cells", "rnn", *TINY, "--results", results).exit_code == 0
    old = pd.read_csv(results / "adding.csv", dtype=str, keep_default_na=False)
    old.drop(columns=["impl", "task_spec"]).to_csv(
        results / "adding.csv", index=False
    )  # as an older version wrote it
    assert (
        invoke("run", "--cells", "rnn", *TINY, "--results", results).exit_code == 0
    )  # same run: skipped
    assert invoke("run", "--cells", "gru", *TINY, "--results", results).exit_code == 0
    rows = pd.read_csv(results / "adding.csv", dtype=str, keep_default_na=False)
    assert rows.cell.tolist() == ["rnn", "gru"]
    assert rows.loc[0, "impl"] == "" and rows.loc[1, "impl"] == "native"
    for column in old.columns.drop(["impl", "task_spec"]):
        assert rows.loc[0, column] == old.loc[0, column], column
    report = invoke("report", "--results", results)
    assert report.exit_code == 0 and "rnn" in report.output and "gru" in report.output


def test_a_row_with_an_unknown_status_is_reported_not_crashed_on(tmp_path):
    results = tmp_path / "r"
    assert invoke("run", "--cells", "rnn,gru", *TINY, "--results", results).exit_code == 0
    rows = pd.read_csv(results / "adding.csv", dtype=str, keep_default_na=False)
    rows.loc[1, "status"] = "preempted"
    rows.to_csv(results / "adding.csv", index=False)
    out = invoke("report", "--results", results)
    assert out.exit_code == 0, out.output
    assert (
        "adding.csv:3: skipped, unknown status 'preempted' (known: ok, diverged, pruned, failed)"
        in out.output
    )
    # the run has no ok row, so the next sweep runs it again
    again = invoke("run", "--cells", "rnn,gru", *TINY, "--results", results)
    assert again.exit_code == 0 and again.output.count("already has an ok row") == 1


def test_a_torn_last_row_is_ignored_by_readers_and_moved_aside_by_the_next_append(tmp_path):
    store.append_run(tmp_path, "t", _row("first"), [])
    whole = (tmp_path / "t.csv").read_bytes()
    with open(tmp_path / "t.csv", "ab") as f:
        f.write(b"second,abc,t,")  # a writer killed mid-row
    with pytest.warns(UserWarning, match="ends in a torn row"):
        assert store.read_rows(tmp_path, "t").run_id.tolist() == ["first"]
    with pytest.warns(UserWarning, match=r"moved it to .*t.csv.torn"):
        store.append_run(tmp_path, "t", _row("third"), [])
    assert store.read_rows(tmp_path, "t").run_id.tolist() == ["first", "third"]
    assert (tmp_path / "t.csv").read_bytes().startswith(whole)
    assert (tmp_path / "t.csv.torn").read_bytes() == b"second,abc,t,\n"


def test_line_breaks_in_values_do_not_split_rows(tmp_path):
    store.append_run(tmp_path, "t", _row("first"), [])
    assert (tmp_path / "t.csv").read_bytes().count(b"\n") == 2  # header and one row
    assert store.read_rows(tmp_path, "t").error.tolist() == ["two lines"]


def test_results_folder_copied_elsewhere_still_reads(tmp_path):
    results = tmp_path / "r"
    assert invoke("run", "--cells", "rnn", *TINY, "--results", results).exit_code == 0
    copy = tmp_path / "copied here ✓"
    shutil.copytree(results, copy)
    out = invoke("run", "--cells", "rnn", *TINY, "--results", copy)
    assert out.exit_code == 0 and "already has an ok row" in out.output
