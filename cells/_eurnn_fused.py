"""The compiled EURNN kernels (csrc/eurnn_fused.cpp): how they are built, and how autograd calls
the fused recurrence. (The same module also holds the dense path's step loop; DenseRecurrence in
eurnn.py calls it.)

The kernel is C++ compiled with torch's extension tools the first time it is used, then cached (in
$TORCH_EXTENSIONS_DIR/NAME, by default ~/.cache/torch_extensions/NAME). It needs a C++ compiler with
OpenMP SIMD support (g++ or clang++); building takes about a minute, once per machine type. When no
compiler is available, `load()` returns None after a single warning, and EURNN's impl=auto runs
`dense` or `reference` instead (impl=fused fails, naming what can run).

The build survives its builder being killed at any moment (SIGTERM, SIGKILL): one process builds,
under a lock that the operating system releases when its owner dies (fcntl, through filelock), in
a private folder NAME/build-HOST-PID-TOKEN, and publishes the library by an atomic rename to
NAME/NAME.so, so a reader sees a whole library or none. The others wait for it, saying who builds
and since when, and import it; after $RNNBENCH_BUILD_LOCK_TIMEOUT_S seconds (default 900) they give
up and fall back to `dense` with a warning. Nothing waits on a lock file a dead process left
behind, and the next builder removes the private folders of dead builders of its host. The build
is announced on stderr (one line when it starts, one when it ends); `last_build_seconds()` says
how long this process spent on it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import platform
import secrets
import shutil
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
    key = "\n".join(
        [
            SOURCE.read_text(),
            " ".join(CFLAGS),
            _cpu_signature(),
            sys.implementation.cache_tag,
            torch.__version__,
        ]
    )
    return "rnnbench_eurnn_fused_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def build_folder(name: str) -> Path:
    """The shared cache folder of build `name`: it holds the published library NAME.so, the build
    lock and, while a build runs, the builder's private folder."""
    from torch.utils import cpp_extension

    return (
        Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root())
        / name
    )


# How long a loader waits for another process's build before it gives up (and the cell runs dense).
LOCK_TIMEOUT_ENV = "RNNBENCH_BUILD_LOCK_TIMEOUT_S"
DEFAULT_LOCK_TIMEOUT_S = 900.0  # a build takes about a minute; a slow shared filesystem, more
LOCK_NOTICE_EVERY_S = 60.0  # while waiting, say who holds the lock this often
PRIVATE_PREFIX = "build-"  # private build folders: build-HOST-PID-TOKEN

_last_build_seconds = 0.0


class BuildLockTimeout(RuntimeError):
    """Another process held the build lock for longer than RNNBENCH_BUILD_LOCK_TIMEOUT_S."""


def announce(message: str) -> None:
    """One line about the build on stderr (replace it to send the lines elsewhere)."""
    print(f"rnnbench: {message}", file=sys.stderr, flush=True)


def last_build_seconds() -> float:
    """How long `load()` spent on a build in this process: building the kernel, or waiting for
    another process to build it; 0.0 when the library was loaded from the cache (or `load()` has
    not run). `load()` runs once per process, so this is set once."""
    return _last_build_seconds


def _import(name: str, library: Path):
    spec = importlib.util.spec_from_file_location(name, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lock_timeout() -> float:
    text = os.environ.get(LOCK_TIMEOUT_ENV, "")
    try:
        return float(text) if text.strip() else DEFAULT_LOCK_TIMEOUT_S
    except ValueError:
        raise ValueError(f"{LOCK_TIMEOUT_ENV} must be a number of seconds, not {text!r}") from None


def _owner_file(folder: Path) -> Path:
    return folder / "build.lock.owner"


def _holder(folder: Path) -> str:
    """Who holds the build lock, as its owner wrote it: host, pid and since when."""
    try:
        host, pid, since = _owner_file(folder).read_text().split()[:3]
        start = float(since)
    except (OSError, ValueError):
        return "a process that has not said who it is yet"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start))
    return f"host {host} pid {pid} since {when} ({time.time() - start:.0f} s ago)"


def _alive(pid: int) -> bool:
    """Whether process `pid` runs: a zombie (ended, not yet reaped by its parent) does not."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # (someone else's process, where it cannot be read)
        return True


def _remove_dead_builders(folder: Path) -> None:
    """Remove the private build folders of processes of this host that no longer run (killed
    while they built). Called with the build lock held, so no live builder is writing here."""
    host = platform.node()
    for entry in folder.glob(PRIVATE_PREFIX + "*"):
        try:
            owner, pid, _ = entry.name[len(PRIVATE_PREFIX) :].rsplit("-", 2)
            dead = owner == host and not _alive(int(pid))
        except ValueError:
            continue
        if dead:
            shutil.rmtree(entry, ignore_errors=True)


def _acquire(lock, folder: Path) -> None:
    """Takes the build lock, waiting at most RNNBENCH_BUILD_LOCK_TIMEOUT_S and saying who holds it
    while waiting (BuildLockTimeout after that). The lock is an fcntl lock: the operating system
    releases it when its owner dies, however it dies, so a lock is never left behind."""
    import filelock

    timeout = _lock_timeout()
    start = time.monotonic()
    notice_at = 0.0
    attempt = 0.0  # the first attempt does not wait: whoever waits says so at once
    while True:
        try:
            lock.acquire(timeout=attempt, poll_interval=0.1)
            return
        except filelock.Timeout:
            waited = time.monotonic() - start
            if waited >= timeout:
                raise BuildLockTimeout(
                    f"gave up after waiting {waited:.0f} s ({LOCK_TIMEOUT_ENV}={timeout:g}) for "
                    f"the build lock {folder / 'build.lock'}, held by {_holder(folder)}"
                ) from None
            if waited >= notice_at:
                announce(
                    f"waiting for the fused EURNN kernel, built by {_holder(folder)} (lock "
                    f"{folder / 'build.lock'}; giving up after {LOCK_TIMEOUT_ENV}={timeout:g} s)"
                )
                notice_at = waited + LOCK_NOTICE_EVERY_S
            attempt = max(0.0, min(timeout - waited, 1.0))


def _build(name: str, folder: Path, library: Path):
    """Builds the library in a private folder of this process and publishes it as `library` by
    an atomic rename: a reader sees the whole library or none. Call with the build lock held."""
    from torch.utils import cpp_extension

    _remove_dead_builders(folder)
    private = folder / f"{PRIVATE_PREFIX}{platform.node()}-{os.getpid()}-{secrets.token_hex(4)}"
    private.mkdir()
    announce(f"building the fused EURNN kernel (once per machine, about a minute) in {private}")
    start = time.monotonic()
    try:
        # torch renames a build it has already made in this process with other arguments
        # (NAME_v1); this one must be NAME (its module's init function has that name).
        getattr(getattr(cpp_extension, "JIT_EXTENSION_VERSIONER", None), "entries", {}).pop(
            name, None
        )
        # Build there (torch's own lock file, which waits forever on a lock left by a killed
        # process, is in the private folder, where no one else waits); is_python_module=False
        # only loads the library, its module is imported from the published path.
        cpp_extension.load(
            name=name,
            sources=[str(SOURCE)],
            extra_cflags=CFLAGS,
            build_directory=str(private),
            verbose=False,
            is_python_module=False,
        )
        os.replace(private / f"{name}.so", library)  # atomic: readers see the whole library or none
    finally:
        shutil.rmtree(private, ignore_errors=True)
    announce(f"built the fused EURNN kernel in {time.monotonic() - start:.0f} s: {library}")


@functools.cache
def load():
    """The compiled kernel module, or None (with one warning) where it cannot be built.

    A published library is imported directly. Otherwise one process builds it, under a lock
    that dies with its owner (so a builder killed by SIGTERM or SIGKILL never blocks the others),
    in a private folder, and publishes the finished library with an atomic rename; the others
    wait for it (at most RNNBENCH_BUILD_LOCK_TIMEOUT_S, printing who builds) and then import it."""
    global _last_build_seconds
    import filelock

    name = build_name()
    folder = build_folder(name)
    library = folder / f"{name}.so"
    _last_build_seconds = 0.0
    if library.exists():
        try:
            return _import(name, library)
        except ImportError:  # a library that does not load (torch changed?): build it again below
            pass
    start = time.monotonic()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(folder / "build.lock"))
        _acquire(lock, folder)
        try:
            _owner_file(folder).write_text(f"{platform.node()} {os.getpid()} {time.time():.3f}\n")
            if library.exists():  # published while this process waited
                try:
                    return _import(name, library)
                except ImportError:
                    pass
            _build(name, folder, library)
            return _import(name, library)
        finally:
            _owner_file(folder).unlink(missing_ok=True)
            lock.release()
    except Exception as error:  # no compiler, no ninja, a failed build: all mean "use dense"
        if isinstance(error, BuildLockTimeout):
            reason = f"{error}; set {LOCK_TIMEOUT_ENV} to wait longer"
        else:
            lines = str(error).strip().splitlines() or [type(error).__name__]
            first_line = next((ln for ln in lines if "error:" in ln), lines[0])[:300]
            reason = (
                f"{type(error).__name__}: {first_line}; the kernel needs a C++ compiler (g++ or "
                "clang++) and ninja, see README.md"
            )
        warnings.warn(
            f"rnnbench could not build the fused EURNN kernel ({reason}). EURNN with impl=auto "
            "runs 'dense' (with its steps in Python, slower) or 'reference' instead; impl=fused "
            "cannot run.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    finally:
        _last_build_seconds = time.monotonic() - start


def buildable() -> bool:
    """Whether `load()` can give the kernel, judged without building it: it loaded already, or its
    library is built, or a C++ compiler ($CXX, default c++) is on PATH to build it."""
    info = getattr(load, "cache_info", None)  # (None: load replaced, as tests do)
    if info is None or info().currsize:
        return load() is not None
    return (build_folder(build_name()) / f"{build_name()}.so").exists() or shutil.which(
        os.environ.get("CXX", "c++")
    ) is not None


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
    return (
        perm,
        torch.tensor(segments, dtype=torch.long).reshape(-1, 4),
        torch.tensor(layers, dtype=torch.long),
    )


class FusedRecurrence(torch.autograd.Function):
    """All steps of the EURNN recurrence in the compiled kernel.

    x: (B, T, I), w: (N, I), b: (N,), theta/phi: (mixers,), omega: (N,) or empty, beta: (N,),
    h0: (B, 2N) [Re, Im] or None -> hs: (B, T, 2N) [Re h, Im h], or its real half when
    `real_only`. `modrelu` is (notebook, eps): the modReLU's form (False: smooth) and epsilon.
    Only hs is kept for backward; the kernel recomputes the rest.
    """

    @staticmethod
    def forward(ctx, x, w, b, theta, phi, omega, beta, h0, kernel, lay, real_only, modrelu):
        perm, segments, layers = lay
        threads = torch.get_num_threads()
        hs = kernel.forward(
            x, w, b, theta, phi, omega, beta, *modrelu, h0, perm, segments, layers, threads
        )
        ctx.save_for_backward(x, w, b, theta, phi, omega, beta, h0, hs)
        ctx.kernel, ctx.lay, ctx.real_only, ctx.modrelu = kernel, lay, real_only, modrelu
        return hs[..., : w.shape[0]] if real_only else hs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out):
        x, w, b, theta, phi, omega, beta, h0, hs = ctx.saved_tensors
        perm, segments, layers = ctx.lay
        grads = ctx.kernel.backward(
            g_out,
            x,
            w,
            b,
            theta,
            phi,
            omega,
            beta,
            *ctx.modrelu,
            h0,
            hs,
            perm,
            segments,
            layers,
            ctx.real_only,
            ctx.needs_input_grad[0],
            torch.get_num_threads(),
        )
        g_x, g_w, g_b, g_theta, g_phi, g_omega, g_beta, g_h0 = grads
        return (
            g_x if ctx.needs_input_grad[0] else None,
            g_w,
            g_b,
            g_theta,
            g_phi,
            g_omega if omega.numel() else None,
            g_beta,
            g_h0 if h0 is not None else None,
            None,
            None,
            None,
            None,
        )
