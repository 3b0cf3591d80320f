"""The checks every cell passes, parametrized over the registry: gradients against finite
differences (gradcheck through torch.func.functional_call), and bad options refused with a
ValueError naming the value. A newly registered cell is checked here without a copy of its own;
each family's file keeps what is particular to it (its equations, initialisation, sizes)."""

import functools
import re

import pytest
import torch
from torch.func import functional_call

import rnnbench
from rnnbench.registry import CELLS, RegistryError, format_value

F64 = torch.float64
INPUT, BATCH, STEPS = 2, 2, 5
# Past this many numbers to perturb, gradcheck runs in its fast mode, comparing v^T J u for random
# u and v, two forward passes per tensor rather than two per number: lmu's default order 256 (1310
# numbers at N = 4) and eurnn-c16 (N >= 16). The family's small specs check the same code's full
# Jacobian (lmu:order=4, eurnn's capacities 3 and 4).
FULL_JACOBIAN_LIMIT = 200


def family(spec: str) -> str:
    """The module that defines the cell's factory: "eurnn" for eurnn-c4, "orthogonal" for exprnn."""
    factory = CELLS.get(rnnbench.parse_cell_spec(spec).name).factory
    while isinstance(factory, functools.partial):
        factory = factory.func
    return factory.__module__.rpartition(".")[2]


# --- gradients -------------------------------------------------------------------------------


def _units_on(cell):
    with torch.no_grad():
        for linear in cell.inputs:
            linear.weight.abs_()
            linear.bias.fill_(0.3)
    return {}


def _every_term_active(cell):
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return {}


def _mod_bias_both_ways(cell):
    with torch.no_grad():
        cell.mod_bias.copy_(torch.linspace(-0.1, 0.1, len(cell.mod_bias)))
    return {}


def _initial_state(cell):
    return {"h0": 0.5 * torch.randn(BATCH, cell.hidden_size, dtype=torch.complex128)}


# What a family's cells need before the check, by family (`family`); each returns the keyword
# inputs of forward, checked as the input is. Kept to what the check needs:
PREPARE = {
    # ReLU units: input weights >= 0 and biases 0.3 keep them on, away from ReLU's kink, where a
    # finite difference would straddle it.
    "indrnn": _units_on,
    # Its inits start encoders and kernels at 0: moved off 0, every term of a step is active and
    # the gradient through each is checked (through a factor 0 nothing would be).
    "lmu": _every_term_active,
    # modReLU's bias starts at 0 (scornn) or near it: spread over [-0.1, 0.1], units with a
    # negative bias are cut off where |z| is small and the last one never is, so both sides of the
    # ReLU are checked. (Drawn at random, all can be cut off: no gradient would reach the input.)
    "orthogonal": _mod_bias_both_ways,
    # A complex initial state as a second input: the gradient with respect to h0 is checked too.
    "eurnn": _initial_state,
}

# The implementations and options the family files checked, besides each registered cell at its
# defaults: (spec, hidden size), at the sizes those files used (3, odd: exprnn and scornn leave an
# odd N's last unit alone).
GRADCHECK_EXTRAS = [
    ("cornn:dt=0.5", 3),
    ("cornn:scheme=explicit", 3),
    ("indrnn:max_length=20:layers=2", 3),
    ("lmu:order=4:theta=5", 3),
    ("lru:r_min=0.5:r_max=0.9", 3),
    ("lru:impl=loop", 3),
    ("lru:mlp=gelu", 3),
    ("lru:impl=loop:mlp=gelu", 3),
    *(
        (f"{name}:{options}", 3)
        for name in ("mingru", "minlstm")
        for options in ("impl=log-scan", "impl=loop", "candidate=linear")
    ),
    ("exprnn:init=henaff", 3),
    ("scornn:negative_ones=2", 3),
    *(
        (f"{name}:impl={impl}{options}", 4)
        for impl in ("reference", "dense", "fused")
        for name, options in [
            ("eurnn", ":capacity=3:output=complex:diag_phase=true"),
            ("eurnn", ":boundary=open"),
            ("eurnn-fft", ":output=abs"),
            ("eurnn", ":capacity=4:output=complex:diag_phase=true:modrelu=notebook:init=notebook"),
        ]
    ),
]


def smallest_hidden_size(name: str) -> int:
    """The smallest of 4, 8, 16 the cell accepts (EURNN wants an even N, a power of two for fft,
    and N >= its capacity): small keeps the finite differences few."""
    for hidden in (4, 8, 16):
        try:
            rnnbench.build_cell(name, INPUT, hidden)
        except ValueError:
            continue
        return hidden
    raise AssertionError(f"{name} accepts none of the hidden sizes 4, 8, 16")


def gradcheck_cases():
    """Every registered cell at its defaults and the smallest hidden size it accepts, then the
    extras; impl=fused needs the compiled kernel (marked `fused`)."""
    for name in rnnbench.list_cells():
        yield pytest.param(name, None, id=name)
    for spec, hidden in GRADCHECK_EXTRAS:
        marks = [pytest.mark.fused] if "impl=fused" in spec else []
        yield pytest.param(spec, hidden, marks=marks, id=f"{spec}@{hidden}")


@pytest.mark.parametrize("spec, hidden", list(gradcheck_cases()))
def test_gradcheck(spec, hidden):
    """The output's gradients with respect to the input and every parameter equal finite
    differences, in float64."""
    hidden = hidden or smallest_hidden_size(spec)
    torch.manual_seed(0)
    cell = rnnbench.build_cell(spec, INPUT, hidden).double()
    keywords = PREPARE.get(family(spec), lambda cell: {})(cell)
    names = [name for name, _ in cell.named_parameters()]
    assert names, f"{spec} has no parameters"
    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]
    x = torch.randn(BATCH, STEPS, INPUT, dtype=F64)
    inputs = [t.requires_grad_() for t in (x, *keywords.values())]

    def run(*tensors):
        x, *values = tensors[: len(inputs)]
        given = dict(zip(names, tensors[len(inputs) :], strict=True))
        return functional_call(cell, given, (x,), dict(zip(keywords, values, strict=True)))

    # gradcheck compares two zeros for a tensor the output does not depend on (an input the cell
    # ignores, a parameter functional_call does not swap in): each must reach the output.
    out = run(*inputs, *params)
    weights = torch.randn(out.shape, dtype=out.dtype)
    grads = torch.autograd.grad((out * weights).sum(), [*inputs, *params], allow_unused=True)
    for name, grad in zip(["x", *keywords, *names], grads, strict=True):
        assert grad is not None and grad.abs().sum() > 0, f"{spec}: no gradient reaches {name}"
    fast = sum(t.numel() for t in (*inputs, *params)) > FULL_JACOBIAN_LIMIT
    assert torch.autograd.gradcheck(run, (*inputs, *params), eps=1e-6, atol=1e-7, fast_mode=fast)


# --- bad options -----------------------------------------------------------------------------

# (spec, message): refused at hidden size 8 with a ValueError whose message matches (re.search).
BAD_OPTIONS = [
    ("cornn:dt=0", "dt=0.0 must be > 0"),
    ("cornn:dt=-0.1", "dt=-0.1 must be > 0"),
    ("cornn:gamma=-1", "gamma=-1.0 must be >= 0"),
    ("cornn:epsilon=-2", "epsilon=-2.0 must be >= 0"),
    ("cornn:scheme=rk4", "scheme='rk4' is not one of imex, explicit"),
    ("indrnn:layers=0", "layers=0 must be >= 1"),
    ("indrnn:layers=-2", "layers=-2 must be >= 1"),
    ("indrnn:max_length=0", "max_length=0 must be >= 1"),
    ("indrnn:max_gain=0.5", "max_gain=0.5 must be >= 1"),
    ("indrnn:init=zeros", "init='zeros' is not one of uniform, long"),
    ("lmu:order=0", "order=0 must be >= 1"),
    ("lmu:theta=0", "theta=0.0 must be a positive"),
    ("lmu:theta=-3", "theta=-3.0 must be a positive"),
    ("lmu:init=keras", "init='keras' is not one of default, psmnist"),
    ("lru:r_min=0.99:r_max=0.9", "r_min=0.99 must be below r_max=0.9"),
    ("lru:r_min=0.9:r_max=0.9", "r_min=0.9 must be below r_max=0.9"),
    ("lru:r_min=0.0", r"r_min=0.0 must be in \(0, 1\)"),
    ("lru:r_min=-0.5", r"r_min=-0.5 must be in \(0, 1\)"),
    ("lru:r_max=1.0", r"r_max=1.0 must be in \(0, 1\)"),
    ("lru:r_min=1.5:r_max=2.0", r"r_min=1.5 must be in \(0, 1\)"),
    ("lru:max_phase=0.0", r"max_phase=0.0 must be in \(0, 2 pi"),
    ("lru:max_phase=7.0", r"max_phase=7.0 must be in \(0, 2 pi"),
    ("lru:recurrent_lr=-0.1", "recurrent_lr=-0.1: must be a finite number >= 0"),
    ("lru:r_max=0.99999999", "r_max=0.99999999 is within float32 rounding of 1"),
    ("lru:max_phase=1e-45", "max_phase=1e-45 is too small for float32"),
    ("lru:mlp=relu", "is not one of glu, gelu"),
    ("lru:impl=fast", "is not one of scan, loop"),
    (
        "mingru:impl=log-scan:candidate=linear",
        "impl='log-scan' takes logarithms of the candidate, which needs",
    ),
    ("minlstm:impl=log-scan:candidate=linear", "minlstm: impl='log-scan'"),
    ("mingru:layers=0", "mingru: layers=0 must be at least 1"),
    ("minlstm:impl=fast", "is not one of scan, log-scan, loop"),
    ("mingru:candidate=tanh", "is not one of g, linear"),
    ("scornn:negative_ones=20", r"^scornn: negative_ones=20 must be at most hidden_size=8"),
    ("scornn:negative_ones=-2", "^scornn: negative_ones=-2 must be >= 0"),
    ("scornn:negative_fraction=1.5", r"^scornn: negative_fraction=1\.5 must be in \[0, 1\]"),
    ("scornn:negative_fraction=-0.1", r"^scornn: negative_fraction=-0\.1 must be in \[0, 1\]"),
    (
        "scornn:negative_ones=3:negative_fraction=0.5",
        r"^scornn: give negative_ones=3 or negative_fraction=0\.5",
    ),
    (
        "scornn:orthogonal_lr=-1",
        r"^scornn: cell option orthogonal_lr=-1\.0: must be a finite number >= 0",
    ),
    (
        "exprnn:orthogonal_lr=-0.001",
        r"^exprnn: cell option orthogonal_lr=-0\.001: must be a finite number >= 0",
    ),
    (
        "exprnn:orthogonal_lr_factor=-0.1",
        r"^exprnn: cell option orthogonal_lr_factor=-0\.1: must be a finite",
    ),
    (
        "eurnn:capacity=0",
        re.escape("capacity must be in [1, hidden_size=8] for style='tunable'; got 0"),
    ),
    ("eurnn:capacity=-2", "got -2"),
    ("eurnn:capacity=9", "got 9"),
    ("eurnn:output=imag", "not one of real, abs, complex"),
    ("eurnn:init=paper", "not one of default, notebook"),
    ("eurnn-full:modrelu=abs", "not one of smooth, notebook"),
]

# (spec, hidden size, message): hidden sizes a cell refuses, in the same form.
BAD_HIDDEN_SIZES = [
    ("lru", 0, "hidden_size=0 must be at least 1"),
    ("minlstm", 0, "minlstm: hidden_size=0 must be at least 1"),
    ("exprnn", 1, "^exprnn: hidden_size=1 is too small"),
    ("scornn", 0, "^scornn: hidden_size=0 is too small"),
    ("eurnn", 7, re.escape("even hidden size >= 2 (units are mixed in pairs); got 7")),
    ("eurnn", 0, "got 0"),
    ("eurnn", 15, "got 15"),
    ("eurnn-c16", 8, "got 16"),
    ("eurnn-fft", 12, "power of two; got 12"),
    ("eurnn-fft", 48, "power of two; got 48"),
]


def refused_by_the_parser():
    """For every option of every registered cell: a value outside its choices, a value its type
    cannot read and, for a float, one that is not finite, each refused by the spec parser
    (RegistryError, a ValueError) naming the spec, the option and the value."""
    for name in rnnbench.list_cells():
        for option in CELLS.get(name).options.values():
            cases = []
            if option.choices is not None:
                outside = "bogus" if option.type is str else format_value(max(option.choices) + 1)
                assert outside not in map(format_value, option.choices)
                choices = ", ".join(map(str, option.choices))
                cases.append((outside, f"is not one of {re.escape(choices)}$"))
            elif option.type is not str:  # (a free string has no value to refuse)
                cases.append(("abc", f"is not a valid {option.type.__name__}$"))
            if option.type is float:
                cases.append(("inf", "is not a finite number$"))
            for value, refusal in cases:
                spec = f"{name}:{option.name}={value}"
                message = (
                    f"^cell spec '{re.escape(spec)}': option {option.name}='{value}' {refusal}"
                )
                yield pytest.param(spec, 8, RegistryError, message, id=spec)


@pytest.mark.parametrize(
    "spec, hidden, error, message",
    [pytest.param(spec, 8, ValueError, message, id=spec) for spec, message in BAD_OPTIONS]
    + [
        pytest.param(spec, hidden, ValueError, message, id=f"{spec}@{hidden}")
        for spec, hidden, message in BAD_HIDDEN_SIZES
    ]
    + list(refused_by_the_parser()),
)
def test_bad_options_are_refused(spec, hidden, error, message):
    with pytest.raises(error, match=message):
        rnnbench.build_cell(spec, 1, hidden)
