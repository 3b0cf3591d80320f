"""Parameter-matched comparisons: the hidden size that brings a cell's parameter count (readout
included) closest to a budget without exceeding it.

An EURNN of 256 units has a few thousand parameters, an LSTM of the same width about a
quarter of a million: comparing at equal hidden size and at equal parameter count answer
different questions, and papers on unitary RNNs report both.

>>> match_hidden_size(build_task("pmnist"), parse_cell_spec("lstm"), 20_000)
(67, 19440)
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from rnnbench.cell import analytic_size, output_size
from rnnbench.registry import Spec, build_cell

MAX_HIDDEN = 1 << 16


def cell_size(spec: Spec, input_size: int, hidden_size: int) -> tuple[int, int]:
    """(parameters, output size) of the cell at `hidden_size`, without allocating its weights;
    a size the cell refuses raises its ValueError (odd N for EURNN...).

    The cell is built on the meta device (shapes, no memory), which checks its options as a real
    build would. A cell that cannot be built there, having passed its checks, is counted by the
    `size` it registered (rnnbench.cell.analytic_size: EURNN's); failing that, built for real (its
    weights allocated, as a last resort).

    >>> cell_size(parse_cell_spec("lstm"), 1, 100_000)  # 160 GB of float32 weights, not allocated
    (40001200000, 100000)

    Counted once per (spec, sizes): a sweep's planning, sizing and memory estimate all ask.
    """
    return _cell_size(spec, input_size, hidden_size)


@functools.lru_cache(maxsize=4096)  # (a Spec hashes and compares by its canonical text)
def _cell_size(spec: Spec, input_size: int, hidden_size: int) -> tuple[int, int]:
    try:
        with torch.device("meta"):
            cell = build_cell(spec, input_size, hidden_size)
    except ValueError:
        raise
    except Exception:  # noqa: BLE001 - any failure on meta tensors: count another way
        counted = analytic_size(spec, input_size, hidden_size)
        if counted is not None:
            return counted
        cell = build_cell(spec, input_size, hidden_size)
    return sum(p.numel() for p in cell.parameters()), output_size(cell)


def check_size(task: Any, spec: Spec, hidden_size: int) -> int:
    """Parameters of the cell and its readout at `hidden_size`, without allocating them; a size the
    cell refuses raises its ValueError. The planner's check of each (cell, size) of a sweep."""
    params, outputs = cell_size(spec, task.input_size, hidden_size)
    return params + (outputs + 1) * task.num_classes


def count_params(task: Any, spec: Spec, hidden_size: int) -> int | None:
    """Parameters of the cell and its readout at `hidden_size`; None where the cell refuses the
    size (odd N for EURNN, N not a power of two for the FFT style, capacity above N...). Nothing
    is allocated (see cell_size)."""
    try:
        return check_size(task, spec, hidden_size)
    except ValueError:
        return None


def _largest_legal(task: Any, spec: Spec, limit: int) -> tuple[int, int] | None:
    """(size, params) of the largest size <= limit that the cell accepts."""
    for size in range(limit, 0, -1):
        params = count_params(task, spec, size)
        if params is not None:
            return size, params
    return None


def match_hidden_size(task: Any, spec: Spec, budget: int) -> tuple[int, int]:
    """(hidden size, parameter count) of the largest legal size within `budget` parameters.

    The count grows with the size, so the largest legal size at or below a limit is a
    non-decreasing function of the limit: doubling finds a limit over budget, then bisection.
    """
    best: tuple[int, int] | None = None
    low, high = 0, 1
    while True:
        found = _largest_legal(task, spec, high)
        if found is not None and found[1] > budget:
            break
        if found is not None:
            best = found
        low, high = high, high * 2
        if high > MAX_HIDDEN:
            raise ValueError(
                f"{spec}: more than {MAX_HIDDEN} units still fit in {budget} parameters"
            )
    while high - low > 1:
        middle = (low + high) // 2
        found = _largest_legal(task, spec, middle)
        if found is not None and found[1] <= budget:
            best, low = max(best or found, found), middle
        else:
            high = middle
    if best is None:
        smallest = next(
            p for n in range(1, MAX_HIDDEN) if (p := count_params(task, spec, n)) is not None
        )
        raise ValueError(
            f"{spec}: its smallest legal size has {smallest} parameters, "
            f"more than --params {budget}"
        )
    return best
