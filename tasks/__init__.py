"""rnnbench's tasks: one module per task family, each registering its tasks.

A task is a registered class with `name`, `version` (bump when what it measures changes:
rows of different versions are never compared), `input_size`, `num_classes`, `target`
("last": the loss reads the last step; "every": every step), `load(config, folder) -> Splits`,
`loss(logits, y)` and `metrics(logits, y) -> {"loss", "acc"}`; for the memory check made before
anything is loaded (rnnbench.resources), `length` (steps per sequence) and `data_bytes(config)` (what
load() holds at its peak, in bytes). The runner adds the readout
`Linear(cell.output_size, num_classes)`. A new task family is one new file here plus one line
in the import list below.
"""

if __name__ != "rnnbench.tasks":
    raise ImportError(
        f"the tasks/ folder was imported as {__name__!r}; it is part of rnnbench and must be "
        "imported as rnnbench.tasks (install the project with `pip install -e .` and "
        "`import rnnbench`)"
    )

from . import memory, mnist  # noqa: E402,F401  (importing registers the tasks)
