"""rnnbench: benchmark recurrent cells on long-sequence tasks.

>>> import rnnbench
>>> cell = rnnbench.build_cell("eurnn:capacity=4", input_size=1, hidden_size=64)
>>> rnnbench.list_cells("eurnn*")[:2]
['eurnn', 'eurnn-c16']
"""

from rnnbench._version import __version__
from rnnbench.registry import (
    CELLS,
    TASKS,
    RegistryError,
    Spec,
    build_cell,
    build_task,
    list_cells,
    parse_cell_spec,
    register_cell,
    register_task,
)

__all__ = [
    "CELLS",
    "IGNORE",
    "TASKS",
    "RegistryError",
    "Spec",
    "Split",
    "Splits",
    "Task",
    "__version__",
    "build_cell",
    "build_task",
    "list_cells",
    "parse_cell_spec",
    "register_cell",
    "register_task",
]


def __getattr__(name: str):
    """The task contract (rnnbench.task needs torch), imported on first use so that
    `import rnnbench` stays cheap: `from rnnbench import Task, Split, Splits, IGNORE` works."""
    if name in ("IGNORE", "Split", "Splits", "Task"):
        from rnnbench import task

        return getattr(task, name)
    raise AttributeError(f"module 'rnnbench' has no attribute {name!r}")
