"""The orthogonal RNNs of cells/orthogonal.py: `exprnn` (W = exp(A)) and `scornn`
(W = (I + A)^-1 (I - A) D). W is orthogonal at init and after large optimizer steps, equals the
paper's formula computed independently, starts as each paper's initialisation says; the fast
recurrence equals plain autograd; values given to the factories directly are checked. Their
gradcheck and bad specs: test_cell_checks.py."""

import math

import pytest
import torch

import rnnbench
from rnnbench import optim
from rnnbench.cells.orthogonal import ModReLURecurrence, block_index, modrelu
from rnnbench.config import RunConfig
from rnnbench.sizing import count_params

NAMES = ["exprnn", "exprnn:init=henaff", "scornn", "scornn:negative_fraction=0.5"]


def orthogonality_error(w: torch.Tensor) -> float:
    """max |W^T W - I|."""
    eye = torch.eye(w.shape[0], dtype=w.dtype)
    return (w.t() @ w - eye).abs().max().item()


def skew_by_hand(values: torch.Tensor, n: int) -> torch.Tensor:
    """A with values[k] at the k-th (i < j) pair read row by row, and -values[k] at (j, i)."""
    a = torch.zeros(n, n, dtype=values.dtype)
    k = 0
    for i in range(n):
        for j in range(i + 1, n):
            a[i, j], a[j, i] = values[k], -values[k]
            k += 1
    assert k == len(values)
    return a


@pytest.mark.parametrize("n", [2, 7, 16, 64])
@pytest.mark.parametrize("name", NAMES)
def test_recurrent_matrix_is_orthogonal_at_init(name, n):
    torch.manual_seed(0)
    w = rnnbench.build_cell(name, 3, n).recurrent_matrix().detach()
    assert w.shape == (n, n) and w.dtype == torch.float32
    assert orthogonality_error(w) < 1e-5


@pytest.mark.parametrize("optimizer", [torch.optim.RMSprop, torch.optim.Adam])
@pytest.mark.parametrize("name", NAMES)
def test_recurrent_matrix_stays_orthogonal_after_large_steps(name, optimizer):
    """lr 0.1 is a thousand times the papers' rate for A: the skew entries move by units, and W is
    still orthogonal to float32 precision (the parametrization, not a projection, keeps it)."""
    torch.manual_seed(1)
    cell = rnnbench.build_cell(name, 3, 16)
    start = cell.skew.detach().clone()
    opt = optimizer(cell.parameters(), lr=0.1)
    x = torch.randn(8, 20, 3)
    target = torch.randn(8, 16)
    for _ in range(10):
        opt.zero_grad()
        (cell(x)[:, -1] - target).square().mean().backward()
        opt.step()
    assert (cell.skew.detach() - start).abs().max() > 0.5  # (not vacuous: A moved far)
    assert orthogonality_error(cell.recurrent_matrix().detach()) < 1e-5


@pytest.mark.parametrize("n", [5, 8])
def test_exprnn_is_the_matrix_exponential_of_the_skew_matrix(n):
    torch.manual_seed(2)
    cell = rnnbench.build_cell("exprnn:init=henaff", 2, n).double()
    with torch.no_grad():
        cell.skew.normal_()  # a general skew matrix, not only the initial blocks
    a = skew_by_hand(cell.skew.detach(), n)
    torch.testing.assert_close(cell.skew_matrix().detach(), a, rtol=0, atol=0)
    torch.testing.assert_close(
        cell.recurrent_matrix().detach(), torch.linalg.matrix_exp(a), rtol=0, atol=1e-12
    )
    assert abs(torch.linalg.det(cell.recurrent_matrix().detach()).item() - 1) < 1e-10  # SO(N)


@pytest.mark.parametrize(
    "n, spec", [(5, "scornn"), (8, "scornn:negative_ones=3"), (6, "scornn:negative_ones=6")]
)
def test_scornn_is_the_scaled_cayley_transform(n, spec):
    torch.manual_seed(3)
    cell = rnnbench.build_cell(spec, 2, n).double()
    with torch.no_grad():
        cell.skew.normal_()
    a = skew_by_hand(cell.skew.detach(), n)
    rho = cell.negative_ones
    d = torch.diag(torch.tensor([1.0] * (n - rho) + [-1.0] * rho, dtype=torch.float64))
    eye = torch.eye(n, dtype=torch.float64)
    expected = torch.linalg.inv(eye + a) @ (eye - a) @ d
    torch.testing.assert_close(cell.recurrent_matrix().detach(), expected, rtol=0, atol=1e-12)
    assert abs(torch.linalg.det(expected).item() - (-1) ** rho) < 1e-10


@pytest.mark.parametrize(
    "n, spec, rho",
    [
        (170, "scornn", 17),  # the paper's code's MNIST setting
        (190, "scornn:negative_fraction=0.5", 95),  # its copying setting
        (16, "scornn", 2),  # 1.6 rounds to 2
        (15, "scornn", 2),  # 1.5 rounds half up
        (14, "scornn", 1),
        (16, "scornn:negative_ones=5", 5),
        (16, "scornn:negative_ones=0", 0),
        (16, "scornn:negative_ones=16", 16),
        (16, "scornn:negative_fraction=0", 0),
        (16, "scornn:negative_fraction=1", 16),
    ],
)
def test_d_has_the_configured_number_of_negative_ones(n, spec, rho):
    cell = rnnbench.build_cell(spec, 1, n)
    assert cell.negative_ones == rho
    expected = torch.tensor([1.0] * (n - rho) + [-1.0] * rho)
    assert torch.equal(cell.d_signs, expected)  # the last rho entries, as the paper's code


def blocks(a: torch.Tensor) -> torch.Tensor:
    """The entries A[2j, 2j+1], after checking that A is block-diagonal with 2x2 skew blocks."""
    n = a.shape[0]
    j = torch.arange(n // 2)
    values = a[2 * j, 2 * j + 1]
    expected = torch.zeros_like(a)
    expected[2 * j, 2 * j + 1], expected[2 * j + 1, 2 * j] = values, -values
    assert torch.equal(a, expected)  # nothing off the blocks (and an odd N's last unit alone)
    return values


@pytest.mark.parametrize("n", [400, 401])
def test_exprnn_henaff_init_rotates_unit_pairs_by_angles_in_minus_pi_pi(n):
    torch.manual_seed(4)
    cell = rnnbench.build_cell("exprnn:init=henaff", 1, n)
    angles = blocks(cell.skew_matrix().detach())
    assert angles.abs().max() <= math.pi
    assert angles.min() < -2.8 and angles.max() > 2.8 and angles.std() > 1.5  # U[-pi, pi]: std 1.81
    w = cell.recurrent_matrix().detach()
    j = torch.arange(n // 2)
    torch.testing.assert_close(w[2 * j, 2 * j], torch.cos(angles), rtol=0, atol=1e-5)
    torch.testing.assert_close(w[2 * j, 2 * j + 1], torch.sin(angles), rtol=0, atol=1e-5)
    if n % 2:
        assert w[-1, -1] == 1 and w[-1, :-1].abs().max() == 0


def test_exprnn_cayley_init_puts_minus_tan_of_half_angles_in_0_pi_half_in_the_blocks():
    torch.manual_seed(5)
    cell = rnnbench.build_cell("exprnn", 1, 400)  # init=cayley is the default
    values = blocks(cell.skew_matrix().detach())
    s = -2 * torch.atan(values)  # a = -tan(s / 2) = -sqrt((1 - cos s) / (1 + cos s))
    assert s.min() >= 0 and s.max() <= math.pi / 2 + 1e-6
    assert s.min() < 0.05 and s.max() > math.pi / 2 - 0.05  # spread over [0, pi/2]
    assert cell.input.weight.std().item() == pytest.approx(
        math.sqrt(2), rel=0.15
    )  # Kaiming, input_size 1
    assert cell.input.bias is None and cell.mod_bias.abs().max() <= 0.01


def test_scornn_init_starts_as_rotations_by_angles_in_0_pi_half():
    torch.manual_seed(6)
    n = 401
    cell = rnnbench.build_cell("scornn", 1, n)
    blocks(cell.skew_matrix().detach())
    w = cell.recurrent_matrix().detach() * cell.d_signs  # W D = (I + A)^-1 (I - A), as D D = I
    j = torch.arange(n // 2)
    angle = torch.atan2(
        w[2 * j, 2 * j + 1], w[2 * j, 2 * j]
    )  # block [[cos s, sin s], [-sin s, cos s]]
    torch.testing.assert_close(w[2 * j + 1, 2 * j + 1], w[2 * j, 2 * j], rtol=0, atol=1e-6)
    torch.testing.assert_close(w[2 * j + 1, 2 * j], -w[2 * j, 2 * j + 1], rtol=0, atol=1e-6)
    assert angle.min() >= -1e-6 and angle.max() <= math.pi / 2 + 1e-6
    assert angle.min() < 0.05 and angle.max() > math.pi / 2 - 0.05
    assert w[-1, -1] == 1  # odd N: the last unit starts alone
    assert cell.input.weight.abs().max() <= 0.01 and torch.equal(cell.mod_bias, torch.zeros(n))


def test_block_index_points_at_the_pairs():
    n = 7
    rows, cols = torch.triu_indices(n, n, 1)
    index = block_index(n)
    assert rows[index].tolist() == [0, 2, 4] and cols[index].tolist() == [1, 3, 5]


def reference_recurrence(u: torch.Tensor, w: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The control: h_t = modReLU(h_{t-1} W^T + u_t) step by step with plain autograd."""
    h = torch.zeros_like(u[0])
    states = []
    for t in range(u.shape[0]):
        h = torch.sign(z := h @ w.t() + u[t]) * torch.relu(z.abs() + bias)
        states.append(h)
    return torch.stack(states)


def test_the_fast_recurrence_equals_plain_autograd():
    torch.manual_seed(7)
    u = torch.randn(9, 4, 6, dtype=torch.float64)
    u[:2, 0] = 0  # exact zeros: z = 0, where modReLU passes no gradient
    w = torch.linalg.matrix_exp(skew_by_hand(torch.randn(15, dtype=torch.float64), 6))
    bias = 0.3 * torch.randn(6, dtype=torch.float64)
    g = torch.randn(9, 4, 6, dtype=torch.float64)
    grads = []
    for run in (ModReLURecurrence.apply, reference_recurrence):
        inputs = [t.clone().requires_grad_() for t in (u, w, bias)]
        out = run(*inputs)
        (out * g).sum().backward()
        grads.append((out.detach(), *[t.grad for t in inputs]))
    for fast, control in zip(*grads, strict=True):
        torch.testing.assert_close(fast, control, rtol=0, atol=1e-12)
    assert (grads[0][0][:2, 0] == 0).all()


def test_modrelu_is_sign_times_relu_of_the_biased_magnitude():
    z = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0])
    assert modrelu(z, torch.full((5,), -1.0)).tolist() == [-1.0, 0.0, 0.0, 0.0, 1.0]
    assert modrelu(z, torch.full((5,), 0.5)).tolist() == [-2.5, -1.0, 0.0, 1.0, 2.5]


def test_gradcheck_of_the_recurrence_alone():
    torch.manual_seed(9)
    u = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(
        3, 3, dtype=torch.float64, requires_grad=True
    )  # (any matrix: the step does not need W orthogonal)
    bias = (0.2 * torch.randn(3, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(ModReLURecurrence.apply, (u, w, bias), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["exprnn", "scornn"])
def test_parameter_count_by_hand(name):
    n, inputs = 10, 3
    by_hand = (
        n * (n - 1) // 2 + n * inputs + n
    )  # free entries of A, U (no bias), modReLU bias: 45 + 30 + 10
    cell = rnnbench.build_cell(name, inputs, n)
    assert sum(p.numel() for p in cell.parameters()) == by_hand == 85
    task = rnnbench.build_task("pmnist")  # counted on the meta device, readout included
    assert (
        count_params(task, rnnbench.parse_cell_spec(name), 64) == 64 * 63 // 2 + 64 + 64 + 65 * 10
    )


@pytest.mark.parametrize("name", ["exprnn", "scornn"])
@pytest.mark.parametrize("lr", [1e-3, 3e-3, 1e-4])
def test_the_skew_entries_train_at_a_tenth_of_the_run_rate_at_any_rate(name, lr):
    """The papers' ratio (A at a tenth of the other weights' rate) holds at the run's --lr,
    whatever it is: the quick preset's 3e-3 gives A 3e-4, not the papers' absolute 1e-4 (1:30)."""
    model = torch.nn.Sequential(rnnbench.build_cell(name, 1, 8))
    cell = model[0]
    assert cell.lr_groups() == {"orthogonal": [cell.skew]}
    spec = rnnbench.parse_cell_spec(name)
    groups = optim.param_groups(RunConfig(lr=lr), model, cell, spec.options)
    assert [g.get("name") for g in groups] == [None, "orthogonal"]
    assert groups[1]["lr"] == pytest.approx(lr / 10) and groups[1]["params"] == [cell.skew]
    assert all(p is not cell.skew for p in groups[0]["params"])


@pytest.mark.parametrize("name", ["exprnn", "scornn"])
def test_an_absolute_rate_or_no_factor_replaces_the_ratio(name):
    model = torch.nn.Sequential(rnnbench.build_cell(name, 1, 8))
    cell = model[0]
    absolute = rnnbench.parse_cell_spec(
        f"{name}:orthogonal_lr=5e-5"
    ).options  # (over the default factor)
    assert optim.param_groups(RunConfig(lr=1e-3), model, cell, absolute)[1]["lr"] == 5e-5
    at_lr = rnnbench.parse_cell_spec(f"{name}:orthogonal_lr_factor=0").options
    assert (
        len(optim.param_groups(RunConfig(lr=1e-3), model, cell, at_lr)) == 1
    )  # both 0: at --lr with the rest


def test_bad_values_given_directly_raise_value_error():
    from rnnbench.cells.orthogonal import exprnn, scornn

    with pytest.raises(ValueError, match="exprnn: init='identity' is not one of cayley, henaff"):
        exprnn(1, 8, init="identity")
    with pytest.raises(ValueError, match="orthogonal_lr=nan"):
        scornn(1, 8, orthogonal_lr=float("nan"))
    with pytest.raises(ValueError, match="negative_fraction=inf"):
        scornn(1, 8, negative_fraction=float("inf"))
    with pytest.raises(ValueError, match="init='identity' is not one of cayley, henaff"):
        rnnbench.parse_cell_spec("exprnn:init=identity")  # the spec parser refuses it first
