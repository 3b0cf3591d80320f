"""EURNN: unitarity, structure, parameter count, the reach of the mesh (full capacity spans U(N)),
reference == dense, the original notebook's options, and which path auto runs. Its gradcheck and
bad specs: test_cell_checks.py; the fused kernel's own tests: test_eurnn_fused.py."""

import math

import pytest
import torch
from torch import nn

import rnnbench
from rnnbench.cells import _eurnn_fused
from rnnbench.cells.eurnn import EURNN, mixer_pairs, modrelu_scale

torch.manual_seed(0)

# (style, N, capacity, boundary): every style, small and full capacities, odd and even capacities
MESHES = [
    ("tunable", 2, 1, "periodic"),
    ("tunable", 2, 2, "open"),
    ("tunable", 8, 1, "periodic"),
    ("tunable", 8, 3, "open"),
    ("tunable", 16, 2, "periodic"),
    ("tunable", 16, 7, "periodic"),
    ("tunable", 16, 16, "open"),
    ("tunable", 64, 64, "periodic"),
    ("fft", 2, None, "periodic"),
    ("fft", 64, None, "periodic"),
]


def make(style, n, capacity, boundary="periodic", **kw):
    return EURNN(3, n, capacity=capacity, style=style, boundary=boundary, **kw)


@pytest.mark.parametrize("diag_phase", [False, True])
@pytest.mark.parametrize("style, n, capacity, boundary", MESHES)
def test_recurrent_matrix_is_unitary(style, n, capacity, boundary, diag_phase):
    u = make(style, n, capacity, boundary, diag_phase=diag_phase).recurrent_matrix().detach()
    assert u.dtype == torch.complex64 and u.shape == (n, n)
    assert torch.linalg.matrix_norm(u.conj().T @ u - torch.eye(n)) < 1e-5


def test_a_single_mixer_is_the_documented_two_by_two_matrix():
    cell = make("tunable", 2, 1).double()
    theta, phi = cell.theta.item(), cell.phi.item()
    e = complex(math.cos(phi), math.sin(phi))
    expected = torch.tensor(
        [[e * math.cos(theta), -e * math.sin(theta)], [math.sin(theta), math.cos(theta)]],
        dtype=torch.complex128,
    )
    torch.testing.assert_close(cell.recurrent_matrix().detach(), expected, rtol=0, atol=1e-12)


def test_the_diagonal_phase_acts_before_the_mesh():
    """U = mixer layers x diag(e^{i omega}): the phases enter on the inputs (the columns of U)."""
    cell = make("tunable", 2, 1, diag_phase=True).double()
    theta, phi = cell.theta.item(), cell.phi.item()
    e = complex(math.cos(phi), math.sin(phi))
    mixer = torch.tensor(
        [[e * math.cos(theta), -e * math.sin(theta)], [math.sin(theta), math.cos(theta)]],
        dtype=torch.complex128,
    )
    diagonal = torch.diag(torch.polar(torch.ones(2, dtype=torch.float64), cell.omega.detach()))
    torch.testing.assert_close(
        cell.recurrent_matrix().detach(), mixer @ diagonal, rtol=0, atol=1e-12
    )


class _Matrix(nn.Module):
    """U of `cell` as a module's output, so that torch.func can call it with other angles."""

    def __init__(self, cell: EURNN):
        super().__init__()
        self.cell = cell

    def forward(self) -> torch.Tensor:
        return self.cell.recurrent_matrix()


def unitary_jacobian(cell: EURNN) -> torch.Tensor:
    """The Jacobian of the map (theta, phi, omega) -> U, U flattened to a real 2N^2 vector:
    (2 N^2, angles)."""
    names = [k for k in ("theta", "phi", "omega") if getattr(cell, k) is not None]
    matrix = _Matrix(cell)

    def u(*values):
        swapped = {f"cell.{k}": v for k, v in zip(names, values, strict=True)}
        return torch.view_as_real(torch.func.functional_call(matrix, swapped, ())).flatten()

    jacobian = torch.autograd.functional.jacobian(
        u, tuple(getattr(cell, k).detach() for k in names)
    )
    return torch.cat([j.reshape(j.shape[0], -1) for j in jacobian], 1)


@pytest.mark.parametrize("n", [4, 6, 8])
@pytest.mark.parametrize(
    "boundary, diag_phase", [("periodic", False), ("periodic", True), ("open", True)]
)
def test_full_capacity_spans_the_unitary_group(n, boundary, diag_phase):
    """At a random point the angles -> U map has rank N^2 = dim U(N): every direction in U(N) is
    reachable. (With the diagonal phase after the mesh, open + diag_phase had rank N^2 - N + 1.)"""
    torch.manual_seed(n)
    cell = EURNN(1, n, capacity=n, boundary=boundary, diag_phase=diag_phase).double()
    assert torch.linalg.matrix_rank(unitary_jacobian(cell)).item() == n * n


@pytest.mark.parametrize("n", [4, 6, 8])
def test_open_boundary_without_diagonal_phase_cannot_span_the_unitary_group(n):
    """N^2 - N angles, all independent, and no more: N^2 - N < N^2 (the README says so)."""
    torch.manual_seed(n)
    cell = EURNN(1, n, capacity=n, boundary="open").double()
    jacobian = unitary_jacobian(cell)
    assert jacobian.shape[1] == n * n - n
    assert torch.linalg.matrix_rank(jacobian).item() == n * n - n


def random_unitary(n: int, seed: int) -> torch.Tensor:
    """A Haar-random unitary: QR of a complex Gaussian, R's diagonal phases moved into Q."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, n, dtype=torch.complex128, generator=g))
    return q * (r.diagonal() / r.diagonal().abs())


def fit_unitary(cell: EURNN, target: torch.Tensor, optimizer: str, steps: int) -> float:
    """Optimise the angles of `cell` to make U equal `target`; the Frobenius error at the end."""
    angles = [p for p in (cell.theta, cell.phi, cell.omega) if p is not None]

    def loss() -> torch.Tensor:
        return (cell.recurrent_matrix() - target).abs().pow(2).sum()

    if optimizer == "adam":
        adam = torch.optim.Adam(angles, lr=0.1)
        for _ in range(steps):
            adam.zero_grad()
            value = loss()
            if value.item() < 1e-10:
                break
            value.backward()
            adam.step()
    else:
        lbfgs = torch.optim.LBFGS(
            angles,
            max_iter=steps,
            tolerance_grad=1e-12,
            tolerance_change=1e-16,
            history_size=50,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            lbfgs.zero_grad()
            value = loss()
            value.backward()
            return value

        lbfgs.step(closure)
    return torch.linalg.matrix_norm(cell.recurrent_matrix().detach() - target).item()


@pytest.mark.parametrize("boundary", ["periodic", "open"])
def test_full_capacity_with_diagonal_phase_learns_a_random_unitary(boundary):
    """As torch_eunn's own test (there on |U|^2): Adam on the angles reaches a random unitary."""
    torch.manual_seed(0)
    cell = EURNN(1, 4, capacity=4, boundary=boundary, diag_phase=True).double()
    assert fit_unitary(cell, random_unitary(4, seed=1), "adam", steps=1500) < 1e-4


def test_full_capacity_periodic_without_diagonal_phase_learns_a_random_unitary_from_some_start():
    """Exactly N^2 angles: U(N) is reached, but a descent can stall in a spurious minimum (in our
    checks, 20-90% of random starts reach a given target), so: one of a few starts reaches it."""
    target = random_unitary(6, seed=4)
    errors = []
    for seed in range(5):
        torch.manual_seed(seed)
        cell = EURNN(1, 6, capacity=6).double()
        errors.append(fit_unitary(cell, target, "lbfgs", steps=400))
        if errors[-1] < 1e-4:
            break
    assert min(errors) < 1e-4, errors


def test_mesh_layouts():
    pairs = [p.T.tolist() for p in mixer_pairs(8, "tunable", 2, "periodic")]
    assert pairs == [[[0, 1], [2, 3], [4, 5], [6, 7]], [[1, 2], [3, 4], [5, 6], [7, 0]]]
    pairs = [p.T.tolist() for p in mixer_pairs(8, "tunable", 3, "open")]
    assert pairs[1] == [[1, 2], [3, 4], [5, 6]] and pairs[2] == pairs[0]  # ends skip odd layers
    pairs = [p.T.tolist() for p in mixer_pairs(8, "fft", 3, "periodic")]
    assert pairs == [
        [[0, 1], [2, 3], [4, 5], [6, 7]],
        [[0, 2], [1, 3], [4, 6], [5, 7]],
        [[0, 4], [1, 5], [2, 6], [3, 7]],
    ]


@pytest.mark.parametrize("diag_phase", [False, True])
@pytest.mark.parametrize("style, n, capacity, boundary", MESHES)
def test_parameter_count_has_the_closed_form(style, n, capacity, boundary, diag_phase):
    cell = make(style, n, capacity, boundary, diag_phase=diag_phase)
    if style == "fft":
        mixers = int(math.log2(n)) * n // 2
    else:
        odd_layer = n // 2 if boundary == "periodic" else n // 2 - 1
        mixers = math.ceil(capacity / 2) * n // 2 + capacity // 2 * odd_layer
    angles = 2 * mixers  # theta and phi per mixer
    expected = angles + n * diag_phase + n + 3 * n + n  # + modReLU bias + input weight and bias
    assert sum(p.numel() for p in cell.parameters()) == expected


def test_registered_variants_have_their_capacity():
    assert rnnbench.build_cell("eurnn", 1, 32).capacity == 2
    for c in (4, 8, 16):
        assert rnnbench.build_cell(f"eurnn-c{c}", 1, 32).capacity == c
    assert rnnbench.build_cell("eurnn-full", 1, 32).capacity == 32
    fft = rnnbench.build_cell("eurnn-fft", 1, 32)
    assert (fft.style, fft.capacity) == ("fft", 5)
    assert rnnbench.build_cell("eurnn:capacity=6", 1, 32).capacity == 6


def run_impl(impl, cell_kwargs, x, h0):
    """Output and gradients (parameters, then x and h0) of one implementation, on weights that
    depend only on the seed."""
    torch.manual_seed(3)
    cell = EURNN(x.shape[-1], h0.shape[-1], impl=impl, **cell_kwargs).double()
    x, h0 = x.clone().requires_grad_(), h0.clone().requires_grad_()
    y = cell(x, h0=h0)
    assert cell.last_impl == impl
    grads = torch.autograd.grad(
        (y * torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)).sum(), [*cell.parameters(), x, h0]
    )
    return y, grads


EQUIVALENCE = [
    dict(style="tunable", capacity=2, output="real"),
    dict(style="tunable", capacity=3, output="complex", boundary="open"),
    dict(style="tunable", capacity=8, output="abs", diag_phase=True),
    dict(style="tunable", capacity=5, output="real", boundary="open", diag_phase=True),
    dict(style="fft", output="complex"),
    dict(style="fft", output="abs", diag_phase=True),
    dict(style="tunable", capacity=4, output="complex", modrelu="notebook", init="notebook"),
    dict(
        style="tunable",
        capacity=8,
        output="real",
        boundary="open",
        diag_phase=True,
        modrelu="notebook",
    ),
]


@pytest.mark.parametrize("n, steps", [(8, 13), (16, 5)])
@pytest.mark.parametrize("kwargs", EQUIVALENCE, ids=lambda k: "-".join(map(str, k.values())))
def test_dense_equals_reference_in_outputs_and_gradients(kwargs, n, steps):
    torch.manual_seed(4)
    x = torch.randn(3, steps, 2, dtype=torch.float64)
    h0 = torch.randn(3, n, dtype=torch.complex128) * 0.3
    y_ref, g_ref = run_impl("reference", kwargs, x, h0)
    y_dense, g_dense = run_impl("dense", kwargs, x, h0)
    torch.testing.assert_close(y_dense, y_ref, rtol=0, atol=1e-10)
    for a, b in zip(g_dense, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "impl", ["reference", "dense", pytest.param("fused", marks=pytest.mark.fused)]
)
@pytest.mark.parametrize("style, n, capacity, boundary", MESHES[2:])
def test_state_norm_is_preserved_without_input_and_bias(impl, style, n, capacity, boundary):
    cell = make(style, n, capacity, boundary, impl=impl, output="complex").double()
    with torch.no_grad():
        cell.mod_bias.zero_()
    x = torch.zeros(2, 30, 3, dtype=torch.float64)  # no input; W x + b = b, so zero b too
    with torch.no_grad():
        cell.input.bias.zero_()
    h0 = torch.randn(2, n, dtype=torch.complex128)
    y = cell(x, h0=h0).detach()
    h = torch.complex(y[..., :n], y[..., n:])  # (B, T, N)
    norms = torch.linalg.vector_norm(h, dim=-1)
    torch.testing.assert_close(
        norms, torch.linalg.vector_norm(h0, dim=-1)[:, None].expand_as(norms), rtol=1e-12, atol=0
    )
    # and the first step is exactly U h0: recurrent_matrix() is the matrix the recurrence uses
    torch.testing.assert_close(h[:, 0], h0 @ cell.recurrent_matrix().detach().T, rtol=0, atol=1e-12)


def test_output_modes_read_the_same_state():
    torch.manual_seed(6)
    x = torch.randn(2, 6, 3)
    ys = {}
    for output in ("real", "abs", "complex"):
        torch.manual_seed(7)
        ys[output] = EURNN(3, 8, capacity=2, output=output)(x)
    re, im = ys["complex"][..., :8], ys["complex"][..., 8:]
    torch.testing.assert_close(ys["real"], re)
    torch.testing.assert_close(ys["abs"], torch.hypot(re, im))


@pytest.mark.parametrize("modrelu", ["smooth", "notebook"])
def test_modrelu_gradient_is_finite_at_zero(modrelu):
    re = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    im = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor([-0.1, 0.0, 0.1], dtype=torch.float64, requires_grad=True)
    (re * modrelu_scale(re, im, bias, modrelu)).sum().backward()
    assert torch.isfinite(re.grad).all() and torch.isfinite(bias.grad).all()


def torch_eunn_modrelu(z: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """torch_eunn's ModReLU.forward (eps=1e-5), which the original notebook used, on complex z."""
    norm = torch.sqrt(z.real**2 + z.imag**2) + 1e-5
    return torch.complex(
        torch.relu(norm + bias) * z.real / norm, torch.relu(norm + bias) * z.imag / norm
    )


def test_notebook_modrelu_is_torch_eunns():
    torch.manual_seed(8)
    z = torch.randn(5, 40, dtype=torch.complex128) * torch.logspace(-7, 1, 40, dtype=torch.float64)
    z[0, 0] = 0
    bias = torch.randn(40, dtype=torch.float64) * 0.1
    scale = modrelu_scale(z.real, z.imag, bias, "notebook")
    torch.testing.assert_close(scale * z, torch_eunn_modrelu(z, bias), rtol=1e-14, atol=1e-300)
    smooth = modrelu_scale(z.real, z.imag, bias)  # rnnbench's default: sqrt(|z|^2 + 1e-12)
    assert not torch.allclose(smooth * z, torch_eunn_modrelu(z, bias), rtol=1e-6, atol=0)


def torch_eunn_mesh(angles: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """torch_eunn's `eunn(angles, x)` forward (flaport/torch_eunn 0.3.0), on complex rows x: (B, N);
    angles: (N, capacity), phi in the even rows, theta in the odd ones."""
    phi, theta = angles[::2], angles[1::2]
    for i in range(angles.shape[1]):
        e, c, s = (
            torch.polar(torch.ones_like(phi[:, i]), phi[:, i]),
            torch.cos(theta[:, i]),
            torch.sin(theta[:, i]),
        )
        diag = torch.stack([e * c, c.to(e.dtype)], 1).flatten()
        offdiag = torch.stack([-e * s, s.to(e.dtype)], 1).flatten()
        swapped = torch.stack([x[:, 1::2], x[:, ::2]], 2).flatten(1)  # _permute
        x = torch.roll(diag * x + offdiag * swapped, 2 * (i % 2) - 1, 1)
    return x


@pytest.mark.parametrize("capacity", [2, 4])
@pytest.mark.parametrize(
    "impl", ["reference", "dense", pytest.param("fused", marks=pytest.mark.fused)]
)
def test_notebook_options_compute_torch_eunns_eurnn(impl, capacity):
    """torch_eunn's EURNN (input layer, mesh, ModReLU, output real), with our angles carried across:
    our layer l's mixer k is its angles[2k + 1, l] (theta) and angles[2k, l] (phi)."""
    torch.manual_seed(9)
    n = 8
    cell = EURNN(2, n, capacity=capacity, init="notebook", modrelu="notebook", impl=impl).double()
    with torch.no_grad():
        cell.mod_bias.uniform_(-0.5, 0.1)  # some units cut off by the ReLU
    angles = torch.empty(n, capacity, dtype=torch.float64)
    angles[1::2] = cell.theta.detach().view(capacity, n // 2).T
    angles[0::2] = cell.phi.detach().view(capacity, n // 2).T
    x = torch.randn(3, 6, 2, dtype=torch.float64)
    state = torch.zeros(3, n, dtype=torch.complex128)
    expected = []
    for t in range(6):
        state = torch_eunn_modrelu(
            cell.input(x[:, t]).detach() + torch_eunn_mesh(angles, state), cell.mod_bias.detach()
        )
        expected.append(state.real)
    torch.testing.assert_close(cell(x).detach(), torch.stack(expected, 1), rtol=0, atol=1e-12)


def test_notebook_init_sets_the_notebooks_values():
    torch.manual_seed(10)
    cell = EURNN(1, 64, init="notebook")
    w = cell.input.weight.detach()
    assert w.abs().max() <= 0.426 and w.abs().max() > 0.35  # uniform in +-0.426, not torch's +-1
    assert torch.equal(cell.input.bias.detach(), torch.full((64,), 0.01))
    assert torch.equal(cell.mod_bias.detach(), torch.full((64,), 0.01))
    assert 0 <= cell.theta.min() and cell.theta.max() < 2 * math.pi  # the angles as by default
    assert cell.readout_init == (-0.426, 0.426, 0.01)
    readout = nn.Linear(cell.output_size, 10)
    cell.init_readout(readout)
    assert readout.weight.abs().max() <= 0.426 and readout.weight.abs().max() > 0.35
    assert torch.equal(readout.bias.detach(), torch.full((10,), 0.01))


def test_default_init_leaves_the_readout_alone_and_draws_nothing():
    torch.manual_seed(11)
    cell = EURNN(1, 16)
    assert cell.readout_init is None
    assert cell.input.weight.abs().max() <= 1 and cell.mod_bias.abs().max() <= 0.01
    readout = nn.Linear(16, 10)
    before = [p.detach().clone() for p in readout.parameters()]
    rng = torch.get_rng_state()
    cell.init_readout(readout)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(a, b) for a, b in zip(before, readout.parameters(), strict=True))


@pytest.mark.parametrize("options", [dict(), dict(init="default", modrelu="smooth")])
def test_default_options_draw_the_same_weights_in_the_same_order(options):
    """The options' defaults change nothing: the weights are the draws they always were
    (angles, then the modReLU bias, then torch's nn.Linear default), so default runs repeat."""
    torch.manual_seed(12)
    cell = EURNN(1, 8, capacity=2, diag_phase=True, **options)
    torch.manual_seed(12)
    theta = torch.empty(8).uniform_(0, 2 * math.pi)
    phi = torch.empty(8).uniform_(0, 2 * math.pi)
    omega = torch.empty(8).uniform_(0, 2 * math.pi)
    mod_bias = torch.empty(8).uniform_(-0.01, 0.01)
    linear = nn.Linear(1, 8)
    for got, expected in [
        (cell.theta, theta),
        (cell.phi, phi),
        (cell.omega, omega),
        (cell.mod_bias, mod_bias),
        (cell.input.weight, linear.weight),
        (cell.input.bias, linear.bias),
    ]:
        assert torch.equal(got.detach(), expected.detach())


def test_notebook_options_in_specs():
    spec = rnnbench.registry.parse_cell_spec("eurnn:modrelu=notebook:init=notebook")
    assert str(spec) == "eurnn:init=notebook:modrelu=notebook"
    cell = rnnbench.build_cell(spec, 1, 8)
    assert (cell.init, cell.modrelu) == ("notebook", "notebook")
    for name in ("eurnn", "eurnn-c4", "eurnn-full", "eurnn-fft"):
        assert str(rnnbench.registry.parse_cell_spec(f"{name}:init=default:modrelu=smooth")) == name
        cell = rnnbench.build_cell(f"{name}:init=notebook:modrelu=notebook", 1, 8)
        assert (cell.init, cell.modrelu, cell.readout_init) == (
            "notebook",
            "notebook",
            (-0.426, 0.426, 0.01),
        )


@pytest.mark.parametrize(
    "n, capacity, expected",
    [
        (8, 2, "dense"),
        (256, 2, "dense"),
        (512, 2, "dense"),
        (1332, 2, "reference"),
        (1024, 8, "dense"),
        (64, 64, "dense"),
    ],
)
def test_without_the_fused_kernel_auto_picks_the_path_measured_faster(
    n, capacity, expected, monkeypatch
):
    monkeypatch.setattr(_eurnn_fused, "load", lambda: None)  # as on a machine without a compiler
    cell = EURNN(1, n, capacity=capacity)
    assert cell.chosen_impl(torch.device("cpu")) == expected
    cell(torch.zeros(1, 2, 1))
    assert cell.last_impl == expected
    assert (
        EURNN(1, n, capacity=capacity, impl="reference").chosen_impl(torch.device("cuda"))
        == "reference"
    )


def test_a_named_implementation_that_cannot_run_fails_naming_those_that_can(monkeypatch):
    """No silent substitute: impl=fused on CUDA, or where the kernel cannot be built, stops the
    run."""
    with pytest.raises(
        ValueError,
        match=r"impl='fused' cannot run on cuda: the fused kernel is a CPU kernel; "
        r"this is cuda\. Implementations that can: reference, dense",
    ):
        EURNN(1, 8, impl="fused").chosen_impl(torch.device("cuda"))
    monkeypatch.setattr(_eurnn_fused, "load", lambda: None)
    cell = EURNN(1, 8, impl="fused")
    with pytest.raises(
        ValueError,
        match=r"impl='fused' cannot run on cpu: the fused kernel could not be built here",
    ):
        cell(torch.zeros(1, 2, 1))


@pytest.mark.fused
@pytest.mark.parametrize(
    "n, capacity, diag_phase, expected",
    [
        (8, 2, False, "dense"),
        (10, 2, False, "fused"),
        (256, 2, False, "fused"),
        (256, 51, False, "fused"),
        (256, 51, True, "dense"),
        (256, 64, False, "dense"),
        (1024, 8, False, "fused"),
        (64, 64, False, "dense"),
    ],
)
def test_auto_picks_fused_on_cpu_for_meshes_of_at_most_n_over_5_layers(
    n, capacity, diag_phase, expected
):
    cell = EURNN(1, n, capacity=capacity, diag_phase=diag_phase)
    assert cell.chosen_impl(torch.device("cpu")) == expected
    assert EURNN(1, n, capacity=capacity, impl="fused").chosen_impl(torch.device("cpu")) == "fused"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(style="fft", capacity=3), "capacity must be left unset, got 3"),
        (
            dict(style="fft", boundary="open"),
            "boundary applies to style='tunable' only; got 'open'",
        ),
        (dict(style="butterfly"), "style must be one of tunable, fft; got 'butterfly'"),
        (dict(output="imag"), "output must be one of real, abs, complex; got 'imag'"),
        (
            dict(impl="cuda"),
            "impl must be one of auto, reference, dense, fused, triton; got 'cuda'",
        ),
        (dict(boundary="closed"), "boundary must be one of periodic, open; got 'closed'"),
        (dict(init="paper"), "init must be one of default, notebook; got 'paper'"),
        (dict(modrelu="tf"), "modrelu must be one of smooth, notebook; got 'tf'"),
    ],
)
def test_values_given_to_the_class_directly_are_refused_naming_them(kwargs, message):
    """What no spec can give the class (a style, options that style has not) or what the spec
    parser refuses before the class sees it (a value outside the choices). Bad specs, hidden sizes
    and capacities included: test_cell_checks.py."""
    kwargs = {"input_size": 1, "hidden_size": 8, **kwargs}
    with pytest.raises(ValueError) as error:
        EURNN(**kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize("impl", ["reference", "dense", "fused", "triton"])
def test_an_initial_state_of_one_row_is_every_sequences(impl):
    """h0 of shape (1, N) broadcasts over the batch in every implementation (the compiled ones
    read a (B, N) state: given one row, they read past it)."""
    if impl == "fused" and not _eurnn_fused.buildable():
        pytest.skip("no C++ compiler for the fused kernel")
    if impl == "triton":
        pytest.importorskip("triton")
        from rnnbench.cells import _eurnn_triton

        if not _eurnn_triton.interpreted():
            pytest.skip("the compiled Triton kernels run here (a GPU)")
    torch.manual_seed(0)
    cell = EURNN(2, 6, capacity=3, output="complex", impl=impl).double()
    x = torch.randn(3, 4, 2, dtype=torch.float64)
    h0 = torch.randn(1, 6, dtype=torch.complex128)
    torch.testing.assert_close(cell(x, h0=h0), cell(x, h0=h0.expand(3, 6)), rtol=0, atol=0)
