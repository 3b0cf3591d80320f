"""config's command-line rules: flags and aliases, the budget-or-size rule, the grid of listed
values."""

import pytest

from rnnbench.config import (
    check_budget_or_size,
    command_line_wins,
    config_grid,
    flag,
    option_flags,
    preset,
)


def test_a_field_with_an_alias_takes_both_flags_the_long_one_first():
    assert option_flags("hidden_size") == ["--hidden-size", "--hidden"]
    assert option_flags("params_budget") == ["--params-budget", "--params"]
    assert option_flags("lr_decay_every") == ["--lr-decay-every"]
    assert flag("hidden_size") == "--hidden"  # (errors name the alias, as users type it)


@pytest.mark.parametrize(
    "budgets, sizes", [([0], []), ([0], [64]), ([2000], []), ([0, 0], [64, 128])]
)
def test_a_budget_or_a_size_alone_is_fine(budgets, sizes):
    check_budget_or_size(budgets, sizes)


@pytest.mark.parametrize(
    "budgets, sizes", [([2000], [64]), ([0, 500, 900], [64]), ([2000], [8, 16])]
)
def test_a_budget_with_a_size_is_refused(budgets, sizes):
    with pytest.raises(
        ValueError,
        match=r"^give a parameter budget \(--params\) or a hidden size \(--hidden\), "
        r"not both$",
    ):
        check_budget_or_size(budgets, sizes)


def test_the_grid_holds_the_listed_values_and_the_config_the_single_ones():
    config, grid = config_grid(
        "quick", {"lr": "1e-3,1e-2", "steps": "50", "clip": None, "device": "cpu"}
    )
    assert grid == {"lr": [1e-3, 1e-2]}
    assert config == preset("quick").replace(steps=50, device="cpu")


@pytest.mark.parametrize(
    "fields",
    [
        {"hidden_size": "64", "params_budget": "2000"},
        {"hidden_size": "8,16", "params_budget": "2000"},
        {"hidden_size": "8", "params_budget": "500,900"},
    ],
)
def test_the_grid_refuses_a_budget_with_a_size(fields):
    with pytest.raises(ValueError, match="not both"):
        config_grid("default", fields)


def test_the_command_line_replaces_a_config_files_other_sizing():
    both = {"hidden_size": 64, "params_budget": "2000", "lr": "1e-3"}
    assert command_line_wins(both, {"params_budget"}, {"hidden_size"}) == {
        **both,
        "hidden_size": None,
    }
    assert command_line_wins(both, {"hidden_size"}, {"params_budget"}) == {
        **both,
        "params_budget": None,
    }
    assert (
        command_line_wins(both, {"hidden_size", "params_budget"}, set()) == both
    )  # both typed: refused later
    assert (
        command_line_wins(both, {"params_budget"}, set()) == both
    )  # the other is not the file's: refused later
    assert command_line_wins(
        {"hidden_size": None, "params_budget": "2000"}, {"params_budget"}, set()
    ) == {"hidden_size": None, "params_budget": "2000"}
