"""The Legendre Memory Unit: its discretised memory against independent computations, the Legendre
window it holds, its step against the paper's equations, inits and sizes. Its gradcheck and bad
options: test_cell_checks.py."""

import math

import pytest
import torch

import rnnbench
from rnnbench.cells.lmu import LMU


def paper_system(order: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The continuous (A, B) / theta of the paper, entry by entry (not the cell's code path)."""
    a = torch.zeros(order, order, dtype=torch.float64)
    b = torch.zeros(order, dtype=torch.float64)
    for i in range(order):
        b[i] = (2 * i + 1) * (-1) ** i / theta
        for j in range(order):
            a[i, j] = (2 * i + 1) * (-1 if i < j else (-1) ** (i - j + 1)) / theta
    return a, b


def rk4_hold(
    a: torch.Tensor, b: torch.Tensor, substeps: int = 1600
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate m' = A m + B u over one unit step with u held at 1 (classic RK4): the columns of
    [Phi | m] from [I | 0] give A_bar and B_bar."""
    d = a.shape[0]
    state = torch.cat(
        [torch.eye(d, dtype=torch.float64), torch.zeros(d, 1, dtype=torch.float64)], 1
    )
    drive = torch.cat(
        [torch.zeros(d, d, dtype=torch.float64), b[:, None]], 1
    )  # B u: only the last column

    def f(s):
        return a @ s + drive

    h = 1.0 / substeps
    for _ in range(substeps):
        k1 = f(state)
        k2 = f(state + h / 2 * k1)
        k3 = f(state + h / 2 * k2)
        k4 = f(state + h * k3)
        state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return state[:, :d], state[:, d]


@pytest.mark.parametrize("order, theta", [(6, 10.0), (32, 50.0), (256, 784.0)])
def test_the_zero_order_hold_matches_an_rk4_integration_of_the_paper_system(order, theta):
    cell = LMU(1, 4, order=order, theta=theta)
    a_bar, b_bar = cell.memory_matrices()
    assert (
        a_bar.dtype == torch.float64 and a_bar.shape == (order, order) and b_bar.shape == (order,)
    )
    a, b = paper_system(order, theta)
    a_rk4, b_rk4 = rk4_hold(
        a, b
    )  # (its error falls 16-fold per halving of the substep: ~7e-13 here)
    torch.testing.assert_close(a_bar, a_rk4, rtol=0, atol=2e-12)
    torch.testing.assert_close(b_bar, b_rk4, rtol=0, atol=2e-12)
    # and the closed form B_bar = A^-1 (A_bar - I) B (A is invertible)
    b_closed = torch.linalg.solve(a, (a_bar - torch.eye(order, dtype=torch.float64)) @ b)
    torch.testing.assert_close(b_bar, b_closed, rtol=0, atol=1e-9)


def shifted_legendre(i: int, r: torch.Tensor) -> torch.Tensor:
    """P_i(r) on [0, 1], P_i(0) = 1 and P_i(1) = (-1)^i, from its explicit sum."""
    return (-1) ** i * sum(math.comb(i, k) * math.comb(i + k, k) * (-r) ** k for k in range(i + 1))


def test_the_memory_holds_the_legendre_coefficients_of_the_last_theta_steps():
    """With e_h = e_m = 0 and e_x = 1, u = x: the input over the window [t - theta, t] is read back
    from m_t by the shifted Legendre polynomials. m_t is read through the cell's own forward pass:
    hidden size = order, W_m = s I and W_x = W_h = 0 give h_t = tanh(s m_t)."""
    order, theta, scale = 12, 60.0, 1e-3
    cell = LMU(1, order, order=order, theta=theta, init="psmnist").double()
    with torch.no_grad():
        cell.memory_kernel.copy_(scale * torch.eye(order, dtype=torch.float64))
    steps = 300
    t = torch.arange(steps, dtype=torch.float64)
    signal = torch.sin(2 * math.pi * t / 150) + 0.5 * torch.cos(
        2 * math.pi * t / 97 + 1
    )  # slow against theta
    m = torch.atanh(cell(signal[None, :, None]))[0] / scale  # (T, order)
    for delay in (0.0, 15.0, 30.0, 45.0, 60.0):
        weights = torch.stack(
            [
                shifted_legendre(i, torch.tensor(delay / theta, dtype=torch.float64))
                for i in range(order)
            ]
        )
        decoded = m[100:] @ weights  # u(t - delay) for t = 100 .. T-1
        # m_t holds u_t over (t - 1, t]: the held signal, delayed by `delay`, is u at
        # t - delay + 1/2 on average
        target = torch.sin(2 * math.pi * (t[100:] - delay + 0.5) / 150) + 0.5 * torch.cos(
            2 * math.pi * (t[100:] - delay + 0.5) / 97 + 1
        )
        # (about 5e-4 inside the window; 0.015 at its newest edge, where a degree-11 fit is worst.
        # Off by half a step either way, the error is 0.037: the test sees the timing.)
        tolerance = 0.02 if delay == 0 else 2e-3
        assert (decoded - target).abs().max() < tolerance, (delay, (decoded - target).abs().max())


def reference_forward(cell: LMU, x: torch.Tensor) -> torch.Tensor:
    """The paper's equations, one step at a time, as the module docstring writes them."""
    a_bar, b_bar = cell.memory_matrices()
    batch, steps, _ = x.shape
    h = x.new_zeros(batch, cell.hidden_size)
    m = x.new_zeros(batch, cell.order)
    out = []
    for t in range(steps):
        u = x[:, t] @ cell.input_encoder + h @ cell.hidden_encoder + m @ cell.memory_encoder  # (B,)
        m = m @ a_bar.T + u[:, None] * b_bar
        h = torch.tanh(
            x[:, t] @ cell.input_kernel.T + h @ cell.hidden_kernel.T + m @ cell.memory_kernel.T
        )
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("init", ["default", "psmnist"])
def test_a_step_is_the_paper_equations(init):
    torch.manual_seed(0)
    cell = rnnbench.build_cell(f"lmu:order=9:theta=7.5:init={init}", 3, 5).double()
    with torch.no_grad():  # every term active (e_m, W_x, W_h start at 0 in some inits)
        for p in cell.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(4, 11, 3, dtype=torch.float64)
    torch.testing.assert_close(cell(x), reference_forward(cell, x), rtol=0, atol=1e-12)


def test_inits():
    torch.manual_seed(0)
    default = rnnbench.build_cell("lmu:order=16", 4, 50)
    assert torch.equal(default.memory_encoder, torch.zeros(16))
    assert default.input_encoder.abs().max() <= math.sqrt(3 / 4)  # LeCun uniform
    assert default.hidden_encoder.abs().max() <= math.sqrt(3 / 50)
    assert abs(default.hidden_kernel.std().item() - math.sqrt(2 / 100)) < 0.01  # Xavier normal
    ps = rnnbench.build_cell("lmu:order=16:init=psmnist", 4, 50)
    assert torch.equal(ps.input_encoder, torch.ones(4))
    for p in (ps.hidden_encoder, ps.memory_encoder, ps.input_kernel, ps.hidden_kernel):
        assert not p.any()
    assert ps.memory_kernel.any()


def test_parameters_counted_by_hand():
    # e_x 3, e_h 5, e_m 7, W_x 5x3, W_h 5x5, W_m 5x7
    cell = rnnbench.build_cell("lmu:order=7", 3, 5)
    assert sum(p.numel() for p in cell.parameters()) == 3 + 5 + 7 + 15 + 25 + 35
    # the paper's psMNIST cell: 212 units, order 256 -> 99,897 trainable (Keras summary, 102,027
    # with the readout)
    cell = rnnbench.build_cell("lmu", 1, 212)
    assert sum(p.numel() for p in cell.parameters()) == 99_897
    assert cell.output_size == 212


def test_the_defaults_are_the_paper_psmnist_ones():
    cell = rnnbench.build_cell("lmu", 1, 8)
    assert (cell.order, cell.theta, cell.init) == (256, 784.0, "default")
