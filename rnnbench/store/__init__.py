"""The results folder's one owner: every path under it (layout), the row schema and its upgrades
(schema), CSV files (csvfile), reading rows and a run's latest row (rows), task and cell cards
(cards), and the claims and locks that let many processes share the folder (claims).

Nothing outside this package builds a path under a results folder or parses its files.
Imports inside run one way: layout and schema import nothing of rnnbench; claims imports layout;
csvfile imports claims and schema; cards and rows import those below them.

The names below are loaded on first use: `from rnnbench.store import layout` must not import
pandas (the CLI starts in a tenth of a second; rows and cards need pandas, paths do not).
"""

import importlib

# name -> the submodule that defines it
_NAMES = {
    **{
        name: "cards"
        for name in ("read_cell_cards", "read_task_cards", "write_cell_card", "write_task_card")
    },
    "ForeignFile": "csvfile",
    **{
        name: "rows"
        for name in (
            "ResultsMissing",
            "append_run",
            "done_run_ids",
            "failures",
            "finished",
            "latest",
            "latest_of",
            "read_all",
            "read_path",
            "read_rows",
            "skip_message",
            "used",
        )
    },
    **{
        name: "schema"
        for name in (
            "COLUMNS",
            "CURVE_COLUMNS",
            "DONE",
            "STATUSES",
            "data_hash",
            "data_json",
            "row_problem",
            "run_key",
            "trial_state",
        )
    },
}
_MODULES = ("cards", "claims", "csvfile", "layout", "rows", "schema")

__all__ = [*_MODULES, *_NAMES]


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"rnnbench.store.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(f"rnnbench.store.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'rnnbench.store' has no attribute {name!r}")
