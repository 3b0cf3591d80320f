"""LRU: ring initialisation, gamma normalisation, the paper's equations step by step, impl=scan ==
impl=loop in float64 (with |lambda| near 0 and near 1), parameter counts, lr groups and what the
factory refuses that no spec can give it. Its gradcheck and bad options: test_cell_checks.py."""

import math

import pytest
import torch
import torch.nn.functional as F

import rnnbench
from rnnbench.cells.lru import LRU
from rnnbench.config import RunConfig
from rnnbench.optim import param_groups
from rnnbench.runner import SequenceClassifier

F64 = torch.float64


@pytest.mark.parametrize(
    "r_min, r_max, max_phase",
    [(0.9, 0.999, 2 * math.pi), (0.4, 0.6, math.pi / 10), (0.999, 0.9999, 0.5)],
)
def test_ring_initialisation_and_gamma_normalisation(r_min, r_max, max_phase):
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(F64)  # initialised in float64, so that the checks below can be tight
    try:
        cell = LRU(2, 4000, r_min=r_min, r_max=r_max, max_phase=max_phase)
    finally:
        torch.set_default_dtype(default)
    lam = cell.diagonal().detach()
    assert lam.shape == (4000,) and lam.dtype == torch.complex128
    modulus, phase = lam.abs(), torch.angle(lam) % (2 * math.pi)
    assert modulus.min() >= r_min * (1 - 1e-12) and modulus.max() <= r_max * (1 + 1e-12)
    assert phase.min() >= 0 and torch.exp(cell.theta_log).max() <= max_phase * (1 + 1e-12)
    # uniform on the ring's area: |lambda|^2 is uniform on [r_min^2, r_max^2]; the phase on
    # [0, max_phase]
    assert abs((modulus**2).mean() - (r_min**2 + r_max**2) / 2) < 0.05 * (r_max**2 - r_min**2)
    assert abs(torch.exp(cell.theta_log).mean() - max_phase / 2) < 0.05 * max_phase
    # gamma = sqrt(1 - |lambda|^2) at init
    torch.testing.assert_close(
        torch.exp(cell.gamma_log).detach(), torch.sqrt(1 - modulus**2), rtol=1e-10, atol=0
    )


def test_gamma_normalisation_holds_to_rounding_in_float32_even_near_the_unit_circle():
    torch.manual_seed(0)
    cell = LRU(1, 1000, r_min=0.99999, r_max=0.999999)
    modulus_sq = torch.exp(
        -2 * torch.exp(cell.nu_log.double())
    )  # of the float32 parameters, in float64
    torch.testing.assert_close(
        torch.exp(cell.gamma_log.double()), torch.sqrt(1 - modulus_sq), rtol=1e-6, atol=0
    )


def test_diagonal_is_the_exponential_parametrisation():
    cell = LRU(1, 5).double()
    expected = torch.exp(-torch.exp(cell.nu_log) + 1j * torch.exp(cell.theta_log))
    torch.testing.assert_close(cell.diagonal(), expected, rtol=0, atol=1e-15)


def paper_forward(cell: LRU, x: torch.Tensor) -> torch.Tensor:
    """The paper's equations, one step at a time, from the cell's parameters."""
    lam = cell.diagonal()
    b_norm = (cell.B_re + 1j * cell.B_im) * torch.exp(cell.gamma_log)[:, None]  # (N, I)
    c = cell.C_re + 1j * cell.C_im
    h = torch.zeros(x.shape[0], cell.hidden_size, dtype=lam.dtype)
    outputs = []
    for t in range(x.shape[1]):
        x_t = x[:, t].to(lam.dtype)
        h = lam * h + x_t @ b_norm.T
        y = (h @ c.T).real + x[:, t] @ cell.D.T
        u = F.gelu(y)
        if cell.glu is not None:
            w1, w2 = cell.glu.weight.chunk(2, 0)
            c1, c2 = cell.glu.bias.chunk(2, 0)
            u = (u @ w1.T + c1) * torch.sigmoid(u @ w2.T + c2)
        outputs.append(u)
    return torch.stack(outputs, 1)


@pytest.mark.parametrize("mlp", ["glu", "gelu"])
@pytest.mark.parametrize("impl", ["scan", "loop"])
def test_forward_is_the_papers_equations(impl, mlp):
    torch.manual_seed(1)
    cell = LRU(3, 6, mlp=mlp, impl=impl).double()
    x = torch.randn(2, 11, 3, dtype=F64)
    torch.testing.assert_close(cell(x), paper_forward(cell, x), rtol=0, atol=1e-12)


def outputs_and_gradients(cell, x):
    x = x.clone().requires_grad_()
    y = cell(x)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(9), dtype=y.dtype)
    grads = torch.autograd.grad((y * weights).sum(), [x, *cell.parameters()])
    return y.detach(), grads


@pytest.mark.parametrize("r_min, r_max", [(0.9, 0.999), (0.99999, 0.9999999), (1e-9, 1e-3)])
@pytest.mark.parametrize("steps", [1, 37, 300])
def test_scan_equals_loop_in_float64(steps, r_min, r_max):
    """|lambda| near 1 (slow decay: the states add up ~1 / (1 - |lambda|) inputs) and near 0."""
    torch.manual_seed(2)
    scan = LRU(2, 8, r_min=r_min, r_max=r_max, impl="scan").double()
    loop = LRU(2, 8, r_min=r_min, r_max=r_max, impl="loop").double()
    loop.load_state_dict(scan.state_dict())
    x = torch.randn(3, steps, 2, dtype=F64)
    (y_scan, g_scan), (y_loop, g_loop) = (
        outputs_and_gradients(scan, x),
        outputs_and_gradients(loop, x),
    )
    torch.testing.assert_close(y_scan, y_loop, rtol=0, atol=1e-10)
    for (name, _), a, b in zip(
        [("x", None), *scan.named_parameters()], g_scan, g_loop, strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=name)


@pytest.mark.parametrize(
    "mlp, expected",
    [
        # N = 5, I = 3: nu_log, theta_log, gamma_log 3N; B_re, B_im 2NI; C_re, C_im 2N^2; D NI;
        # GLU 2N^2 + 2N
        ("glu", 3 * 5 + 2 * 15 + 2 * 25 + 15 + 2 * 25 + 10),
        ("gelu", 3 * 5 + 2 * 15 + 2 * 25 + 15),
    ],
)
def test_parameter_count(mlp, expected):
    cell = rnnbench.build_cell(f"lru:mlp={mlp}", input_size=3, hidden_size=5)
    assert sum(p.numel() for p in cell.parameters()) == expected  # 170 and 110
    assert cell.output_size == 5


def test_the_recurrent_group_trains_at_its_own_rate():
    spec = rnnbench.parse_cell_spec("lru:recurrent_lr=0.0005")
    cell = rnnbench.build_cell(spec, 1, 4)
    model = SequenceClassifier(cell, 10, "last")
    groups = param_groups(RunConfig(lr=1e-3), model, cell, spec.options)
    assert [g.get("name") for g in groups] == [None, "recurrent"]
    assert groups[1]["lr"] == 0.0005
    assert {id(p) for p in groups[1]["params"]} == {
        id(cell.nu_log),
        id(cell.theta_log),
        id(cell.gamma_log),
        id(cell.B_re),
        id(cell.B_im),
    }


def test_values_the_spec_parser_cannot_carry_are_refused_by_the_factory():
    from rnnbench.cells.lru import lru

    with pytest.raises(ValueError, match="recurrent_lr=inf: must be a finite number"):
        lru(1, 8, recurrent_lr=float("inf"))


@pytest.mark.parametrize("r_max, max_phase", [(1 - 3e-8, 2 * math.pi), (0.999, 1e-30)])
def test_extreme_accepted_options_give_finite_parameters(r_max, max_phase):
    torch.manual_seed(0)
    cell = rnnbench.build_cell(f"lru:r_max={r_max!r}:max_phase={max_phase!r}", 1, 512)
    assert all(torch.isfinite(p).all() for p in cell.parameters())
    assert (cell.diagonal().abs() < 1).all()
