"""Where rnnbench's messages go: Python's logging, under the `rnnbench` logger.

Every module logs through its own `logging.getLogger(__name__)` (`rnnbench.sweep`,
`rnnbench.runner`...): progress and what was done at INFO, what went wrong but did not stop the
work at WARNING. This module is the one place that says where those lines go:

- `to_stream` (the CLI, at the start of every command; a submitit job, to its stdout log): INFO
  and above to one stream, each record as its message alone, `warning: MESSAGE` from WARNING up;
  Python's warnings go there too, in the same `warning: MESSAGE` form;
- `forward` (a run's child process): each record to a function, which sends it to the parent
  (child.py), whose logger emits it again unchanged.

Library use without the CLI configures nothing, so that nothing is printed behind the caller's
back: INFO lines are silent (Python's default), WARNING and above reach stderr through Python's
last-resort handler, as the message alone. Configure the `rnnbench` logger (or call `to_stream`)
to see the progress lines.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from typing import TextIO

LOGGER = "rnnbench"


class Formatter(logging.Formatter):
    """A record as the CLI has always printed it: the message as is (its traceback after it, if
    any) below WARNING, `warning: MESSAGE` from WARNING up."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"warning: {text}" if record.levelno >= logging.WARNING else text


class _Forward(logging.Handler):
    """Hands each record, as (logger name, level, message), to a function."""

    def __init__(self, send: Callable[[tuple[str, int, str]], None]):
        super().__init__()
        self.send = send
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        # not inside logging's usual try/except: what `send` raises (child.py's KeyboardInterrupt
        # when the parent is gone) must reach the code that logged
        self.send((record.name, record.levelno, self.format(record)))


def _install(handler: logging.Handler) -> logging.Handler:
    """Make `handler` the `rnnbench` logger's only handler of ours, at INFO, not propagated (the
    root logger's handlers, if an application set some, would print every line twice)."""
    logger = logging.getLogger(LOGGER)
    for old in [h for h in logger.handlers if getattr(h, "rnnbench", False) and h is not handler]:
        logger.removeHandler(old)
    handler.rnnbench = True  # (marks ours, among handlers an application may have added)
    if handler not in logger.handlers:
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # Python's warnings as `warning: MESSAGE`, not their file:line form, on the same stream
    warnings.showwarning = lambda message, *_, **__: logger.warning("%s", message)
    return handler


def to_stream(stream: TextIO | None = None) -> logging.Handler:
    """Send the `rnnbench` logger's lines (and Python's warnings) to `stream`, by default the
    current `sys.stderr`. Called again (each CLI command; CliRunner gives each invocation its own
    sys.stderr), it points the same handler at the new stream: lines are never printed twice."""
    stream = sys.stderr if stream is None else stream
    logger = logging.getLogger(LOGGER)
    handler = next(
        (
            h
            for h in logger.handlers
            if getattr(h, "rnnbench", False) and isinstance(h, logging.StreamHandler)
        ),
        None,
    )
    if handler is None:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(Formatter())
    elif handler.stream is not stream:
        if getattr(handler.stream, "closed", False):  # (setStream would flush it, and fail)
            handler.stream = stream
        else:
            handler.setStream(stream)
    return _install(handler)


def forward(send: Callable[[tuple[str, int, str]], None]) -> logging.Handler:
    """Send each of the `rnnbench` logger's records (and Python's warnings), as (logger name,
    level, message), to `send` instead of a stream; `emit` below re-emits one unchanged."""
    return _install(_Forward(send))


def emit(record: tuple[str, int, str]) -> None:
    """Log again a record that `forward` sent, through the logger of the same name here."""
    name, level, message = record
    logging.getLogger(name).log(level, "%s", message)
