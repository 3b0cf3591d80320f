"""What the report cites: the short labels a table's caption names its cells by, and references.bib,
from the cards the results folder keeps (store.cards), never from the registry: a folder of plugin
cells is cited without the plugin.

`attach` gives each row its cell's citation (column `cell_citation`, from the cell cards), which
the aggregation carries to every table line.
"""

from __future__ import annotations

import pandas as pd

from rnnbench import cite


def cell_citations(cell_cards: list[dict]) -> dict[str, str]:
    """cell name -> its BibTeX ('' without one), from the cards (the newest version's, if
    several)."""
    newest = sorted(cell_cards, key=lambda card: int(card.get("cell_version") or 0))
    return {str(card["name"]): str(card.get("citation") or "") for card in newest}


def attach(rows: pd.DataFrame, cell_cards: list[dict]) -> pd.DataFrame:
    """The rows with `cell_citation`, their cell's BibTeX ('' where no card has one)."""
    citations = cell_citations(cell_cards)
    return rows.assign(cell_citation=[citations.get(cell, "") for cell in rows["cell"]])


def cells_sentence(summary: pd.DataFrame) -> str:
    """'Cells: eurnn (Jing et al. 2017), lstm (...).' for the cells of a table with a citation
    ('' if none), for its caption."""
    if "cell_citation" not in summary:
        return ""
    return cite.cells_sentence(dict(zip(summary["cell"], summary["cell_citation"], strict=True)))


def bibliography(task_cards: list[dict], task_specs: set[str], rows: pd.DataFrame) -> str:
    """The BibTeX of the reported tasks' sources, as their cards recorded it, and of the reported
    cells (their cards'); each entry once."""
    cells = (
        dict(sorted(zip(rows["cell"], rows["cell_citation"], strict=True)))
        if "cell_citation" in rows
        else {}
    )
    found = cite.sources({name: citation for name, citation in cells.items() if citation})
    for card in task_cards:
        if (
            card.get("task_spec") in task_specs
            and isinstance(card.get("citation"), str)
            and card["citation"].strip()
        ):
            found.add("task", str(card["task_spec"]), card["citation"])
    return found.bibtex()
