"""The invariants of docs/architecture.md, checked on the source: imports run one way, and only the
store knows the results folder's layout."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
FOLDERS = {"rnnbench": "rnnbench", "cells": "rnnbench.cells", "tasks": "rnnbench.tasks"}


def _modules() -> dict[str, Path]:
    modules = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The rnnbench modules `name` imports, anywhere in it (inside functions too: an import put off
    until first use is still a dependency)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    + ([base] if base else [])
                )
            found |= {
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            }
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _reach(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def _group(*prefixes: str) -> set[str]:
    return {m for m in MODULES if any(m == p or m.startswith(p + ".") for p in prefixes)}


def test_no_import_circle():
    circles = sorted(
        {
            " -> ".join(sorted({m} | {n for n in _reach(m) if m in _reach(n)}))
            for m in MODULES
            if m in _reach(m)
        }
    )
    assert not circles, circles


PLANNING = _group("rnnbench.sweep", "rnnbench.sizing", "rnnbench.resources")
EXECUTION = _group("rnnbench.child", "rnnbench.executors", "rnnbench._job")
TRAINING = _group("rnnbench.runner", "rnnbench.checkpoints", "rnnbench.monitor")
RULES = [  # (who, what it must never reach, why)
    (PLANNING, EXECUTION | TRAINING, "planning imports nothing of execution or training"),
    (TRAINING, PLANNING | _group("rnnbench.tune"), "training imports nothing of planning"),
    (_group("rnnbench.cells"), _group("rnnbench.optim"), "cells import nothing of the optimizer"),
    (
        _group("rnnbench.report"),
        _group("rnnbench.config", "rnnbench.registry"),
        "the report reads rows and cards, never the config or the registry",
    ),
    (
        _group("rnnbench.store"),
        set(MODULES) - _group("rnnbench.store"),
        "the store is the bottom layer",
    ),
]


@pytest.mark.parametrize("who, banned, why", RULES, ids=[rule[2] for rule in RULES])
def test_imports_run_one_way(who, banned, why):
    assert who, why  # (a renamed module must not turn the rule into a rule about nothing)
    broken = {m: sorted(_reach(m) & banned) for m in sorted(who) if _reach(m) & banned}
    assert not broken, f"{why}: {broken}"


# A path joined onto a results folder: `results / "x"`, `run.results / f"..."`, `results.glob(...)`.
RESULTS_PATH = re.compile(
    r"\b(?:results|RESULTS)\s*/\s*f?[\"']|\b\w*\.?results\s*/\s*f?[\"']|\bresults\.glob\("
)


def test_no_module_outside_the_store_names_a_path_under_the_results_folder():
    offenders = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for name, path in MODULES.items()
        if not name.startswith("rnnbench.store")
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if RESULTS_PATH.search(line.split("#")[0])
    ]
    assert not offenders, "\n".join(offenders)


def test_the_path_rule_catches_a_path_it_should():
    assert RESULTS_PATH.search('folder = results / "sweeps"') and RESULTS_PATH.search(
        "run.results / f'{x}.pt'"
    )
    assert RESULTS_PATH.search('sorted(results.glob("*.csv"))') and not RESULTS_PATH.search(
        "data_folder / name"
    )


def test_messages_go_through_logging_not_log_callbacks():
    """No function of rnnbench takes a `log` callback (each module logs to its logger), and
    rnnbench.logs, which says where the lines go, imports nothing of rnnbench (anything may
    use it)."""
    takers = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in MODULES.values()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        and any(
            a.arg == "log"
            and not (a.annotation and ast.unparse(a.annotation) == "bool")  # (a log scale)
            for a in node.args.args + node.args.kwonlyargs
        )
    ]
    assert not takers, "\n".join(takers)
    assert GRAPH["rnnbench.logs"] == set()
