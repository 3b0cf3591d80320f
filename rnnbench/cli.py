"""The `rnnbench` command: a thin click layer over the library."""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from pathlib import Path

import click

from rnnbench.config import CHOICES, PRESETS, RunConfig, preset
from rnnbench.registry import CELLS, TASKS, RegistryError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE", envvar="RNNBENCH_PLUGINS",
              help="Import MODULE first, so that the cells it registers can be used "
                   "(repeatable; $RNNBENCH_PLUGINS holds a space-separated list).")
@click.version_option(package_name="rnnbench")
def main(plugins: tuple[str, ...]) -> None:
    """Benchmark recurrent cells on long-sequence tasks."""
    import os
    import sys

    # The `rnnbench` console script, unlike `python -m`, does not put the current folder on
    # sys.path: add it, last, so that `--plugin my_cells` finds ./my_cells.py, and a file here
    # named like an installed package never shadows it (as sweep.load_plugins does in jobs).
    if plugins and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    for module in plugins:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise click.UsageError(f"cannot import plugin module {module!r}: {error}") from None
        except RegistryError as error:
            raise click.UsageError(f"plugin module {module!r}: {error}") from None


@main.command("ls")
@click.argument("pattern", default="*")
@click.option("--params", "budget", type=click.IntRange(min=1), default=None,
              help="Instead, print the hidden size each cell gets for this parameter budget on --task.")
@click.option("--task", "task_name", default="pmnist", show_default=True, help="The task for --params.")
def ls(pattern: str, budget: int | None, task_name: str) -> None:
    """List the registered cells matching PATTERN (a glob, e.g. 'eurnn*'), with their
    options as `name: type = default`; then the tasks and the presets."""
    names = CELLS.names(pattern)
    if not names:
        raise click.UsageError(f"no cell matches {pattern!r}; known: {', '.join(CELLS.names())}")
    width = max(map(len, names))
    if budget is not None:
        from rnnbench.sizing import match_hidden_size

        try:
            task = TASKS.build(task_name)
        except RegistryError as error:
            raise click.UsageError(str(error)) from None
        click.echo(f"{'cell':{width}}  hidden  params  (budget {budget} on {task_name}, readout included)")
        for name in names:
            try:
                size, params = match_hidden_size(task, CELLS.parse(name), budget)
                click.echo(f"{name:{width}}  {size:6d}  {params:6d}")
            except ValueError as error:
                click.echo(f"{name:{width}}  -- {error}")
        return
    click.echo("cells:")
    for name in names:
        entry = CELLS.get(name)
        click.echo(f"  {name:{width}}  {entry.summary}")
        options = "; ".join(o.describe() for o in entry.options.values()) or "(no options)"
        click.echo(f"  {'':{width}}  options: {options}")
    click.echo("tasks:")
    for name in TASKS.names():
        entry = TASKS.get(name)
        click.echo(f"  {name:{width}}  {entry.summary}")
        if entry.options:
            click.echo(f"  {'':{width}}  options: {'; '.join(o.describe() for o in entry.options.values())}")
        if entry.factory.presets:
            implied = "; ".join(f"{preset_}: " + ", ".join(f"{k}={v}" for k, v in values.items())
                                for preset_, values in entry.factory.presets.items())
            click.echo(f"  {'':{width}}  with presets: {implied}")
    click.echo("presets:")
    for name, config in PRESETS.items():
        changed = [f"{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config)
                   if getattr(config, f.name) != f.default]
        click.echo(f"  {name:{width}}  {', '.join(changed) or '(the defaults)'}")


def expand_cells(text: str) -> list:
    """`eurnn,lstm`, `eurnn:capacity=4`, `eurnn*` -> specs (globs expand against the registry)."""
    specs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if any(ch in item for ch in "*?["):
            matches = CELLS.names(item)
            if not matches:
                raise RegistryError(f"no cell matches {item!r}; known: {', '.join(CELLS.names())}")
            specs += [CELLS.parse(name) for name in matches]
        else:
            specs.append(CELLS.parse(item))
    if not specs:
        raise RegistryError(f"no cell given in --cells {text!r}; known: {', '.join(CELLS.names())}")
    return specs


# One option per RunConfig field (except seed: --seeds). Default None = the preset's value.
ALIASES = {"hidden_size": ["--hidden"], "params_budget": ["--params"]}
LISTS = {"hidden_size"}  # a comma-separated list makes a sweep


def parse_int_list(name: str, text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{name} must be integers separated by commas; got {text!r}") from None


def config_options(command):
    for f in reversed([f for f in dataclasses.fields(RunConfig) if f.name != "seed"]):
        flag = "--" + f.name.replace("_", "-")
        kind = click.Choice(CHOICES[f.name]) if f.name in CHOICES else {int: int, float: float}.get(
            type(f.default), str)
        if f.name in LISTS:
            kind = str
        command = click.option(flag, *ALIASES.get(f.name, []), f.name, type=kind, default=None,
                               help=f"{f.metadata['help']} [default preset: {f.default}]")(command)
    return command


@main.command("run")
@click.option("--cells", required=True, help="Comma-separated cell specs or globs: eurnn,lstm  eurnn:capacity=4  'eurnn*'.")
@click.option("--task", "task_name", required=True,
              help="Task name or spec with options (see `rnnbench ls`): pmnist, copying:delay=200.")
@click.option("--preset", "preset_name", default="default", show_default=True,
              help=f"Named configuration: {', '.join(PRESETS)}; the flags below override its fields.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds; one run per cell and seed.")
@config_options
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, readable=True, path_type=Path),
              default=None, help="An existing folder where dataset files are, or are downloaded to "
                                 "(default: $RNNBENCH_DATA, else the user cache folder).")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Folder of the results CSVs (one per task) and curves.")
@click.option("--force", is_flag=True, help="Run again even runs that already have an ok row.")
@click.option("--keep-checkpoints", is_flag=True, help="Keep the checkpoints of finished runs.")
@click.option("--in-process", is_flag=True,
              help="inline: train every run in this process instead of a fresh child process per run (for "
                   "debugging; the memory and clocks of a run then include what earlier runs left).")
@click.option("--executor", type=click.Choice(["inline", "local", "slurm"]), default="inline", show_default=True,
              help="inline: one run after another in this process; local: parallel processes on this "
                   "machine (--jobs); slurm: one SLURM job array, one run per task (returns after submitting).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="local: runs at once, each with its share of the cores [default: 2].")
@click.option("--wait", is_flag=True, help="slurm: wait for the jobs, then print the summary table.")
@click.option("--partition", default=None, help="slurm: the partition.")
@click.option("--time", "time_min", type=click.IntRange(min=1), default=None,
              help="slurm: time limit per job, in minutes; a job that reaches it is requeued and resumes "
                   "from its checkpoint [default: 1440].")
@click.option("--gpus-per-task", type=click.IntRange(min=0), default=None, help="slurm: GPUs per run.")
@click.option("--cpus-per-task", type=click.IntRange(min=1), default=None,
              help="slurm: CPU cores per run (also its torch threads) [default: the cluster's, 1 thread].")
@click.option("--mem", default=None, help="slurm: memory per run, e.g. 16G.")
@click.option("--account", default=None, help="slurm: the account to charge.")
@click.option("--qos", default=None, help="slurm: the quality of service.")
@click.option("--array-parallelism", type=click.IntRange(min=1), default=None,
              help="slurm: at most this many runs of the array at once.")
@click.option("--sbatch", "sbatch_options", multiple=True, metavar="KEY=VALUE",
              help="slurm: any other sbatch option, without its dashes (repeatable): --sbatch constraint=a100.")
def run(cells, task_name, preset_name, seeds, data_dir, results, force, keep_checkpoints, in_process, executor, jobs,
        wait,
        partition, time_min, gpus_per_task, cpus_per_task, mem, account, qos, array_parallelism, sbatch_options,
        **fields):
    """Train every cell of --cells on --task for every seed; one CSV row per run."""
    from rnnbench import claims, executors, sweep
    from rnnbench.data import DownloadError
    from rnnbench.runner import RowNotWritten

    slurm_only = {"--wait": wait, "--partition": partition, "--time": time_min, "--gpus-per-task": gpus_per_task,
                  "--cpus-per-task": cpus_per_task, "--mem": mem, "--account": account, "--qos": qos,
                  "--array-parallelism": array_parallelism, "--sbatch": sbatch_options}
    given = [flag for flag, value in slurm_only.items() if value not in (None, False, ())]
    if executor != "slurm" and given:
        raise click.UsageError(f"{given[0]} applies to --executor slurm; got --executor {executor}")
    if executor != "local" and jobs is not None:
        raise click.UsageError(f"--jobs applies to --executor local; got --executor {executor}")
    if executor != "inline" and in_process:
        raise click.UsageError(f"--in-process applies to --executor inline; got --executor {executor}")
    results = results.resolve()  # jobs may run in another folder, on another node
    data_dir = data_dir.resolve() if data_dir else None
    log = lambda line: click.echo(line, err=True)  # noqa: E731
    warnings.showwarning = lambda message, *_, **__: log(f"warning: {message}")  # not Python's file:line form
    try:
        task_spec = sweep.resolve_task(task_name, preset_name)  # an unknown task or option: refused first
        specs = expand_cells(cells)
        hidden = fields.pop("hidden_size")  # one size, or a comma-separated list: a sweep
        hidden_sizes = parse_int_list("hidden sizes", hidden) if hidden else None
        if hidden_sizes and len(hidden_sizes) == 1:
            fields["hidden_size"], hidden_sizes = hidden_sizes[0], None
            if fields.get("params_budget"):
                raise ValueError("give a parameter budget (--params) or a hidden size (--hidden), not both")
        config = preset(preset_name).replace(**{k: v for k, v in fields.items() if v is not None})
        slurm = None
        if executor == "slurm":
            slurm = executors.SlurmOptions(partition, time_min or 24 * 60, gpus_per_task, cpus_per_task, mem,
                                           account, qos, array_parallelism,
                                           executors.parse_sbatch_options(sbatch_options))
        where = executors.make(executor, jobs, in_process, slurm, wait, announce=click.echo)
        plugins = sweep.plugin_origins(click.get_current_context().find_root().params["plugins"])
        runs, splits = sweep.plan(task_spec, specs, parse_int_list("seeds", seeds), config, results, data_dir,
                                  force, keep_checkpoints, log, hidden_sizes, plugins, where.threads,
                                  runs_at_once=where.runs_at_once)
        rows = where.run(runs, splits, log)
        if rows is None:  # submitted, not waited for
            return
    except (RegistryError, ValueError) as error:  # (ForeignFile too: a results file that is not ours)
        raise click.UsageError(str(error)) from None
    except (DownloadError, FileNotFoundError, PermissionError, claims.LockTimeout, claims.ClaimLost,
            executors.SubmissionFailed) as error:
        raise click.ClickException(str(error)) from None
    except RowNotWritten as error:  # says whether the run keeps a checkpoint to resume from
        raise click.ClickException(f"{error} The rows written before are intact.") from None
    except OSError as error:  # a folder that could not be written (disk full, read-only...): before any row
        raise click.ClickException(f"{error}; nothing of this run was written") from None
    _print_rows(rows)
    if any(r["status"] == "failed" for r in rows) or not where.complete(runs, rows):
        raise SystemExit(1)


def _print_rows(rows):
    import pandas as pd

    if rows:
        table = pd.DataFrame(rows).reindex(columns=["cell_spec", "hidden_size", "seed", "status", "test_acc",
                                                    "test_acc_final", "train_time_s", "step_time_ms", "peak_mem_mb"])
        click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


@main.command("status")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Folder of the results CSVs.")
@click.option("--sweep", "sweep_id", default=None, help="The sweep (its job array id) [default: the latest].")
def status(results, sweep_id):
    """Which runs of a submitted sweep are done (ok, diverged, failed), pending, running, or lost
    (killed or cancelled before writing a row: submit the same sweep again to run them)."""
    import pandas as pd

    from rnnbench import executors

    try:
        path = results / "sweeps" / f"{sweep_id}.json" if sweep_id else executors.latest_sweep(results)
        if not path.exists():
            known = sorted(p.stem for p in (results / "sweeps").glob("*.json"))
            raise click.UsageError(f"no sweep {sweep_id!r} in {results / 'sweeps'}; known: {', '.join(known) or 'none'}")
        table = pd.DataFrame(executors.sweep_status(path))
    except (FileNotFoundError, RuntimeError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"sweep {path.stem} ({results}):")
    click.echo(table.to_string(index=False))
    counts = table.state.value_counts()
    click.echo(", ".join(f"{n} {state}" for state, n in counts.items()))


@main.command("report")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Folder of the results CSVs.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the tables and figures go [default: RESULTS/report].")
@click.option("--task", "tasks", multiple=True, help="Only this task (repeatable).")
@click.option("--cells", default=None, help="Only these cells: comma-separated names, specs or globs.")
@click.option("--status", "statuses", default="ok", show_default=True,
              help="Comma-separated statuses to include (ok, diverged, failed).")
def report(results, out, tasks, cells, statuses):
    """Tables (Markdown, LaTeX, CSV) and seaborn figures from every row in --results:
    mean and standard deviation over seeds, per task, data, machine and number of threads."""
    from rnnbench import records
    from rnnbench import report as reporting

    warnings.showwarning = lambda message, *_, **__: click.echo(f"warning: {message}", err=True)
    wanted = tuple(s.strip() for s in statuses.split(",") if s.strip())
    unknown = [s for s in wanted if s not in ("ok", "diverged", "failed")]
    if unknown:
        raise click.UsageError(f"unknown status {unknown[0]!r}; choose from ok, diverged, failed")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rows, curves = reporting.read_results(results)
            cards = records.read_task_cards(results)
        except reporting.ReportError as error:
            raise click.UsageError(str(error)) from None
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    selected, counts = reporting.select(rows, list(tasks) or None,
                                        [c.strip() for c in cells.split(",")] if cells else None, wanted)
    others = {status: n for status, n in counts.items() if status not in wanted}
    if others:
        click.echo("left out: " + ", ".join(f"{n} {status}" for status, n in sorted(others.items()))
                   + " (--status to include)", err=True)
    if selected.empty:
        filters = ([f"--task {','.join(tasks)}"] if tasks else []) + ([f"--cells {cells}"] if cells else [])
        what = f" matching {' '.join(filters)}" if filters else ""
        raise click.UsageError(f"no {'/'.join(wanted)} rows in {results}{what}; "
                               f"tasks there: {', '.join(sorted(rows['task'].unique())) or 'none'}")
    try:
        files, markdown = reporting.write_report(selected, curves, out or results / "report", cards)
    except reporting.ReportError as error:  # a folder that cannot be written, a name that would leave it
        raise click.ClickException(str(error)) from None
    click.echo(markdown)
    click.echo(f"wrote {len(files)} files to {out or results / 'report'}", err=True)
