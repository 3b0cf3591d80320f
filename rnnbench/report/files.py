"""Every file the report writes: inside the output folder only (`_inside` refuses a name or a link
that resolves elsewhere), through a temporary file renamed over the old one (`_write`), so that a
failed write (disk full...) leaves the old file, or none, and no temporary one; figures are saved
as PNG and PDF that way and closed (`_save`, `_save_all`)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from rnnbench.report.errors import ReportError


def _inside(out: Path, name: str) -> Path:
    """out/name, refused if it would resolve outside `out` (a name with a path in it, a link)."""
    path = out / name
    if path.resolve().parent != out.resolve():
        raise ReportError(
            f"refusing to write {path}: it resolves to {path.resolve()}, outside {out}"
        )
    return path


def _write(out: Path, name: str, write: Callable[[Path], None]) -> Path:
    """Write out/name through a temporary file renamed over it: a failed write (disk full...)
    leaves the old file, or none, and no temporary one."""
    path = _inside(out, name)
    temporary = out / f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _write_text(out: Path, name: str, text: str) -> Path:
    return _write(out, name, lambda p: p.write_text(text, encoding="utf-8"))


def _save(fig, out: Path, stem: str) -> list[Path]:
    import matplotlib.pyplot as plt

    try:
        return [
            _write(out, f"{stem}.{suffix}", lambda p, s=suffix: fig.savefig(p, format=s, dpi=200))
            for suffix in ("png", "pdf")
        ]
    finally:
        plt.close(fig)


def _save_all(figures: dict, out: Path, stem: str) -> list[Path]:
    """Save each figure that is not None as out/STEM-NAME.png and .pdf, then close them all (also
    after a failed save): `_save_all({"cost": fig}, out, "pmnist-v2-cpu")`."""
    import matplotlib.pyplot as plt

    written: list[Path] = []
    try:
        for name, fig in figures.items():
            if fig is not None:
                written += _save(fig, out, f"{stem}-{name}")
    finally:
        for fig in figures.values():
            if fig is not None:
                plt.close(fig)
    return written
