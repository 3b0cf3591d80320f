"""What rnnbench's runner costs: the same model, data and batch order trained by the runner
and by a bare loop, timed alike; prints the runner's overhead in percent.

The runner's time is its whole wall-clock minus its evaluation and test time (the bare loop
does neither), so what remains is training plus the runner's bookkeeping: synchronisation,
per-step timing, progress, NaN checks, and logging (gradient norms, a curve point every
--log-every steps). The runner also runs with --tensorboard, and what logging cost is read from
each run's own `log_time_s` (the time it spent logging, outside the step clock) as a share of its
`train_time_s` (the issue's budget: at most 1 % of step time).

    python benchmarks/overhead.py                  # lstm, N=128, 200 steps of 50 on pmnist (sample)
    python benchmarks/overhead.py --quick          # seconds
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import click
import torch

import rnnbench
from rnnbench import optim
from rnnbench.config import RunConfig
from rnnbench.measure import flush_denormals
from rnnbench.runner import Batches, SequenceClassifier, train


def bare_loop(task, spec, config: RunConfig, splits) -> float:
    """The 20-line loop: seconds for config.steps training steps."""
    torch.manual_seed(config.seed)
    model = SequenceClassifier(
        rnnbench.build_cell(spec, task.input_size, config.hidden_size),
        task.num_classes,
        task.readout,
    )
    optimizer = optim.build(config, model)
    batches = Batches(len(splits.train), config.batch_size, config.sampling, config.seed)
    start = time.perf_counter()
    for _ in range(config.steps):
        batch = splits.train.take(batches.next())
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss(*model(batch))
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def runner_loop(
    task, spec, config: RunConfig, splits, tensorboard: Path | None = None
) -> tuple[float, float]:
    """rnnbench's runner on the same work: seconds of wall-clock minus evaluation and test, and the
    share of training time it spent logging."""
    start = time.perf_counter()
    result = train(task, spec, config, splits, torch.device("cpu"), tensorboard=tensorboard)
    return time.perf_counter() - start - result["eval_time_s"], result["log_time_s"] / result[
        "train_time_s"
    ]


@click.command()
@click.option("--cell", default="lstm", show_default=True)
@click.option("--hidden", default=128, show_default=True)
@click.option("--steps", default=200, show_default=True)
@click.option("--batch", default=50, show_default=True)
@click.option("--repeats", default=3, show_default=True, help="Alternating runs of each loop.")
@click.option(
    "--log-every", default=50, show_default=True, help="Steps between training curve points."
)
@click.option("--quick", is_flag=True, help="Tiny sizes: checks the script runs.")
def main(cell, hidden, steps, batch, repeats, log_every, quick):
    if quick:
        hidden, steps, batch, repeats, log_every = 16, 6, 10, 1, 2
    flush_denormals()
    task = rnnbench.build_task("pmnist:data=sample")
    config = RunConfig(
        hidden_size=hidden,
        batch_size=batch,
        steps=steps,
        eval_every=steps,
        eval_batch_size=500,
        device="cpu",
        log_every=log_every,
    )
    splits = task.load(config)
    spec = rnnbench.parse_cell_spec(cell)
    warm = config.replace(steps=2, eval_every=2)  # first calls pay one-off costs: pay them untimed
    bare_loop(task, spec, warm, splits), runner_loop(task, spec, warm, splits)
    bare, runner, board, logging, board_logging = [], [], [], [], []
    events = Path(tempfile.mkdtemp(prefix="rnnbench-overhead-"))
    for _ in range(repeats):  # alternate, so that drift of the machine hits all alike
        bare.append(bare_loop(task, spec, config, splits))
        seconds, share = runner_loop(task, spec, config, splits)
        runner.append(seconds)
        logging.append(share)
        seconds, share = runner_loop(task, spec, config, splits, events)
        board.append(seconds)
        board_logging.append(share)
    bare_s, runner_s, board_s = (
        statistics.median(bare),
        statistics.median(runner),
        statistics.median(board),
    )
    click.echo(
        f"{cell}, N={hidden}, {steps} steps of batch {batch} on pmnist (784 steps per sequence), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {repeats}"
    )

    def spread(times: list[float]) -> str:
        return f"(min {1e3 * min(times) / steps:.2f}, max {1e3 * max(times) / steps:.2f})"

    click.echo(f"  bare loop   {1e3 * bare_s / steps:9.2f} ms/step {spread(bare)}")
    click.echo(f"  runner      {1e3 * runner_s / steps:9.2f} ms/step {spread(runner)}")
    click.echo(
        f"  runner + tb {1e3 * board_s / steps:9.2f} ms/step {spread(board)} (--tensorboard)"
    )
    click.echo(
        f"  overhead    {100 * (runner_s / bare_s - 1):+9.1f} % (medians; compare with the "
        f"spreads), {100 * (board_s / bare_s - 1):+.1f} % with --tensorboard"
    )
    click.echo(
        f"  logging     {100 * statistics.median(logging):9.3f} % of training time (a curve point "
        f"every {log_every} steps), {100 * statistics.median(board_logging):.3f} % with "
        "--tensorboard (each run's log_time_s / train_time_s; budget 1 %)"
    )


if __name__ == "__main__":
    main()
