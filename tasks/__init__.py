"""rnnbench's tasks: one module per task family, each registering its tasks.

A task is a subclass of `rnnbench.task.Task` (the contract, with every optional attribute's
default) registered with `@register_task(name)`. A new task family is one new file here plus one
line in the import list below, or a module of your own loaded with `rnnbench --plugin`.
"""

if __name__ != "rnnbench.tasks":
    raise ImportError(
        f"the tasks/ folder was imported as {__name__!r}; it is part of rnnbench and must be "
        "imported as rnnbench.tasks (install the project with `pip install -e .` and "
        "`import rnnbench`)"
    )

from . import induction_heads, listops, memory, mnist, mqar, selective_copying  # noqa: E402,F401  (importing registers the tasks)
