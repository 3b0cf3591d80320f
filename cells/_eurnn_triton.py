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

import contextlib
import functools
import math
import os

import torch

INTERPRET_ENV = "TRITON_INTERPRET"


_defined_interpreted: bool | None = None  # the mode the kernels were defined in, once they are


@functools.cache
def _kernels():
    """The kernels module, or None where Triton cannot be imported."""
    global _defined_interpreted
    try:
        from rnnbench.cells import _eurnn_triton_kernels
    except ImportError:
        return None
    _defined_interpreted = _env_interpreted()
    return _eurnn_triton_kernels


def _env_interpreted() -> bool:
    return os.environ.get(INTERPRET_ENV, "0") not in ("", "0")


def interpreted() -> bool:
    """Whether the kernels run in Triton's interpreter (on CPU tensors): fixed when they are defined
    (the first time they are used), by TRITON_INTERPRET=1 then; until then, what it says now."""
    return _env_interpreted() if _defined_interpreted is None else _defined_interpreted


def unavailable(device: torch.device) -> str | None:
    """Why the Triton kernels cannot run on `device`, or None where they can."""
    if _kernels() is None:
        return "Triton is not installed (it ships with CUDA builds of torch; `pip install triton`)"
    if device.type == "cuda" and not interpreted():
        return None
    if device.type == "cpu" and interpreted():
        return None
    if device.type == "cuda":
        return (
            f"the Triton kernels were defined for its interpreter ({INTERPRET_ENV}=1), "
            "which runs them on CPU"
        )
    return (
        f"the Triton kernels run on CUDA devices (on CPU only under Triton's interpreter, "
        f"{INTERPRET_ENV}=1, for tests); this is {device.type}"
    )


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
# two) stay within MAX_UNITS and its sequences within MAX_ROWS, for N >= MIN_SHARED_N: the backward
# kernel keeps a dozen values per unit live, and ptxas (Triton 3.8 and 3.9) spills registers on
# sm_90 beyond that (at 4096 units and 4 warps; at 512 units of several sequences and 16 warps; at
# 128 sequences of N = 2 or 32 of N = 4). tests/test_eurnn_triton.py compiles every launch
# configuration and checks. (One sequence of N = 1024 is 1024 units, at 16 warps: no spills.)
MAX_UNITS = 256
MAX_ROWS = 16
MIN_SHARED_N = 16  # below, one sequence a program (32 sequences of N = 4 in float64 spill)
# The largest N `auto` gives the kernels: the compile test checks every launch up to it.
MAX_AUTO_N = 1024


def block_rows(batch: int, n: int) -> int:
    """Sequences per program: few, so that a batch of ~100 fills the SMs of a large GPU with
    programs (the work per step is O(capacity N), too little to split a sequence's units
    further), within MAX_UNITS units and MAX_ROWS sequences (one below N = MIN_SHARED_N). A
    function of the shapes only.

    >>> block_rows(100, 256), block_rows(1024, 64), block_rows(10**6, 8)
    (1, 4, 1)
    """
    rows = 1
    if _pow2(n) < MIN_SHARED_N:
        return rows
    while rows * 2 * 128 <= batch and rows * 2 * _pow2(n) <= MAX_UNITS and rows * 2 <= MAX_ROWS:
        rows *= 2
    return rows


def num_warps(rows: int, n: int) -> int:
    """Warps per program: a thread for each unit of the block, 4 to 16 warps (of 32 threads).

    >>> num_warps(1, 64), num_warps(1, 256), num_warps(1, 1024)
    (4, 8, 16)
    """
    return max(4, min(16, rows * _pow2(n) // 32))


def launch_shapes(
    batches: tuple[int, ...] = (100, 10**6), max_n: int = 1024
) -> list[tuple[int, int]]:
    """The (sequences per program, N rounded up to a power of two) block shapes a launch takes for
    N = 2 .. max_n at these batch sizes: the kernels' code depends on these and on the flags and
    dtype, never on the mesh (its tables are data)."""
    return sorted(
        {(block_rows(batch, 2**k), 2**k) for k in range(1, max_n.bit_length()) for batch in batches}
    )


def sm90_report(
    shapes: list[tuple[int, int]], dtypes: tuple[str, ...] = ("fp32", "fp64")
) -> list[dict]:
    """Each kernel compiled for the H200's architecture (sm_90a) at each block shape and dtype, with
    every flag set (the largest code), and what `ptxas -v` (shipped in Triton's wheel) says of it:
    registers, spill stores and loads, and its whole output. Runs on a machine without a GPU; needs
    Triton's compiler, so not under TRITON_INTERPRET=1."""
    import re
    import subprocess
    import tempfile

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if interpreted():
        raise RuntimeError(f"sm90_report compiles the kernels: unset {INTERPRET_ENV}")
    kernels = _kernels()
    from triton.backends.nvidia.compiler import get_ptxas

    try:  # the assembler Triton itself uses for sm_90 (3.9 emits PTX that only its newer one reads)
        ptxas = get_ptxas(90).path
    except TypeError:  # (before Triton 3.8 it took no architecture)
        ptxas = get_ptxas().path
    report = []
    for rows, block_n in shapes:
        for dtype in dtypes:
            for kernel in (kernels.forward_kernel, kernels.backward_kernel):
                flags = dict(
                    NOTEBOOK=True,
                    HAS_H0=True,
                    HAS_OMEGA=True,
                    BLOCK_B=rows,
                    BLOCK_N=block_n,
                    BLOCK_H=max(1, block_n // 2),
                )
                if "REAL_ONLY" in kernel.arg_names:
                    flags["REAL_ONLY"] = False
                signature = {
                    name: (
                        "constexpr"
                        if name in flags
                        else "*i32"
                        if name == "table"
                        else "i32"
                        if name in ("B", "T", "N", "L", "M")
                        else "*" + dtype
                    )
                    for name in kernel.arg_names
                }
                source = ASTSource(
                    kernel, signature, {(kernel.arg_names.index(k),): v for k, v in flags.items()}
                )
                warps = num_warps(rows, block_n)
                compiled = triton.compile(
                    source, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps}
                )
                with tempfile.TemporaryDirectory() as folder:
                    ptx = os.path.join(folder, "kernel.ptx")
                    with open(ptx, "w") as f:
                        f.write(compiled.asm["ptx"])
                    out = subprocess.run(
                        [ptxas, "-v", "--gpu-name", "sm_90a", ptx, "-o", os.devnull],
                        capture_output=True,
                        text=True,
                    )
                text = out.stdout + out.stderr

                def number(pattern: str, text: str = text) -> int | None:
                    found = re.search(pattern, text)
                    return int(found.group(1)) if found else None

                report.append(
                    {
                        "kernel": kernel.fn.__name__,
                        "dtype": dtype,
                        "rows": rows,
                        "block_n": block_n,
                        "num_warps": warps,
                        "returncode": out.returncode,
                        "registers": number(r"Used (\d+) registers"),
                        "spill_stores": number(r"(\d+) bytes spill stores"),
                        "spill_loads": number(r"(\d+) bytes spill loads"),
                        "ptxas": text,
                    }
                )
    return report


def _on(device: torch.device):
    """Triton launches on the current CUDA device: make it the tensors' (cuda:1...)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _shift(modrelu: tuple[bool, float], like: torch.Tensor) -> torch.Tensor:
    """What modReLU adds to |z| (notebook: eps) or |z|^2 (smooth: eps^2), as a one-element tensor of
    the run's dtype: a Python float would reach the kernel as float32."""
    notebook, eps = modrelu
    return torch.full((1,), eps if notebook else eps * eps, dtype=like.dtype, device=like.device)


def _trig(theta, phi, omega):
    cos_o = torch.cos(omega) if omega.numel() else theta.new_ones(1)
    sin_o = torch.sin(omega) if omega.numel() else theta.new_zeros(1)
    return (
        torch.cos(theta).contiguous(),
        torch.sin(theta).contiguous(),
        torch.cos(phi).contiguous(),
        torch.sin(phi).contiguous(),
        cos_o.contiguous(),
        sin_o.contiguous(),
    )


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
        rows, block_n = block_rows(batch, n), _pow2(n)
        programs = math.ceil(batch / rows)
        hs = xp.new_empty(batch, steps, 2 * n)
        scratch = xp.new_zeros(programs, 2, rows, block_n)
        trig = _trig(theta, phi, omega)
        layers = table.shape[1]
        if steps:
            with _on(xp.device):
                forward_kernel[(programs,)](
                    xp,
                    h0c if h0c is not None else xp,
                    hs,
                    scratch,
                    *trig,
                    beta.contiguous(),
                    table,
                    batch,
                    steps,
                    n,
                    layers,
                    _shift(modrelu, xp),
                    NOTEBOOK=modrelu[0],
                    HAS_H0=h0c is not None,
                    HAS_OMEGA=omega.numel() > 0,
                    BLOCK_B=rows,
                    BLOCK_N=block_n,
                    BLOCK_H=table.shape[2],
                    num_warps=num_warps(rows, n),
                )
        ctx.save_for_backward(xp, theta, phi, omega, beta, h0c, hs, table)
        ctx.real_only, ctx.modrelu = real_only, modrelu
        return hs[..., :n] if real_only else hs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out):
        backward_kernel = _kernels().backward_kernel
        xp, theta, phi, omega, beta, h0, hs, table = ctx.saved_tensors
        batch, steps, n = xp.shape
        rows, block_n = block_rows(batch, n), _pow2(n)
        programs = math.ceil(batch / rows)
        mixers = theta.numel()
        g_xp = torch.zeros_like(xp)
        g_h0 = torch.zeros_like(h0) if h0 is not None else None
        acc = xp.new_zeros(programs, 2 * mixers + 2 * n)
        scratch = xp.new_zeros(programs, 4, rows, block_n)
        if steps:
            with _on(xp.device):
                backward_kernel[(programs,)](
                    xp,
                    h0 if h0 is not None else xp,
                    hs,
                    g_out.contiguous(),
                    g_xp,
                    g_h0 if g_h0 is not None else xp,
                    acc,
                    scratch,
                    *_trig(theta, phi, omega),
                    beta.contiguous(),
                    table,
                    batch,
                    steps,
                    n,
                    table.shape[1],
                    mixers,
                    _shift(ctx.modrelu, xp),
                    NOTEBOOK=ctx.modrelu[0],
                    HAS_H0=h0 is not None,
                    HAS_OMEGA=omega.numel() > 0,
                    REAL_ONLY=ctx.real_only,
                    BLOCK_B=rows,
                    BLOCK_N=block_n,
                    BLOCK_H=table.shape[2],
                    num_warps=num_warps(rows, n),
                )
        total = acc.sum(0)  # over programs, in a fixed order
        g_theta, g_phi = total[:mixers], total[mixers : 2 * mixers]
        g_omega = total[2 * mixers : 2 * mixers + n] if omega.numel() else None
        g_beta = total[2 * mixers + n :]
        return g_xp, g_theta, g_phi, g_omega, g_beta, g_h0, None, None, None
