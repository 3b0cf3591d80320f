"""Measurement environment: what must hold before a CPU clock means anything.

Denormal floats (|x| < 1.2e-38 in float32) take 10-100x longer per operation on x86. Gradients
that vanish over hundreds of time steps pass through that range in every recurrent cell, so
without flushing them a CPU benchmark measures denormal handling, not the cell (measured here:
`nn.LSTM`, N=256, T=784, 1.5 s per training step with flushing, 15 s without).
`torch.set_flush_denormal` sets the flag of the calling thread only; torch's parallel
operations also run on OpenMP worker threads, which keep the default.
"""

from __future__ import annotations

import ctypes
import math
import sys
from pathlib import Path

import torch

_PARALLEL_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _openmp_library() -> ctypes.CDLL | None:
    """The OpenMP runtime torch loaded (libgomp, or Intel's libiomp5 which exports the same ABI)."""
    candidates = []
    if sys.platform.startswith("linux"):
        with open("/proc/self/maps") as maps:
            candidates = sorted(
                {line.split()[-1] for line in maps if "libgomp" in line or "libiomp" in line}
            )
    for path in candidates:
        library = ctypes.CDLL(path)  # already loaded: this returns the same instance
        if hasattr(library, "GOMP_parallel"):
            return library
    return None


def denormals_flushed_everywhere() -> bool:
    """True if a parallel CPU operation on denormals returns exact zeros on every thread."""
    smallest = torch.ones(1 << 16, dtype=torch.int32).view(torch.float32)  # 1.4e-45, by bit pattern
    return bool(((smallest * 1.0) == 0).all())  # 65k elements: split across the worker threads


def flush_denormals() -> str:
    """Treat denormals as zero on this thread and on torch's CPU worker threads.

    Returns what holds afterwards: "all threads", "calling thread only" (no OpenMP runtime
    found to reach the workers) or "unsupported" (the CPU has no flush-to-zero mode).

    >>> flush_denormals()
    'all threads'
    """
    if not torch.set_flush_denormal(True):
        return "unsupported"
    library = _openmp_library()
    if library is not None:
        # One parallel region of torch's team size: each team thread sets its own flag.
        callback = _PARALLEL_FN(lambda _: torch.set_flush_denormal(True))
        library.GOMP_parallel.argtypes = [
            _PARALLEL_FN,
            ctypes.c_void_p,
            ctypes.c_uint,
            ctypes.c_uint,
        ]
        library.GOMP_parallel.restype = None
        library.GOMP_parallel(callback, None, torch.get_num_threads(), 0)
    return "all threads" if denormals_flushed_everywhere() else "calling thread only"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that the clock reads finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> str:
    """Start a peak-memory measurement; returns the `mem_source` that peak_memory_mb will read.

    CUDA: the caching allocator's peak of allocated bytes. CPU: the process's peak resident set
    (Linux resets it through /proc/self/clear_refs; elsewhere it is the peak since the process
    started, and the source says so).
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda_max_allocated"
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, the peak resident set size
        return "cpu_peak_rss"
    except OSError:
        return "cpu_peak_rss_since_start"


def peak_memory_mb(device: torch.device) -> float:
    """The peak since reset_peak_memory (see there), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = _process_status_mb("VmHWM")
    if not math.isnan(peak):
        return peak
    import resource  # not on Windows; ru_maxrss is in kB on Linux, bytes on macOS

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def peak_reserved_mb(device: torch.device) -> float | str:
    """CUDA: the caching allocator's peak of reserved bytes since reset_peak_memory, in MiB (what
    the process held from the device, allocated or cached); '' elsewhere."""
    if device.type == "cuda":
        return torch.cuda.max_memory_reserved(device) / 2**20
    return ""


def load_average() -> float:
    """The machine's 1-minute load average (NaN where the system has none)."""
    import os

    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return math.nan


def timing_note(step_times_ms: list[float], loads: list[float], threads: int) -> str:
    """Why a row's times deserve caution, or '': step times whose interquartile range is above
    25 % of their median, or a machine busier than the threads the run used (the load average
    at the start or the end of training above threads + 1, the 1 for the system and this
    process's main thread)."""
    import statistics

    notes = []
    if len(step_times_ms) >= 4:
        q1, median, q3 = statistics.quantiles(step_times_ms, n=4)
        if median > 0 and q3 - q1 > 0.25 * median:
            notes.append(f"noisy step times (IQR {100 * (q3 - q1) / median:.0f}% of the median)")
    busiest = max((load for load in loads if not math.isnan(load)), default=math.nan)
    if busiest > threads + 1:
        notes.append(f"busy machine (load average {busiest:.1f} with {threads} thread(s) in use)")
    return "; ".join(notes)


def current_memory_mb(device: torch.device) -> float:
    """Memory held now, in MiB: torch's allocated CUDA memory, or the process's resident set."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return _process_status_mb("VmRSS")


def _process_status_mb(field: str) -> float:
    """A memory field of /proc/self/status (Linux) in MiB: VmRSS now, VmHWM the peak; NaN
    elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return math.nan


def git_commit(package: Path) -> str:
    """The commit of the checkout rnnbench runs from, with `+dirty` when its code (rnnbench/,
    cells/, tasks/, pyproject.toml) has uncommitted changes; '' outside a git checkout. Results
    folders inside the checkout do not count: running the benchmark must not make it dirty."""
    import subprocess

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=package, timeout=10
        )
        return out.stdout.strip() if out.returncode == 0 else ""

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        top = git("rev-parse", "--show-toplevel")
        if not commit or not top:
            return ""
        code = [
            path
            for path in ("rnnbench", "cells", "tasks", "pyproject.toml")
            if (Path(top) / path).exists()
        ]
        changed = git("-C", top, "status", "--porcelain", "--", *code)
    except (OSError, subprocess.SubprocessError):
        return ""
    return commit + ("+dirty" if changed else "")


def environment(device: torch.device) -> dict[str, str]:
    """Where a row was measured: device, versions, commit, host, time (UTC)."""
    import datetime
    import platform
    import socket

    import rnnbench

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                name = next(
                    line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
                )
        except (OSError, StopIteration):
            pass
        name = f"{name} ({torch.get_num_threads()} threads)"
    import numpy

    return {
        "device": device.type,
        "device_name": name,
        "num_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda or "",
        "python_version": platform.python_version(),
        "numpy_version": numpy.__version__,
        "rnnbench_version": rnnbench.__version__,
        "git_commit": git_commit(Path(rnnbench.__file__).parent),
        "hostname": socket.gethostname(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def resolve_device(name: str) -> torch.device:
    """auto: CUDA when available; asking for cuda without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' was asked for, but torch sees no CUDA device; use --device cpu or auto"
        )
    return torch.device(name)


TENSORBOARD_MISSING = (
    "--tensorboard needs the tensorboard package: pip install 'rnnbench[tensorboard]' "
    "(or pip install tensorboard)"
)


def check_tensorboard() -> None:
    """ValueError saying how to install TensorBoard, if torch cannot write its event files (a
    sweep asks before it plans anything)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as error:
        raise ValueError(f"{TENSORBOARD_MISSING} ({error})") from error
