"""coRNN: its IMEX and explicit steps against the equations written out, initialisation, sizes and
the paper's psMNIST defaults. Its gradcheck and bad options: test_cell_checks.py."""

import math

import pytest
import torch

import rnnbench


@pytest.mark.parametrize("scheme", ["imex", "explicit"])
def test_a_step_is_the_scheme_written_out(scheme):
    """imex: the paper's eq. (3), damping at the new z_n, solved here by fixed-point iteration
    rather than by the closed form the cell uses; explicit: the authors' code, damping at
    z_{n-1}."""
    torch.manual_seed(0)
    cell = rnnbench.build_cell(f"cornn:dt=0.3:gamma=1.5:epsilon=2:scheme={scheme}", 3, 6).double()
    with torch.no_grad():  # larger weights than the init, so that tanh is not near-linear
        for p in cell.parameters():
            p.mul_(4)
    x = torch.randn(4, 10, 3, dtype=torch.float64)
    w, wz, v, b = cell.weight_y, cell.weight_z, cell.input.weight, cell.input.bias
    dt, gamma, eps = 0.3, 1.5, 2.0
    y = torch.zeros(4, 6, dtype=torch.float64)
    z = torch.zeros(4, 6, dtype=torch.float64)
    expected = []
    for n in range(10):
        drive = torch.tanh(y @ w.T + z @ wz.T + x[:, n] @ v.T + b)
        if scheme == "explicit":
            z = z + dt * (drive - gamma * y - eps * z)
        else:
            # z_n = z_{n-1} + dt drive - dt gamma y_{n-1} - dt eps z_n: a contraction for dt eps < 1
            z_new = z
            for _ in range(200):
                z_new = z + dt * drive - dt * gamma * y - dt * eps * z_new
            z = z_new
        y = y + dt * z
        expected.append(y)
    torch.testing.assert_close(cell(x), torch.stack(expected, 1), rtol=0, atol=1e-12)


def test_the_default_scheme_is_the_papers_imex_step():
    torch.manual_seed(0)
    x = torch.randn(2, 30, 1)
    imex, explicit = (rnnbench.build_cell(f"cornn:scheme={s}", 1, 8) for s in ("imex", "explicit"))
    explicit.load_state_dict(imex.state_dict())
    default = rnnbench.build_cell("cornn", 1, 8)
    default.load_state_dict(imex.state_dict())
    assert default.scheme == "imex"
    torch.testing.assert_close(default(x), imex(x), rtol=0, atol=0)
    assert not torch.allclose(imex(x), explicit(x))


def test_initialisation_is_the_authors_single_linear_layer():
    torch.manual_seed(0)
    cell = rnnbench.build_cell("cornn", 3, 40)
    bound = 1 / math.sqrt(3 + 2 * 40)
    for p in cell.parameters():  # (W, Wz, V, b): all at the fan-in of [u, z, y], not at their own
        assert p.abs().max() <= bound
    values = torch.cat([p.flatten() for p in cell.parameters()])
    assert (
        values.abs().max() > 0.99 * bound
        and abs(values.std().item() - bound / math.sqrt(3)) < 0.05 * bound
    )


def test_parameters_counted_by_hand():
    # W 5x5, Wz 5x5, V 5x3, b 5: hidden * (input + 2 hidden + 1)
    cell = rnnbench.build_cell("cornn", 3, 5)
    assert sum(p.numel() for p in cell.parameters()) == 25 + 25 + 15 + 5 == 5 * (3 + 10 + 1)
    # the paper's psMNIST model, 256 units: 131,584 in the cell, 134k with the readout (its table)
    cell = rnnbench.build_cell("cornn", 1, 256)
    assert sum(p.numel() for p in cell.parameters()) == 131_584


def test_the_defaults_are_the_paper_psmnist_ones():
    cell = rnnbench.build_cell("cornn", 1, 8)
    assert (cell.dt, cell.gamma, cell.epsilon) == (0.076, 0.4, 8.0)
