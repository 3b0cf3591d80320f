"""EURNN: the Efficient Unitary RNN of Jing et al. (2017), "Tunable Efficient Unitary Neural
Networks (EUNN) and their application to RNNs", ICML.

The hidden state h lives in C^N (N even). One step is

    h_t = modReLU(U h_{t-1} + W x_t + b),    h_0 = 0,
    modReLU(z) = relu(|z| + beta) * z / |z|,

where the input projection `W x_t + b` is real (it enters the real part only) and U is
unitary by construction: a product of layers of N/2 independent 2x2 mixers

    [[e^{i phi} cos theta, -e^{i phi} sin theta],
     [           sin theta,             cos theta]]

acting on pairs of units, U = L_C ... L_2 L_1 D, where the optional diagonal phase layer
D = diag(e^{i omega}) (`diag_phase`) acts first. The `tunable` style has `capacity` layers; even
layers mix pairs (2k, 2k+1), odd layers mix (2k+1, 2k+2 mod N) (`boundary="periodic"`), or leave
the two end units alone (`boundary="open"`, the paper's layout). At capacity N, `periodic` (with
or without D) and `open` with D span the unitary group U(N): the Jacobian of angles -> U has rank
N^2 (tests/test_eurnn.py). D acts first because each mixer's phase sits on its output row a: with
D last, as in the paper's code, N - 1 of its phases duplicate mixer phases (rank N^2 - N + 1 for
`open`). `open` without D has N^2 - N angles and cannot span U(N). The `fft` style has log2(N)
layers that mix units at strides 1, 2, 4, ... (N a power of two).

|z| in modReLU is kept away from 0 in one of two forms (`modrelu`): `smooth` (the default),
sqrt(|z|^2 + 1e-12), smooth at z = 0; `notebook`, |z| + 1e-5, as torch_eunn's ModReLU, which
the original notebook used (its derivative at z = 0 is taken as 0, as torch's complex abs does).

Four implementations of the same function (IMPLEMENTATIONS: each says where it can run):
  - `reference` applies the mixer layers to the state at every step: O(capacity * N) work
    per step, a dozen small tensor operations per layer;
  - `dense` builds U once per forward pass (capacity * N^2 work, differentiable), then runs
    one real (2N x 2N) matmul plus modReLU per step (on CPU, a compiled step loop where the
    kernel below is built; a Python loop elsewhere);
  - `fused` (CPU) runs the whole recurrence, forward and backward through time, in one compiled
    C++ kernel per direction with the sparse mixer structure (see _eurnn_fused.py): O(capacity * N)
    work per step with no per-step tensor operations, and only the states kept for backward;
  - `triton` (CUDA) does the same in two Triton kernels, one launch per direction (see
    _eurnn_triton.py); on CPU it runs only under Triton's interpreter, for tests.
`impl="auto"` picks one for the device (`choose_impl`); a named implementation that cannot run
on the device fails the forward pass with a message naming those that can.

Initialisation (`init="default"`): angles theta, phi (and the diagonal phases) uniform in
[0, 2pi), as in the paper; modReLU bias beta uniform in [-0.01, 0.01], so the nonlinearity starts
close to the identity and the state norm is almost preserved; the input layer keeps torch's
`nn.Linear` default (uniform in +-1/sqrt(input_size)). The original notebook initialises
otherwise, and `init="notebook"` does as it does: the same angles; input weights uniform in
+-0.426; input bias and modReLU bias 0.01. Its readout (the runner's, not the cell's) has weights
uniform in +-0.426 and bias 0.01: `readout_init` says so, and `init_readout(linear)` applies it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.cells import _eurnn_fused, _eurnn_triton
from rnnbench.registry import register_cell

Style = Literal["tunable", "fft"]
Output = Literal["real", "abs", "complex"]
Impl = Literal["auto", "reference", "dense", "fused", "triton"]
Boundary = Literal["periodic", "open"]
Init = Literal["default", "notebook"]
ModRelu = Literal["smooth", "notebook"]

# The epsilon of each modReLU form: smooth, |z| = sqrt(|z|^2 + eps^2) (finite gradient at z = 0);
# notebook, |z| + eps (torch_eunn's ModReLU, the original notebook's).
MODRELU_EPS = {"smooth": 1e-6, "notebook": 1e-5}
# init="notebook": the original notebook's input and readout weights are uniform in +-0.426 and
# all three biases (input, modReLU, readout) are 0.01.
NOTEBOOK_WEIGHT_BOUND = 0.426
NOTEBOOK_BIAS = 0.01


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"EURNN {name} must be one of {', '.join(choices)}; got {value!r}")


def modrelu_scale(
    re: torch.Tensor, im: torch.Tensor, bias: torch.Tensor, form: str = "smooth"
) -> torch.Tensor:
    """The real factor s with modReLU(z) = s * z, from the parts of z.

    s = relu(|z| + bias) / |z| = relu(1 + bias / |z|), the second form in fewer operations,
    with |z| computed as sqrt(re^2 + im^2 + eps^2) (`form="smooth"`) or |z| + eps
    (`form="notebook"`, torch_eunn's). Example: `modrelu_scale(z.real, z.imag, bias) * z`.
    """
    eps = MODRELU_EPS[form]
    if form == "smooth":
        return torch.relu(1 + bias * torch.rsqrt(re * re + im * im + eps**2))
    # torch's complex abs has derivative 0 at z = 0 (sqrt and hypot give NaN there)
    return torch.relu(1 + bias / (torch.complex(re, im).abs() + eps))


def mixer_pairs(hidden_size: int, style: str, capacity: int, boundary: str) -> list[torch.Tensor]:
    """For each layer of the mesh, a (2, M) tensor of the unit pairs (a, b) its M mixers act on."""
    n = hidden_size
    units = torch.arange(n)
    if style == "fft":
        layers = []
        for k in range(int(math.log2(n))):
            stride = 2**k
            first = units[(units // stride) % 2 == 0]  # the lower unit of each pair
            layers.append(torch.stack([first, first + stride]))
        return layers
    even = torch.stack([units[0::2], units[0::2] + 1])
    if boundary == "periodic":
        odd = torch.stack([units[1::2], (units[1::2] + 1) % n])
    else:  # open: units 0 and N-1 skip the odd layers
        odd = torch.stack([units[1:-1:2], units[1:-1:2] + 1])
    return [even if layer % 2 == 0 else odd for layer in range(capacity)]


class EURNN(nn.Module):
    """Efficient unitary RNN. `forward(x: (B, T, input_size)) -> (B, T, output_size)`."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        capacity: int | None = None,
        style: str = "tunable",
        output: str = "real",
        impl: str = "auto",
        diag_phase: bool = False,
        boundary: str = "periodic",
        init: str = "default",
        modrelu: str = "smooth",
    ):
        super().__init__()
        _check_choice("style", style, ("tunable", "fft"))
        _check_choice("output", output, ("real", "abs", "complex"))
        _check_choice("impl", impl, ("auto", *IMPLEMENTATIONS))
        _check_choice("boundary", boundary, ("periodic", "open"))
        _check_choice("init", init, ("default", "notebook"))
        _check_choice("modrelu", modrelu, tuple(MODRELU_EPS))
        n = hidden_size
        if n < 2 or n % 2:
            raise ValueError(
                f"EURNN needs an even hidden size >= 2 (units are mixed in pairs); got {n}"
            )
        if style == "fft":
            if n & (n - 1):
                raise ValueError(
                    f"EURNN style='fft' needs a hidden size that is a power of two; got {n}"
                )
            if capacity is not None:
                raise ValueError(
                    f"EURNN style='fft' has log2(N) = {int(math.log2(n))} layers; capacity must be "
                    f"left unset, got {capacity}"
                )
            if boundary != "periodic":
                raise ValueError(
                    f"EURNN boundary applies to style='tunable' only; got {boundary!r}"
                )
            capacity = int(math.log2(n))
        else:
            capacity = 2 if capacity is None else capacity
            if not 1 <= capacity <= n:
                raise ValueError(
                    f"EURNN capacity must be in [1, hidden_size={n}] for style='tunable'; "
                    f"got {capacity}"
                )
        self.input_size, self.hidden_size = input_size, n
        self.capacity, self.style, self.output, self.boundary = capacity, style, output, boundary
        self.init, self.modrelu = init, modrelu
        self.impl = impl  # "auto" is resolved per forward pass: see chosen_impl
        self.last_impl: str | None = None  # what the last forward pass ran
        self.output_size = 2 * n if output == "complex" else n
        self._fused_layout = None  # built on first use of the fused kernel
        self._triton_tables: dict[
            torch.device, torch.Tensor
        ] = {}  # the Triton kernels' mixer tables

        # Each layer reorders the state to [a-units, b-units, untouched units] with `perm`,
        # mixes, and restores the order with `inv`. Layers share few distinct patterns.
        pairs = mixer_pairs(n, style, capacity, boundary)
        self.layer_sizes = [p.shape[1] for p in pairs]  # mixers per layer
        patterns: dict[tuple[int, ...], int] = {}
        self._layer_pattern = []
        for p in pairs:
            rest = torch.ones(n, dtype=torch.bool)
            rest[p.flatten()] = False
            perm = torch.cat([p[0], p[1], torch.arange(n)[rest]])
            key = tuple(perm.tolist())
            if key not in patterns:
                patterns[key] = len(patterns)
                self.register_buffer(f"perm{patterns[key]}", perm, persistent=False)
                self.register_buffer(f"inv{patterns[key]}", torch.argsort(perm), persistent=False)
            self._layer_pattern.append(patterns[key])

        mixers = sum(self.layer_sizes)
        self.theta = nn.Parameter(torch.empty(mixers).uniform_(0, 2 * math.pi))
        self.phi = nn.Parameter(torch.empty(mixers).uniform_(0, 2 * math.pi))
        self.omega = nn.Parameter(torch.empty(n).uniform_(0, 2 * math.pi)) if diag_phase else None
        self.mod_bias = nn.Parameter(torch.empty(n).uniform_(-0.01, 0.01))
        self.input = nn.Linear(input_size, n)
        # The readout's initialisation, (low, high, bias), for the runner (see init_readout);
        # None: torch's nn.Linear default.
        self.readout_init: tuple[float, float, float] | None = None
        if init == "notebook":  # after the default draws, so that init="default" draws as always
            with torch.no_grad():
                self.input.weight.uniform_(-NOTEBOOK_WEIGHT_BOUND, NOTEBOOK_WEIGHT_BOUND)
                self.input.bias.fill_(NOTEBOOK_BIAS)
                self.mod_bias.fill_(NOTEBOOK_BIAS)
            self.readout_init = (-NOTEBOOK_WEIGHT_BOUND, NOTEBOOK_WEIGHT_BOUND, NOTEBOOK_BIAS)

    def init_readout(self, readout: nn.Linear) -> None:
        """Initialise the readout layer that follows this cell as `readout_init` says; with None
        (init="default") leave it, and torch's random generator, untouched.

        Example: `cell.init_readout(nn.Linear(cell.output_size, 10))`.
        """
        if self.readout_init is None:
            return
        low, high, bias = self.readout_init
        with torch.no_grad():
            readout.weight.uniform_(low, high)
            readout.bias.fill_(bias)

    def lr_groups(self) -> dict[str, list[nn.Parameter]]:
        """The parameters with a learning rate of their own (rnnbench.optim): `angles`, every
        rotation angle of U (theta, phi, and omega with diag_phase), at the spec's `angles_lr`. They
        live on a torus, not in a vector space like the input weights and modReLU bias, which stay
        at --lr.

        Example: `{name: len(ps) for name, ps in cell.lr_groups().items()} == {"angles": 2}`.
        """
        return {"angles": [p for p in (self.theta, self.phi, self.omega) if p is not None]}

    def chosen_impl(self, device: torch.device) -> str:
        """The implementation a forward pass on `device` runs: `choose_impl` for this mesh, where
        the fused kernel counts as available once it is built (`_eurnn_fused.load()`). Raises
        ValueError when the implementation the spec names cannot run on `device`, naming those that
        can."""
        layers = self.capacity + (self.omega is not None)
        return choose_impl(self.impl, device, self.hidden_size, layers)

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, style={self.style}, capacity={self.capacity}, "
            f"boundary={self.boundary}, diag_phase={self.omega is not None}, "
            f"output={self.output}, impl={self.impl}, init={self.init}, modrelu={self.modrelu}"
        )

    def _rotate(self, h: torch.Tensor) -> torch.Tensor:
        """h U^T for complex rows h: (..., N): the diagonal phase (if any), then the mixer layers
        one after another."""
        if self.omega is not None:
            h = h * torch.polar(torch.ones_like(self.omega), self.omega)
        cos, sin = torch.cos(self.theta), torch.sin(self.theta)
        phase = torch.polar(torch.ones_like(self.phi), self.phi)  # e^{i phi}
        for m, c, s, e, p in zip(
            self.layer_sizes,
            cos.split(self.layer_sizes),
            sin.split(self.layer_sizes),
            phase.split(self.layer_sizes),
            self._layer_pattern,
            strict=True,
        ):
            hp = h.index_select(-1, getattr(self, f"perm{p}"))  # (..., N) as [a, b, rest]
            ha, hb, rest = hp[..., :m], hp[..., m : 2 * m], hp[..., 2 * m :]
            mixed = torch.cat([e * (c * ha - s * hb), s * ha + c * hb, rest], -1)
            h = mixed.index_select(-1, getattr(self, f"inv{p}"))
        return h

    def recurrent_matrix(self) -> torch.Tensor:
        """U as a complex (N, N) tensor (differentiable), with h_t = modReLU(U h_{t-1} + ...)."""
        eye = torch.eye(
            self.hidden_size, dtype=self.theta.dtype.to_complex(), device=self.theta.device
        )
        return self._rotate(eye).transpose(0, 1)  # rows of eye U^T are the columns of U

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, input_size) real; h0: optional (B, N) complex initial state (default 0)."""
        self.last_impl = self.chosen_impl(x.device)
        if h0 is not None:  # (1, N) or (N,) broadcast over the batch, as the reference path does
            h0 = h0.expand(x.shape[0], self.hidden_size)
        re, im = IMPLEMENTATIONS[self.last_impl].run(self, x, h0)
        if self.output == "real":
            return re
        if self.output == "complex":
            return torch.cat([re, im], -1)
        return torch.complex(re, im).abs()  # torch's complex abs has gradient 0 at 0, not NaN

    def _input_projection(self, x: torch.Tensor) -> torch.Tensor:
        """W x_t + b for all steps, time first: (T, B, N)."""
        return F.linear(x.transpose(0, 1), self.input.weight, self.input.bias)

    def _forward_reference(self, x: torch.Tensor, h0: torch.Tensor | None):
        n = self.hidden_size
        xproj = self._input_projection(x)
        h = xproj.new_zeros(xproj.shape[1], n, dtype=xproj.dtype.to_complex()) if h0 is None else h0
        states = []
        for xp_t in xproj.unbind(0):  # (B, N)
            z = self._rotate(h) + xp_t  # the input is real: it moves the real part only
            h = z * modrelu_scale(z.real, z.imag, self.mod_bias, self.modrelu)
            states.append(h)
        hs = torch.stack(states, 1)  # (B, T, N) complex
        return hs.real, hs.imag

    def _forward_dense(self, x: torch.Tensor, h0: torch.Tensor | None):
        n = self.hidden_size
        xproj = self._input_projection(x)
        u_t = self.recurrent_matrix().transpose(0, 1)  # U^T, (N, N) complex
        # Complex row-vector product h U^T as one real matmul on [Re h, Im h]:
        # [re, im] @ [[A, B], [-B, A]] with U^T = A + iB.
        a, b = u_t.real, u_t.imag
        m = torch.cat([torch.cat([a, b], 1), torch.cat([-b, a], 1)], 0)  # (2N, 2N)
        if h0 is None:
            h0 = xproj.new_zeros(xproj.shape[1], 2 * n)
        else:
            h0 = torch.cat([h0.real, h0.imag], -1).to(xproj.dtype)
        # For output="real" the function returns Re h only, so that no gradient of zeros has to
        # be built for Im h: (T, B, N) or (T, B, 2N).
        real_only = self.output == "real"
        hs = DenseRecurrence.apply(xproj, m, self.mod_bias, h0, real_only, self.modrelu).transpose(
            0, 1
        )
        return hs[..., :n], None if real_only else hs[..., n:]

    def _forward_fused(self, x: torch.Tensor, h0: torch.Tensor | None):
        n = self.hidden_size
        if self._fused_layout is None:
            pairs = mixer_pairs(n, self.style, self.capacity, self.boundary)
            self._fused_layout = _eurnn_fused.layout(pairs, n)
        if h0 is not None:
            h0 = torch.cat([h0.real, h0.imag], -1).to(x.dtype)
        omega = self.omega if self.omega is not None else self.theta.new_empty(0)
        real_only = self.output == "real"
        hs = _eurnn_fused.FusedRecurrence.apply(
            x,
            self.input.weight,
            self.input.bias,
            self.theta,
            self.phi,
            omega,
            self.mod_bias,
            h0,
            _eurnn_fused.load(),
            self._fused_layout,
            real_only,
            (self.modrelu == "notebook", MODRELU_EPS[self.modrelu]),
        )
        # For output="real" hs is Re h already: slicing it would make backward pad a copy.
        return (hs, None) if real_only else (hs[..., :n], hs[..., n:])

    def _forward_triton(self, x: torch.Tensor, h0: torch.Tensor | None):
        n = self.hidden_size
        table = self._triton_tables.get(x.device)
        if table is None:
            pairs = mixer_pairs(n, self.style, self.capacity, self.boundary)
            table = self._triton_tables[x.device] = _eurnn_triton.tables(pairs, n).to(x.device)
        if h0 is not None:
            h0 = torch.cat([h0.real, h0.imag], -1).to(x.dtype)
        xp = F.linear(
            x, self.input.weight, self.input.bias
        )  # (B, T, N): one GEMM; autograd takes it back
        omega = self.omega if self.omega is not None else self.theta.new_empty(0)
        real_only = self.output == "real"
        hs = _eurnn_triton.TritonRecurrence.apply(
            xp,
            self.theta,
            self.phi,
            omega,
            self.mod_bias,
            h0,
            table,
            real_only,
            (self.modrelu == "notebook", MODRELU_EPS[self.modrelu]),
        )
        return (hs, None) if real_only else (hs[..., :n], hs[..., n:])


@dataclass(frozen=True)
class Implementation:
    """One way to run the recurrence: `unavailable(device)` says why it cannot run on `device`
    (None: it can), `run(cell, x, h0)` returns (Re h, Im h or None) for all steps, (B, T, N)."""

    name: str
    unavailable: Callable[[torch.device], str | None]
    run: Callable[[EURNN, torch.Tensor, torch.Tensor | None], tuple]


def _fused_unavailable(device: torch.device) -> str | None:
    if device.type != "cpu":
        return f"the fused kernel is a CPU kernel; this is {device.type}"
    if _eurnn_fused.load() is None:
        return (
            "the fused kernel could not be built here (a C++ compiler and ninja are needed; "
            "see README.md)"
        )
    return None


IMPLEMENTATIONS = {
    "reference": Implementation("reference", lambda device: None, EURNN._forward_reference),
    "dense": Implementation("dense", lambda device: None, EURNN._forward_dense),
    "fused": Implementation("fused", _fused_unavailable, EURNN._forward_fused),
    "triton": Implementation("triton", _eurnn_triton.unavailable, EURNN._forward_triton),
}


def choose_impl(
    impl: str,
    device: torch.device,
    hidden_size: int,
    layers: int,
    fused_unavailable: Callable[[torch.device], str | None] = _fused_unavailable,
) -> str:
    """The implementation a mesh of `layers` layers (capacity, plus one with the diagonal phase)
    over N = hidden_size units runs on `device` when the spec asks for `impl`.

    A named implementation runs where it can, else ValueError names those that can. `auto`: on CUDA,
    triton where Triton is installed and the mesh is shallow (at most N/5 layers, as fused on CPU:
    each layer is a barrier a step) up to N = 1024 (every launch of it compiled without spills in
    the tests), else dense (a GEMM is cheap there; the reference path is bound by kernel launches).
    On CPU, fused when the mesh has at most N/5 layers and the kernel is built: it costs ~ L N per
    step, dense ~ N^2 at a better rate per operation; measured crossovers against the compiled dense
    loop (benchmarks/cells.py, 2 cores, B=100) lie at L = N/4.5 (N=1024, T=100), N/5 (N=256, T=784)
    and N/4 (N=64, T=196). Otherwise `auto` compares per-step costs fitted on 2 cores (B=50, T=120;
    N=512..1332, capacity 2..16): dense ~ 0.77 + 5.6e-6 N^2 ms, reference ~ 1.22 + L (0.41 + 9e-4 N)
    ms. Dense wins at N=512 with capacity 2 (1.3x) and at N=1024 with capacity 8; reference at
    N=1332 with capacity 2 (2.4x). Elsewhere (MPS...), dense. `fused_unavailable` replaces the fused
    kernel's check (rnnbench.resources asks without building).

    >>> choose_impl("auto", torch.device("cpu"), 256, 2)
    'fused'
    """
    unavailable = {
        **{name: entry.unavailable for name, entry in IMPLEMENTATIONS.items()},
        "fused": fused_unavailable,
    }
    if impl != "auto":
        reason = unavailable[impl](device)
        if reason is not None:
            # (the fused kernel is listed where it could be built, without building it for a
            # message)
            can = [
                name
                for name in IMPLEMENTATIONS
                if (name != "fused" and unavailable[name](device) is None)
                or (name == "fused" and device.type == "cpu" and _eurnn_fused.buildable())
            ]
            raise ValueError(
                f"EURNN impl={impl!r} cannot run on {device.type}: {reason}. "
                f"Implementations that can: {', '.join(can)} (or impl=auto)"
            )
        return impl
    if device.type == "cuda":
        shallow = 5 * layers <= hidden_size <= _eurnn_triton.MAX_AUTO_N
        return "triton" if shallow and unavailable["triton"](device) is None else "dense"
    if device.type != "cpu":
        return "dense"
    if 5 * layers <= hidden_size and unavailable["fused"](device) is None:
        return "fused"
    n = hidden_size
    dense_ms = 0.77 + 5.6e-6 * n * n
    reference_ms = 1.22 + layers * (0.41 + 9e-4 * n)
    return "reference" if reference_ms < dense_ms else "dense"


class DenseRecurrence(torch.autograd.Function):
    """All steps of h_t = modReLU(h_{t-1} M + [xproj_t, 0]) on real states [Re h, Im h].

    xproj: (T, B, N), m: (2N, 2N), bias: (N,), h0: (B, 2N) -> hs: (T, B, 2N), or its real
    half (T, B, N) when `real_only`; `form` is the modReLU's (see modrelu_scale).
    Plain autograd keeps a dozen intermediates per step and sums T separate (2N, 2N)
    gradients of M. Here forward keeps the pre-activations z_t and the states (its own output),
    backward recomputes each step's modReLU factors from z_t while they are in cache and
    applies modReLU's derivative written out, and dL/dM = sum_t h_{t-1}^T g_t is one large
    matmul over all steps.
    """

    @staticmethod
    def forward(ctx, xproj, m, bias, h0, real_only, form):
        steps, batch, n = xproj.shape
        # On CPU the compiled step loop (csrc/eurnn_fused.cpp) does the same, without a dozen
        # tensor operations per step; elsewhere, or where it is not built, this loop.
        ctx.kernel = _eurnn_fused.load() if xproj.device.type == "cpu" else None
        ctx.real_only, ctx.form = real_only, form
        if ctx.kernel is not None:
            z, hs = ctx.kernel.dense_forward(
                xproj, m, bias, form == "notebook", MODRELU_EPS[form], h0
            )
            ctx.save_for_backward(z, hs, m, bias, h0)
            return hs[..., :n] if real_only else hs
        z = xproj.new_empty(steps, batch, 2 * n)  # pre-activations
        hs = torch.empty_like(z)
        h = h0
        for t in range(steps):
            torch.mm(h, m, out=z[t])
            zt = z[t].view(batch, 2, n)
            zt[:, 0] += xproj[t]  # the input is real: it moves the real half only
            torch.mul(
                zt,
                modrelu_scale(zt[:, 0], zt[:, 1], bias, form).unsqueeze(1),
                out=hs[t].view(batch, 2, n),
            )
            h = hs[t]
        ctx.save_for_backward(z, hs, m, bias, h0)
        return hs[..., :n] if real_only else hs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out):
        z, hs, m, bias, h0 = ctx.saved_tensors
        if ctx.kernel is not None:
            g_xproj, g_m, g_bias, g_h0 = ctx.kernel.dense_backward(
                g_out,
                z,
                hs,
                m,
                bias,
                ctx.form == "notebook",
                MODRELU_EPS[ctx.form],
                h0,
                ctx.real_only,
            )
            return g_xproj, g_m, g_bias, g_h0, None, None
        steps, batch, n2 = z.shape
        n = n2 // 2
        g_z = torch.empty_like(z)
        g_bias = z.new_zeros(batch, n)
        neg_bias = -bias
        m_t = m.t()

        def output_gradient(t: int, carried: torch.Tensor | None) -> torch.Tensor:
            """dL/dh_t: from the output at step t, plus `carried` from step t + 1."""
            if not ctx.real_only:
                return g_out[t].clone() if carried is None else carried.add_(g_out[t])
            g = z.new_zeros(batch, n2) if carried is None else carried
            g[:, :n] += g_out[t]  # the output is Re h: the imaginary half gets nothing here
            return g

        g_h = output_gradient(steps - 1, None)
        for t in range(steps - 1, -1, -1):
            # modReLU h = s z with s = relu(1 + bias / r), r = |z| in the modReLU's form, active
            # where s > 0. With q = 1[active] / r, dr/dz = k z and g . z summed over the real and
            # imaginary parts:
            #   dh/dz . g = s g + (g . z) s'(r) k z = s g - bias q^2 k (g . z) z
            #   dh/dbias . g = q (g . z)
            # where k = 1 / r (smooth) or 1 / |z| (notebook; 0 at z = 0, as torch's complex abs).
            zt, g_ht = z[t].view(batch, 2, n), g_h.view(batch, 2, n)
            zz = zt * zt
            if ctx.form == "smooth":
                inv_r = torch.rsqrt(zz[:, 0] + zz[:, 1] + MODRELU_EPS["smooth"] ** 2)  # (B, N)
                k = inv_r
            else:
                a = torch.sqrt(zz[:, 0] + zz[:, 1])
                inv_r = 1 / (a + MODRELU_EPS["notebook"])
                k = torch.where(a > 0, 1 / a, 0.0)
            s = torch.relu(1 + bias * inv_r)
            q = inv_r * (s > 0)
            dot = (g_ht * zt).sum(1)  # (B, N)
            g_bias.addcmul_(dot, q)
            coef = (q * q).mul_(k).mul_(dot).mul_(neg_bias)
            torch.addcmul(
                g_ht * s.unsqueeze(1), coef.unsqueeze(1), zt, out=g_z[t].view(batch, 2, n)
            )
            g_h = g_z[t] @ m_t  # carried to h_{t-1}
            if t > 0:
                g_h = output_gradient(t - 1, g_h)
        g_m = h0.t() @ g_z[0]
        if steps > 1:  # one (2N, (T-1)B) x ((T-1)B, 2N) matmul for all other steps
            g_m.addmm_(hs[:-1].reshape(-1, n2).t(), g_z[1:].reshape(-1, n2))
        return g_z[..., :n], g_m, g_bias.sum(0), g_h, None, None


def _check_angles_lr(angles_lr: float) -> None:
    # The cell itself ignores angles_lr: the runner's optimizer reads it from the spec
    # (rnnbench.optim). Checked here so that a sweep refuses a bad value while planning, before
    # anything runs.
    if not angles_lr >= 0:
        raise ValueError(f"EURNN angles_lr must be >= 0 (0 = the run's --lr); got {angles_lr!r}")


# Version 2: the diagonal phase (diag_phase=true) acts before the mixers, so that open boundary
# with diag_phase spans U(N) at full capacity (version 1 reached a subset of rank N^2 - N + 1).
VERSION = 2
CITATION = """@inproceedings{jing2017tunable,
  title={Tunable Efficient Unitary Neural Networks ({EUNN}) and their application to {RNNs}},
  author={Jing, Li and Shen, Yichen and Dub{\\v{c}}ek, Tena and Peurifoy, John and Skirlo, Scott and
          LeCun, Yann and Tegmark, Max and Solja{\\v{c}}i{\\'c}, Marin},
  booktitle={Proceedings of the 34th International Conference on Machine Learning (ICML)},
  pages={1733--1741}, year={2017}, note={arXiv:1612.05231}}"""


def _mesh_capacity(variant: str, options: Mapping[str, Any], n: int) -> int:
    """Mixer layers of a factory's mesh at N = n: the `capacity` option (eurnn), N (eurnn-full),
    log2 N (eurnn-fft)."""
    if variant == "full":
        return n
    if variant == "fft":
        return max(1, int(math.log2(max(n, 1))))
    return options.get("capacity", 2)


def eurnn_memory(
    variant: str, options: Mapping[str, Any], hidden_size: int, device: torch.device
) -> tuple[float, float]:
    """Floats per example, step and unit (train, eval), for the memory check (rnnbench.cell).
    EURNN keeps its states (measured: fused 3.4 / 2.0, dense 9.4 / 5.0; triton keeps the states
    and the input projection, as fused plus N a step) or, in the reference implementation, a dozen
    tensors per mixer layer (31, 80, 130 at capacity 2, 8, 16; 6.9 to evaluate). Which
    implementation runs is choose_impl's choice, with the fused kernel counted as available
    where a C++ compiler is (building it here would take a minute).

    >>> eurnn_memory("tunable", {"impl": "reference", "capacity": 2}, 128, torch.device("cpu"))
    (36, 8)
    """
    n = hidden_size
    layers = _mesh_capacity(variant, options, n) + bool(options.get("diag_phase"))

    def fused_unavailable(where: torch.device) -> str | None:
        if where.type != "cpu":
            return f"the fused kernel is a CPU kernel; this is {where.type}"
        return None if _eurnn_fused.buildable() else "no C++ compiler here"

    impl = choose_impl(options.get("impl", "auto"), device, n, layers, fused_unavailable)
    train, evaluation = {"fused": (6, 3), "triton": (7, 4), "dense": (12, 6)}.get(
        impl, (9 * layers + 18, 8)
    )
    if options.get("output") == "complex":  # [Re h, Im h] leaves the cell: measured +5.1 / +2.0
        return train + 6, evaluation + 2
    return train, evaluation


def eurnn_size(
    variant: str, input_size: int, hidden_size: int, options: Mapping[str, Any]
) -> tuple[int, int]:
    """EURNN's parameters and output size, counted as EURNN allocates them: theta and phi per
    mixer, mod_bias (and omega with diag_phase) per unit, the input layer. (EURNN cannot be built
    on torch's meta device: it builds its index tensors from data, which units each layer mixes.)

    >>> options = {"capacity": 2, "boundary": "periodic", "diag_phase": False, "output": "real"}
    >>> eurnn_size("tunable", 1, 8, options)
    (40, 8)
    """
    n = hidden_size
    if variant == "fft":
        mixers = int(math.log2(n)) * (n // 2)
    else:
        # even layers mix N/2 pairs; odd layers N/2 (periodic) or N/2 - 1 (open: units 0 and N-1
        # skip)
        capacity = _mesh_capacity(variant, options, n)
        odd = n // 2 if options["boundary"] == "periodic" else n // 2 - 1
        mixers = (capacity + 1) // 2 * (n // 2) + capacity // 2 * odd
    params = 2 * mixers + n * (1 + options["diag_phase"]) + (input_size + 1) * n
    return params, 2 * n if options["output"] == "complex" else n


def _declared(variant: str) -> dict[str, Any]:
    """What each EURNN factory registers besides its name: version, citation, memory and size."""
    return {
        "version": VERSION,
        "citation": CITATION,
        "memory": functools.partial(eurnn_memory, variant),
        "size": functools.partial(eurnn_size, variant),
    }


@register_cell("eurnn", **_declared("tunable"))
def eurnn(
    input_size: int,
    hidden_size: int,
    capacity: int = 2,
    output: Output = "real",
    impl: Impl = "auto",
    diag_phase: bool = False,
    boundary: Boundary = "periodic",
    init: Init = "default",
    modrelu: ModRelu = "smooth",
    angles_lr: float = 0.0,
) -> EURNN:
    """EURNN, tunable style, capacity 2 (the original notebook's cell).

    `angles_lr`, in every EURNN factory: the learning rate of the rotation angles (theta, phi,
    omega: `EURNN.lr_groups`); 0 = the run's --lr. Unitary RNN papers train them at their own rate.
    """
    _check_angles_lr(angles_lr)
    return EURNN(
        input_size,
        hidden_size,
        capacity=capacity,
        style="tunable",
        output=output,
        impl=impl,
        diag_phase=diag_phase,
        boundary=boundary,
        init=init,
        modrelu=modrelu,
    )


for _capacity in (4, 8, 16):
    _variant = functools.partial(eurnn, capacity=_capacity)
    _variant.__doc__ = f"EURNN, tunable style, capacity {_capacity}."
    register_cell(f"eurnn-c{_capacity}", **_declared("tunable"))(_variant)


@register_cell("eurnn-full", **_declared("full"))
def eurnn_full(
    input_size: int,
    hidden_size: int,
    output: Output = "real",
    impl: Impl = "auto",
    diag_phase: bool = False,
    boundary: Boundary = "periodic",
    init: Init = "default",
    modrelu: ModRelu = "smooth",
    angles_lr: float = 0.0,
) -> EURNN:
    """EURNN, tunable style at full capacity (capacity = hidden size): spans all unitaries.

    With boundary="open", only with diag_phase=True (without it: N^2 - N angles, too few)."""
    return eurnn(
        input_size,
        hidden_size,
        capacity=hidden_size,
        output=output,
        impl=impl,
        diag_phase=diag_phase,
        boundary=boundary,
        init=init,
        modrelu=modrelu,
        angles_lr=angles_lr,
    )


@register_cell("eurnn-fft", **_declared("fft"))
def eurnn_fft(
    input_size: int,
    hidden_size: int,
    output: Output = "real",
    impl: Impl = "auto",
    diag_phase: bool = False,
    init: Init = "default",
    modrelu: ModRelu = "smooth",
    angles_lr: float = 0.0,
) -> EURNN:
    """EURNN, FFT style: log2(N) layers mixing units at strides 1, 2, 4, ... (N a power of 2)."""
    _check_angles_lr(angles_lr)
    return EURNN(
        input_size,
        hidden_size,
        style="fft",
        output=output,
        impl=impl,
        diag_phase=diag_phase,
        init=init,
        modrelu=modrelu,
    )
