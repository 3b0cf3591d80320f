"""The fused EURNN kernel: the same function as the reference path, to 1e-10 in float64, on many
random meshes; its layout; determinism; and what happens where it cannot be built."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from rnnbench.cells import _eurnn_fused
from rnnbench.cells.eurnn import EURNN, mixer_pairs

pytestmark = pytest.mark.fused


def random_case(rng: torch.Generator) -> dict:
    """A random mesh (style, size, capacity up to full, boundary, diagonal phase), output mode,
    input width, batch and length."""
    pick = lambda options: options[torch.randint(len(options), (1,), generator=rng).item()]  # noqa: E731
    style = pick(["tunable", "tunable", "fft"])
    n = pick([2, 4, 8, 16]) if style == "fft" else pick([2, 4, 6, 10, 16])
    kwargs = dict(
        style=style, output=pick(["real", "abs", "complex"]), diag_phase=pick([False, True])
    )
    if style == "tunable":
        kwargs.update(
            capacity=int(torch.randint(1, n + 1, (1,), generator=rng)),
            boundary=pick(["periodic", "open"]),
        )
    shape = dict(batch=pick([1, 3, 5]), steps=pick([1, 2, 9]), inputs=pick([1, 3]), n=n)
    return {"kwargs": kwargs, **shape}


def run(impl: str, case: dict, seed: int):
    """Output and gradients (parameters, x, h0) of one implementation; the weights, data and the
    weighting of the output depend on `seed` only."""
    torch.manual_seed(seed)
    cell = EURNN(case["inputs"], case["n"], impl=impl, **case["kwargs"]).double()
    x = torch.randn(
        case["batch"], case["steps"], case["inputs"], dtype=torch.float64, requires_grad=True
    )
    h0 = (0.5 * torch.randn(case["batch"], case["n"], dtype=torch.complex128)).requires_grad_()
    y = cell(x, h0=h0)
    assert cell.last_impl == impl
    weights = torch.randn(y.shape, dtype=y.dtype)
    grads = torch.autograd.grad((y * weights).sum(), [*cell.parameters(), x, h0])
    return y, grads


@pytest.mark.parametrize("seed", range(40))
def test_fused_equals_reference_on_random_meshes(seed):
    case = random_case(torch.Generator().manual_seed(seed))
    y_ref, g_ref = run("reference", case, seed)
    y_fused, g_fused = run("fused", case, seed)
    torch.testing.assert_close(y_fused, y_ref, rtol=0, atol=1e-10)
    for a, b in zip(g_fused, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


NOTEBOOK_CASES = [  # the original notebook's options, alone and together, on a few meshes
    {
        "kwargs": dict(capacity=2, output="real", modrelu="notebook"),
        "batch": 3,
        "steps": 9,
        "inputs": 1,
        "n": 8,
    },
    {
        "kwargs": dict(
            capacity=5,
            output="complex",
            boundary="open",
            diag_phase=True,
            modrelu="notebook",
            init="notebook",
        ),
        "batch": 2,
        "steps": 7,
        "inputs": 3,
        "n": 10,
    },
    {
        "kwargs": dict(capacity=16, output="abs", diag_phase=True, init="notebook"),
        "batch": 5,
        "steps": 4,
        "inputs": 1,
        "n": 16,
    },
    {
        "kwargs": dict(style="fft", output="complex", modrelu="notebook"),
        "batch": 1,
        "steps": 9,
        "inputs": 2,
        "n": 8,
    },
]


@pytest.mark.parametrize(
    "case", NOTEBOOK_CASES, ids=lambda c: "-".join(map(str, c["kwargs"].values()))
)
def test_fused_equals_dense_and_reference_with_the_notebook_options(case):
    y_ref, g_ref = run("reference", case, seed=6)
    for impl in ("dense", "fused"):
        y, g = run(impl, case, seed=6)
        torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)
        for a, b in zip(g, g_ref, strict=True):
            assert torch.isfinite(a).all()
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("capacity, diag_phase", [(2, False), (16, True)])
def test_fused_equals_dense_at_benchmark_width_in_float32(capacity, diag_phase):
    torch.manual_seed(1)
    x = torch.rand(4, 50, 1)
    outs = []
    for impl in ("dense", "fused"):
        torch.manual_seed(2)
        cell = EURNN(1, 256, capacity=capacity, diag_phase=diag_phase, impl=impl)
        y = cell(x)
        y[:, -1].sum().backward()
        outs.append([y.detach()] + [p.grad for p in cell.parameters()])
    for a, b in zip(*outs, strict=True):  # float32 rounding differs; compare whole tensors in norm
        assert torch.linalg.vector_norm(a - b) <= 1e-5 * torch.linalg.vector_norm(b)


@pytest.mark.parametrize("modrelu", ["smooth", "notebook"])
def test_gradient_is_finite_where_the_state_is_zero(modrelu):
    """|z| = 0 exactly (zero state, zero input, zero bias): gradients finite and equal to the
    reference's, in both modReLU forms."""
    grads = {}
    for impl in ("reference", "dense", "fused"):
        torch.manual_seed(0)
        cell = EURNN(1, 8, capacity=2, impl=impl, modrelu=modrelu).double()
        with torch.no_grad():
            cell.input.bias.zero_()
            cell.mod_bias.fill_(0.1)  # the ReLU lets |z| = 0 through: the derivative there matters
        x = torch.zeros(2, 5, 1, dtype=torch.float64, requires_grad=True)
        y = cell(x)
        (y * torch.linspace(-1, 1, 8, dtype=torch.float64)).sum().backward()
        grads[impl] = [p.grad for p in cell.parameters()] + [x.grad]
        assert all(torch.isfinite(g).all() for g in grads[impl])
    for impl in ("dense", "fused"):  # relative: near z = 0 the smooth form's gain is 1 + 0.1 / 1e-6
        for a, b in zip(grads[impl], grads["reference"], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def assert_bitwise_repeatable(impl: str, batch: int, steps: int) -> None:
    """Two forward and backward passes on the same input give bitwise the same
    outputs and gradients."""
    torch.manual_seed(3)
    cell = EURNN(2, 16, capacity=4, impl=impl)
    x = torch.randn(batch, steps, 2)
    results = []
    for _ in range(2):
        cell.zero_grad()
        y = cell(x)
        y.pow(2).mean().backward()
        results.append([y.detach().clone()] + [p.grad.clone() for p in cell.parameters()])
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_same_input_gives_bitwise_identical_results():
    assert_bitwise_repeatable("fused", batch=7, steps=20)


def outputs_and_grads_with_threads(
    threads: int, impl: str, batch: int, dtype: torch.dtype, output: str
):
    """Output and gradients (parameters, x, h0) of one forward and backward pass run with
    torch.set_num_threads(threads); the thread count is restored after."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(5)
        cell = EURNN(2, 16, capacity=3, diag_phase=True, output=output, impl=impl).to(dtype)
        x = torch.randn(batch, 12, 2, dtype=dtype, requires_grad=True)
        h0 = (0.5 * torch.randn(batch, 16, dtype=dtype.to_complex())).requires_grad_()
        y = cell(x, h0=h0)
        assert cell.last_impl == impl
        weights = torch.randn(y.shape, dtype=dtype)
        grads = torch.autograd.grad((y * weights).sum(), [*cell.parameters(), x, h0])
        return [y.detach(), *grads]
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("output", ["real", "complex"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_results_do_not_depend_on_the_thread_count(dtype, output):
    """Same run, 1, 2 or 3 threads: bitwise the same states and gradients, for batches that the
    thread counts divide or not (a training run's metrics must not depend on the
    machine's cores)."""
    for batch in (1, 3, 7, 64, 100):
        results = [
            outputs_and_grads_with_threads(t, "fused", batch, dtype, output) for t in (1, 2, 3)
        ]
        for threads, result in zip((2, 3), results[1:], strict=True):
            for i, (a, b) in enumerate(zip(results[0], result, strict=True)):
                assert torch.equal(a, b), (
                    f"batch {batch}: output {i} differs between 1 and {threads} threads"
                )


def test_non_contiguous_input_and_no_grad():
    torch.manual_seed(4)
    cell = EURNN(3, 8, capacity=3, impl="fused")
    x = torch.randn(9, 4, 3).transpose(0, 1)  # (B=4, T=9, 3), not contiguous
    with torch.no_grad():
        y = cell(x)
        cell.impl = "reference"
        torch.testing.assert_close(y, cell(x), rtol=1e-5, atol=1e-6)


def test_layout_makes_each_tunable_layer_one_or_two_runs():
    perm, segments, layers = _eurnn_fused.layout(mixer_pairs(8, "tunable", 3, "periodic"), 8)
    assert perm.tolist() == [0, 2, 4, 6, 1, 3, 5, 7]  # even units, then odd units
    # even layer: positions 0..3 (units 0,2,4,6) with 4..7 (units 1,3,5,7), mixers 0..3;
    # odd layer: units (1,2), (3,4), (5,6) as one run, and the wrap-around (7,0)
    assert segments.tolist() == [[0, 4, 4, 0], [4, 1, 3, 4], [7, 0, 1, 7], [0, 4, 4, 8]]
    assert layers.tolist() == [0, 1, 3, 4]
    perm, segments, layers = _eurnn_fused.layout(mixer_pairs(8, "fft", 3, "periodic"), 8)
    assert perm.tolist() == list(range(8))
    assert segments[layers[2] :].tolist() == [[0, 4, 4, 8]]  # stride 4: one run of 4 mixers


def test_build_name_changes_with_the_source(monkeypatch, tmp_path):
    name = _eurnn_fused.build_name()
    changed = tmp_path / "eurnn_fused.cpp"
    changed.write_text(_eurnn_fused.SOURCE.read_text() + "\n// changed\n")
    monkeypatch.setattr(_eurnn_fused, "SOURCE", changed)
    assert _eurnn_fused.build_name() != name


def test_without_a_compiler_auto_warns_once_and_runs_dense_and_fused_fails(tmp_path):
    """A fresh process where the compiler does not exist: one warning that says what is missing; a
    cell with impl=auto still trains, recording the path it ran; impl=fused stops, naming what
    can run."""
    script = textwrap.dedent("""
        import warnings
        import torch
        from rnnbench.cells.eurnn import EURNN
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for impl in ("auto", "fused", "auto"):
                cell = EURNN(1, 16, capacity=2, impl=impl)
                try:
                    cell(torch.randn(2, 5, 1)).sum().backward()
                    print(impl, cell.last_impl)
                except ValueError as error:
                    print(impl, "ValueError", error)
        for w in caught:
            print("WARNING", w.message)
    """)
    env = {
        **os.environ,
        "CXX": str(tmp_path / "no-such-compiler"),
        "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"),
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "auto dense" and lines[2] == "auto dense"
    assert (
        lines[1].startswith(
            "fused ValueError EURNN impl='fused' cannot run on cpu: the fused kernel could not "
            "be built here"
        )
        and "Implementations that can: reference, dense" in lines[1]
    )
    warnings_ = [ln for ln in lines if ln.startswith("WARNING")]
    assert len(warnings_) == 1
    assert (
        "could not build the fused EURNN kernel" in warnings_[0] and "C++ compiler" in warnings_[0]
    )


@pytest.mark.parametrize("modrelu", ["smooth", "notebook"])
@pytest.mark.parametrize("output", ["real", "complex"])
def test_the_dense_paths_compiled_step_loop_equals_its_python_loop(output, modrelu, monkeypatch):
    case = {
        "kwargs": dict(
            style="tunable", capacity=3, output=output, diag_phase=True, modrelu=modrelu
        ),
        "batch": 3,
        "steps": 9,
        "inputs": 2,
        "n": 8,
    }
    y_compiled, g_compiled = run("dense", case, seed=8)
    monkeypatch.setattr(
        _eurnn_fused, "load", lambda: None
    )  # as without a compiler: the Python loop
    y_python, g_python = run("dense", case, seed=8)
    torch.testing.assert_close(y_compiled, y_python, rtol=0, atol=1e-12)
    for a, b in zip(g_compiled, g_python, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_a_lock_left_by_a_killed_process_never_blocks_loading(tmp_path):
    """torch's loader waits forever on a build lock whose owner was killed (found by the fault
    tests): a built kernel is imported without it."""
    name = _eurnn_fused.build_name()
    lock = _eurnn_fused.build_folder(name) / "lock"
    lock.touch()
    try:
        out = subprocess.run(
            [sys.executable, "-c", "from rnnbench.cells import _eurnn_fused as f; print(f.load())"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        lock.unlink()
    assert out.returncode == 0 and name in out.stdout, out.stderr
