"""The cell contract: the one file a cell author reads.

A cell is a factory `build(input_size, hidden_size, **options) -> nn.Module`, registered by name
with `register_cell` (rnnbench.registry); its options are its keyword arguments, each with a
default (README.md, "Adding your own cell", has a whole one; cells/ holds the built-in ones). The
runner owns everything around the cell: the readout `Linear(output_size, num_classes)`, the loss,
the optimizer, the memory check. The rest of the framework asks a cell module what it needs only
through the accessors below, never with getattr: what a cell may leave out, and its default, is
written here once.

Required of the module:

- `forward(x)`: x (B, T, input_size) -> (B, T, output_size), every step's output. It must be
  causal (the output at step t depends on steps up to t only; tests/test_padding.py checks every
  registered cell): padded sequences rely on it.
- `output_size: int`: features per step of that output (the readout's input size).

Optional members of the module, each with what leaving it out means:

- `last_impl: str | None`: the implementation its last forward pass ran, for a cell with several
  (EURNN's `impl`, the scan cells' `scan`/`loop`); rows record it in `impl`. Default "native".
- `init_readout(self, linear: nn.Linear) -> None`: initialise the readout the runner puts after
  the cell (EURNN init=notebook). Default: torch's own initialisation of nn.Linear.
- `lr_groups(self) -> dict[str, list[nn.Parameter]]`: parameters that train at a rate of their
  own; group G's rate is the cell option `G_lr` (and `G_lr_factor`: see `group_rate`). Default:
  none, every parameter at --lr.
- `recurrent_matrix(self) -> Tensor`: the (N, N) recurrent matrix, real or complex, of a cell that
  is unitary or orthogonal by construction; the runner logs ‖U^H U − I‖_F. Default: not logged.
  A cell whose matrix is not meant to be unitary must not define it.

What a cell declares when it registers (`register_cell(name, ...)`), each optional:

- `version: int = 1`: bumped when what the cell computes changes (it is part of every run key).
- `citation: str = ""`: BibTeX of the cell's paper (`rnnbench cite`, the report's references).
- `memory`: floats the cell keeps per example, time step and hidden unit, (training step,
  evaluation batch): a pair, or a function `memory(options, hidden_size, device) -> (train, eval)`
  of the spec's resolved options. Default `DEFAULT_MEMORY`, more than a gated cell needs; the
  memory check (rnnbench.resources) refuses runs that cannot fit with it.
- `size`: `size(input_size, hidden_size, options) -> (parameters, output_size)`, counted without
  building, for a factory that cannot build on torch's meta device (data-dependent steps such as
  `.tolist()`). Default: the cell is built on the meta device and counted (rnnbench.sizing),
  failing that built for real.

A plugin's `functools.partial` of a registered factory that declares neither `memory` nor `size`
is sized as that factory is (`partial(eurnn, capacity=3)` as EURNN).

>>> spec = parse_cell_spec("lstm")
>>> implementation(build_cell(spec, 1, 8)), memory_floats(spec, 128, torch.device("cpu"))
('native', (20, 3))
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from rnnbench.registry import CELLS, Entry, Spec, is_floats

# Floats per example, step and unit (train, eval) of a cell that declares none (a plugin): more than
# a gated cell needs. Measured as the peak resident set on CPU (B=100, T=300, N=128), it covers the
# cells that declare none (estimate / peak: exprnn 3.4, scornn 2.5, cornn 2.6, indrnn 2.1, lmu 1.5).
DEFAULT_MEMORY = (24, 8)
DEFAULT_IMPLEMENTATION = "native"  # what rows record in `impl` for a cell with one implementation

Floats = tuple[float, float]  # (training step, evaluation batch), per example, step and unit


# --- the module's members ---------------------------------------------------------------


def output_size(cell: nn.Module) -> int:
    """Features per step of the cell's output (required); TypeError naming the cell without one.

    >>> output_size(build_cell("lstm", 1, 16))
    16
    """
    size = getattr(cell, "output_size", None)
    try:
        if isinstance(size, bool) or operator.index(size) < 1:
            raise TypeError
    except TypeError:
        raise TypeError(
            f"cell {type(cell).__name__} must have an attribute output_size, a positive int "
            f"(features per step of its output); got {size!r}"
        ) from None
    return operator.index(size)


def implementation(cell: nn.Module) -> str:
    """The implementation the cell's last forward pass ran (`last_impl`), "native" for a cell that
    does not say (one implementation) or has not run yet.

    >>> implementation(build_cell("lstm", 1, 16))
    'native'
    """
    return getattr(cell, "last_impl", None) or DEFAULT_IMPLEMENTATION


def init_readout(cell: nn.Module, readout: nn.Linear) -> None:
    """Let the cell initialise the readout that follows it (`init_readout`); a cell without one
    leaves torch's initialisation, and torch's random generator, untouched.

    >>> init_readout(build_cell("eurnn:init=notebook", 1, 8), nn.Linear(8, 10))
    """
    method = getattr(cell, "init_readout", None)
    if method is not None:
        method(readout)


def lr_groups(cell: nn.Module | None) -> dict[str, list[nn.Parameter]]:
    """The cell's learning-rate groups, {name: parameters} ({} for a cell without, or no cell).

    >>> {name: len(ps) for name, ps in lr_groups(build_cell("eurnn", 1, 8)).items()}
    {'angles': 2}
    """
    method = getattr(cell, "lr_groups", None) if cell is not None else None
    return dict(method()) if method is not None else {}


def recurrent_matrix(cell: nn.Module) -> torch.Tensor | None:
    """The cell's (N, N) unitary or orthogonal recurrent matrix, None for a cell that defines no
    `recurrent_matrix()`. Looked up on the class: it is a method, not a parameter or submodule.

    >>> (
    ...     recurrent_matrix(build_cell("exprnn", 1, 4)).shape,
    ...     recurrent_matrix(build_cell("lstm", 1, 4)),
    ... )
    (torch.Size([4, 4]), None)
    """
    if getattr(type(cell), "recurrent_matrix", None) is None:
        return None
    return cell.recurrent_matrix()


def group_rate(name: str, options: Mapping[str, Any], lr: float) -> float:
    """The learning rate the cell spec gives its group `name` at run rate `lr`: option `name_lr`,
    if not 0, else `name_lr_factor` times `lr` if that is not 0, else `lr` (the base group's).
    Cells call it to refuse a bad rate while a sweep is planned; rnnbench.optim to build groups.

    >>> (
    ...     group_rate("angles", {"angles_lr": 1e-4}, 1e-3),
    ...     group_rate("o", {"o_lr": 0, "o_lr_factor": 0.1}, 1e-3),
    ... )
    (0.0001, 0.0001)
    """
    option, factor_option = f"{name}_lr", f"{name}_lr_factor"
    if option not in options:
        raise ValueError(
            f"the cell declares lr group {name!r}, but its spec has no option {option!r}; "
            f"give its factory `{option}: float = 0.0` (0 = the run's --lr)"
        )
    rate, factor = options[option], options.get(factor_option, 0.0)
    for key, value in ((option, rate), (factor_option, factor)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(
                f"cell option {key}={value!r}: must be a finite number >= 0 (0 = not set)"
            )
    return float(rate or factor * lr)


# --- what the cell registered -----------------------------------------------------------


def _declaring(spec: Spec) -> Entry:
    """The entry whose declarations count for `spec`: its own, unless it declares nothing and its
    factory is a partial of another registered factory, whose entry then counts."""
    entry = CELLS.get(spec.name)
    if (
        entry.memory is not None
        or entry.size is not None
        or not isinstance(entry.factory, functools.partial)
    ):
        return entry
    base = entry.factory
    while isinstance(base, functools.partial):
        base = base.func
    for name in CELLS.names():  # (the registered factory itself, not another partial of it)
        if CELLS.get(name).factory is base:
            return CELLS.get(name)
    return entry


def memory_floats(spec: Spec, hidden_size: int, device: torch.device) -> Floats:
    """Floats the cell keeps per example, step and hidden unit at `hidden_size` on `device`:
    (training step, evaluation batch), as it registered them, else DEFAULT_MEMORY.

    >>> memory_floats(parse_cell_spec("lstm"), 128, torch.device("cpu"))
    (20, 3)
    """
    memory = _declaring(spec).memory
    if memory is None:
        return DEFAULT_MEMORY
    floats = memory(spec.options, hidden_size, device) if callable(memory) else memory
    if not is_floats(floats):
        raise TypeError(
            f"cell {spec.name!r}: its memory function returned {floats!r}; it must return "
            "(train floats, eval floats), two numbers >= 0"
        )
    return floats


def analytic_size(spec: Spec, input_size: int, hidden_size: int) -> tuple[int, int] | None:
    """(parameters, output size) counted from the options, as the cell registered its `size`;
    None for a cell that did not (it is counted by building it).

    >>> analytic_size(parse_cell_spec("eurnn"), 1, 8), analytic_size(parse_cell_spec("lstm"), 1, 8)
    ((40, 8), None)
    """
    size = _declaring(spec).size
    return None if size is None else size(input_size, hidden_size, dict(spec.options))


def cards(names: list[str], kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cards of the cells `names`: those `kept` (a results folder's: store.read_cell_cards),
    and for a cell with none kept (a folder written before cards were), its card from the registry
    where it is registered here; a cell in neither has none.

    >>> [c["name"] for c in cards(["lstm", "nowhere"], [])]
    ['lstm']
    """
    known = {c["name"] for c in kept}
    made = [
        card(name) for name in dict.fromkeys(names) if name not in known and name in CELLS.names()
    ]
    return kept + made


def card(spec: Spec | str) -> dict[str, Any]:
    """What the report and `rnnbench cite` show about a cell without its plugin installed: its
    name, canonical spec, version, citation (BibTeX), summary and resolved options (JSON-ready).

    >>> card("eurnn:capacity=4")["options"]["capacity"], card("lstm")["cell_version"]
    (4, 1)
    """
    spec = CELLS.parse(spec)
    entry = CELLS.get(spec.name)
    return {
        "name": spec.name,
        "spec": str(spec),
        "cell_version": entry.version,
        "citation": entry.citation,
        "summary": entry.summary,
        "options": dict(spec.options),
    }
