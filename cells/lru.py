"""LRU: the Linear Recurrent Unit of Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu and De (2023),
"Resurrecting Recurrent Neural Networks for Long Sequences", ICML, arXiv 2303.06349.

A diagonal complex linear recurrence on N states (N = hidden_size), then a position-wise
nonlinearity. For x_t in R^I, with h_0 = 0:

    lambda = exp(-exp(nu_log) + i exp(theta_log))         (N,) complex, |lambda| < 1 always
    h_t = lambda * h_{t-1} + exp(gamma_log) * (B x_t)     B = B_re + i B_im, (N, I)
    y_t = Re(C h_t) + D x_t                               C = C_re + i C_im, (N, N); D (N, I) real
    out_t = GLU(GELU(y_t)) = (W_1 u + c_1) * sigmoid(W_2 u + c_2),  u = GELU(y_t)   (`mlp="glu"`)
    out_t = GELU(y_t)                                                             (`mlp="gelu"`)

The output has N features (output_size = N). GELU is torch's exact (erf) form; the paper's JAX code
uses flax's default tanh approximation (the two differ by at most 5e-4). The recurrence runs as one
parallel scan over time (`impl="scan"`, cells/_scan.py, time-invariant diagonal) or as a step loop
(`impl="loop"`): the same function, equal to rounding (1e-15 in float64 at T = 300,
tests/test_lru.py).

Parametrisation and initialisation (the paper's Section 3 and its Appendix A code):
  - exponential magnitude and phase: nu_log = log(-log|lambda|), theta_log = log(arg lambda), so
    that |lambda| = exp(-exp(nu_log)) stays in (0, 1) and the phase stays positive, whatever the
    updates;
  - ring init: |lambda| uniform on the ring r_min <= |lambda| <= r_max in the complex plane (area
    measure): |lambda|^2 = u1 (r_max^2 - r_min^2) + r_min^2, i.e. nu_log = log(-log(...) / 2); phase
    arg lambda = max_phase * u2, u1, u2 uniform (u2 in (0, 1], so that theta_log is finite);
  - gamma normalisation: gamma_log is a parameter initialised to log sqrt(1 - |lambda|^2), so that
    at init a white input keeps the state's variance independent of how close |lambda| is to 1;
    it trains freely afterwards, as in the paper;
  - B_re, B_im ~ N(0, 1 / (2 I)) (Glorot-like: B x has unit variance for a unit-variance x),
    C_re, C_im ~ N(0, 1 / N), D ~ N(0, 1 / I) (the paper's D is a diagonal N(0, 1) on a layer of
    equal input and output width; here the widths differ, D is a full matrix, and 1/I keeps D x at
    the variance of one input); the GLU's layers have torch's nn.Linear default init.
Defaults: r_min = 0.9, r_max = 0.999, max_phase = 2 pi: the ring the paper uses for sequential
CIFAR, the pixel-level task closest to sequential MNIST, with the full circle of phases of its
appendix code (whose own defaults are r_min = 0, r_max = 1, max_phase = 6.28); for the longest LRA
tasks the paper moves the ring closer to 1 and narrows the phases (max_phase = pi / 10). The options
must satisfy 0 < r_min < r_max < 1 and 0 < max_phase <= 2 pi.

Learning-rate group: `recurrent` = nu_log, theta_log, gamma_log, B_re, B_im, which the paper (and
the reference code that follows it) trains at a fraction of the base rate (0.5 by default there,
smaller on some tasks) and without weight decay. `recurrent_lr` defaults to 0 (the run's --lr),
because the paper gives a factor, not a rate: a fixed default would be right for one --lr only; set
it to e.g. half of --lr to follow the paper. rnnbench applies --weight-decay to every group, this
one included.

Parameters: 3N (nu_log, theta_log, gamma_log) + 2NI (B) + 2N^2 (C) + NI (D) + 2N^2 + 2N (GLU; none
with mlp="gelu"): 4N^2 + 3NI + 5N with the GLU, 2N^2 + 3NI + 3N without.

Deviations from the paper's model, which stacks LRU blocks: this is one block, reading the input
directly (no encoder: B takes the I input features, the paper's encoder is folded into it, without
its bias) and producing N features for the runner's linear readout; no LayerNorm/BatchNorm, no
residual connection, no dropout. The nonlinearity is kept because without it one linear layer and
a linear readout would make a linear classifier. `diagonal()` gives lambda.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.cell import group_rate
from rnnbench.cells._scan import linear_scan, loop_scan
from rnnbench.registry import register_cell

Impl = Literal["scan", "loop"]
Mlp = Literal["glu", "gelu"]

CITATION = """@inproceedings{orvieto2023resurrecting,
  title={Resurrecting Recurrent Neural Networks for Long Sequences},
  author={Orvieto, Antonio and Smith, Samuel L. and Gu, Albert and Fernando, Anushan and
          Gulcehre, Caglar and Pascanu, Razvan and De, Soham},
  booktitle={Proceedings of the 40th International Conference on Machine Learning (ICML)},
  year={2023},
  note={arXiv:2303.06349}
}"""


class LRU(nn.Module):
    """Linear Recurrent Unit plus its position-wise nonlinearity.
    `forward(x: (B, T, I)) -> (B, T, N)`."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        r_min: float = 0.9,
        r_max: float = 0.999,
        max_phase: float = 2 * math.pi,
        mlp: str = "glu",
        impl: str = "scan",
    ):
        super().__init__()
        n = hidden_size
        if not 0 < r_min < 1:
            raise ValueError(f"lru: r_min={r_min} must be in (0, 1)")
        if not 0 < r_max < 1:
            raise ValueError(f"lru: r_max={r_max} must be in (0, 1)")
        if r_min >= r_max:
            raise ValueError(f"lru: r_min={r_min} must be below r_max={r_max}")
        if not 0 < max_phase <= 2 * math.pi:
            raise ValueError(f"lru: max_phase={max_phase} must be in (0, 2 pi = {2 * math.pi}]")
        # The init runs in float32 (the parameters' dtype): a ring reaching 1, or phases reaching 0,
        # there would give nu_log or theta_log = -inf, refused here for every seed rather than for
        # some draws.
        if torch.tensor(r_max**2, dtype=torch.float32) >= 1:
            raise ValueError(
                f"lru: r_max={r_max} is within float32 rounding of 1 (r_max^2 rounds to 1); "
                "take r_max <= 1 - 1e-7"
            )
        if (
            torch.tensor(max_phase, dtype=torch.float32) * 2.0**-24 == 0
        ):  # its smallest draw, 2^-24 max_phase
            raise ValueError(
                f"lru: max_phase={max_phase} is too small for float32 (its smallest phases round "
                "to 0); take max_phase >= 1e-30"
            )
        if mlp not in ("glu", "gelu"):
            raise ValueError(f"lru: mlp={mlp!r} is not one of glu, gelu")
        if impl not in ("scan", "loop"):
            raise ValueError(f"lru: impl={impl!r} is not one of scan, loop")
        if n < 1:
            raise ValueError(f"lru: hidden_size={n} must be at least 1")
        self.input_size, self.hidden_size, self.output_size = input_size, n, n
        self.r_min, self.r_max, self.max_phase, self.mlp, self.impl = (
            r_min,
            r_max,
            max_phase,
            mlp,
            impl,
        )
        self.last_impl = impl  # (what rows record in their `impl` column, as for EURNN)

        u1, u2 = torch.rand(n), 1 - torch.rand(n)  # u2 in (0, 1]: a finite theta_log
        modulus_sq = u1 * (r_max**2 - r_min**2) + r_min**2  # |lambda|^2, uniform on the ring's area
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(modulus_sq)))
        self.theta_log = nn.Parameter(torch.log(max_phase * u2))
        # log sqrt(1 - |lambda|^2) of the lambda the rounded nu_log gives, 1 - |lambda|^2 as -expm1
        # (exact near |lambda| = 1, where 1 - exp(...) would cancel)
        self.gamma_log = nn.Parameter(
            0.5 * torch.log(-torch.expm1(-2 * torch.exp(self.nu_log.detach())))
        )
        self.B_re = nn.Parameter(torch.randn(n, input_size) / math.sqrt(2 * input_size))
        self.B_im = nn.Parameter(torch.randn(n, input_size) / math.sqrt(2 * input_size))
        self.C_re = nn.Parameter(torch.randn(n, n) / math.sqrt(n))
        self.C_im = nn.Parameter(torch.randn(n, n) / math.sqrt(n))
        self.D = nn.Parameter(torch.randn(n, input_size) / math.sqrt(input_size))
        self.glu = nn.Linear(n, 2 * n) if mlp == "glu" else None  # [W_1; W_2]: value, gate
        for name in (
            "nu_log",
            "theta_log",
            "gamma_log",
        ):  # (the checks above should make this unreachable)
            if not torch.isfinite(getattr(self, name)).all():
                raise ValueError(
                    f"lru: r_min={r_min}, r_max={r_max}, max_phase={max_phase} give a non-finite "
                    f"initial {name} in float32"
                )

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, r_min={self.r_min}, r_max={self.r_max}, "
            f"max_phase={self.max_phase}, mlp={self.mlp}, impl={self.impl}"
        )

    def diagonal(self) -> torch.Tensor:
        """lambda = exp(-exp(nu_log) + i exp(theta_log)), the complex (N,) diagonal of the
        recurrence (differentiable): h_t = lambda * h_{t-1} + ... ."""
        return torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))

    def lr_groups(self) -> dict[str, list[nn.Parameter]]:
        """`recurrent`: nu_log, theta_log, gamma_log, B_re, B_im, at the spec's `recurrent_lr` (the
        paper's reduced rate for the recurrence and its input matrix).

        Example: `[p.shape for p in cell.lr_groups()["recurrent"]][:1] == [torch.Size([N])]`.
        """
        return {"recurrent": [self.nu_log, self.theta_log, self.gamma_log, self.B_re, self.B_im]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.hidden_size
        scale = torch.exp(self.gamma_log)[:, None]  # (N, 1)
        # B x as one real matmul whose outputs interleave (Re, Im) per state: a complex view, no
        # copy.
        w_in = torch.stack([self.B_re * scale, self.B_im * scale], 1).flatten(0, 1)  # (2N, I)
        bx = torch.view_as_complex(F.linear(x, w_in).unflatten(-1, (n, 2)))  # (B, T, N) complex
        scan = linear_scan if self.impl == "scan" else loop_scan
        h = scan(self.diagonal(), bx)  # (B, T, N) complex
        # Re(C h) = C_re Re h - C_im Im h, against the interleaved (Re, Im) view of h.
        w_out = torch.stack([self.C_re, -self.C_im], -1).flatten(1)  # (N, 2N)
        y = F.linear(torch.view_as_real(h).flatten(-2), w_out) + F.linear(x, self.D)  # (B, T, N)
        u = F.gelu(y)
        return F.glu(self.glu(u), -1) if self.glu is not None else u


# Floats per example, step and unit (train, eval), for the memory check (rnnbench.cell): measured as
# the peak resident set on CPU (B=100, T=300, N=128), the estimate with the default (24, 8) was only
# 1.17 times the peak (the scan keeps every layer's coefficients and its levels); raised until it is
# above 1.1 at the largest peak.
MEMORY = (28, 8)


@register_cell("lru", citation=CITATION, memory=MEMORY)
def lru(
    input_size: int,
    hidden_size: int,
    r_min: float = 0.9,
    r_max: float = 0.999,
    max_phase: float = 2 * math.pi,
    mlp: Mlp = "glu",
    impl: Impl = "scan",
    recurrent_lr: float = 0.0,
) -> LRU:
    """LRU (Orvieto et al. 2023): diagonal complex linear recurrence, ring init, then GELU and a
    GLU.

    r_min, r_max: the ring |lambda| is drawn on at init; max_phase: phases in [0, max_phase];
    mlp: glu (GELU then a GLU, the paper's block) or gelu; impl: scan or loop (the same function);
    recurrent_lr: the rate of nu_log, theta_log, gamma_log, B (0 = the run's --lr).
    """
    # (read by the runner's optimizer: checked here, by its rule, so that a sweep refuses it early)
    try:
        group_rate("recurrent", {"recurrent_lr": recurrent_lr}, 1.0)
    except ValueError as error:
        raise ValueError(f"lru: {error}") from None
    return LRU(
        input_size, hidden_size, r_min=r_min, r_max=r_max, max_phase=max_phase, mlp=mlp, impl=impl
    )
