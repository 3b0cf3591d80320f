"""The compiled EURNN kernels (csrc/eurnn_fused.cpp): how they are built, and how autograd calls
the fused recurrence. (The same module also holds the dense path's step loop; DenseRecurrence in
eurnn.py calls it.)

The kernel is C++ compiled with torch's extension tools the first time it is used, then cached
(in $TORCH_EXTENSIONS_DIR/NAME, by default ~/.cache/torch_extensions/NAME). It needs a C++ compiler with
OpenMP SIMD support (g++ or clang++); building takes about a minute, once per machine type. When no
compiler is available, `load()` returns None after a single warning, and the cell runs `dense`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("csrc") / "eurnn_fused.cpp"
# -march=native: the build is tuned to this CPU, so the cache key names the CPU (a home folder
# shared by different nodes must not hand one node's build to another). No -ffast-math: it would
# change rounding and the handling of |z| = 0; -fno-math-errno is enough for sqrt to vectorise.
CFLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp-simd"]


def _cpu_signature() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor() or platform.machine()


def build_name() -> str:
    """The extension's name: changes with the source, the flags, the CPU, Python and torch."""
    key = "\n".join([SOURCE.read_text(), " ".join(CFLAGS), _cpu_signature(), sys.implementation.cache_tag,
                     torch.__version__])
    return "rnnbench_eurnn_fused_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def build_folder(name: str) -> Path:
    from torch.utils import cpp_extension

    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()) / name


STALE_LOCK_S = 600  # a build takes about a minute: a lock older than this belongs to a killed process


def _import(name: str, library: Path):
    spec = importlib.util.spec_from_file_location(name, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def load():
    """The compiled kernel module, or None (with one warning) where it cannot be built.

    A library already built is imported directly: torch's `load` takes a lock file in the
    build folder on every call, even with nothing to build, and waits forever on a lock left by
    a process killed while holding it. So only a build goes through it, after a lock older than
    any build has been removed."""
    from torch.utils import cpp_extension

    name = build_name()
    folder = build_folder(name)
    library = folder / f"{name}.so"
    if library.exists():
        try:
            return _import(name, library)
        except ImportError:  # another process is still writing it: build (or wait) through torch
            pass
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = folder / "lock"
        if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_S:
            warnings.warn(f"removing {lock}, a build lock left by a process killed {STALE_LOCK_S} s or more ago",
                          RuntimeWarning, stacklevel=2)
            lock.unlink(missing_ok=True)
        return cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=CFLAGS,
                                  build_directory=str(folder), verbose=False)
    except Exception as error:  # no compiler, no ninja, a failed build: all mean "use dense"
        lines = str(error).strip().splitlines() or [type(error).__name__]
        first_line = next((ln for ln in lines if "error:" in ln), lines[0])[:300]
        warnings.warn(
            f"rnnbench could not build the fused EURNN kernel ({type(error).__name__}: {first_line}); "
            "EURNN runs impl='dense' instead, with its steps in Python (slower). The kernel needs a C++ "
            "compiler (g++ or clang++) and ninja; see README.md.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


def layout(pairs: list[torch.Tensor], n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The kernel's description of the mixer layers: (perm, segments, layers).

    The kernel keeps the state in an internal order of the units (perm[j] is the unit at position
    j) in which each layer's mixers act on contiguous runs of positions, so that its loops
    vectorise. A segment (a, b, len, m) mixes positions a + k and b + k with mixer m + k, k < len;
    layer l owns segments layers[l] to layers[l + 1]. Of the natural order and the order "even
    units, then odd units" (where both layers of the tunable style are one run each), the one
    with fewer segments is used.
    """
    units = torch.arange(n)
    orders = [units, torch.cat([units[0::2], units[1::2]])]
    best = None
    for perm in orders:
        position = torch.argsort(perm).tolist()
        segments, layers, mixer = [], [0], 0
        for p in pairs:
            a, b = p.tolist()
            for k in range(len(a)):
                pa, pb = position[a[k]], position[b[k]]
                last = segments[-1] if len(segments) > layers[-1] else None
                if last is not None and pa == last[0] + last[2] and pb == last[1] + last[2]:
                    last[2] += 1
                else:
                    segments.append([pa, pb, 1, mixer + k])
            mixer += len(a)
            layers.append(len(segments))
        if best is None or len(segments) < len(best[1]):
            best = (perm, segments, layers)
    perm, segments, layers = best
    return perm, torch.tensor(segments, dtype=torch.long).reshape(-1, 4), torch.tensor(layers, dtype=torch.long)


class FusedRecurrence(torch.autograd.Function):
    """All steps of the EURNN recurrence in the compiled kernel.

    x: (B, T, I), w: (N, I), b: (N,), theta/phi: (mixers,), omega: (N,) or empty, beta: (N,),
    h0: (B, 2N) [Re, Im] or None -> hs: (B, T, 2N) [Re h, Im h], or its real half when
    `real_only`. Only hs is kept for backward; the kernel recomputes the rest.
    """

    @staticmethod
    def forward(ctx, x, w, b, theta, phi, omega, beta, h0, kernel, lay, real_only):
        perm, segments, layers = lay
        threads = torch.get_num_threads()
        hs = kernel.forward(x, w, b, theta, phi, omega, beta, h0, perm, segments, layers, threads)
        ctx.save_for_backward(x, w, b, theta, phi, omega, beta, h0, hs)
        ctx.kernel, ctx.lay, ctx.real_only = kernel, lay, real_only
        return hs[..., : w.shape[0]] if real_only else hs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out):
        x, w, b, theta, phi, omega, beta, h0, hs = ctx.saved_tensors
        perm, segments, layers = ctx.lay
        grads = ctx.kernel.backward(g_out, x, w, b, theta, phi, omega, beta, h0, hs, perm, segments, layers,
                                    ctx.real_only, ctx.needs_input_grad[0], torch.get_num_threads())
        g_x, g_w, g_b, g_theta, g_phi, g_omega, g_beta, g_h0 = grads
        return (g_x if ctx.needs_input_grad[0] else None, g_w, g_b, g_theta, g_phi,
                g_omega if omega.numel() else None, g_beta, g_h0 if h0 is not None else None, None, None, None)
