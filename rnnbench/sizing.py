"""Parameter-matched comparisons: the hidden size that brings a cell's parameter count (readout
included) closest to a budget without exceeding it.

An EURNN of 256 units has a few thousand parameters, an LSTM of the same width about a
quarter of a million: comparing at equal hidden size and at equal parameter count answer
different questions, and papers on unitary RNNs report both.

>>> match_hidden_size(build_task("pmnist"), parse_cell_spec("lstm"), 20_000)
(67, 19440)
"""

from __future__ import annotations

from typing import Any

from rnnbench.registry import Spec, build_cell

MAX_HIDDEN = 1 << 16


def count_params(task: Any, spec: Spec, hidden_size: int) -> int | None:
    """Parameters of the cell and its readout at `hidden_size`; None where the cell refuses the
    size (odd N for EURNN, N not a power of two for the FFT style, capacity above N...)."""
    try:
        cell = build_cell(spec, task.input_size, hidden_size)
    except ValueError:
        return None
    return sum(p.numel() for p in cell.parameters()) + (cell.output_size + 1) * task.num_classes


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
            raise ValueError(f"{spec}: more than {MAX_HIDDEN} units still fit in {budget} parameters")
    while high - low > 1:
        middle = (low + high) // 2
        found = _largest_legal(task, spec, middle)
        if found is not None and found[1] <= budget:
            best, low = max(best or found, found), middle
        else:
            high = middle
    if best is None:
        smallest = next(p for n in range(1, MAX_HIDDEN) if (p := count_params(task, spec, n)) is not None)
        raise ValueError(f"{spec}: its smallest legal size has {smallest} parameters, more than --params {budget}")
    return best
