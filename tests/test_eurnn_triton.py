"""impl="triton": the Triton kernels, run by Triton's interpreter on CPU tensors (tests/conftest.py
sets TRITON_INTERPRET=1), against the reference path to 1e-10 in float64 on random meshes, with
gradcheck, determinism and blocks of sequences; every kernel configuration that `auto` can choose
compiled for the H200 (sm_90a) with no register spills; and where impl="triton" cannot run."""

import json
import os
import subprocess
import sys

import pytest
import torch
from test_eurnn_fused import NOTEBOOK_CASES, assert_bitwise_repeatable, random_case, run

from rnnbench.cells import _eurnn_triton
from rnnbench.cells.eurnn import EURNN, choose_impl, mixer_pairs

pytest.importorskip("triton")
pytestmark = pytest.mark.triton
# The tests on CPU tensors need the interpreter; with a GPU (tests/conftest.py) the compiled kernels
# run instead, and the cuda tests at the end check them.
interpreter = pytest.mark.skipif(
    not _eurnn_triton.interpreted(),
    reason="the compiled Triton kernels run here (a GPU); the cuda tests check them",
)


def assert_triton_equals_reference(case: dict, seed: int) -> None:
    """Outputs and every gradient (parameters, x, h0) of triton and reference, to
    1e-10 in float64."""
    y_ref, g_ref = run("reference", case, seed)
    y, g = run("triton", case, seed)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.slow
@interpreter
@pytest.mark.parametrize("seed", range(12))
def test_triton_equals_reference_on_random_meshes(seed):
    case = random_case(torch.Generator().manual_seed(1000 + seed))
    assert_triton_equals_reference(case, seed)


@interpreter
@pytest.mark.parametrize(
    "case", NOTEBOOK_CASES, ids=lambda c: "-".join(map(str, c["kwargs"].values()))
)
def test_triton_equals_reference_with_the_notebook_options(case):
    assert_triton_equals_reference(case, 6)


@interpreter
def test_gradcheck_on_a_tiny_mesh_with_every_input():
    torch.manual_seed(0)
    cell = EURNN(2, 4, capacity=3, diag_phase=True, output="complex", impl="triton").double()
    names = [name for name, _ in cell.named_parameters()]
    x = torch.randn(2, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = (0.5 * torch.randn(2, 4, dtype=torch.complex128)).requires_grad_()

    def f(x, h0, *params):
        named = dict(zip(names, params, strict=True))
        return torch.func.functional_call(cell, named, (x,), {"h0": h0})

    params = [p.detach().clone().requires_grad_() for p in cell.parameters()]
    # fast mode: the Jacobian along random directions, two passes per input rather than per entry
    assert torch.autograd.gradcheck(f, (x, h0, *params), eps=1e-6, atol=1e-7, fast_mode=True)


@interpreter
@pytest.mark.parametrize("rows", [2, 4])
def test_blocks_of_several_sequences_and_a_ragged_last_block(rows, monkeypatch):
    """Programs of `rows` sequences (block_rows gives several from a batch of 256 on; forced here,
    as the interpreter runs programs one after another) and a last program with fewer."""
    monkeypatch.setattr(_eurnn_triton, "block_rows", lambda batch, n: rows)
    case = {
        "kwargs": dict(capacity=3, boundary="open", output="complex"),
        "batch": rows + 1,
        "steps": 3,
        "inputs": 2,
        "n": 8,
    }
    assert_triton_equals_reference(case, 4)


@interpreter
def test_float32_matches_reference_to_float32_rounding():
    torch.manual_seed(1)
    x = torch.rand(3, 12, 1)
    outs = []
    for impl in ("reference", "triton"):
        torch.manual_seed(2)
        cell = EURNN(1, 32, capacity=4, diag_phase=True, impl=impl)
        y = cell(x)
        y[:, -1].sum().backward()
        assert y.dtype == torch.float32
        outs.append([y.detach()] + [p.grad for p in cell.parameters()])
    for a, b in zip(*outs, strict=True):
        assert torch.linalg.vector_norm(a - b) <= 1e-5 * torch.linalg.vector_norm(b)


@interpreter
def test_the_same_input_gives_bitwise_identical_results():
    assert_bitwise_repeatable("triton", batch=3, steps=6)


def test_tables_list_each_layers_mixers_and_mark_empty_slots():
    table = _eurnn_triton.tables(mixer_pairs(6, "tunable", 3, "open"), 6)
    assert table.shape == (3, 3, 4) and table.dtype == torch.int32  # N/2 = 3 slots, rounded up to 4
    assert table[0, 0, :3].tolist() == [0, 2, 4] and table[1, 0, :3].tolist() == [1, 3, 5]
    assert table[0, 1, :2].tolist() == [1, 3] and table[1, 1, :2].tolist() == [
        2,
        4,
    ]  # open: 2 mixers
    assert table[2].tolist() == [[0, 1, 2, -1], [3, 4, -1, -1], [5, 6, 7, -1]]


def test_block_rows_depends_on_the_shapes_only_and_bounds_a_programs_units():
    assert _eurnn_triton.block_rows(100, 256) == 1  # 100 programs for the default batch
    assert _eurnn_triton.block_rows(300, 10) == 2  # N rounds up to 16
    assert _eurnn_triton.block_rows(10**6, 64) == 4  # at most 256 units a program
    assert _eurnn_triton.block_rows(10**6, 16) == 16  # at most 16 sequences
    assert _eurnn_triton.block_rows(10**6, 8) == 1  # below N = 16, one
    assert (
        _eurnn_triton.block_rows(100_000, 1024) == 1
        and _eurnn_triton.block_rows(100_000, 4096) == 1
    )
    assert [_eurnn_triton.num_warps(1, n) for n in (2, 128, 256, 512, 1000, 4096)] == [
        4,
        4,
        8,
        16,
        16,
        16,
    ]


def test_triton_cannot_run_on_cpu_outside_the_interpreter(monkeypatch):
    monkeypatch.setattr(_eurnn_triton, "interpreted", lambda: False)
    cell = EURNN(1, 8, impl="triton")
    with pytest.raises(
        ValueError,
        match=r"impl='triton' cannot run on cpu: the Triton kernels run on CUDA devices"
        r".*Implementations that can: reference, dense",
    ):
        cell(torch.zeros(1, 2, 1))
    assert choose_impl("auto", torch.device("cpu"), 256, 2) != "triton"


def test_the_interpreter_mode_is_the_one_the_kernels_were_defined_in(monkeypatch):
    """Triton fixes it when the kernels are defined; a later change of TRITON_INTERPRET
    changes nothing."""
    _eurnn_triton._kernels()  # defined now (if not before), in the session's mode
    mode = _eurnn_triton.interpreted()
    monkeypatch.setenv("TRITON_INTERPRET", "0" if mode else "1")
    assert _eurnn_triton.interpreted() == mode
    if mode:
        assert _eurnn_triton.unavailable(torch.device("cpu")) is None
        assert "defined for its interpreter" in _eurnn_triton.unavailable(torch.device("cuda"))


def test_auto_on_cuda_is_triton_for_shallow_meshes_where_triton_is_installed_else_dense(
    monkeypatch,
):
    monkeypatch.setattr(_eurnn_triton, "interpreted", lambda: False)  # as on a GPU machine
    assert choose_impl("auto", torch.device("cuda"), 256, 2) == "triton"
    assert choose_impl("auto", torch.device("cuda"), 1024, 16) == "triton"
    assert (
        choose_impl("auto", torch.device("cuda"), 64, 64) == "dense"
    )  # full capacity: 64 barriers a step
    assert (
        choose_impl("auto", torch.device("cuda"), 2048, 2) == "dense"
    )  # beyond the compile-checked sizes
    monkeypatch.setattr(_eurnn_triton, "_kernels", lambda: None)  # as without Triton
    assert choose_impl("auto", torch.device("cuda"), 256, 2) == "dense"
    with pytest.raises(
        ValueError, match="impl='triton' cannot run on cuda: Triton is not installed"
    ):
        choose_impl("triton", torch.device("cuda"), 256, 2)


# Every configuration of the kernels that a forward or backward pass can launch, as `auto` chooses
# it on CUDA: the kernels' code depends on the block shape, the flags and the dtype, not on the mesh
# (its tables are data). N = 2..1024 at a batch of 100 (1 row per program) and of 10^6 (the most
# rows a program takes), every flag set (the largest code), float32 and float64.
COMPILE = (
    "import json; from rnnbench.cells import _eurnn_triton as t; "
    "print(json.dumps(t.sm90_report(t.launch_shapes())))"
)


@pytest.mark.slow
def test_every_kernel_configuration_compiles_for_the_h200_without_spills():
    environment = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run(
        [sys.executable, "-c", COMPILE],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.splitlines()[-1])
    shapes = _eurnn_triton.launch_shapes()
    assert (
        len(shapes) == 14
        and (1, 1024) in shapes
        and (16, 16) in shapes
        and len(report) == len(shapes) * 2 * 2
    )
    for entry in report:
        where = f"{entry['kernel']} {entry['dtype']} rows={entry['rows']} N={entry['block_n']}"
        assert entry["returncode"] == 0, (where, entry["ptxas"])
        assert entry["registers"] and entry["spill_stores"] == 0 and entry["spill_loads"] == 0, (
            where,
            entry["ptxas"],
        )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize(
    "n, batch, kwargs",
    [
        (
            10,
            300,
            dict(capacity=3, boundary="open", diag_phase=True, output="complex"),
        ),  # 2 sequences a program
        (256, 300, dict(capacity=2, output="real")),
        (256, 7, dict(style="fft", diag_phase=True, output="abs", modrelu="notebook")),
    ],
)
def test_the_compiled_kernels_equal_reference_on_the_gpu_in_float64(n, batch, kwargs):
    """On a GPU: the compiled kernels (races would show here, never in the interpreter) against the
    reference path on the same GPU, outputs and every gradient, float64."""
    device = torch.device("cuda")
    results = []
    for impl in ("reference", "triton"):
        torch.manual_seed(5)
        cell = EURNN(3, n, impl=impl, **kwargs).double().to(device)
        x = torch.randn(batch, 9, 3, dtype=torch.float64, device=device, requires_grad=True)
        h0 = (0.5 * torch.randn(batch, n, dtype=torch.complex128, device=device)).requires_grad_()
        y = cell(x, h0=h0)
        assert cell.last_impl == impl
        weights = torch.randn(
            y.shape, dtype=y.dtype, device=device, generator=torch.Generator(device).manual_seed(1)
        )
        grads = torch.autograd.grad((y * weights).sum(), [*cell.parameters(), x, h0])
        results.append((y, grads))
    (y_ref, g_ref), (y, g) = results
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
