"""Orthogonal RNNs with a skew-symmetric parametrization: `exprnn` (exponential map) and `scornn`
(scaled Cayley transform).

Both cells run the same real recurrence, in the papers' column-vector form,

    h_t = modReLU(W h_{t-1} + U x_t, b),    h_0 = 0,
    modReLU(z, b) = sign(z) * relu(|z| + b)    (elementwise; 0 at z = 0),

with W (N x N) orthogonal by construction, an input matrix U without bias and one modReLU bias b
per unit: the only bias of the cell (both papers' code). The cells differ in how W is made from a
skew-symmetric A = S - S^T, whose free entries, the strict upper triangle of S (N(N-1)/2 numbers,
the parameter `skew`), are trained by plain gradient steps: any value of them gives an orthogonal
W, so no step leaves the group.

`exprnn`: Lezcano-Casado, M. and Martinez-Rubio, D. (2019), "Cheap Orthogonal Constraints in Neural
Networks: A Simple Parametrization of the Orthogonal and Unitary Group", ICML, arXiv:1901.08428.

    W = exp(A)    (torch.linalg.matrix_exp; W lies in SO(N), all of which exp reaches)

  The skew matrix starts block-diagonal, 2x2 blocks [[0, a_j], [-a_j, 0]] on units (2j, 2j+1)
  (an odd N leaves the last unit alone), so that W starts as rotations by angle a_j of unit pairs:
    `init=henaff`: a_j ~ U[-pi, pi] (Henaff et al. 2016's block-diagonal orthogonal init), the
      paper's choice for the copying task;
    `init=cayley` (default): a_j = -sqrt((1 - cos s_j) / (1 + cos s_j)) = -tan(s_j / 2) with
      s_j ~ U[0, pi/2] (the scoRNN initialisation, a_j in [-1, 0]), the paper's choice for
      (permuted) MNIST, rnnbench's main task.
  U: Kaiming normal for relu (std sqrt(2 / input_size)); b ~ U[-0.01, 0.01] (the paper's code).

`scornn`: Helfrich, K., Willmott, D. and Ye, Q. (2018), "Orthogonal Recurrent Neural Networks with
Scaled Cayley Transform", ICML, arXiv:1707.09520.

    W = (I + A)^{-1} (I - A) D    (torch.linalg.solve; I + A is invertible for every skew A)

  D is a fixed diagonal of +-1 (a buffer, not trained): the last rho entries are -1, as in the
  paper's code, so that W can have eigenvalues -1, which the Cayley transform alone cannot give. rho
  is `negative_ones` if set, else round(negative_fraction * N) (halves up). The default fraction 0.1
  is the paper's code's MNIST setting (rho = 17 of N = 170, one script for the unpermuted and
  permuted runs); its copying task uses N/2 (rho = 95 of 190): `negative_fraction=0.5`. A starts
  with the 2x2 blocks a_j = -tan(s_j / 2), s_j ~ U[0, pi/2], so that (I + A)^{-1} (I - A) starts as
  rotations by s_j of unit pairs. U ~ U[-0.01, 0.01]; b = 0 (the paper's code).

Learning rates: both papers train A at its own rate, ten times below that of the other weights
(RMSprop): scoRNN's MNIST script, which runs both pixel orders, uses 1e-4 for A and 1e-3 for the
rest at N = 170, and expRNN's pMNIST setting at N = 170 is 7e-5 for A and 7e-4 for the rest (its
code's README advises the 1:10 ratio in general). `lr_groups()` names the group `orthogonal` (the
`skew` parameter); the factories' option `orthogonal_lr_factor` (default 0.1) makes its rate that
factor times the run's --lr, so the papers' ratio holds at any --lr and through a tuning of --lr;
`orthogonal_lr`, when set, gives it an absolute rate instead; both 0 = --lr.

Speed: W is built once per forward pass (one matrix_exp or solve of N x N); the input projection
U x_t of all steps is one matmul; the step loop (ModReLURecurrence) does one addmm and five
elementwise operations per step, keeps only the pre-activations and states for backward, and
backward computes the modReLU derivative for all steps at once, then a multiply and a matmul per
step, and dL/dW in one matmul over all steps.

Precision: W is orthogonal to float32 rounding, max |W^T W - I| ~ 1e-6, while A stays moderate. The
exponential loses a little as A grows (scaling and squaring): ~1e-5 at N = 64 once the spectral
norm of A is ~100 (far beyond the papers' rates); the Cayley solve stayed ~1e-6 there.

Deviations from the papers: one layer whose readout (a Linear on the states the task reads) is the
runner's, with torch's default initialisation (expRNN's code: torch's default too; scoRNN's:
Glorot uniform). The row-vector code of both papers multiplies h W, i.e. uses W^T in the papers'
notation; here W acts as the equations above say (the same family of matrices, and the same
initial distribution for Henaff's symmetric one). Both papers' code keeps the full N x N A
and reads its upper triangle; here only the N(N-1)/2 free entries are parameters, so that every
parameter has a gradient. scoRNN's hand-written gradient of A (dL/dA = V^T - V with
V = (I + A)^{-T} dL/dW (D + W^T)) is what autograd computes through the solve: the gradient of the
free entries of A. expRNN's later `dtriv` variant (re-basing the exponential every K steps) is not
implemented: this is the static expRNN of the ICML paper.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from rnnbench.cell import group_rate
from rnnbench.registry import register_cell

ExpInit = Literal["cayley", "henaff"]

EXPRNN_CITATION = """@inproceedings{lezcano2019cheap,
  title={Cheap Orthogonal Constraints in Neural Networks: A Simple Parametrization of the \
Orthogonal and
         Unitary Group},
  author={Lezcano-Casado, Mario and Mart{\\'i}nez-Rubio, David},
  booktitle={Proceedings of the 36th International Conference on Machine Learning (ICML)},
  pages={3794--3803}, year={2019}, note={arXiv:1901.08428}}"""
SCORNN_CITATION = """@inproceedings{helfrich2018orthogonal,
  title={Orthogonal Recurrent Neural Networks with Scaled {C}ayley Transform},
  author={Helfrich, Kyle and Willmott, Devin and Ye, Qiang},
  booktitle={Proceedings of the 35th International Conference on Machine Learning (ICML)},
  year={2018}, note={arXiv:1707.09520}}"""

# Both papers' pMNIST rate for the skew-symmetric matrix (RMSprop, N = 170), ten times below the
# rate of the other weights.
ORTHOGONAL_LR_FACTOR = 0.1  # the papers' rate of A, a tenth of the other weights'
# scoRNN's default share of -1 entries in D: its code's MNIST setting, 17 of 170.
NEGATIVE_FRACTION = 0.1
MODRELU_BIAS_BOUND = 0.01  # expRNN's b ~ U[-0.01, 0.01]
SCORNN_INPUT_BOUND = 0.01  # scoRNN's U ~ U[-0.01, 0.01]


def modrelu(z: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """sign(z) * relu(|z| + bias), elementwise: modReLU of a real z (0 where z = 0).

    Example: `modrelu(torch.tensor([-2.0, 0.5]), torch.tensor([-1.0, -1.0]))` is `[-1.0, 0.0]`."""
    return torch.sign(z) * torch.relu(z.abs() + bias)


class ModReLURecurrence(torch.autograd.Function):
    """All steps of h_t = modReLU(h_{t-1} W^T + u_t, b) from h_{-1} = 0, on row-vector states.

    u: (T, B, N) contiguous, w: (N, N), bias: (N,) -> hs: (T, B, N). Forward keeps the
    pre-activations z_t and the states; backward finds where modReLU passes gradient for all steps
    at once (|z| + b > 0 and z != 0: torch's derivative of sign(z) relu(|z| + b), 0 at z = 0), so
    its step loop is an add, a multiply and a matmul, and sums dL/dW = sum_t g_t^T h_{t-1} in one
    matmul over all steps. Plain autograd would keep a dozen tensors per step and sum T matmuls.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, w: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        z = torch.empty_like(u)  # (T, B, N) pre-activations
        hs = torch.empty_like(u)  # (T, B, N) states
        w_t = w.t()
        for t in range(u.shape[0]):
            if t == 0:
                z[0].copy_(u[0])  # h_{-1} = 0
            else:
                torch.addmm(u[t], hs[t - 1], w_t, out=z[t])
            zt = z[t]
            torch.mul(zt.abs().add_(bias).relu_(), zt.sign(), out=hs[t])
        ctx.save_for_backward(z, hs, w, bias)
        return hs

    @staticmethod
    @once_differentiable
    def backward(ctx, g_hs: torch.Tensor):
        z, hs, w, bias = ctx.saved_tensors
        steps, _, n = z.shape
        passes = ((z.abs() + bias > 0) & (z != 0)).to(z.dtype)  # d modReLU / dz, (T, B, N)
        g_z = torch.empty_like(z)
        carried = None  # dL/dh_t through h_{t+1}
        for t in range(steps - 1, -1, -1):
            g_h = g_hs[t] if carried is None else carried.add_(g_hs[t])
            torch.mul(g_h, passes[t], out=g_z[t])
            if t > 0:
                carried = g_z[t] @ w  # z_t = h_{t-1} W^T + u_t
        g_w = (
            g_z[1:].reshape(-1, n).t() @ hs[:-1].reshape(-1, n)
            if steps > 1
            else torch.zeros_like(w)
        )
        g_bias = (g_z * z.sign()).sum((0, 1))  # d modReLU / db = sign(z) where it passes
        return g_z, g_w, g_bias


def block_index(n: int) -> torch.Tensor:
    """Positions, in the strict upper triangle of an n x n matrix read row by row
    (torch.triu_indices order), of the entries (2j, 2j+1), j < n // 2: where the 2x2 blocks of the
    inits sit.

    Example: `block_index(4).tolist() == [0, 5]` ((0, 1) is entry 0, (2, 3) is entry 5)."""
    rows = 2 * torch.arange(n // 2, device="cpu")
    return rows * n - rows * (rows + 1) // 2  # (row i, column i + 1) -> i n - i (i + 1) / 2


def block_angles(n: int, init: str, like: torch.Tensor) -> torch.Tensor:
    """The n // 2 block entries a_j of an initial skew matrix (see the module docstring), drawn from
    torch's generator: `henaff`, U[-pi, pi]; `cayley`, -tan(s / 2) written as the papers'
    -sqrt((1 - cos s) / (1 + cos s)), s ~ U[0, pi/2]."""
    if init == "henaff":
        return like.new_empty(n // 2).uniform_(-math.pi, math.pi)
    s = like.new_empty(n // 2).uniform_(0, math.pi / 2)
    return -torch.sqrt((1 - torch.cos(s)) / (1 + torch.cos(s)))


class OrthogonalRNN(nn.Module):
    """The recurrence shared by ExpRNN and ScoRNN: `forward(x: (B, T, input_size)) -> (B, T, N)`.

    Subclasses define `recurrent_matrix()`, the orthogonal W, from `skew_matrix()`."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        n = hidden_size
        self.input_size, self.hidden_size, self.output_size = input_size, n, n
        self.input = nn.Linear(input_size, n, bias=False)  # U
        self.skew = nn.Parameter(torch.zeros(n * (n - 1) // 2))  # strict upper triangle of A
        self.mod_bias = nn.Parameter(torch.zeros(n))  # b
        upper = torch.triu_indices(n, n, 1)
        self.register_buffer("upper_rows", upper[0], persistent=False)
        self.register_buffer("upper_cols", upper[1], persistent=False)

    def skew_matrix(self) -> torch.Tensor:
        """A = S - S^T, (N, N), S holding `skew` in its strict upper triangle."""
        n = self.hidden_size
        s = self.skew.new_zeros(n, n).index_put((self.upper_rows, self.upper_cols), self.skew)
        return s - s.t()

    def recurrent_matrix(self) -> torch.Tensor:
        raise NotImplementedError

    def lr_groups(self) -> dict[str, list[nn.Parameter]]:
        """The parameters with a learning rate of their own (rnnbench.optim): `orthogonal`, the free
        entries of the skew-symmetric A, at the spec's `orthogonal_lr` or
        `orthogonal_lr_factor` x --lr.

        Example: `cell.lr_groups() == {"orthogonal": [cell.skew]}`."""
        return {"orthogonal": [self.skew]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.input(x.transpose(0, 1)).contiguous()  # (T, B, N): U x_t for every step at once
        hs = ModReLURecurrence.apply(u, self.recurrent_matrix(), self.mod_bias)  # (T, B, N)
        return hs.transpose(0, 1)  # (B, T, N)


class ExpRNN(OrthogonalRNN):
    """expRNN: W = exp(A). `forward(x: (B, T, input_size)) -> (B, T, hidden_size)`."""

    def __init__(self, input_size: int, hidden_size: int, init: str = "cayley"):
        super().__init__(input_size, hidden_size)
        self.init = init
        with torch.no_grad():
            self.skew[block_index(hidden_size).to(self.skew.device)] = block_angles(
                hidden_size, init, self.skew
            )
            nn.init.kaiming_normal_(self.input.weight, nonlinearity="relu")
            self.mod_bias.uniform_(-MODRELU_BIAS_BOUND, MODRELU_BIAS_BOUND)

    def recurrent_matrix(self) -> torch.Tensor:
        """W = exp(A), (N, N), orthogonal with determinant 1:
        h_t = modReLU(W h_{t-1} + U x_t, b)."""
        return torch.linalg.matrix_exp(self.skew_matrix())


class ScoRNN(OrthogonalRNN):
    """scoRNN: W = (I + A)^{-1} (I - A) D.
    `forward(x: (B, T, input_size)) -> (B, T, hidden_size)`."""

    def __init__(self, input_size: int, hidden_size: int, negative_ones: int):
        super().__init__(input_size, hidden_size)
        self.negative_ones = negative_ones
        d = torch.cat([torch.ones(hidden_size - negative_ones), -torch.ones(negative_ones)])
        self.register_buffer("d_signs", d)  # the diagonal of D, fixed
        with torch.no_grad():
            self.skew[block_index(hidden_size).to(self.skew.device)] = block_angles(
                hidden_size, "cayley", self.skew
            )
            self.input.weight.uniform_(-SCORNN_INPUT_BOUND, SCORNN_INPUT_BOUND)
            self.mod_bias.zero_()

    def recurrent_matrix(self) -> torch.Tensor:
        """W = (I + A)^{-1} (I - A) D, (N, N), orthogonal: h_t = modReLU(W h_{t-1} + U x_t, b)."""
        a = self.skew_matrix()
        eye = torch.eye(self.hidden_size, dtype=a.dtype, device=a.device)
        return torch.linalg.solve(eye + a, eye - a) * self.d_signs  # (.) D scales column k by D_kk


def _check_common(
    cell: str, hidden_size: int, orthogonal_lr: float, orthogonal_lr_factor: float
) -> None:
    if hidden_size < 2:
        raise ValueError(
            f"{cell}: hidden_size={hidden_size} is too small; an orthogonal recurrence "
            "needs at least 2 units (A has N(N-1)/2 free entries)"
        )
    # The cell ignores the rates: the runner's optimizer reads them from the spec (rnnbench.optim).
    # Checked here, by the optimizer's own rule (group_rate), so that a sweep refuses a bad value
    # while planning.
    try:
        group_rate(
            "orthogonal",
            {"orthogonal_lr": orthogonal_lr, "orthogonal_lr_factor": orthogonal_lr_factor},
            1.0,
        )
    except ValueError as error:
        raise ValueError(f"{cell}: {error}") from None


# version 2: A trains at a tenth of --lr (was an absolute 1e-4)
@register_cell("exprnn", version=2, citation=EXPRNN_CITATION)
def exprnn(
    input_size: int,
    hidden_size: int,
    init: ExpInit = "cayley",
    orthogonal_lr: float = 0.0,
    orthogonal_lr_factor: float = ORTHOGONAL_LR_FACTOR,
) -> ExpRNN:
    """expRNN: orthogonal recurrence W = exp(A), A skew-symmetric, modReLU (N >= 2).

    `init`: the initial skew matrix, `cayley` (the paper's for (p)MNIST) or `henaff` (its copying
    task's). A's free entries (`lr_groups`) train at `orthogonal_lr_factor` (default 0.1, the
    paper's ratio) times the run's --lr, or at the absolute rate `orthogonal_lr` when that is set.
    """
    _check_common("exprnn", hidden_size, orthogonal_lr, orthogonal_lr_factor)
    if init not in ("cayley", "henaff"):
        raise ValueError(f"exprnn: init={init!r} is not one of cayley, henaff")
    return ExpRNN(input_size, hidden_size, init=init)


# version 2: A trains at a tenth of --lr (was an absolute 1e-4)
@register_cell("scornn", version=2, citation=SCORNN_CITATION)
def scornn(
    input_size: int,
    hidden_size: int,
    negative_fraction: float = NEGATIVE_FRACTION,
    negative_ones: int = -1,
    orthogonal_lr: float = 0.0,
    orthogonal_lr_factor: float = ORTHOGONAL_LR_FACTOR,
) -> ScoRNN:
    """scoRNN: scaled Cayley orthogonal recurrence W = (I + A)^-1 (I - A) D, modReLU (N >= 2).

    D has rho entries -1: `negative_ones` if >= 0, else round(negative_fraction * N); the default
    0.1 is the paper's code's MNIST setting (17 of 170), its copying task uses 0.5. Give one of the
    two. A's free entries (`lr_groups`) train at `orthogonal_lr_factor` (default 0.1, the paper's
    ratio) times the run's --lr, or at the absolute rate `orthogonal_lr` when that is set.
    """
    _check_common("scornn", hidden_size, orthogonal_lr, orthogonal_lr_factor)
    if not (math.isfinite(negative_fraction) and 0 <= negative_fraction <= 1):
        raise ValueError(f"scornn: negative_fraction={negative_fraction!r} must be in [0, 1]")
    if negative_ones < -1:
        raise ValueError(
            f"scornn: negative_ones={negative_ones} must be >= 0 (-1: from negative_fraction)"
        )
    if negative_ones > hidden_size:
        raise ValueError(
            f"scornn: negative_ones={negative_ones} must be at most hidden_size={hidden_size}"
        )
    if negative_ones >= 0 and negative_fraction != NEGATIVE_FRACTION:
        raise ValueError(
            f"scornn: give negative_ones={negative_ones} or negative_fraction={negative_fraction}, "
            "not both"
        )
    rho = negative_ones if negative_ones >= 0 else math.floor(negative_fraction * hidden_size + 0.5)
    return ScoRNN(input_size, hidden_size, negative_ones=rho)
