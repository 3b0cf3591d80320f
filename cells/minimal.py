"""minGRU and minLSTM: the minimal GRU and LSTM of Feng, Tung, Ahmed, Bengio and Hajimirsadeghi
(2024), "Were RNNs All We Needed?", arXiv 2410.01201.

Their gates see the input only, never the previous state, so the recurrence is linear and
element-wise in h, h_t = a_t * h_{t-1} + b_t with (a_t, b_t) a function of x_t alone, and all T
states come out of one parallel scan (cells/_scan.py). With k_z = Linear_z(x_t), etc. and h_0 = 0:

    minGRU:   z_t = sigmoid(k_z),   h~_t = g(k_h),
              h_t = (1 - z_t) h_{t-1} + z_t h~_t                     (a_t = 1 - z_t, b_t = z_t h~_t)
    minLSTM:  f_t = sigmoid(k_f),   i_t = sigmoid(k_i),   h~_t = g(k_h),
              f'_t = f_t / (f_t + i_t),   i'_t = i_t / (f_t + i_t),
              h_t = f'_t h_{t-1} + i'_t h~_t                          (a_t = f'_t, b_t = i'_t h~_t)

The output is every h_t (output size = hidden size N). `candidate` chooses g: "g" (the default) is
the paper's g(x) = x + 0.5 for x >= 0, sigmoid(x) for x < 0, which keeps h~ > 0 and with it h, as
the paper's log-space version requires, and as its experiments (and its official pseudocode) train;
"linear" is g(x) = x, the paper's plain (linear-space) version, whose states take any sign.

The gate is computed from one logit d per step: w = sigmoid(d) = z_t (minGRU) or i'_t (minLSTM) and
a_t = sigmoid(-d) = 1 - w, with d = k_z for minGRU and
d = softplus(-k_f) - softplus(-k_i) = log(i / f) for minLSTM, so that i' = i / (f + i) without the
0 / 0 of two underflowing gates. a_t is computed as sigmoid(-d), the a_t whose log the log-space
scan takes (logsigmoid(-d)), not as 1 - w, which rounds every a_t below the float's epsilon to 0
(float32: from d ~ 17 on). h_t barely changes (a_t h_{t-1} is then below h_t's rounding), but a_t
and its gradient keep their relative precision.

Three implementations (`impl`) of the same function:
  - `scan` (default): these a_t, b_t, then `linear_scan`, the odd-even parallel scan (products and
    sums only; any sign; exact up to rounding at any gate values);
  - `log-scan`: the paper's log-space computation, log a_t, log b_t (log(1 - z) = -softplus(k_z),
    log z = -softplus(-k_z); log f' = -softplus(d), log i' = -softplus(-d); log g as in the paper)
    then Heinsen's scan, h = exp(a* + logcumsumexp(log b - a*)), a* = cumsum(log a). Needs
    candidate="g" (b > 0); slower on CPU, and less precise in float32 on long sequences with
    forgetting gates (see _scan.py);
  - `loop`: the same a_t, b_t as `scan`, then h_t = a_t * h_{t-1} + b_t step by step.
They agree to rounding: in float64 at T = 300, with gates within 1e-13 of 0 and 1, scan and loop
to 1e-15 (gradients 1e-13), the log-space scan to 2e-12 (gradients 1e-9: see _scan.py).

Parametrisation and initialisation as the paper's code: the Linear layers of the gates and of the
candidate (linear_z, linear_h; linear_f, linear_i, linear_h) have biases and torch's default
initialisation (uniform in +-1/sqrt(fan-in)), and are applied to every step at once. All train at
the run's learning rate (no lr groups). Parameters, with L = `layers`: minGRU 2N(I + 1) +
(L - 1) 2N(N + 1), minLSTM 3N(I + 1) + (L - 1) 3N(N + 1).

One layer cannot tell positions apart: h_T = sum_t w_t h~_t with w_t = z_t prod_{s>t} (1 - z_s),
weights that depend on the inputs seen, and on position only through the decay they cause; its
states cannot single out, say, the first step of a noise sequence (the paper reports the same on its
selective copying task: one layer fails, stacked layers succeed, three solving it). `layers` stacks
that many layers plainly, each layer's states the next one's input, so that from the second layer on
the gates see a summary of the past. Its default, 3, is that three-layer model: the shallowest stack
of the paper that solves a task needing positions (in rnnbench's tiny memory task of
tests/test_runner.py, one layer scores 0.52-0.57, two 0.90-0.95, three 0.94-0.99, seeds 0-3).

Deviations from the paper: the stack's states go to the runner's linear readout. The paper's models
stack minGRU/minLSTM layers with residual connections, normalisation, (for language modelling) a
convolution and an MLP, and an optional expansion of the state over the model width; `layers`
stacks without any of that. The initial state is 0 (the paper allows a given h_0, mapped through g).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.cells._scan import linear_scan, log_scan, loop_scan
from rnnbench.registry import register_cell

Impl = Literal["scan", "log-scan", "loop"]
Candidate = Literal["g", "linear"]

CITATION = """@article{feng2024were,
  title={Were {RNNs} All We Needed?},
  author={Feng, Leo and Tung, Frederick and Ahmed, Mohamed Osama and Bengio, Yoshua and \
Hajimirsadeghi, Hossein},
  journal={arXiv preprint arXiv:2410.01201},
  year={2024}
}"""


def g(x: torch.Tensor) -> torch.Tensor:
    """The paper's positive candidate activation: x + 0.5 for x >= 0, sigmoid(x) below (continuous
    at 0).

    >>> g(torch.tensor([-100.0, 0.0, 2.0])).tolist()
    [0.0, 0.5, 2.5]
    """
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: torch.Tensor) -> torch.Tensor:
    """log g(x), computed without forming g: log(x + 0.5) for x >= 0, logsigmoid(x) below."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), F.logsigmoid(x))


class MinimalLayer(nn.Module):
    """One minGRU (`kind="gru"`) or minLSTM (`kind="lstm"`) layer: (B, T, I) -> (B, T, N)."""

    def __init__(self, input_size: int, hidden_size: int, kind: str, candidate: str, impl: str):
        super().__init__()
        self.kind, self.candidate, self.impl = kind, candidate, impl
        # The paper's Linear_z, Linear_h (minGRU) and Linear_f, Linear_i, Linear_h (minLSTM).
        # Separate layers rather than one of width 2N or 3N: each output is used as it is, without
        # the copy that the backward pass of a split makes.
        if kind == "gru":
            self.linear_z = nn.Linear(input_size, hidden_size)
        else:
            self.linear_f = nn.Linear(input_size, hidden_size)
            self.linear_i = nn.Linear(input_size, hidden_size)
        self.linear_h = nn.Linear(input_size, hidden_size)

    def _gate_logit(self, x: torch.Tensor) -> torch.Tensor:
        """d, (B, T, N), with b_t = sigmoid(d) h~_t and a_t = 1 - sigmoid(d) = sigmoid(-d): for
        minGRU d = k_z; for minLSTM d = log(i / f), so that sigmoid(d) = i / (f + i)."""
        if self.kind == "gru":
            return self.linear_z(x)
        # log(i / f) = log sigmoid(k_i) - log sigmoid(k_f)
        return F.softplus(-self.linear_f(x)) - F.softplus(-self.linear_i(x))

    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b), each (B, T, N): h_t = a_t * h_{t-1} + b_t."""
        k_h = self.linear_h(x)
        d = self._gate_logit(x)
        weight = torch.sigmoid(d)  # z_t, or i'_t
        return torch.sigmoid(-d), weight * (g(k_h) if self.candidate == "g" else k_h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "log-scan":
            d = self._gate_logit(x)
            return log_scan(F.logsigmoid(-d), F.logsigmoid(d) + log_g(self.linear_h(x)))
        a, b = self.coefficients(x)
        return linear_scan(a, b) if self.impl == "scan" else loop_scan(a, b)


class MinimalRNN(nn.Module):
    """minGRU or minLSTM, `layers` deep (each layer's states the next one's input).
    `forward(x: (B, T, input_size)) -> (B, T, hidden_size)`."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        kind: str = "gru",
        candidate: str = "g",
        impl: str = "scan",
        layers: int = 1,
    ):
        super().__init__()
        name = f"min{kind}"
        if kind not in ("gru", "lstm"):
            raise ValueError(f"MinimalRNN kind must be gru or lstm; got {kind!r}")
        if candidate not in ("g", "linear"):
            raise ValueError(f"{name}: candidate={candidate!r} is not one of g, linear")
        if impl not in ("scan", "log-scan", "loop"):
            raise ValueError(f"{name}: impl={impl!r} is not one of scan, log-scan, loop")
        if impl == "log-scan" and candidate != "g":
            raise ValueError(
                f"{name}: impl='log-scan' takes logarithms of the candidate, which needs "
                f"candidate='g' (positive); got candidate={candidate!r}"
            )
        if hidden_size < 1:
            raise ValueError(f"{name}: hidden_size={hidden_size} must be at least 1")
        if layers < 1:
            raise ValueError(f"{name}: layers={layers} must be at least 1")
        self.kind, self.candidate, self.impl = kind, candidate, impl
        self.last_impl = impl  # (what rows record in their `impl` column, as for EURNN)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, hidden_size
        self.layers = nn.ModuleList(
            MinimalLayer(input_size if i == 0 else hidden_size, hidden_size, kind, candidate, impl)
            for i in range(layers)
        )

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, candidate={self.candidate}, impl={self.impl}, "
            f"layers={len(self.layers)}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


# Floats per example, step and unit (train, eval), for the memory check (rnnbench.cell): measured as
# the peak resident set on CPU (B=100, T=300, N=128), the estimate with the default (24, 8) was only
# 0.95 (mingru) and 0.88 (minlstm) times the peak: every layer keeps its gates and the scan's levels
# (minlstm's peak varies by 10% from process to process: 750-930 MB here). Raised until each is
# above 1.1 at its largest peak.
MINGRU_MEMORY, MINLSTM_MEMORY = (32, 8), (48, 8)


@register_cell("mingru", citation=CITATION, memory=MINGRU_MEMORY)
def mingru(
    input_size: int,
    hidden_size: int,
    candidate: Candidate = "g",
    impl: Impl = "scan",
    layers: int = 3,
) -> MinimalRNN:
    """minGRU (Feng et al. 2024): a GRU whose update gate and candidate see the input only.

    `candidate`: g, the paper's positive g(x) (its log-space version, what it trains), or linear
    (h~ = Linear_h x, its plain version). `impl`: scan, log-scan (the paper's log-space scan; needs
    candidate=g) or loop; the same function. `layers`: a plain stack of that many layers (3, the
    paper's selective-copying model).
    """
    return MinimalRNN(input_size, hidden_size, "gru", candidate, impl, layers)


@register_cell("minlstm", citation=CITATION, memory=MINLSTM_MEMORY)
def minlstm(
    input_size: int,
    hidden_size: int,
    candidate: Candidate = "g",
    impl: Impl = "scan",
    layers: int = 3,
) -> MinimalRNN:
    """minLSTM (Feng et al. 2024): forget and input gates of the input only, normalised to sum to 1.

    Options as mingru's.
    """
    return MinimalRNN(input_size, hidden_size, "lstm", candidate, impl, layers)
