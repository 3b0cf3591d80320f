"""minGRU and minLSTM: the paper's equations step by step, impl=scan == impl=log-scan ==
impl=loop in float64 (with gates near 0 and near 1), g and log g, the convex-combination bound on
the states, stacked layers and parameter counts. Their gradcheck and bad options:
test_cell_checks.py."""

import pytest
import torch

import rnnbench
from rnnbench.cells.minimal import MinimalRNN, g, log_g

F64 = torch.float64
KINDS = ["gru", "lstm"]


def paper_forward(cell: MinimalRNN, x: torch.Tensor) -> torch.Tensor:
    """The paper's equations, one step at a time."""
    activation = g if cell.candidate == "g" else (lambda v: v)
    for layer in cell.layers:
        h = torch.zeros(x.shape[0], cell.hidden_size, dtype=x.dtype)
        states = []
        for x_t in x.unbind(1):
            h_tilde = activation(layer.linear_h(x_t))
            if cell.kind == "gru":
                z = torch.sigmoid(layer.linear_z(x_t))
                h = (1 - z) * h + z * h_tilde
            else:
                f, i = torch.sigmoid(layer.linear_f(x_t)), torch.sigmoid(layer.linear_i(x_t))
                h = f / (f + i) * h + i / (f + i) * h_tilde
            states.append(h)
        x = torch.stack(states, 1)
    return x


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize(
    "candidate, impl",
    [("g", "scan"), ("g", "log-scan"), ("g", "loop"), ("linear", "scan"), ("linear", "loop")],
)
@pytest.mark.parametrize("kind", KINDS)
def test_forward_is_the_papers_equations(kind, candidate, impl, layers):
    torch.manual_seed(0)
    cell = MinimalRNN(3, 5, kind, candidate, impl, layers).double()
    x = torch.randn(2, 13, 3, dtype=F64)
    torch.testing.assert_close(cell(x), paper_forward(cell, x), rtol=1e-10, atol=1e-12)


def extreme_gates(cell: MinimalRNN, scale: float) -> MinimalRNN:
    """Gate pre-activations of size ~scale (gates within e^-scale of 0 or 1), candidates of size
    ~1."""
    with torch.no_grad():
        for name, linear in cell.layers[0].named_children():
            if name != "linear_h":
                linear.weight *= scale
                linear.bias.copy_(
                    scale * torch.sign(torch.randn(linear.bias.shape, dtype=linear.bias.dtype))
                )
    return cell


def outputs_and_gradients(cell, x):
    x = x.clone().requires_grad_()
    y = cell(x)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(9), dtype=y.dtype)
    grads = torch.autograd.grad((y * weights).sum(), [x, *cell.parameters()])
    return y.detach(), grads


@pytest.mark.parametrize("gate_scale", [1.0, 30.0])  # 30: gates within 1e-13 of 0 or 1
@pytest.mark.parametrize("steps", [1, 37, 300])
@pytest.mark.parametrize("kind", KINDS)
def test_every_impl_computes_the_same_function_in_float64(kind, steps, gate_scale):
    torch.manual_seed(1)
    x = torch.randn(3, steps, 2, dtype=F64)
    results = {}
    for candidate, impl in [
        ("g", "loop"),
        ("g", "scan"),
        ("g", "log-scan"),
        ("linear", "loop"),
        ("linear", "scan"),
    ]:
        torch.manual_seed(2)  # the same parameters for every impl
        cell = extreme_gates(MinimalRNN(2, 6, kind, candidate, impl).double(), gate_scale)
        results[candidate, impl] = outputs_and_gradients(cell, x)
    # The log-space scan's gradients lose digits: the gradient of log a sums terms of the
    # cumulative sum and of the logcumsumexp that cancel (see test_scan.py); 1e-9 at T = 300,
    # against 1e-14 here.
    for candidate, impl, atol in [
        ("g", "scan", 1e-10),
        ("g", "log-scan", 1e-7),
        ("linear", "scan", 1e-10),
    ]:
        (y, grads), (y_loop, grads_loop) = results[candidate, impl], results[candidate, "loop"]
        torch.testing.assert_close(y, y_loop, rtol=0, atol=1e-10, msg=f"{candidate}, {impl}")
        for a, b in zip(grads, grads_loop, strict=True):
            torch.testing.assert_close(
                a, b, rtol=0, atol=atol, msg=f"{candidate}, {impl}: gradients"
            )


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_the_decay_keeps_its_relative_precision_when_the_gate_is_nearly_open(kind):
    """a_t = sigmoid(-d), the decay whose log the log-space scan uses; 1 - sigmoid(d) rounds it to 0
    in float32 once it is below the epsilon (d >= ~17), and its gradient with it."""
    torch.manual_seed(0)
    cell = MinimalRNN(1, 4, kind=kind, layers=1)
    layer = cell.layers[0]
    x = torch.linspace(-2, 2, 12).reshape(1, 12, 1)
    with torch.no_grad():  # gate logits from -60 to 60: decays down to ~1e-26
        for linear in [layer.linear_z] if kind == "gru" else [layer.linear_i]:
            linear.weight.fill_(30.0)
            linear.bias.zero_()
        if kind == "lstm":
            layer.linear_f.weight.fill_(-30.0)
            layer.linear_f.bias.zero_()
    a, _ = layer.coefficients(x)
    d = layer._gate_logit(x).double()
    expected = torch.sigmoid(-d)
    tiny = expected < 1e-8
    assert tiny.any() and (a[tiny] > 0).all()
    torch.testing.assert_close(a.double(), expected, rtol=1e-5, atol=0)


def test_g_and_log_g():
    x = torch.linspace(-50, 50, 10001, dtype=F64)
    assert (g(x) > 0).all()
    torch.testing.assert_close(log_g(x), torch.log(g(x)), rtol=1e-12, atol=0)
    assert g(torch.tensor(0.0)).item() == 0.5 and abs(g(torch.tensor(-1e-12)).item() - 0.5) < 1e-12
    assert (
        torch.isfinite(log_g(torch.tensor(-1000.0, dtype=F64)))
        and log_g(torch.tensor(-1000.0, dtype=F64)) < -999
    )


@pytest.mark.parametrize("kind", KINDS)
def test_states_are_convex_combinations_of_zero_and_the_candidates(kind):
    """a_t + (the candidate's weight) = 1: each h_t lies between 0 and the candidates seen so far,
    whatever the sequence length (the paper's time-independent scale); with g, h > 0."""
    torch.manual_seed(4)
    cell = MinimalRNN(2, 8, kind).double()
    x = 3 * torch.randn(4, 200, 2, dtype=F64)
    candidates = g(cell.layers[0].linear_h(x))
    h = cell(x)
    assert (h > 0).all()
    assert (h <= torch.cummax(candidates, 1).values + 1e-12).all()


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("mingru:layers=1", 2 * 5 * (3 + 1)),  # I = 3, N = 5: linear_z, linear_h, (3 + 1) 5 each
        ("minlstm:layers=1", 3 * 5 * (3 + 1)),  # linear_f, linear_i, linear_h
        (
            "mingru",
            2 * 5 * 4 + 2 * 2 * 5 * (5 + 1),
        ),  # 3 layers (the default): layers 2 and 3 read the 5 states
        ("minlstm:layers=2:candidate=linear", 3 * 5 * 4 + 3 * 5 * 6),
    ],
)
def test_parameter_count(spec, expected):
    cell = rnnbench.build_cell(spec, input_size=3, hidden_size=5)
    assert sum(p.numel() for p in cell.parameters()) == expected
    assert cell.output_size == 5


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_a_stack_is_causal_and_trains_every_layer(name):
    torch.manual_seed(5)
    cell = rnnbench.build_cell(f"{name}:layers=3", 2, 4).double()
    x = torch.randn(2, 9, 2, dtype=F64)
    changed = x.clone()
    changed[:, 5:] += 1
    torch.testing.assert_close(cell(x)[:, :5], cell(changed)[:, :5], rtol=0, atol=0)
    cell(x).square().sum().backward()
    assert all(p.grad.abs().sum() > 0 for p in cell.parameters())
