"""One run in a fresh child process, so that what it measures belongs to it alone.

On CPU a run's `peak_mem_mb` is its process's peak resident set; in a sweep of several runs in one
process, each run inherited what earlier runs left (allocator arenas, caches, anything a cell kept),
so the same LSTM measured 1.0, 2.1 or 5.4 GB depending on what ran before it. Each planned run of an
inline sweep therefore trains in a child process of its own: the parent plans and holds the run's
claim and the planned data (shared, not copied), the child trains and appends the row; its output is
streamed through the parent. Children are forked from a server process that imported torch once and
never ran a computation (multiprocessing's "forkserver"), so starting one costs tens of
milliseconds, not the seconds of a fresh interpreter, and no OpenMP state is inherited.

Ctrl-C stops both (the run resumes from its checkpoint next time); a child that dies without
writing its row (killed by the kernel for memory, say) gets a `failed` row written by the parent.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from typing import Any

from rnnbench import logs
from rnnbench.planned import PlannedRun, load_plugins
from rnnbench.store import claims


def _context():
    import torch.multiprocessing  # noqa: F401 - registers the pickling of tensors through shared memory

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # Everything a run imports, imported once in the server: torch takes a second or two, and
        # its optimizers import torch._dynamo on first use, which takes as long again.
        context.set_forkserver_preload(
            ["rnnbench.runner", "rnnbench.cells", "rnnbench.tasks", "torch._dynamo"]
        )
        return context
    return multiprocessing.get_context("spawn")


def _main(
    run: PlannedRun, splits: Any, owned: claims.Owned, connection, parent: dict[str, Any]
) -> None:
    """The child: train `run` under the parent's claim, sending its log records (Python's warnings
    among them) and the row back."""
    import torch

    from rnnbench.runner import run_planned

    def send(record: tuple[str, int, str]) -> None:
        try:
            connection.send(("log", record))
        except OSError:  # the parent is gone: stop as Ctrl-C would, writing nothing
            raise KeyboardInterrupt(f"the sweep's process {parent['pid']} is gone") from None

    logs.forward(send)
    claims.die_with(parent)
    torch.set_num_threads(run.threads)
    try:
        load_plugins(run.plugins)
        connection.send(("row", run_planned(run, splits, owned)))
    except KeyboardInterrupt:
        pass  # (the parent was interrupted too, and says so)
    except BaseException as error:  # noqa: BLE001 - the parent raises it, as if it had trained the run itself
        try:
            connection.send(("error", error))
        except OSError:
            pass


def run_in_child(run: PlannedRun, claim: claims.Claim, splits: Any) -> dict[str, Any]:
    """Train `run` in a child process while this one holds its `claim`; returns its row. The
    child's log records are logged again here, unchanged (logs.emit)."""
    from rnnbench.runner import failure, write_row

    context = _context()
    receive, send = context.Pipe(duplex=False)
    # The planned data goes along: torch.multiprocessing moves its tensors to shared memory, so
    # the child neither copies nor loads it again (and trains on exactly what was planned).
    process = context.Process(
        target=_main,
        args=(run, splits, claim.observer(), send, claims.whoami()),
        name=f"rnnbench {run.describe()}",
    )
    process.start()
    send.close()
    row, error = None, None
    try:
        while True:
            try:
                kind, payload = receive.recv()
            except EOFError:  # the child has ended, or closed its end
                break
            if kind == "log":
                logs.emit(payload)
            elif kind == "row":
                row = payload
            else:
                error = payload
        process.join()
    except BaseException:  # Ctrl-C or SIGTERM here: the child stops too, its checkpoint stays
        process.terminate()
        process.join(30)
        raise
    finally:
        receive.close()
    if error is not None:
        raise error
    if row is None:
        code = process.exitcode
        how = (
            f"was killed by signal {signal.Signals(-code).name}"
            if code is not None and code < 0
            else f"exited with code {code}"
        )
        hint = (
            " (SIGKILL: often the kernel's out-of-memory killer; lower --batch-size or --hidden)"
            if code == -signal.SIGKILL
            else ""
        )
        claim.check()
        row = write_row(
            run,
            failure(f"the process training this run {how} before writing its row{hint}"),
            splits,
            claim,
        )
    sys.stderr.flush()
    return row
