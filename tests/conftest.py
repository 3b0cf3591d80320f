import functools
import http.server
import os
import pathlib
import re
import threading

import torch

# Without a GPU, impl="triton" runs its Triton kernels in Triton's interpreter on CPU tensors in the
# tests. Triton reads TRITON_INTERPRET when a kernel is defined (the first time impl="triton" runs),
# so it is set before any test starts. With a GPU the compiled kernels run (the cuda tests check
# them) and the interpreter's tests skip; TRITON_INTERPRET in the environment decides over both.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

# Every cell test runs on the CPU, and on CUDA where a GPU is present (marked `cuda`).
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
        ],
    ),
]


@pytest.fixture(autouse=True)
def _logging_as_a_library_finds_it():
    """Each test starts and ends with the `rnnbench` logger as library use finds it (no handler of
    rnnbench.logs, propagating, so that caplog sees its records) and Python's warnings shown
    Python's way: a CLI test configures both for its invocation's stderr, which is gone after it."""
    import logging
    import warnings

    def reset():
        logger = logging.getLogger("rnnbench")
        for handler in [h for h in logger.handlers if getattr(h, "rnnbench", False)]:
            logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True

    showwarning = warnings.showwarning
    reset()
    yield
    reset()
    warnings.showwarning = showwarning


def invoke(*args, catch_exceptions=False, **kwargs):
    """`rnnbench ARGS` in this process, through click's CliRunner: each argument may be a path or a
    number. The one way tests run the CLI in-process (`from conftest import invoke`; pytest puts
    tests/ on sys.path). An exception that escapes the CLI fails the test with its traceback rather
    than turning into an exit code: pass catch_exceptions=True where that is what is tested."""
    from click.testing import CliRunner

    from rnnbench.cli import main

    return CliRunner().invoke(
        main, [str(arg) for arg in args], catch_exceptions=catch_exceptions, **kwargs
    )


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """4x4 'digits' (16-step sequences) in MNIST's four files: 60 train, 12 test; the class is
    where the bright pixel is, so it can be learned."""
    import hashlib

    import numpy as np

    from rnnbench.data import DataFile, write_idx
    from rnnbench.data import mnist as mnist_data

    def sha256_of_idx(array):
        header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
        return hashlib.sha256(header + array.tobytes()).hexdigest()

    rng = np.random.default_rng(0)
    folder, files = tmp_path / "data", {}
    folder.mkdir()
    for split, n in (("train", 60), ("test", 12)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 4, 4)).astype(np.uint8)
        images.reshape(n, 16)[np.arange(n), labels] = 255
        for key, array in ((f"{split}_images", images), (f"{split}_labels", labels)):
            name = mnist_data.MNIST_FILES[key].name
            write_idx(folder / f"{name}.gz", array)
            files[key] = DataFile(name, sha256_of_idx(array))
    monkeypatch.setattr(mnist_data, "MNIST_FILES", files)
    return folder


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture
def scratch_cells(monkeypatch):
    """The cell registry, restored after the test: register freely inside it."""
    from rnnbench.registry import CELLS

    CELLS.names()  # the built-ins are in before the copy is taken
    monkeypatch.setattr(CELLS, "_entries", dict(CELLS._entries))
    return CELLS


@pytest.fixture
def flip_task(monkeypatch):
    """The task `flip-test` (tests/fixtures/flip_task.py), registered for this test only, so that
    tests which list every task never see it."""
    import importlib
    import pathlib
    import sys

    from rnnbench.registry import TASKS

    TASKS.names()  # the built-ins are in before the copy is taken
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))
    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).parent / "fixtures"))
    if "flip_task" in sys.modules:
        importlib.reload(sys.modules["flip_task"])  # (registers it again, into this test's copy)
    else:
        importlib.import_module("flip_task")


def _has_compiler() -> bool:
    import os
    import shutil

    return shutil.which(os.environ.get("CXX", "c++")) is not None


# Tests that take long because of what they prove: real processes killed and restarted, real waits
# (heartbeats, lock time-outs), kernel builds in fresh folders, SLURM jobs, a browser, or anything
# over about SLOW_S seconds on two cores. `python -m pytest` leaves them out and answers in minutes;
# `-m slow` runs just them, `--all` everything (CI's first pass), a test named by its node id runs
# whatever its marks. Marks that imply `slow`:
SLOW_MARKS = ("slow", "slurm", "browser")
SLOW_S = 10.0


def pytest_addoption(parser):
    parser.addoption(
        "--all",
        action="store_true",
        help="run the slow tests too (real processes, kills, waits, builds, SLURM, the browser)",
    )
    parser.addoption(
        "--soak",
        action="store_true",
        help="run the fault tests' long loops (60 kills of `rnnbench run` instead of 5, 20 rounds "
        "of overlapping sweeps instead of 1); implies --all",
    )


def _named(config) -> list[tuple[pathlib.Path, str]]:
    """The tests named by node id on the command line (tests/x.py::test_y[case]): (file, rest),
    the file made absolute as pytest makes item.path (symbolic links kept)."""
    named = []
    for arg in config.args:
        path, sep, rest = arg.partition("::")
        if sep:
            named.append((pathlib.Path(os.path.abspath(config.invocation_params.dir / path)), rest))
    return named


def _is_named(item, named) -> bool:
    """Whether the item is a test named on the command line, or one of its cases, or in a class
    so named."""
    name = item.nodeid.partition("::")[2]
    return any(
        item.path == path and (name == rest or name.startswith((rest + "[", rest + "::")))
        for path, rest in named
    )


def _runs_slow(config) -> bool:
    """--all, --soak, or a mark expression about the slow marks (-m slow, -m slurm, -m "not
    slow"): the expression decides. Other expressions (-m fused) keep the slow tests out."""
    expression = config.option.markexpr or ""
    return bool(
        config.getoption("--all")
        or config.getoption("--soak")
        or any(re.search(rf"\b{mark}\b", expression) for mark in SLOW_MARKS)
    )


_LEFT_OUT = pytest.StashKey[int]()
_OWN_CACHE = pytest.StashKey[str]()


def pytest_collection_modifyitems(config, items):
    """Marks slurm and browser tests slow and leaves the slow ones out unless asked for (see
    SLOW_MARKS). Tests marked `fused` need the compiled EURNN kernel: skipped, with the reason,
    where no C++ compiler is found. Where one is, a kernel that fails to build fails them."""
    for item in items:
        if any(mark in item.keywords for mark in SLOW_MARKS[1:]):
            item.add_marker(pytest.mark.slow)
    if not _runs_slow(config):
        named = _named(config)
        slow = [item for item in items if "slow" in item.keywords and not _is_named(item, named)]
        if slow:
            config.hook.pytest_deselected(items=slow)
            left_out = set(slow)
            items[:] = [item for item in items if item not in left_out]
            config.stash[_LEFT_OUT] = len(slow)
    if not _has_compiler():
        skip = pytest.mark.skip(
            reason="no C++ compiler: the fused EURNN kernel cannot be built here"
        )
        for item in items:
            if "fused" in item.keywords:
                item.add_marker(skip)


_unmarked_times: dict[str, float] = {}
# What the first test to need it pays for, once per session or machine, whatever it tests: the
# fused EURNN kernel's build, and a dataset's linear baseline (baselines.py, cached by data).
_first_use: dict[str, list[str]] = {}


@functools.cache
def _kernel_library() -> pathlib.Path:
    from rnnbench.cells import _eurnn_fused

    name = _eurnn_fused.build_name()
    return _eurnn_fused.build_folder(name) / f"{name}.so"


def _baselines() -> int:
    folder = pathlib.Path(os.environ["RNNBENCH_CACHE"], "baselines")
    return len(list(folder.glob("*.json"))) if folder.is_dir() else 0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Notes the tests that built the fused kernel or computed a linear baseline (in this process
    or a child), for the summary of slow tests."""
    kernel, baselines = _kernel_library().exists(), _baselines()
    yield
    paid = []
    if not kernel and _kernel_library().exists():
        paid.append("built the fused EURNN kernel")
    if _baselines() > baselines:
        paid.append("computed a linear baseline")
    if paid:
        _first_use[item.nodeid] = paid


def pytest_runtest_logreport(report):
    """Times each test that is not marked slow (setup, call and teardown together)."""
    if "slow" not in report.keywords:
        _unmarked_times[report.nodeid] = _unmarked_times.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter, config):
    """Names the tests outside `slow` that took over SLOW_S seconds: they belong in it, or should
    be made faster, for the default run to stay a few minutes' wait."""
    over = sorted(
        ((seconds, nodeid) for nodeid, seconds in _unmarked_times.items() if seconds > SLOW_S),
        reverse=True,
    )
    left_out = config.stash.get(_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(
            f"{left_out} slow tests left out (real processes, kills, waits, builds): "
            "`-m slow` runs them, `--all` everything"
        )
    if over:
        terminalreporter.section(f"tests not marked slow that took over {SLOW_S:g} s")
        for seconds, nodeid in over:
            paid = f" (it {' and '.join(_first_use[nodeid])})" if nodeid in _first_use else ""
            terminalreporter.write_line(f"{seconds:6.1f} s  {nodeid}{paid}")


def pytest_configure(config):
    """Tests keep rnnbench's caches (linear baselines) in a folder of their own, removed at the
    end, unless RNNBENCH_CACHE names one."""
    import os
    import tempfile

    if not os.environ.get("RNNBENCH_CACHE"):
        os.environ["RNNBENCH_CACHE"] = tempfile.mkdtemp(prefix="rnnbench-test-cache-")
        config.stash[_OWN_CACHE] = os.environ["RNNBENCH_CACHE"]


def pytest_unconfigure(config):
    import shutil

    if _OWN_CACHE in config.stash:
        shutil.rmtree(config.stash[_OWN_CACHE], ignore_errors=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1; yields (root folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=root)
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
