"""What rnnbench needs from Optuna beyond its public API, in one place (rnnbench.tune uses it).

A study's trials train in other processes, maybe on other nodes, and report to the study through
its journal file: that needs a trial opened by its number, an error attached to a trial, and two
errors told apart from others. Optuna offers none of these publicly, so each function below says
which private part it uses. Tested with Optuna 5.1 (pyproject.toml caps the version below the next
minor release; 4.0 is the first with JournalFileBackend); after an upgrade,
tests/test_optuna_shim.py says whether these still hold.

Optuna is imported inside each function: the CLI starts without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class AlreadyTold(ValueError):
    """Another process of the study told this trial's outcome first. (A ValueError, as Optuna's
    own is, so that a caller that does not expect it fails as it did without this module.)"""


def storage(path: Path) -> Any:
    """The journal storage of a study's file, its folder created: every process of a study opens
    the same file. (Public API, but where it lives changed in Optuna 4.0: JournalFileBackend.)

    >>> import tempfile
    >>> storage(Path(tempfile.mkdtemp()) / "studies" / "s.journal").get_all_studies()
    []
    """
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def open_trial(study: Any, number: int) -> tuple[Any, dict[int, float]]:
    """The running trial `number` of `study`, opened to report to and ask whether to prune (a run
    in another process reports its own validation curve), and the values it has reported already
    (step -> value). Private: `study._storage`, and `optuna.Trial(study, trial_id)` (Optuna has
    no public way to open a running trial by its number)."""
    import optuna

    store = study._storage
    trial_id = store.get_trial_id_from_study_id_trial_number(
        store.get_study_id_from_name(study.study_name), number
    )
    return optuna.Trial(study, trial_id), store.get_trial(trial_id).intermediate_values


def set_error(study: Any, trial: Any, message: str) -> None:
    """Attach why a trial failed (user attribute `error`) to `trial`, an asked Trial or a
    FrozenTrial taken up again (no public setter exists for the latter). Private:
    `study._storage`, `trial._trial_id`. AlreadyTold: the trial was told elsewhere first."""
    with _recognised():
        study._storage.set_trial_user_attr(trial._trial_id, "error", message)


def tell(study: Any, number: int, value: float | None = None, state: Any = None) -> None:
    """`study.tell(number, value, state)`, with Optuna's errors told apart by their message (its
    only way to say them): AlreadyTold for a trial another process told first; and the grid
    sampler's RuntimeError after its last point (it calls `study.stop()`, which only works inside
    `optimize`) is dropped, since Optuna records the outcome before raising it."""
    with _recognised():
        study.tell(number, value, state=state)


@contextlib.contextmanager
def _recognised() -> Iterator[None]:
    try:
        yield
    except (
        ValueError
    ) as error:  # "Cannot tell a COMPLETE trial." (older Optuna: "... already finished")
        if "finished" not in str(error).lower() and "cannot tell" not in str(error).lower():
            raise
        raise AlreadyTold(str(error)) from error
    except (
        RuntimeError
    ) as error:  # "`Study.stop` is supposed to be invoked inside an objective function..."
        if "stop" not in str(error):
            raise
