"""Deprecated: `rnnbench.store` owns the results folder (rows, schema, CSV files, cards). This
module re-exports its names for one release, so that code written against 0.1 keeps working."""

from rnnbench.store.cards import read_task_cards, write_task_card  # noqa: F401
from rnnbench.store.csvfile import ForeignFile, Layout, Parsed, parse  # noqa: F401
from rnnbench.store.layout import curves_csv as curves_path  # noqa: F401
from rnnbench.store.layout import rows_csv as results_path  # noqa: F401
from rnnbench.store.rows import append_run, done_run_ids, read_path, read_rows, skip_message  # noqa: F401
from rnnbench.store.schema import *  # noqa: F401,F403
from rnnbench.store.schema import row_problem, run_key, trial_state  # noqa: F401
