"""Cards: what the report and `rnnbench cite` need to know of a task or a cell besides its rows
(a task's input example and citation; a cell's citation, version and options), kept once per
task spec or cell and version in the results folder, so that neither needs the registry, nor the
plugin that registered a cell."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from rnnbench.store import claims, layout


def _write(path: Path, card: dict[str, Any]) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        claims.write_atomically(path, json.dumps(card, sort_keys=True).encode(), durable=False)
    return path


def _read(paths: list[Path], what: str, key: str) -> list[dict[str, Any]]:
    cards = []
    for path in paths:
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as error:
            warnings.warn(f"{path}: skipped, not a readable {what} card ({error})", stacklevel=3)
            continue
        if not isinstance(card, dict) or not isinstance(card.get(key), str):
            warnings.warn(f"{path}: skipped, not a {what} card (no {key})", stacklevel=3)
            continue
        cards.append(card)
    return cards


def write_task_card(results: Path, task_spec: str, version: int, card: dict[str, Any]) -> Path:
    """Keep a task's card (its input example, citation, metadata), once per spec and version;
    written atomically."""
    return _write(
        layout.task_card(results, task_spec, version),
        {"task_spec": task_spec, "task_version": version, **card},
    )


def read_task_cards(results: Path) -> list[dict[str, Any]]:
    """Every readable task card of a results folder (others are skipped with a warning)."""
    return _read(layout.task_cards(results), "task", "task_spec")


def write_cell_card(results: Path, card: dict[str, Any]) -> Path:
    """Keep a cell's card (rnnbench.cell.card: `name`, `cell_version`, citation, summary, options),
    once per cell and version; written atomically."""
    return _write(layout.cell_card(results, card["name"], int(card["cell_version"])), card)


def read_cell_cards(results: Path) -> list[dict[str, Any]]:
    """Every readable cell card of a results folder (others are skipped with a warning)."""
    return _read(layout.cell_cards(results), "cell", "name")
