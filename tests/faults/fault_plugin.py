"""Loaded into `rnnbench run` by the fault tests (`--plugin fault_plugin`): kills the process with
SIGKILL at an exact point, chosen by $RNNBENCH_FAULT = "WHERE:N" (the N-th time WHERE is reached):

  checkpoint  halfway through writing the N-th checkpoint's temporary file
  row         halfway through writing the N-th result row (a torn row in the CSV)
  curves      after the N-th run's curves are written, before its row
  afterrow    after the N-th run's row is written, before its checkpoint is removed

It also registers cells for tests, each torch's tanh RNN with one twist:
  slow  sleeps $RNNBENCH_SLOW_S seconds in every forward pass, so that runs last long enough to
        overlap, however fast the machine;
  lazy  sleeps $RNNBENCH_LAZY_S seconds in its first forward pass in a process, as a kernel that
        compiles on first use does;
  hog   keeps $RNNBENCH_HOG_MB MiB of memory alive for the rest of its process after its first
        forward pass, as a cache or a leak would.
Nothing here changes what rnnbench does when no fault is due. A fault that fires first appends
"WHERE:N" to the file $RNNBENCH_FAULT_FIRED names (where set), so that a test can tell a kill by
its fault from a process that died of something else, or a fault that never fired (a renamed
function this plugin no longer reaches) from a kill that did no harm.
"""

import atexit
import json
import os
import signal
import tempfile
import time
import types
import uuid
from pathlib import Path

import torch
from torch import nn

from rnnbench import register_cell, runner, store
from rnnbench.store import csvfile

WHERE, _, COUNT = os.environ.get("RNNBENCH_FAULT", ":0").partition(":")
COUNT = int(COUNT or 0)
# The process the test started ("the sweep"): runs train in child processes of it, and a fault
# kills the sweep, children included, as a kill from outside would. Counts are the sweep's.
# The counts file is the sweep's own (a later sweep with the same pid starts from zero), named
# once by the sweep for its children, and removed when the sweep ends however it ends but a kill.
if "RNNBENCH_FAULT_ROOT" not in os.environ:
    os.environ["RNNBENCH_FAULT_ROOT"] = str(os.getpid())
    os.environ["RNNBENCH_FAULT_COUNTS"] = str(
        Path(tempfile.gettempdir()) / f"rnnbench-fault-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    )
    atexit.register(lambda: Path(os.environ["RNNBENCH_FAULT_COUNTS"]).unlink(missing_ok=True))
ROOT = int(os.environ["RNNBENCH_FAULT_ROOT"])
COUNTS = Path(os.environ["RNNBENCH_FAULT_COUNTS"])


FIRED = os.environ.get("RNNBENCH_FAULT_FIRED", "")


def _due(where: str) -> bool:
    if not WHERE:
        return False
    calls = json.loads(COUNTS.read_text()) if COUNTS.exists() else {}
    calls[where] = calls.get(where, 0) + 1
    COUNTS.write_text(json.dumps(calls))
    due = where == WHERE and calls[where] == COUNT
    if due and FIRED:
        with open(FIRED, "a") as log:  # (before the kill: what is written here survives it)
            log.write(f"{where}:{COUNT}\n")
    return due


def _die() -> None:
    COUNTS.unlink(missing_ok=True)
    if ROOT != os.getpid():
        os.kill(ROOT, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


_save_checkpoint = runner.save_checkpoint


def save_checkpoint(path, state):
    if _due("checkpoint"):
        scratch = path.with_name(path.name + ".fault")
        _save_checkpoint(scratch, state)  # what the new checkpoint would hold...
        data = scratch.read_bytes()
        scratch.unlink()
        with open(
            path.with_name(f"{path.name}.{os.getpid()}.tmp"), "wb"
        ) as f:  # ...half of it, in a temporary file
            f.write(data[: len(data) // 2])
        _die()
    _save_checkpoint(path, state)


def _write_half_then_die(fd, data):
    os.write(fd, data[: len(data) // 2])
    _die()


_append = csvfile.append


def append(path, columns, rows, *rest):
    if path.name.endswith("-curves.csv"):
        _append(path, columns, rows, *rest)
        if _due("curves"):
            _die()
    elif _due("row"):  # csvfile writes the row with one os.write: this one stops halfway
        csvfile.os = types.SimpleNamespace(**{**vars(os), "write": _write_half_then_die})
        _append(path, columns, rows, *rest)
    else:
        _append(path, columns, rows, *rest)


_append_run = store.append_run


def append_run(*args, **kwargs):
    _append_run(*args, **kwargs)
    if _due("afterrow"):
        _die()


class Twisted(nn.Module):
    kept = []  # what `hog` keeps alive, for the whole process

    def __init__(self, input_size, hidden_size, twist):
        super().__init__()
        self.rnn, self.output_size, self.twist = (
            nn.RNN(input_size, hidden_size, batch_first=True),
            hidden_size,
            twist,
        )

    def forward(self, x):
        if self.twist == "slow":
            time.sleep(float(os.environ.get("RNNBENCH_SLOW_S", "0")))
        elif self.twist == "lazy" and not Twisted.kept:
            Twisted.kept.append(None)
            time.sleep(float(os.environ.get("RNNBENCH_LAZY_S", "0")))
        elif self.twist == "hog" and not Twisted.kept:
            Twisted.kept.append(
                torch.ones(int(os.environ.get("RNNBENCH_HOG_MB", "0")) << 18)
            )  # float32: 4 bytes
        return self.rnn(x)[0]


@register_cell("slow")
def slow(input_size, hidden_size):
    """torch's tanh RNN, sleeping $RNNBENCH_SLOW_S seconds per forward pass (for tests)."""
    return Twisted(input_size, hidden_size, "slow")


@register_cell("lazy")
def lazy(input_size, hidden_size):
    """torch's tanh RNN whose first forward pass takes $RNNBENCH_LAZY_S seconds more (for tests)."""
    return Twisted(input_size, hidden_size, "lazy")


@register_cell("hog")
def hog(input_size, hidden_size):
    """torch's tanh RNN that keeps $RNNBENCH_HOG_MB MiB alive after its first pass (for tests)."""
    return Twisted(input_size, hidden_size, "hog")


runner.save_checkpoint = save_checkpoint
csvfile.append = append
store.append_run = append_run
