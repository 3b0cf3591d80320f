"""Parameter matching: the largest legal hidden size under a budget, for every registered cell."""

import pytest

import rnnbench
from rnnbench.sizing import count_params, match_hidden_size

TASK = rnnbench.build_task("pmnist")


@pytest.mark.parametrize("budget", [300, 2_500, 20_000])
@pytest.mark.parametrize("name", rnnbench.list_cells())
def test_matched_size_is_the_largest_legal_one_under_the_budget(name, budget):
    spec = rnnbench.parse_cell_spec(name)
    try:
        size, params = match_hidden_size(TASK, spec, budget)
    except ValueError as error:  # the smallest legal size is already over budget
        assert "more than --params" in str(error)
        smallest = next(p for n in range(1, 100) if (p := count_params(TASK, spec, n)) is not None)
        assert smallest > budget
        return
    assert params == count_params(TASK, spec, size) <= budget
    # brute force: no larger legal size fits
    for bigger in range(size + 1, 2 * size + 64):
        count = count_params(TASK, spec, bigger)
        assert count is None or count > budget, (bigger, count)


def test_constraints_are_respected():
    size, _ = match_hidden_size(TASK, rnnbench.parse_cell_spec("eurnn-fft"), 20_000)
    assert size & (size - 1) == 0
    size, _ = match_hidden_size(TASK, rnnbench.parse_cell_spec("eurnn"), 20_000)
    assert size % 2 == 0


def test_count_includes_the_readout():
    cell = rnnbench.build_cell("rnn", 1, 10)
    assert count_params(TASK, rnnbench.parse_cell_spec("rnn"), 10) == \
        sum(p.numel() for p in cell.parameters()) + 10 * 10 + 10
