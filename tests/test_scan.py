"""The scans of cells/_scan.py: the parallel scan and the log-space scan equal the step loop,
forward and gradients, for real and complex values, time-varying and time-invariant coefficients,
T = 1, T not a power of two, and coefficients near 0 and near 1; gradcheck and gradgradcheck."""

import pytest
import torch

from rnnbench.cells._scan import linear_scan, log_scan, loop_scan

F64, C128 = torch.float64, torch.complex128
LENGTHS = [1, 2, 3, 7, 64, 300]  # 1, odd, a power of two, long


def coefficients(shape, regime, complex_, generator):
    """a of a given magnitude regime: `mixed` in (0, 1), `near0` in [1e-12, 1e-6], `near1`
    within 1e-6 of 1 (in modulus), `signed` in (-1.2, 1.2) (negative values, some above 1);
    complex: a random phase."""
    u = torch.rand(shape, generator=generator, dtype=F64)
    modulus = {
        "mixed": u,
        "near0": 10 ** (-6 - 6 * u),
        "near1": 1 - 10 ** (-6 - 6 * u),
        "signed": 2.4 * u - 1.2,
    }[regime]
    if not complex_:
        return modulus
    return torch.polar(
        modulus.abs(), 2 * torch.pi * torch.rand(shape, generator=generator, dtype=F64)
    )


def inputs(batch, steps, width, complex_, generator):
    b = torch.randn(batch, steps, width, generator=generator, dtype=F64)
    return (
        torch.complex(b, torch.randn(batch, steps, width, generator=generator, dtype=F64))
        if complex_
        else b
    )


def values_and_gradients(scan, a, b, upstream):
    a, b = a.clone().requires_grad_(), b.clone().requires_grad_()
    h = scan(a, b)
    loss = (h * upstream.conj()).real.sum()  # a real loss of complex states: <upstream, h>
    return (h.detach(), *torch.autograd.grad(loss, (a, b)))


@pytest.mark.parametrize("regime", ["mixed", "near0", "near1", "signed"])
@pytest.mark.parametrize("time_varying", [True, False])
@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("steps", LENGTHS)
def test_the_parallel_scan_equals_the_loop_forward_and_backward(
    steps, complex_, time_varying, regime
):
    g = torch.Generator().manual_seed(steps)
    batch, width = 3, 4
    a = coefficients((batch, steps, width) if time_varying else (width,), regime, complex_, g)
    b = inputs(batch, steps, width, complex_, g)
    upstream = inputs(batch, steps, width, complex_, g)
    expected = values_and_gradients(loop_scan, a, b, upstream)
    got = values_and_gradients(linear_scan, a, b, upstream)
    for name, x, y in zip(["h", "grad a", "grad b"], got, expected, strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype, name
        # "signed" coefficients above 1 grow the states to ~1.2^300: compare relative to their size
        scale = max(1.0, y.abs().max().item())
        torch.testing.assert_close(x, y, rtol=0, atol=1e-9 * scale, msg=name)


def test_a_coefficient_at_step_0_is_ignored_and_gets_no_gradient():
    a = torch.rand(2, 5, 3, dtype=F64, requires_grad=True)
    b = torch.randn(2, 5, 3, dtype=F64)
    h = linear_scan(a, b)
    assert torch.equal(h[:, 0], b[:, 0])
    h.sum().backward()
    assert torch.equal(a.grad[:, 0], torch.zeros(2, 3, dtype=F64))


def test_a_small_case_by_hand():
    a = torch.tensor([[[9.0], [0.5], [-2.0], [0.0], [1.0]]])
    b = torch.tensor([[[1.0], [1.0], [1.0], [3.0], [1.0]]])
    expected = [1.0, 1.5, -2.0, 3.0, 4.0]
    assert linear_scan(a, b).flatten().tolist() == expected
    assert loop_scan(a, b).flatten().tolist() == expected


@pytest.mark.parametrize("steps", [1, 2, 5, 8, 33])
@pytest.mark.parametrize("complex_", [False, True])
def test_reverse_is_the_forward_scan_run_backwards_in_time(steps, complex_):
    """h_t = a_{t+1} h_{t+1} + b_t: the forward scan on the time-reversed sequences, with the
    coefficient joining two steps moved with them."""
    g = torch.Generator().manual_seed(0)
    a = coefficients((2, steps, 3), "mixed", complex_, g)
    b = inputs(2, steps, 3, complex_, g)
    shifted = torch.cat(
        [torch.ones_like(a[:, :1]), a[:, 1:].flip(1)], 1
    )  # position k joins k-1, k reversed
    expected = loop_scan(shifted, b.flip(1)).flip(1)
    torch.testing.assert_close(linear_scan(a, b, reverse=True), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        linear_scan(a[0, 0], b, reverse=True),
        loop_scan(a[0, 0], b.flip(1)).flip(1),
        rtol=0,
        atol=1e-12,
    )


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("time_varying", [True, False])
@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("steps", [1, 2, 5, 8])
def test_gradcheck_and_gradgradcheck(steps, complex_, time_varying, reverse):
    g = torch.Generator().manual_seed(1)
    a = coefficients((2, steps, 3) if time_varying else (3,), "mixed", complex_, g).requires_grad_()
    b = inputs(2, steps, 3, complex_, g).requires_grad_()

    def scan(a, b):
        return linear_scan(a, b, reverse=reverse)

    assert torch.autograd.gradcheck(scan, (a, b))
    assert torch.autograd.gradgradcheck(scan, (a, b))


def test_real_coefficients_drive_complex_inputs_and_broadcast_over_trailing_dims():
    g = torch.Generator().manual_seed(2)
    a = torch.rand(4, 1, dtype=F64, generator=g, requires_grad=True)  # (4, 1) against (B, T, 4, 2)
    b = torch.randn(2, 9, 4, 2, dtype=C128, generator=g, requires_grad=True)
    h = linear_scan(a, b)
    expected = loop_scan(a, b)
    assert h.dtype == C128
    torch.testing.assert_close(h, expected, rtol=0, atol=1e-12)
    grads = torch.autograd.grad(h.abs().sum(), (a, b))
    expected_grads = torch.autograd.grad(expected.abs().sum(), (a, b))
    assert grads[0].dtype == F64 and grads[0].shape == (4, 1)
    for x, y in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-10)
    assert torch.autograd.gradcheck(linear_scan, (a, b))


def test_float32_stays_close_to_the_float64_loop_on_a_long_sequence():
    g = torch.Generator().manual_seed(3)
    a = coefficients((4, 784, 8), "mixed", False, g)
    b = inputs(4, 784, 8, False, g)
    exact = loop_scan(a, b)
    assert (linear_scan(a.float(), b.float()).double() - exact).abs().max() < 1e-5


@pytest.mark.parametrize("regime", ["mixed", "near0", "near1"])
@pytest.mark.parametrize("time_varying", [True, False])
@pytest.mark.parametrize("steps", [1, 7, 64, 300])
def test_the_log_space_scan_equals_the_loop(steps, time_varying, regime):
    g = torch.Generator().manual_seed(4)
    a = coefficients((3, steps, 4) if time_varying else (4,), regime, False, g)
    b = torch.rand(3, steps, 4, generator=g, dtype=F64) + 0.01  # b > 0
    upstream = torch.randn(3, steps, 4, generator=g, dtype=F64)
    # as functions of log a and log b, the inputs the log-space scan takes (a gradient with respect
    # to a itself would go through d log a / da = 1 / a, which turns rounding into 1e-4 at
    # a ~ 1e-12)
    expected = values_and_gradients(
        lambda la, lb: loop_scan(la.exp(), lb.exp()), a.log(), b.log(), upstream
    )
    got = values_and_gradients(log_scan, a.log(), b.log(), upstream)
    # (the gradient of a time-invariant log a sums B T terms of the cumulative sum and the
    # logcumsumexp that cancel: its rounding error is ~ T eps, 4e-9 at T = 300 where its value
    # is ~1e-11)
    for name, x, y, atol in zip(
        ["h", "grad log a", "grad log b"], got, expected, [1e-10, 1e-8, 1e-10], strict=True
    ):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=atol, msg=name)


def test_the_log_space_scan_loses_precision_in_float32_where_the_parallel_scan_does_not():
    """The documented numerical difference: strongly forgetting steps (a ~ 1e-3) make
    a*_T = sum log a ~ -5000, and log h = a* + logcumsumexp(...) cancels two numbers
    of that size."""
    g = torch.Generator().manual_seed(5)
    a = 1e-3 * (1 + torch.rand(2, 784, 4, generator=g, dtype=F64))
    b = torch.rand(2, 784, 4, generator=g, dtype=F64) + 0.5
    exact = loop_scan(a, b)
    relative = {
        name: ((h.double() - exact).abs() / exact).max().item()
        for name, h in [
            ("log", log_scan(a.float().log(), b.float().log())),
            ("parallel", linear_scan(a.float(), b.float())),
        ]
    }
    assert relative["parallel"] < 1e-6
    assert relative["log"] > 10 * relative["parallel"]


def test_shapes_that_do_not_fit_are_refused():
    b = torch.zeros(2, 5, 3)
    for a in (torch.zeros(2, 4, 3), torch.zeros(4), torch.zeros(5, 3), torch.zeros(1, 5, 3)):
        with pytest.raises(ValueError, match="scan: a time-"):
            linear_scan(a, b)
        with pytest.raises(ValueError, match="scan: a time-"):
            loop_scan(a, b)
    with pytest.raises(ValueError, match=r"\(B, T, \.\.\.\)"):
        linear_scan(torch.zeros(()), torch.zeros(5))
    with pytest.raises(ValueError, match="complex"):
        log_scan(torch.zeros(3, dtype=C128), torch.zeros(2, 5, 3, dtype=C128))
