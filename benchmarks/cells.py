"""Time one training step of every cell and EURNN implementation, in one run.

A step is what the runner does: forward over the whole sequence, a Linear readout and
cross-entropy on the last step, backward, and an RMSprop update; forward (with the loss) and
backward (with the update) are also timed apart. Memory is measured in a separate pass, one
step alone in its own process: the peak (CUDA allocator, or on CPU the process's peak resident
set) and `step_mb`, what that step needed above the memory already held. Each configuration runs in
a fresh process (what one configuration leaves in the C heap changes the page faults of the
next by a factor of three, so sharing a process would favour whatever runs later), with the
same warm-up and number of timed repeats; the table shows the median and the spread
(min-max), then the ratios the cells and performance issues target (time against `rnn`, dense
against fused, and the step memory of every fused configuration against `rnn`'s). On CPU,
denormals are flushed to zero on every thread (see rnnbench.measure) unless --keep-denormals.
The fused kernel is CPU-only: on CUDA its rows are left out.

    python benchmarks/cells.py                             # N=256, T=784, B=100 and full capacity
                                                           # at N=64, T=196
    python benchmarks/cells.py --quick                     # seconds: small sizes, to check it runs
    python benchmarks/cells.py --csv t.csv --json t.json   # also as tables for the report
"""

from __future__ import annotations

import json
import math
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import click
import pandas as pd
import torch
import torch.nn.functional as F

import rnnbench
from rnnbench.cell import implementation
from rnnbench.measure import current_memory_mb, flush_denormals, peak_memory_mb, reset_peak_memory

# The cells of issue 16 that run a step loop, and those with a parallel scan (timed both ways).
NEW_CELLS = ["exprnn", "scornn", "lmu", "indrnn", "cornn"]
SCAN_CELLS = ["lru", "mingru", "minlstm"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _training_step(
    spec: str, hidden: int, steps: int, batch: int, device: torch.device, num_classes: int = 10
):
    """The cell and one training step on random data; the step returns the clock reading
    between forward (with the loss) and backward (with the update)."""
    torch.manual_seed(0)
    cell = rnnbench.build_cell(spec, input_size=1, hidden_size=hidden).to(device)
    readout = torch.nn.Linear(cell.output_size, num_classes).to(device)
    opt = torch.optim.RMSprop(list(cell.parameters()) + list(readout.parameters()), lr=1e-4)
    x = torch.rand(batch, steps, 1, device=device)
    y = torch.randint(num_classes, (batch,), device=device)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(readout(cell(x)[:, -1]), y)
        _sync(device)
        middle = time.perf_counter()
        loss.backward()
        opt.step()
        return middle

    return cell, step


def time_train_step(
    spec: str,
    hidden: int,
    steps: int,
    batch: int,
    repeats: int,
    warmup: int,
    device: torch.device,
    keep_denormals: bool = False,
) -> dict:
    """Median and spread, in ms, of one training step of `spec`, and of its two halves."""
    denormals = "kept" if keep_denormals else f"flushed ({flush_denormals()})"
    cell, step = _training_step(spec, hidden, steps, batch, device)
    for _ in range(warmup):
        step()
    times, forward, backward = [], [], []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        middle = step()
        _sync(device)
        end = time.perf_counter()
        times.append((end - start) * 1e3)
        forward.append((middle - start) * 1e3)
        backward.append((end - middle) * 1e3)
    return {
        "cell": spec,
        "impl": implementation(cell),
        "hidden": hidden,
        "steps": steps,
        "batch": batch,
        "params": sum(p.numel() for p in cell.parameters()),
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "forward_ms": statistics.median(forward),
        "backward_ms": statistics.median(backward),
        "repeats": repeats,
        "denormals": denormals,
    }


def step_memory(
    spec: str,
    hidden: int,
    steps: int,
    batch: int,
    device: torch.device,
    keep_denormals: bool = False,
) -> dict:
    """Memory of one training step, run alone: the peak (CUDA allocator, or the process's peak
    resident set on CPU) and `step_mb`, what the step needed above the memory held before it.
    On CPU this is only clean in a fresh process, where no earlier step left freed memory."""
    if not keep_denormals:
        flush_denormals()
    _, step = _training_step(spec, hidden, steps, batch, device)
    _sync(device)
    held_mb = current_memory_mb(device)
    mem_source = reset_peak_memory(device)
    step()
    _sync(device)
    peak_mb = peak_memory_mb(device)
    return {"peak_mb": peak_mb, "step_mb": peak_mb - held_mb, "mem_source": mem_source}


def in_fresh_process(function, *args) -> dict:
    """`function(*args)` in a new interpreter, so that no measurement inherits another's heap."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


@click.command()
@click.option("--hidden", default=256, show_default=True, help="N for the main comparison.")
@click.option("--steps", default=784, show_default=True, help="T for the main comparison.")
@click.option("--batch", default=100, show_default=True)
@click.option(
    "--capacities",
    default="2,4,8,16",
    show_default=True,
    help="EURNN capacities timed with impl=dense and impl=fused (capacity 2 also with reference; "
    "full capacity is always added for fused).",
)
@click.option(
    "--full-hidden", default=64, show_default=True, help="N for the full-capacity comparison."
)
@click.option(
    "--full-steps", default=196, show_default=True, help="T for the full-capacity comparison."
)
@click.option("--repeats", default=5, show_default=True)
@click.option("--warmup", default=2, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--quick",
    is_flag=True,
    help="Tiny sizes, one repeat, all in this process: checks the script runs, in seconds.",
)
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the table here."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    help="Also write the table, the ratios and the environment here, as JSON.",
)
@click.option(
    "--keep-denormals",
    is_flag=True,
    help="Do not flush denormals to zero (CPU): shows what vanishing gradients cost.",
)
def main(
    hidden,
    steps,
    batch,
    capacities,
    full_hidden,
    full_steps,
    repeats,
    warmup,
    device,
    quick,
    csv_path,
    json_path,
    keep_denormals,
):
    if quick:
        hidden, steps, batch, full_hidden, full_steps, repeats = 32, 20, 8, 16, 10, 1
    device = torch.device(device)
    caps = [int(c) for c in capacities.split(",")]
    main_specs = ["rnn", "lstm", "gru", "eurnn:impl=reference"]
    main_specs += [f"eurnn:capacity={c}:impl=dense" for c in caps]
    if device.type == "cpu":  # the fused kernel is a CPU kernel
        main_specs += [f"eurnn:capacity={c}:impl=fused" for c in caps] + [
            "eurnn-fft:impl=fused",
            "eurnn-full:impl=fused",
        ]
    main_specs += NEW_CELLS + [
        f"{cell}:impl={impl}" for cell in SCAN_CELLS for impl in ("loop", "scan")
    ]
    full_specs = ["eurnn-full:impl=reference", "eurnn-full:impl=dense", "rnn"]
    if device.type == "cpu":
        full_specs.insert(2, "eurnn-full:impl=fused")

    rows = []
    for specs, n, t in ((main_specs, hidden, steps), (full_specs, full_hidden, full_steps)):
        for spec in specs:
            if quick:  # --quick checks that everything runs; it doesn't measure
                row = {
                    **time_train_step(spec, n, t, batch, repeats, warmup, device, keep_denormals),
                    **step_memory(spec, n, t, batch, device, keep_denormals),
                }
            else:
                row = {
                    **in_fresh_process(
                        time_train_step, spec, n, t, batch, repeats, warmup, device, keep_denormals
                    ),
                    **in_fresh_process(step_memory, spec, n, t, batch, device, keep_denormals),
                }
            click.echo(f"{spec:32s} N={n:<4d} T={t:<4d} {row['median_ms']:10.1f} ms", err=True)
            rows.append(row)
    table = pd.DataFrame(rows)
    click.echo(
        f"\ntorch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
        f"B={batch}, warm-up {warmup}, repeats {repeats}"
        f"{'' if quick else ', one process per configuration'}"
    )
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))

    def value(spec: str, n: int, column: str = "median_ms") -> float:
        found = table.loc[(table.cell == spec) & (table.hidden == n), column]
        return found.iloc[0] if len(found) else float("nan")

    def median(spec: str, n: int) -> float:
        return value(spec, n)

    dense2 = median("eurnn:capacity=2:impl=dense", hidden)
    fused2 = median("eurnn:capacity=2:impl=fused", hidden)
    rnn = median("rnn", hidden)
    at = f"(N={hidden}, T={steps}"
    ratios = [
        (f"eurnn-dense / rnn          {at}, capacity 2)", dense2 / rnn, "<= 3.5"),
        (
            f"reference / dense          {at}, capacity 2)",
            median("eurnn:impl=reference", hidden) / dense2,
            ">= 2.5",
        ),
        (
            f"reference / dense          (N={full_hidden}, T={full_steps}, full capacity)",
            median("eurnn-full:impl=reference", full_hidden)
            / median("eurnn-full:impl=dense", full_hidden),
            ">= 50",
        ),
        (f"eurnn-fused / rnn          {at}, capacity 2)", fused2 / rnn, "<= 0.6"),
        (f"dense / fused              {at}, capacity 2)", dense2 / fused2, ">= 4"),
        (f"lstm / rnn                 {at})", median("lstm", hidden) / rnn, ""),
        (f"gru / rnn                  {at})", median("gru", hidden) / rnn, ""),
    ]
    ratios += [
        (f"{cell} / rnn".ljust(26) + f" {at})", median(cell, hidden) / rnn, "")
        for cell in NEW_CELLS
    ]
    for cell in SCAN_CELLS:
        scan = median(f"{cell}:impl=scan", hidden)
        ratios += [
            (f"{cell} scan / rnn".ljust(26) + f" {at})", scan / rnn, ""),
            (
                f"{cell} loop / scan".ljust(26) + f" {at})",
                median(f"{cell}:impl=loop", hidden) / scan,
                "> 1",
            ),
        ]
    rnn_mb = value("rnn", hidden, "step_mb")
    for spec in table.cell[table.impl.eq("fused") & table.hidden.eq(hidden)]:
        ratios.append(
            (f"step memory {spec} / rnn".ljust(46), value(spec, hidden, "step_mb") / rnn_mb, "<= 1")
        )
    click.echo("\nratios (median step times; memory: step_mb)")
    for name, ratio, target in ratios:
        click.echo(f"  {name} {ratio:7.2f}   {('target ' + target) if target else ''}")
    if csv_path:
        table.to_csv(csv_path, index=False)
    if json_path:
        document = {
            "environment": {
                "torch": torch.__version__,
                "device": str(device),
                "threads": torch.get_num_threads(),
                "batch": batch,
                "warmup": warmup,
                "repeats": repeats,
                "fresh_processes": not quick,
            },
            "rows": json.loads(table.to_json(orient="records")),
            "ratios": [
                {
                    "name": " ".join(name.split()),
                    "value": r if math.isfinite(r) else None,
                    "target": target or None,
                }
                for name, r, target in ratios
            ],
        }
        Path(json_path).write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
