"""The report's errors: what the CLI turns into a message (ReportError: nothing to report, a name
that would leave the output folder...), and the one that says the output folder cannot be
written."""

from __future__ import annotations


class ReportError(ValueError):
    """Nothing to report, or the report cannot be written; the message says why."""


class ReportNotWritten(ReportError):
    """The output folder could not be written (read-only, full, not a folder...)."""
