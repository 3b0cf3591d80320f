"""The fused EURNN kernel's first build, interrupted: a process killed while it builds (SIGTERM
from a timeout or scancel, SIGKILL) must not make later runs wait forever, and a build lock held
by a process that is alive but stuck must make a loader say who holds it and give up after
RNNBENCH_BUILD_LOCK_TIMEOUT_S, not hang.

Every test builds in its own TORCH_EXTENSIONS_DIR (a tmp_path): the real cache is never touched.
A build takes 30-60 s on two cores; the kill tests build twice each (once interrupted early)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rnnbench.cells import _eurnn_fused

BUILD_S = 240  # one whole build on a slow, busy two-core machine, with room to spare

LOADER = textwrap.dedent("""
    import time, warnings
    t0 = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from rnnbench.cells import _eurnn_fused as f
        kernel = f.load()
    print("KERNEL", getattr(kernel, "__name__", kernel))
    print("BUILD_S", getattr(f, "last_build_seconds", lambda: "n/a")())
    print("LOAD_S", round(time.monotonic() - t0, 1))
    for w in caught:
        print("WARNING", w.message)
""")


@pytest.fixture
def loader():
    """loader(ext, **env): a fresh process that loads the kernel with its cache in `ext`, in a
    session of its own (so that a signal reaches it and the compiler it started, as scancel's
    would). Whatever is still running at the end of the test is killed."""
    started = []

    def start(ext: Path, **env) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", LOADER],
            env={**os.environ, "TORCH_EXTENSIONS_DIR": str(ext), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:  # (not yet reaped: its pid is still its own)
            os.killpg(process.pid, signal.SIGKILL)  # and the compiler it started
            process.communicate()


def finish(process: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """stdout and stderr of `process`; a process that is not done within `timeout` is killed
    (with its session) and fails the test."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(
            f"loading the kernel did not finish within {timeout} s (hung?)\n"
            f"stdout: {out}\nstderr: {err[-3000:]}"
        )
    assert process.returncode == 0, err
    return out, err


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process ended before {what}: {process.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.05)


def building(ext: Path) -> bool:
    """A build is under way in `ext`: torch has written its ninja file (in whatever folder)."""
    return any(ext.rglob("build.ninja"))


def value(out: str, key: str) -> str:
    return next(line.split(" ", 1)[1] for line in out.splitlines() if line.startswith(key + " "))


@pytest.mark.slow
@pytest.mark.fused
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_process_killed_while_building_does_not_block_later_loads(tmp_path, loader, sig, request):
    if sig == signal.SIGKILL and not request.config.getoption("--soak"):
        pytest.skip(
            "a second full build of the kernel (a minute or two): with --soak only;"
            " SIGTERM covers the case"
        )
    ext = tmp_path / "ext"
    first = loader(ext)
    wait_for(lambda: building(ext), 120, "build under way", first)
    os.killpg(first.pid, sig)  # the process and its compiler, as scancel or `timeout` would
    first.communicate(timeout=60)
    assert first.returncode == -sig

    # Two fresh processes at once: both get the kernel, in bounded time; one of them builds it.
    second, third = loader(ext), loader(ext)
    (out2, err2), (out3, err3) = finish(second, BUILD_S), finish(third, BUILD_S)
    name = _eurnn_fused.build_name()
    assert value(out2, "KERNEL") == name and value(out3, "KERNEL") == name, (out2, out3)
    announcements = [err for err in (err2, err3) if "building the fused EURNN kernel" in err]
    assert len(announcements) == 1, (err2, err3)
    assert "built the fused EURNN kernel in" in announcements[0]
    build_times = sorted(float(value(out, "BUILD_S")) for out in (out2, out3))
    assert build_times[1] > 0  # (the other waited for that build: its own time, maybe 0)

    folder = ext / name
    assert (folder / f"{name}.so").is_file()
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith("build-")]
    assert leftovers == []  # the killed builder's private folder is gone, and the builder's own

    # From now on, the library is loaded from the cache: no build, no announcement.
    out, err = finish(loader(ext), 60)
    assert value(out, "KERNEL") == name and float(value(out, "BUILD_S")) == 0.0
    assert "building" not in err


@pytest.mark.slow
def test_a_lock_held_by_a_stopped_process_makes_a_loader_give_up_with_the_holder(tmp_path, loader):
    """A builder that is alive but stuck (here: its compiler never returns, then it is stopped
    with SIGSTOP) holds the build lock: another loader says who holds it and since when, and
    gives up after RNNBENCH_BUILD_LOCK_TIMEOUT_S with the usual fallback to dense."""
    ext = tmp_path / "ext"
    started = tmp_path / "compiler-started"
    stuck = tmp_path / "stuck-compiler"
    stuck.write_text(f"#!/bin/sh\ntouch {started}\nexec sleep 1000\n")
    stuck.chmod(0o755)
    holder = loader(ext, CXX=str(stuck))
    wait_for(started.exists, 120, "call of the compiler", holder)
    os.kill(holder.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    out, err = finish(loader(ext, RNNBENCH_BUILD_LOCK_TIMEOUT_S="3"), 60)
    elapsed = time.monotonic() - t0
    assert value(out, "KERNEL") == "None"  # it gave up: the cell runs dense
    assert f"pid {holder.pid}" in err and "since" in err, (
        err
    )  # who holds the lock, printed while waiting
    warning = value(out, "WARNING")
    assert "RNNBENCH_BUILD_LOCK_TIMEOUT_S" in warning and f"pid {holder.pid}" in warning, warning
    assert elapsed < 45, elapsed  # Python and torch start in a few seconds, then 3 s of waiting


# The same protocol in this process, with torch's build replaced by a stand-in: no compiler, fast.


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    """load() with its cache in tmp_path, where "building" writes a file and "importing" reads it
    back; returns the list of builds made."""
    from torch.utils import cpp_extension

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    builds = []

    def build(name, build_directory, **kwargs):
        private = Path(build_directory)
        builds.append(private)
        assert private.parent == _eurnn_fused.build_folder(name) and private.name.startswith(
            "build-"
        )
        (private / f"{name}.so").write_text("library")
        return None

    monkeypatch.setattr(cpp_extension, "load", build)
    monkeypatch.setattr(
        _eurnn_fused, "_import", lambda name, library: f"module from {Path(library).read_text()}"
    )
    _eurnn_fused.load.cache_clear()
    yield builds
    _eurnn_fused.load.cache_clear()


def test_a_build_is_announced_published_whole_and_then_loaded_from_the_cache(fake_build, capsys):
    assert _eurnn_fused.load() == "module from library"
    err = capsys.readouterr().err
    assert "building the fused EURNN kernel (once per machine, about a minute) in" in err
    assert "built the fused EURNN kernel in" in err
    assert _eurnn_fused.last_build_seconds() > 0
    folder = _eurnn_fused.build_folder(_eurnn_fused.build_name())
    left = sorted(
        p.name for p in folder.iterdir() if p.name != "build.lock"
    )  # (filelock may keep its file)
    assert left == [f"{_eurnn_fused.build_name()}.so"]  # no private folder, no owner file

    _eurnn_fused.load.cache_clear()
    assert _eurnn_fused.load() == "module from library"
    assert len(fake_build) == 1 and _eurnn_fused.last_build_seconds() == 0.0
    assert capsys.readouterr().err == ""


def test_a_failed_build_leaves_no_private_folder_and_no_lock(fake_build, monkeypatch):
    from torch.utils import cpp_extension

    def failing(name, build_directory, **kwargs):
        (Path(build_directory) / "half-written.o").write_text("")
        raise RuntimeError("Error building extension: eurnn_fused.cpp:1: error: something")

    monkeypatch.setattr(cpp_extension, "load", failing)
    with pytest.warns(
        RuntimeWarning, match="could not build the fused EURNN kernel .*error: something"
    ):
        assert _eurnn_fused.load() is None
    folder = _eurnn_fused.build_folder(_eurnn_fused.build_name())
    assert [p.name for p in folder.iterdir() if p.name != "build.lock"] == []
    import filelock

    free = filelock.FileLock(str(folder / "build.lock"))
    free.acquire(timeout=0)  # released: taken at once
    free.release()


def test_a_library_published_while_waiting_is_imported_not_built_again(
    fake_build, tmp_path, capsys
):
    """Another process holds the lock and publishes the library: the waiting loader, once it gets
    the lock, imports that library instead of building its own."""
    import threading

    import filelock

    name = _eurnn_fused.build_name()
    folder = _eurnn_fused.build_folder(name)
    folder.mkdir(parents=True)
    other = filelock.FileLock(str(folder / "build.lock"), thread_local=False)  # its own open file
    other.acquire()
    (folder / "build.lock.owner").write_text("otherhost 4242 1700000000.0\n")

    def publish():
        (folder / "tmp").write_text("their library")
        os.replace(folder / "tmp", folder / f"{name}.so")
        other.release()

    timer = threading.Timer(1.0, publish)
    timer.start()
    try:
        assert _eurnn_fused.load() == "module from their library"
    finally:
        timer.join()
    assert fake_build == []
    assert (
        "waiting for the fused EURNN kernel, built by host otherhost pid 4242 since"
        in capsys.readouterr().err
    )
    assert _eurnn_fused.last_build_seconds() >= 0.5  # the wait counts as build time


def test_private_folders_of_dead_builders_of_this_host_are_removed(tmp_path):
    import platform

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = platform.node()
    names = [
        f"build-{host}-{dead.pid}-0a1b",
        f"build-{host}-{os.getpid()}-2c3d",
        f"build-other-host-{dead.pid}-4e5f",
        "build-not-a-builder",
    ]
    for name in names:
        (tmp_path / name).mkdir()
    _eurnn_fused._remove_dead_builders(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])


def test_the_lock_timeout_must_be_a_number(monkeypatch):
    monkeypatch.setenv("RNNBENCH_BUILD_LOCK_TIMEOUT_S", "soon")
    with pytest.raises(
        ValueError, match="RNNBENCH_BUILD_LOCK_TIMEOUT_S must be a number of seconds"
    ):
        _eurnn_fused._lock_timeout()
