"""Results and curves files as CSV: reading them whatever wrote them last (a spreadsheet in another
locale, an editor, a writer killed mid-row), and appending to them without ever losing a row.

Rows are parsed by name against the header, checked with schema.row_problem, and appended in the
file's own layout (encoding, delimiter, line ends) in one write; a torn last row is set aside into
`FILE.torn` first, and a failed write cuts the file back to its size before.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import os
import stat
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench.store import claims
from rnnbench.store.schema import (
    COLUMNS,
    CURVE_COLUMNS,
    CURVE_NUMERIC,
    NUMERIC,
    REQUIRED,
    _number,
    row_problem,
)


class ForeignFile(ValueError):
    """A file under a results file's name that rnnbench did not write (no run_key and status
    columns): refused, never appended to or guessed at."""


DELIMITERS = (",", ";", "\t", "|")  # as spreadsheets write CSV in other locales


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
    """A results or curves file, read: its layout, its usable rows, why the others cannot be used
    (file:line: reason), and a torn last row if any."""

    path: Path
    layout: Layout | None  # None: an empty or missing file
    rows: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    records: list[list[str]] = field(default_factory=list)  # every record as parsed, usable or not
    torn_at: int | None = None  # byte offset where a torn last row starts


def _decode(data: bytes) -> tuple[str, str, bytes]:
    """(text, encoding, byte-order mark). Every decoding is strict and lossless, so byte offsets
    can be recomputed from the text."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding), encoding, bom
            except UnicodeDecodeError:
                break
    for encoding in ("utf-8", "cp1252", "latin-1"):  # latin-1 decodes any bytes
        try:
            return data.decode(encoding), encoding, b""
        except UnicodeDecodeError:
            continue
    raise AssertionError("unreachable: latin-1 decodes every byte")


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
    delimiter = next(
        (d for d in DELIMITERS if set(needed) <= {f.strip() for f in first.split(d)}), None
    )
    if delimiter is None:
        ours = ",".join(COLUMNS if kind == "rows" else CURVE_COLUMNS)
        if not breaks and ours.startswith(
            text
        ):  # a header torn by a writer killed while creating the file
            return Parsed(path, None, torn_at=0)
        raise ForeignFile(
            f"{path} is not an rnnbench {'curves' if kind == 'curves' else 'results'} file: its "
            f"first line lacks the columns {', '.join(needed)}; move it away, or use another "
            "--results folder"
        )
    newline = (
        text[len(first) : len(first) + 2]
        if text[len(first) : len(first) + 2] == "\r\n"
        else text[len(first) : len(first) + 1] or "\r\n"
    )
    header = [f.strip() for f in next(csv.reader([first], delimiter=delimiter))]
    body = text[len(first) + len(newline) :] if breaks else ""
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
            extra = [f for f in fields[len(header) :] if f.strip()]
            if extra:
                note = (
                    f"{path}:{line}: {len(fields) - len(header)} field(s) beyond the header "
                    f"ignored ({extra[0][:40]!r})"
                )
        # (a short record is padded with empty fields; fields beyond the header are dropped)
        row = dict(zip(header, fields + [""] * (len(header) - len(fields)), strict=False))
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
        parsed.rows.append(row)
    for row in parsed.rows:  # (numbers as the file writes them, read back into Python's form)
        for column in NUMERIC if kind == "rows" else CURVE_NUMERIC:
            if decimal_comma and column in row:
                value = _number(row[column], True)
                row[column] = "" if math.isnan(value) else repr(value)
    return parsed


def _encode(
    layout: Layout,
    header: list[str],
    rows: Iterable[dict[str, Any]] | Iterable[list[str]],
    with_header: bool,
) -> bytes:
    """Rows as bytes in the file's layout, one line each: line breaks inside values become
    spaces, so that the last line break of a file always ends a whole row."""

    def one_line(value: Any) -> Any:
        return (
            " ".join(value.splitlines())
            if isinstance(value, str)
            else ""
            if value is None
            else value
        )

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
    warnings.warn(
        f"{path} ended in a torn row ({len(data) - offset} bytes, from a writer that was killed or "
        f"ran out of disk); moved it to {aside}. Its run has no row and will run again.",
        stacklevel=3,
    )


def append(path: Path, columns: list[str], rows: list[dict[str, Any]], kind: str = "rows") -> None:
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
            records_ = [
                r[:width] + [""] * len(missing) + r[width:] if len(r) >= width else r
                for r in parsed.records
            ]
            claims.write_atomically(
                path, layout.bom + _encode(layout, header, records_, with_header=True)
            )
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
            raise OSError(
                error.errno,
                f"could not append to {path} ({error.strerror or error}); "
                "the file is as it was before this run",
            ) from error
    finally:
        os.close(fd)
