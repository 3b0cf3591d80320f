"""Every CUDA path, checked by one command on one GPU, into one JSON (issue 17).

    python benchmarks/gpu.py             # on a GPU machine: under 10 minutes on one H200
    python benchmarks/gpu.py --dry-run   # anywhere: every step on CPU at tiny sizes, no CUDA

Four steps, each recorded in the JSON (default results/benchmarks/gpu.json) with the environment:
  1. tests: the `cuda`-marked tests (pytest -m cuda), with the compiled Triton kernels
     (TRITON_INTERPRET=0);
  2. steps: a training step of every cell at N=256, T=784, B=100 (benchmarks/cells.py's step:
     forward with a Linear readout and cross-entropy, backward and an RMSprop update), forward and
     backward timed apart with CUDA events after warm-up, each configuration in a fresh process;
     then its peak `max_memory_allocated` in another fresh process; and the registers and spills of
     the Triton kernels at that shape, as ptxas reports them for sm_90a;
  3. run: a short end-to-end `rnnbench run --device cuda` of EURNN and LSTM on the bundled MNIST
     sample (MNIST's own file format; the machine needs no download), its rows kept;
  4. ratios against the targets of issue 17: EURNN (capacity 2, triton) against cuDNN's nn.RNN
     (<= 0.5) and against EURNN dense (<= 0.1); the seed notebook's 40,000 steps at that step time
     (<= 10 minutes); peak memory against nn.RNN's (<= 1).
With --dry-run every step runs on the CPU instead: the tests step collects the same tests, the
steps run at N=16, T=4, B=2 in this process (impl=triton in Triton's interpreter), the run for 4
steps; the JSON then goes to a file of its own (gpu-dry-run.json) unless --json says otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
# The step and memory measurements of benchmarks/cells.py, loaded by path (the name `cells` is the
# project's package of cells).
_spec = importlib.util.spec_from_file_location(
    "rnnbench_bench_cells", Path(__file__).with_name("cells.py")
)
bench_cells = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = (
    bench_cells  # so that its functions pickle into the fresh processes (spawn)
)
_spec.loader.exec_module(bench_cells)

CELLS = [
    "rnn",
    "lstm",
    "gru",
    "eurnn:impl=triton",
    "eurnn:impl=dense",
    "eurnn-c4:impl=triton",
    "eurnn-c16:impl=triton",
    "eurnn-fft:impl=triton",
    "eurnn:impl=reference",
    *bench_cells.NEW_CELLS,
    *bench_cells.SCAN_CELLS,
]
NOTEBOOK_STEPS = 40_000  # the seed notebook's run: 45.9 hours


def run_tests(dry_run: bool) -> dict:
    """Step 1: pytest -m cuda (with --dry-run, only collected: without a GPU they would all skip);
    its exit status and last line."""
    environment = {**os.environ, "TRITON_INTERPRET": "0"}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "cuda",
        "-q",
        "-p",
        "no:cacheprovider",
        str(ROOT / "tests"),
    ]
    if dry_run:
        command.append("--collect-only")
    start = time.monotonic()
    out = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT)
    lines = (out.stdout + out.stderr).strip().splitlines()
    ok = out.returncode == 0
    return {
        "command": " ".join(command[1:]),
        "returncode": out.returncode,
        "ok": ok,
        "summary": lines[-1] if lines else "",
        "seconds": round(time.monotonic() - start, 1),
        "failures": [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))][:50],
    }


def time_step_events(
    spec: str, hidden: int, steps: int, batch: int, repeats: int, warmup: int, device: str
) -> dict:
    """Median forward and backward times (ms) of a training step, by CUDA events (perf_counter
    around synchronisations on CPU)."""
    device = torch.device(device)
    cell, step_parts = _step_parts(spec, hidden, steps, batch, device)
    for _ in range(warmup):
        step_parts()
    forward, backward = [], []
    for _ in range(repeats):
        f, b = step_parts(timed=True)
        forward.append(f)
        backward.append(b)
    total = [f + b for f, b in zip(forward, backward, strict=True)]
    return {
        "cell": spec,
        "impl": bench_cells.implementation(cell),
        "hidden": hidden,
        "steps": steps,
        "batch": batch,
        "params": sum(p.numel() for p in cell.parameters()),
        "median_ms": statistics.median(total),
        "min_ms": min(total),
        "max_ms": max(total),
        "forward_ms": statistics.median(forward),
        "backward_ms": statistics.median(backward),
        "repeats": repeats,
    }


def _step_parts(spec, hidden, steps, batch, device):
    """benchmarks/cells.py's training step, split into its forward (with the loss) and backward
    (with the update); `step(timed=True)` returns their durations in ms."""
    torch.manual_seed(0)
    cell = bench_cells.rnnbench.build_cell(spec, input_size=1, hidden_size=hidden).to(device)
    readout = torch.nn.Linear(cell.output_size, 10).to(device)
    opt = torch.optim.RMSprop(list(cell.parameters()) + list(readout.parameters()), lr=1e-4)
    x = torch.rand(batch, steps, 1, device=device)
    y = torch.randint(10, (batch,), device=device)
    cuda = device.type == "cuda"

    def clock():
        if cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def elapsed(a, b) -> float:
        if cuda:
            b.synchronize()
            return a.elapsed_time(b)
        return (b - a) * 1e3

    def step(timed: bool = False):
        opt.zero_grad(set_to_none=True)
        start = clock()
        loss = torch.nn.functional.cross_entropy(readout(cell(x)[:, -1]), y)
        middle = clock()
        loss.backward()
        opt.step()
        end = clock()
        if timed:
            return elapsed(start, middle), elapsed(middle, end)
        return None

    return cell, step


def measure_steps(
    dry_run: bool, device: str, hidden: int, steps: int, batch: int, repeats: int, warmup: int
) -> list[dict]:
    """Step 2: every cell's step time (fresh process each) and peak memory (another fresh
    process)."""
    rows = []
    for spec in CELLS:
        if dry_run:
            row = {
                **time_step_events(spec, hidden, steps, batch, repeats, warmup, device),
                **bench_cells.step_memory(spec, hidden, steps, batch, torch.device(device)),
            }
        else:
            row = {
                **bench_cells.in_fresh_process(
                    time_step_events, spec, hidden, steps, batch, repeats, warmup, device
                ),
                **bench_cells.in_fresh_process(
                    bench_cells.step_memory, spec, hidden, steps, batch, torch.device(device)
                ),
            }
        click.echo(
            f"{spec:28s} {row['impl']:10s} {row['median_ms']:9.2f} ms  "
            f"peak {row['peak_mb']:8.1f} MiB",
            err=True,
        )
        rows.append(row)
    return rows


def kernel_registers(hidden: int, batch: int) -> list[dict]:
    """Registers and spills of the Triton kernels at the measured shape, as ptxas reports them for
    sm_90a (cells/_eurnn_triton.py, sm90_report), compiled in a process without the interpreter."""
    code = (
        "import json; from rnnbench.cells import _eurnn_triton as t; "
        f"print(json.dumps(t.sm90_report([(t.block_rows({batch}, {hidden}), t._pow2({hidden}))], "
        "('fp32',))))"
    )
    environment = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=ROOT
    )
    if out.returncode:
        return [{"error": (out.stdout + out.stderr)[-2000:]}]
    return [
        {k: v for k, v in entry.items() if k != "ptxas"}
        for entry in json.loads(out.stdout.splitlines()[-1])
    ]


def end_to_end(dry_run: bool, device: str) -> dict:
    """Step 3: `rnnbench run` of EURNN and LSTM on the MNIST sample; its rows."""
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable,
            "-m",
            "rnnbench",
            "run",
            "--cells",
            "eurnn,lstm",
            "--task",
            "pmnist:data=sample",
            "--preset",
            "quick",
            "--device",
            device,
            "--steps",
            "4" if dry_run else "200",
            "--eval-every",
            "2" if dry_run else "100",
            "--results",
            folder,
        ]
        environment = {**os.environ, "TRITON_INTERPRET": "0"}
        start = time.monotonic()
        out = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT)
        rows_path = Path(folder) / "pmnist.csv"
        rows = pd.read_csv(rows_path).to_dict("records") if rows_path.exists() else []
    keep = [
        "cell_spec",
        "impl",
        "status",
        "test_acc",
        "step_time_ms",
        "train_time_s",
        "build_time_s",
        "peak_mem_mb",
        "mem_source",
        "device",
        "device_name",
        "error",
    ]
    return {
        "command": " ".join(command[1:]),
        "returncode": out.returncode,
        "seconds": round(time.monotonic() - start, 1),
        "rows": [{k: row.get(k) for k in keep} for row in rows],
        "output_tail": (out.stdout + out.stderr)[-3000:],
    }


def ratios(rows: list[dict]) -> list[dict]:
    """Step 4: the targets of issue 17, from the step rows."""
    table = {row["cell"]: row for row in rows}

    def value(spec: str, column: str) -> float:
        return table[spec][column] if spec in table else float("nan")

    triton = value("eurnn:impl=triton", "median_ms")
    out = [
        (
            "eurnn (capacity 2, triton) step / nn.RNN step",
            triton / value("rnn", "median_ms"),
            "<= 0.5",
        ),
        (
            "eurnn (capacity 2, triton) step / eurnn dense step",
            triton / value("eurnn:impl=dense", "median_ms"),
            "<= 0.1",
        ),
        (
            "the notebook's 40,000 steps at the triton step time (minutes)",
            NOTEBOOK_STEPS * triton / 60_000,
            "<= 10",
        ),
        (
            "eurnn (capacity 2, triton) peak memory / nn.RNN's",
            value("eurnn:impl=triton", "peak_mb") / value("rnn", "peak_mb"),
            "<= 1",
        ),
    ]
    return [
        {"name": name, "value": v if math.isfinite(v) else None, "target": target}
        for name, v, target in out
    ]


def environment(device: str) -> dict:
    import importlib.metadata as metadata

    env = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "device": device,
        "host_cpu": platform.processor() or platform.machine(),
    }
    try:
        env["triton"] = metadata.version("triton")
    except metadata.PackageNotFoundError:
        env["triton"] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        env.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
        )
    return env


@click.command()
@click.option(
    "--dry-run",
    is_flag=True,
    help="Every step on the CPU at tiny sizes: checks the script, measures nothing.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the JSON goes [default: results/benchmarks/gpu.json; with --dry-run, "
    "gpu-dry-run.json in the temporary folder]",
)
@click.option("--repeats", default=10, show_default=True)
@click.option("--warmup", default=3, show_default=True)
def main(dry_run: bool, json_path: Path, repeats: int, warmup: int):
    if dry_run:
        device, hidden, steps, batch, repeats, warmup = "cpu", 16, 4, 2, 1, 1
        os.environ["TRITON_INTERPRET"] = (
            "1"  # impl=triton on CPU (read when its kernels are defined)
        )
        json_path = json_path or Path(tempfile.gettempdir()) / "gpu-dry-run.json"
    else:
        if not torch.cuda.is_available():
            raise click.UsageError(
                "no CUDA device here; run with --dry-run to check the script on CPU"
            )
        device, hidden, steps, batch = "cuda", 256, 784, 100
        json_path = json_path or ROOT / "results" / "benchmarks" / "gpu.json"
    started = time.monotonic()
    click.echo("1/4 cuda tests", err=True)
    tests = run_tests(dry_run)
    click.echo(f"    {tests['summary']}", err=True)
    click.echo(f"2/4 training steps at N={hidden}, T={steps}, B={batch}", err=True)
    rows = measure_steps(dry_run, device, hidden, steps, batch, repeats, warmup)
    registers = kernel_registers(hidden, batch)
    click.echo(f"    triton kernels at this shape (sm_90a): {registers}", err=True)
    click.echo("3/4 rnnbench run", err=True)
    run = end_to_end(dry_run, device)
    click.echo(f"    exit {run['returncode']}, {len(run['rows'])} rows", err=True)
    document = {
        "dry_run": dry_run,
        "environment": environment(device),
        "tests": tests,
        "steps": {
            "hidden": hidden,
            "steps": steps,
            "batch": batch,
            "repeats": repeats,
            "warmup": warmup,
            "rows": rows,
            "triton_registers_sm90": registers,
        },
        "run": run,
        "ratios": ratios(rows),
        "seconds": round(time.monotonic() - started, 1),
    }
    click.echo("4/4 ratios", err=True)
    for ratio in document["ratios"]:
        shown = "n/a" if ratio["value"] is None else f"{ratio['value']:.3g}"
        click.echo(f"    {ratio['name']}: {shown} (target {ratio['target']})", err=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    click.echo(f"wrote {json_path}", err=True)
    if not tests["ok"] or run["returncode"] != 0:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
