"""What to cite: the BibTeX entries of cells and tasks, each once, and the short labels the
report's captions name them by ("eurnn: Jing et al. 2017").

A cell's citation is given when it is registered (`register_cell(name, citation=...)`), a task's is
its class attribute `citation`; both are kept in the results folder's cards, so this module works
from citations alone, never the registry: `rnnbench cite` prints the entries of the cells and tasks
a results folder used (or of those named), the report lists them under each table and in
references.bib, for plugin cells too without their plugin.

>>> label("@article{x, author={Hochreiter, Sepp and Schmidhuber, J{\\\"u}rgen}, year={1997}}")
'Hochreiter and Schmidhuber 1997'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_KEY = re.compile(r"@\s*\w+\s*\{\s*([^,\s]+)\s*,")
_LATEX_COMMAND = re.compile(r"\\[a-zA-Z]+\s*|\\.")


def key(bibtex: str) -> str:
    """The citation key of a BibTeX entry (`@article{le2015simple, ...}` -> 'le2015simple'); '' if
    none."""
    found = _KEY.search(bibtex)
    return found.group(1) if found else ""


def bibtex_field(bibtex: str, name: str) -> str:
    """The value of one field of a BibTeX entry, its outer braces or quotes removed ('' if absent).

    Written here rather than taken from a BibTeX library: the entries are our own, one field is
    read, and a dependency for that would weigh more than these lines."""
    found = re.search(rf"[,{{\s]{name}\s*=\s*", bibtex, re.IGNORECASE)
    if not found:
        return ""
    start = found.end()
    opening = bibtex[start : start + 1]
    if opening == "{":
        depth = 0
        for i in range(start, len(bibtex)):
            depth += {"{": 1, "}": -1}.get(bibtex[i], 0)
            if depth == 0:
                return bibtex[start + 1 : i].strip()
        return bibtex[start + 1 :].strip()
    if opening == '"':
        end = bibtex.find('"', start + 1)
        return bibtex[start + 1 : end if end >= 0 else None].strip()
    return re.match(r"[^,}]*", bibtex[start:]).group(0).strip()  # a bare value: year = 2017


def _plain(text: str) -> str:
    """LaTeX markup dropped: `Dub{\\v{c}}ek` -> 'Dubcek'."""
    return " ".join(_LATEX_COMMAND.sub("", text).replace("{", "").replace("}", "").split())


def label(bibtex: str) -> str:
    """'Last year', 'Last and Other year' or 'Last et al. year' from an entry's author and year
    fields; the entry's key where it has no authors.

    >>> label("@article{x, author={Jing, Li and Shen, Yichen and Tegmark, Max}, year={2017}}")
    'Jing et al. 2017'
    """
    authors = [a for a in re.split(r"\s+and\s+", bibtex_field(bibtex, "author")) if a.strip()]
    surnames = [_plain(a.split(",")[0] if "," in a else a.split()[-1]) for a in authors]
    year = _plain(bibtex_field(bibtex, "year"))
    if not surnames:
        return " ".join(filter(None, [key(bibtex), year]))
    who = (
        surnames[0]
        if len(surnames) == 1
        else f"{surnames[0]} and {surnames[1]}"
        if len(surnames) == 2
        else f"{surnames[0]} et al."
    )
    return f"{who} {year}".strip()


@dataclass
class Sources:
    """The entries to cite, each once, with what cites it; and what could not be cited, with why."""

    entries: dict[str, dict[str, list[str]]] = field(
        default_factory=dict
    )  # BibTeX -> {"cell": ["eurnn"]}
    missing: list[str] = field(default_factory=list)  # "cell 'mine' has no citation (...)"

    def add(self, kind: str, name: str, citation: str) -> None:
        self.entries.setdefault(citation.strip(), {}).setdefault(kind, []).append(name)

    def bibtex(self) -> str:
        """Every entry once, sorted by key, each after a comment naming what cites it
        (`% cells eurnn, eurnn-c4; task pmnist`)."""

        def users(by_kind: dict[str, list[str]]) -> str:
            return "; ".join(
                f"{kind}{'s' if len(names) > 1 else ''} {', '.join(names)}"
                for kind, names in by_kind.items()
            )

        ordered = sorted(self.entries.items(), key=lambda item: key(item[0]))
        return (
            "\n\n".join(f"% {users(by_kind)}\n{entry}" for entry, by_kind in ordered) + "\n"
            if ordered
            else ""
        )


def sources(
    cells: dict[str, str | None] | None = None, tasks: dict[str, str | None] | None = None
) -> Sources:
    """The citations of these cells and tasks (name -> its BibTeX, '' if it has none, None if
    nothing is known of it here), each entry once; those without one are listed in `missing`."""
    found = Sources()
    for kind, citations in (("cell", cells or {}), ("task", tasks or {})):
        for name, citation in citations.items():
            if citation is None:
                found.missing.append(
                    f"{kind} {name!r} is not registered here (a plugin's? load it with --plugin)"
                )
            elif citation.strip():
                found.add(kind, name, citation)
            else:
                found.missing.append(
                    f"{kind} {name!r} has no citation (register_cell(..., citation=...) "
                    "or the task class's `citation`)"
                )
    return found


def of(
    cells: list[str], tasks: list[str], cell_cards: list[dict], task_cards: list[dict]
) -> Sources:
    """The citations of the cells and tasks (names) from their cards (store.cards, or made from the
    registry by the caller for what is registered here); a name without a card is not known here."""
    by_cell = {str(card["name"]): str(card.get("citation") or "") for card in cell_cards}
    by_task = {
        str(card["task_spec"]).split(":")[0]: str(card.get("citation") or "") for card in task_cards
    }
    return sources(
        {name: by_cell.get(name) for name in dict.fromkeys(cells)},
        {name: by_task.get(name) for name in dict.fromkeys(tasks)},
    )


def cells_sentence(citations: dict[str, str]) -> str:
    """'Cells: eurnn (Jing et al. 2017), lstm (Hochreiter and Schmidhuber 1997).' for the cells
    (name -> BibTeX) with a citation ('' if none), for a table's caption."""
    parts = [f"{name} ({label(citation)})" for name, citation in citations.items() if citation]
    return f"Cells: {', '.join(parts)}." if parts else ""
