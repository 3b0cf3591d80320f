"""EURNN: unitarity, structure, parameter count, gradients, reference == dense, and which path
auto runs. The fused kernel's own tests are in test_eurnn_fused.py."""

import math

import pytest
import torch

import rnnbench
from rnnbench.cells import _eurnn_fused
from rnnbench.cells.eurnn import EURNN, modrelu_scale, mixer_pairs

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
    expected = torch.tensor([[e * math.cos(theta), -e * math.sin(theta)],
                             [math.sin(theta), math.cos(theta)]], dtype=torch.complex128)
    torch.testing.assert_close(cell.recurrent_matrix().detach(), expected, rtol=0, atol=1e-12)


def test_mesh_layouts():
    pairs = [p.T.tolist() for p in mixer_pairs(8, "tunable", 2, "periodic")]
    assert pairs == [[[0, 1], [2, 3], [4, 5], [6, 7]], [[1, 2], [3, 4], [5, 6], [7, 0]]]
    pairs = [p.T.tolist() for p in mixer_pairs(8, "tunable", 3, "open")]
    assert pairs[1] == [[1, 2], [3, 4], [5, 6]] and pairs[2] == pairs[0]  # ends skip odd layers
    pairs = [p.T.tolist() for p in mixer_pairs(8, "fft", 3, "periodic")]
    assert pairs == [[[0, 1], [2, 3], [4, 5], [6, 7]],
                     [[0, 2], [1, 3], [4, 6], [5, 7]],
                     [[0, 4], [1, 5], [2, 6], [3, 7]]]


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
    grads = torch.autograd.grad((y * torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)).sum(),
                                [*cell.parameters(), x, h0])
    return y, grads


EQUIVALENCE = [
    dict(style="tunable", capacity=2, output="real"),
    dict(style="tunable", capacity=3, output="complex", boundary="open"),
    dict(style="tunable", capacity=8, output="abs", diag_phase=True),
    dict(style="tunable", capacity=5, output="real", boundary="open", diag_phase=True),
    dict(style="fft", output="complex"),
    dict(style="fft", output="abs", diag_phase=True),
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
    for a, b in zip(g_dense, g_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("impl", ["reference", "dense", pytest.param("fused", marks=pytest.mark.fused)])
@pytest.mark.parametrize("kwargs", [dict(style="tunable", capacity=3, output="complex", diag_phase=True),
                                    dict(style="tunable", capacity=2, output="real", boundary="open"),
                                    dict(style="fft", output="abs")])
def test_gradcheck(impl, kwargs):
    torch.manual_seed(5)
    cell = EURNN(2, 4, impl=impl, **kwargs).double()
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    h0 = (0.5 * torch.randn(2, 4, dtype=torch.complex128)).requires_grad_()
    params = tuple(cell.parameters())

    def f(x, h0, *values):
        return torch.func.functional_call(cell, dict(zip(dict(cell.named_parameters()), values)), (x, h0))

    assert torch.autograd.gradcheck(f, (x, h0, *params))


@pytest.mark.parametrize("impl", ["reference", "dense", pytest.param("fused", marks=pytest.mark.fused)])
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
    torch.testing.assert_close(norms, torch.linalg.vector_norm(h0, dim=-1)[:, None].expand_as(norms),
                               rtol=1e-12, atol=0)
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


def test_modrelu_gradient_is_finite_at_zero():
    re = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    im = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor([-0.1, 0.0, 0.1], dtype=torch.float64, requires_grad=True)
    (re * modrelu_scale(re, im, bias)).sum().backward()
    assert torch.isfinite(re.grad).all() and torch.isfinite(bias.grad).all()


@pytest.mark.parametrize("n, capacity, expected", [(8, 2, "dense"), (256, 2, "dense"), (512, 2, "dense"),
                                                   (1332, 2, "reference"), (1024, 8, "dense"), (64, 64, "dense")])
def test_without_the_fused_kernel_auto_picks_the_path_measured_faster(n, capacity, expected, monkeypatch):
    monkeypatch.setattr(_eurnn_fused, "load", lambda: None)  # as on a machine without a compiler
    cell = EURNN(1, n, capacity=capacity)
    assert cell.chosen_impl(torch.device("cpu")) == expected
    assert cell.chosen_impl(torch.device("cuda")) == "dense"
    cell(torch.zeros(1, 2, 1))
    assert cell.last_impl == expected
    assert EURNN(1, n, capacity=capacity, impl="reference").chosen_impl(torch.device("cuda")) == "reference"
    assert EURNN(1, n, capacity=capacity, impl="fused").chosen_impl(torch.device("cpu")) == "dense"


@pytest.mark.fused
@pytest.mark.parametrize("n, capacity, diag_phase, expected", [
    (8, 2, False, "dense"), (10, 2, False, "fused"), (256, 2, False, "fused"), (256, 51, False, "fused"),
    (256, 51, True, "dense"), (256, 64, False, "dense"), (1024, 8, False, "fused"), (64, 64, False, "dense"),
])
def test_auto_picks_fused_on_cpu_for_meshes_of_at_most_n_over_5_layers(n, capacity, diag_phase, expected):
    cell = EURNN(1, n, capacity=capacity, diag_phase=diag_phase)
    assert cell.chosen_impl(torch.device("cpu")) == expected
    assert cell.chosen_impl(torch.device("cuda")) == "dense"
    assert EURNN(1, n, capacity=capacity, impl="fused").chosen_impl(torch.device("cpu")) == "fused"


@pytest.mark.parametrize("kwargs, message", [
    (dict(hidden_size=7), "even hidden size >= 2 (units are mixed in pairs); got 7"),
    (dict(hidden_size=0), "got 0"),
    (dict(capacity=0), "capacity must be in [1, hidden_size=8] for style='tunable'; got 0"),
    (dict(capacity=-2), "got -2"),
    (dict(capacity=9), "got 9"),
    (dict(style="fft", hidden_size=12), "power of two; got 12"),
    (dict(style="fft", capacity=3), "capacity must be left unset, got 3"),
    (dict(style="fft", boundary="open"), "boundary applies to style='tunable' only; got 'open'"),
    (dict(style="butterfly"), "style must be one of tunable, fft; got 'butterfly'"),
    (dict(output="imag"), "output must be one of real, abs, complex; got 'imag'"),
    (dict(impl="cuda"), "impl must be one of auto, reference, dense, fused; got 'cuda'"),
    (dict(boundary="closed"), "boundary must be one of periodic, open; got 'closed'"),
])
def test_invalid_options_raise_value_errors_naming_the_value(kwargs, message):
    kwargs = {"input_size": 1, "hidden_size": 8, **kwargs}
    with pytest.raises(ValueError) as error:
        EURNN(**kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize("spec, hidden, message", [
    ("eurnn", 15, "got 15"),
    ("eurnn-c16", 8, "got 16"),
    ("eurnn-fft", 48, "power of two; got 48"),
    ("eurnn:output=imag", 8, "not one of real, abs, complex"),
])
def test_invalid_specs_raise_value_errors(spec, hidden, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        rnnbench.build_cell(spec, 1, hidden)
