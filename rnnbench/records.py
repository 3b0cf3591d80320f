"""Result rows: the schema, the run key, and appending to the results files safely.

One CSV per task in the results folder (`{task}.csv`, one row per run) and a companion curves
file (`{task}-curves.csv`, one row per evaluation, keyed by `run_id`). Appends happen under a
file lock, so concurrent processes never interleave or lose rows; curves are written before
the run's row, which is the mark that a run finished.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import math
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from rnnbench import claims

# Column groups in the order they appear in the CSV.
IDENTITY = ["run_id", "run_key", "task", "task_spec", "task_version", "cell", "cell_version", "cell_spec", "options",
            "seed", "phase", "study", "trial"]
CONFIG = ["hidden_size", "params_budget", "target", "batch_size", "steps", "eval_every", "optimizer", "lr", "clip",
          "weight_decay", "lr_schedule", "lr_warmup_steps", "lr_decay_every", "lr_decay", "dtype", "sampling",
          "n_train", "n_valid", "n_test", "data_hash", "data_json", "task_json", "config_json",
          "tuned_json", "study_json"]
QUALITY = ["test_acc", "test_acc_final", "best_valid_acc", "best_valid_step", "test_loss", "baseline_loss",
           "linear_acc", "final_train_loss", "steps_done"]
COST = ["params", "impl", "build_time_s", "train_time_s", "step_time_ms", "step_time_iqr_ms", "warmup_time_s",
        "eval_time_s", "log_time_s", "n_evals", "time_to_target_s", "timing_note", "peak_mem_mb", "peak_reserved_mb", "mem_source"]
ENVIRONMENT = ["device", "device_name", "num_threads", "torch_version", "cuda_version", "python_version",
               "numpy_version", "rnnbench_version", "git_commit", "hostname", "timestamp"]
STATUS = ["status", "error"]
COLUMNS = IDENTITY + CONFIG + QUALITY + COST + ENVIRONMENT + STATUS
# Curve points: `train` every log_every steps (loss: the mean over those steps; grad_norm: the
# gradient norm before clipping of the last one), `valid` at each evaluation (with
# unitarity_error, ‖U^H U − I‖_F, for cells whose recurrent matrix is unitary or orthogonal).
CURVE_COLUMNS = ["run_id", "cell_spec", "hidden_size", "seed", "step", "wall_time_s", "split", "loss", "acc",
                 "grad_norm", "unitarity_error"]
STATUSES = ("ok", "diverged", "pruned", "failed")  # pruned: stopped early by a study's pruner
# A run with a row of these is over, never trained again unless forced: training is deterministic, so
# a diverged run diverges again (a failed one, which raised, may not fail again: it is retried).
DONE = ("ok", "diverged", "pruned")


def run_key(fields: dict[str, Any]) -> str:
    """A short hash of everything that defines a run (task and version, canonical cell spec,
    config, data identity, device); equal keys mean the same experiment."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def results_path(results: Path, task: str) -> Path:
    return results / f"{task}.csv"


def curves_path(results: Path, task: str) -> Path:
    return results / f"{task}-curves.csv"


class ForeignFile(ValueError):
    """A file under a results file's name that rnnbench did not write (no run_key and status
    columns): refused, never appended to or guessed at."""


# What a file must have to be read as rows or curves.
REQUIRED = {"rows": ["run_id", "run_key", "status"], "curves": ["run_id", "step", "split"]}
DELIMITERS = (",", ";", "\t", "|")  # as spreadsheets write CSV in other locales
NUMERIC = ["seed", "trial", "hidden_size", "task_version", "params_budget", "target", "batch_size", "steps", "eval_every",
           "lr", "clip", "weight_decay", "lr_warmup_steps", "lr_decay_every", "lr_decay", "n_train", "n_valid",
           "n_test", "test_acc", "test_acc_final", "best_valid_acc",
           "best_valid_step", "test_loss", "baseline_loss", "linear_acc", "final_train_loss", "steps_done", "params",
           "build_time_s", "train_time_s", "step_time_ms", "step_time_iqr_ms", "warmup_time_s", "eval_time_s", "log_time_s",
           "n_evals", "time_to_target_s", "peak_mem_mb", "peak_reserved_mb", "num_threads"]
CURVE_NUMERIC = ["hidden_size", "seed", "step", "wall_time_s", "loss", "acc", "grad_norm", "unitarity_error"]


@dataclass
class Layout:
    """How an existing results file is written, so that an append matches it: spreadsheets and
    editors save CSV with other encodings, delimiters and line ends, or no final line break."""

    header: list[str]
    encoding: str = "utf-8"
    bom: bytes = b""
    delimiter: str = ","
    newline: str = "\r\n"  # what csv writes by default
    ends_with_newline: bool = True


@dataclass
class Parsed:
    """A results or curves file, read: its layout, its usable rows (each with its line number in
    `_line`), why the others cannot be used (file:line: reason), and a torn last row if any."""

    path: Path
    layout: Layout | None  # None: an empty or missing file
    rows: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    records: list[list[str]] = field(default_factory=list)  # every record as parsed, usable or not
    torn_at: int | None = None  # byte offset where a torn last row starts


def _decode(data: bytes) -> tuple[str, str, bytes]:
    """(text, encoding, byte-order mark). Every decoding is strict and lossless, so byte offsets
    can be recomputed from the text."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                          (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(encoding), encoding, bom
            except UnicodeDecodeError:
                break
    for encoding in ("utf-8", "cp1252", "latin-1"):  # latin-1 decodes any bytes
        try:
            return data.decode(encoding), encoding, b""
        except UnicodeDecodeError:
            continue
    raise AssertionError("unreachable: latin-1 decodes every byte")


def _number(text: str, decimal_comma: bool) -> float:
    """A CSV field as a number (NaN if empty or not a number); '0,75' where the file uses a
    decimal comma."""
    text = text.strip()
    if decimal_comma and "," in text and "." not in text:
        text = text.replace(",", ".")
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


# The numbers a row is checked for (empty means missing, and is fine unless said otherwise).
CHECKED = ["seed", "trial", "hidden_size", "task_version", "n_test", "num_threads", "test_acc", "test_acc_final",
           "best_valid_acc", "test_loss", "baseline_loss", "params", "train_time_s", "step_time_ms",
           "step_time_iqr_ms", "peak_mem_mb", "time_to_target_s"]
WHOLE_NUMBERS = ("seed", "trial", "hidden_size", "task_version", "n_test", "num_threads")
NOT_NEGATIVE = ("trial", "hidden_size", "n_test", "params", "train_time_s", "step_time_ms", "step_time_iqr_ms", "peak_mem_mb",
                "time_to_target_s")
# (all but config_json absent from rows before them; tuned_json and study_json only in a study's rows)
JSON_OBJECTS = ("config_json", "data_json", "task_json", "tuned_json", "study_json")


def _shown(value: Any, quoted: bool = True) -> str:
    """A value for a message: quoted if text, and short."""
    text = repr(value) if isinstance(value, str) and quoted else str(value)
    return text if len(text) <= 40 else text[:37] + "…"


def row_problem(row: dict[str, str], kind: str = "rows") -> str:
    """Why a row (or curve point) of a results file cannot be used, or ''. The one rule for `run`
    (which rows finish a run) and `report` (which rows it shows): every number must be a number,
    finite, whole where it counts, not negative where it measures; an ok row needs a score of at
    most 1; config_json (and data_json, task_json where present) must be JSON objects.

    >>> row_problem({"status": "lost"})
    "unknown status 'lost' (known: ok, diverged, pruned, failed)"
    """
    if kind == "curves":
        if not row.get("run_id"):
            return "no run_id"
        if row.get("split") not in ("train", "valid"):
            return f"split {_shown(row.get('split'))} is not train or valid"
        if not math.isfinite(_number(row.get("step", ""), True)):
            return f"step {_shown(row.get('step'))} is not a number"
        return ""
    status = row.get("status", "")
    if status not in STATUSES:
        return f"unknown status {_shown(status)} (known: {', '.join(STATUSES)})"
    if not row.get("run_key") or not row.get("run_id"):
        return "no run_key or run_id"
    values = {}
    for column in CHECKED:
        text = str(row.get(column) or "").strip()
        if not text:
            if column in ("seed", "hidden_size", "task_version"):
                return f"{column} '' is not a whole number"
            continue
        value = _number(text, True)
        if math.isnan(value) and text.lower() not in ("nan", "+nan", "-nan"):
            return f"{column} {_shown(text)} is not a number"
        if column in WHOLE_NUMBERS and not (math.isfinite(value) and value.is_integer()):
            return f"{column} {_shown(text)} is not a whole number"
        if math.isinf(value):
            return f"{column} {_shown(text, quoted=False)} is not a finite number"
        if column in NOT_NEGATIVE and value < 0:
            return f"{column} {_shown(text, quoted=False)} is negative"
        if column == "num_threads" and value < 1:
            return f"num_threads {text} is not a positive whole number"
        values[column] = value  # (a NaN measurement is a missing one: the runner writes NaN it could not compute)
    score = values.get("test_acc", math.nan)  # an accuracy, or a score such as R^2 that may be negative
    if status == "ok" and "test_acc" not in values:
        return f"test_acc {_shown(row.get('test_acc') or '')} is not a number"
    if status == "ok" and math.isnan(score):
        return "test_acc nan: an ok row needs a score"
    if score > 1:
        return f"test_acc {_shown(row['test_acc'], quoted=False)} is above 1"
    for column in JSON_OBJECTS:
        text = row.get(column) or ""
        if not text and column != "config_json":
            continue
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return f"{column} is not valid JSON"
        if not isinstance(value, dict):
            kinds = {list: "array", int: "number", float: "number", str: "string", bool: "boolean", type(None): "null"}
            return f"{column} is a JSON {kinds.get(type(value), type(value).__name__)}, not an object"
    return ""


def parse(path: Path, kind: str = "rows") -> Parsed:
    """Read a results (`kind="rows"`) or curves file the way every reader does; ForeignFile if its
    header is not one rnnbench writes.

    Rows are matched to the header by name, never by position: a row with a field too many keeps
    its first fields and names the extra one; a row with fewer fields (a spreadsheet drops trailing
    empty cells) gets empty values. A last line without a line break is a whole row if it passes
    `row_problem`, else a row torn by a writer that was killed or ran out of disk."""
    if not path.exists() or path.stat().st_size == 0:
        return Parsed(path, None)
    data = path.read_bytes()
    text, encoding, bom = _decode(data)
    breaks = [i for i in (text.find("\n"), text.find("\r")) if i >= 0]
    first = text[: min(breaks)] if breaks else text
    needed = REQUIRED[kind]
    delimiter = next((d for d in DELIMITERS if set(needed) <= {f.strip() for f in first.split(d)}), None)
    if delimiter is None:
        ours = ",".join(COLUMNS if kind == "rows" else CURVE_COLUMNS)
        if not breaks and ours.startswith(text):  # a header torn by a writer killed while creating the file
            return Parsed(path, None, torn_at=0)
        raise ForeignFile(f"{path} is not an rnnbench {'curves' if kind == 'curves' else 'results'} file: its first "
                          f"line lacks the columns {', '.join(needed)}; move it away, or use another --results folder")
    newline = text[len(first): len(first) + 2] if text[len(first): len(first) + 2] == "\r\n" else \
        text[len(first): len(first) + 1] or "\r\n"
    header = [f.strip() for f in next(csv.reader([first], delimiter=delimiter))]
    body = text[len(first) + len(newline):] if breaks else ""
    ends = text.endswith(("\n", "\r"))
    layout = Layout(header, encoding, bom, delimiter, newline, ends)
    parsed = Parsed(path, layout)
    lines = io.StringIO(body, newline="")
    reader = csv.reader(lines, delimiter=delimiter)
    decimal_comma = delimiter != ","
    start_line, records_ = 2, []
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            parsed.problems.append(f"{path}:{start_line}: unreadable ({error})")
            break
        records_.append((start_line, fields))
        start_line = 2 + reader.line_num
    last = len(records_) - 1
    for index, (line, fields) in enumerate(records_):
        parsed.records.append(fields)
        if not any(f.strip() for f in fields):
            continue  # a blank line
        note = ""
        if len(fields) > len(header):
            extra = [f for f in fields[len(header):] if f.strip()]
            if extra:
                note = f"{path}:{line}: {len(fields) - len(header)} field(s) beyond the header ignored ({extra[0][:40]!r})"
        row = dict(zip(header, fields + [""] * (len(header) - len(fields))))
        problem = row_problem(row, kind)
        if index == last and not ends:
            if problem:  # a torn row: not a row, whatever it parses to
                tail = max(text.rfind("\n"), text.rfind("\r")) + 1
                parsed.torn_at = len(bom) + len(text[:tail].encode(encoding))
                parsed.records.pop()
                break
        if problem:
            parsed.problems.append(f"{path}:{line}: skipped, {problem}")
            continue
        if note:
            parsed.problems.append(note)
        row["_line"] = str(line)
        parsed.rows.append(row)
    for row in parsed.rows:  # (numbers as the file writes them, read back into Python's form)
        for column in NUMERIC if kind == "rows" else CURVE_NUMERIC:
            if decimal_comma and column in row:
                value = _number(row[column], True)
                row[column] = "" if math.isnan(value) else repr(value)
    return parsed


def _frame(parsed: Parsed, kind: str) -> pd.DataFrame:
    columns = COLUMNS if kind == "rows" else CURVE_COLUMNS
    header = parsed.layout.header if parsed.layout else []
    frame = pd.DataFrame(parsed.rows, columns=list(dict.fromkeys(columns + header + ["_line"])), dtype=object)
    frame = frame.fillna("")
    for column in NUMERIC if kind == "rows" else CURVE_NUMERIC:
        frame[column] = pd.to_numeric(frame[column].replace("", math.nan), errors="coerce")
    return frame


def read_rows(results: Path, task: str, kind: str = "rows", warn: bool = True) -> pd.DataFrame:
    """Every usable row of a task's results file (or curves file, `kind="curves"`), as `run` and
    `report` both see them; see read_path."""
    return read_path(results_path(results, task) if kind == "rows" else curves_path(results, task), kind, warn)


def read_path(path: Path, kind: str = "rows", warn: bool = True) -> pd.DataFrame:
    """Every usable row of a results (or curves) file; the others are skipped with a warning
    naming file and line. Text columns are strings, NUMERIC ones numbers (NaN where empty).
    ForeignFile if the file is not rnnbench's."""
    parsed = parse(path, kind)
    if warn:
        for problem in parsed.problems:
            warnings.warn(problem)
        if parsed.torn_at is not None:
            warnings.warn(f"{path} ends in a torn row ({path.stat().st_size - parsed.torn_at} bytes): ignored; the "
                          "next append to the file moves it aside")
    return _frame(parsed, kind)


def trial_state(statuses: list[str], scores: list[float]) -> str:
    """What a study's trial came to, from the rows of its seeds (their statuses, their validation
    scores): `complete` only if every run ended ok with a score; else `failed` (one raised),
    `diverged`, `pruned`. The tuner tells Optuna this, and the report chooses by the same rule.

    >>> trial_state(["ok", "diverged"], [0.7, 0.8])
    'diverged'
    """
    for state in ("failed", "diverged", "pruned"):
        if state in statuses:
            return state
    return "failed" if any(not math.isfinite(score) for score in scores) else "complete"


def skip_message(description: str, row: dict[str, Any]) -> str:
    """What a sweep says of a run it skips because `row` finished it."""
    article = "an" if row["status"] == "ok" else "a"
    return (f"skip {description}: run {row['run_key']} already has {article} {row['status']} row "
            "(--force to run it again)")


def done_run_ids(rows: pd.DataFrame) -> dict[str, list[str]]:
    """run_key -> run_ids of its rows that finish it (DONE: ok, diverged, pruned by a study)."""
    ok = rows[rows["status"].isin(DONE)]
    return ok.groupby("run_key")["run_id"].agg(list).to_dict()


def _encode(layout: Layout, header: list[str], rows: Iterable[dict[str, Any]] | Iterable[list[str]],
            with_header: bool) -> bytes:
    """Rows as bytes in the file's layout, one line each: line breaks inside values become
    spaces, so that the last line break of a file always ends a whole row."""
    def one_line(value: Any) -> Any:
        return " ".join(value.splitlines()) if isinstance(value, str) else "" if value is None else value

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=layout.delimiter, lineterminator=layout.newline)
    if with_header:
        writer.writerow(header)
    for row in rows:
        fields = [row.get(c, "") for c in header] if isinstance(row, dict) else row
        writer.writerow([one_line(v) for v in fields])
    return buffer.getvalue().encode(layout.encoding, errors="replace")


def _set_aside_torn_tail(path: Path, offset: int) -> None:
    """Move a torn last row out of the file, into `{file}.torn`; the bytes are kept for
    inspection, the run it belonged to has no row and will be run again."""
    data = path.read_bytes()
    aside = path.with_name(path.name + ".torn")
    with open(aside, "ab") as f:
        f.write(data[offset:] + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.truncate(path, offset)
    warnings.warn(f"{path} ended in a torn row ({len(data) - offset} bytes, from a writer that was killed or ran "
                  f"out of disk); moved it to {aside}. Its run has no row and will run again.")


def _append(path: Path, columns: list[str], rows: list[dict[str, Any]], kind: str = "rows") -> None:
    """Append rows in one write, in the file's own layout. A torn last row is set aside first; a
    whole last row without a line break gets one; a file whose header lacks some of `columns`
    (an older version wrote it) is rewritten with the union of both headers, every row kept.
    If the write fails (disk full...), the file is cut back to its size before, and the error
    raised: earlier rows are never touched."""
    parsed = parse(path, kind)
    layout = parsed.layout
    prefix = b""
    if parsed.torn_at is not None:
        _set_aside_torn_tail(path, parsed.torn_at)
    elif layout is not None and not layout.ends_with_newline:
        prefix = layout.newline.encode(layout.encoding)
    if layout is not None:
        missing = [c for c in columns if c not in layout.header]
        if missing:
            header = layout.header + missing
            width = len(layout.header)
            # (a field beyond the old header stays beyond the new one: nothing moves into a column)
            records_ = [r[:width] + [""] * len(missing) + r[width:] if len(r) >= width else r for r in parsed.records]
            claims.write_atomically(path, layout.bom + _encode(layout, header, records_, with_header=True))
            layout.header, prefix = header, b""
    new = layout is None
    layout = layout or Layout(columns)
    data = prefix + _encode(layout, layout.header, rows, with_header=new)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        except OSError as error:
            if stat.S_ISREG(os.fstat(fd).st_mode):  # (not /dev/full, say, which cannot be cut)
                os.ftruncate(fd, size)
            raise OSError(error.errno, f"could not append to {path} ({error.strerror or error}); "
                                       "the file is as it was before this run") from error
    finally:
        os.close(fd)


def append_run(results: Path, task: str, row: dict[str, Any], curves: list[dict[str, Any]],
               check: Callable[[], None] | None = None, log: Callable[[str], None] = print) -> None:
    """Append one run: its curves, then its row, under the task's lock. `check` runs under the
    lock first (the writer still owns the run: see claims.Claim.check)."""
    results.mkdir(parents=True, exist_ok=True)
    path = results_path(results, task)
    with claims.folder_lock(results / f".{task}.lock", f"appending to {path}", log):
        if check is not None:
            check()
        _append(curves_path(results, task), CURVE_COLUMNS, curves, "curves")
        _append(path, COLUMNS, [row], "rows")


def task_card_path(results: Path, task_spec: str, version: int) -> Path:
    """Where a task's card is kept: `RESULTS/tasks/NAME-HASH.json`, one per task spec and version."""
    digest = hashlib.sha256(f"{task_spec}\0{version}".encode()).hexdigest()[:10]
    return results / "tasks" / f"{task_spec.split(':')[0]}-{digest}.json"


def write_task_card(results: Path, task_spec: str, version: int, card: dict[str, Any]) -> Path:
    """Keep what the report shows about a task besides its rows (its input example, citation),
    once per task spec and version, so that the report needs no registry; written atomically."""
    path = task_card_path(results, task_spec, version)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"task_spec": task_spec, "task_version": version, **card}, sort_keys=True)
        claims.write_atomically(path, text.encode(), durable=False)
    return path


def read_task_cards(results: Path) -> list[dict[str, Any]]:
    """Every readable task card of a results folder (others are skipped with a warning)."""
    cards = []
    for path in sorted((results / "tasks").glob("*.json")):
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as error:
            warnings.warn(f"{path}: skipped, not a readable task card ({error})")
            continue
        if not isinstance(card, dict) or not isinstance(card.get("task_spec"), str):
            warnings.warn(f"{path}: skipped, not a task card (no task_spec)")
            continue
        cards.append(card)
    return cards
