"""rnnbench's tasks: one module per task family, each registering its tasks.

A new task family is one new file here plus one line in an import list below.
"""

if __name__ != "rnnbench.tasks":
    raise ImportError(
        f"the tasks/ folder was imported as {__name__!r}; it is part of rnnbench and must be "
        "imported as rnnbench.tasks (install the project with `pip install -e .` and "
        "`import rnnbench`)"
    )
