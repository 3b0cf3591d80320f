"""coRNN: the coupled oscillatory RNN of Rusch & Mishra (2021), "Coupled Oscillatory Recurrent
Neural Network (coRNN): An accurate and (gradient) stable architecture for learning long time
dependencies", ICLR, arXiv:2010.00951.

The hidden state y follows a network of damped, driven, coupled oscillators,

    y'' = tanh(W y + Wz y' + V u + b) - gamma y - epsilon y',

with z = y' and the step dt discretised by the paper's implicit-explicit (IMEX) scheme, its eq. (3),
explicit in the drive and the restoring force, implicit in the damping:

    z_n = z_{n-1} + dt tanh(W y_{n-1} + Wz z_{n-1} + V u_n + b) - dt gamma y_{n-1} - dt epsilon z_n,
    y_n = y_{n-1} + dt z_n,                                   y_0 = z_0 = 0,

solved for z_n: z_n = (z_{n-1} + dt (tanh(...) - gamma y_{n-1})) / (1 + dt epsilon)
(`scheme="imex"`, the default). The authors' code steps the damping explicitly instead,
z_n = z_{n-1} + dt (tanh(...) - gamma y_{n-1} - epsilon z_{n-1}) (`scheme="explicit"`): the step
behind the paper's published numbers, which its hyper-parameters were tuned with. The two differ by
O(dt^2 epsilon^2) a step; at the psMNIST values z keeps a fraction 1 / (1 + dt epsilon) = 0.62 of
itself a step (IMEX) against 1 - dt epsilon = 0.39 (explicit), and the explicit step is only stable
for dt epsilon < 2.
and the cell outputs y_n (the authors' readout reads y too). Options `dt`, `gamma`, `epsilon`
default to the psMNIST values, from the authors' psMNIST script (psMNIST/psMNIST_task.py in
tk-rusch/coRNN, the run behind the paper's psMNIST result): dt = 0.076, gamma = 0.4, epsilon = 8.0
(there with 256 units, Adam at 0.0054). The paper tunes them per task; none is a general default.

Parameters: W (n, n) and Wz (n, n) for the recurrence, V (n, input_size) and b (n) for the input.
Initialisation as in the authors' code, which holds the three matrices and b as one nn.Linear over
[u, z, y]: every entry uniform in +-1/sqrt(input_size + 2n) (torch's nn.Linear default at that
fan-in). The input term V u_n + b for all steps comes from one matmul before the loop; each step
then does one (B, 2n) x (2n, n) matmul on [y, z].

Deviations: none in the cell; one layer, read by the runner's linear readout, as in the paper. The
default step is the paper's equation; the published numbers used `scheme=explicit` (see above).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.registry import register_cell

Scheme = Literal["imex", "explicit"]

CITATION = """@inproceedings{rusch2021coupled,
  title={Coupled Oscillatory Recurrent Neural Network ({coRNN}): An accurate and (gradient) stable \
architecture for learning long time dependencies},
  author={Rusch, T. Konstantin and Mishra, Siddhartha},
  booktitle={International Conference on Learning Representations (ICLR)},
  year={2021},
  note={arXiv:2010.00951}
}"""


class CoRNN(nn.Module):
    """Coupled oscillatory RNN. `forward(x: (B, T, input_size)) -> (B, T, hidden_size)`, the
    positions y."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        dt: float = 0.076,
        gamma: float = 0.4,
        epsilon: float = 8.0,
        scheme: str = "imex",
    ):
        super().__init__()
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"cornn: dt={dt} must be > 0")
        if not (math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"cornn: gamma={gamma} must be >= 0")
        if not (math.isfinite(epsilon) and epsilon >= 0):
            raise ValueError(f"cornn: epsilon={epsilon} must be >= 0")
        if hidden_size < 1:
            raise ValueError(f"cornn: hidden_size={hidden_size} must be >= 1")
        if scheme not in ("imex", "explicit"):
            raise ValueError(f"cornn: scheme={scheme!r} is not one of imex, explicit")
        n = hidden_size
        self.input_size, self.hidden_size, self.output_size = input_size, n, n
        self.dt, self.gamma, self.epsilon, self.scheme = dt, gamma, epsilon, scheme
        self.input = nn.Linear(input_size, n)  # V, b
        self.weight_y = nn.Parameter(torch.empty(n, n))  # W
        self.weight_z = nn.Parameter(torch.empty(n, n))  # Wz
        bound = 1 / math.sqrt(input_size + 2 * n)
        with torch.no_grad():
            for p in (self.input.weight, self.input.bias, self.weight_y, self.weight_z):
                p.uniform_(-bound, bound)

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, dt={self.dt}, gamma={self.gamma}, "
            f"epsilon={self.epsilon}, scheme={self.scheme}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dt = self.dt
        xp = F.linear(x.transpose(0, 1), self.input.weight, self.input.bias)  # (T, B, n): V u_n + b
        recurrent = torch.cat(
            [self.weight_y, self.weight_z], 1
        ).t()  # (2n, n): [y, z] -> W y + Wz z
        y = z = xp.new_zeros(xp.shape[1:])  # (B, n)
        ys = []
        for xp_t in xp.unbind(0):
            drive = torch.tanh(torch.addmm(xp_t, torch.cat([y, z], 1), recurrent))  # (B, n)
            if (
                self.scheme == "imex"
            ):  # damping at z_n: z_n (1 + dt eps) = z_{n-1} + dt (drive - gamma y)
                z = (
                    z.add(drive, alpha=dt)
                    .add_(y, alpha=-dt * self.gamma)
                    .div_(1 + dt * self.epsilon)
                )
            else:  # damping at z_{n-1}
                z = (
                    z.mul(1 - dt * self.epsilon)
                    .add_(y, alpha=-dt * self.gamma)
                    .add_(drive, alpha=dt)
                )
            y = torch.add(y, z, alpha=dt)
            ys.append(y)
        return torch.stack(ys, 1)  # (B, T, n)


# version 2: the paper's IMEX step by default (was the authors' explicit one)
@register_cell("cornn", version=2, citation=CITATION)
def cornn(
    input_size: int,
    hidden_size: int,
    dt: float = 0.076,
    gamma: float = 0.4,
    epsilon: float = 8.0,
    scheme: Scheme = "imex",
) -> CoRNN:
    """coRNN: coupled damped oscillators y'' = tanh(W y + Wz y' + V u + b) - gamma y - epsilon y',
    step dt.

    Defaults: the paper's psMNIST hyper-parameters (dt 0.076, gamma 0.4, epsilon 8). `scheme`: imex
    (the paper's eq. 3, damping implicit) or explicit (the authors' code).
    """
    return CoRNN(input_size, hidden_size, dt=dt, gamma=gamma, epsilon=epsilon, scheme=scheme)
