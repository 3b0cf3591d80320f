"""rnnbench's tasks: one module per task family, each registering its tasks.

A new task family is one new file here plus one line importing it at the end of this file,
as in cells/__init__.py. (No task is registered yet: the tasks and the runner come next.)
"""

if __name__ != "rnnbench.tasks":
    raise ImportError(
        f"the tasks/ folder was imported as {__name__!r}; it is part of rnnbench and must be "
        "imported as rnnbench.tasks (install the project with `pip install -e .` and "
        "`import rnnbench`)"
    )
