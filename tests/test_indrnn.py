"""IndRNN: its step, the stack of layers, the bound on the recurrent weights under large optimizer
steps, the projected gradient that enforces it, initialisation and sizes. Its gradcheck and bad
options: test_cell_checks.py."""

import pytest
import torch

import rnnbench
from rnnbench.cells.indrnn import IndependentRecurrence, IndRNN


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_each_layer_steps_by_the_paper_equation_on_the_states_of_the_layer_below(layers):
    torch.manual_seed(0)
    cell = rnnbench.build_cell(f"indrnn:layers={layers}", 3, 6).double()
    with torch.no_grad():
        for linear in cell.inputs:
            linear.bias.normal_()
        cell.recurrent.uniform_(-1, 1)  # inside the bound 2^(1/784) > 1, signs both ways
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    states = x
    for linear, u in zip(cell.inputs, cell.recurrent, strict=True):
        h = torch.zeros(4, 6, dtype=torch.float64)
        expected = []
        for t in range(9):
            h = torch.relu(states[:, t] @ linear.weight.T + u * h + linear.bias)
            expected.append(h)
        states = torch.stack(expected, 1)
    torch.testing.assert_close(cell(x), states, rtol=0, atol=1e-13)


def test_the_hand_written_backward_matches_autograd_through_the_step_loop():
    torch.manual_seed(0)
    xp = torch.randn(7, 3, 5, dtype=torch.float64, requires_grad=True)  # units switch on and off
    u = torch.empty(5, dtype=torch.float64).uniform_(-1, 1).requires_grad_()
    grad = torch.randn(3, 7, 5, dtype=torch.float64).transpose(
        0, 1
    )  # not contiguous, as the cell's

    def by_autograd(xp, u):
        h, hs = torch.zeros(3, 5, dtype=torch.float64), []
        for t in range(7):
            h = torch.relu(xp[t] + u * h)
            hs.append(h)
        return torch.stack(hs)

    expected = by_autograd(xp, u)
    got = IndependentRecurrence.apply(xp, u)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-14)
    for g, e in zip(
        torch.autograd.grad(got, (xp, u), grad),
        torch.autograd.grad(expected, (xp, u), grad),
        strict=False,
    ):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


def test_the_bound_is_max_gain_to_the_one_over_max_length():
    assert rnnbench.build_cell("indrnn", 1, 4).bound == 2 ** (1 / 784)
    assert rnnbench.build_cell("indrnn:max_length=100:max_gain=5", 1, 4).bound == 5 ** (1 / 100)


def test_the_default_is_six_layers_and_the_recurrent_weight_has_one_row_per_layer():
    cell = rnnbench.build_cell("indrnn", 2, 5)
    assert cell.layers == 6 and len(cell.inputs) == 6
    assert cell.recurrent_weight().shape == (6, 5)
    assert rnnbench.build_cell("indrnn:layers=2", 2, 5).recurrent_weight().shape == (2, 5)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_recurrent_weights_stay_inside_their_bound_after_large_optimizer_steps(optimizer):
    torch.manual_seed(0)
    cell = rnnbench.build_cell("indrnn:max_length=50:layers=2", 2, 8)
    bound = cell.bound
    # only u moves: SGD steps this large would blow the input weights of a stack up to inf
    opt = (
        torch.optim.SGD([cell.recurrent], lr=100.0)
        if optimizer == "sgd"
        else torch.optim.Adam([cell.recurrent], lr=1.0)
    )
    x = torch.rand(5, 20, 2) + 0.5
    with torch.no_grad():
        for linear in cell.inputs:
            linear.weight.abs_()  # every unit of every layer active: the loss reaches every u
    for sign in (-1.0, 1.0):  # push every u up (a larger state), then down
        for _ in range(10):
            opt.zero_grad()
            (sign * cell(x).sum()).backward()
            opt.step()
            u = cell.recurrent_weight()
            assert u.abs().max() <= bound, u
        crossed = cell.recurrent != cell.recurrent_weight()
        assert crossed.any(1).all()  # the steps did cross the bound, in each layer


def test_the_gradient_reaches_a_weight_at_its_bound_only_towards_the_inside():
    cell = IndRNN(1, 4, layers=1, max_length=10)
    b = cell.bound
    with torch.no_grad():
        cell.recurrent.copy_(torch.tensor([[b + 0.5, b + 0.5, -b - 0.5, 0.3]]))
    torch.testing.assert_close(cell.recurrent_weight().detach(), torch.tensor([[b, b, -b, 0.3]]))
    # d loss / d u_eff = c; a descent step moves u by -c
    c = torch.tensor([[1.0, -1.0, 1.0, 2.0]])
    (cell.recurrent_weight() * c).sum().backward()
    # u0 above, step down: inward, passes; u1 above, step up: blocked; u2 below, step down: blocked
    torch.testing.assert_close(cell.recurrent.grad, torch.tensor([[1.0, 0.0, 0.0, 2.0]]))


def test_a_weight_pushed_past_its_bound_comes_back():
    cell = IndRNN(1, 1, layers=1, max_length=10)
    opt = torch.optim.SGD(cell.parameters(), lr=0.1)
    with torch.no_grad():
        cell.recurrent.fill_(cell.bound + 0.05)
    for _ in range(
        2
    ):  # loss = u_eff: descent lowers u; the first step is taken although u_eff sits at the bound
        opt.zero_grad()
        cell.recurrent_weight().sum().backward()
        opt.step()
    assert cell.recurrent_weight().item() < cell.bound - 0.1


def _spans(u, low, high):
    return (
        low <= u.min()
        and u.max() <= high
        and u.min() < low + 0.01 * (high - low)
        and u.max() > high - 0.01 * (high - low)
    )


@pytest.mark.parametrize(
    "init, last_low, last_high", [("uniform", 0.0, 1.0), ("long", 2 ** (-1 / 784), 2 ** (1 / 784))]
)
def test_initialisation_long_applies_to_the_last_layer_only(init, last_low, last_high):
    torch.manual_seed(0)
    cell = rnnbench.build_cell(f"indrnn:init={init}:layers=3", 2, 1000)
    u = cell.recurrent
    assert _spans(u[0], 0.0, 1.0) and _spans(u[1], 0.0, 1.0)
    assert _spans(u[2], last_low, last_high)
    assert not any(linear.bias.any() for linear in cell.inputs)


def test_the_default_stack_stays_moderate_at_init_over_784_sparse_pixels():
    """Without batch normalisation each layer sums its input over ~1/(1-u) steps; with nn.Linear's
    default input weights the six layers' last states reached |h_T| ~ 1e5 at init here (a loss of
    thousands). The authors' input init, U(+-0.30/sqrt(fan_in)), keeps them near 1."""
    torch.manual_seed(0)
    pixels = torch.rand(50, 784, 1)
    x = pixels * (pixels > 0.8)  # sparse, in [0, 1], as MNIST's
    cell = IndRNN(1, 64)
    for linear in cell.inputs:
        fan_in = linear.weight.shape[1]
        assert linear.weight.abs().max() <= (2 / 65) ** 0.5 * (3 / fan_in) ** 0.5 + 1e-7
    with torch.no_grad():
        last = cell(x)[:, -1]
    assert last.abs().mean() < 10 and last.abs().max() < 1e3, (last.abs().mean(), last.abs().max())


@pytest.mark.parametrize(
    "layers, count",
    [
        (1, 15 + 5 + 5),  # W_1 5x3, b_1 5, u_1 5: N (input + 2)
        (2, 15 + 5 + 5 + 25 + 5 + 5),  # and W_2 5x5, b_2 5, u_2 5: + N (N + 2)
        (6, 25 + 5 * 35),  # the default
    ],
)
def test_parameters_counted_by_hand(layers, count):
    spec = "indrnn" if layers == 6 else f"indrnn:layers={layers}"
    cell = rnnbench.build_cell(spec, 3, 5)
    assert (
        sum(p.numel() for p in cell.parameters())
        == count
        == 5 * (3 + 2) + (layers - 1) * 5 * (5 + 2)
    )
