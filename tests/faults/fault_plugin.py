"""Loaded into `rnnbench run` by the fault tests (`--plugin fault_plugin`): kills the process with
SIGKILL at an exact point, chosen by $RNNBENCH_FAULT = "WHERE:N" (the N-th time WHERE is reached):

  checkpoint  halfway through writing the N-th checkpoint's temporary file
  row         halfway through writing the N-th result row (a torn row in the CSV)
  curves      after the N-th run's curves are written, before its row

Nothing here changes what rnnbench does when no fault is due.
"""

import os
import signal
import types

from rnnbench import records, runner

WHERE, _, COUNT = os.environ.get("RNNBENCH_FAULT", ":0").partition(":")
COUNT = int(COUNT or 0)
calls = {"checkpoint": 0, "row": 0, "curves": 0}


def _due(where: str) -> bool:
    calls[where] += 1
    return where == WHERE and calls[where] == COUNT


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


_save_checkpoint = runner._save_checkpoint


def save_checkpoint(path, *args):
    if _due("checkpoint"):
        scratch = path.with_name(path.name + ".fault")
        _save_checkpoint(scratch, *args)  # what the new checkpoint would hold...
        data = scratch.read_bytes()
        scratch.unlink()
        with open(path.with_name(path.name + ".tmp"), "wb") as f:  # ...half of it, in the temporary file
            f.write(data[: len(data) // 2])
        _die()
    _save_checkpoint(path, *args)


def _write_half_then_die(fd, data):
    os.write(fd, data[: len(data) // 2])
    _die()


_append = records._append


def append(path, columns, rows):
    if path.name.endswith("-curves.csv"):
        _append(path, columns, rows)
        if _due("curves"):
            _die()
    elif _due("row"):  # records writes the row with one os.write: this one stops halfway
        records.os = types.SimpleNamespace(**{**vars(os), "write": _write_half_then_die})
        _append(path, columns, rows)
    else:
        _append(path, columns, rows)


runner._save_checkpoint = save_checkpoint
records._append = append
