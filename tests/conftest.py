import functools
import http.server
import os
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


def pytest_collection_modifyitems(config, items):
    """Tests marked `fused` need the compiled EURNN kernel: skipped, with the reason, where no
    C++ compiler is found. Where one is, a kernel that fails to build fails them."""
    if _has_compiler():
        return
    skip = pytest.mark.skip(reason="no C++ compiler: the fused EURNN kernel cannot be built here")
    for item in items:
        if "fused" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    """Tests keep rnnbench's caches (linear baselines) out of the user's cache folder."""
    import os
    import tempfile

    os.environ.setdefault("RNNBENCH_CACHE", tempfile.mkdtemp(prefix="rnnbench-test-cache-"))


def pytest_addoption(parser):
    parser.addoption(
        "--soak",
        action="store_true",
        help="run the fault tests' long loops (60 kills of `rnnbench run` instead of 8)",
    )


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
