"""rnnbench's cells: one module per family, each registering its named variants.

A new cell family is one new file here plus one line in the import list below.
"""

if __name__ != "rnnbench.cells":
    raise ImportError(
        f"the cells/ folder was imported as {__name__!r}; it is part of rnnbench and must be "
        "imported as rnnbench.cells (install the project with `pip install -e .` and "
        "`import rnnbench`)"
    )

from . import classic, cornn, eurnn, indrnn, lmu, lru, minimal, orthogonal  # noqa: E402,F401  (importing registers the cells)
