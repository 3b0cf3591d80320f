"""What to cite: the BibTeX every registered cell and task carries, and the short labels the
report's captions name them by ("eurnn: Jing et al. 2017").

A cell's citation is given when it is registered (`register_cell(name, citation=...)`), a task's is
its class attribute `citation`. `rnnbench cite` prints the entries of the cells and tasks a results
folder used (or of those named); the report lists them under each table and in references.bib.

>>> label(CELLS.get("lstm").citation)
'Hochreiter and Schmidhuber 1997'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from rnnbench.registry import CELLS, TASKS, RegistryError

_KEY = re.compile(r"@\s*\w+\s*\{\s*([^,\s]+)\s*,")
_LATEX_COMMAND = re.compile(r"\\[a-zA-Z]+\s*|\\.")


def key(bibtex: str) -> str:
    """The citation key of a BibTeX entry (`@article{le2015simple, ...}` -> 'le2015simple'); '' if none."""
    found = _KEY.search(bibtex)
    return found.group(1) if found else ""


def bibtex_field(bibtex: str, name: str) -> str:
    """The value of one field of a BibTeX entry, its outer braces or quotes removed ('' if absent).

    Written here rather than taken from a BibTeX library: the entries are our own, one field is read,
    and a dependency for that would weigh more than these lines."""
    found = re.search(rf"[,{{\s]{name}\s*=\s*", bibtex, re.IGNORECASE)
    if not found:
        return ""
    start = found.end()
    opening = bibtex[start:start + 1]
    if opening == "{":
        depth = 0
        for i in range(start, len(bibtex)):
            depth += {"{": 1, "}": -1}.get(bibtex[i], 0)
            if depth == 0:
                return bibtex[start + 1:i].strip()
        return bibtex[start + 1:].strip()
    if opening == "\"":
        end = bibtex.find("\"", start + 1)
        return bibtex[start + 1:end if end >= 0 else None].strip()
    return re.match(r"[^,}]*", bibtex[start:]).group(0).strip()  # a bare value: year = 2017


def _plain(text: str) -> str:
    """LaTeX markup dropped: `Dub{\\v{c}}ek` -> 'Dubcek'."""
    return " ".join(_LATEX_COMMAND.sub("", text).replace("{", "").replace("}", "").split())


def label(bibtex: str) -> str:
    """'Last year', 'Last and Other year' or 'Last et al. year' from an entry's author and year fields;
    the entry's key where it has no authors.

    >>> label("@article{x, author={Jing, Li and Shen, Yichen and Tegmark, Max}, year={2017}}")
    'Jing et al. 2017'
    """
    authors = [a for a in re.split(r"\s+and\s+", bibtex_field(bibtex, "author")) if a.strip()]
    surnames = [_plain(a.split(",")[0] if "," in a else a.split()[-1]) for a in authors]
    year = _plain(bibtex_field(bibtex, "year"))
    if not surnames:
        return " ".join(filter(None, [key(bibtex), year]))
    who = (surnames[0] if len(surnames) == 1 else f"{surnames[0]} and {surnames[1]}" if len(surnames) == 2
           else f"{surnames[0]} et al.")
    return f"{who} {year}".strip()


@dataclass
class Sources:
    """The entries to cite, each once, with what cites it; and what could not be cited, with why."""

    entries: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # BibTeX -> {"cell": ["eurnn"]}
    missing: list[str] = field(default_factory=list)  # "cell 'mine' has no citation (...)"

    def add(self, kind: str, name: str, citation: str) -> None:
        self.entries.setdefault(citation.strip(), {}).setdefault(kind, []).append(name)

    def bibtex(self) -> str:
        """Every entry once, sorted by key, each after a comment naming what cites it
        (`% cells eurnn, eurnn-c4; task pmnist`)."""
        def users(by_kind: dict[str, list[str]]) -> str:
            return "; ".join(f"{kind}{'s' if len(names) > 1 else ''} {', '.join(names)}"
                             for kind, names in by_kind.items())

        ordered = sorted(self.entries.items(), key=lambda item: key(item[0]))
        return "\n\n".join(f"% {users(by_kind)}\n{entry}" for entry, by_kind in ordered) + "\n" if ordered else ""


def cell_citation(name: str) -> str:
    """The BibTeX of a registered cell ('' without one); RegistryError for an unknown name."""
    return CELLS.get(name).citation


def task_citation(name: str) -> str:
    """The BibTeX of a registered task ('' without one); RegistryError for an unknown name."""
    return getattr(TASKS.get(name).factory, "citation", "").strip()


def sources(cells: Iterable[str] = (), tasks: Iterable[str] = ()) -> Sources:
    """The citations of these cells and tasks (names), each entry once; names that are not
    registered, or registered without a citation, are listed in `missing`."""
    found = Sources()
    for kind, names, lookup in (("cell", cells, cell_citation), ("task", tasks, task_citation)):
        for name in dict.fromkeys(names):
            try:
                citation = lookup(name)
            except RegistryError:
                found.missing.append(f"{kind} {name!r} is not registered here (a plugin's? load it with --plugin)")
                continue
            if citation:
                found.add(kind, name, citation)
            else:
                found.missing.append(f"{kind} {name!r} has no citation (register_cell(..., citation=...) "
                                     "or the task class's `citation`)")
    return found


def used_in(results: Path) -> tuple[list[str], list[str]]:
    """The cells and the tasks (names) of every row in a results folder, each file's sorted, in
    the order of the files; files rnnbench did not write are passed over. `rnnbench cite`:
    `used_in(Path("results")) == (["eurnn", "lstm"], ["pmnist"])`."""
    from rnnbench import records

    cells, tasks = [], []
    for path in sorted(results.glob("*.csv")):
        if path.name.endswith("-curves.csv"):
            continue
        try:
            rows = records.read_path(path, warn=False)
        except records.ForeignFile:
            continue
        cells += sorted(set(rows.get("cell", ())))
        tasks += sorted(set(rows.get("task", ())))
    return cells, tasks


def cells_sentence(names: Iterable[str]) -> str:
    """'Cells: eurnn (Jing et al. 2017), lstm (Hochreiter and Schmidhuber 1997).' for the registered
    cells with a citation among `names` ('' if none), for a table's caption."""
    parts = []
    for name in dict.fromkeys(names):
        try:
            citation = cell_citation(name)
        except RegistryError:
            continue
        if citation:
            parts.append(f"{name} ({label(citation)})")
    return f"Cells: {', '.join(parts)}." if parts else ""
