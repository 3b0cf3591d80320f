"""The cell contract (rnnbench/cell.py): what a plugin cell declares when it registers (memory,
parameter count) is used as a built-in's is, the accessors' defaults, the cell card, and that the
rest of the framework asks cells only through the contract."""

import functools
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import rnnbench
from rnnbench import cell as contract
from rnnbench import resources
from rnnbench.cells.eurnn import eurnn
from rnnbench.config import RunConfig
from rnnbench.registry import RegistryError
from rnnbench.sizing import count_params

ROOT = Path(__file__).resolve().parents[1]
TASK = rnnbench.build_task("copying:delay=30:n_train=100:n_valid=10:n_test=10")
CPU = torch.device("cpu")


class Bare(nn.Module):
    """A cell with the required members only: forward and output_size."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.layer = nn.Linear(input_size, hidden_size)
        self.output_size = hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.layer(x))


def activations(config, floats):
    """The estimate's activation bytes (training, evaluation) for a cell keeping `floats`."""
    train = (
        config.batch_size
        * TASK.length
        * (config.hidden_size * floats[0] + 4 * TASK.num_classes + 2 * TASK.input_size)
    )
    evaluation = (
        config.eval_batch_size
        * TASK.length
        * (config.hidden_size * floats[1] + TASK.num_classes + TASK.input_size)
    )
    return train * config.itemsize, evaluation * config.itemsize


# --- memory -------------------------------------------------------------------------------


def test_a_plugin_cell_that_declares_its_memory_is_estimated_with_it(scratch_cells):
    @rnnbench.register_cell("contract-thrifty", memory=(2, 1))
    def thrifty(input_size, hidden_size):
        return Bare(input_size, hidden_size)

    @rnnbench.register_cell("contract-silent")
    def silent(input_size, hidden_size):
        return Bare(input_size, hidden_size)

    config = RunConfig(hidden_size=100, batch_size=10, eval_batch_size=20)
    thrifty_estimate = resources.estimate(
        TASK, rnnbench.parse_cell_spec("contract-thrifty"), config
    )
    assert (thrifty_estimate.training, thrifty_estimate.evaluation) == activations(config, (2, 1))
    silent_estimate = resources.estimate(TASK, rnnbench.parse_cell_spec("contract-silent"), config)
    assert (silent_estimate.training, silent_estimate.evaluation) == activations(
        config, contract.DEFAULT_MEMORY
    )


def test_a_memory_function_gets_the_options_the_size_and_the_device(scratch_cells):
    calls = []

    def memory(options, hidden_size, device):
        calls.append((dict(options), hidden_size, device))
        return (4 * options["layers"], 2)

    @rnnbench.register_cell("contract-layered", memory=memory)
    def layered(input_size, hidden_size, layers: int = 1):
        return Bare(input_size, hidden_size)

    spec = rnnbench.parse_cell_spec("contract-layered:layers=3")
    assert contract.memory_floats(spec, 64, CPU) == (12, 2)
    assert calls == [({"layers": 3}, 64, CPU)]


def test_a_plugin_cell_that_declares_its_memory_is_memory_checked_with_it(scratch_cells):
    """A sweep that fits with the default floats is refused once the cell says it keeps more."""
    for name, memory in (("contract-small", None), ("contract-hungry", (2400, 800))):
        rnnbench.register_cell(name, memory=memory)(
            lambda input_size, hidden_size: Bare(input_size, hidden_size)
        )
    config = RunConfig(hidden_size=100, batch_size=10, eval_batch_size=20)
    small, hungry = (
        rnnbench.parse_cell_spec(name) for name in ("contract-small", "contract-hungry")
    )
    available = {"host": 3 * resources.estimate(TASK, small, config).total}
    resources.check_memory(TASK, "copying", [(small, 100)], config, "cpu", available=available)
    with pytest.raises(ValueError, match=r"contract-hungry needs about .* available; lower"):
        resources.check_memory(TASK, "copying", [(hungry, 100)], config, "cpu", available=available)


def test_the_built_in_cells_declare_the_memory_they_were_measured_at():
    expected = {
        "rnn": (10, 4),
        "lstm": (20, 3),
        "gru": (18, 6),
        "lru": (28, 8),
        "mingru": (32, 8),
        "minlstm": (48, 8),
        "exprnn": (24, 8),
        "cornn": (24, 8),
    }
    for name, floats in expected.items():
        assert contract.memory_floats(rnnbench.parse_cell_spec(name), 128, CPU) == floats, name
    reference = rnnbench.parse_cell_spec("eurnn-c8:impl=reference:output=complex")
    assert contract.memory_floats(reference, 128, CPU) == (9 * 8 + 18 + 6, 8 + 2)
    full = rnnbench.parse_cell_spec("eurnn-full:impl=reference")  # capacity N: 128 layers
    assert contract.memory_floats(full, 128, CPU) == (9 * 128 + 18, 8)


@pytest.mark.parametrize(
    "memory", [(1,), (1, -2), ("24", 8), [24, 8], (True, 1), (float("nan"), 1), 24]
)
def test_a_memory_declaration_that_is_not_a_pair_of_floats_is_refused(scratch_cells, memory):
    with pytest.raises(
        RegistryError, match=r"cell 'contract-bad': memory must be \(train floats, eval floats\)"
    ):
        rnnbench.register_cell("contract-bad", memory=memory)
    assert "contract-bad" not in rnnbench.list_cells()


def test_a_memory_function_that_returns_no_pair_names_the_cell(scratch_cells):
    rnnbench.register_cell("contract-odd", memory=lambda options, n, device: 24)(
        lambda input_size, hidden_size: Bare(input_size, hidden_size)
    )
    with pytest.raises(TypeError, match="cell 'contract-odd': its memory function returned 24"):
        contract.memory_floats(rnnbench.parse_cell_spec("contract-odd"), 8, CPU)


# --- parameter counts ---------------------------------------------------------------------


class MeshLike(Bare):
    """A cell whose build reads data (.tolist()), which torch's meta device cannot give."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.order = torch.randperm(hidden_size).tolist()


def test_a_plugin_cell_that_declares_its_size_is_counted_without_building_it(scratch_cells):
    devices = []

    def build(input_size, hidden_size, extra: int = 0):
        devices.append(torch.empty(0).device.type)
        return MeshLike(input_size, hidden_size)

    def size(input_size, hidden_size, options):
        return (input_size + 1) * hidden_size + options["extra"], hidden_size

    rnnbench.register_cell("contract-counted", size=size)(build)
    spec = rnnbench.parse_cell_spec("contract-counted:extra=5")
    assert (
        count_params(TASK, spec, 1000) == (TASK.input_size + 1) * 1000 + 5 + 1001 * TASK.num_classes
    )
    assert devices == ["meta"]  # tried on the meta device only, never built for real
    assert contract.analytic_size(spec, 3, 7) == (4 * 7 + 5, 7)


def test_a_cell_that_declares_no_size_is_counted_by_building_it(scratch_cells):
    devices = []

    def build(input_size, hidden_size):
        devices.append(torch.empty(0).device.type)
        return MeshLike(input_size, hidden_size)

    rnnbench.register_cell("contract-built")(build)
    spec = rnnbench.parse_cell_spec("contract-built")
    assert contract.analytic_size(spec, 1, 8) is None
    assert count_params(TASK, spec, 8) == (TASK.input_size + 1) * 8 + 9 * TASK.num_classes
    assert devices == ["meta", "cpu"]  # the meta build failed: built for real, as a last resort


def test_a_size_declaration_must_be_a_function(scratch_cells):
    with pytest.raises(
        RegistryError, match=r"cell 'contract-bad': size must be a function .*; got \(10, 8\)"
    ):
        rnnbench.register_cell("contract-bad", size=(10, 8))


def test_a_plugin_partial_of_a_built_in_factory_is_sized_as_that_factory(scratch_cells):
    rnnbench.register_cell("contract-eurnn-c6")(functools.partial(eurnn, capacity=6))
    mine, eurnn_c6 = (
        rnnbench.parse_cell_spec("contract-eurnn-c6"),
        rnnbench.parse_cell_spec("eurnn:capacity=6"),
    )
    assert contract.analytic_size(mine, 1, 64) == contract.analytic_size(eurnn_c6, 1, 64)
    assert contract.memory_floats(mine, 64, CPU) == contract.memory_floats(eurnn_c6, 64, CPU)


# --- the module's optional members ----------------------------------------------------------


def test_the_accessors_defaults_for_a_cell_with_the_required_members_only():
    cell, readout = Bare(2, 4), nn.Linear(4, 3)
    weights = readout.weight.clone()
    state = torch.random.get_rng_state()
    contract.init_readout(cell, readout)
    assert torch.equal(readout.weight, weights) and torch.equal(torch.random.get_rng_state(), state)
    assert contract.output_size(cell) == 4
    assert contract.implementation(cell) == "native"
    assert contract.lr_groups(cell) == {} and contract.lr_groups(None) == {}
    assert contract.recurrent_matrix(cell) is None


def test_the_accessors_return_what_a_cell_defines():
    class Full(Bare):
        last_impl = "scan"

        def init_readout(self, linear):
            nn.init.zeros_(linear.weight)

        def lr_groups(self):
            return {"input": [self.layer.weight]}

        def recurrent_matrix(self):
            return torch.eye(self.output_size)

    cell, readout = Full(2, 4), nn.Linear(4, 3)
    contract.init_readout(cell, readout)
    assert not readout.weight.any()
    assert contract.implementation(cell) == "scan"
    assert contract.lr_groups(cell) == {"input": [cell.layer.weight]}
    assert torch.equal(contract.recurrent_matrix(cell), torch.eye(4))
    cell.last_impl = None  # (a cell that has not run yet)
    assert contract.implementation(cell) == "native"


@pytest.mark.parametrize("size", [None, 0, 2.0, True, "4"])
def test_a_cell_without_a_positive_integer_output_size_is_named(size):
    cell = Bare(2, 4)
    cell.output_size = size
    with pytest.raises(
        TypeError,
        match=f"cell Bare must have an attribute output_size.*; got {re.escape(repr(size))}",
    ):
        contract.output_size(cell)


def test_group_rate_lives_below_the_optimizer_and_the_cells():
    assert contract.group_rate("angles", {"angles_lr": 1e-4}, 1e-3) == 1e-4
    assert contract.group_rate("o", {"o_lr": 0.0, "o_lr_factor": 0.1}, 1e-3) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="no option 'x_lr'"):
        contract.group_rate("x", {}, 1e-3)


# --- the card --------------------------------------------------------------------------------


def test_a_card_shows_a_cell_without_its_registry():
    card = contract.card("eurnn-c4:diag_phase=true")
    assert json.loads(json.dumps(card)) == card
    assert card["name"] == "eurnn-c4" and card["spec"] == "eurnn-c4:diag_phase=true"
    assert card["cell_version"] == 2
    assert card["citation"].startswith("@inproceedings{jing2017tunable,")
    assert card["summary"] == "EURNN, tunable style, capacity 4."
    assert card["options"]["capacity"] == 4 and card["options"]["diag_phase"] is True
    assert set(card["options"]) == set(
        rnnbench.CELLS.get("eurnn-c4").options
    )  # every option, resolved


def test_a_plugin_cells_card_without_a_citation(scratch_cells):
    @rnnbench.register_cell("contract-carded", version=3)
    def carded(input_size, hidden_size, gain: float = 1.5):
        """My cell.

        Its details."""
        return Bare(input_size, hidden_size)

    assert contract.card(rnnbench.parse_cell_spec("contract-carded")) == {
        "name": "contract-carded",
        "spec": "contract-carded",
        "cell_version": 3,
        "citation": "",
        "summary": "My cell.",
        "options": {"gain": 1.5},
    }


# --- only the contract asks ------------------------------------------------------------------

OPTIONAL = ("output_size", "last_impl", "init_readout", "lr_groups", "recurrent_matrix")
LOOKUP = re.compile(r"\b(?:getattr|hasattr)\(.*?[\"'](" + "|".join(OPTIONAL) + r")[\"']")


def sources():
    """The framework's, the cells' and the benchmarks' Python files, but the contract itself."""
    files = [
        p
        for folder in ("rnnbench", "cells", "tasks", "benchmarks")
        for p in (ROOT / folder).rglob("*.py")
    ]
    return [p for p in files if p != ROOT / "rnnbench" / "cell.py"]


def test_no_module_but_the_contract_looks_up_an_optional_cell_member():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if LOOKUP.search(line)
    ]
    assert not found, "ask through rnnbench.cell instead:\n" + "\n".join(found)
    assert LOOKUP.search(
        'getattr(type(cell), "recurrent_matrix", None)'
    )  # (the pattern does find one)


def test_cells_import_nothing_of_the_optimizer():
    importing = re.compile(
        r"^\s*(from rnnbench\.optim\b|from rnnbench import .*\boptim\b|import rnnbench\.optim)",
        re.MULTILINE,
    )
    found = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "cells").rglob("*.py")
        if importing.search(p.read_text())
    ]
    assert not found
