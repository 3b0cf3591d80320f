import pytest
import torch

# Every cell test runs on the CPU, and on CUDA where a GPU is present (marked `cuda`).
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda,
                                pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]),
]


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
