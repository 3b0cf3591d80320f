"""The EURNN recurrence as Triton kernels: one launch for all T steps forward, one for all T steps
back (impl="triton"; see eurnn.py for the math).

Each program owns a block of BLOCK_B sequences and runs them through every step. The state of
its block lives in a program-private scratch buffer (global memory, which stays in the SM's L1 and
L2 at these sizes; Triton has no explicit shared memory). A mixer layer gathers the unit pairs
(a, b) its mixers act on, mixes them and scatters them back; a barrier separates the layers, as
the threads of a program own different pairs in consecutive layers. Pairs come from the tables of
`tables()`: per layer, the units a[k], b[k] of mixer k and its index in theta/phi (-1 where a layer
has fewer than N/2 mixers: the open boundary). So one kernel serves every style (tunable, fft),
capacity and boundary; the diagonal phase and modReLU are elementwise.

The input projection W x_t + b is not in the kernels: the caller passes xp = x W^T + b for all
steps, one GEMM, and the backward kernel returns dL/dxp, from which autograd's GEMMs give the
gradients of x, W and b.

Backward keeps nothing per layer, as the C++ kernel (csrc/eurnn_fused.cpp): for step t it
recomputes U h_{t-1} from the stored state h_{t-1}, then walks the layers backwards, inverting each
mixer exactly (they are unitary) to recover its input while it propagates the gradient. Parameter
gradients are summed over a program's sequences in registers and over steps in the program's own
row of an accumulator, then over programs by one torch.sum in a fixed order: no atomics, so the
result is the same on every run (the number of programs depends on the batch and N only).

Without a GPU the kernels run under Triton's interpreter (TRITON_INTERPRET=1 set before Triton is
imported; tests only, slow): `available()` says where they can run.
"""

from __future__ import annotations

import functools
import math
import os

import torch

INTERPRET_ENV = "TRITON_INTERPRET"


@functools.cache
def _kernels():
    """The kernels module, or None where Triton cannot be imported."""
    try:
        from rnnbench.cells import _eurnn_triton_kernels
    except ImportError:
        return None
    return _eurnn_triton_kernels


def interpreted() -> bool:
    """Whether Triton runs kernels in its interpreter (on CPU tensors): TRITON_INTERPRET=1."""
    return os.environ.get(INTERPRET_ENV, "0") not in ("", "0")


def unavailable(device: torch.device) -> str | None:
    """Why the Triton kernels cannot run on `device`, or None where they can."""
    if _kernels() is None:
        return "Triton is not installed (it ships with CUDA builds of torch; `pip install triton`)"
    if device.type == "cuda":
        return None
    if device.type == "cpu" and interpreted():
        return None
    return (f"the Triton kernels run on CUDA devices (on CPU only under Triton's interpreter, "
            f"{INTERPRET_ENV}=1, for tests); this is {device.type}")


def tables(pairs: list[torch.Tensor], n: int) -> torch.Tensor:
    """The mixer tables of a mesh: (3, layers, H) int32, H = N/2 rounded up to a power of two, with
    rows a, b, mixer: layer l's k-th mixer, number mixer[l, k] of theta/phi, acts on units a[l, k]
    and b[l, k]. Unused slots have mixer -1 (and units 0).

    >>> tables(mixer_pairs(4, "tunable", 2, "open"), 4)[2].tolist()
    [[0, 1], [2, -1]]
    """
    width = _pow2(max(1, n // 2))
    out = torch.zeros(3, len(pairs), width, dtype=torch.int32)
    out[2] = -1
    first = 0
    for layer, p in enumerate(pairs):
        m = p.shape[1]
        out[0, layer, :m], out[1, layer, :m] = p[0], p[1]
        out[2, layer, :m] = torch.arange(first, first + m)
        first += m
    return out


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


# A program takes more sequences only while its units (sequences x N, N rounded up to a power of
# two) stay within this many: the backward kernel keeps a dozen values per unit live, and ptxas
# spills registers on sm_90 at 4096 units (4 warps), at 1024 units of float64 (4 warps) and at
# 1024 units of several sequences (16 warps); tests/test_eurnn_triton.py compiles every launch
# configuration and checks. (One sequence of N = 1024 is 1024 units, at 16 warps: no spills.)
MAX_UNITS = 512


def block_rows(batch: int, n: int) -> int:
    """Sequences per program: few, so that a batch of ~100 fills the SMs of a large GPU with
    programs (the work per step is O(capacity N), too little to split a sequence's units
    further), and at most MAX_UNITS units per program. A function of the shapes only.

    >>> block_rows(100, 256), block_rows(1024, 64)
    (1, 4)
    """
    rows = 1
    while rows * 2 * 128 <= batch and rows * 2 * _pow2(n) <= MAX_UNITS:
        rows *= 2
    return rows


def num_warps(rows: int, n: int) -> int:
    """Warps per program: a thread for each unit of the block, 4 to 16 warps (of 32 threads).

    >>> num_warps(1, 64), num_warps(1, 256), num_warps(1, 1024)
    (4, 8, 16)
    """
    return max(4, min(16, rows * _pow2(n) // 32))


def _trig(theta, phi, omega):
    cos_o = torch.cos(omega) if omega.numel() else theta.new_ones(1)
    sin_o = torch.sin(omega) if omega.numel() else theta.new_zeros(1)
    return (torch.cos(theta).contiguous(), torch.sin(theta).contiguous(), torch.cos(phi).contiguous(),
            torch.sin(phi).contiguous(), cos_o.contiguous(), sin_o.contiguous())


class TritonRecurrence(torch.autograd.Function):
    """All steps of the EURNN recurrence in the Triton kernels.

    xp: (B, T, N) the input projection x W^T + b; theta/phi: (mixers,); omega: (N,) or empty;
    beta: (N,); h0: (B, 2N) [Re, Im] or None; table: `tables(...)` on the device;
    modrelu: (notebook, eps) -> hs: (B, T, 2N) [Re h, Im h], or its real half when `real_only`.
    Only hs is kept for backward.
    """

    @staticmethod
    def forward(ctx, xp, theta, phi, omega, beta, h0, table, real_only, modrelu):
        forward_kernel = _kernels().forward_kernel
        batch, steps, n = xp.shape
        xp = xp.contiguous()
        h0c = h0.contiguous() if h0 is not None else None
        notebook, eps = modrelu
        shift = eps if notebook else eps * eps
        rows, block_n = block_rows(batch, n), _pow2(n)
        programs = math.ceil(batch / rows)
        hs = xp.new_empty(batch, steps, 2 * n)
        scratch = xp.new_zeros(programs, 2, rows, block_n)
        trig = _trig(theta, phi, omega)
        layers = table.shape[1]
        if steps:
            forward_kernel[(programs,)](
                xp, h0c if h0c is not None else xp, hs, scratch, *trig, beta.contiguous(), table,
                batch, steps, n, layers, shift,
                NOTEBOOK=notebook, HAS_H0=h0c is not None, HAS_OMEGA=omega.numel() > 0,
                BLOCK_B=rows, BLOCK_N=block_n, BLOCK_H=table.shape[2], num_warps=num_warps(rows, n))
        ctx.save_for_backward(xp, theta, phi, omega, beta, h0c, hs, table)
        ctx.real_only, ctx.modrelu = real_only, modrelu
        return hs[..., :n] if real_only else hs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out):
        backward_kernel = _kernels().backward_kernel
        xp, theta, phi, omega, beta, h0, hs, table = ctx.saved_tensors
        batch, steps, n = xp.shape
        notebook, eps = ctx.modrelu
        shift = eps if notebook else eps * eps
        rows, block_n = block_rows(batch, n), _pow2(n)
        programs = math.ceil(batch / rows)
        mixers = theta.numel()
        g_xp = torch.zeros_like(xp)
        g_h0 = torch.zeros_like(h0) if h0 is not None else None
        acc = xp.new_zeros(programs, 2 * mixers + 2 * n)
        scratch = xp.new_zeros(programs, 4, rows, block_n)
        if steps:
            backward_kernel[(programs,)](
                xp, h0 if h0 is not None else xp, hs, g_out.contiguous(), g_xp, g_h0 if g_h0 is not None else xp,
                acc, scratch, *_trig(theta, phi, omega), beta.contiguous(), table,
                batch, steps, n, table.shape[1], mixers, shift,
                NOTEBOOK=notebook, HAS_H0=h0 is not None, HAS_OMEGA=omega.numel() > 0, REAL_ONLY=ctx.real_only,
                BLOCK_B=rows, BLOCK_N=block_n, BLOCK_H=table.shape[2], num_warps=num_warps(rows, n))
        total = acc.sum(0)  # over programs, in a fixed order
        g_theta, g_phi = total[:mixers], total[mixers:2 * mixers]
        g_omega = total[2 * mixers:2 * mixers + n] if omega.numel() else None
        g_beta = total[2 * mixers + n:]
        return g_xp, g_theta, g_phi, g_omega, g_beta, g_h0, None, None, None
