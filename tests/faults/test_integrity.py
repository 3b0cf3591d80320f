"""Integrity under ordinary use of a shared results folder: two commands at once, a value given
twice, a killed parent, a checkpoint from elsewhere, files as editors and spreadsheets leave them,
a lock held by a stopped process, job folders others can write. Real processes where it matters.

`pytest --soak` runs the overlapping-sweeps loop 20 times instead of once.
"""

import codecs
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from conftest import invoke

from rnnbench import checkpoints, store
from rnnbench.store import claims

HERE = Path(__file__).parent
TASK = "adding:length=8:n_train=48:n_valid=16:n_test=16"
TINY = [
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
    "--lr",
    "0.01",
    "--device",
    "cpu",
]


def environment(**extra) -> dict:
    path = [str(HERE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),
        "RNNBENCH_FAULT": "",
        **{k: str(v) for k, v in extra.items()},
    }


def rnnbench(*args, cwd=None, **env) -> subprocess.Popen:
    """`rnnbench --plugin fault_plugin ARGS` in a process of its own (its own process group), run
    as users do, through the installed command."""
    command = Path(sys.executable).with_name("rnnbench")
    return subprocess.Popen(
        [str(command), "--plugin", "fault_plugin", *map(str, args)],
        env=environment(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        start_new_session=True,
    )


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        pytest.fail(f"still running after {timeout} s:\n{out}")
    return process.returncode, out


def rows_of(results: Path) -> pd.DataFrame:
    return store.read_rows(results, "adding")


def assert_each_run_once(results: Path, runs: int) -> pd.DataFrame:
    rows = rows_of(results)
    ok = len(rows) == runs and rows.run_key.is_unique and set(rows.status) == {"ok"}
    assert ok, rows[["cell_spec", "seed", "status", "error"]]
    assert not list((results / "checkpoints").glob("*")), list((results / "checkpoints").glob("*"))
    assert not list((results / "claims").glob("*.claim")), list((results / "claims").glob("*"))
    return rows


# --- 1, 2: two commands on one folder -------------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_that_ends_never_removes_a_folder_another_sweep_writes_into(tmp_path):
    # The slow sweep is before its first checkpoint when the quick one ends (which used to remove
    # the then empty checkpoints/ folder, failing the slow sweep at its first checkpoint).
    slow = rnnbench(
        "run",
        "--cells",
        "slow",
        *TINY,
        "--steps",
        "20",
        "--eval-every",
        "20",
        "--results",
        tmp_path,
        RNNBENCH_SLOW_S=0.25,
    )
    quick = rnnbench("run", "--cells", "rnn", *TINY, "--results", tmp_path)
    assert finish(quick)[0] == 0
    code, output = finish(slow)
    assert code == 0, output
    assert_each_run_once(tmp_path, 2)
    assert (tmp_path / "checkpoints").is_dir()  # created once, never removed


@pytest.mark.slow
def test_the_same_command_twice_at_once_trains_every_run_once(tmp_path):
    command = ["run", "--cells", "slow,rnn", *TINY, "--seeds", "1,2", "--results", tmp_path]
    first, second = rnnbench(*command, RNNBENCH_SLOW_S=0.1), rnnbench(*command, RNNBENCH_SLOW_S=0.1)
    (code1, out1), (code2, out2) = finish(first), finish(second)
    assert code1 == 0 and code2 == 0, out1 + out2
    assert_each_run_once(tmp_path, 4)
    assert "being trained by process" in out1 + out2  # one waited on the other, and said so
    assert "Traceback" not in out1 + out2


def write_claim(results: Path, name: str, **owner) -> Path:
    folder = results / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.claim"
    path.write_text(
        json.dumps(
            {
                "host": "elsewhere",
                "boot": "",
                "pid": 1,
                "started": 0,
                "since": time.time(),
                "token": "theirs",
                **owner,
            }
        )
    )
    return path


def planned_name(results: Path, *cells) -> list[str]:
    from rnnbench import sweep
    from rnnbench.cli import expand_cells
    from rnnbench.config import preset

    config = preset("default").replace(
        hidden_size=6,
        steps=12,
        eval_every=6,
        batch_size=16,
        eval_batch_size=16,
        lr=0.01,
        device="cpu",
    )
    runs, _ = sweep.plan(TASK, expand_cells(",".join(cells)), [0], config, results)
    return [run.name for run in runs]


def test_a_claim_of_a_dead_process_is_taken_over_at_once(tmp_path):
    (name,) = planned_name(tmp_path, "rnn")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    write_claim(tmp_path, name, **{**claims.whoami(), "pid": int(dead.stdout), "started": 1.0})
    out = invoke("run", "--cells", "rnn", *TINY, "--results", tmp_path)
    assert out.exit_code == 0, out.output
    assert "taking over" in out.output and "has ended" in out.output
    assert_each_run_once(tmp_path, 1)


@contextlib.contextmanager
def ended_unreaped():
    """The pid of a process that has ended and that this test has not yet waited for: a zombie,
    until the block ends."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        for _ in range(100):
            if psutil.Process(ended.pid).status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.05)
        assert psutil.Process(ended.pid).status() == psutil.STATUS_ZOMBIE
        yield ended.pid
    finally:
        ended.wait()


def test_a_claim_of_a_process_that_ended_unreaped_is_taken_over_at_once(tmp_path):
    """A killed sweep whose parent (a shell, a job manager, this test) has not yet waited for it
    is a zombie: it holds nothing. Taken for alive, its claim was waited on until its heartbeat
    went stale (RNNBENCH_CLAIM_TIMEOUT_S, two minutes by default)."""
    (name,) = planned_name(tmp_path, "rnn")
    with ended_unreaped() as pid:
        owner = {**claims.whoami(), "pid": pid, "started": psutil.Process(pid).create_time()}
        assert claims.alive(owner) is False
        write_claim(tmp_path, name, **owner)
        started = time.monotonic()
        out = invoke("run", "--cells", "rnn", *TINY, "--results", tmp_path)
        assert out.exit_code == 0, out.output
        assert "taking over" in out.output and "has ended" in out.output
        assert time.monotonic() - started < claims.claim_timeout_s()
        assert_each_run_once(tmp_path, 1)


@pytest.mark.parametrize("pid, alive", [(-1, False), (0, False), ("x", None), (None, None)])
def test_a_damaged_claim_is_judged_not_crashed_on(pid, alive):
    """A claim naming no process of this machine is of one that has ended; one whose pid cannot
    be read is judged by its heartbeat alone, as another machine's is."""
    assert claims.alive({**claims.whoami(), "pid": pid, "started": 1.0}) is alive


def test_a_builder_that_ended_unreaped_is_not_alive():
    """The kernel build's stale-folder cleanup asks the same question of its builders."""
    from rnnbench.cells import _eurnn_fused

    with ended_unreaped() as pid:
        assert _eurnn_fused._alive(pid) is False
    assert _eurnn_fused._alive(os.getpid()) is True


def test_a_live_process_stays_alive_when_the_clock_moves_its_start_time(monkeypatch):
    """psutil derives a start time from the kernel's boot time, the wall clock minus the uptime,
    read once per process: after a clock adjustment, a child reads its parent's start a second
    off. Before, the child took its live parent for gone and stopped its run (seen on this VM:
    every run of a sweep failed "exited with code 0 before writing its row")."""
    import psutil

    me = claims.whoami()
    assert claims.alive(me) is True
    created = psutil.Process.create_time
    # btime moved by 1 s
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: created(self) + 1.0)
    assert claims.alive(me) is True
    # another process
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: created(self) + 30.0)
    assert claims.alive(me) is False


@pytest.mark.slow
def test_a_claim_of_another_node_is_waited_on_while_its_heartbeat_is_fresh_then_taken_over(
    tmp_path,
):
    (name,) = planned_name(tmp_path, "rnn")
    claim = write_claim(tmp_path, name)
    process = rnnbench(
        "run", "--cells", "rnn", *TINY, "--results", tmp_path, RNNBENCH_CLAIM_TIMEOUT_S=4
    )
    for _ in range(8):  # a heartbeat from the other node, every second, for 8 s
        time.sleep(1)
        os.utime(claim)
        assert process.poll() is None
    code, output = finish(process)  # then it stops beating
    assert code == 0, output
    assert "being trained by process 1 on elsewhere" in output and "heartbeat is" in output
    assert_each_run_once(tmp_path, 1)


def test_a_process_whose_claim_was_taken_over_writes_nothing(tmp_path):
    from rnnbench import sweep

    (name,) = planned_name(tmp_path, "rnn")
    claim = claims.take(tmp_path, name)
    assert isinstance(claim, claims.Claim)
    assert isinstance(claims.take(tmp_path, name), claims.Held)
    write_claim(tmp_path, name)  # another process took the run over while this one was stopped
    with pytest.raises(claims.ClaimLost, match="taken over by process 1 on elsewhere"):
        claim.check()
    claim.release()  # leaves the other's claim alone
    assert json.loads((tmp_path / "claims" / f"{name}.claim").read_text())["token"] == "theirs"
    # (the runner checks the claim before each checkpoint and under the lock before its row)
    assert sweep


@pytest.mark.slow
def test_killing_the_local_executors_parent_stops_its_workers_and_a_rerun_trains_each_run_once(
    tmp_path,
):
    command = [
        "run",
        "--cells",
        "slow",
        *TINY,
        "--steps",
        "60",
        "--eval-every",
        "10",
        "--seeds",
        "1,2",
        "--results",
        tmp_path,
        "--executor",
        "local",
        "--jobs",
        "2",
    ]
    parent = rnnbench(*command, RNNBENCH_SLOW_S=0.1)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "checkpoints").glob("*.pt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = psutil.Process(parent.pid).children(recursive=True)
    assert workers
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    gone, alive = psutil.wait_procs(workers, timeout=20)
    assert not alive, [p.cmdline() for p in alive]
    code, output = finish(rnnbench(*command, RNNBENCH_SLOW_S=0.1))
    assert code == 0, output
    logs = " ".join(path.read_text() for path in tmp_path.glob("logs-*/*/*.out"))
    assert "resuming from step" in logs
    assert_each_run_once(tmp_path, 2)


# --- 8: threads change a CPU run's numbers --------------------------------------------------------


@pytest.mark.slow
def test_the_same_run_with_another_thread_count_is_another_run(tmp_path):
    for threads in (1, 2):
        code, output = finish(
            rnnbench("run", "--cells", "rnn", *TINY, "--results", tmp_path, OMP_NUM_THREADS=threads)
        )
        assert code == 0 and "already has an ok row" not in output, output
    rows = rows_of(tmp_path)
    assert len(rows) == 2 and rows.run_key.is_unique and sorted(rows.num_threads) == [1, 2]


# --- 3: a value given twice -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, said",
    [
        (["--cells", "rnn", "--seeds", "0,0"], "seed 0 given more than once: planned once"),
        (
            ["--cells", "rnn", "--hidden", "6,6", "--seeds", "0"],
            "--hidden 6 given more than once: planned once",
        ),
        (["--cells", "rnn,rnn", "--seeds", "0"], "cell rnn given more than once: planned once"),
        (["--cells", "eurnn,eurnn:capacity=2", "--seeds", "0"], "cell eurnn given more than once"),
    ],
)
def test_a_value_given_twice_is_planned_once(tmp_path, args, said):
    tiny = TINY[:2] + TINY[4:] if "--hidden" in args else TINY  # (without its --hidden 6)
    out = invoke("run", *args, *tiny, "--results", tmp_path)
    assert out.exit_code == 0, out.output
    assert said in out.output
    assert_each_run_once(tmp_path, 1)


# --- 4, 5: jobs import what the submitting process imports ----------------------------------------


@pytest.mark.slow
def test_local_jobs_import_this_rnnbench_and_the_plugins_from_any_working_folder(tmp_path):
    work = tmp_path / "work"
    (work / "rnnbench").mkdir(parents=True)  # like the parent folder of a clone
    (work / "rnnbench" / "__init__.py").write_text("raise ImportError('the wrong rnnbench')\n")
    results = tmp_path / "results"
    process = rnnbench(
        "run", "--cells", "slow,rnn", *TINY, "--results", results, "--executor", "local", cwd=work
    )
    code, output = finish(process)
    assert code == 0, output
    assert "the wrong rnnbench" not in output
    # the plugin's cell ran in its job
    assert set(assert_each_run_once(results, 2).cell_spec) == {"slow", "rnn"}


# --- 6, 7: checkpoints ----------------------------------------------------------------------------


def test_a_checkpoint_that_fits_only_in_part_is_refused_whole(tmp_path):
    reference, results = tmp_path / "reference", tmp_path / "results"
    assert invoke("run", "--cells", "rnn", *TINY, "--results", reference).exit_code == 0
    kept = invoke("run", "--cells", "rnn", *TINY, "--results", results, "--keep-checkpoints")
    assert kept.exit_code == 0
    (checkpoint,) = (results / "checkpoints").glob("*.pt")
    state = checkpoints.read(checkpoint)
    state["progress"]["field_of_a_newer_version"] = 1  # everything else fits
    checkpoints.save(checkpoint, state)
    (results / "adding.csv").unlink()  # the run has no row: it would resume from the checkpoint
    out = invoke("run", "--cells", "rnn", *TINY, "--results", results)
    assert out.exit_code == 0, out.output
    assert "progress fields differ" in out.output and "starts from scratch" in out.output
    want, got = rows_of(reference).iloc[0], rows_of(results).iloc[0]
    for metric in ("test_acc", "test_loss", "final_train_loss", "best_valid_step", "n_evals"):
        assert got[metric] == want[metric], metric


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    results = tmp_path / "results"
    kept = invoke(
        "run", "--cells", "rnn", *TINY, "--results", results, "--keep-checkpoints", "--seeds", "1"
    )
    assert kept.exit_code == 0
    (theirs,) = (results / "checkpoints").glob("*.pt")
    (mine,) = planned_name(results, "rnn")
    theirs.rename(results / "checkpoints" / f"{mine}.pt")
    (results / "adding.csv").unlink()  # (else: a checkpoint whose run has its row, removed as such)
    out = invoke("run", "--cells", "rnn", *TINY, "--results", results, "--seeds", "0")
    assert out.exit_code == 0 and "belongs to run" in out.output and "resuming" not in out.output


def test_force_after_keep_checkpoints_trains_again_from_scratch(tmp_path):
    kept = invoke("run", "--cells", "rnn", *TINY, "--results", tmp_path, "--keep-checkpoints")
    assert kept.exit_code == 0
    first = rows_of(tmp_path).iloc[0]
    out = invoke("run", "--cells", "rnn", *TINY, "--results", tmp_path, "--force")
    assert out.exit_code == 0, out.output
    assert "resuming" not in out.output and "already has its row" in out.output
    rows = rows_of(tmp_path)
    assert len(rows) == 2 and rows.run_id.is_unique  # a new run, not a copy of the old row
    assert rows.iloc[1].test_acc == first.test_acc and rows.iloc[1].n_evals == first.n_evals
    assert not list((tmp_path / "checkpoints").glob("*"))


@pytest.mark.slow
def test_a_kill_between_the_row_and_the_checkpoint_removal_leaves_no_orphan(tmp_path):
    fired = tmp_path.parent / f"{tmp_path.name}-fired.txt"
    code, _ = finish(
        rnnbench(
            "run",
            "--cells",
            "rnn",
            *TINY,
            "--results",
            tmp_path,
            RNNBENCH_FAULT="afterrow:1",
            RNNBENCH_FAULT_FIRED=fired,
        )
    )
    assert code == -signal.SIGKILL and fired.read_text() == "afterrow:1\n"  # by the fault
    assert list((tmp_path / "checkpoints").glob("*.pt"))  # the orphan
    code, output = finish(rnnbench("run", "--cells", "rnn", *TINY, "--results", tmp_path))
    assert code == 0 and "already has an ok row" in output, output
    assert_each_run_once(tmp_path, 1)


# --- 9: results files as editors and spreadsheets leave them --------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A results folder with two finished runs (seeds 0 and 1)."""
    results = tmp_path_factory.mktemp("finished")
    out = invoke("run", "--cells", "rnn", *TINY, "--seeds", "0,1", "--results", results)
    assert out.exit_code == 0, out.output
    return results


def edited(finished: Path, tmp_path: Path, edit) -> Path:
    results = tmp_path / "edited"
    results.mkdir()
    for name in ("adding.csv", "adding-curves.csv"):
        (results / name).write_bytes((finished / name).read_bytes())
    path = results / "adding.csv"
    path.write_bytes(edit(path.read_bytes()))
    return results


def as_spreadsheet(
    data: bytes, encoding: str = "utf-8", delimiter: str = ";", decimal: str = ","
) -> bytes:
    import csv
    import io

    rows = list(csv.reader(io.StringIO(data.decode())))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    for row in rows:
        writer.writerow(
            [
                v.replace(".", decimal) if v.replace(".", "", 1).replace("e-", "").isdigit() else v
                for v in row
            ]
        )
    return out.getvalue().encode(encoding)


EDITS = {
    "no final line break": lambda data: data.rstrip(b"\r\n"),
    "a stray field in one row": lambda data: data.replace(b"\r\n", b",my note\r\n", 2).replace(
        b",my note", b"", 1
    ),
    "UTF-8 with a byte-order mark, LF line ends": lambda data: (
        codecs.BOM_UTF8 + data.replace(b"\r\n", b"\n")
    ),
    "UTF-16": lambda data: codecs.BOM_UTF16_LE + data.decode().encode("utf-16-le"),
    "semicolons and decimal commas (cp1252)": lambda data: as_spreadsheet(data, "cp1252"),
    "tabs": lambda data: as_spreadsheet(data, "utf-8", "\t", "."),
    "blank lines": lambda data: data.replace(b"\r\n", b"\r\n\r\n"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_edited_results_files_keep_every_row_and_take_new_ones(finished, tmp_path, edit):
    results = edited(finished, tmp_path, EDITS[edit])
    want = rows_of(finished)
    rows = rows_of(results)
    assert list(rows.run_key) == list(want.run_key)
    assert list(rows.test_acc) == pytest.approx(list(want.test_acc), rel=1e-12)
    again = invoke("run", "--cells", "rnn", *TINY, "--seeds", "0,1,2", "--results", results)
    assert again.exit_code == 0, again.output
    assert again.output.count("already has an ok row") == 2  # never retrained
    assert not (results / "adding.csv.torn").exists()
    rows = rows_of(results)
    assert len(rows) == 3 and rows.run_key.is_unique and list(rows.seed) == [0, 1, 2]
    report = invoke("report", "--results", results, "--out", tmp_path / "report")
    assert report.exit_code == 0, report.output
    assert "| 3 |" in report.output  # the report sees the same three rows as run


def test_a_field_beyond_the_header_never_moves_into_a_column(finished, tmp_path):
    def old_header_and_a_note(data: bytes) -> bytes:
        import csv
        import io

        rows = list(csv.reader(io.StringIO(data.decode())))
        drop = rows[0].index("impl")  # as an older version, without that column, wrote it
        rows = [row[:drop] + row[drop + 1 :] for row in rows]
        rows[1].append("my note")
        out = io.StringIO()
        csv.writer(out).writerows(rows)
        return out.getvalue().encode()

    results = edited(finished, tmp_path, old_header_and_a_note)
    assert (
        invoke("run", "--cells", "rnn", *TINY, "--seeds", "2", "--results", results).exit_code == 0
    )
    rows = rows_of(results)
    assert (
        len(rows) == 3 and "my note" not in set(rows.impl.astype(str)) and rows.impl.iloc[0] == ""
    )


def test_a_foreign_csv_under_the_tasks_name_is_refused(tmp_path):
    (tmp_path / "adding.csv").write_text("name,score\nalice,3\n")
    out = invoke("run", "--cells", "rnn", *TINY, "--results", tmp_path)
    assert (
        out.exit_code == 2
        and "not an rnnbench results file" in out.output
        and "Traceback" not in out.output
    )
    assert (tmp_path / "adding.csv").read_text() == "name,score\nalice,3\n"
    assert not (tmp_path / "adding-curves.csv").exists()


def test_an_unreadable_row_is_named_by_file_and_line(finished, tmp_path):
    results = edited(finished, tmp_path, lambda data: data + b'x,"unterminated\r\n')
    out = invoke("run", "--cells", "rnn", *TINY, "--seeds", "0,1", "--results", results)
    assert out.exit_code == 0, out.output
    assert "adding.csv:4" in out.output and out.output.count("already has an ok row") == 2


# --- 10: a lock held by a stopped process ---------------------------------------------------------


@pytest.mark.slow
def test_a_lock_held_by_a_stopped_process_is_named_and_given_up_on_keeping_the_checkpoint(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
import time, pathlib
from rnnbench.store import claims
with claims.folder_lock(pathlib.Path({str(tmp_path / ".adding.lock")!r}), "test"):
    print("held", flush=True)
    time.sleep(600)
""",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    holder.send_signal(signal.SIGSTOP)  # Ctrl-Z
    try:
        code, output = finish(
            rnnbench(
                "run", "--cells", "rnn", *TINY, "--results", tmp_path, RNNBENCH_LOCK_TIMEOUT_S=3
            )
        )
        assert code == 1, output
        assert f"held by process {holder.pid}" in output and "gave up after" in output
        assert "checkpoint is kept" in output and "Traceback" not in output
        assert list((tmp_path / "checkpoints").glob("*.pt"))
    finally:
        holder.kill()
        holder.wait()
    code, output = finish(rnnbench("run", "--cells", "rnn", *TINY, "--results", tmp_path))
    assert code == 0 and "resuming from step 12" in output, output
    assert_each_run_once(tmp_path, 1)


# --- 13: job files only the user can write --------------------------------------------------------


def test_a_job_folder_others_can_write_is_refused_before_anything_runs(tmp_path):
    folder = tmp_path / f"logs-{__import__('getpass').getuser()}"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    out = invoke("run", "--cells", "rnn", *TINY, "--results", tmp_path, "--executor", "local")
    assert out.exit_code == 1 and "can be written by others" in out.output, out.output
    assert not (tmp_path / "adding.csv").exists()


def test_a_job_refuses_job_files_others_could_have_written(tmp_path):
    """A pickle planted in a job folder that others can write is never loaded."""
    import pickle

    marker = tmp_path / "ran"
    job = tmp_path / "logs" / "123"
    job.mkdir(parents=True)
    planted = pickle.dumps(eval, protocol=2)  # (any pickle: it must not even be opened)
    (job / "123_submitted.pkl").write_bytes(planted)
    job.chmod(0o777)
    env = {
        **os.environ,
        "SUBMITIT_EXECUTOR": "local",
        "SUBMITIT_LOCAL_JOB_ID": "123",
        "SUBMITIT_LOCAL_GLOBALID": "0",
        "SUBMITIT_LOCAL_LOCALID": "0",
        "SUBMITIT_LOCAL_NODEID": "0",
        "SUBMITIT_LOCAL_JOB_NUM_NODES": "1",
        "SUBMITIT_LOCAL_NTASKS": "1",
    }
    import rnnbench

    script = Path(rnnbench.__file__).with_name("_job.py")
    out = subprocess.run(
        [
            sys.executable,
            "-u",
            str(script),
            "-u",
            "-m",
            "submitit.core._submit",
            str(tmp_path / "logs" / "%j"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "can be written by others" in out.stderr, out.stderr
    assert not marker.exists() and not (job / "123_0_result.pkl").exists()


# --- errors that happen before training -----------------------------------------------------------


def test_an_unwritable_results_folder_is_a_clear_error_that_promises_nothing(tmp_path):
    (tmp_path / "file").write_text("")
    out = invoke("run", "--cells", "rnn", *TINY, "--results", tmp_path / "file" / "results")
    assert out.exit_code == 1 and "Traceback" not in out.output, out.output
    assert "checkpoint" not in out.output


# --- the soak: overlapping sweeps, killed and restarted, on one folder ----------------------------

SOAK_COMMANDS = [
    ["--cells", "slow,rnn", "--seeds", "0,1"],
    ["--cells", "rnn,gru", "--seeds", "1,2"],
    # (as many jobs as cores: one thread each, as the inline commands get with OMP_NUM_THREADS=1)
    [
        "--cells",
        "slow,gru",
        "--seeds",
        "0,1,2",
        "--executor",
        "local",
        "--jobs",
        str(os.cpu_count() or 1),
    ],
]


@pytest.mark.slow
def test_overlapping_sweeps_killed_at_random_train_every_run_once(tmp_path, request):
    rounds = 20 if request.config.getoption("--soak") else 1
    rng = random.Random(12)
    expected = {
        (cell, seed)
        for command in SOAK_COMMANDS
        for cell in command[1].split(",")
        for seed in map(int, command[3].split(","))
    }
    summary = []
    for round_ in range(rounds):
        results = tmp_path / f"round-{round_}"
        args = [*TINY, "--steps", "30", "--eval-every", "5", "--results", results]
        # (one thread each, as the local executor's 2 jobs have on 2 cores:
        # the same runs, the same keys)
        processes = [
            rnnbench("run", *command, *args, RNNBENCH_SLOW_S=0.05, OMP_NUM_THREADS=1)
            for command in SOAK_COMMANDS
        ]
        killed = rng.sample(range(3), 2)
        time.sleep(rng.uniform(2.5, 6.0))
        for i in killed:
            if rng.random() < 0.3:
                os.killpg(processes[i].pid, signal.SIGKILL)
            else:
                processes[i].send_signal(signal.SIGKILL)
        for i, process in enumerate(processes):
            code, output = finish(process)
            assert code in (0, -signal.SIGKILL) if i in killed else code == 0, output
        for i in killed:  # restarted
            code, output = finish(
                rnnbench("run", *SOAK_COMMANDS[i], *args, RNNBENCH_SLOW_S=0.05, OMP_NUM_THREADS=1)
            )
            assert code == 0, output
        rows = assert_each_run_once(results, len(expected))
        assert {(c, int(s)) for c, s in zip(rows.cell_spec, rows.seed, strict=True)} == expected
        for _ in range(50):  # (workers of a killed local parent stop within a second or so)
            if not [
                p
                for p in psutil.process_iter(["cmdline"])
                if str(results) in " ".join(p.info["cmdline"] or [])
            ]:
                break
            time.sleep(0.2)
        summary.append(len(rows))
    print(
        f"\n{rounds} rounds of 3 overlapping sweeps, 2 killed and restarted each: {summary} rows,"
        " each run once"
    )
