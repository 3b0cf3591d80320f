"""The results folder's one owner: every path under it (layout), the row schema and its upgrades
(schema), CSV files (csvfile), reading rows and a run's latest row (rows), task and cell cards
(cards), and the claims and locks that let many processes share the folder (claims).

Nothing outside this package builds a path under a results folder or parses its files.
Imports inside run one way: layout and schema import nothing of rnnbench; claims imports layout;
csvfile imports claims and schema; cards and rows import those below them.
"""

from rnnbench.store import cards, claims, csvfile, layout, rows, schema
from rnnbench.store.cards import read_cell_cards, read_task_cards, write_cell_card, write_task_card
from rnnbench.store.csvfile import ForeignFile
from rnnbench.store.rows import (ResultsMissing, append_run, done_run_ids, failures, finished, latest, latest_of,
                                 read_all, read_path, read_rows, skip_message, used)
from rnnbench.store.schema import (COLUMNS, CURVE_COLUMNS, DONE, STATUSES, data_hash, data_json, row_problem,
                                   run_key, trial_state)

__all__ = ["cards", "claims", "csvfile", "layout", "rows", "schema", "read_cell_cards", "read_task_cards",
           "write_cell_card", "write_task_card", "ForeignFile", "ResultsMissing", "append_run", "done_run_ids",
           "failures", "finished", "latest", "latest_of", "read_all", "read_path", "read_rows", "skip_message", "used",
           "COLUMNS", "CURVE_COLUMNS", "DONE", "STATUSES", "data_hash", "data_json", "row_problem", "run_key",
           "trial_state"]
