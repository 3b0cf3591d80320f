"""What the report cites: the short labels a table's caption names its cells by, and references.bib.

The only module of the report that asks rnnbench.cite (and through it the registry, for the cells'
citations); tasks are cited from their cards (store.read_task_cards), as they recorded it.
"""

from __future__ import annotations

from typing import Iterable

from rnnbench import cite


def cells_sentence(cells: Iterable[str]) -> str:
    """'Cells: eurnn (Jing et al. 2017), lstm (...).' for the cells (names) registered here with a
    citation ('' if none), for a table's caption."""
    return cite.cells_sentence(cells)


def bibliography(cards: list[dict], task_specs: set[str], cells: Iterable[str] = ()) -> str:
    """The BibTeX of the reported tasks' sources, as their cards recorded it, and of the reported
    cells that are registered here with a citation; each entry once."""
    found = cite.sources(cells)
    for card in cards:
        if card.get("task_spec") in task_specs and isinstance(card.get("citation"), str) and card["citation"].strip():
            found.add("task", str(card["task_spec"]), card["citation"])
    return found.bibtex()
