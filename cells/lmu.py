"""LMU: the Legendre Memory Unit of Voelker, Kajić & Eliasmith (2019), "Legendre Memory Units:
Continuous-Time Representation in Recurrent Neural Networks", NeurIPS 32 (proceedings only;
the citation gives their address).

A linear memory m (`order` = d dimensions) holds the Legendre coefficients of a sliding window of
length theta of one scalar signal u; a tanh cell h (`hidden_size` = n units) reads it. One step is

    u_t = e_x . x_t + e_h . h_{t-1} + e_m . m_{t-1}             (a scalar per sequence)
    m_t = A_bar m_{t-1} + B_bar u_t                              (d)
    h_t = tanh(W_x x_t + W_h h_{t-1} + W_m m_t),   h_0 = m_0 = 0  (n)

and the cell outputs h_t. (A_bar, B_bar) discretise, by zero-order hold with dt = 1, the paper's
continuous delay system theta m'(t) = A m(t) + B u(t), with, for i, j = 0 .. d-1,

    A_ij = (2i + 1) * (-1 if i < j else (-1)^(i - j + 1)),    B_i = (2i + 1) (-1)^i:

[[A_bar, B_bar], [0, 1]] = expm([[A, B], [0, 0]] / theta), one block-matrix exponential
(`torch.linalg.matrix_exp`) in float64 when the cell is built, kept as (non-trainable) buffers;
`memory_matrices()` returns them. m_t then approximates u on [t - theta, t] by shifted Legendre
polynomials: u(t - s) ~ sum_i m_i(t) P_i(s / theta),
P_i(r) = (-1)^i sum_k C(i, k) C(i + k, k) (-r)^k.

Parameters (the paper's names), as in the paper's cell: encoders e_x (input_size), e_h (n), e_m (d),
kernels W_x (n, input_size), W_h (n, n), W_m (n, d); no biases: n^2 + n (input_size + d + 1) +
input_size + d in all. A and B are not trained (nor were they in the paper's psMNIST model, whose
summary lists 65,792 = 256^2 + 256 non-trainable weights). `init` chooses the initialisation:
  - `default`, the general cell's defaults in the authors' code (LMUCell in code/lmu.py of
    nengo/keras-lmu, the paper's repository): e_x and e_h LeCun uniform
    (U(+-sqrt(3 / fan_in)), fan_in = input_size and n), e_m zero, W_x, W_h and W_m Xavier normal
    (N(0, 2 / (fan_in + fan_out)); Keras's glorot_normal, which the paper's code used, truncated it
    at two standard deviations);
  - `psmnist`, the paper's psMNIST run (experiments/psMNIST-standard.ipynb there): e_x = 1,
    e_h = e_m = 0, W_x = W_h = 0, W_m Xavier normal,
    so that the memory starts as a pure delay line of the input and h as a readout of it (all still
    trained, as there).
The option defaults `order=256`, `theta=784` are the psMNIST run's (there with n = 212, giving
99,897 trainable cell parameters); theta is in steps.

Computation: with P = A_bar^T + e_m B_bar^T and Q = e_h B_bar^T (row vectors), the pair
(m_t, W_x x_t + W_h h_{t-1} + W_m m_t) is [m_{t-1}, h_{t-1}] @ [[P, P W_m^T], [Q, W_h^T + Q W_m^T]]
plus a term that depends on x_t only: one (d + n) x (d + n) matmul per step (the same work as the
separate products), built once per forward; the input terms for all T steps come from one matmul
before the loop.

Deviations: one layer, its output read by the runner's linear readout (the paper's psMNIST model is
the same); the memory holds one scalar signal, as in the paper (later LMU versions allow several).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.registry import register_cell

Init = Literal["default", "psmnist"]

CITATION = """@inproceedings{voelker2019legendre,
  title={Legendre Memory Units: Continuous-Time Representation in Recurrent Neural Networks},
  author={Voelker, Aaron and Kaji{\\'c}, Ivana and Eliasmith, Chris},
  booktitle={Advances in Neural Information Processing Systems},
  volume={32},
  year={2019},
  note={https://papers.nips.cc/paper/9689-legendre-memory-units-continuous-time-representation-in-recurrent-neural-networks}
}"""


def legendre_delay_system(order: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's continuous (A, B), already divided by theta, in float64: m' = A m + B u.

    Example: `a, b = legendre_delay_system(4, 10.0)` gives a (4, 4) and b (4,).
    """
    i = torch.arange(order, dtype=torch.float64, device="cpu")
    row, col = i[:, None], i[None, :]
    sign = torch.where(row < col, -1.0, (-1.0) ** (row - col + 1))
    a = (2 * row + 1) * sign
    b = (2 * i + 1) * (-1.0) ** i
    return a / theta, b / theta


def zero_order_hold(order: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(A_bar, B_bar) in float64 on the CPU: the delay system held over one step of length 1, from
    the exponential of the block matrix [[A, B], [0, 0]].

    Example: `a_bar, b_bar = zero_order_hold(256, 784.0)`.
    """
    a, b = legendre_delay_system(order, theta)
    block = torch.zeros(order + 1, order + 1, dtype=torch.float64, device="cpu")
    block[:order, :order] = a
    block[:order, order] = b
    held = torch.linalg.matrix_exp(block)
    return held[:order, :order].contiguous(), held[:order, order].contiguous()


class LMU(nn.Module):
    """Legendre Memory Unit. `forward(x: (B, T, input_size)) -> (B, T, hidden_size)`."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        order: int = 256,
        theta: float = 784.0,
        init: str = "default",
    ):
        super().__init__()
        if init not in ("default", "psmnist"):
            raise ValueError(f"lmu: init={init!r} must be one of default, psmnist")
        if order < 1:
            raise ValueError(f"lmu: order={order} must be >= 1")
        if not (math.isfinite(theta) and theta > 0):
            raise ValueError(f"lmu: theta={theta} must be a positive number of steps")
        if hidden_size < 1:
            raise ValueError(f"lmu: hidden_size={hidden_size} must be >= 1")
        n, d = hidden_size, order
        self.input_size, self.hidden_size, self.order, self.theta, self.init = (
            input_size,
            n,
            d,
            theta,
            init,
        )
        self.output_size = n

        # Float64, whatever the default dtype: `.to(dtype)` casts them with the parameters, and a
        # float64 cell keeps them exact. On the device in use (meta too, when only counting).
        device = torch.empty(0).device
        if device.type == "meta":  # shapes only (rnnbench.sizing): no need to compute them
            a_bar = torch.empty(d, d, dtype=torch.float64, device=device)
            b_bar = torch.empty(d, dtype=torch.float64, device=device)
        else:
            a_bar, b_bar = (t.to(device) for t in zero_order_hold(d, theta))
        self.register_buffer("a_bar", a_bar, persistent=False)
        self.register_buffer("b_bar", b_bar, persistent=False)

        self.input_encoder = nn.Parameter(torch.empty(input_size))  # e_x
        self.hidden_encoder = nn.Parameter(torch.empty(n))  # e_h
        self.memory_encoder = nn.Parameter(torch.empty(d))  # e_m
        self.input_kernel = nn.Parameter(torch.empty(n, input_size))  # W_x
        self.hidden_kernel = nn.Parameter(torch.empty(n, n))  # W_h
        self.memory_kernel = nn.Parameter(torch.empty(n, d))  # W_m
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The initialisation `init` names (see the module docstring)."""
        with torch.no_grad():
            nn.init.zeros_(self.memory_encoder)
            nn.init.xavier_normal_(self.memory_kernel)
            if self.init == "psmnist":
                nn.init.ones_(self.input_encoder)
                nn.init.zeros_(self.hidden_encoder)
                nn.init.zeros_(self.input_kernel)
                nn.init.zeros_(self.hidden_kernel)
                return
            for encoder in (
                self.input_encoder,
                self.hidden_encoder,
            ):  # LeCun uniform, fan_in = its length
                bound = math.sqrt(3 / encoder.numel())
                encoder.uniform_(-bound, bound)
            nn.init.xavier_normal_(self.input_kernel)
            nn.init.xavier_normal_(self.hidden_kernel)

    def memory_matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_bar (d, d), B_bar (d,)), with m_t = A_bar m_{t-1} + B_bar u_t."""
        return self.a_bar, self.b_bar

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, order={self.order}, theta={self.theta}, "
            f"init={self.init}"
        )

    def step_matrix(self, dtype: torch.dtype) -> torch.Tensor:
        """The (d + n, d + n) matrix M with [m_t, z_t] = [m_{t-1}, h_{t-1}] @ M + (terms in x_t),
        z_t the tanh's argument (differentiable in the parameters)."""
        a_bar, b_bar = self.a_bar.to(dtype), self.b_bar.to(dtype)
        p = a_bar.t() + torch.outer(self.memory_encoder, b_bar)  # (d, d)
        q = torch.outer(self.hidden_encoder, b_bar)  # (n, d)
        w_m = self.memory_kernel.t()  # (d, n)
        return torch.cat(
            [torch.cat([p, p @ w_m], 1), torch.cat([q, self.hidden_kernel.t() + q @ w_m], 1)], 0
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = x.shape
        d = self.order
        m = self.step_matrix(x.dtype)  # (d + n, d + n)
        b_bar = self.b_bar.to(x.dtype)
        xt = x.transpose(0, 1)  # (T, B, input_size)
        u_x = (xt @ self.input_encoder).unsqueeze(-1)  # (T, B, 1): e_x . x_t
        # x_t's part of [m_t, z_t]: u_x B_bar, and W_x x_t + u_x W_m B_bar.
        inputs = torch.cat(
            [u_x * b_bar, F.linear(xt, self.input_kernel) + u_x * (self.memory_kernel @ b_bar)], -1
        )  # (T, B, d + n)
        state = x.new_zeros(batch, d + self.hidden_size)  # [m, h]
        hs = []
        for inputs_t in inputs.unbind(0):
            pre = torch.addmm(inputs_t, state, m)  # (B, d + n): [m_t, z_t]
            h = torch.tanh(pre[:, d:])
            state = torch.cat([pre[:, :d], h], 1)
            hs.append(h)
        return torch.stack(hs, 1)  # (B, T, n)


@register_cell("lmu", citation=CITATION)
def lmu(
    input_size: int,
    hidden_size: int,
    order: int = 256,
    theta: float = 784.0,
    init: Init = "default",
) -> LMU:
    """Legendre Memory Unit: a fixed Legendre delay memory of `order` dims over a `theta`-step
    window, tanh cell.

    hidden_size is the tanh cell's size; the memory (order dims) adds to the state, not to
    hidden_size. `init`: `default` (the paper's general cell) or `psmnist` (its psMNIST run's; see
    cells/lmu.py).
    """
    return LMU(input_size, hidden_size, order=order, theta=theta, init=init)
