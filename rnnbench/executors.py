"""Where the planned runs of a sweep train, each exactly once whoever else uses the folder:
`inline` (one after another, each in a child process of this one), `local` (parallel processes on
this machine) and `slurm` (one SLURM job array per sweep), the last two through submitit.

`execute` runs planned runs in this process's care: each run is *claimed* before it trains
(claims.take), so a second command on the same folder, or a job of another node, never trains it
at the same time; runs claimed by others are left for later and waited on, with a message, until
their row appears or their claim goes stale (then this process takes them over). No scheduling of
our own: SLURM schedules, submitit submits, and each job trains one run with `execute`, which
appends the run's row to the results file under its lock, like any other process.

A submitted sweep is recorded in `RESULTS/sweeps/ID.json` (its jobs and their run keys), so that
`rnnbench status` can say which runs are done, running or lost; job files and logs go to
`RESULTS/logs-USER/JOBID/`, a folder only the user can write (job files are pickles). The results
folder must be on a filesystem that the nodes share. Each job claims its run (execute), so a
run submitted twice, or also started inline elsewhere, still trains once.

Waiting uses `squeue` and the results file, never `sacct`: a cluster without an accounting
database still works, and a job that was killed before writing its row shows as `lost`.
"""

from __future__ import annotations

import abc
import datetime
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import submitit

from rnnbench import checkpoints, child, store
from rnnbench.planned import DataBySeed, PlannedRun, load_plugins
from rnnbench.runner import run_planned
from rnnbench.store import claims, layout

EXECUTORS = ("inline", "local", "slurm")

log = logging.getLogger(__name__)


def _tidy_checkpoints(run: PlannedRun, rows: Any) -> None:
    """With the run's claim held: remove what no writer will use any more, that is temporary files
    of writers that died, and a checkpoint whose run already has its row (a kill between the row
    and the removal, or --keep-checkpoints before --force)."""
    for temporary in run.checkpoint.parent.glob(f"{run.checkpoint.name}.*.tmp"):
        temporary.unlink(missing_ok=True)
    if not run.checkpoint.exists():
        return
    try:
        run_id = checkpoints.read(run.checkpoint)["progress"]["run_id"]
    except Exception:  # noqa: BLE001 - an unreadable checkpoint is the runner's to refuse, with a warning
        return
    done = rows[(rows["run_id"] == run_id) & rows["status"].isin(store.DONE)]
    if len(done) and not (run.keep_checkpoints and not run.superseded):
        run.checkpoint.unlink(missing_ok=True)
        log.info(f"removed {run.checkpoint}: its run {run_id} already has its row")


def execute(
    runs: list[PlannedRun],
    data: DataBySeed | None = None,
    poll_s: float = 2.0,
    isolate: bool = True,
) -> list[dict[str, Any]]:
    """Run each planned run once, unless it is done or claimed by another; returns the row of
    every run (its latest ok row if it was done already), in plan order. With `isolate`, each run
    trains in a fresh child process (child.run_in_child), so that its memory and clocks are its own;
    else in this process."""
    rows_by_key: dict[str, dict[str, Any]] = {}
    pending, told = list(runs), set()
    # Rows that exist now. A row written later by the process this one waited for is that run's
    # outcome, whatever its status: a run that failed there is not tried again here at once.
    known = {
        task: set(store.read_rows(results, task)["run_id"])
        for task, results in {(run.task, run.results) for run in runs}
    }
    while pending:
        progressed = False
        for run in list(pending):
            existing = store.read_rows(run.results, run.task)
            row = store.finished(existing, run.key, run.superseded)
            if row is None and run.key in told:
                theirs = existing[
                    (existing["run_key"] == run.key) & ~existing["run_id"].isin(known[run.task])
                ]
                row = theirs.iloc[-1].to_dict() if len(theirs) else None
            if row is None:
                claim = claims.take(run.results, run.name)
                if isinstance(claim, claims.Held):
                    if run.key not in told:
                        log.info(
                            f"{run.describe()} is being trained by {claim.describe()}: "
                            "waiting for its row"
                        )
                        told.add(run.key)
                    continue
                with claim:
                    existing = store.read_rows(
                        run.results, run.task
                    )  # (it may have finished meanwhile)
                    row = store.finished(existing, run.key, run.superseded)
                    _tidy_checkpoints(run, existing)
                    if row is None and isolate:
                        row = child.run_in_child(
                            run, claim, data[run.config.seed] if data else None
                        )
                    elif row is None:
                        row = run_planned(run, data[run.config.seed] if data else None, claim)
                    else:
                        log.info(f"{run.describe()}: finished by another process")
            elif run.key in told:
                log.info(f"{run.describe()}: ended in another process, {row['status']}")
            else:
                log.info(store.skip_message(run.describe(), row))
                if run.checkpoint.exists():
                    claim = claims.take(run.results, run.name)
                    if isinstance(claim, claims.Claim):
                        with claim:
                            _tidy_checkpoints(run, existing)
            rows_by_key[run.key] = row
            pending.remove(run)
            progressed = True
        if pending and not progressed:
            sys.stderr.flush()
            time.sleep(poll_s)
    return [rows_by_key[run.key] for run in runs]


class Executor(abc.ABC):
    """Where the planned runs of a sweep train: `Inline` (here), `Local` or `Slurm`. The planner
    asks `threads` (torch threads per run, which a CPU run's key holds) and `runs_at_once` (runs
    sharing this machine, for the memory check; 0 for runs that go elsewhere)."""

    threads: int | None = None  # None: this process's
    runs_at_once: int = 1

    @abc.abstractmethod
    def run(self, runs: list[PlannedRun], data: DataBySeed) -> list[dict] | None:
        """Run (or submit) the runs; the rows of those that have one, or None when the runs were
        submitted and not waited for."""

    def complete(self, runs: list[PlannedRun], rows: list[dict]) -> bool:
        """Whether every run of the sweep ended with a row."""
        return len(rows) == len(runs)


@dataclass
class Inline(Executor):
    """One run after another, each in a child process of its own (`isolate`), or in this one."""

    isolate: bool = True

    def run(self, runs: list[PlannedRun], data: DataBySeed) -> list[dict]:
        return execute(runs, data, isolate=self.isolate)


@dataclass(frozen=True)
class SlurmOptions:
    """What a sweep's job array asks SLURM for (None: the cluster's default)."""

    partition: str | None = None
    time_min: int = 24 * 60  # per job; a job that reaches it is requeued and resumes
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None  # e.g. 16G
    account: str | None = None
    qos: str | None = None
    array_parallelism: int | None = None  # at most this many runs at once
    sbatch: dict[str, str] = field(default_factory=dict)  # any other #SBATCH option, without "--"

    def parameters(self) -> dict[str, Any]:
        """submitit's SlurmExecutor parameters."""
        chosen = {
            "partition": self.partition,
            "gpus_per_task": self.gpus_per_task,
            "cpus_per_task": self.cpus_per_task,
            "mem": self.mem,
            "account": self.account,
            "qos": self.qos,
            "array_parallelism": self.array_parallelism,
        }
        return {
            "job_name": "rnnbench",
            "time": self.time_min,
            "additional_parameters": dict(self.sbatch),
            **{k: v for k, v in chosen.items() if v is not None},
        }


class RunJob(submitit.helpers.Checkpointable):
    """What a job runs: one planned run, through execute (so it is claimed like any other
    run). When SLURM preempts the job or its time limit comes, submitit calls `checkpoint`
    (inherited: resubmit the same call) and requeues the job; the run then resumes from its own
    checkpoint file, written at every evaluation."""

    def __call__(self, run: PlannedRun, package: str, parent: dict | None = None) -> str:
        import torch

        import rnnbench
        from rnnbench import logs

        here = str(Path(rnnbench.__file__).resolve())
        if here != package:
            raise RuntimeError(
                f"this job imported rnnbench from {here}, not {package} as the submitting process "
                "did; run the job with the same Python environment"
            )
        logs.to_stream(sys.stdout)  # (the job's own log file, as its lines always went)
        load_plugins(run.plugins)
        if parent is not None:
            claims.die_with(parent)
        torch.set_num_threads(run.threads)  # the job's share of the node, not every core
        return execute([run], isolate=False)[0]["status"]  # (a job is a fresh process already)


def job_folder(results: Path) -> Path:
    """Where this user's job files go: `RESULTS/logs-USER`, readable and writable by the user
    only. submitit's job files are pickles, and loading a pickle runs code: anyone who could write
    there could run code as the user. Created if missing; refused if someone else could write it."""
    folder = layout.job_folder(results)
    if not folder.exists():
        results.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
    check_private(folder)
    return folder


def check_private(path: Path) -> None:
    """PermissionError unless `path` is this user's and nobody else can write it (no symlink)."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise PermissionError(
            f"{path} is a symbolic link; job files are only read from a real folder"
        )
    if info.st_uid != os.geteuid():
        raise PermissionError(
            f"{path} belongs to user id {info.st_uid}, not to you ({os.geteuid()}): its job files "
            "are pickles that run code when loaded; use another --results folder"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(
            f"{path} can be written by others (mode {stat.S_IMODE(info.st_mode):o}): its job files "
            f"are pickles that run code when loaded; `chmod go-w {path}` or use another folder"
        )


def _executor_python() -> str:
    """The command submitit runs jobs with: this interpreter on rnnbench/_job.py, which checks
    the job folder before submitit loads anything from it, and imports exactly this rnnbench
    (a script's folder, not the working directory, starts sys.path)."""
    import shlex

    return (
        f"{shlex.quote(sys.executable)} -u {shlex.quote(str(Path(__file__).with_name('_job.py')))}"
    )


def parse_sbatch_options(items: tuple[str, ...]) -> dict[str, str]:
    """--sbatch KEY=VALUE (or a bare KEY for a flag) -> {KEY: VALUE}."""
    options = {}
    for item in items:
        key, sep, value = item.removeprefix("--").partition("=")
        if not key:
            raise ValueError(
                f"--sbatch takes KEY=VALUE (an sbatch option without its dashes); got {item!r}"
            )
        options[key] = value if sep else True
    return options


def _record(
    results: Path,
    sweep_id: str,
    executor: str,
    jobs: list[tuple[str, PlannedRun]],
    logs: Path,
    extra: dict[str, Any] | None = None,
) -> Path:
    path = layout.sweep_record(results, sweep_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "sweep": sweep_id,
        "executor": executor,
        "logs": str(logs),
        "submitted": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "task": jobs[0][1].task if jobs else "",
        "task_spec": jobs[0][1].task_spec if jobs else "",
        **(extra or {}),
        "jobs": [
            {"job_id": job_id, "run_key": run.key, "run": run.describe()} for job_id, run in jobs
        ],
    }
    claims.write_atomically(path, (json.dumps(document, indent=1) + "\n").encode())
    return path


def local_threads(jobs: int) -> int:
    """Each of `jobs` parallel local processes gets its share of the cores."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run_local(runs: list[PlannedRun], jobs: int, results: Path, poll_s: float = 0.5) -> Path:
    """Run `runs` in parallel processes on this machine, at most `jobs` at once, each with its share
    of the CPU cores (planned with local_threads(jobs)); returns when all are over. Returns the
    sweep record. The processes end with this one, however it ends (Ctrl-C, SIGTERM or SIGKILL)."""
    import rnnbench

    logs = job_folder(results)
    executor = submitit.LocalExecutor(folder=logs / "%j", python=_executor_python())
    executor.update_parameters(timeout_min=60 * 24 * 365)  # submitit's local default is 2 minutes
    package = str(Path(rnnbench.__file__).resolve())
    me = claims.whoami()
    waiting, running, submitted = list(runs), [], []
    sweep_id = "local-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                run = waiting.pop(0)
                job = executor.submit(RunJob(), run, package, me)
                log.info(
                    f"started {run.describe()} (process {job.job_id}, log {logs / job.job_id})"
                )
                running.append((job, run))
                submitted.append((job.job_id, run))
            time.sleep(poll_s)
            for job, run in [item for item in running if item[0].done()]:
                running.remove((job, run))
                try:
                    check_private(logs / job.job_id)
                    job.result()
                except Exception as error:  # noqa: BLE001 - the row (if any) says what happened
                    log.info(
                        f"{run.describe()}: the process ended with {type(error).__name__}: "
                        f"{error}; see {logs / job.job_id}"
                    )
    except BaseException:  # Ctrl-C, SIGTERM: stop the runs now, they resume from their checkpoints
        for job, _ in running:
            job.cancel(check=False)
        raise
    return _record(results, sweep_id, "local", submitted, logs)


def submit_slurm(
    runs: list[PlannedRun], options: SlurmOptions, results: Path
) -> tuple[Path, list[str]]:
    """Submit `runs` as one SLURM job array (one run per array task); returns the sweep record
    and the job ids. Uses submitit's SlurmExecutor itself, never auto-detection (which picks
    SLURM whenever `sbatch` is on the PATH, even with no controller)."""
    import rnnbench

    if shutil.which("sbatch") is None:
        raise RuntimeError(
            "--executor slurm needs SLURM's sbatch on the PATH; run on the cluster's login node"
        )
    logs = job_folder(results)
    executor = submitit.SlurmExecutor(
        folder=logs / "%j", max_num_timeout=20, python=_executor_python()
    )
    parameters = options.parameters()
    # Jobs start in the private job folder, never in a working directory whose files could shadow
    # ours.
    parameters["additional_parameters"] = {
        "chdir": str(logs),
        **parameters["additional_parameters"],
    }
    executor.update_parameters(**parameters)
    package = str(Path(rnnbench.__file__).resolve())
    jobs = executor.map_array(RunJob(), runs, [package] * len(runs), [None] * len(runs))
    ids = [job.job_id for job in jobs]
    array_id = ids[0].split("_")[0]
    path = _record(
        results,
        array_id,
        "slurm",
        list(zip(ids, runs, strict=True)),
        logs,
        {"options": asdict(options)},
    )
    log.info(
        f"submitted {len(ids)} runs as SLURM job array {array_id}; logs in {logs}/{array_id}_*; "
        f"`rnnbench status --results {results}` shows their state"
    )
    return path, ids


def queue_states(job_ids: list[str]) -> dict[str, str]:
    """The state (PENDING, RUNNING...) of each of the jobs that SLURM still has in its queue."""
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    out = subprocess.run(
        ["squeue", "--noheader", "--array", "--jobs", ",".join(arrays), "--format", "%i %T"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        raise RuntimeError(f"squeue failed: {out.stderr.strip()}")
    states = dict(line.split() for line in out.stdout.splitlines() if line.strip())
    return {job_id: states[job_id] for job_id in job_ids if job_id in states}


def wait_slurm(job_ids: list[str], poll_s: float = 2.0, timeout_s: float | None = None) -> None:
    """Return when none of the jobs is in SLURM's queue any more."""
    start, last = time.monotonic(), None
    while True:
        states = queue_states(job_ids)
        if not states:
            return
        summary = ", ".join(
            f"{n} {state.lower()}" for state, n in sorted(Counter(states.values()).items())
        )
        if summary != last:
            log.info(f"waiting for {len(states)} of {len(job_ids)} jobs: {summary}")
            last = summary
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"jobs still queued after {timeout_s:.0f} s: {summary}")
        time.sleep(poll_s)


def sweep_status(path: Path) -> list[dict[str, str]]:
    """Each job of a recorded sweep with its state: the status of its row (ok, diverged, failed),
    else its state in SLURM's queue (pending, running...), else `lost` (killed or cancelled
    before it wrote a row: submitting the sweep again runs it)."""
    document = json.loads(path.read_text())
    rows = store.read_rows(layout.results_of_record(path), document["task"])
    latest = store.latest(rows).set_index("run_key")["status"] if len(rows) else {}
    ids = [job["job_id"] for job in document["jobs"]]
    queued = queue_states(ids) if document["executor"] == "slurm" and shutil.which("squeue") else {}
    table = []
    for job in document["jobs"]:
        state = latest.get(job["run_key"]) if len(rows) else None
        if not isinstance(state, str):
            state = queued.get(job["job_id"], "lost").lower()
        table.append({"job": job["job_id"], "run": job["run"], "state": state})
    return table


def latest_sweep(results: Path) -> Path:
    sweeps = layout.sweep_records(results)
    if not sweeps:
        raise FileNotFoundError(
            f"no submitted sweep recorded in {layout.sweeps_folder(results)}; "
            "`rnnbench run --executor local|slurm` records one"
        )
    return sweeps[-1]


class _Elsewhere(Executor):
    """Runs in other processes, which write their rows themselves: runs that already have a row that
    finishes them (store.DONE) are skipped here, the rest go to `_start`; the rows are read back
    from the results file."""

    def run(self, runs: list[PlannedRun], data: DataBySeed) -> list[dict] | None:
        done = {
            run.key: store.finished(store.read_rows(run.results, run.task), run.key, run.superseded)
            for run in runs
        }
        pending = [run for run in runs if done[run.key] is None]
        for run in runs:
            if run not in pending:
                log.info(store.skip_message(run.describe(), done[run.key]))
        if not runs:
            return []
        results, task = runs[0].results, runs[0].task
        if not pending:
            log.info(
                "nothing to run: every run of this sweep already has an ok row"
                if all(row["status"] == "ok" for row in done.values())
                else "nothing to run: every run of this sweep already has its row"
            )
            return store.latest_of(results, task, [run.key for run in runs])
        if not self._start(pending, results):
            return None
        rows = store.latest_of(results, task, [run.key for run in runs])
        missing = len(runs) - len(rows)
        if missing:
            log.info(
                f"{missing} of {len(runs)} runs wrote no row (killed or cancelled); run the same "
                "command again to run them, `rnnbench status` to see which"
            )
        return rows

    @abc.abstractmethod
    def _start(self, pending: list[PlannedRun], results: Path) -> bool:
        """Run the pending runs; False if they were only submitted (no rows to wait for)."""


@dataclass
class Local(_Elsewhere):
    """`jobs` parallel processes on this machine (submitit's LocalExecutor), each with its share
    of the cores."""

    jobs: int = 2

    @property
    def threads(self) -> int:
        return local_threads(self.jobs)

    @property
    def runs_at_once(self) -> int:
        return self.jobs

    def _start(self, pending: list[PlannedRun], results: Path) -> bool:
        run_local(pending, self.jobs, results)
        return True


@dataclass
class Slurm(_Elsewhere):
    """One SLURM job array; with `wait`, wait for its jobs. `announce` prints each job id and its
    run (the command's standard output)."""

    options: SlurmOptions = field(default_factory=SlurmOptions)
    wait: bool = False
    announce: Callable[[str], None] = print
    runs_at_once = 0  # (the runs go to the cluster's nodes: not measured here)

    @property
    def threads(self) -> int:
        return self.options.cpus_per_task or 1

    def _start(self, pending: list[PlannedRun], results: Path) -> bool:
        try:
            _, ids = submit_slurm(pending, self.options, results)
        except PermissionError:
            raise
        except Exception as error:  # sbatch refused the job: say why, in its words
            raise SubmissionFailed(f"submission to SLURM failed: {error}") from None
        self.announce(
            "\n".join(
                f"{job_id}  {run.describe()}" for job_id, run in zip(ids, pending, strict=True)
            )
        )
        if not self.wait:
            return False
        wait_slurm(ids)
        return True


class SubmissionFailed(RuntimeError):
    """SLURM refused the sweep's job array; the message says why, in its words."""


def make(
    name: str,
    jobs: int | None = None,
    in_process: bool = False,
    slurm: SlurmOptions | None = None,
    wait: bool = False,
    announce: Callable[[str], None] = print,
) -> Executor:
    """The executor called `name` (inline, local or slurm) with its options."""
    if name == "inline":
        return Inline(isolate=not in_process)
    if name == "local":
        return Local(jobs or 2)
    if name == "slurm":
        return Slurm(slurm or SlurmOptions(), wait, announce)
    raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")


# The executor options of `rnnbench run` and `rnnbench tune`, by parameter name: what from_options
# takes.
EXECUTOR_OPTIONS = (
    "executor",
    "jobs",
    "in_process",
    "wait",
    "partition",
    "time_min",
    "gpus_per_task",
    "cpus_per_task",
    "mem",
    "account",
    "qos",
    "array_parallelism",
    "sbatch_options",
)
# The options that only SLURM uses, with the flag that refusals name.
SLURM_ONLY = {
    "wait": "--wait",
    "partition": "--partition",
    "time_min": "--time",
    "gpus_per_task": "--gpus-per-task",
    "cpus_per_task": "--cpus-per-task",
    "mem": "--mem",
    "account": "--account",
    "qos": "--qos",
    "array_parallelism": "--array-parallelism",
    "sbatch_options": "--sbatch",
}


def _given(value: Any) -> bool:
    return value not in (None, False, ())


def check_options(options: dict[str, Any]) -> None:
    """Refuse an option that the chosen executor would ignore (ValueError naming its flag), so that
    no option is silently dropped: `check_options({"executor": "inline", "jobs": 4})` raises
    "--jobs applies to --executor local; got --executor inline". Missing keys: not given."""
    executor = options.get("executor", "inline")
    given = [flag for name, flag in SLURM_ONLY.items() if _given(options.get(name))]
    if executor != "slurm" and given:
        raise ValueError(f"{given[0]} applies to --executor slurm; got --executor {executor}")
    if executor != "local" and options.get("jobs") is not None:
        raise ValueError(f"--jobs applies to --executor local; got --executor {executor}")
    if executor != "inline" and options.get("in_process"):
        raise ValueError(f"--in-process applies to --executor inline; got --executor {executor}")


def from_options(
    options: dict[str, Any], wait: bool | None = None, announce: Callable[[str], None] = print
) -> Executor:
    """The executor that the command line's options name (parameter name -> value, as in
    EXECUTOR_OPTIONS; missing keys: not given), after check_options. `wait`: forced on or off
    (a study must wait for its trials), else --wait's.

    >>> from_options({"executor": "local", "jobs": 4}).runs_at_once
    4
    """
    check_options(options)
    executor, get = options.get("executor", "inline"), options.get
    slurm = None
    if executor == "slurm":
        slurm = SlurmOptions(
            get("partition"),
            get("time_min") or 24 * 60,
            get("gpus_per_task"),
            get("cpus_per_task"),
            get("mem"),
            get("account"),
            get("qos"),
            get("array_parallelism"),
            parse_sbatch_options(get("sbatch_options") or ()),
        )
    return make(
        executor,
        get("jobs"),
        bool(get("in_process")),
        slurm,
        bool(get("wait")) if wait is None else wait,
        announce=announce,
    )
